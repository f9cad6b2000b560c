/*
 * Directives of the signaling handler. Parsing only: the runtime is in sig_signaling.c.
 *
 * Every `signaling.*` directive is a row of one table (name, field, default, bounds, doc line);
 * values set at global or host level are inherited by the paths below, as h2o's own are.
 * tests/unit/test_config_docs.c checks docs/configuration.md against the table.
 */
#include <errno.h>
#include <stdio.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "core/sig_jwt.h"
#include "signaling/sig_metrics_handler.h"
#include "signaling/sig_redis_config.h"
#include "signaling/sig_signaling.h"

#define FIELD(name) offsetof(sig_signaling_config_t, name)

const sig_directive_t sig_signaling_directives[] = {
    {"signaling.max-message-size", SIG_DIRECTIVE_SIZE, FIELD(ws.max_message_size), 65536, 16, 16 * 1024 * 1024, NULL,
     "largest message a client may send, in bytes; a larger one closes the connection with 1009"},
    {"signaling.max-queued-bytes", SIG_DIRECTIVE_SIZE, FIELD(ws.max_queued_bytes), 1024 * 1024, 1024, 1024ull * 1024 * 1024, NULL,
     "most bytes waiting to be sent to one connection; a client that stops reading past it is closed with 1008"},
    {"signaling.max-connections-per-user", SIG_DIRECTIVE_SIZE, FIELD(max_connections_per_user), 8, 1, 1024, NULL,
     "most connections (devices) one user id may have at once; create_connect past it is refused"},
    {"signaling.max-connections-per-ip", SIG_DIRECTIVE_SIZE, FIELD(max_connections_per_ip), 0, 0, 1000000, NULL,
     "most WebSocket connections from one client address at once (0: no cap); past it the handshake gets 429"},
    {"signaling.ping-interval", SIG_DIRECTIVE_U64, FIELD(ws.ping_interval), 30000, 0, 3600000, NULL,
     "milliseconds between the server's pings on an idle connection (0 turns the heartbeat off)"},
    {"signaling.ping-timeout", SIG_DIRECTIVE_U64, FIELD(ws.ping_timeout), 10000, 1, 3600000, NULL,
     "milliseconds a client has to answer a ping before it is dropped and unregistered"},
    {"signaling.compression", SIG_DIRECTIVE_FLAG, FIELD(ws.compression), 0, 0, 0, "OFF | `ON`, `OFF`",
     "ON accepts permessage-deflate (RFC 7692) when a client offers it, without context takeover (docs/performance.md#compression); OFF never does"},
    {"signaling.compression-min-size", SIG_DIRECTIVE_SIZE, FIELD(ws.compression_min_size), 256, 0, 16 * 1024 * 1024, NULL,
     "with signaling.compression: messages the server sends shorter than this many bytes go uncompressed"},
    {"signaling.tls-takeover", SIG_DIRECTIVE_FLAG, FIELD(ws.tls_takeover), 1, 0, 0, "ON | `ON`, `OFF`",
     "ON: after the upgrade of a TLS 1.3 connection the handler seals and opens its records itself and frees OpenSSL's state of it (docs/performance.md#tls); OFF leaves them to h2o"},
    {"signaling.rate-limit", SIG_DIRECTIVE_SIZE, FIELD(rate_limit), 200, 0, 1000000, NULL,
     "messages per second one connection may send on average (0: no limit); past it replies are rate_limited"},
    {"signaling.rate-limit-burst", SIG_DIRECTIVE_SIZE, FIELD(rate_limit_burst), 400, 1, 1000000, NULL,
     "messages a connection may send at once above the rate; a client that goes on past another burst is closed with 1008"},
    {"signaling.auth.hmac-key-file", SIG_DIRECTIVE_KEY_FILE, FIELD(auth_key), 0, 0, 0, "(none: level-1, no tokens) | a file",
     "file holding the HS256 key (32 bytes or more; one trailing newline is ignored); set, create_connect needs a valid token"},
    {"signaling.push-key-file", SIG_DIRECTIVE_KEY_FILE, FIELD(push_key), 0, 0, 0, "(none: no push API) | a file",
     "file holding the bearer key (32 bytes or more; one trailing newline is ignored) of the push API: `POST` to the path delivers to users"},
    {"signaling.allowed-origins", SIG_DIRECTIVE_ORIGINS, FIELD(allowed_origins), 0, 0, 0, "(any) | an origin or a list; `*` is any",
     "Origin values a browser handshake may carry (exact match); any other gets 403 before the upgrade"},
    {"signaling.drain-timeout", SIG_DIRECTIVE_U64, FIELD(drain_timeout), 10000, 0, 3600000, NULL,
     "milliseconds the sockets of a path removed by a reload stay open before they are closed with 1001 (0: at once)"},
    {"signaling.redis", SIG_DIRECTIVE_REDIS, FIELD(redis), 0, 0, 0,
     "(none: this node alone) | `HOST:PORT`, `unix:PATH`, a mapping, a sequence (shards)",
     "the Redis through which several nodes share this path's users (docs/scaling.md); `-t` checks it without connecting"},
    {"signaling.node-id", SIG_DIRECTIVE_NODE_ID, FIELD(node_id), 0, 0, 0, "(HOSTNAME-PID-RANDOM) | 1 to 64 of `A-Z a-z 0-9 . - _`",
     "this node's name in Redis; every node needs its own (the default is unique per process)"},
    {"signaling.redis-connect-timeout", SIG_DIRECTIVE_U64, FIELD(redis_connect_timeout), 1000, 10, 60000, NULL,
     "milliseconds a connection to Redis (Sentinel lookup and handshake included) may take before it is retried"},
    {"signaling.redis-result-timeout", SIG_DIRECTIVE_U64, FIELD(redis_result_timeout), 1000, 10, 60000, NULL,
     "milliseconds a dial waits for the other nodes' counts; a node that has not answered by then counts 0"},
    {"signaling.redis-reconnect-min", SIG_DIRECTIVE_U64, FIELD(redis_reconnect_min), 100, 10, 60000, NULL,
     "milliseconds before the first reconnect to Redis; each failure in a row doubles it (jittered by 25%)"},
    {"signaling.redis-reconnect-max", SIG_DIRECTIVE_U64, FIELD(redis_reconnect_max), 5000, 10, 600000, NULL,
     "the longest wait between two reconnects to Redis, in milliseconds"},
    {"signaling.redis-probe-interval", SIG_DIRECTIVE_U64, FIELD(redis_probe_interval), 1000, 50, 60000, NULL,
     "milliseconds between probes of each Redis shard; one silent for 3 intervals is reconnected (a stopped Redis is found in seconds)"},
    {"signaling.call", SIG_DIRECTIVE_FLAG, FIELD(calls), 1, 0, 0, "ON | `ON`, `OFF`",
     "offers level 2 (server-owned calls, docs/protocol.md#level-2-calls) to a `create_connect` with `\"level\":2`; OFF answers it as level 1"},
    {"signaling.call.ring-timeout", SIG_DIRECTIVE_U64, FIELD(call.ring_timeout_ms), 60000, 100, 600000, NULL,
     "milliseconds a call rings before it ends with `no_answer`"},
    {"signaling.call.reconnect-grace", SIG_DIRECTIVE_U64, FIELD(call.reconnect_grace_ms), 30000, 0, 300000, NULL,
     "milliseconds a party whose connection was lost (not closed) may take to come back before the call ends with `peer_gone`"},
    {"signaling.call.when-busy", SIG_DIRECTIVE_WHEN_BUSY, FIELD(call.when_busy), 0, 0, 0, "busy | `busy`, `ring`",
     "a call to a user already in an active call: `busy` ends it at once with `busy`, `ring` rings anyway (call waiting)"},
    {"signaling.call.max-per-user", SIG_DIRECTIVE_SIZE, FIELD(call.max_per_user), 4, 0, 1024, NULL,
     "most live calls (ringing or active, either role) one user may have; a `call` past it gets `too_many_calls` (0: no limit)"},
    {"signaling.call.max-signal-size", SIG_DIRECTIVE_SIZE, FIELD(call.max_signal_size), 65536, 16, 16 * 1024 * 1024, NULL,
     "largest `data` of a `call_signal`, in bytes; a larger one gets `signal_too_large` (signaling.max-message-size bounds the whole message)"},
    {"signaling.call.signal-rate", SIG_DIRECTIVE_SIZE, FIELD(call.signal_rate), 20, 0, 100000, NULL,
     "`call_signal`s per second one party of a call may send on average (0: no limit); past it they get `rate_limited`"},
    {"signaling.call.signal-burst", SIG_DIRECTIVE_SIZE, FIELD(call.signal_burst), 64, 1, 100000, NULL,
     "`call_signal`s a party may send at once above signaling.call.signal-rate"},
    {"signaling.call.signal-buffer", SIG_DIRECTIVE_SIZE, FIELD(call.signal_buffer), 64, 1, 10000, NULL,
     "`call_signal`s kept for a party that cannot take them yet (before the accept, or while detached); past it they get `buffer_full`"},
    {"signaling.call.max-duration", SIG_DIRECTIVE_U64, FIELD(call.max_duration_ms), 0, 0, 604800000, NULL,
     "milliseconds an answered call may last before it ends with `max_duration` (0: no limit)"},
    {"signaling.metrics", SIG_DIRECTIVE_METRICS, 0, 0, 0, 0, "OFF | `ON`, `OFF`; at a path of its own",
     "serves the Prometheus metrics of every `signaling: ON` path of the process there (docs/operations.md#metrics); restrict who may reach it"},
    {NULL}};

