/*
 * sig_registry.c: user id -> connections, connection -> identity.
 *
 * Users live in a chained hash table (power-of-two buckets, doubled above load factor 1, halved below 1/4) keyed by
 * SipHash-1-3 with a random key: ids are chosen by clients, so an unkeyed hash would let them pile every id into one
 * chain. Each user keeps its bindings in a doubly linked list in bind order, so unbind is O(1) and lookup copies the
 * endpoints in the order the devices connected.
 *
 * Memory: a user is one allocation (about 34 bytes plus its id, stored inline); a binding is one allocation of 40.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>
#include "core/sig_registry.h"

#define MIN_BUCKETS 16

struct st_sig_user_t {
    struct st_sig_user_t *next; /* hash chain */
    sig_binding_t *first, *last;
    uint32_t num_bindings;
    uint32_t hash;   /* low bits of the keyed hash: bucket index on rehash, cheap reject on compare */
    uint16_t id_len; /* SIG_USER_ID_MAX fits */
    char id[];
};

struct st_sig_binding_t {
    sig_binding_t *prev, *next; /* siblings of the same user, bind order */
    struct st_sig_user_t *user;
    sig_endpoint_t ep;
};

struct st_sig_registry_t {
    struct st_sig_user_t **buckets;
    size_t num_buckets; /* a power of two */
    size_t num_users;
    size_t num_bindings;
    size_t max_conns_per_user; /* never 0 here: "no limit" is stored as UINT32_MAX, the most a user record counts */
    uint64_t k0, k1;           /* SipHash key */
};

/* ---------------------------------------------------------------------------------------------------------------------
 * SipHash-1-3 (Aumasson & Bernstein; the variant Rust's HashMap and CPython use for short keys)
 * -------------------------------------------------------------------------------------------------------------------*/

#define SIP_C_ROUNDS 1
#define SIP_D_ROUNDS 3
#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND()                                                                                                         \
    do {                                                                                                                   \
        v0 += v1;                                                                                                          \
        v1 = ROTL64(v1, 13);                                                                                               \
        v1 ^= v0;                                                                                                          \
        v0 = ROTL64(v0, 32);                                                                                               \
        v2 += v3;                                                                                                          \
        v3 = ROTL64(v3, 16);                                                                                               \
        v3 ^= v2;                                                                                                          \
        v0 += v3;                                                                                                          \
        v3 = ROTL64(v3, 21);                                                                                               \
        v3 ^= v0;                                                                                                          \
        v2 += v1;                                                                                                          \
        v1 = ROTL64(v1, 17);                                                                                               \
        v1 ^= v2;                                                                                                          \
        v2 = ROTL64(v2, 32);                                                                                               \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; --i)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t m, last = (uint64_t)len << 56;
    const unsigned char *end = in + (len - len % 8);
    size_t i;
    int r;

    for (; in != end; in += 8) {
        m = load_le64(in);
        v3 ^= m;
        for (r = 0; r < SIP_C_ROUNDS; ++r)
            SIPROUND();
        v0 ^= m;
    }
    for (i = 0; i < len % 8; ++i)
        last |= (uint64_t)in[i] << (8 * i);
    v3 ^= last;
    for (r = 0; r < SIP_C_ROUNDS; ++r)
        SIPROUND();
    v0 ^= last;
    v2 ^= 0xff;
    for (r = 0; r < SIP_D_ROUNDS; ++r)
        SIPROUND();
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t hash_id(const sig_registry_t *reg, sig_str_t id)
{
    return (uint32_t)siphash(reg->k0, reg->k1, (const unsigned char *)id.base, id.len);
}

static void random_key(uint8_t key[16])
{
    size_t off = 0;
    int fd;

    while (off < 16) {
        ssize_t r = getrandom(key + off, 16 - off, 0);
        if (r > 0) {
            off += (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            goto Fallback;
        }
    }
    return;

Fallback: /* kernels before 3.17 lack getrandom() */
    if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) == -1)
        sig_fatal("sig_registry: no source of randomness for the hash key");
    while (off < 16) {
        ssize_t r = read(fd, key + off, 16 - off);
        if (r > 0) {
            off += (size_t)r;
        } else if (!(r < 0 && errno == EINTR)) {
            close(fd);
            sig_fatal("sig_registry: cannot read /dev/urandom for the hash key");
        }
    }
    close(fd);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Low level: the user table
 * -------------------------------------------------------------------------------------------------------------------*/

