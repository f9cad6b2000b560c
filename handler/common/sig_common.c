/*
 * sig_common.c: error table lookups, aborting allocation and the growable buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include "common/sig_common.h"

/* ---------------------------------------------------------------------------------------------------------------------
 * Errors
 * -------------------------------------------------------------------------------------------------------------------*/

const char *sig_err_code(int err)
{
    switch (err) {
#define SIG_ERR_CODE_(name, value, code, text)                                                                             \
    case SIG_ERR_##name:                                                                                                   \
        return code;
        SIG_ERR_MAP(SIG_ERR_CODE_)
#undef SIG_ERR_CODE_
    default:
        return sig_err_code(SIG_ERR_INTERNAL);
    }
}

const char *sig_err_message(int err)
{
    switch (err) {
#define SIG_ERR_TEXT_(name, value, code, text)                                                                             \
    case SIG_ERR_##name:                                                                                                   \
        return text;
        SIG_ERR_MAP(SIG_ERR_TEXT_)
#undef SIG_ERR_TEXT_
    default:
        return sig_err_message(SIG_ERR_INTERNAL);
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Memory
 * -------------------------------------------------------------------------------------------------------------------*/

void sig_fatal(const char *msg)
{
    fprintf(stderr, "fatal: %s\n", msg);
    abort();
}

void *sig_mem_alloc(size_t size)
{
    void *p = malloc(size != 0 ? size : 1);
    if (p == NULL)
        sig_fatal("no memory");
    return p;
}

void *sig_mem_realloc(void *p, size_t size)
{
    if ((p = realloc(p, size != 0 ? size : 1)) == NULL)
        sig_fatal("no memory");
    return p;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Buffer
 * -------------------------------------------------------------------------------------------------------------------*/

char *sig_buf_reserve(sig_buf_t *buf, size_t min_free)
{
    if (buf->cap - buf->len < min_free) {
        size_t need, new_cap;
        if (min_free > SIZE_MAX - buf->len)
            sig_fatal("buffer size overflow");
        need = buf->len + min_free;
        /* doubling keeps appends amortised O(1); 64 avoids a string of tiny reallocs on a fresh buffer */
        new_cap = buf->cap < 64 ? 64 : buf->cap;
        while (new_cap < need)
            new_cap = new_cap <= SIZE_MAX / 2 ? new_cap * 2 : need;
        buf->base = sig_mem_realloc(buf->base, new_cap);
        buf->cap = new_cap;
    }
    return buf->base + buf->len;
}

void sig_buf_dispose(sig_buf_t *buf)
{
    free(buf->base);
    buf->base = NULL;
    buf->len = 0;
    buf->cap = 0;
}

/* ---- text checks ---- */

/* Inside a character the state holds what the next byte must be: how many bytes are still due, and
 * the range the next one must fall in (narrower than 80..BF right after E0, ED, F0 and F4: that is
 * where overlong forms, surrogates and code points past U+10FFFF are refused). */
#define UTF8_PENDING(due, lo, hi) ((uint32_t)(due) << 16 | (uint32_t)(lo) << 8 | (uint32_t)(hi))
#define UTF8_DUE(state) ((state) >> 16)
#define UTF8_LO(state) (((state) >> 8) & 0xff)
#define UTF8_HI(state) ((state)&0xff)

uint32_t sig_utf8_feed(uint32_t state, const uint8_t *s, size_t len)
{
    const uint8_t *end = s + len;

    while (s != end && state != SIG_UTF8_REJECT) {
        uint8_t c;
        if (state == SIG_UTF8_ACCEPT) {
            uint64_t word;
            while (end - s >= 8 && (memcpy(&word, s, 8), (word & UINT64_C(0x8080808080808080)) == 0))
                s += 8;
            while (s != end && *s < 0x80)
                ++s;
            if (s == end)
                break;
            c = *s++;
            if (c >= 0xc2 && c <= 0xdf)
                state = UTF8_PENDING(1, 0x80, 0xbf);
            else if (c == 0xe0)
                state = UTF8_PENDING(2, 0xa0, 0xbf);
            else if (c == 0xed)
                state = UTF8_PENDING(2, 0x80, 0x9f);
            else if (c >= 0xe1 && c <= 0xef)
                state = UTF8_PENDING(2, 0x80, 0xbf);
            else if (c == 0xf0)
                state = UTF8_PENDING(3, 0x90, 0xbf);
            else if (c >= 0xf1 && c <= 0xf3)
                state = UTF8_PENDING(3, 0x80, 0xbf);
            else if (c == 0xf4)
                state = UTF8_PENDING(3, 0x80, 0x8f);
            else
                state = SIG_UTF8_REJECT; /* a continuation byte first, C0/C1 (always overlong), or F5..FF */
        } else {
            c = *s++;
            if (c < UTF8_LO(state) || c > UTF8_HI(state))
                state = SIG_UTF8_REJECT;
            else
                state = UTF8_DUE(state) == 1 ? SIG_UTF8_ACCEPT : UTF8_PENDING(UTF8_DUE(state) - 1, 0x80, 0xbf);
        }
    }
    return state;
}

int sig_utf8_is_valid(const char *str, size_t len)
{
    return sig_utf8_feed(SIG_UTF8_ACCEPT, (const uint8_t *)str, len) == SIG_UTF8_ACCEPT;
}

int sig_str_is_id_token(sig_str_t s, size_t max)
{
    size_t i;
    if (s.len == 0 || s.len > max)
        return 0;
    for (i = 0; i != s.len; ++i) {
        unsigned char c = (unsigned char)s.base[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' || c == '_' || c == '~' ||
              c == '-'))
            return 0;
    }
    return 1;
}
