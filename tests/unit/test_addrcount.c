/*
 * test_addrcount.c: the per-address connection counter (handler/core/sig_addrcount.c) (TAP): keys
 * (IPv4, IPv6 prefixes, IPv4-mapped), caps, and the table under churn against a plain array model.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_addrcount.h"
#include "tap.h"

static sig_addr_key_t key_of(const char *text, unsigned prefix)
{
    uint8_t addr[16];
    int v6 = strchr(text, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, text, addr) != 1)
        abort();
    return sig_addrcount_key(v6 ? 6 : 4, addr, prefix);
}

static void test_keys(void)
{
    sig_addr_key_t a = key_of("2001:db8:1:2:aaaa::1", 64), b = key_of("2001:db8:1:2:bbbb::9", 64),
                   c = key_of("2001:db8:1:3::1", 64), m = key_of("::ffff:203.0.113.7", 64), v4 = key_of("203.0.113.7", 64);
    char text[64];

    ok(memcmp(&a, &b, sizeof(a)) == 0, "two addresses of one /64 are one key");
    ok(memcmp(&a, &c, sizeof(a)) != 0, "the next /64 is another key");
    ok(memcmp(&m, &v4, sizeof(m)) == 0, "an IPv4-mapped IPv6 address is its IPv4 address");
    a = key_of("2001:db8:1:2:aaaa::1", 128);
    b = key_of("2001:db8:1:2:bbbb::9", 128);
    ok(memcmp(&a, &b, sizeof(a)) != 0, "with prefix 128 every address counts alone");
    a = key_of("2001:db8:1:2:ffff::1", 72);
    b = key_of("2001:db8:1:2:ff00::1", 72);
    ok(memcmp(&a, &b, sizeof(a)) == 0, "a prefix that is not a multiple of 8 keeps only its bits");
    b = key_of("2001:db8:1:2:fe00::1", 72);
    ok(memcmp(&a, &b, sizeof(a)) != 0, "... and the bit right before it still counts");
    sig_addrcount_format(&v4, 64, text, sizeof(text));
    is_str(text, "203.0.113.7", "IPv4 as text");
    c = key_of("2001:db8:1:3::1", 64);
    sig_addrcount_format(&c, 64, text, sizeof(text));
    is_str(text, "2001:db8:1:3:0:0:0:0/64", "an IPv6 prefix as text");
}

static void test_caps(void)
{
    sig_addrcount_t *t = sig_addrcount_create();
    sig_addr_key_t a = key_of("198.51.100.1", 64), b = key_of("198.51.100.2", 64);
    int i;

    for (i = 1; i <= 3; ++i)
        is_int(sig_addrcount_take(t, &a, 3), i, "take %d of 3", i);
    is_int(sig_addrcount_take(t, &a, 3), 0, "the 4th is refused");
    is_int(sig_addrcount_get(t, &a), 3, "... and not counted");
    is_int(sig_addrcount_take(t, &b, 3), 1, "another address is not affected");
    sig_addrcount_release(t, &a);
    is_int(sig_addrcount_take(t, &a, 3), 3, "a release makes room again");
    is_int(sig_addrcount_take(t, &a, 0), 4, "max 0: no cap");
    for (i = 0; i != 4; ++i)
        sig_addrcount_release(t, &a);
    is_int(sig_addrcount_get(t, &a), 0, "all released");
    is_int(sig_addrcount_size(t), 1, "the entry is gone, the other stays");
    sig_addrcount_release(t, &a);
    is_int(sig_addrcount_get(t, &a), 0, "releasing an absent address changes nothing");
    sig_addrcount_destroy(t);
}

/* Many addresses (colliding probe runs, growth) taken and released at random: the table always agrees
 * with a plain array of counts. */
static void test_churn(void)
{
    enum { N = 5000, STEPS = 400000 };
    static unsigned model[N];
    sig_addrcount_t *t = sig_addrcount_create();
    unsigned seed = 12345, i, mismatches = 0, live = 0;
    size_t expected_size = 0;

    for (i = 0; i != STEPS; ++i) {
        unsigned which, r;
        uint8_t addr[4];
        sig_addr_key_t k;
        seed = seed * 1103515245u + 12345u;
        r = seed >> 8;
        which = r % N;
        addr[0] = 10;
        addr[1] = (uint8_t)(which >> 16);
        addr[2] = (uint8_t)(which >> 8);
        addr[3] = (uint8_t)which;
        k = sig_addrcount_key(4, addr, 64);
        if ((r >> 16) % 3 != 0 || model[which] == 0) {
            size_t got = sig_addrcount_take(t, &k, 8), want = model[which] < 8 ? model[which] + 1 : 0;
            if (want != 0) {
                expected_size += model[which] == 0;
                ++model[which];
                ++live;
            }
            mismatches += got != want;
        } else {
            sig_addrcount_release(t, &k);
            --model[which];
            --live;
            expected_size -= model[which] == 0;
        }
        if (i % 997 == 0)
            mismatches += sig_addrcount_size(t) != expected_size;
    }
    for (i = 0; i != N; ++i) {
        uint8_t addr[4] = {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        sig_addr_key_t k = sig_addrcount_key(4, addr, 64);
        mismatches += sig_addrcount_get(t, &k) != model[i];
    }
    is_int(mismatches, 0, "%d random takes and releases over %d addresses agree with the model (%u connections left)", STEPS, N,
           live);
    sig_addrcount_destroy(t);
}

int main(void)
{
    test_keys();
    test_caps();
    test_churn();
    return done_testing();
}
