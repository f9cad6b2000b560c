/*
 * utf8_reference.h: a plain, obviously-correct UTF-8 validator (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF, what a browser checks before it closes with 1007), to check the fast one
 * (sig_utf8_feed) and decoder outputs against. Deliberately written differently: code point by code point.
 */
#ifndef UTF8_REFERENCE_H
#define UTF8_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

static inline int utf8_reference_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i != len) {
        unsigned c = p[i++], n, cp, min;
        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (len - i < n)
            return 0;
        for (; n != 0; --n, ++i) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
    }
    return 1;
}

#endif
