/*
 * RFC 6455 framing without sockets (see sig_wsframe.h): the reader works in place on the caller's
 * input and copies only the fragments of a fragmented message.
 */
#include <stdlib.h>
#include <string.h>
#include "core/sig_wsframe.h"

size_t sig_wsframe_encode_header(uint8_t *dst, uint8_t opcode, uint64_t payload_len)
{
    uint8_t *p = dst;
    *p++ = 0x80 | opcode;
    if (payload_len < 126) {
        *p++ = (uint8_t)payload_len;
    } else if (payload_len <= 0xffff) {
        *p++ = 126;
        *p++ = (uint8_t)(payload_len >> 8);
        *p++ = (uint8_t)payload_len;
    } else {
        int shift;
        *p++ = 127;
        for (shift = 56; shift >= 0; shift -= 8)
            *p++ = (uint8_t)(payload_len >> shift);
    }
    return (size_t)(p - dst);
}

/* XOR with the 4-byte key, 8 bytes at a time: both halves of the 64-bit key are the same 4 bytes,
 * so byte order does not matter, and every word starts at a multiple of 4 into the payload.
 * Inlined into both callers: called through one function from two places, GCC's code for it ran
 * 15% slower on a 16 KB frame (tests/bench/wsframe-utf8.c). */
static inline __attribute__((always_inline)) void unmask(uint8_t *p, size_t len, const uint8_t key[4])
{
    uint32_t key4;
    uint64_t key8, word;
    size_t i = 0;

    memcpy(&key4, key, 4);
    key8 = (uint64_t)key4 << 32 | key4;
    for (; len - i >= 8; i += 8) {
        memcpy(&word, p + i, 8);
        word ^= key8;
        memcpy(p + i, &word, 8);
    }
    for (; i != len; ++i)
        p[i] ^= key[i & 3];
}

/* Unmasks payload bytes [from, to) in place (the key rotated for `from`, so unmasking in pieces is the same as at once). */
static void unmask_range(uint8_t *payload, size_t from, size_t to, const uint8_t key[4])
{
    uint8_t rkey[4];
    int i;

    for (i = 0; i != 4; ++i)
        rkey[i] = key[(from + (size_t)i) & 3];
    unmask(payload + from, to - from, rkey);
}