static int id_is_valid(sig_str_t id)
{
    return id.len != 0 && id.len <= SIG_USER_ID_MAX;
}

static int user_has_id(const struct st_sig_user_t *user, uint32_t hash, sig_str_t id)
{
    return user->hash == hash && user->id_len == id.len && memcmp(user->id, id.base, id.len) == 0;
}

/** Returns the user with that id, or NULL. */
static struct st_sig_user_t *find_user(const sig_registry_t *reg, uint32_t hash, sig_str_t id)
{
    struct st_sig_user_t *user;
    for (user = reg->buckets[hash & (reg->num_buckets - 1)]; user != NULL; user = user->next)
        if (user_has_id(user, hash, id))
            return user;
    return NULL;
}

/** Moves every user into a table of `num_buckets` buckets (a power of two). */
static void rehash(sig_registry_t *reg, size_t num_buckets)
{
    struct st_sig_user_t **buckets = sig_mem_alloc(num_buckets * sizeof(*buckets));
    size_t i;

    memset(buckets, 0, num_buckets * sizeof(*buckets));
    for (i = 0; i != reg->num_buckets; ++i) {
        struct st_sig_user_t *user = reg->buckets[i], *next;
        for (; user != NULL; user = next) {
            struct st_sig_user_t **slot = buckets + (user->hash & (num_buckets - 1));
            next = user->next;
            user->next = *slot;
            *slot = user;
        }
    }
    free(reg->buckets);
    reg->buckets = buckets;
    reg->num_buckets = num_buckets;
}

/** Creates an empty user (no bindings yet) and links it into the table. */
static struct st_sig_user_t *add_user(sig_registry_t *reg, uint32_t hash, sig_str_t id)
{
    struct st_sig_user_t *user = sig_mem_alloc(offsetof(struct st_sig_user_t, id) + id.len), **slot;

    user->first = NULL;
    user->last = NULL;
    user->num_bindings = 0;
    user->hash = hash;
    user->id_len = (uint16_t)id.len;
    memcpy(user->id, id.base, id.len);

    if (reg->num_users + 1 > reg->num_buckets && reg->num_buckets <= SIZE_MAX / 2 / sizeof(*reg->buckets))
        rehash(reg, reg->num_buckets * 2);
    slot = reg->buckets + (hash & (reg->num_buckets - 1));
    user->next = *slot;
    *slot = user;
    ++reg->num_users;
    return user;
}

/** Unlinks a user from the table and frees it; the caller has checked it has no binding left. */
static void remove_user(sig_registry_t *reg, struct st_sig_user_t *user)
{
    struct st_sig_user_t **slot = reg->buckets + (user->hash & (reg->num_buckets - 1));

    /* chains average under one entry, so the walk to the predecessor keeps removal O(1) in practice */
    while (*slot != user)
        slot = &(*slot)->next;
    *slot = user->next;
    free(user);
    --reg->num_users;

    /* give memory back after a crowd leaves; halving at 1/4 leaves room before the next doubling */
    if (reg->num_buckets > MIN_BUCKETS && reg->num_users < reg->num_buckets / 4)
        rehash(reg, reg->num_buckets / 2);
}

/** Appends a binding to the user's list (bind order). */
static void link_binding(struct st_sig_user_t *user, sig_binding_t *b)
{
    b->user = user;
    b->next = NULL;
    b->prev = user->last;
    if (user->last != NULL)
        user->last->next = b;
    else
        user->first = b;
    user->last = b;
    ++user->num_bindings;
}