struct st_sig_signaling_configurator_t {
    h2o_configurator_t super;
    sig_signaling_config_t *vars; /* the current level's settings, top of `stack` */
    sig_signaling_config_t stack[H2O_CONFIGURATOR_NUM_LEVELS + 1];
    H2O_VECTOR(void *) owned; /* keys and origin lists: shared by the paths that inherit them, freed at dispose */
};

static const sig_directive_t *find_directive(const char *name)
{
    const sig_directive_t *d;
    for (d = sig_signaling_directives; d->name != NULL; ++d)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

static int on_config_number(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)cmd->configurator;
    const sig_directive_t *d = find_directive(cmd->name);
    const char *s = node->data.scalar;
    unsigned long long value;
    char *end;

    errno = 0;
    value = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || value < d->min_value || value > d->max_value) {
        h2o_configurator_errprintf(cmd, node, "must be a whole number from %llu to %llu, not `%s`", d->min_value, d->max_value, s);
        return -1;
    }
    if (d->kind == SIG_DIRECTIVE_U64)
        *(uint64_t *)((char *)self->vars + d->offset) = value;
    else
        *(size_t *)((char *)self->vars + d->offset) = (size_t)value;
    return 0;
}

/* ON/OFF and busy/ring: the index of the value in the list is what the field holds */
static int on_config_choice(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)cmd->configurator;
    const sig_directive_t *d = find_directive(cmd->name);
    ssize_t value = h2o_configurator_get_one_of(cmd, node, d->kind == SIG_DIRECTIVE_FLAG ? "OFF,ON" : "busy,ring");
    if (value < 0)
        return -1;
    *(int *)((char *)self->vars + d->offset) = (int)value;
    return 0;
}

