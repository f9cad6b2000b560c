/*
 * sig_shard.c: FNV-1a 64 and Jump consistent hash (see sig_shard.h).
 */
#include "core/sig_shard.h"

uint64_t sig_shard_fnv1a64(const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i != len; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint32_t sig_shard_jump(uint64_t key, uint32_t num_buckets)
{
    int64_t b = -1, j = 0;

    if (num_buckets == 0)
        return 0;
    /* The reference algorithm, line for line. The product fits int64: b + 1 <= num_buckets < 2^32 and the step is at
     * most 2^31, so it stays below 2^63. */
    while (j < (int64_t)num_buckets) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
    }
    return (uint32_t)b;
}

uint32_t sig_shard_of_user(sig_str_t user_id, uint32_t num_shards)
{
    if (num_shards <= 1)
        return 0;
    return sig_shard_jump(sig_shard_fnv1a64(user_id.base, user_id.len), num_shards);
}
