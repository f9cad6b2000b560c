/*
 * tap.h: the smallest TAP producer our unit tests need.
 *
 * Each test binary calls ok()/is_int()/is_str() any number of times and ends with
 * `return done_testing();`, which prints the plan and returns non-zero if anything failed.
 * Output goes to stdout so automake's tap-driver.sh can read it.
 */
#ifndef SIG_TESTS_TAP_H
#define SIG_TESTS_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_count_, tap_failed_;

#define ok(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...)                                                                                             \
    do {                                                                                                                   \
        long long g_ = (long long)(got), w_ = (long long)(want);                                                          \
        if (!tap_ok_(g_ == w_, __FILE__, __LINE__, __VA_ARGS__))                                                           \
            printf("#   got: %lld\n#   expected: %lld\n", g_, w_);                                                        \
    } while (0)
#define is_str(got, want, ...)                                                                                             \
    do {                                                                                                                   \
        const char *g_ = (got), *w_ = (want);                                                                              \
        if (!tap_ok_(g_ != NULL && w_ != NULL ? strcmp(g_, w_) == 0 : g_ == w_, __FILE__, __LINE__, __VA_ARGS__))          \
            printf("#   got: '%s'\n#   expected: '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");                     \
    } while (0)

__attribute__((format(printf, 4, 5))) static int tap_ok_(int pass, const char *file, int line, const char *fmt, ...);

#include <stdarg.h>
static int tap_ok_(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    ++tap_count_;
    printf("%s %d - ", pass ? "ok" : "not ok", tap_count_);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!pass) {
        ++tap_failed_;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return pass;
}

static inline int done_testing(void)
{
    printf("1..%d\n", tap_count_);
    fflush(stdout); /* a sanitizer exiting at exit must not swallow the plan */
    return tap_failed_ != 0 || tap_count_ == 0;
}

#endif