static void *own(struct st_sig_signaling_configurator_t *self, void *p)
{
    h2o_vector_reserve(NULL, &self->owned, self->owned.size + 1);
    self->owned.entries[self->owned.size++] = p;
    return p;
}

static void *own_cb(void *self, void *p)
{
    return own(self, p);
}

static int on_config_redis(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)cmd->configurator;
    const sig_redis_conf_t *conf = sig_redis_config_parse(cmd, node, own_cb, self);
    if (conf == NULL)
        return -1;
    self->vars->redis = conf;
    return 0;
}

static int on_config_node_id(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)cmd->configurator;
    if (sig_redis_config_check_node_id(cmd, node) != 0)
        return -1;
    self->vars->node_id = own(self, h2o_strdup(NULL, node->data.scalar, SIZE_MAX).base);
    return 0;
}

static int on_config_key_file(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)cmd->configurator;
    const sig_directive_t *d = find_directive(cmd->name);
    const char *path = node->data.scalar;
    h2o_iovec_t *key;
    char buf[4096];
    size_t len;
    FILE *fp;

    if ((fp = fopen(path, "rb")) == NULL) {
        h2o_configurator_errprintf(cmd, node, "cannot open `%s`: %s", path, strerror(errno));
        return -1;
    }
    len = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    /* `echo secret > file` leaves a newline that is not part of the key */
    if (len != 0 && buf[len - 1] == '\n')
        --len;
    if (len != 0 && buf[len - 1] == '\r')
        --len;
    if (len < SIG_JWT_MIN_KEY_LEN || len == sizeof(buf)) {
        h2o_configurator_errprintf(cmd, node, "the key in `%s` must be %d to %zu bytes (it has %zu)", path, SIG_JWT_MIN_KEY_LEN,
                                   sizeof(buf) - 1, len);
        return -1;
    }
    key = own(self, h2o_mem_alloc(sizeof(*key) + len));
    key->base = (char *)(key + 1);
    key->len = len;
    memcpy(key->base, buf, len);
    OPENSSL_cleanse(buf, sizeof(buf));
    *(h2o_iovec_t **)((char *)self->vars + d->offset) = key;
    return 0;
}

