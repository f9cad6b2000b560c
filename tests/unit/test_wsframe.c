/*
 * test_wsframe.c: unit tests of handler/core/sig_wsframe.c (TAP): the server frame header, the in-place reader of client
 * frames (RFC 6455 sections 5, 7.4 and 8.1, each violation as its close code), text checked as it arrives, RSV1 with
 * permessage-deflate negotiated (RFC 7692 6.1: compressed messages handed out as they came). The UTF-8 validator itself
 * is tested in test_utf8.c; inflating in test_deflate.c.
 * Client frames are built here and masked with a non-zero key, as a browser does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_wsframe.h"
#include "tap.h"
#include "utf8_reference.h"

#define FIN 0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* the length forms of frame(): the shortest, or forced to the 16-bit or the 64-bit one */
enum { LEN_MIN, LEN_16, LEN_64 };

/*
 * Writes one client frame to `dst`: first byte `b0` (FIN, RSV and opcode), the payload length in the form `len_form`,
 * then (when `masked`) the mask key and the masked payload. Returns its size.
 */
static size_t frame_ex(uint8_t *dst, uint8_t b0, const void *payload, size_t len, int len_form, int masked)
{
    size_t n = 0, i;

    dst[n++] = b0;
    if (len_form == LEN_MIN && len < 126) {
        dst[n++] = (uint8_t)len;
    } else if (len_form != LEN_64 && len < 65536) {
        dst[n++] = 126;
        dst[n++] = (uint8_t)(len >> 8);
        dst[n++] = (uint8_t)len;
    } else {
        dst[n++] = 127;
        for (i = 0; i != 8; ++i)
            dst[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (masked) {
        dst[1] |= 0x80;
        memcpy(dst + n, mask_key, 4);
        n += 4;
    }
    for (i = 0; i != len; ++i)
        dst[n + i] = ((const uint8_t *)payload)[i] ^ (masked ? mask_key[i % 4] : 0);
    return n + len;
}

/* a masked frame with the shortest length */
static size_t frame(uint8_t *dst, uint8_t b0, const void *payload, size_t len)
{
    return frame_ex(dst, b0, payload, len, LEN_MIN, 1);
}

#define NO_BODY (-1)

/* a masked close frame: code (NO_BODY: no body at all), then `reason` of `reason_len` bytes */
static size_t close_frame(uint8_t *dst, int code, const void *reason, size_t reason_len)
{
    uint8_t body[2 + 126]; /* room for the too-long close of test_control() */
    if (code == NO_BODY)
        return frame(dst, FIN | SIG_WSFRAME_CLOSE, "", 0);
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    memcpy(body + 2, reason, reason_len);
    return frame(dst, FIN | SIG_WSFRAME_CLOSE, body, 2 + reason_len);
}

static sig_wsframe_reader_t reader;
static sig_wsframe_event_t ev;
static size_t consumed;
static uint8_t buf[200000], copy[200000], scratch[200000];

static void reset(size_t max_message_size, int binary_ok)
{
    sig_wsframe_reader_dispose(&reader);
    memset(&reader, 0, sizeof(reader));
    reader.max_message_size = max_message_size;
    reader.binary_ok = binary_ok;
}

static void rd(const uint8_t *input, size_t len)
{
    memset(&ev, 0xa5, sizeof(ev));
    ev.payload = NULL;
    ev.reason = NULL;
    consumed = (size_t)-1;
    sig_wsframe_read(&reader, (char *)input, len, &consumed, &ev);
}

static int payload_is(const void *want, size_t want_len)
{
    return ev.len == want_len && (want_len == 0 || (ev.payload != NULL && memcmp(ev.payload, want, want_len) == 0));
}

static int payload_inside(const uint8_t *input, size_t len)
{
    return ev.payload != NULL && (const uint8_t *)ev.payload >= input && (const uint8_t *)ev.payload + ev.len <= input + len;
}

/* After a read of the first `k` bytes of the text frame in `buf` (`hl` bytes of header and key, then `plain` masked; its
 * masked copy in `copy`, `n` bytes in all): the payload that arrived is unmasked in place, nothing else changed. */
static int kept_as_read(size_t k, size_t hl, const void *plain, size_t n)
{
    size_t got = k > hl ? k - hl : 0;
    return memcmp(buf, copy, k < hl ? k : hl) == 0 && memcmp(buf + hl, plain, got) == 0 &&
           memcmp(buf + hl + got, copy + hl + got, n - hl - got) == 0;
}

/* Reads a copy of `len` bytes (the input stays masked for the next check) with a fresh reader (`max`, `binary_ok`) and
 * checks that it fails with `code`. */
static void expect_error(size_t max, int binary_ok, const uint8_t *input, size_t len, unsigned code, const char *what)
{
    reset(max, binary_ok);
    memcpy(scratch, input, len);
    rd(scratch, len);
    if (!ok(ev.type == SIG_WSFRAME_ERROR && ev.code == code && ev.reason != NULL, "%s: ERROR %u", what, code))
        printf("#   got: type %d code %u consumed %zu\n", (int)ev.type, (unsigned)ev.code, consumed);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * A caller: it keeps the bytes not consumed, appends each chunk that arrives, reads until NEED_MORE and records the
 * events as text ("M1:Hello", "P:abc", "C1000:bye", "E1002").
 * -------------------------------------------------------------------------------------------------------------------*/

static char events[4096];

static void stream(const uint8_t *data, size_t len, size_t chunk)
{
    static uint8_t pending[4096];
    size_t pending_len = 0, off = 0, n;
    int done = 0;

    events[0] = '\0';
    while (off != len && !done) {
        n = len - off < chunk ? len - off : chunk;
        memcpy(pending + pending_len, data + off, n);
        pending_len += n;
        off += n;
        for (;;) {
            char one[256];
            rd(pending, pending_len);
            if (consumed > pending_len) {
                strcat(events, "!consumed>len");
                return;
            }
            switch (ev.type) {
            case SIG_WSFRAME_NEED_MORE:
                one[0] = '\0';
                break;
            case SIG_WSFRAME_MESSAGE:
                snprintf(one, sizeof(one), "M%u:%.*s ", ev.opcode, (int)ev.len, ev.payload);
                break;
            case SIG_WSFRAME_PING_RECEIVED:
                snprintf(one, sizeof(one), "P:%.*s ", (int)ev.len, ev.payload);
                break;
            case SIG_WSFRAME_PONG_RECEIVED:
                snprintf(one, sizeof(one), "O ");
                break;
            case SIG_WSFRAME_CLOSE_RECEIVED:
                snprintf(one, sizeof(one), "C%u:%.*s ", ev.code, (int)ev.len, ev.payload);
                done = 1;
                break;
            default:
                snprintf(one, sizeof(one), "E%u ", ev.code);
                done = 1;
                break;
            }
            strcat(events, one);
            memmove(pending, pending + consumed, pending_len - consumed);
            pending_len -= consumed;
            if (ev.type == SIG_WSFRAME_NEED_MORE || done)
                break;
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Header encoding
 * -------------------------------------------------------------------------------------------------------------------*/

static void test_encode(void)
{
    uint8_t h[SIG_WSFRAME_MAX_SERVER_HEADER + 2];
    size_t n;

    memset(h, 0xee, sizeof(h));
    n = sig_wsframe_encode_header(h, SIG_WSFRAME_TEXT, 0);
    ok(n == 2 && h[0] == 0x81 && h[1] == 0x00 && h[2] == 0xee, "encode: text of 0 bytes: 81 00");
    n = sig_wsframe_encode_header(h, SIG_WSFRAME_TEXT, 125);
    ok(n == 2 && h[0] == 0x81 && h[1] == 125, "encode: 125 bytes: 81 7d (7-bit length)");
    n = sig_wsframe_encode_header(h, SIG_WSFRAME_BINARY, 126);
    ok(n == 4 && h[0] == 0x82 && h[1] == 126 && h[2] == 0x00 && h[3] == 126, "encode: binary of 126 bytes: 82 7e 00 7e");
    n = sig_wsframe_encode_header(h, SIG_WSFRAME_TEXT, 65535);
    ok(n == 4 && h[0] == 0x81 && h[1] == 126 && h[2] == 0xff && h[3] == 0xff, "encode: 65535 bytes: 81 7e ff ff");
    memset(h, 0xee, sizeof(h));
    n = sig_wsframe_encode_header(h, SIG_WSFRAME_TEXT, 65536);
    ok(n == 10 && memcmp(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0 && h[10] == 0xee,
       "encode: 65536 bytes: 81 7f and a 64-bit length, 10 bytes");
    n = sig_wsframe_encode_header(h, SIG_WSFRAME_TEXT, 0x0123456789abcdefull);
    ok(n == 10 && memcmp(h, "\x81\x7f\x01\x23\x45\x67\x89\xab\xcd\xef", 10) == 0, "encode: 64-bit length in network order");
    n = sig_wsframe_encode_header(h, SIG_WSFRAME_CLOSE, 2);
    ok(n == 2 && h[0] == 0x88 && h[1] == 2, "encode: close: 88 02");
    n = sig_wsframe_encode_header(h, SIG_WSFRAME_PONG, 4);
    ok(n == 2 && h[0] == 0x8a && h[1] == 4, "encode: pong: 8a 04 (FIN set, no mask bit)");
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Reading
 * -------------------------------------------------------------------------------------------------------------------*/

static void test_single(void)
{
    size_t n, n2, k;
    int all;

    reset(1 << 20, 1);
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "Hello", 5);
    ok(n == 11 && buf[1] == 0x85, "a masked text frame of 5 bytes is 11 bytes");
    rd(buf, n);
    is_int(ev.type, SIG_WSFRAME_MESSAGE, "\"Hello\": MESSAGE");
    is_int(ev.opcode, SIG_WSFRAME_TEXT, "... opcode TEXT");
    ok(payload_is("Hello", 5), "... payload \"Hello\", unmasked");
    is_int(consumed, n, "... consumed the whole frame");
    ok(payload_inside(buf, n), "... the payload points into the input (no copy)");

    /* the next call with nothing */
    rd(buf + n, 0);
    is_int(ev.type, SIG_WSFRAME_NEED_MORE, "no bytes: NEED_MORE");
    is_int(consumed, 0, "... consumed 0");

    /* two frames in one buffer */
    reset(1 << 20, 1);
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "first", 5);
    n2 = frame(buf + n, FIN | SIG_WSFRAME_TEXT, "second!", 7);
    rd(buf, n + n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("first", 5), "two frames: the first call gives the first message");
    is_int(consumed, n, "... and consumes only the first frame");
    rd(buf + n, n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("second!", 7), "... the second call gives the second");
    is_int(consumed, n2, "... and consumes the rest");
    ok(payload_inside(buf + n, n2), "... in place too");

    /* every split of a frame: nothing consumed, nothing changed */
    reset(1 << 20, 1);
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "Hello, world", 12);
    memcpy(copy, buf, n);
    all = 1;
    for (k = 0; k != n; ++k) {
        rd(buf, k);
        all &= ev.type == SIG_WSFRAME_NEED_MORE && consumed == 0 && kept_as_read(k, 6, "Hello, world", n);
    }
    ok(all, "every prefix of a 7-bit-length frame: NEED_MORE, consumed 0, only the text so far unmasked (checked)");
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("Hello, world", 12) && consumed == n, "... then the whole frame parses");

    /* the same with the 16-bit length */
    {
        char big[300];
        for (k = 0; k != sizeof(big); ++k)
            big[k] = (char)('a' + k % 26);
        reset(1 << 20, 1);
        n = frame(buf, FIN | SIG_WSFRAME_TEXT, big, sizeof(big));
        ok(n == 4 + 4 + 300, "a 300-byte frame has the 16-bit length");
        memcpy(copy, buf, n);
        all = 1;
        for (k = 0; k != n; ++k) {
            rd(buf, k);
            all &= ev.type == SIG_WSFRAME_NEED_MORE && consumed == 0 && kept_as_read(k, 8, big, n);
        }
        ok(all, "every prefix of a 16-bit-length frame: NEED_MORE, consumed 0, only the text so far unmasked");
        rd(buf, n);
        ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is(big, sizeof(big)) && consumed == n, "... then the whole frame parses");
    }

    /* and the 64-bit one (the header's prefixes and a few payload prefixes) */
    {
        static char huge[70000];
        for (k = 0; k != sizeof(huge); ++k)
            huge[k] = (char)('A' + k % 26);
        reset(1 << 20, 1);
        n = frame(buf, FIN | SIG_WSFRAME_TEXT, huge, sizeof(huge));
        ok(n == 2 + 8 + 4 + sizeof(huge), "a 70000-byte frame has the 64-bit length");
        memcpy(copy, buf, n);
        all = 1;
        for (k = 0; k != 20; ++k) {
            rd(buf, k);
            all &= ev.type == SIG_WSFRAME_NEED_MORE && consumed == 0 && kept_as_read(k, 14, huge, n);
        }
        rd(buf, n - 1);
        all &= ev.type == SIG_WSFRAME_NEED_MORE && consumed == 0 && kept_as_read(n - 1, 14, huge, n);
        ok(all, "prefixes of a 64-bit-length frame: NEED_MORE, consumed 0, only the text so far unmasked");
        rd(buf, n);
        ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is(huge, sizeof(huge)) && consumed == n && payload_inside(buf, n),
           "... then the whole 70000 bytes parse, in place");
    }

    /* empty */
    reset(1 << 20, 1);
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "", 0);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.opcode == SIG_WSFRAME_TEXT && ev.len == 0 && consumed == n,
       "an empty text frame: MESSAGE of 0 bytes");

    /* binary */
    reset(1 << 20, 1);
    n = frame(buf, FIN | SIG_WSFRAME_BINARY, "\x00\xff\xc0\x80", 4);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.opcode == SIG_WSFRAME_BINARY && payload_is("\x00\xff\xc0\x80", 4) && consumed == n,
       "binary frame (not UTF-8) with binary_ok: MESSAGE, opcode BINARY");
    expect_error(1 << 20, 0, buf, n, 1003, "binary frame without binary_ok");
}

