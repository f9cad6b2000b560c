/*
 * test_shard.c: unit tests of handler/core/sig_shard.c (TAP): FNV-1a 64 against published vectors, Jump hash against
 * published values and against the paper's algorithm written out here, and the two properties sharding needs: users
 * spread evenly, and adding a shard moves only the users it takes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "core/sig_shard.h"
#include "tap.h"

#define NUM_IDS 100000

/* Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm" (2014), figure 1, as printed */
static int32_t reference_jump(uint64_t key, int32_t num_buckets)
{
    int64_t b = -1, j = 0;
    while (j < num_buckets) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
    }
    return (int32_t)b;
}

/* the i-th test id: decimal, like the phone-number-ish ids clients use */
static sig_str_t test_id(char *buf, size_t cap, size_t i)
{
    int n = snprintf(buf, cap, "%zu", 10000000 + i * 7);
    return sig_str(buf, (size_t)n);
}

static void test_fnv1a64(void)
{
    static const struct {
        const char *in;
        uint64_t want;
    } vectors[] = {
        /* from the FNV reference test suite (Fowler, Noll, Vo: test_fnv.c, fnv1a_64_vector) */
        {"", 0xcbf29ce484222325ULL},
        {"a", 0xaf63dc4c8601ec8cULL},
        {"b", 0xaf63df4c8601f1a5ULL},
        {"foo", 0xdcb27518fed9d577ULL},
        {"foobar", 0x85944171f73967e8ULL},
    };
    size_t i;

    for (i = 0; i != sizeof(vectors) / sizeof(vectors[0]); ++i)
        ok(sig_shard_fnv1a64(vectors[i].in, strlen(vectors[i].in)) == vectors[i].want, "fnv1a64(\"%s\") = %016" PRIx64,
           vectors[i].in, vectors[i].want);
    ok(sig_shard_fnv1a64(NULL, 0) == 0xcbf29ce484222325ULL, "NULL with length 0 is the empty input");
    ok(sig_shard_fnv1a64("a\0b", 3) != sig_shard_fnv1a64("a", 1), "a NUL byte is hashed like any other");
    ok(sig_shard_fnv1a64("\xff", 1) == ((0xcbf29ce484222325ULL ^ 0xff) * 0x100000001b3ULL),
       "a byte above 0x7f is hashed unsigned");
}

static void test_jump_known(void)
{
    /* published values (the C++ reference as used by ClickHouse's jumpConsistentHash tests and go-jump) */
    static const struct {
        uint64_t key;
        uint32_t n, want;
    } known[] = {
        {1, 1, 0}, {42, 57, 43}, {256, 1024, 520}, {0xDEAD10CC, 1, 0}, {0xDEAD10CC, 666, 361},
        {16045690984833335023ULL, 255, 237}, {0, 60, 0}, {1, 60, 55}, {2, 60, 46},
    };
    size_t i;
    uint32_t n;
    uint64_t key = 0x9e3779b97f4a7c15ULL;
    int mismatches = 0, out_of_range = 0;

    for (i = 0; i != sizeof(known) / sizeof(known[0]); ++i)
        is_int(sig_shard_jump(known[i].key, known[i].n), known[i].want, "jump(%" PRIu64 ", %" PRIu32 ") = %" PRIu32,
               known[i].key, known[i].n, known[i].want);

    for (i = 0; i != 20000; ++i) {
        key = key * 6364136223846793005ULL + 1442695040888963407ULL;
        n = (uint32_t)(1 + (key >> 40) % (i % 3 == 0 ? 10 : i % 3 == 1 ? 1000 : 0x7fffffff));
        mismatches += sig_shard_jump(key, n) != (uint32_t)reference_jump(key, (int32_t)n);
        out_of_range += sig_shard_jump(key, n) >= n;
    }
    is_int(mismatches, 0, "jump agrees with the paper's algorithm on 20000 keys and bucket counts");
    is_int(out_of_range, 0, "and every bucket is < num_buckets");

    for (out_of_range = 0, i = 0; i != 1000; ++i) {
        key = key * 6364136223846793005ULL + 1442695040888963407ULL;
        out_of_range += sig_shard_jump(key, UINT32_MAX) >= UINT32_MAX;
    }
    is_int(out_of_range, 0, "in range with UINT32_MAX buckets too");
    is_int(sig_shard_jump(12345, 1), 0, "one bucket: always 0");
    is_int(sig_shard_jump(12345, 0), 0, "no bucket (outside the contract): 0, not a wild value");
}

static void test_of_user(void)
{
    char buf[32];
    size_t i;
    uint32_t n;
    int mismatches = 0, out_of_range = 0;

    is_int(sig_shard_of_user(SIG_STRLIT("2211"), 0), 0, "no shard configured: 0");
    is_int(sig_shard_of_user(SIG_STRLIT("2211"), 1), 0, "one shard: 0");
    is_int(sig_shard_of_user(sig_str(NULL, 0), 5), sig_shard_jump(0xcbf29ce484222325ULL, 5),
           "an empty id is hashed too");
    for (i = 0; i != 1000; ++i) {
        sig_str_t id = test_id(buf, sizeof(buf), i);
        for (n = 2; n != 20; ++n) {
            uint32_t s = sig_shard_of_user(id, n);
            mismatches += s != sig_shard_jump(sig_shard_fnv1a64(id.base, id.len), n);
            out_of_range += s >= n;
        }
    }
    is_int(mismatches, 0, "of_user is jump(fnv1a64(id), n)");
    is_int(out_of_range, 0, "and always < n");
}

static void test_spread(void)
{
    size_t count[4] = {0, 0, 0, 0}, i;
    char buf[32];

    for (i = 0; i != NUM_IDS; ++i)
        ++count[sig_shard_of_user(test_id(buf, sizeof(buf), i), 4)];
    for (i = 0; i != 4; ++i)
        ok(count[i] >= NUM_IDS / 4 * 95 / 100 && count[i] <= NUM_IDS / 4 * 105 / 100,
           "shard %zu of 4 holds %zu of %d ids (within 5%% of even)", i, count[i], NUM_IDS);
}

static void test_consistency(void)
{
    static uint32_t before[NUM_IDS];
    char buf[32];
    uint32_t n;
    size_t i;

    for (i = 0; i != NUM_IDS; ++i)
        before[i] = sig_shard_of_user(test_id(buf, sizeof(buf), i), 1);
    for (n = 1; n != 12; ++n) {
        size_t moved = 0, moved_elsewhere = 0;
        double frac, want = 1.0 / (n + 1);
        for (i = 0; i != NUM_IDS; ++i) {
            uint32_t after = sig_shard_of_user(test_id(buf, sizeof(buf), i), n + 1);
            if (after != before[i]) {
                ++moved;
                moved_elsewhere += after != n; /* the new shard is the last one, n */
            }
            before[i] = after;
        }
        frac = (double)moved / NUM_IDS;
        is_int(moved_elsewhere, 0, "%u -> %u shards: every id that moved went to the new shard", n, n + 1);
        ok(frac > want * 0.95 && frac < want * 1.05, "%u -> %u shards: %.4f of the ids moved (1/%u = %.4f)", n, n + 1,
           frac, n + 1, want);
    }
}

int main(void)
{
    test_fnv1a64();
    test_jump_known();
    test_of_user();
    test_spread();
    test_consistency();
    return done_testing();
}
