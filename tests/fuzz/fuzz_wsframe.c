/*
 * fuzz_wsframe.c: libFuzzer target for the WebSocket frame reader (handler/core/sig_wsframe.c).
 *
 * The first input byte sets the reader up: bits 0-2 pick max_message_size from {0, 1, 10, 125, 126, 1000, 65536,
 * SIZE_MAX}, bit 3 is binary_ok, bits 4-7 how the stream is cut (0: all at once, n: chunks of 1..2^n bytes drawn
 * from a generator seeded by the input). The rest is what a client sent. It is read twice, as a connection would:
 * the bytes not consumed are kept, each chunk is appended, sig_wsframe_read() is called until NEED_MORE,
 * CLOSE_RECEIVED or ERROR, and `consumed` bytes are dropped after each event. Once in one chunk, once in the chunks
 * the first byte chose: both must give the same events (type, opcode, code, payload) and leave the same bytes.
 *
 * Each call gets a copy of the kept bytes in a buffer of exactly their size, so ASan sees any read past `len`; what the
 * reader left in it is what is kept (a connection keeps its input buffer).
 * Checks (a failure abort()s, which libFuzzer reports as a crash):
 * - consumed <= len; the bytes past `consumed` are left as they were (unless ERROR: the caller stops then), but for
 *   the payload of the incomplete text frame at the front, unmasked in place as far as reader.frame_checked says;
 * - MESSAGE: opcode TEXT or BINARY (BINARY only with binary_ok), len <= max_message_size, a text is strict UTF-8
 *   (by sig_utf8_feed() and by the independent validator of fuzz_check.h);
 * - PING/PONG: at most 125 bytes; CLOSE_RECEIVED: a code a peer may send (1000-1003, 1007-1011, 3000-4999), or 1005
 *   with no reason; the reason at most 123 bytes of strict UTF-8;
 * - ERROR: code 1002, 1003, 1007 or 1009 with a reason; reader.failed set, and the next call returns ERROR again;
 * - every payload byte is read (ASan: within the input or the reader's own buffer);
 * - the reader holds nothing after sig_wsframe_reader_dispose() (LeakSanitizer).
 * - text fails as soon as its bytes arrive: when the stream (up to 1 KB) ends in ERROR 1007 for text, it is read a
 *   third time, one byte per call; the error must come with the byte that made the text invalid, neither before nor
 *   after. When the failing frame is the first (TEXT) frame of its message this is checked independently: its payload
 *   so far, unmasked here, could still become UTF-8 without that last byte (by the validator of fuzz_check.h, trying
 *   0..3 more continuation bytes) and cannot with it, unless the frame is complete and final (a character cut by
 *   the end of the message).
 * Independently: sig_utf8_feed() agrees with the validator of fuzz_check.h on the raw stream, fed in one call or
 * split at any point; sig_wsframe_encode_header() writes the shortest length form and it decodes back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_wsframe.h"
#include "fuzz_check.h"

static const size_t max_sizes[8] = {0, 1, 10, 125, 126, 1000, 65536, SIZE_MAX};

/* what a run saw: the events, serialised, and the bytes it kept at the end */
struct st_log_t {
    uint8_t *base;
    size_t len, cap;
};

static void log_append(struct st_log_t *log, const void *p, size_t n)
{
    if (log->cap - log->len < n) {
        while (log->cap - log->len < n)
            log->cap = log->cap == 0 ? 256 : log->cap * 2;
        if ((log->base = realloc(log->base, log->cap)) == NULL)
            abort();
    }
    if (n != 0)
        memcpy(log->base + log->len, p, n);
    log->len += n;
}