static void test_control(void)
{
    size_t n;
    char body[125];

    memset(body, 'p', sizeof(body));
    reset(1 << 20, 1);
    n = frame(buf, FIN | SIG_WSFRAME_PING, "ping!", 5);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_PING_RECEIVED && payload_is("ping!", 5) && consumed == n && payload_inside(buf, n),
       "ping: PING_RECEIVED with its payload, in place");
    n = frame(buf, FIN | SIG_WSFRAME_PING, "", 0);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_PING_RECEIVED && ev.len == 0 && consumed == n, "empty ping: PING_RECEIVED, len 0");
    n = frame(buf, FIN | SIG_WSFRAME_PING, body, 125);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_PING_RECEIVED && payload_is(body, 125), "ping of 125 bytes (the most): PING_RECEIVED");
    n = frame(buf, FIN | SIG_WSFRAME_PONG, "x", 1);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_PONG_RECEIVED && consumed == n, "pong: PONG_RECEIVED");

    /* the size limit is for messages, not control frames */
    reset(10, 1);
    n = frame(buf, FIN | SIG_WSFRAME_PING, body, 20);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_PING_RECEIVED && payload_is(body, 20), "max_message_size 10: a 20-byte ping still passes");

    /* close */
    reset(1 << 20, 1);
    n = close_frame(buf, NO_BODY, "", 0);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_CLOSE_RECEIVED && ev.code == 1005 && ev.len == 0 && consumed == n,
       "close without a body: CLOSE_RECEIVED, code 1005, no reason");
    reset(1 << 20, 1);
    n = close_frame(buf, 1000, "bye", 3);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_CLOSE_RECEIVED && ev.code == 1000 && payload_is("bye", 3) && consumed == n,
       "close 1000 \"bye\": CLOSE_RECEIVED, code 1000, reason \"bye\"");
    reset(1 << 20, 1);
    n = close_frame(buf, 1001, "", 0);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_CLOSE_RECEIVED && ev.code == 1001 && ev.len == 0, "close 1001 with no reason: len 0");
    reset(1 << 20, 1);
    n = close_frame(buf, 1000, "\xc3\xa9t\xc3\xa9", 5);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_CLOSE_RECEIVED && payload_is("\xc3\xa9t\xc3\xa9", 5), "close with a UTF-8 reason \"été\"");
    reset(1 << 20, 1);
    n = close_frame(buf, 1000, body, 123);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_CLOSE_RECEIVED && payload_is(body, 123), "close with a 123-byte reason (125-byte body)");
    {
        static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999};
        static const unsigned invalid[] = {0, 1, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 2000, 2999, 5000, 65535};
        size_t i;
        for (i = 0; i != sizeof(valid) / sizeof(valid[0]); ++i) {
            reset(1 << 20, 1);
            n = close_frame(buf, (int)valid[i], "", 0);
            rd(buf, n);
            ok(ev.type == SIG_WSFRAME_CLOSE_RECEIVED && ev.code == valid[i], "close code %u is valid", valid[i]);
        }
        for (i = 0; i != sizeof(invalid) / sizeof(invalid[0]); ++i) {
            char what[64];
            n = close_frame(buf, (int)invalid[i], "", 0);
            snprintf(what, sizeof(what), "close code %u", invalid[i]);
            expect_error(1 << 20, 1, buf, n, 1002, what);
        }
    }
    n = frame(buf, FIN | SIG_WSFRAME_CLOSE, "\x03", 1);
    expect_error(1 << 20, 1, buf, n, 1002, "close with a 1-byte body");
    n = close_frame(buf, 1000, "\xc0\xaf", 2);
    expect_error(1 << 20, 1, buf, n, 1007, "close reason C0 AF (not UTF-8)");
    n = close_frame(buf, 1000, "ab\xe2\x82", 4);
    expect_error(1 << 20, 1, buf, n, 1007, "close reason ending in a truncated sequence");

    /* control frames must be final and short */
    n = frame(buf, SIG_WSFRAME_PING, "x", 1);
    expect_error(1 << 20, 1, buf, n, 1002, "ping with FIN=0");
    n = frame(buf, SIG_WSFRAME_CLOSE, "\x03\xe8", 2);
    expect_error(1 << 20, 1, buf, n, 1002, "close with FIN=0");
    n = frame(buf, SIG_WSFRAME_PONG, "", 0);
    expect_error(1 << 20, 1, buf, n, 1002, "pong with FIN=0");
    {
        char big[126];
        memset(big, 'q', sizeof(big));
        n = frame(buf, FIN | SIG_WSFRAME_PING, big, 126);
        expect_error(1 << 20, 1, buf, n, 1002, "ping of 126 bytes (16-bit length)");
        expect_error(1 << 20, 1, buf, 4 + 4, 1002, "ping of 126 bytes, only its header arrived");
        n = frame_ex(buf, FIN | SIG_WSFRAME_PONG, "abc", 3, LEN_16, 1);
        expect_error(1 << 20, 1, buf, n, 1002, "pong of 3 bytes in the 16-bit length form");
        n = close_frame(buf, 1000, big, 124);
        expect_error(1 << 20, 1, buf, n, 1002, "close of 126 bytes");
    }
}

