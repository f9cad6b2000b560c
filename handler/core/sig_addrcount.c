/*
 * sig_addrcount.c: an open-addressing hash table (linear probing, backward-shift deletion: no
 * tombstones, so a table under constant churn of short connections never degrades), keyed by
 * sig_addr_key_t, hashed with FNV-1a. It grows at half full and never shrinks below its first size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/sig_common.h"
#include "core/sig_addrcount.h"

#define INITIAL_CAPACITY 256 /* a power of two */

struct st_slot_t {
    sig_addr_key_t key;
    uint32_t count; /* 0: empty */
};

struct st_sig_addrcount_t {
    struct st_slot_t *slots;
    size_t capacity; /* a power of two */
    size_t used;
};

sig_addr_key_t sig_addrcount_key(int family, const uint8_t *addr, unsigned ipv6_prefix)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    sig_addr_key_t key;
    unsigned i;

    memset(&key, 0, sizeof(key));
    if (family == 6 && memcmp(addr, v4mapped, sizeof(v4mapped)) == 0) {
        family = 4;
        addr += sizeof(v4mapped);
    }
    key.family = (uint8_t)family;
    if (family == 4) {
        memcpy(key.bytes, addr, 4);
        return key;
    }
    if (ipv6_prefix == 0 || ipv6_prefix > 128)
        ipv6_prefix = 128;
    for (i = 0; i != ipv6_prefix / 8; ++i)
        key.bytes[i] = addr[i];
    if (ipv6_prefix % 8 != 0)
        key.bytes[i] = addr[i] & (uint8_t)(0xff << (8 - ipv6_prefix % 8));
    return key;
}

void sig_addrcount_format(const sig_addr_key_t *key, unsigned ipv6_prefix, char *buf, size_t size)
{
    const uint8_t *b = key->bytes;
    size_t off = 0;
    int i;

    if (key->family == 4) {
        snprintf(buf, size, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
        return;
    }
    /* the groups in full hex (no "::" shortening: a log line, not an address to paste back) */
    for (i = 0; i != 8 && off < size; ++i)
        off += (size_t)snprintf(buf + off, size - off, "%s%x", i == 0 ? "" : ":", (unsigned)b[2 * i] << 8 | b[2 * i + 1]);
    if (off < size && ipv6_prefix < 128)
        snprintf(buf + off, size - off, "/%u", ipv6_prefix);
}

static size_t hash_key(const sig_addr_key_t *key)
{
    uint64_t h = UINT64_C(14695981039346656037);
    size_t i, n = key->family == 4 ? 4 : 16;
    h = (h ^ key->family) * UINT64_C(1099511628211);
    for (i = 0; i != n; ++i)
        h = (h ^ key->bytes[i]) * UINT64_C(1099511628211);
    return (size_t)(h ^ (h >> 29));
}

static int same_key(const sig_addr_key_t *a, const sig_addr_key_t *b)
{
    return a->family == b->family && memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

/* The slot holding `key`, or the empty slot where it would go. */
static struct st_slot_t *find_slot(const sig_addrcount_t *table, const sig_addr_key_t *key)
{
    size_t mask = table->capacity - 1, i = hash_key(key) & mask;
    while (table->slots[i].count != 0 && !same_key(&table->slots[i].key, key))
        i = (i + 1) & mask;
    return table->slots + i;
}

static void alloc_slots(sig_addrcount_t *table, size_t capacity)
{
    table->slots = sig_mem_alloc(sizeof(table->slots[0]) * capacity);
    memset(table->slots, 0, sizeof(table->slots[0]) * capacity);
    table->capacity = capacity;
}

static void grow(sig_addrcount_t *table)
{
    struct st_slot_t *old = table->slots;
    size_t old_capacity = table->capacity, i;

    alloc_slots(table, old_capacity * 2);
    for (i = 0; i != old_capacity; ++i)
        if (old[i].count != 0)
            *find_slot(table, &old[i].key) = old[i];
    free(old);
}

sig_addrcount_t *sig_addrcount_create(void)
{
    sig_addrcount_t *table = sig_mem_alloc(sizeof(*table));
    table->used = 0;
    alloc_slots(table, INITIAL_CAPACITY);
    return table;
}

void sig_addrcount_destroy(sig_addrcount_t *table)
{
    if (table == NULL)
        return;
    free(table->slots);
    free(table);
}

size_t sig_addrcount_take(sig_addrcount_t *table, const sig_addr_key_t *key, size_t max)
{
    struct st_slot_t *slot = find_slot(table, key);

    if (slot->count != 0) {
        if (max != 0 && slot->count >= max)
            return 0;
        return ++slot->count;
    }
    if ((table->used + 1) * 2 > table->capacity) {
        grow(table);
        slot = find_slot(table, key);
    }
    slot->key = *key;
    slot->count = 1;
    ++table->used;
    return 1;
}

void sig_addrcount_release(sig_addrcount_t *table, const sig_addr_key_t *key)
{
    struct st_slot_t *slot = find_slot(table, key);
    size_t mask = table->capacity - 1, hole, i;

    if (slot->count == 0 || --slot->count != 0)
        return;
    /* backward shift: move later entries of the probe run into the hole when their home allows it */
    --table->used;
    hole = (size_t)(slot - table->slots);
    for (i = (hole + 1) & mask; table->slots[i].count != 0; i = (i + 1) & mask) {
        size_t home = hash_key(&table->slots[i].key) & mask;
        /* the entry at i may fill the hole if its home is not in (hole, i] (cyclically) */
        if ((i > hole && (home <= hole || home > i)) || (i < hole && home <= hole && home > i)) {
            table->slots[hole] = table->slots[i];
            table->slots[i].count = 0;
            hole = i;
        }
    }
    table->slots[hole].count = 0;
}

size_t sig_addrcount_get(const sig_addrcount_t *table, const sig_addr_key_t *key)
{
    return find_slot(table, key)->count;
}

size_t sig_addrcount_size(const sig_addrcount_t *table)
{
    return table->used;
}
