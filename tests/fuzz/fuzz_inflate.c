/*
 * fuzz_inflate.c: libFuzzer target for permessage-deflate's receive path (handler/core/sig_deflate.c, and the RSV1
 * handling of handler/core/sig_wsframe.c), with one inflater and one compressor per window size kept across inputs, as
 * a server thread keeps them across messages.
 *
 * The first input byte sets it up: bits 0-2 pick `max` from {0, 1, 10, 125, 1000, 65536, 262144, 1 MiB}; bit 3 the mode:
 * - 0, raw: the rest is the payload of one compressed message, given to sig_inflate_message(). Checks:
 *   the result is 0, SIG_ERR_MESSAGE_TOO_LARGE or SIG_ERR_BAD_DEFLATE; the output buffer never grows past about
 *   max + 1 bytes (a bomb costs nothing more); 0 gives at most `max` bytes and exactly what zlib itself gives for
 *   the payload with 00 00 ff ff appended (RFC 7692 7.2.2, the reference receiver, which is more lenient: what we
 *   accept it accepts); TOO_LARGE stops at exactly max + 1 bytes, the reference's first max + 1; whatever we
 *   inflated before a refusal is what the reference inflates first.
 *   Then the same bytes as a plain message go through sig_deflate_message() with the window of bits 4-6 (9 + n % 7)
 *   and level 1 or 9 (bit 7): the payload fits in len + len/8 + 64 bytes, zlib with the tail appended gives the
 *   message back, and so does sig_inflate_message() with max = its length.
 * - 1, stream: the rest is what a client sent on a connection with permessage-deflate (deflate_ok, binary_ok, the
 *   reader's max_message_size = max), read at once as sig_ws.c does: each compressed message is inflated with `max`
 *   and its text checked for UTF-8. Checks: a compressed message's bytes are within max + max/8 + 64, a plain one's
 *   within max and a plain text strict UTF-8; errors only 1002/1003/1007/1009; inflated messages within max; an
 *   inflated text we would deliver is strict UTF-8 by the independent validator.
 * Every byte handed out is read (ASan), nothing is leaked (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/sig_deflate.h"
#include "core/sig_wsframe.h"
#include "fuzz_check.h"

static const size_t max_sizes[8] = {0, 1, 10, 125, 1000, 65536, 262144, 1048576};

static sig_inflate_t *inflater;
static sig_deflate_t *deflaters[2][16];
static sig_buf_t out; /* kept across inputs, as the thread's buffer is */

/* zlib as RFC 7692 7.2.2 says: the payload, 00 00 ff ff, inflate, at most `cap` bytes into `dst`. Returns the bytes
 * made; `*failed` is 1 when zlib reported an error. */
static size_t reference(const uint8_t *src, size_t len, uint8_t *dst, size_t cap, int *failed)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    uint8_t *in = malloc(len + 4);
    z_stream z;
    int ret;

    FUZZ_CHECK(in != NULL, "malloc");
    memcpy(in, src, len);
    memcpy(in + len, tail, 4);
    memset(&z, 0, sizeof(z));
    FUZZ_CHECK(inflateInit2(&z, -15) == Z_OK, "inflateInit2");
    z.next_in = in;
    z.avail_in = (uInt)(len + 4);
    z.next_out = dst;
    z.avail_out = (uInt)cap;
    ret = inflate(&z, Z_SYNC_FLUSH);
    *failed = !(ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR);
    inflateEnd(&z);
    free(in);
    return cap - z.avail_out;
}

static void check_raw(const uint8_t *data, size_t size, size_t max)
{
    size_t limit = max + 1, ref_len, cap_before = out.cap;
    uint8_t *ref = malloc(limit);
    int ret = sig_inflate_message(inflater, data, size, max, &out), failed;

    FUZZ_CHECK(ref != NULL, "malloc");
    FUZZ_CHECK(ret == 0 || ret == SIG_ERR_MESSAGE_TOO_LARGE || ret == SIG_ERR_BAD_DEFLATE, "an unknown result");
    /* the buffer is the previous inputs' too: it may only have grown to about max + 1 here */
    FUZZ_CHECK(out.cap == cap_before || out.cap <= (2 * limit > 64 ? 2 * limit : 64), "the output buffer grew past about max + 1");
    ref_len = reference(data, size, ref, limit, &failed);
    switch (ret) {
    case 0:
        FUZZ_CHECK(out.len <= max, "a message past max accepted");
        FUZZ_CHECK(!failed || size == 0, "zlib with the tail refuses what we accepted");
        FUZZ_CHECK(ref_len == out.len && (out.len == 0 || memcmp(ref, out.base, out.len) == 0),
                   "we inflated other bytes than zlib with the tail");
        break;
    case SIG_ERR_MESSAGE_TOO_LARGE:
        FUZZ_CHECK(out.len == limit, "too large, but not stopped at max + 1 bytes");
        FUZZ_CHECK(ref_len == limit && memcmp(ref, out.base, limit) == 0, "too large: other bytes than zlib's first max + 1");
        break;
    default:
        FUZZ_CHECK(out.len <= ref_len && (out.len == 0 || memcmp(ref, out.base, out.len) == 0),
                   "refused: what we inflated first is not what zlib inflates first");
        break;
    }
    free(ref);
}