static void test_fragments(void)
{
    size_t n1, n2, n3, total, c1, chunk;
    int all;
    uint8_t *p;

    /* "Hel" + "lo" in one buffer */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "Hel", 3);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, "lo", 2);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.opcode == SIG_WSFRAME_TEXT && payload_is("Hello", 5),
       "\"Hel\" (TEXT, FIN=0) + \"lo\" (CONT, FIN=1): one MESSAGE \"Hello\", opcode TEXT");
    is_int(consumed, n1 + n2, "... consumed both frames");
    rd(buf + n1 + n2, 0);
    ok(ev.type == SIG_WSFRAME_NEED_MORE && consumed == 0, "... then NEED_MORE (and the gathered message is freed)");

    /* a ping between the fragments */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "Hel", 3);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_PING, "pp", 2);
    n3 = frame(buf + n1 + n2, FIN | SIG_WSFRAME_CONTINUATION, "lo", 2);
    total = n1 + n2 + n3;
    memcpy(copy, buf, total);
    rd(buf, total);
    ok(ev.type == SIG_WSFRAME_PING_RECEIVED && payload_is("pp", 2),
       "fragment, ping, fragment: PING_RECEIVED first, payload intact");
    is_int(consumed, n1 + n2, "... consumed the first fragment and the ping");
    c1 = consumed;
    rd(buf + c1, total - c1);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("Hello", 5), "... then the MESSAGE \"Hello\"");
    is_int(c1 + consumed, total, "... the consumed counts add up to the whole buffer");

    /* the same, one byte (and every chunk size) at a time, as a caller would see them arrive */
    all = 1;
    for (chunk = 1; chunk <= total; ++chunk) {
        reset(1 << 20, 1);
        stream(copy, total, chunk);
        if (strcmp(events, "P:pp M1:Hello ") != 0) {
            printf("#   chunk %zu: %s\n", chunk, events);
            all = 0;
        }
    }
    ok(all, "fragment, ping, fragment arriving in chunks of every size: P:pp then M1:Hello");

    /* the fragments in separate calls: the first is absorbed, the caller drops it */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "Hel", 3);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, "lo", 2);
    rd(buf, n1);
    ok(ev.type == SIG_WSFRAME_NEED_MORE && consumed == n1, "first fragment alone: NEED_MORE, consumed its length");
    rd(buf + n1, n2 - 1);
    ok(ev.type == SIG_WSFRAME_NEED_MORE && consumed == 0, "... part of the second: NEED_MORE, consumed 0");
    p = malloc(n2); /* the first fragment's bytes are gone: the caller reuses its buffer */
    memcpy(p, buf + n1, n2);
    memset(buf, 0xee, n1 + n2);
    rd(p, n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("Hello", 5) && consumed == n2,
       "... the rest in a new buffer: MESSAGE \"Hello\" (the first fragment was kept)");
    free(p);

    /* three fragments, binary */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_BINARY, "\x01\xff", 2);
    n2 = frame(buf + n1, SIG_WSFRAME_CONTINUATION, "\x80", 1);
    n3 = frame(buf + n1 + n2, FIN | SIG_WSFRAME_CONTINUATION, "\x00\xc0", 2);
    rd(buf, n1 + n2 + n3);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.opcode == SIG_WSFRAME_BINARY && payload_is("\x01\xff\x80\x00\xc0", 5) &&
           consumed == n1 + n2 + n3,
       "binary in three fragments: one MESSAGE, opcode BINARY, 5 bytes");
    n1 = frame(buf, SIG_WSFRAME_BINARY, "\x01", 1);
    expect_error(1 << 20, 0, buf, n1, 1003, "first fragment of a binary message without binary_ok");

    /* empty fragments */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "", 0);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, "", 0);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.opcode == SIG_WSFRAME_TEXT && ev.len == 0 && consumed == n1 + n2,
       "empty fragmented message (TEXT FIN=0 + CONT FIN=1, no bytes): MESSAGE of 0 bytes");
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "ab", 2);
    n2 = frame(buf + n1, SIG_WSFRAME_CONTINUATION, "", 0);
    n3 = frame(buf + n1 + n2, FIN | SIG_WSFRAME_CONTINUATION, "", 0);
    rd(buf, n1 + n2 + n3);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("ab", 2), "\"ab\" + empty + empty final: MESSAGE \"ab\"");

    /* control frames between fragments: pong and close */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "a", 1);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_PONG, "", 0);
    n3 = frame(buf + n1 + n2, FIN | SIG_WSFRAME_CONTINUATION, "b", 1);
    rd(buf, n1 + n2 + n3);
    ok(ev.type == SIG_WSFRAME_PONG_RECEIVED && consumed == n1 + n2, "a pong between fragments: PONG_RECEIVED");
    rd(buf + n1 + n2, n3);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("ab", 2), "... then the message");
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "abc", 3);
    n2 = close_frame(buf + n1, 1001, "gone", 4);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_CLOSE_RECEIVED && ev.code == 1001 && payload_is("gone", 4),
       "a close in the middle of a fragmented message: CLOSE_RECEIVED");
    /* the message in progress stays in the reader: dispose must free it (ASan/valgrind see a leak otherwise) */
    sig_wsframe_reader_dispose(&reader);
    ok(reader.msg.base == NULL && reader.msg_opcode == 0, "dispose frees the message in progress and forgets it");
    n1 = frame(buf, FIN | SIG_WSFRAME_TEXT, "new", 3);
    rd(buf, n1);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("new", 3), "... and the reader starts again between messages");

    /* a gathered message handed out, then disposed without another read */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "Hel", 3);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, "lo", 2);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("Hello", 5), "a gathered message, then dispose with no further read");
    sig_wsframe_reader_dispose(&reader);
    ok(reader.msg.base == NULL && reader.delivered == NULL, "... dispose frees the delivered buffer");

    /* a long fragmented message: many fragments, the buffer grows */
    {
        static char want[5000];
        size_t i, off = 0;
        reset(1 << 20, 1);
        for (i = 0; i != 50; ++i) {
            char part[100];
            memset(part, 'a' + (int)(i % 26), sizeof(part));
            memcpy(want + i * 100, part, 100);
            off += frame(buf + off, (i == 0 ? SIG_WSFRAME_TEXT : SIG_WSFRAME_CONTINUATION) | (i == 49 ? FIN : 0), part, 100);
        }
        rd(buf, off);
        ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is(want, 5000) && consumed == off,
           "50 fragments of 100 bytes: one MESSAGE of 5000");
    }

    /* stray and missing continuations */
    n1 = frame(buf, FIN | SIG_WSFRAME_CONTINUATION, "x", 1);
    expect_error(1 << 20, 1, buf, n1, 1002, "continuation with no message in progress");
    n1 = frame(buf, SIG_WSFRAME_CONTINUATION, "x", 1);
    expect_error(1 << 20, 1, buf, n1, 1002, "non-final continuation with no message in progress");
    n1 = frame(buf, SIG_WSFRAME_TEXT, "a", 1);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_TEXT, "b", 1);
    expect_error(1 << 20, 1, buf, n1 + n2, 1002, "a new TEXT frame while a fragmented message is in progress");
    n1 = frame(buf, SIG_WSFRAME_TEXT, "a", 1);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_BINARY, "b", 1);
    expect_error(1 << 20, 1, buf, n1 + n2, 1002, "a new BINARY frame while a fragmented text message is in progress");
    /* ... also when the first fragment came in an earlier call */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "a", 1);
    rd(buf, n1);
    n2 = frame(buf, FIN | SIG_WSFRAME_TEXT, "b", 1);
    rd(buf, n2);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1002,
       "a new TEXT frame after a first fragment read in an earlier call: ERROR 1002");
}

