/*
 * The value of `signaling.redis` (docs/configuration.md, docs/scaling.md): parsed and checked at
 * config time, never connected to (so `-t` needs no Redis).
 *
 *   signaling.redis: 127.0.0.1:6379                 one Redis (port 6379 when omitted)
 *   signaling.redis: unix:/run/redis/redis.sock     over a unix socket
 *   signaling.redis: {host: H, port: P, password-file: F, db: N, prefix: "sig:"}
 *                    (or `unix: PATH` instead of host and port)
 *   signaling.redis: {sentinel: {master: NAME, addresses: [H:P, ...]}, password-file: F, db: N, prefix: P}
 *   signaling.redis: [any of the above, ...]        shards: users spread by a consistent hash of their id
 */
#ifndef SIG_REDIS_CONFIG_H
#define SIG_REDIS_CONFIG_H

#include <stddef.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "route/sig_backplane.h"

/** The parsed value: one or more shards. */
typedef struct st_sig_redis_conf_t {
    sig_backplane_shard_t *shards;
    size_t num_shards;
} sig_redis_conf_t;

/** Keeps `p` (malloc'ed) until the configuration is disposed; returns it. */
typedef void *(*sig_redis_config_own_cb)(void *ctx, void *p);

/**
 * Parses `node` into a new sig_redis_conf_t whose every allocation went through `own`. Returns NULL
 * after reporting the error at the offending node ("FILE:LINE: signaling.redis: ...").
 */
sig_redis_conf_t *sig_redis_config_parse(h2o_configurator_command_t *cmd, yoml_t *node, sig_redis_config_own_cb own, void *own_ctx);

/**
 * Checks a `signaling.node-id` value: 1 to SIG_BUS_NODE_ID_MAX bytes of letters, digits, `.`, `-`, `_`.
 * Returns 0, or -1 after reporting the error.
 */
int sig_redis_config_check_node_id(h2o_configurator_command_t *cmd, yoml_t *node);

/** The node id used when none is configured: HOSTNAME-PID-RANDOM, the same for the whole process. */
const char *sig_redis_config_default_node_id(void);

#endif