static void check_round_trip(const uint8_t *data, size_t size, int bits, int best)
{
    sig_deflate_t **d = &deflaters[best][bits];
    size_t cap = size + size / 8 + 64, n;
    uint8_t *z = malloc(cap), *ref = malloc(size + 1);
    int failed;

    FUZZ_CHECK(z != NULL && ref != NULL, "malloc");
    if (*d == NULL)
        *d = sig_deflate_create(bits, best ? 9 : SIG_DEFLATE_LEVEL, SIG_DEFLATE_MEM_LEVEL);
    FUZZ_CHECK(*d != NULL, "sig_deflate_create");
    n = sig_deflate_message(*d, data, size, z, cap);
    FUZZ_CHECK(n != SIZE_MAX && n <= cap - 4, "the payload does not fit in len + len/8 + 64 bytes");
    FUZZ_CHECK(reference(z, n, ref, size + 1, &failed) == size && !failed && (size == 0 || memcmp(ref, data, size) == 0),
               "zlib with the tail appended does not give the message back");
    FUZZ_CHECK(sig_inflate_message(inflater, z, n, size, &out) == 0 && out.len == size &&
                   (size == 0 || memcmp(out.base, data, size) == 0),
               "sig_inflate_message does not give the message back");
    free(z);
    free(ref);
}

/* every byte of a payload handed out is readable (ASan) */
static void read_all(const char *p, size_t len)
{
    volatile char sink;
    size_t i;
    for (i = 0; i != len; ++i)
        sink = p[i];
    (void)sink;
}

static void check_stream(const uint8_t *data, size_t size, size_t max)
{
    sig_wsframe_reader_t reader;
    sig_wsframe_event_t ev;
    char *input = malloc(size + 1);
    size_t off = 0, consumed, wire_max = max + max / 8 + 64;

    FUZZ_CHECK(input != NULL, "malloc");
    memcpy(input, data, size);
    memset(&reader, 0, sizeof(reader));
    reader.max_message_size = max;
    reader.binary_ok = 1;
    reader.deflate_ok = 1;
    for (;;) {
        sig_wsframe_read(&reader, input + off, size - off, &consumed, &ev);
        FUZZ_CHECK(consumed <= size - off, "consumed more than the input");
        if (ev.type == SIG_WSFRAME_NEED_MORE || ev.type == SIG_WSFRAME_CLOSE_RECEIVED)
            break;
        if (ev.type == SIG_WSFRAME_ERROR) {
            FUZZ_CHECK(ev.code == 1002 || ev.code == 1003 || ev.code == 1007 || ev.code == 1009, "an unexpected close code");
            break;
        }
        if (ev.type == SIG_WSFRAME_MESSAGE) {
            if (ev.compressed) {
                int ret;
                FUZZ_CHECK(ev.len <= wire_max, "a compressed message past max + max/8 + 64 on the wire");
                ret = sig_inflate_message(inflater, ev.payload, ev.len, max, &out);
                FUZZ_CHECK(ret == 0 || ret == SIG_ERR_MESSAGE_TOO_LARGE || ret == SIG_ERR_BAD_DEFLATE, "an unknown result");
                if (ret == 0) {
                    FUZZ_CHECK(out.len <= max, "an inflated message past max");
                    /* the glue delivers a text only if sig_utf8_is_valid(): it must agree with the reference */
                    if (ev.opcode == SIG_WSFRAME_TEXT)
                        FUZZ_CHECK(sig_utf8_is_valid(out.base, out.len) == fuzz_utf8_valid(out.base, out.len),
                                   "sig_utf8_is_valid disagrees with the reference on inflated text");
                }
            } else {
                FUZZ_CHECK(ev.len <= max, "a plain message past max");
                if (ev.opcode == SIG_WSFRAME_TEXT)
                    FUZZ_CHECK(fuzz_utf8_valid(ev.payload, ev.len), "plain text that is not UTF-8 delivered");
            }
            read_all(ev.payload, ev.len);
        }
        off += consumed;
    }
    sig_wsframe_reader_dispose(&reader);
    free(input);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t config;
    size_t max;

    if (inflater == NULL && (inflater = sig_inflate_create()) == NULL)
        abort();
    if (size == 0)
        return 0;
    config = data[0];
    max = max_sizes[config & 7];
    if ((config & 8) == 0) {
        check_raw(data + 1, size - 1, max);
        check_round_trip(data + 1, size - 1, 9 + ((config >> 4) & 7) % 7, config >> 7);
    } else {
        check_stream(data + 1, size - 1, max);
    }
    /* as the server does after a big message: the buffer is not kept past 1 MiB */
    if (out.cap > 1024 * 1024)
        sig_buf_dispose(&out);
    return 0;
}