static void test_utf8_frames(void)
{
    size_t n1, n2;

    /* é = C3 A9 split between two fragments */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "caf\xc3", 4);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, "\xa9!", 2);
    rd(buf, n1);
    ok(ev.type == SIG_WSFRAME_NEED_MORE && consumed == n1, "\"caf\" + C3 in a first fragment: accepted so far");
    rd(buf + n1, n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("caf\xc3\xa9!", 6), "... A9 \"!\" completes it: MESSAGE \"café!\"");
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "\xf0\x9f", 2);
    n2 = frame(buf + n1, SIG_WSFRAME_CONTINUATION, "\x98", 1);
    n2 += frame(buf + n1 + n2, FIN | SIG_WSFRAME_CONTINUATION, "\x80", 1);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("\xf0\x9f\x98\x80", 4), "an emoji split over three fragments: accepted");

    /* fail fast: a bad first fragment fails before the last arrives */
    n1 = frame(buf, SIG_WSFRAME_TEXT, "ok\xff", 3);
    expect_error(1 << 20, 1, buf, n1, 1007, "FF in the first fragment, no final fragment yet");
    n1 = frame(buf, SIG_WSFRAME_TEXT, "\xed\xa0", 2);
    expect_error(1 << 20, 1, buf, n1, 1007, "ED A0 (a surrogate's start) ending a first fragment");
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "fine", 4);
    n2 = frame(buf + n1, SIG_WSFRAME_CONTINUATION, "\xc0\xaf", 2);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1007, "a bad middle fragment: ERROR 1007 before the end");

    /* complete frames */
    n1 = frame(buf, FIN | SIG_WSFRAME_TEXT, "\xc0\xaf", 2);
    expect_error(1 << 20, 1, buf, n1, 1007, "text C0 AF (overlong)");
    n1 = frame(buf, FIN | SIG_WSFRAME_TEXT, "a\xed\xa0\x80z", 5);
    expect_error(1 << 20, 1, buf, n1, 1007, "text with ED A0 80 (surrogate)");
    n1 = frame(buf, FIN | SIG_WSFRAME_TEXT, "\xf4\x90\x80\x80", 4);
    expect_error(1 << 20, 1, buf, n1, 1007, "text F4 90 80 80 (past U+10FFFF)");
    n1 = frame(buf, FIN | SIG_WSFRAME_TEXT, "abc\xe2\x82", 5);
    expect_error(1 << 20, 1, buf, n1, 1007, "text ending in a truncated sequence (E2 82)");
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "abc", 3);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, "\xc3", 1);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1007, "a final fragment ending in a truncated sequence: ERROR 1007");
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "\xc3", 1);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, "", 0);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1007, "C3 then an empty final fragment: ERROR 1007");
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "\xc3", 1);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_PING, "", 0);
    n2 += frame(buf + n1 + n2, FIN | SIG_WSFRAME_CONTINUATION, "\xa9", 1);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_PING_RECEIVED, "C3, a ping, then A9: the ping");
    rd(buf + consumed, n1 + n2 - consumed);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("\xc3\xa9", 2), "... then \"é\" (the state survives the control frame)");

    /* a new message starts with a fresh state */
    reset(1 << 20, 1);
    n1 = frame(buf, FIN | SIG_WSFRAME_BINARY, "\xc3", 1);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_TEXT, "ok", 2);
    rd(buf, n1 + n2);
    rd(buf + n1, n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("ok", 2), "a binary C3 does not leave the text decoder mid-sequence");
}