/** Takes a binding out of its user's list; frees the user when that was its last connection. */
static void unlink_binding(sig_registry_t *reg, sig_binding_t *b)
{
    struct st_sig_user_t *user = b->user;

    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        user->first = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    else
        user->last = b->prev;
    b->user = NULL;

    /* the last connection of this user is gone: the user entry goes at once, so "offline" is simply "not found" and
     * the table never holds an empty user */
    if (--user->num_bindings == 0)
        remove_user(reg, user);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * API
 * -------------------------------------------------------------------------------------------------------------------*/

void sig_registry_set_max_conns(sig_registry_t *reg, size_t max_conns_per_user)
{
    reg->max_conns_per_user = max_conns_per_user == 0 || max_conns_per_user > UINT32_MAX ? UINT32_MAX : max_conns_per_user;
}

sig_registry_t *sig_registry_create_seeded(size_t max_conns_per_user, const uint8_t key[16])
{
    sig_registry_t *reg = sig_mem_alloc(sizeof(*reg));

    reg->num_buckets = MIN_BUCKETS;
    reg->buckets = sig_mem_alloc(reg->num_buckets * sizeof(*reg->buckets));
    memset(reg->buckets, 0, reg->num_buckets * sizeof(*reg->buckets));
    reg->num_users = 0;
    reg->num_bindings = 0;
    reg->max_conns_per_user = max_conns_per_user == 0 || max_conns_per_user > UINT32_MAX ? UINT32_MAX : max_conns_per_user;
    reg->k0 = load_le64(key);
    reg->k1 = load_le64(key + 8);
    return reg;
}

sig_registry_t *sig_registry_create(size_t max_conns_per_user)
{
    uint8_t key[16];
    random_key(key);
    return sig_registry_create_seeded(max_conns_per_user, key);
}

void sig_registry_destroy(sig_registry_t *reg)
{
    size_t i;

    if (reg == NULL)
        return;
    for (i = 0; i != reg->num_buckets; ++i) {
        struct st_sig_user_t *user = reg->buckets[i], *next_user;
        for (; user != NULL; user = next_user) {
            sig_binding_t *b = user->first, *next_b;
            for (; b != NULL; b = next_b) {
                next_b = b->next;
                free(b);
            }
            next_user = user->next;
            free(user);
        }
    }
    free(reg->buckets);
    free(reg);
}

int sig_registry_bind(sig_registry_t *reg, sig_str_t user_id, sig_endpoint_t ep, sig_binding_t **binding)
{
    struct st_sig_user_t *user;
    sig_binding_t *b = *binding;
    uint32_t hash;

    if (!id_is_valid(user_id))
        return SIG_ERR_BAD_ID;
    hash = hash_id(reg, user_id);
    if (b != NULL && user_has_id(b->user, hash, user_id))
        return 0; /* create_connect repeated with the same id */

    /* check the cap before touching anything, so a refused move leaves the old identity in place */
    if ((user = find_user(reg, hash, user_id)) != NULL) {
        if (user->num_bindings >= reg->max_conns_per_user)
            return SIG_ERR_TOO_MANY_CONNECTIONS;
    } else {
        user = add_user(reg, hash, user_id);
    }

    if (b != NULL) {
        /* move: leave the old user (freed if this was its last connection; it cannot be `user`, the ids differ) */
        unlink_binding(reg, b);
    } else {
        b = sig_mem_alloc(sizeof(*b));
        ++reg->num_bindings;
    }
    b->ep = ep;
    link_binding(user, b);
    *binding = b;
    return 0;
}

void sig_registry_unbind(sig_registry_t *reg, sig_binding_t **binding)
{
    sig_binding_t *b = *binding;

    if (b == NULL)
        return;
    unlink_binding(reg, b);
    free(b);
    --reg->num_bindings;
    *binding = NULL;
}

size_t sig_registry_lookup(const sig_registry_t *reg, sig_str_t user_id, sig_endpoint_t *out, size_t out_cap)
{
    const struct st_sig_user_t *user;
    const sig_binding_t *b;
    size_t n = 0;

    if (!id_is_valid(user_id))
        return 0; /* such an id can never be bound */
    if ((user = find_user(reg, hash_id(reg, user_id), user_id)) == NULL)
        return 0;
    for (b = user->first; b != NULL && n < out_cap; b = b->next)
        out[n++] = b->ep;
    return user->num_bindings;
}

sig_str_t sig_binding_user_id(const sig_binding_t *binding)
{
    return sig_str(binding->user->id, binding->user->id_len);
}

sig_endpoint_t sig_binding_endpoint(const sig_binding_t *binding)
{
    return binding->ep;
}

size_t sig_registry_num_users(const sig_registry_t *reg)
{
    return reg->num_users;
}

size_t sig_registry_num_bindings(const sig_registry_t *reg)
{
    return reg->num_bindings;
}
