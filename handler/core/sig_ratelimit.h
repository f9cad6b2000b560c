/*
 * sig_ratelimit.h: a token bucket per connection. Pure: the caller passes the time.
 *
 * The bucket holds up to `burst` messages and refills at `rate` per second; a message takes one.
 * A client keeps being refused while it sends faster than the rate; one that has been refused
 * `burst` times in a row without slowing down is abusive (the handler closes it).
 */
#ifndef SIG_RATELIMIT_H
#define SIG_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_sig_ratelimit_t {
    uint64_t millitokens; /* thousandths of a message, so a rate in messages/s refills per millisecond */
    uint64_t last_ms;
    size_t refused_in_a_row;
} sig_ratelimit_t;

enum { SIG_RATELIMIT_PASS = 0, SIG_RATELIMIT_REFUSE = 1, SIG_RATELIMIT_ABUSE = 2 };

/** Starts full, at time `now_ms`. */
static inline void sig_ratelimit_init(sig_ratelimit_t *rl, size_t burst, uint64_t now_ms)
{
    rl->millitokens = (uint64_t)burst * 1000;
    rl->last_ms = now_ms;
    rl->refused_in_a_row = 0;
}

/**
 * Accounts one message at `now_ms`. Returns SIG_RATELIMIT_PASS, SIG_RATELIMIT_REFUSE (answer
 * rate_limited), or SIG_RATELIMIT_ABUSE (refused `burst` times in a row: close the connection).
 * `rate` 0 means no limit.
 */
static inline int sig_ratelimit_take(sig_ratelimit_t *rl, size_t rate, size_t burst, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)burst * 1000;
    if (rate == 0)
        return SIG_RATELIMIT_PASS;
    if (now_ms > rl->last_ms) {
        uint64_t elapsed = now_ms - rl->last_ms;
        /* past `cap` ms the bucket is full whatever the rate (>= 1/s): no overflow for a long idle */
        rl->millitokens += elapsed > cap ? cap : elapsed * rate;
        if (rl->millitokens > cap)
            rl->millitokens = cap;
        rl->last_ms = now_ms;
    }
    if (rl->millitokens >= 1000) {
        rl->millitokens -= 1000;
        rl->refused_in_a_row = 0;
        return SIG_RATELIMIT_PASS;
    }
    return ++rl->refused_in_a_row >= burst ? SIG_RATELIMIT_ABUSE : SIG_RATELIMIT_REFUSE;
}

#endif