/* Text checked as it arrives: a frame whose payload has partly arrived fails as soon as bad bytes are in, without
 * waiting for the rest; what was checked is left masked in the input and not checked again. */
static void test_partial_frames(void)
{
    static const char text[] = "{\"type\":\"dialing\",\"receiverUserId\":\"\xe7\x94\xa8\xe6\x88\xb7\xf0\x9f\x98\x80\"}";
    size_t n, n1, n2, i, cut, bad;
    uint8_t bytes[1800];

    /* the proof of issue 15: header and a valid half, then FF, with 20 bytes of the frame still to come */
    reset(1 << 20, 1);
    memcpy(bytes, "hello, world", 12);
    memset(bytes + 12, 'x', 30);
    bytes[12] = 0xff;
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, bytes, 42);
    memcpy(copy, buf, n);
    rd(buf, 2 + 4 + 12);
    ok(ev.type == SIG_WSFRAME_NEED_MORE && consumed == 0, "partial frame: header + 12 valid bytes: NEED_MORE");
    ok(memcmp(buf, copy, 6) == 0 && memcmp(buf + 6, "hello, world", 12) == 0 && memcmp(buf + 18, copy + 18, n - 18) == 0,
       "... the 12 bytes unmasked in place, the header and the rest left as they were");
    rd(buf, 2 + 4 + 12 + 3);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1007 && consumed == 0,
       "... then FF arrives, 27 bytes of the frame still missing: ERROR 1007 at once");
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1007, "... and it sticks when the rest comes");

    /* the same in a continuation frame of a fragmented message whose final fragment never comes */
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "{\"a\":\"", 6);
    n2 = frame(buf + n1, SIG_WSFRAME_CONTINUATION, "ok\xc0\xafmore", 8);
    rd(buf, n1 + n2 - 6);
    ok(ev.type == SIG_WSFRAME_NEED_MORE && consumed == n1, "first fragment, then 2 bytes of a continuation: NEED_MORE");
    rd(buf + n1, n2 - 6 + 1);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1007, "... C0 of the continuation arrives: ERROR 1007 (C0 never starts UTF-8)");
    reset(1 << 20, 1);
    n2 = frame(buf + n1, SIG_WSFRAME_CONTINUATION, "\xed\xa0\x80", 3);
    rd(buf, n1);
    rd(buf + n1, n2 - 1);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1007, "a continuation's ED A0 (a surrogate) fails before its third byte");

    /* a character cut between two reads of one frame, at every point: accepted, and unmasked right */
    for (cut = 0, bad = 0; cut < sizeof(text) - 1; ++cut) {
        reset(1 << 20, 1);
        n = frame(buf, FIN | SIG_WSFRAME_TEXT, text, sizeof(text) - 1);
        rd(buf, 2 + 4 + cut);
        bad += ev.type != SIG_WSFRAME_NEED_MORE;
        rd(buf, n);
        bad += !(ev.type == SIG_WSFRAME_MESSAGE && payload_is(text, sizeof(text) - 1) && consumed == n);
    }
    is_int(bad, 0, "a text with 3- and 4-byte characters, cut in two reads at every byte: NEED_MORE, then the message");
    reset(1 << 20, 1);
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "ab\xe2\x82", 4);
    rd(buf, n - 1);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1007, "a final frame ending inside a character: ERROR only once it is complete");
    reset(1 << 20, 1);
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "ab\xe2\x82\xac", 5);
    rd(buf, n - 1);
    ok(ev.type == SIG_WSFRAME_NEED_MORE, "\"ab\" E2 82 of a 5-byte frame: NEED_MORE (the euro sign may still complete)");
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("ab\xe2\x82\xac", 5),
       "... AC completes it: the bytes checked before are not checked again from the start");

    /* in reads of 1 to 39 bytes and of more than the 512-byte block the unchecked part is unmasked into */
    for (i = 0; i != sizeof(bytes); ++i)
        bytes[i] = (uint8_t)("a\xc3\xa9\xe2\x82\xac"[i % 6]);
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, bytes, 302); /* ends inside é */
    n1 += frame(buf + n1, SIG_WSFRAME_CONTINUATION, bytes + 302, sizeof(bytes) - 302);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, "!", 1);
    memcpy(copy, buf, n1 + n2);
    stream(copy, n1 + n2, n1 + n2);
    {
        static const size_t big[] = {600, 1000, 1500};
        char whole[sizeof(events)];
        strcpy(whole, events);
        for (i = 1, bad = 0; i != 40 + 3; ++i) {
            memcpy(copy, buf, n1 + n2);
            reset(1 << 20, 1);
            stream(copy, n1 + n2, i < 40 ? i : big[i - 40]);
            bad += strcmp(events, whole) != 0;
        }
        ok(whole[0] == 'M' && bad == 0,
           "1801 bytes of mixed text in 3 fragments, read 1..39, 600, 1000, 1500 bytes at a time: the same message");
    }

    /* binary is not checked, whole or partial; a ping between fragments keeps the text's state */
    reset(1 << 20, 1);
    n = frame(buf, FIN | SIG_WSFRAME_BINARY, "\xff\xfe\xfd\xfc", 4);
    memcpy(copy, buf, n);
    rd(buf, n - 1);
    ok(ev.type == SIG_WSFRAME_NEED_MORE && memcmp(buf, copy, n) == 0, "a partial binary frame of FF FE FD: NEED_MORE, left masked");
    reset(1 << 20, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, "\xe2", 1);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_PING, "p", 1);
    n2 += frame(buf + n1 + n2, FIN | SIG_WSFRAME_CONTINUATION, "\x82\xac", 2);
    rd(buf, n1 + n2 - 1);
    ok(ev.type == SIG_WSFRAME_PING_RECEIVED, "E2, a ping, then half of the final fragment: the ping");
    i = consumed;
    rd(buf + i, n1 + n2 - 1 - i);
    ok(ev.type == SIG_WSFRAME_NEED_MORE && consumed == 0, "... 82 of the final fragment: NEED_MORE");
    rd(buf + i, n1 + n2 - i);
    ok(ev.type == SIG_WSFRAME_MESSAGE && payload_is("\xe2\x82\xac", 3), "... AC: the euro sign, across a fragment, a ping and two reads");
}

