/*
 * sig_shard.h: which Redis shard holds a user. With several independent Redis instances (scaleout.md, section 6),
 * every node must send a user's SUBSCRIBE and every dial to that user to the same instance, without asking anyone:
 * so the shard is a pure function of the user id and the number of shards, the same on every node and every version.
 *
 * The scheme is Centrifuge's consistentIndex: Jump consistent hash (Lamping & Veach, 2014) over FNV-1a 64 of the id's
 * bytes. Jump needs no table and, when a shard is added (n -> n + 1), moves only about 1/(n + 1) of the users, all of
 * them to the new shard, so growing the cluster resubscribes as few users as possible.
 *
 * Never change these functions' results: nodes of two versions sharing one cluster must agree on every user.
 */
#ifndef SIG_SHARD_H
#define SIG_SHARD_H

#include <stddef.h>
#include <stdint.h>
#include "common/sig_common.h"

/**
 * FNV-1a 64-bit hash of `len` bytes (offset basis 0xcbf29ce484222325, prime 0x100000001b3); `bytes` may be NULL when
 * len is 0. Not keyed: it only spreads ids over shards, it is no defence against chosen ids (the registry's is).
 */
uint64_t sig_shard_fnv1a64(const void *bytes, size_t len);

/**
 * Jump consistent hash: the bucket of `key` among `num_buckets` (>= 1), in [0, num_buckets). The reference algorithm
 * exactly, so the values match every other implementation of it (Centrifuge's, Guava's). 0 when num_buckets is 0.
 */
uint32_t sig_shard_jump(uint64_t key, uint32_t num_buckets);

/**
 * The shard of a user among `num_shards`: sig_shard_jump(sig_shard_fnv1a64(user_id), num_shards), in
 * [0, num_shards); 0 when num_shards <= 1 (one Redis, or none).
 */
uint32_t sig_shard_of_user(sig_str_t user_id, uint32_t num_shards);

#endif
