/*
 * test_deflate.c: unit tests of handler/core/sig_deflate.c (TAP): permessage-deflate's compression (RFC 7692 7.2).
 * - inflating: the examples of RFC 7692 7.2.3 byte for byte, data made by zlib itself (another level, strategy, flush
 *   mode, several flushes in one message, the tail kept), a message cut inside a block or not deflate data at all;
 * - the limit: exactly max bytes pass, one more fails, a bomb (16 MB of zeros in 16 KB) fails with the output buffer
 *   never grown past about max;
 * - round trips at every window size and many sizes, checked against zlib with the tail put back as RFC 7692 says;
 * - a result that would not be shorter is refused (SIZE_MAX), and either object is reusable after any outcome.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/sig_deflate.h"
#include "tap.h"

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

/* The reference receiver of RFC 7692 7.2.2, with zlib directly: append the tail, inflate. Returns the output length
 * (into `out`, `cap` bytes), or SIZE_MAX on a zlib error. */
static size_t reference_inflate(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream z;
    uint8_t *buf = malloc(len + 4);
    size_t n = SIZE_MAX;
    int ret;

    memset(&z, 0, sizeof(z));
    memcpy(buf, in, len);
    memcpy(buf + len, tail, 4);
    inflateInit2(&z, -15);
    z.next_in = buf;
    z.avail_in = (uInt)(len + 4);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ret = inflate(&z, Z_SYNC_FLUSH);
    if (ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR)
        n = cap - z.avail_out;
    inflateEnd(&z);
    free(buf);
    return n;
}

/* Compresses with zlib directly, in `pieces` parts each ended by `flush`, the last tail removed when `strip`. */
static size_t reference_deflate(const uint8_t *in, size_t len, int level, int strategy, int flush, int pieces, int strip,
                                uint8_t *out, size_t cap)
{
    z_stream z;
    size_t done = 0, n;
    int i;

    memset(&z, 0, sizeof(z));
    deflateInit2(&z, level, Z_DEFLATED, -15, 8, strategy);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    for (i = 0; i != pieces; ++i) {
        size_t part = i == pieces - 1 ? len - done : len / (size_t)pieces;
        z.next_in = (Bytef *)in + done;
        z.avail_in = (uInt)part;
        deflate(&z, flush);
        done += part;
    }
    n = cap - z.avail_out;
    deflateEnd(&z);
    if (strip && n >= 4 && memcmp(out + n - 4, tail, 4) == 0)
        n -= 4;
    return n;
}

static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* An SDP-like signaling message of `len` bytes (JSON around WebRTC session text). */
static void make_text(uint8_t *dst, size_t len)
{
    static const char *const lines[] = {
        "{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"field1\":\"v=0\\r\\no=- 46117 2 IN IP4 127.0.0.1\\r\\n",
        "a=candidate:1 1 udp 2122260223 192.168.1.23 54321 typ host generation 0\\r\\n",
        "a=rtpmap:111 opus/48000/2\\r\\na=fmtp:111 minptime=10;useinbandfec=1\\r\\n",
        "a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6\\r\\n",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\\r\\n",
        "a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35\\r\\n"};
    size_t n = 0, i = 0;
    while (n < len) {
        const char *s = lines[(i * 7 + next_rand() % 3) % 6];
        size_t k = strlen(s);
        if (k > len - n)
            k = len - n;
        memcpy(dst + n, s, k);
        n += k;
        ++i;
    }
}

static void expect_inflate(sig_inflate_t *inf, const char *what, const uint8_t *in, size_t len, const char *want)
{
    sig_buf_t out = SIG_BUF_INIT;
    int ret = sig_inflate_message(inf, in, len, 1000, &out);
    is_int(ret, 0, "%s: inflates", what);
    ok(out.len == strlen(want) && (out.len == 0 || memcmp(out.base, want, out.len) == 0), "%s: gives \"%s\"", what, want);
    sig_buf_dispose(&out);
}

