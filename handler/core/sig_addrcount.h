/*
 * sig_addrcount.h: how many connections each client address holds, for `max-connections-per-address`
 * (docs/security.md). Pure: the caller turns a socket address into a key (sig_addrcount_key) and
 * serializes access (the server holds one table for all threads under a lock).
 *
 * An IPv6 client is counted by its prefix (64 bits by default): one host usually holds a whole /64,
 * so counting single IPv6 addresses would let it open a connection per address.
 */
#ifndef SIG_ADDRCOUNT_H
#define SIG_ADDRCOUNT_H

#include <stddef.h>
#include <stdint.h>

/** An address as counted: family 4 or 6, and the address's bytes (an IPv6 one cut to its prefix). */
typedef struct st_sig_addr_key_t {
    uint8_t family;
    uint8_t bytes[16]; /* 4 used for IPv4; for IPv6 the bits past the prefix are zero */
} sig_addr_key_t;

typedef struct st_sig_addrcount_t sig_addrcount_t;

/**
 * The key of an address: `family` 4 (`addr` 4 bytes) or 6 (16 bytes, cut to `ipv6_prefix` bits, 1 to
 * 128). An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address it maps.
 */
sig_addr_key_t sig_addrcount_key(int family, const uint8_t *addr, unsigned ipv6_prefix);

/** Writes the key as text ("203.0.113.7", "2001:db8:1:2::/64"); `buf` of 64 bytes is enough. */
void sig_addrcount_format(const sig_addr_key_t *key, unsigned ipv6_prefix, char *buf, size_t size);

sig_addrcount_t *sig_addrcount_create(void);
void sig_addrcount_destroy(sig_addrcount_t *table);

/**
 * Counts one more connection of `key` unless it already holds `max` (0: no cap). Returns the count
 * after the call, or 0 when the cap refused it (nothing counted).
 */
size_t sig_addrcount_take(sig_addrcount_t *table, const sig_addr_key_t *key, size_t max);

/** Releases one connection of `key` (taken before); the entry goes when its count reaches 0. */
void sig_addrcount_release(sig_addrcount_t *table, const sig_addr_key_t *key);

/** The connections `key` holds now. */
size_t sig_addrcount_get(const sig_addrcount_t *table, const sig_addr_key_t *key);

/** How many addresses hold connections now. */
size_t sig_addrcount_size(const sig_addrcount_t *table);

#endif
