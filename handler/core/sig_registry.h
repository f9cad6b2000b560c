/*
 * sig_registry.h: who is connected. A two-way index: user id -> that user's connections (in bind order), and
 * connection -> its one identity (the sig_binding_t handle the connection keeps).
 *
 * One registry per configured path. The registry does no locking and no I/O: the router guards it with a mutex when
 * several threads share it. Connections are named by value (sig_endpoint_t), never by pointer, because delivery
 * crosses threads and the owning thread looks its connection up again.
 */
#ifndef SIG_REGISTRY_H
#define SIG_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include "common/sig_common.h"

/**
 * Longest user id accepted, in bytes. Ids are 1..SIG_USER_ID_MAX arbitrary bytes (compared bytewise).
 */
#define SIG_USER_ID_MAX 256

/**
 * Where a connection lives: the thread that owns it and a connection id unique within that thread.
 */
typedef struct st_sig_endpoint_t {
    uint32_t thread;
    uint32_t node; /* 0: this node (the registry's are all here); a call owner's index of another node (route/sig_calls) */
    uint64_t conn_id;
} sig_endpoint_t;

/**
 * Returns 1 if both endpoints name the same connection.
 */
static inline int sig_endpoint_eq(sig_endpoint_t a, sig_endpoint_t b)
{
    return a.thread == b.thread && a.node == b.node && a.conn_id == b.conn_id;
}

typedef struct st_sig_registry_t sig_registry_t;

/**
 * A connection's membership in the registry; owned by the registry, kept by the connection (NULL = unbound).
 */
typedef struct st_sig_binding_t sig_binding_t;

/**
 * Creates an empty registry allowing at most `max_conns_per_user` connections per user id (0 means no limit). The
 * hash key comes from getrandom(), so bucket placement of attacker-chosen ids cannot be predicted. Never returns NULL
 * (aborts when out of memory or entropy).
 */
sig_registry_t *sig_registry_create(size_t max_conns_per_user);

/**
 * Same as sig_registry_create() with a fixed 16-byte hash key, for reproducible tests.
 */
sig_registry_t *sig_registry_create_seeded(size_t max_conns_per_user, const uint8_t key[16]);

/**
 * Changes the cap of connections per user (0: none). Users already past the new cap keep their connections; binds past
 * it are refused from now on.
 */
void sig_registry_set_max_conns(sig_registry_t *reg, size_t max_conns_per_user);

/**
 * Frees the registry and every user and binding still in it. Handles held by connections become invalid: call this
 * only once no connection will touch its binding again.
 */
void sig_registry_destroy(sig_registry_t *reg);

/**
 * Gives the connection `ep` the identity `user_id`. `*binding` is the connection's handle: NULL when unbound, set on
 * success. If `*binding` is already set, the same id is a no-op success (the endpoint is not changed) and another id
 * MOVES the connection (it leaves its old user, which is freed if it has no connection left, and joins the new one as
 * its newest connection).
 * Returns 0 on success, or (leaving `*binding` and the registry unchanged):
 *   SIG_ERR_BAD_ID               `user_id` is empty or longer than SIG_USER_ID_MAX bytes;
 *   SIG_ERR_TOO_MANY_CONNECTIONS the user already has max_conns_per_user connections. Policy: the NEW connection is
 *                                refused and the existing ones are untouched (no eviction: a stranger who knows an id
 *                                cannot kick its devices off); when moving, the connection keeps its old identity.
 */
int sig_registry_bind(sig_registry_t *reg, sig_str_t user_id, sig_endpoint_t ep, sig_binding_t **binding);

/**
 * Removes the connection's binding in O(1) and sets `*binding` to NULL; the user entry is freed when its last
 * connection leaves. Does nothing when `*binding` is NULL, so the close path can call it unconditionally.
 */
void sig_registry_unbind(sig_registry_t *reg, sig_binding_t **binding);

/**
 * Copies up to `out_cap` endpoints of `user_id`, in bind order, into `out` (which may be NULL when out_cap is 0).
 * Returns how many connections the user has in total (0: offline), which may exceed out_cap. Allocates nothing.
 */
size_t sig_registry_lookup(const sig_registry_t *reg, sig_str_t user_id, sig_endpoint_t *out, size_t out_cap);

/**
 * The identity of a binding; valid until the binding is unbound or moved.
 */
sig_str_t sig_binding_user_id(const sig_binding_t *binding);

/**
 * The endpoint a binding was made for.
 */
sig_endpoint_t sig_binding_endpoint(const sig_binding_t *binding);

/**
 * Number of distinct user ids that have at least one connection.
 */
size_t sig_registry_num_users(const sig_registry_t *reg);

/**
 * Number of bound connections, all users together.
 */
size_t sig_registry_num_bindings(const sig_registry_t *reg);

#endif