/* RFC 6455 7.4: what a peer may send (1004-1006 and 1015 are never sent; 1012+ unassigned then). */
static int is_valid_close_code(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

static void fail(sig_wsframe_reader_t *reader, sig_wsframe_event_t *event, uint16_t code, const char *reason)
{
    reader->failed = 1;
    reader->error_code = code;
    reader->error_reason = reason;
    event->type = SIG_WSFRAME_ERROR;
    event->code = code;
    event->reason = reason;
}

/* How long a compressed message may be on the wire: max_message_size applies to what it inflates to, and DEFLATE may
 * make data that does not compress longer (by at most 1/8 with fixed Huffman codes, plus block headers). */
static size_t compressed_max(size_t max)
{
    size_t slack = max / 8 + 64;
    return max > SIZE_MAX - slack ? SIZE_MAX : max + slack;
}

#define FAIL(code, reason)                                                                                                 \
    do {                                                                                                                   \
        fail(reader, event, code, reason);                                                                                 \
        return;                                                                                                            \
    } while (0)

void sig_wsframe_read(sig_wsframe_reader_t *reader, char *input, size_t len, size_t *consumed, sig_wsframe_event_t *event)
{
    static char empty[1];
    size_t off = 0;

    memset(event, 0, sizeof(*event));
    *consumed = 0;
    if (reader->delivered != NULL) { /* rare (a fragmented message): keep free() off the common path */
        free(reader->delivered);
        reader->delivered = NULL;
    }
    if (reader->failed)
        FAIL(reader->error_code, reader->error_reason);

    for (;;) {
        uint8_t *p = (uint8_t *)input + off, opcode, fin, rsv1, compressed;
        size_t avail = len - off, header_len = 2;
        uint64_t payload_len;
        char *payload;
        size_t max;
        int is_text;

        *consumed = off;
        if (avail < 2)
            goto NeedMore;
        fin = p[0] & 0x80;
        opcode = p[0] & 0x0f;
        rsv1 = p[0] & SIG_WSFRAME_RSV1;
        if ((p[0] & 0x30) != 0 || (rsv1 && !reader->deflate_ok))
            FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension");
        if (opcode >= 0x8) {
            if (opcode > SIG_WSFRAME_PONG)
                FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "reserved opcode");
            if (!fin)
                FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame");
            if ((p[1] & 0x7f) > 125)
                FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "control frame longer than 125 bytes");
        } else if (opcode > SIG_WSFRAME_BINARY) {
            FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "reserved opcode");
        } else if (opcode == SIG_WSFRAME_CONTINUATION && reader->msg_opcode == 0) {
            FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "continuation frame without a message to continue");
        } else if (opcode != SIG_WSFRAME_CONTINUATION && reader->msg_opcode != 0) {
            FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "new message before the fragmented one ended");
        } else if (opcode == SIG_WSFRAME_BINARY && !reader->binary_ok) {
            FAIL(SIG_WS_CLOSE_UNSUPPORTED_DATA, "binary frames are not supported");
        }
        /* RFC 7692 6.1: RSV1 only on the first frame of a data message */
        if (rsv1 && opcode >= 0x8)
            FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "RSV1 set on a control frame");
        if (rsv1 && opcode == SIG_WSFRAME_CONTINUATION)
            FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "RSV1 set on a continuation frame");
        compressed = opcode == SIG_WSFRAME_CONTINUATION ? reader->msg_compressed : rsv1 != 0;
        if ((p[1] & 0x80) == 0)
            FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "client frame not masked");

        payload_len = p[1] & 0x7f;
        if (payload_len == 126) {
            if (avail < 4)
                goto NeedMore;
            payload_len = (uint64_t)p[2] << 8 | p[3];
            if (payload_len < 126)
                FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "frame length not in its shortest form");
            header_len = 4;
        } else if (payload_len == 127) {
            int i;
            if (avail < 10)
                goto NeedMore;
            for (payload_len = 0, i = 2; i != 10; ++i)
                payload_len = payload_len << 8 | p[i];
            if (payload_len >> 63 != 0)
                FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "frame length out of range");
            if (payload_len <= 0xffff)
                FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "frame length not in its shortest form");
            header_len = 10;
        }
        /* the size is known before the payload arrives: refuse it now rather than buffer it */
        max = compressed ? compressed_max(reader->max_message_size) : reader->max_message_size;
        if (opcode < 0x8 && payload_len > max - (opcode == SIG_WSFRAME_CONTINUATION ? reader->msg.len : 0))
            FAIL(SIG_WS_CLOSE_MESSAGE_TOO_BIG, "message too big");
        /* compressed text is checked once inflated, by the caller */
        is_text = !compressed &&
                  (opcode == SIG_WSFRAME_TEXT || (opcode == SIG_WSFRAME_CONTINUATION && reader->msg_opcode == SIG_WSFRAME_TEXT));
        if (avail - header_len < 4 || avail - header_len - 4 < payload_len) {
            /* text is checked as it arrives: the part of the payload here now that was not checked on a previous call */
            size_t have = avail - header_len < 4 ? 0 : avail - header_len - 4;
            if (is_text && have > reader->frame_checked) {
                uint8_t *part = p + header_len + 4;
                unmask_range(part, reader->frame_checked, have, p + header_len);
                reader->utf8_state = sig_utf8_feed(reader->utf8_state, part + reader->frame_checked, have - reader->frame_checked);
                reader->frame_checked = have;
                if (reader->utf8_state == SIG_UTF8_REJECT)
                    FAIL(SIG_WS_CLOSE_INVALID_PAYLOAD, "text is not UTF-8");
            }
            goto NeedMore;
        }
        payload = (char *)p + header_len + 4;
        if (reader->frame_checked == 0) /* the common case: the whole frame in one read */
            unmask((uint8_t *)payload, (size_t)payload_len, p + header_len);
        else
            unmask_range((uint8_t *)payload, reader->frame_checked, (size_t)payload_len, p + header_len);
        off += header_len + 4 + (size_t)payload_len;

        switch (opcode) {
        case SIG_WSFRAME_PING:
        case SIG_WSFRAME_PONG:
            event->type = opcode == SIG_WSFRAME_PING ? SIG_WSFRAME_PING_RECEIVED : SIG_WSFRAME_PONG_RECEIVED;
            event->payload = payload;
            event->len = (size_t)payload_len;
            *consumed = off;
            return;
        case SIG_WSFRAME_CLOSE:
            if (payload_len == 1)
                FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte body");
            event->code = SIG_WS_CLOSE_NO_STATUS;
            if (payload_len >= 2) {
                event->code = (uint16_t)((uint8_t)payload[0] << 8 | (uint8_t)payload[1]);
                if (!is_valid_close_code(event->code))
                    FAIL(SIG_WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
                if (!sig_utf8_is_valid(payload + 2, (size_t)payload_len - 2))
                    FAIL(SIG_WS_CLOSE_INVALID_PAYLOAD, "close reason is not UTF-8");
                event->payload = payload + 2;
                event->len = (size_t)payload_len - 2;
            }
            event->type = SIG_WSFRAME_CLOSE_RECEIVED;
            *consumed = off;
            return;
        default:
            break;
        }

        /* a data frame: text is checked from where the calls that saw this frame incomplete stopped (nothing twice) and
         * across the fragments of its message; at the end of the message it must not stop inside a character */
        if (is_text) {
            size_t from = reader->frame_checked;
            reader->frame_checked = 0;
            reader->utf8_state = sig_utf8_feed(reader->utf8_state, (const uint8_t *)payload + from, (size_t)payload_len - from);
            if (reader->utf8_state == SIG_UTF8_REJECT || (fin && reader->utf8_state != SIG_UTF8_ACCEPT))
                FAIL(SIG_WS_CLOSE_INVALID_PAYLOAD, "text is not UTF-8");
        }
        if (fin && opcode != SIG_WSFRAME_CONTINUATION) {
            /* the common case: a whole message in one frame, handed out where it lies */
            event->type = SIG_WSFRAME_MESSAGE;
            event->opcode = opcode;
            event->compressed = compressed;
            event->payload = payload;
            event->len = (size_t)payload_len;
            *consumed = off;
            return;
        }
        if (opcode != SIG_WSFRAME_CONTINUATION) {
            reader->msg_opcode = opcode;
            reader->msg_compressed = compressed;
        }
        sig_buf_append(&reader->msg, payload, (size_t)payload_len);
        if (fin) {
            event->type = SIG_WSFRAME_MESSAGE;
            event->opcode = reader->msg_opcode;
            event->compressed = reader->msg_compressed;
            event->payload = reader->msg.base != NULL ? reader->msg.base : empty;
            event->len = reader->msg.len;
            *consumed = off;
            reader->delivered = reader->msg.base; /* freed on the next call: an idle reader holds nothing */
            reader->msg = (sig_buf_t)SIG_BUF_INIT;
            reader->msg_compressed = 0;
            reader->msg_opcode = 0; /* utf8_state is back to SIG_UTF8_ACCEPT: the text ended valid */
            return;
        }
    }

NeedMore:
    event->type = SIG_WSFRAME_NEED_MORE;
}

void sig_wsframe_reader_dispose(sig_wsframe_reader_t *reader)
{
    sig_buf_dispose(&reader->msg);
    free(reader->delivered);
    reader->delivered = NULL;
    reader->msg_opcode = 0;
    reader->msg_compressed = 0;
    reader->utf8_state = SIG_UTF8_ACCEPT;
    reader->frame_checked = 0;
}