static int is_peer_close_code(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

/* Checks one event against the contract and logs it. Returns 1 when the caller stops reading. */
static int check_event(sig_wsframe_reader_t *reader, const sig_wsframe_event_t *ev, const char *input, size_t len,
                       struct st_log_t *log)
{
    volatile uint8_t sink = 0;
    uint8_t head[4 + sizeof(uint16_t) + sizeof(size_t)];
    size_t i;

    /* touch every byte: ASan reports a payload that is neither within the input nor in a live buffer */
    if (ev->len != 0) {
        FUZZ_CHECK(ev->payload != NULL, "event with a length but no payload");
        for (i = 0; i != ev->len; ++i)
            sink ^= (uint8_t)ev->payload[i];
        /* in place or in a buffer of its own, never straddling the end of the input */
        if ((const char *)ev->payload >= input && (const char *)ev->payload < input + len)
            FUZZ_CHECK(ev->len <= (size_t)(input + len - ev->payload), "payload runs past the end of the input");
    }
    (void)sink;

    switch (ev->type) {
    case SIG_WSFRAME_NEED_MORE:
        return 0;
    case SIG_WSFRAME_MESSAGE:
        FUZZ_CHECK(ev->opcode == SIG_WSFRAME_TEXT || ev->opcode == SIG_WSFRAME_BINARY, "message opcode not TEXT or BINARY");
        FUZZ_CHECK(ev->opcode == SIG_WSFRAME_TEXT || reader->binary_ok, "binary message without binary_ok");
        FUZZ_CHECK(ev->len <= reader->max_message_size, "message longer than max_message_size");
        if (ev->opcode == SIG_WSFRAME_TEXT) {
            FUZZ_CHECK(sig_utf8_feed(SIG_UTF8_ACCEPT, (const uint8_t *)ev->payload, ev->len) == SIG_UTF8_ACCEPT,
                       "text message is not UTF-8 (sig_utf8_feed)");
            FUZZ_CHECK(fuzz_utf8_valid(ev->payload, ev->len), "text message is not UTF-8 (reference validator)");
        }
        break;
    case SIG_WSFRAME_PING_RECEIVED:
    case SIG_WSFRAME_PONG_RECEIVED:
        FUZZ_CHECK(ev->len <= 125, "control frame payload over 125 bytes");
        break;
    case SIG_WSFRAME_CLOSE_RECEIVED:
        FUZZ_CHECK(is_peer_close_code(ev->code) || (ev->code == 1005 && ev->len == 0), "close code a peer may not send");
        FUZZ_CHECK(ev->len <= 123, "close reason over 123 bytes");
        FUZZ_CHECK(fuzz_utf8_valid(ev->payload, ev->len), "close reason is not UTF-8");
        break;
    case SIG_WSFRAME_ERROR:
        FUZZ_CHECK(ev->code == 1002 || ev->code == 1003 || ev->code == 1007 || ev->code == 1009,
                   "error code not 1002/1003/1007/1009");
        FUZZ_CHECK(ev->reason != NULL && ev->reason[0] != '\0', "error without a reason");
        FUZZ_CHECK(ev->code != 1003 || !reader->binary_ok, "1003 although binary_ok");
        FUZZ_CHECK(reader->failed, "ERROR without reader.failed");
        break;
    default:
        FUZZ_CHECK(0, "unknown event type");
    }

    /* the log: type, opcode, code, length, payload (NEED_MORE is not logged: it depends on the chunks) */
    head[0] = (uint8_t)ev->type;
    head[1] = ev->type == SIG_WSFRAME_MESSAGE ? ev->opcode : 0;
    head[2] = head[3] = 0;
    memcpy(head + 4, ev->type == SIG_WSFRAME_CLOSE_RECEIVED || ev->type == SIG_WSFRAME_ERROR ? &ev->code : &(uint16_t){0},
           sizeof(uint16_t));
    memcpy(head + 4 + sizeof(uint16_t), &ev->len, sizeof(size_t));
    log_append(log, head, sizeof(head));
    log_append(log, ev->payload, ev->len);
    return ev->type == SIG_WSFRAME_CLOSE_RECEIVED || ev->type == SIG_WSFRAME_ERROR;
}

/* The kept bytes `now` after a call, against what they were `before` it: unchanged but for the payload of an
 * incomplete text frame at the front, unmasked in place from where it was (before + header) up to frame_checked. */
static void check_kept(const sig_wsframe_reader_t *reader, const uint8_t *now, const uint8_t *before, size_t len)
{
    size_t hl = 0, i;

    if (reader->frame_checked != 0) {
        FUZZ_CHECK(len >= 2, "frame_checked set without a frame at the front");
        hl = 2 + ((before[1] & 0x7f) == 126 ? 2 : (before[1] & 0x7f) == 127 ? 8 : 0) + 4;
        FUZZ_CHECK(len >= hl + reader->frame_checked, "frame_checked past the bytes kept");
        FUZZ_CHECK(memcmp(now, before, hl) == 0, "the reader changed the header of the frame it keeps");
        for (i = 0; i != reader->frame_checked; ++i)
            FUZZ_CHECK(now[hl + i] == before[hl + i] || now[hl + i] == (before[hl + i] ^ before[hl - 4 + (i & 3)]),
                       "a checked byte is neither as it was nor unmasked");
        hl += reader->frame_checked;
    }
    FUZZ_CHECK(memcmp(now + hl, before + hl, len - hl) == 0, "the reader changed bytes it did not consume");
}

/* the chunk sizes: a xorshift generator, so that a run is a function of the input alone */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* How a run ended: the last event, and for an ERROR the bytes kept when it came (the front of that call's input), as
 * they arrived (masked). */
struct st_end_t {
    sig_wsframe_event_type_t type;
    uint16_t code;
    const char *reason;
    uint8_t *kept;
    size_t kept_len;
};

#define CHUNK_BYTEWISE 16 /* run()'s chunk_bits for one byte per call */

/* Feeds `stream` to a fresh reader as a connection would, in chunks of 1..2^chunk_bits bytes (0: one chunk;
 * CHUNK_BYTEWISE: one byte). `end` (may be NULL) gets how it ended; the caller frees end->kept. */
static void run(uint8_t config, const uint8_t *stream, size_t size, unsigned chunk_bits, uint32_t seed, struct st_log_t *log,
                struct st_end_t *end)
{
    sig_wsframe_reader_t reader;
    sig_wsframe_event_t ev;
    uint8_t *pending = malloc(size + 1);
    size_t pending_len = 0, off = 0, consumed;
    int stopped = 0;

    if (pending == NULL)
        abort();
    memset(&reader, 0, sizeof(reader));
    reader.max_message_size = max_sizes[config & 7];
    reader.binary_ok = (config >> 3) & 1;

    while (off != size && !stopped) {
        size_t chunk = chunk_bits == 0                ? size - off
                       : chunk_bits == CHUNK_BYTEWISE ? 1
                                                      : 1 + next_rand(&seed) % ((size_t)1 << chunk_bits);
        if (chunk > size - off)
            chunk = size - off;
        memcpy(pending + pending_len, stream + off, chunk);
        pending_len += chunk;
        off += chunk;
        for (;;) {
            /* the bytes kept, in a buffer of exactly their size (what the reader reads past `len` is an ASan report) */
            char *input = malloc(pending_len + 1);
            if (input == NULL)
                abort();
            memcpy(input, pending, pending_len);
            consumed = SIZE_MAX;
            sig_wsframe_read(&reader, input, pending_len, &consumed, &ev);
            FUZZ_CHECK(consumed <= pending_len, "consumed more than the input");
            if (ev.type != SIG_WSFRAME_ERROR)
                check_kept(&reader, (const uint8_t *)input + consumed, pending + consumed, pending_len - consumed);
            memcpy(pending, input, pending_len); /* kept as the reader left it */
            stopped = check_event(&reader, &ev, input, pending_len, log);
            if (end != NULL) {
                end->type = ev.type;
                end->code = ev.code;
                end->reason = ev.reason;
                if (ev.type == SIG_WSFRAME_ERROR && (end->kept = malloc(pending_len + 1)) != NULL) {
                    memcpy(end->kept, stream + off - pending_len, pending_len); /* the tail of what came, as it came */
                    end->kept_len = pending_len;
                }
            }
            if (ev.type == SIG_WSFRAME_ERROR) {
                /* an error sticks */
                sig_wsframe_event_t again;
                size_t consumed2 = SIZE_MAX;
                sig_wsframe_read(&reader, input + consumed, pending_len - consumed, &consumed2, &again);
                FUZZ_CHECK(again.type == SIG_WSFRAME_ERROR, "a call after an ERROR did not return ERROR");
                FUZZ_CHECK(consumed2 <= pending_len - consumed, "consumed more than the input after an ERROR");
            }
            free(input);
            memmove(pending, pending + consumed, pending_len - consumed);
            pending_len -= consumed;
            if (ev.type == SIG_WSFRAME_NEED_MORE || stopped)
                break;
        }
    }
    /* what is left: the same whatever the chunks (unless the reader stopped, when the rest is unread) */
    if (!stopped) {
        uint8_t mark = 0xff;
        log_append(log, &mark, 1);
        log_append(log, pending, pending_len);
    }
    free(pending);
    sig_wsframe_reader_dispose(&reader);
    FUZZ_CHECK(reader.msg.base == NULL && reader.delivered == NULL, "dispose left a buffer in the reader");
}

/* 1 if 0..3 more continuation bytes can make `len` bytes at `p` UTF-8 (the reference validator, tried with the bytes
 * that bound every range a continuation byte may have to fall in) */
static int utf8_extendable(const uint8_t *p, size_t len)
{
    static const uint8_t cont[] = {0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf};
    uint8_t *b;
    size_t a, c, d;
    int found = fuzz_utf8_valid((const char *)p, len);

    if (found || (b = malloc(len + 3)) == NULL)
        return found;
    memcpy(b, p, len);
    for (a = 0; a != sizeof(cont) && !found; ++a) {
        b[len] = cont[a];
        found = fuzz_utf8_valid((const char *)b, len + 1);
        for (c = 0; c != sizeof(cont) && !found; ++c) {
            b[len + 1] = cont[c];
            found = fuzz_utf8_valid((const char *)b, len + 2);
            for (d = 0; d != sizeof(cont) && !found; ++d) {
                b[len + 2] = cont[d];
                found = fuzz_utf8_valid((const char *)b, len + 3);
            }
        }
    }
    free(b);
    return found;
}

/* The stream ended in ERROR 1007 for text: read it one byte per call and check that the error came with the byte that
 * made the text invalid (see the top of this file). */
static void check_text_error_prompt(uint8_t config, const uint8_t *stream, size_t size, uint32_t seed)
{
    struct st_log_t log = {NULL, 0, 0};
    struct st_end_t end = {SIG_WSFRAME_NEED_MORE, 0, NULL, NULL, 0};
    const uint8_t *f;
    size_t hl = 2, avail, plen, i;
    uint64_t len;
    uint8_t *text;

    run(config, stream, size, CHUNK_BYTEWISE, seed, &log, &end);
    free(log.base);
    FUZZ_CHECK(end.type == SIG_WSFRAME_ERROR && end.code == 1007, "byte by byte, a text error is not ERROR 1007");
    f = end.kept;
    if (f == NULL || end.kept_len < 2 || (f[0] & 0x0f) != SIG_WSFRAME_TEXT)
        goto Exit; /* a continuation: the message's earlier fragments are not at hand */
    len = f[1] & 0x7f;
    if (len == 126) {
        hl = 4;
        len = end.kept_len >= 4 ? (uint64_t)f[2] << 8 | f[3] : 0;
    } else if (len == 127) {
        hl = 10;
        for (len = 0, i = 2; i != 10 && i < end.kept_len; ++i)
            len = len << 8 | f[i];
    }
    FUZZ_CHECK(end.kept_len > hl + 4, "a text error before any byte of the frame's payload arrived");
    avail = end.kept_len - hl - 4;
    plen = avail < len ? avail : (size_t)len;
    FUZZ_CHECK(avail <= len, "byte by byte, a text error came with a byte past its frame");
    if ((text = malloc(plen)) == NULL)
        abort();
    for (i = 0; i != plen; ++i)
        text[i] = f[hl + 4 + i] ^ f[hl + (i & 3)];
    FUZZ_CHECK(utf8_extendable(text, plen - 1), "a text error after the byte that made the text invalid (late)");
    FUZZ_CHECK(!utf8_extendable(text, plen) || (plen == len && (f[0] & 0x80) != 0 && !fuzz_utf8_valid((char *)text, plen)),
               "a text error with a byte after which the text could still be valid (early)");
    free(text);
Exit:
    free(end.kept);
}

static void check_utf8(const uint8_t *data, size_t size)
{
    int valid = fuzz_utf8_valid((const char *)data, size);
    uint32_t state = sig_utf8_feed(SIG_UTF8_ACCEPT, data, size), split;
    size_t at = size == 0 ? 0 : data[0] % (size + 1);

    FUZZ_CHECK((state == SIG_UTF8_ACCEPT) == valid, "sig_utf8_feed disagrees with the reference validator");
    split = sig_utf8_feed(sig_utf8_feed(SIG_UTF8_ACCEPT, data, at), data + at, size - at);
    FUZZ_CHECK(split == state, "sig_utf8_feed ends in another state when the input is split");
}

static void check_encode(const uint8_t *data, size_t size)
{
    uint8_t h[SIG_WSFRAME_MAX_SERVER_HEADER];
    uint64_t want = 0, got;
    size_t n, i;

    for (i = 0; i != size && i != 8; ++i)
        want = want << 8 | data[i];
    want >>= size != 0 ? data[0] % 64 : 0; /* short lengths too */
    n = sig_wsframe_encode_header(h, size != 0 ? data[0] & 0xf : SIG_WSFRAME_TEXT, want);
    FUZZ_CHECK(n == (want < 126 ? 2 : want < 65536 ? 4 : 10), "encoded header not in the shortest length form");
    FUZZ_CHECK((h[0] & 0xf0) == 0x80 && (h[1] & 0x80) == 0, "encoded header: FIN not alone or mask bit set");
    if (n == 2) {
        got = h[1];
    } else {
        FUZZ_CHECK(h[1] == (n == 4 ? 126 : 127), "encoded header: wrong length marker");
        for (got = 0, i = 2; i != n; ++i)
            got = got << 8 | h[i];
    }
    FUZZ_CHECK(got == want, "encoded length does not decode back");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_log_t whole = {NULL, 0, 0}, chunked = {NULL, 0, 0};
    struct st_end_t end = {SIG_WSFRAME_NEED_MORE, 0, NULL, NULL, 0};
    uint8_t config;
    unsigned chunk_bits;
    uint32_t seed;

    check_utf8(data, size);
    check_encode(data, size);
    if (size == 0)
        return 0;
    config = data[0];
    chunk_bits = config >> 4;
    seed = 0x9e3779b9u ^ (uint32_t)size * 2654435761u ^ config;

    run(config, data + 1, size - 1, 0, seed, &whole, &end);
    if (chunk_bits != 0) {
        run(config, data + 1, size - 1, chunk_bits, seed, &chunked, NULL);
        FUZZ_CHECK(whole.len == chunked.len && memcmp(whole.base, chunked.base, whole.len) == 0,
                   "the events depend on how the stream was cut into chunks");
    }
    if (end.type == SIG_WSFRAME_ERROR && end.code == 1007 && strcmp(end.reason, "text is not UTF-8") == 0 && size - 1 <= 1024)
        check_text_error_prompt(config, data + 1, size - 1, seed);
    free(end.kept);
    free(whole.base);
    free(chunked.base);
    return 0;
}
