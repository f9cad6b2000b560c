/*
 * fuzz_check.h: what the libFuzzer targets in tests/fuzz share: a check that abort()s (libFuzzer records an abort like
 * a crash, with the input that caused it) and a strict UTF-8 validator.
 */
#ifndef SIG_FUZZ_CHECK_H
#define SIG_FUZZ_CHECK_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/**
 * Aborts with "fuzz check failed: <what>" and the source line when `cond` is false.
 */
#define FUZZ_CHECK(cond, what)                                                                                             \
    do {                                                                                                                   \
        if (!(cond)) {                                                                                                     \
            fprintf(stderr, "fuzz check failed at %s:%d: %s\n", __FILE__, __LINE__, (what));                              \
            abort();                                                                                                       \
        }                                                                                                                  \
    } while (0)

/**
 * Returns 1 if the `len` bytes at `s` are UTF-8 as RFC 3629 defines it (no overlong forms, no surrogates U+D800..DFFF,
 * nothing above U+10FFFF), 0 otherwise. NUL bytes are valid characters. This is what a browser's WebSocket checks
 * before it closes the connection with 1007, so it is stricter than yajl's own check.
 */
static inline int fuzz_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end;

    if (len == 0)
        return 1; /* s may be NULL: even NULL + 0 is undefined */
    end = p + len;
    while (p != end) {
        unsigned c = *p++, n, cp, min;
        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(end - p) < n)
            return 0;
        for (; n != 0; --n, ++p) {
            if ((*p & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (*p & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
    }
    return 1;
}

#endif
