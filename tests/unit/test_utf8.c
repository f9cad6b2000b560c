/*
 * test_utf8.c: unit tests of the strict incremental UTF-8 validator of handler/common/sig_common.c (TAP):
 * sig_utf8_feed() and sig_utf8_is_valid() against the plain reference of utf8_reference.h, on known cases, on every
 * 1-, 2- and 3-byte input, and on random texts cut into random pieces (the state carried across calls, as the frame
 * reader carries it across TCP reads and fragments), failing at the first byte that no continuation could make valid.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "common/sig_common.h"
#include "tap.h"
#include "utf8_reference.h"

/* feeds the bytes one at a time */
static uint32_t utf8_bytewise(const char *s, size_t len)
{
    uint32_t state = SIG_UTF8_ACCEPT;
    size_t i;
    for (i = 0; i != len; ++i)
        state = sig_utf8_feed(state, (const uint8_t *)s + i, 1);
    return state;
}

static void test_utf8(void)
{
    static const struct {
        const char *bytes;
        const char *what;
    } valid[] = {{"hello", "ASCII"},
                 {"\xc2\x80", "U+0080 (2 bytes)"},
                 {"\xdf\xbf", "U+07FF"},
                 {"\xc3\xa9t\xc3\xa9", "\"été\""},
                 {"\xe0\xa0\x80", "U+0800 (3 bytes)"},
                 {"\xe2\x82\xac", "U+20AC euro sign"},
                 {"\xed\x9f\xbf", "U+D7FF, just below the surrogates"},
                 {"\xee\x80\x80", "U+E000, just above the surrogates"},
                 {"\xef\xbf\xbf", "U+FFFF"},
                 {"\xf0\x90\x80\x80", "U+10000 (4 bytes)"},
                 {"\xf0\x9f\x98\x80", "U+1F600 emoji"},
                 {"\xf4\x8f\xbf\xbf", "U+10FFFF, the last code point"}};
    static const struct {
        const char *bytes;
        const char *what;
    } invalid[] = {{"\xc0\x80", "overlong NUL C0 80"},
                   {"\xc0\xaf", "overlong '/' C0 AF"},
                   {"\xc1\xbf", "overlong C1 BF"},
                   {"\xe0\x80\x80", "overlong E0 80 80"},
                   {"\xe0\x9f\xbf", "overlong E0 9F BF"},
                   {"\xf0\x80\x80\x80", "overlong F0 80 80 80"},
                   {"\xf0\x8f\xbf\xbf", "overlong F0 8F BF BF"},
                   {"\xed\xa0\x80", "surrogate ED A0 80 (U+D800)"},
                   {"\xed\xbf\xbf", "surrogate ED BF BF (U+DFFF)"},
                   {"\xf4\x90\x80\x80", "F4 90 80 80 (past U+10FFFF)"},
                   {"\x80", "stray continuation 80"},
                   {"a\xbf", "stray continuation BF after ASCII"},
                   {"\xc3\x41", "lead byte followed by ASCII"},
                   {"\xe2\x82\x41", "3-byte sequence cut by ASCII"}};
    size_t i;
    unsigned c;
    int all;

    is_int(sig_utf8_feed(SIG_UTF8_ACCEPT, (const uint8_t *)"", 0), SIG_UTF8_ACCEPT, "utf8: nothing is valid");
    is_int(sig_utf8_feed(SIG_UTF8_ACCEPT, (const uint8_t *)"a\0b", 3), SIG_UTF8_ACCEPT, "utf8: NUL is a character");
    for (i = 0; i != sizeof(valid) / sizeof(valid[0]); ++i) {
        is_int(sig_utf8_feed(SIG_UTF8_ACCEPT, (const uint8_t *)valid[i].bytes, strlen(valid[i].bytes)), SIG_UTF8_ACCEPT,
               "utf8: %s, in one call", valid[i].what);
        is_int(utf8_bytewise(valid[i].bytes, strlen(valid[i].bytes)), SIG_UTF8_ACCEPT, "utf8: %s, byte by byte",
               valid[i].what);
    }
    for (i = 0; i != sizeof(invalid) / sizeof(invalid[0]); ++i) {
        is_int(sig_utf8_feed(SIG_UTF8_ACCEPT, (const uint8_t *)invalid[i].bytes, strlen(invalid[i].bytes)), SIG_UTF8_REJECT,
               "utf8: %s rejected", invalid[i].what);
        is_int(utf8_bytewise(invalid[i].bytes, strlen(invalid[i].bytes)), SIG_UTF8_REJECT,
               "utf8: %s rejected byte by byte", invalid[i].what);
    }
    all = 1;
    for (c = 0xf5; c <= 0xff; ++c) {
        uint8_t b[4] = {(uint8_t)c, 0x80, 0x80, 0x80};
        all &= sig_utf8_feed(SIG_UTF8_ACCEPT, b, 4) == SIG_UTF8_REJECT && sig_utf8_feed(SIG_UTF8_ACCEPT, b, 1) == SIG_UTF8_REJECT;
    }
    ok(all, "utf8: every lead byte F5..FF rejected, at once");
    all = 1;
    for (c = 0xc0; c <= 0xc1; ++c) {
        uint8_t b = (uint8_t)c;
        all &= sig_utf8_feed(SIG_UTF8_ACCEPT, &b, 1) == SIG_UTF8_REJECT;
    }
    ok(all, "utf8: the overlong leads C0, C1 rejected at once");

    /* fail fast: REJECT at the first byte that cannot lead to UTF-8, not at the end */
    is_int(utf8_bytewise("\xed\xa0", 2), SIG_UTF8_REJECT, "utf8: ED A0 rejected before the surrogate's third byte");
    is_int(utf8_bytewise("\xf4\x90", 2), SIG_UTF8_REJECT, "utf8: F4 90 rejected before the rest");
    is_int(utf8_bytewise("\xe0\x80", 2), SIG_UTF8_REJECT, "utf8: E0 80 rejected before the rest");

    /* incomplete */
    {
        static const char *partial[] = {"\xc3", "\xe2\x82", "\xe2", "\xf0\x9f\x98", "ab\xf4\x8f"};
        all = 1;
        for (i = 0; i != sizeof(partial) / sizeof(partial[0]); ++i) {
            uint32_t s = sig_utf8_feed(SIG_UTF8_ACCEPT, (const uint8_t *)partial[i], strlen(partial[i]));
            all &= s != SIG_UTF8_ACCEPT && s != SIG_UTF8_REJECT;
        }
        ok(all, "utf8: incomplete sequences (C3, E2 82, F0 9F 98, ...) end neither accepted nor rejected");
    }
    {
        uint32_t s = sig_utf8_feed(SIG_UTF8_ACCEPT, (const uint8_t *)"x\xf0\x9f", 3);
        s = sig_utf8_feed(s, (const uint8_t *)"\x98\x80y", 3);
        is_int(s, SIG_UTF8_ACCEPT, "utf8: a sequence split between two calls completes");
    }

    /* every 1-, 2- and 3-byte input, and the 4-byte leads with every second byte, against the reference validator */
    {
        uint8_t b[4];
        unsigned x, y, z;
        size_t bad = 0;
        for (x = 0; x != 256; ++x) {
            b[0] = (uint8_t)x;
            bad += (sig_utf8_feed(SIG_UTF8_ACCEPT, b, 1) == SIG_UTF8_ACCEPT) != utf8_reference_valid(b, 1);
            for (y = 0; y != 256; ++y) {
                b[1] = (uint8_t)y;
                bad += (sig_utf8_feed(SIG_UTF8_ACCEPT, b, 2) == SIG_UTF8_ACCEPT) != utf8_reference_valid(b, 2);
            }
        }
        is_int(bad, 0, "utf8: agrees with the reference on every 1- and 2-byte input");
        bad = 0;
        for (x = 0; x != 256; ++x)
            for (y = 0; y != 256; ++y)
                for (z = 0; z != 256; ++z) {
                    b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = (uint8_t)z;
                    bad += (sig_utf8_feed(SIG_UTF8_ACCEPT, b, 3) == SIG_UTF8_ACCEPT) != utf8_reference_valid(b, 3);
                }
        is_int(bad, 0, "utf8: agrees with the reference on every 3-byte input");
        bad = 0;
        for (x = 0xf0; x != 0x100; ++x)
            for (y = 0; y != 256; ++y)
                for (z = 0x7f; z != 0xc1; ++z) {
                    b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = (uint8_t)z, b[3] = 0x80;
                    bad += (sig_utf8_feed(SIG_UTF8_ACCEPT, b, 4) == SIG_UTF8_ACCEPT) != utf8_reference_valid(b, 4);
                }
        is_int(bad, 0, "utf8: agrees with the reference on 4-byte inputs with leads F0..FF");
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Random texts, random pieces
 * -------------------------------------------------------------------------------------------------------------------*/

static uint32_t rng = 2463534242u;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* 1 if some 0..3 more bytes make `len` bytes at `p` valid (the reference, tried with the bytes that bound every range a
 * continuation byte may have to fall in: 80 8F 90 9F A0 BF) */
static int reference_extendable(const uint8_t *p, size_t len)
{
    static const uint8_t cont[] = {0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf};
    uint8_t b[80];
    size_t a, c, d;

    if (utf8_reference_valid(p, len))
        return 1;
    memcpy(b, p, len);
    for (a = 0; a != sizeof(cont); ++a) {
        b[len] = cont[a];
        if (utf8_reference_valid(b, len + 1))
            return 1;
        for (c = 0; c != sizeof(cont); ++c) {
            b[len + 1] = cont[c];
            if (utf8_reference_valid(b, len + 2))
                return 1;
            for (d = 0; d != sizeof(cont); ++d) {
                b[len + 2] = cont[d];
                if (utf8_reference_valid(b, len + 3))
                    return 1;
            }
        }
    }
    return 0;
}

/* A text of up to 64 bytes: mostly whole characters of every length (the edges of each range included), with now and
 * then a byte of 80..FF that may not fit, so that about half the texts are valid. */
static size_t random_text(uint8_t *dst)
{
    static const char *const chars[] = {"a", "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xe2\x82\xac", "\xed\x9f\xbf",
                                        "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
    size_t len = 0, want = next_rand() % 65;
    while (len < want) {
        if (next_rand() % 24 == 0) {
            dst[len++] = (uint8_t)(0x80 | next_rand()); /* a lead or a continuation byte where it may not fit */
        } else {
            const char *c = chars[next_rand() % (sizeof(chars) / sizeof(chars[0]))];
            size_t n = strlen(c);
            if (len + n > 64)
                break;
            memcpy(dst + len, c, n);
            len += n;
        }
    }
    return len;
}

static void test_random(void)
{
    uint8_t text[64 + 3];
    size_t bad_split = 0, bad_end = 0, bad_prompt = 0, valid = 0, n = 0;

    for (n = 0; n != 200000; ++n) {
        size_t len = random_text(text), at = 0, i, reject_at = SIZE_MAX;
        uint32_t state = SIG_UTF8_ACCEPT, whole = sig_utf8_feed(SIG_UTF8_ACCEPT, text, len), s;
        int ref = utf8_reference_valid(text, len);

        valid += ref;
        /* in 1..8 random pieces: the same end state as in one call */
        while (at != len) {
            size_t piece = 1 + next_rand() % (len - at < 16 ? len - at : 16);
            state = sig_utf8_feed(state, text + at, piece);
            at += piece;
        }
        bad_split += state != whole;
        bad_end += (whole == SIG_UTF8_ACCEPT) != ref || (sig_utf8_is_valid((const char *)text, len) != ref);
        /* byte by byte: REJECT at the first byte after which nothing could make the text valid, never before */
        for (s = SIG_UTF8_ACCEPT, i = 0; i != len && reject_at == SIZE_MAX; ++i)
            if ((s = sig_utf8_feed(s, text + i, 1)) == SIG_UTF8_REJECT)
                reject_at = i;
        if (reject_at != SIZE_MAX)
            bad_prompt += !reference_extendable(text, reject_at) || reference_extendable(text, reject_at + 1);
        else
            bad_prompt += !reference_extendable(text, len);
    }
    ok(valid > n / 4 && valid < n * 3 / 4, "utf8 random: %zu of %zu texts valid (both kinds well represented)", valid, n);
    is_int(bad_end, 0, "utf8 random: valid exactly when the reference says so (sig_utf8_feed and sig_utf8_is_valid)");
    is_int(bad_split, 0, "utf8 random: cut into random pieces, the same state as in one call");
    is_int(bad_prompt, 0, "utf8 random: REJECT at the first byte no continuation could make valid, not before, not after");
}

int main(void)
{
    test_utf8();
    test_random();
    return done_testing();
}