static void expect_bad(sig_inflate_t *inf, const char *what, const uint8_t *in, size_t len)
{
    sig_buf_t out = SIG_BUF_INIT;
    is_int(sig_inflate_message(inf, in, len, 1000, &out), SIG_ERR_BAD_DEFLATE, "%s: refused as not deflate data", what);
    sig_buf_dispose(&out);
}

static void test_rfc_examples(void)
{
    /* RFC 7692 7.2.3.1 (one block), 7.2.3.3 (no compression), 7.2.3.4 (BFINAL set), 7.2.3.5 (two blocks) */
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
    static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    static const uint8_t two_blocks[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
    /* the tail kept by the sender; a final block followed by anything; the empty message (7.2.3.6: one 0x00) */
    static const uint8_t kept_tail[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff};
    static const uint8_t bfinal_then[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x12, 0x34};
    static const uint8_t empty[] = {0x00};
    /* cut inside a block, a reserved block type (BTYPE 11), a stored block whose length check fails */
    static const uint8_t cut[] = {0xf2, 0x48, 0xcd, 0xc9};
    static const uint8_t reserved_type[] = {0x06, 0x00};
    static const uint8_t bad_nlen[] = {0x00, 0x05, 0x00, 0xfb, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
    sig_inflate_t *inf = sig_inflate_create();

    ok(inf != NULL, "an inflater");
    expect_inflate(inf, "RFC 7692 7.2.3.1", hello, sizeof(hello), "Hello");
    expect_inflate(inf, "RFC 7692 7.2.3.3", stored, sizeof(stored), "Hello");
    expect_inflate(inf, "RFC 7692 7.2.3.4", bfinal, sizeof(bfinal), "Hello");
    expect_inflate(inf, "RFC 7692 7.2.3.5", two_blocks, sizeof(two_blocks), "Hello");
    expect_inflate(inf, "tail not removed", kept_tail, sizeof(kept_tail), "Hello");
    expect_inflate(inf, "bytes after the final block", bfinal_then, sizeof(bfinal_then), "Hello");
    expect_inflate(inf, "the empty message", empty, sizeof(empty), "");
    expect_inflate(inf, "no payload at all", empty, 0, "");
    expect_bad(inf, "cut inside a block", cut, sizeof(cut));
    expect_bad(inf, "7.2.3.1 without its last byte", hello, sizeof(hello) - 1);
    expect_bad(inf, "reserved block type", reserved_type, sizeof(reserved_type));
    expect_bad(inf, "stored block with a wrong NLEN", bad_nlen, sizeof(bad_nlen));
    expect_inflate(inf, "after an error, the next message", hello, sizeof(hello), "Hello");
    sig_inflate_destroy(inf);
    sig_inflate_destroy(NULL);
    sig_deflate_destroy(NULL);
}

static void test_from_zlib(void)
{
    static const struct {
        int level, strategy, flush, pieces, strip;
        const char *what;
    } makes[] = {
        {6, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH, 1, 1, "level 6, sync flush (as ws and browsers)"},
        {9, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH, 1, 1, "level 9"},
        {0, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH, 1, 1, "level 0 (stored blocks)"},
        {6, Z_HUFFMAN_ONLY, Z_SYNC_FLUSH, 1, 1, "Huffman only"},
        {6, Z_FIXED, Z_SYNC_FLUSH, 1, 1, "fixed codes"},
        {6, Z_RLE, Z_SYNC_FLUSH, 1, 1, "RLE"},
        {6, Z_DEFAULT_STRATEGY, Z_FULL_FLUSH, 1, 1, "full flush"},
        {6, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH, 5, 1, "five sync flushes in one message"},
        {6, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH, 1, 0, "the tail kept"},
        {6, Z_DEFAULT_STRATEGY, Z_FINISH, 1, 0, "Z_FINISH (BFINAL set)"},
    };
    size_t len = 20000, i;
    uint8_t *text = malloc(len), *z = malloc(2 * len + 64);
    sig_inflate_t *inf = sig_inflate_create();
    sig_buf_t out = SIG_BUF_INIT;

    make_text(text, len);
    for (i = 0; i != sizeof(makes) / sizeof(makes[0]); ++i) {
        size_t n = reference_deflate(text, len, makes[i].level, makes[i].strategy, makes[i].flush, makes[i].pieces, makes[i].strip,
                                     z, 2 * len + 64);
        is_int(sig_inflate_message(inf, z, n, len, &out), 0, "zlib %s: inflates", makes[i].what);
        ok(out.len == len && memcmp(out.base, text, len) == 0, "zlib %s: the same bytes", makes[i].what);
    }
    sig_buf_dispose(&out);
    sig_inflate_destroy(inf);
    free(text);
    free(z);
}

static void test_limits(void)
{
    size_t big = 16 * 1024 * 1024, n, max = 65536;
    uint8_t *zeros = calloc(1, big), *z = malloc(big / 64);
    sig_inflate_t *inf = sig_inflate_create();
    sig_buf_t out = SIG_BUF_INIT;
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    static const uint8_t empty[] = {0x00};

    /* exactly max passes, max + 1 does not */
    n = reference_deflate(zeros, max, 6, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH, 1, 1, z, big / 64);
    is_int(sig_inflate_message(inf, z, n, max, &out), 0, "a message of exactly max bytes");
    is_int(out.len, max, "all of it");
    n = reference_deflate(zeros, max + 1, 6, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH, 1, 1, z, big / 64);
    is_int(sig_inflate_message(inf, z, n, max, &out), SIG_ERR_MESSAGE_TOO_LARGE, "max + 1 bytes: too large");
    sig_buf_dispose(&out);

    /* a bomb: 16 MB of zeros in about 16 KB; inflating stops as soon as max is passed, the buffer stays small */
    n = reference_deflate(zeros, big, 9, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH, 1, 1, z, big / 64);
    printf("# bomb: %zu bytes inflate to %zu\n", n, big);
    ok(n < 20000, "the bomb is small");
    is_int(sig_inflate_message(inf, z, n, max, &out), SIG_ERR_MESSAGE_TOO_LARGE, "the bomb: too large");
    ok(out.len == max + 1, "it stopped one byte past max (%zu)", out.len);
    ok(out.cap <= 2 * (max + 1), "the output buffer never grew past about max (%zu bytes)", out.cap);
    sig_buf_dispose(&out);
    is_int(sig_inflate_message(inf, z, n, big, &out), 0, "the same with max = its size");
    is_int(out.len, big, "all of it");
    sig_buf_dispose(&out);

    /* max 0: only the empty message */
    is_int(sig_inflate_message(inf, empty, 1, 0, &out), 0, "max 0: the empty message passes");
    is_int(sig_inflate_message(inf, hello, sizeof(hello), 0, &out), SIG_ERR_MESSAGE_TOO_LARGE, "max 0: Hello is too large");
    is_int(sig_inflate_message(inf, hello, sizeof(hello), 4, &out), SIG_ERR_MESSAGE_TOO_LARGE, "max 4: Hello is too large");
    is_int(sig_inflate_message(inf, hello, sizeof(hello), 5, &out), 0, "max 5: Hello passes");
    /* the buffer is reused: its content is replaced */
    is_int(out.len, 5, "the content replaced, not appended");
    sig_buf_dispose(&out);
    sig_inflate_destroy(inf);
    free(zeros);
    free(z);
}

/* Compresses `len` bytes with `d`, checks the payload against zlib (tail appended) and sig_inflate_message. */
static void round_trip(sig_deflate_t *d, sig_inflate_t *inf, const uint8_t *src, size_t len, int bits, const char *kind)
{
    size_t cap = len + len / 8 + 64, n;
    uint8_t *z = malloc(cap + 4), *ref = malloc(len + 1);
    sig_buf_t out = SIG_BUF_INIT;

    n = sig_deflate_message(d, src, len, z, cap);
    ok(n != SIZE_MAX, "window %d, %s, %zu bytes: compressed (%zu)", bits, kind, len, n);
    if (n != SIZE_MAX) {
        ok(reference_inflate(z, n, ref, len + 1) == len && memcmp(ref, src, len) == 0,
           "window %d, %s, %zu bytes: zlib with the tail appended gives it back", bits, kind, len);
        ok(sig_inflate_message(inf, z, n, len, &out) == 0 && out.len == len && memcmp(out.base, src, len) == 0,
           "window %d, %s, %zu bytes: sig_inflate_message gives it back", bits, kind, len);
    }
    sig_buf_dispose(&out);
    free(z);
    free(ref);
}

static void test_round_trips(void)
{
    static const size_t sizes[] = {1, 16, 125, 126, 1000, 6000, 65535, 65536, 200000};
    size_t max = 200000, i;
    uint8_t *text = malloc(max), *noise = malloc(max);
    sig_inflate_t *inf = sig_inflate_create();
    int bits;

    make_text(text, max);
    for (i = 0; i != max; ++i)
        noise[i] = (uint8_t)next_rand();
    for (bits = 9; bits <= 15; ++bits) {
        sig_deflate_t *d = sig_deflate_create(bits, SIG_DEFLATE_LEVEL, SIG_DEFLATE_MEM_LEVEL);
        ok(d != NULL, "a compressor with a %d-bit window", bits);
        for (i = 0; i != sizeof(sizes) / sizeof(sizes[0]); ++i) {
            round_trip(d, inf, text, sizes[i], bits, "text");
            if (bits == 15 || bits == 9)
                round_trip(d, inf, noise, sizes[i], bits, "noise");
        }
        sig_deflate_destroy(d);
    }
    ok(sig_deflate_create(8, 1, 8) == NULL, "no 8-bit window (zlib's raw deflate refuses it)");
    sig_inflate_destroy(inf);
    free(text);
    free(noise);
}

static void test_not_shorter(void)
{
    size_t len = 6000, n;
    uint8_t *text = malloc(len), *noise = malloc(len), *z = malloc(len + 4);
    sig_deflate_t *d = sig_deflate_create(15, SIG_DEFLATE_LEVEL, SIG_DEFLATE_MEM_LEVEL);
    sig_inflate_t *inf = sig_inflate_create();
    sig_buf_t out = SIG_BUF_INIT;
    size_t i;

    make_text(text, len);
    for (i = 0; i != len; ++i)
        noise[i] = (uint8_t)next_rand();
    is_int(sig_deflate_message(d, noise, len, z, len + 4), SIZE_MAX, "noise does not get shorter: refused");
    is_int(sig_deflate_message(d, text, 1, z, 5), SIZE_MAX, "one byte does not get shorter: refused");
    n = sig_deflate_message(d, text, len, z, len + 4);
    printf("# a %zu-byte SDP-like message compresses to %zu bytes at level %d\n", len, n, SIG_DEFLATE_LEVEL);
    ok(n < len / 2, "after a refusal the compressor works: text to less than half");
    ok(sig_inflate_message(inf, z, n, len, &out) == 0 && out.len == len && memcmp(out.base, text, len) == 0, "and back");
    n = sig_deflate_message(d, text, 0, z, len + 4);
    ok(n == 1 && z[0] == 0x00, "the empty message is one 0x00 (RFC 7692 7.2.3.6)");
    sig_buf_dispose(&out);
    sig_deflate_destroy(d);
    sig_inflate_destroy(inf);
    free(text);
    free(noise);
    free(z);
}

int main(void)
{
    test_rfc_examples();
    test_from_zlib();
    test_limits();
    test_round_trips();
    test_not_shorter();
    return done_testing();
}
