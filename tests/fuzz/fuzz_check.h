/*
 * fuzz_check.h: what the libFuzzer targets in tests/fuzz share: a check that abort()s (libFuzzer records an abort like
 * a crash, with the input that caused it) and a strict UTF-8 validator.
 */
#ifndef SIG_FUZZ_CHECK_H
#define SIG_FUZZ_CHECK_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include "../unit/utf8_reference.h"

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
 * nothing above U+10FFFF), 0 otherwise; `s` may be NULL when `len` is 0. NUL bytes are valid characters. This is what a
 * browser's WebSocket checks before it closes the connection with 1007, so it is stricter than yajl's own check.
 * The unit tests' plain reference validator, not the server's fast one: the two are meant to be checked against each other.
 */
static inline int fuzz_utf8_valid(const char *s, size_t len)
{
    return utf8_reference_valid((const uint8_t *)s, len);
}

#endif