static int on_config_origins(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)cmd->configurator;
    yoml_t **items = &node;
    size_t n = 1, i;
    const char **list;

    if (node->type == YOML_TYPE_SEQUENCE) {
        items = node->data.sequence.elements;
        n = node->data.sequence.size;
    } else if (node->type != YOML_TYPE_SCALAR) {
        h2o_configurator_errprintf(cmd, node, "must be an origin (`https://app.example.com`), `*`, or a sequence of them");
        return -1;
    }
    list = own(self, h2o_mem_alloc(sizeof(*list) * (n + 1)));
    for (i = 0; i != n; ++i) {
        if (items[i]->type != YOML_TYPE_SCALAR || items[i]->data.scalar[0] == '\0') {
            h2o_configurator_errprintf(cmd, items[i], "each origin must be a non-empty string");
            return -1;
        }
        list[i] = own(self, h2o_strdup(NULL, items[i]->data.scalar, SIZE_MAX).base);
        if (strcmp(list[i], "*") == 0) {
            self->vars->allowed_origins = NULL; /* any origin: the same as not checking */
            return 0;
        }
    }
    list[n] = NULL;
    self->vars->allowed_origins = list;
    return 0;
}

/* `signaling: ON` and `websocket.echo: ON`: install that handler on the path with the settings in force. */
static int on_config_switch(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)cmd->configurator;
    switch (h2o_configurator_get_one_of(cmd, node, "OFF,ON")) {
    case 0:
        return 0;
    case 1:
        if (sig_metrics_is_installed(ctx->pathconf)) {
            h2o_configurator_errprintf(cmd, node, "this path serves the metrics (signaling.metrics: ON): put `%s: ON` on a path of its own",
                                       cmd->name);
            return -1;
        }
        if (strcmp(cmd->name, "websocket.echo") == 0) {
            sig_echo_register(ctx->pathconf, self->vars);
        } else {
            if (self->vars->redis != NULL && self->vars->redis_reconnect_min > self->vars->redis_reconnect_max) {
                h2o_configurator_errprintf(cmd, node, "signaling.redis-reconnect-min (%llu) is above signaling.redis-reconnect-max (%llu)",
                                           (unsigned long long)self->vars->redis_reconnect_min,
                                           (unsigned long long)self->vars->redis_reconnect_max);
                return -1;
            }
            char err[256];
            if (sig_signaling_register(ctx->pathconf, ctx->hostconf->authority.hostport, self->vars, err, sizeof(err)) != 0) {
                h2o_configurator_errprintf(cmd, node, "%s", err);
                return -1;
            }
        }
        return 0;
    default:
        return -1;
    }
}

