/*
 * sig_json.h: checks on JSON text that yajl does not make, shared by the parsers of core/ (the level-1 codec and the
 * token parser), and the memory their yajl parsers use. Pure: no I/O.
 */
#ifndef SIG_JSON_H
#define SIG_JSON_H

#include <stddef.h>
#include <yajl/yajl_common.h>

/**
 * Checks the \u escapes of a JSON text (scanned as text; only meaningful for well-formed JSON, and
 * errs on the side of refusing otherwise): returns 0 when every UTF-16 surrogate escape is a proper
 * high+low pair and, unless `allow_nul`, none is \u0000; -1 otherwise. yajl decodes a lone low half
 * to invalid UTF-8 and pairs a high half with whatever escape follows, inventing a character.
 */
int sig_json_check_escapes(const char *json, size_t len, int allow_nul);

/** The stack arena's size: a message of a few KB parses without touching the heap. */
#define SIG_JSON_ARENA_SIZE 8192

/**
 * Memory for one yajl parse, on the caller's stack: yajl has no way to reset and reuse a handle, and would otherwise
 * malloc its handle, lexer, state stack and decode buffer for every message. Blocks that do not fit (deep nesting,
 * long escaped strings) go to the heap. The parser must be freed before the arena goes out of scope.
 */
typedef struct st_sig_json_arena_t {
    size_t used;
    size_t last; /* offset of the newest block's header (it alone can grow in place or be given back), or SIZE_MAX */
    _Alignas(16) unsigned char mem[SIG_JSON_ARENA_SIZE];
} sig_json_arena_t;

/** Empties `arena` and points `funcs` (for yajl_alloc) at it. */
void sig_json_arena_init(sig_json_arena_t *arena, yajl_alloc_funcs *funcs);

#endif
