/*
 * sig_json.c: the \u escape check of sig_json.h, scanned by hand because yajl accepts the escapes it refuses.
 */
#include <string.h>
#include "core/sig_json.h"

static int hex4(const char *p, unsigned *value)
{
    int i;
    *value = 0;
    for (i = 0; i != 4; ++i) {
        char c = p[i];
        unsigned digit = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                         : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
        if (digit == 16)
            return 0;
        *value = *value << 4 | digit;
    }
    return 1;
}

int sig_json_check_escapes(const char *json, size_t len, int allow_nul)
{
    const char *p = json, *end = json + len;
    int expect_low = 0;

    if (len == 0)
        return 0; /* json may be NULL then, and memchr(NULL) is undefined even for 0 bytes */
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL && end - p >= 2) {
        unsigned unit;
        if (p[1] != 'u' || end - p < 6 || !hex4(p + 2, &unit)) {
            if (expect_low)
                return -1;
            p += 2; /* \\, \", \n...: the escaped character never starts another escape */
            continue;
        }
        if (unit >= 0xdc00 && unit <= 0xdfff) {
            if (!expect_low)
                return -1;
            expect_low = 0;
        } else if (expect_low || (unit == 0 && !allow_nul)) {
            return -1;
        } else if (unit >= 0xd800 && unit <= 0xdbff) {
            if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
                return -1; /* the low half must be the very next thing */
            expect_low = 1;
        }
        p += 6;
    }
    return expect_low ? -1 : 0;
}