static void test_errors(void)
{
    size_t n;
    unsigned op;
    uint8_t h[16];
    char what[64];

    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_TEXT, "a", 1);
    expect_error(1 << 20, 1, buf, n, 1002, "RSV1 set (no extension negotiated)");
    n = frame(buf, FIN | RSV2 | SIG_WSFRAME_TEXT, "a", 1);
    expect_error(1 << 20, 1, buf, n, 1002, "RSV2 set");
    n = frame(buf, FIN | RSV3 | SIG_WSFRAME_TEXT, "a", 1);
    expect_error(1 << 20, 1, buf, n, 1002, "RSV3 set");
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_PING, "a", 1);
    expect_error(1 << 20, 1, buf, n, 1002, "RSV1 on a ping");
    for (op = 3; op != 16; ++op) {
        if (op >= 8 && op <= 0xa)
            continue;
        n = frame(buf, FIN | op, "a", 1);
        snprintf(what, sizeof(what), "reserved opcode 0x%X", op);
        expect_error(1 << 20, 1, buf, n, 1002, what);
    }
    n = frame_ex(buf, FIN | SIG_WSFRAME_TEXT, "abc", 3, LEN_MIN, 0);
    expect_error(1 << 20, 1, buf, n, 1002, "unmasked text frame");
    n = frame_ex(buf, FIN | SIG_WSFRAME_PING, "", 0, LEN_MIN, 0);
    expect_error(1 << 20, 1, buf, n, 1002, "unmasked ping");
    n = frame_ex(buf, FIN | SIG_WSFRAME_TEXT, "abcdef", 6, LEN_MIN, 0);
    expect_error(1 << 20, 1, buf, 2, 1002, "unmasked text frame, only its (2-byte) header arrived");

    /* errors known from the header, before the payload arrives */
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_TEXT, "abcdef", 6);
    expect_error(1 << 20, 1, buf, 6, 1002, "RSV1 set, only the header arrived");
    n = frame(buf, FIN | 0x3, "abcdef", 6);
    expect_error(1 << 20, 1, buf, 6, 1002, "reserved opcode 3, only the header arrived");

    /* lengths */
    n = frame_ex(buf, FIN | SIG_WSFRAME_TEXT, "abc", 3, LEN_16, 1);
    expect_error(1 << 20, 1, buf, n, 1002, "16-bit length form for 3 bytes (non-minimal)");
    {
        static char s[200];
        memset(s, 'z', sizeof(s));
        n = frame_ex(buf, FIN | SIG_WSFRAME_TEXT, s, 125, LEN_16, 1);
        expect_error(1 << 20, 1, buf, n, 1002, "16-bit length form for 125 bytes (non-minimal)");
        n = frame_ex(buf, FIN | SIG_WSFRAME_TEXT, s, 126, LEN_16, 1);
        reset(1 << 20, 1);
        rd(buf, n);
        ok(ev.type == SIG_WSFRAME_MESSAGE && ev.len == 126, "16-bit length form for 126 bytes: fine");
        n = frame_ex(buf, FIN | SIG_WSFRAME_TEXT, s, 3, LEN_64, 1);
        expect_error(1 << 20, 1, buf, n, 1002, "64-bit length form for 3 bytes (non-minimal)");
        n = frame_ex(buf, FIN | SIG_WSFRAME_TEXT, s, 200, LEN_64, 1);
        expect_error(1 << 20, 1, buf, n, 1002, "64-bit length form for 200 bytes (non-minimal)");
    }
    {
        static char s[65536];
        memset(s, 'z', sizeof(s));
        n = frame_ex(buf, FIN | SIG_WSFRAME_TEXT, s, 65535, LEN_64, 1);
        expect_error(1 << 20, 1, buf, n, 1002, "64-bit length form for 65535 bytes (non-minimal)");
        expect_error(1 << 20, 1, buf, 14, 1002, "... known from the header alone");
        n = frame_ex(buf, FIN | SIG_WSFRAME_TEXT, s, 65536, LEN_64, 1);
        reset(1 << 20, 1);
        rd(buf, n);
        ok(ev.type == SIG_WSFRAME_MESSAGE && ev.len == 65536, "64-bit length form for 65536 bytes: fine");
    }
    memcpy(h, "\x81\xff\x80\x00\x00\x00\x00\x00\x00\x05", 10);
    memcpy(h + 10, mask_key, 4);
    expect_error((size_t)-1, 1, h, 14, 1002, "64-bit length with its most significant bit set (no size limit)");
    expect_error(1 << 20, 1, h, 14, 1002, "64-bit length with its most significant bit set (1 MiB limit)");
    memcpy(h, "\x81\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10);
    expect_error((size_t)-1, 1, h, 14, 1002, "64-bit length of all ones");

    /* after an error, nothing more */
    reset(1 << 20, 1);
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_TEXT, "a", 1);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && reader.failed, "an error sets reader.failed");
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "fine", 4);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.reason != NULL, "a valid frame after an error: ERROR again");
    rd(buf, 0);
    ok(ev.type == SIG_WSFRAME_ERROR, "an empty read after an error: ERROR again");
    is_int(consumed, 0, "... consuming nothing of nothing");
    /* an error with a fragmented message in progress: dispose frees it */
    reset(1 << 20, 1);
    n = frame(buf, SIG_WSFRAME_TEXT, "partial", 7);
    n += frame(buf + n, SIG_WSFRAME_CONTINUATION | RSV2, "x", 1);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1002, "an error in the middle of a fragmented message (freed by dispose)");
}

