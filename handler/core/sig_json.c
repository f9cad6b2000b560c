/*
 * sig_json.c: the \u escape check of sig_json.h, scanned by hand because yajl accepts the escapes it refuses, and the
 * stack arena of yajl's memory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/sig_common.h"
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

/* ---------------------------------------------------------------------------------------------------------------------
 * yajl memory: a stack arena, so a small message costs no heap allocation (yajl has no way to reset and reuse a
 * handle, and would otherwise malloc its handle, lexer, state stack and decode buffer for every message). Blocks that
 * do not fit (deep nesting, long escaped strings) fall back to the heap.
 * -------------------------------------------------------------------------------------------------------------------*/

#define ARENA_SIZE SIG_JSON_ARENA_SIZE
#define ARENA_ALIGN 16 /* alignment of every block, and the size of the header holding its capacity */

static size_t arena_round(size_t size)
{
    return (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

static int arena_owns(const sig_json_arena_t *arena, const void *p)
{
    uintptr_t u = (uintptr_t)p, start = (uintptr_t)arena->mem;
    return u >= start && u < start + ARENA_SIZE;
}

static void *arena_malloc(void *ctx, size_t size)
{
    sig_json_arena_t *arena = ctx;

    if (size <= ARENA_SIZE - ARENA_ALIGN && arena->used <= ARENA_SIZE - ARENA_ALIGN &&
        arena_round(size) <= ARENA_SIZE - ARENA_ALIGN - arena->used) {
        unsigned char *header = arena->mem + arena->used;
        size_t cap = arena_round(size);
        memcpy(header, &cap, sizeof(cap));
        arena->last = arena->used;
        arena->used += ARENA_ALIGN + cap;
        return header + ARENA_ALIGN;
    }
    return sig_mem_alloc(size);
}

static void arena_free(void *ctx, void *p)
{
    sig_json_arena_t *arena = ctx;

    if (p == NULL)
        return;
    if (!arena_owns(arena, p)) {
        free(p);
        return;
    }
    /* only the newest block can be given back; the rest of the arena dies with the stack frame */
    if ((size_t)((unsigned char *)p - arena->mem) - ARENA_ALIGN == arena->last) {
        arena->used = arena->last;
        arena->last = SIZE_MAX;
    }
}

static void *arena_realloc(void *ctx, void *p, size_t size)
{
    sig_json_arena_t *arena = ctx;
    size_t cap, off;
    void *moved;

    if (p == NULL)
        return arena_malloc(ctx, size);
    if (!arena_owns(arena, p))
        return sig_mem_realloc(p, size);
    off = (size_t)((unsigned char *)p - arena->mem) - ARENA_ALIGN;
    memcpy(&cap, arena->mem + off, sizeof(cap));
    if (size <= cap)
        return p;
    if (off == arena->last && size <= ARENA_SIZE - ARENA_ALIGN - off) {
        /* yajl grows its state stack one push at a time: the newest block grows where it is */
        cap = arena_round(size);
        memcpy(arena->mem + off, &cap, sizeof(cap));
        arena->used = off + ARENA_ALIGN + cap;
        return p;
    }
    moved = arena_malloc(ctx, size);
    memcpy(moved, p, cap);
    arena_free(ctx, p);
    return moved;
}

void sig_json_arena_init(sig_json_arena_t *arena, yajl_alloc_funcs *funcs)
{
    arena->used = 0;
    arena->last = SIZE_MAX;
    funcs->malloc = arena_malloc;
    funcs->realloc = arena_realloc;
    funcs->free = arena_free;
    funcs->ctx = arena;
}
