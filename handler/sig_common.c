/*
 * sig_common.c: error table lookups, aborting allocation and the growable buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include "sig_common.h"

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