static void test_limits(void)
{
    size_t n1, n2;
    char s[64];

    memset(s, 'x', sizeof(s));
    reset(10, 1);
    n1 = frame(buf, FIN | SIG_WSFRAME_TEXT, s, 10);
    rd(buf, n1);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.len == 10, "max 10: a 10-byte message passes");
    n1 = frame(buf, FIN | SIG_WSFRAME_TEXT, s, 11);
    expect_error(10, 1, buf, n1, 1009, "max 10: an 11-byte frame");
    expect_error(10, 1, buf, 6, 1009, "max 10: an 11-byte frame, only its header arrived");
    n1 = frame(buf, FIN | SIG_WSFRAME_BINARY, s, 11);
    expect_error(10, 1, buf, n1, 1009, "max 10: an 11-byte binary frame");
    {
        static char big[70000];
        n1 = frame(buf, FIN | SIG_WSFRAME_TEXT, big, 70000);
        expect_error(65536, 1, buf, 14, 1009, "max 65536: the header of a 70000-byte frame");
        n1 = frame(buf, FIN | SIG_WSFRAME_TEXT, big, 300);
        expect_error(200, 1, buf, 8, 1009, "max 200: the header of a 300-byte frame (16-bit length)");
    }

    /* fragments */
    reset(10, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, s, 6);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, s, 4);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.len == 10, "max 10: fragments of 6 + 4 bytes pass");
    n1 = frame(buf, SIG_WSFRAME_TEXT, s, 6);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, s, 5);
    expect_error(10, 1, buf, n1 + n2, 1009, "max 10: fragments of 6 + 5 bytes");
    expect_error(10, 1, buf, n1 + 6, 1009, "max 10: fragments of 6 + 5 bytes, only the second's header arrived");
    n1 = frame(buf, SIG_WSFRAME_TEXT, s, 6);
    n2 = frame(buf + n1, SIG_WSFRAME_CONTINUATION, s, 5);
    expect_error(10, 1, buf, n1 + n2, 1009, "max 10: non-final fragments of 6 + 5 bytes");
    reset(10, 1);
    n1 = frame(buf, SIG_WSFRAME_TEXT, s, 6);
    rd(buf, n1);
    n2 = frame(buf, FIN | SIG_WSFRAME_CONTINUATION, s, 5);
    rd(buf, n2);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1009, "max 10: 6 bytes, then 5 more in another call: ERROR 1009");
    n1 = frame(buf, SIG_WSFRAME_TEXT, s, 11);
    expect_error(10, 1, buf, n1, 1009, "max 10: a first fragment of 11 bytes");
}

