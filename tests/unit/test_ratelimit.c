/*
 * test_ratelimit.c: the per-connection token bucket (handler/core/sig_ratelimit.h), driven by a fake clock.
 */
#include "core/sig_ratelimit.h"
#include "tap.h"

int main(void)
{
    sig_ratelimit_t rl;
    uint64_t t = 1000000;
    int i, passed = 0, refused = 0;

    sig_ratelimit_init(&rl, 5, t);
    for (i = 0; i != 5; ++i)
        passed += sig_ratelimit_take(&rl, 10, 5, t) == SIG_RATELIMIT_PASS;
    is_int(passed, 5, "a full bucket lets a burst of 5 through at once");
    is_int(sig_ratelimit_take(&rl, 10, 5, t), SIG_RATELIMIT_REFUSE, "the 6th at the same instant is refused");
    is_int(sig_ratelimit_take(&rl, 10, 5, t + 99), SIG_RATELIMIT_REFUSE, "99 ms later at 10/s: still nothing");
    is_int(sig_ratelimit_take(&rl, 10, 5, t + 100), SIG_RATELIMIT_PASS, "100 ms later: one message refilled");

    /* sustained: at 10/s over 10 s, about 100 pass */
    sig_ratelimit_init(&rl, 5, t);
    passed = 0;
    for (i = 0; i != 1000; ++i)
        passed += sig_ratelimit_take(&rl, 10, 5, t + (uint64_t)i * 10) == SIG_RATELIMIT_PASS;
    is_int(passed, 5 + 99, "100 msg/s offered for 9.99 s at a 10/s limit: the burst of 5, then 99 refills");

    /* abuse: refused `burst` times in a row */
    sig_ratelimit_init(&rl, 3, t);
    for (i = 0; i != 3; ++i)
        sig_ratelimit_take(&rl, 1, 3, t);
    is_int(sig_ratelimit_take(&rl, 1, 3, t), SIG_RATELIMIT_REFUSE, "1st refusal");
    is_int(sig_ratelimit_take(&rl, 1, 3, t), SIG_RATELIMIT_REFUSE, "2nd refusal");
    is_int(sig_ratelimit_take(&rl, 1, 3, t), SIG_RATELIMIT_ABUSE, "3rd refusal in a row: abuse");
    sig_ratelimit_init(&rl, 3, t);
    for (i = 0; i != 3; ++i)
        sig_ratelimit_take(&rl, 1, 3, t);
    sig_ratelimit_take(&rl, 1, 3, t);
    sig_ratelimit_take(&rl, 1, 3, t);
    is_int(sig_ratelimit_take(&rl, 1, 3, t + 1000), SIG_RATELIMIT_PASS, "slowing down passes again");
    is_int(sig_ratelimit_take(&rl, 1, 3, t + 1000), SIG_RATELIMIT_REFUSE, "... and the refusal count starts over");
    refused = sig_ratelimit_take(&rl, 1, 3, t + 1000);
    is_int(refused, SIG_RATELIMIT_REFUSE, "2nd refusal of the new run is not abuse yet");

    /* no limit, and a very long idle */
    is_int(sig_ratelimit_take(&rl, 0, 3, t), SIG_RATELIMIT_PASS, "rate 0: no limit");
    sig_ratelimit_init(&rl, 1000000, t);
    for (i = 0; i != 1000000; ++i)
        if (sig_ratelimit_take(&rl, 1000000, 1000000, t) != SIG_RATELIMIT_PASS)
            break;
    is_int(i, 1000000, "the largest burst drains exactly");
    is_int(sig_ratelimit_take(&rl, 1000000, 1000000, t + 86400000ull * 365), SIG_RATELIMIT_PASS,
           "a year idle refills without overflow");
    is_int(rl.millitokens, 1000000ull * 1000 - 1000, "... to exactly a full bucket minus the one taken");
    return done_testing();
}