static int on_config_dispose(h2o_configurator_t *_self)
{
    struct st_sig_signaling_configurator_t *self = (void *)_self;
    size_t i;
    for (i = 0; i != self->owned.size; ++i)
        free(self->owned.entries[i]);
    free(self->owned.entries);
    /* libh2o 2.2.5 may call a configurator's dispose twice */
    memset(&self->owned, 0, sizeof(self->owned));
    return 0;
}

static int on_config_enter(h2o_configurator_t *_self, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)_self;
    self->vars[1] = self->vars[0];
    ++self->vars;
    return 0;
}

static int on_config_exit(h2o_configurator_t *_self, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)_self;
    --self->vars;
    return 0;
}

void sig_signaling_register_configurator(h2o_globalconf_t *conf)
{
    struct st_sig_signaling_configurator_t *c = (void *)h2o_configurator_create(conf, sizeof(*c));
    const sig_directive_t *d;

    c->vars = c->stack;
    sig_call_settings_default(&c->vars->call); /* what no directive sets (tombstones, buffer bytes) */
    for (d = sig_signaling_directives; d->name != NULL; ++d) {
        switch (d->kind) {
        case SIG_DIRECTIVE_SIZE:
            *(size_t *)((char *)c->vars + d->offset) = (size_t)d->default_value;
            break;
        case SIG_DIRECTIVE_U64:
            *(uint64_t *)((char *)c->vars + d->offset) = d->default_value;
            break;
        case SIG_DIRECTIVE_FLAG:
        case SIG_DIRECTIVE_WHEN_BUSY:
            *(int *)((char *)c->vars + d->offset) = (int)d->default_value;
            break;
        default:
            break; /* NULL: off */
        }
        h2o_configurator_define_command(&c->super, d->name,
                                        d->kind == SIG_DIRECTIVE_METRICS /* a handler, like `signaling: ON` */
                                            ? H2O_CONFIGURATOR_FLAG_PATH | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR | H2O_CONFIGURATOR_FLAG_DEFERRED
                                            : H2O_CONFIGURATOR_FLAG_ALL_LEVELS |
                                                  (d->kind == SIG_DIRECTIVE_ORIGINS || d->kind == SIG_DIRECTIVE_REDIS
                                                       ? 0
                                                       : H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR),
                                        d->kind == SIG_DIRECTIVE_METRICS   ? sig_metrics_on_config
                                        : d->kind == SIG_DIRECTIVE_KEY_FILE  ? on_config_key_file
                                        : d->kind == SIG_DIRECTIVE_ORIGINS ? on_config_origins
                                        : d->kind == SIG_DIRECTIVE_REDIS   ? on_config_redis
                                        : d->kind == SIG_DIRECTIVE_NODE_ID ? on_config_node_id
                                        : d->kind == SIG_DIRECTIVE_FLAG || d->kind == SIG_DIRECTIVE_WHEN_BUSY ? on_config_choice
                                                                           : on_config_number);
    }
    c->super.enter = on_config_enter;
    c->super.exit = on_config_exit;
    c->super.dispose = on_config_dispose;
    h2o_configurator_define_command(&c->super, "websocket.echo",
                                    H2O_CONFIGURATOR_FLAG_PATH | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR | H2O_CONFIGURATOR_FLAG_DEFERRED,
                                    on_config_switch);
    /* deferred: the signaling.* settings of the same path apply first, whatever their order in the file */
    h2o_configurator_define_command(&c->super, "signaling",
                                    H2O_CONFIGURATOR_FLAG_PATH | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR | H2O_CONFIGURATOR_FLAG_DEFERRED,
                                    on_config_switch);
    sig_metrics_register_status(conf); /* the `signaling` section of `status: ON`'s JSON */
}