/* permessage-deflate negotiated (deflate_ok): RSV1 marks the first frame of a compressed message, whose bytes are handed
 * out as they came (not checked as UTF-8: they are not text yet); RSV1 anywhere else is 1002 (RFC 7692 6.1) */
static void test_compressed(void)
{
    static const uint8_t z[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}; /* "Hello" (RFC 7692 7.2.3.1): not UTF-8 */
    size_t n, n1, n2, max = 1000, wire_max = 1000 + 1000 / 8 + 64;
    uint8_t *big = malloc(wire_max + 1);

    reset(1 << 20, 1);
    reader.deflate_ok = 1;
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_TEXT, z, sizeof(z));
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.opcode == SIG_WSFRAME_TEXT && ev.compressed == 1 && payload_is(z, sizeof(z)) &&
           payload_inside(buf, n) && consumed == n,
       "RSV1 text: a compressed message, its bytes in place, not checked as UTF-8");
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "plain", 5);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.compressed == 0 && payload_is("plain", 5), "then a plain text: not compressed");
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_BINARY, z, sizeof(z));
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.opcode == SIG_WSFRAME_BINARY && ev.compressed == 1 && payload_is(z, sizeof(z)),
       "RSV1 binary: a compressed binary message");
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "\xc3\x28", 2);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1007, "a plain text on the same connection is still checked: 1007");

    /* fragmented: RSV1 on the first fragment only, the fragments gathered, a ping between them */
    reset(1 << 20, 1);
    reader.deflate_ok = 1;
    n1 = frame(buf, RSV1 | SIG_WSFRAME_TEXT, z, 3);
    n1 += frame(buf + n1, FIN | SIG_WSFRAME_PING, "p", 1);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, z + 3, sizeof(z) - 3);
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_PING_RECEIVED, "a ping between the fragments of a compressed message");
    rd(buf + consumed, n1 + n2 - consumed);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.compressed == 1 && ev.opcode == SIG_WSFRAME_TEXT && payload_is(z, sizeof(z)),
       "fragments of a compressed message: gathered, compressed");
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, "x", 1);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.compressed == 0, "the next message is plain again");
    n = frame(buf, SIG_WSFRAME_TEXT, "a", 1);
    n += frame(buf + n, FIN | SIG_WSFRAME_CONTINUATION, "b", 1);
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.compressed == 0 && payload_is("ab", 2), "a plain fragmented message: not compressed");

    /* an incomplete compressed frame is not checked as text while it arrives */
    reset(1 << 20, 1);
    reader.deflate_ok = 1;
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_TEXT, z, sizeof(z));
    memcpy(copy, buf, n);
    rd(buf, n - 1);
    ok(ev.type == SIG_WSFRAME_NEED_MORE && reader.frame_checked == 0 && memcmp(buf, copy, n) == 0,
       "an incomplete compressed frame: NEED_MORE, nothing unmasked or checked yet");
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.compressed == 1 && payload_is(z, sizeof(z)), "then complete");

    /* RSV1 where it may not be, and RSV2/RSV3 which permessage-deflate does not define */
    n = frame(buf, RSV1 | SIG_WSFRAME_TEXT, z, 3);
    n += frame(buf + n, FIN | RSV1 | SIG_WSFRAME_CONTINUATION, z + 3, sizeof(z) - 3);
    reset(1 << 20, 1);
    reader.deflate_ok = 1;
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1002, "RSV1 on a continuation frame: 1002");
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_PING, "p", 1);
    reset(1 << 20, 1);
    reader.deflate_ok = 1;
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1002, "RSV1 on a ping: 1002");
    n = close_frame(buf, 1000, "", 0);
    buf[0] |= RSV1;
    reset(1 << 20, 1);
    reader.deflate_ok = 1;
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1002, "RSV1 on a close: 1002");
    n = frame(buf, FIN | RSV1 | RSV2 | SIG_WSFRAME_TEXT, z, sizeof(z));
    reset(1 << 20, 1);
    reader.deflate_ok = 1;
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1002, "RSV2 with RSV1: 1002");
    n = frame(buf, FIN | RSV3 | SIG_WSFRAME_TEXT, "a", 1);
    reset(1 << 20, 1);
    reader.deflate_ok = 1;
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1002, "RSV3: 1002");
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_BINARY, z, sizeof(z));
    reset(1 << 20, 0);
    reader.deflate_ok = 1;
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1003, "a compressed binary message without binary_ok: 1003");

    /* the size on the wire: a compressed message may pass max by max/8 + 64 bytes (it is bounded again once inflated) */
    memset(big, 'z', wire_max + 1);
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_TEXT, big, wire_max);
    reset(max, 1);
    reader.deflate_ok = 1;
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.compressed == 1 && ev.len == wire_max, "compressed: max + max/8 + 64 bytes pass");
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_TEXT, big, wire_max + 1);
    reset(max, 1);
    reader.deflate_ok = 1;
    rd(buf, 4);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1009, "compressed: max + max/8 + 65 bytes: 1009 from the header");
    n1 = frame(buf, RSV1 | SIG_WSFRAME_TEXT, big, wire_max - 10);
    n2 = frame(buf + n1, FIN | SIG_WSFRAME_CONTINUATION, big, 11);
    reset(max, 1);
    reader.deflate_ok = 1;
    rd(buf, n1 + n2);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1009, "compressed fragments past the bound together: 1009");
    n = frame(buf, FIN | SIG_WSFRAME_TEXT, big, max + 1);
    reset(max, 1);
    reader.deflate_ok = 1;
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_ERROR && ev.code == 1009, "a plain message keeps the plain bound: max + 1 is 1009");
    reset(SIZE_MAX, 1);
    reader.deflate_ok = 1;
    n = frame(buf, FIN | RSV1 | SIG_WSFRAME_TEXT, z, sizeof(z));
    rd(buf, n);
    ok(ev.type == SIG_WSFRAME_MESSAGE && ev.compressed == 1, "max SIZE_MAX: the bound does not overflow");
    free(big);
}

int main(void)
{
    test_encode();
    test_single();
    test_control();
    test_fragments();
    test_utf8_frames();
    test_partial_frames();
    test_errors();
    test_limits();
    test_compressed();
    sig_wsframe_reader_dispose(&reader);
    return done_testing();
}
