/*
 * Parsing `signaling.redis` and `signaling.node-id` (sig_redis_config.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include "core/sig_hostport.h"
#include "signaling/sig_redis_config.h"

#define DEFAULT_PORT 6379
#define DEFAULT_SENTINEL_PORT 26379
#define DEFAULT_PREFIX "sig:"
#define MAX_SHARDS 1024
#define MAX_DB 1000000

struct parse_ctx {
    h2o_configurator_command_t *cmd;
    sig_redis_config_own_cb own;
    void *own_ctx;
};

static char *own_strdup(struct parse_ctx *p, const char *s)
{
    return p->own(p->own_ctx, h2o_strdup(NULL, s, SIZE_MAX).base);
}

/* An address, "HOST:PORT" or "unix:PATH". */
static int parse_endpoint(struct parse_ctx *p, yoml_t *node, uint16_t default_port, sig_redis_endpoint_t *ep)
{
    char host[SIG_HOSTPORT_HOST_MAX + 1];
    const char *why;

    if (node->type != YOML_TYPE_SCALAR) {
        h2o_configurator_errprintf(p->cmd, node, "an address must be a string, `HOST:PORT` or `unix:PATH`");
        return -1;
    }
    memset(ep, 0, sizeof(*ep));
    if (strncmp(node->data.scalar, "unix:", 5) == 0) {
        if (node->data.scalar[5] != '/') {
            h2o_configurator_errprintf(p->cmd, node, "`%s`: a unix socket needs an absolute path (`unix:/run/redis.sock`)", node->data.scalar);
            return -1;
        }
        ep->unix_path = own_strdup(p, node->data.scalar + 5);
        return 0;
    }
    if (sig_hostport_parse(node->data.scalar, default_port, host, &ep->port, &why) != 0) {
        h2o_configurator_errprintf(p->cmd, node, "`%s`: %s", node->data.scalar, why);
        return -1;
    }
    ep->host = own_strdup(p, host);
    return 0;
}

static int parse_number(struct parse_ctx *p, yoml_t *node, const char *what, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    const char *s = node->type == YOML_TYPE_SCALAR ? node->data.scalar : "";
    errno = 0;
    *out = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || *out < min || *out > max) {
        h2o_configurator_errprintf(p->cmd, node, "%s must be a whole number from %lu to %lu", what, min, max);
        return -1;
    }
    return 0;
}

/* The first line of a file, as a secret (the trailing newline of `echo x > file` is not part of it). */
static char *read_password(struct parse_ctx *p, yoml_t *node)
{
    char buf[1024];
    size_t len;
    FILE *fp;

    if (node->type != YOML_TYPE_SCALAR) {
        h2o_configurator_errprintf(p->cmd, node, "password-file must be a path");
        return NULL;
    }
    if ((fp = fopen(node->data.scalar, "rb")) == NULL) {
        h2o_configurator_errprintf(p->cmd, node, "password-file: cannot open `%s`: %s", node->data.scalar, strerror(errno));
        return NULL;
    }
    len = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    while (len != 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        --len;
    buf[len] = '\0';
    if (len == 0 || memchr(buf, '\0', len) != NULL || memchr(buf, '\n', len) != NULL) {
        h2o_configurator_errprintf(p->cmd, node, "password-file: `%s` must hold the password on one line", node->data.scalar);
        return NULL;
    }
    return own_strdup(p, buf);
}

static int parse_sentinel(struct parse_ctx *p, yoml_t *node, sig_redis_target_t *t)
{
    yoml_t *master = NULL, *addresses = NULL, **items;
    size_t i, n;

    if (node->type != YOML_TYPE_MAPPING) {
        h2o_configurator_errprintf(p->cmd, node, "sentinel must be a mapping: {master: NAME, addresses: [HOST:PORT, ...]}");
        return -1;
    }
    for (i = 0; i != node->data.mapping.size; ++i) {
        yoml_t *key = node->data.mapping.elements[i].key, *value = node->data.mapping.elements[i].value;
        const char *k = key->type == YOML_TYPE_SCALAR ? key->data.scalar : "";
        if (strcmp(k, "master") == 0) {
            master = value;
        } else if (strcmp(k, "addresses") == 0) {
            addresses = value;
        } else {
            h2o_configurator_errprintf(p->cmd, key, "unknown key `%s` in sentinel (known: master, addresses)", k);
            return -1;
        }
    }
    if (master == NULL || master->type != YOML_TYPE_SCALAR || master->data.scalar[0] == '\0') {
        h2o_configurator_errprintf(p->cmd, master != NULL ? master : node, "sentinel needs `master`: the name the sentinels monitor");
        return -1;
    }
    if (addresses == NULL) {
        h2o_configurator_errprintf(p->cmd, node, "sentinel needs `addresses`: the sentinels, HOST:PORT each");
        return -1;
    }
    items = addresses->type == YOML_TYPE_SEQUENCE ? addresses->data.sequence.elements : &addresses;
    n = addresses->type == YOML_TYPE_SEQUENCE ? addresses->data.sequence.size : 1;
    if (n == 0) {
        h2o_configurator_errprintf(p->cmd, addresses, "sentinel addresses must not be empty");
        return -1;
    }
    t->master_name = own_strdup(p, master->data.scalar);
    t->sentinels = p->own(p->own_ctx, h2o_mem_alloc(sizeof(*t->sentinels) * n));
    t->num_sentinels = n;
    for (i = 0; i != n; ++i)
        if (parse_endpoint(p, items[i], DEFAULT_SENTINEL_PORT, t->sentinels + i) != 0)
            return -1;
    return 0;
}

static int parse_shard(struct parse_ctx *p, yoml_t *node, sig_backplane_shard_t *shard)
{
    yoml_t *host = NULL, *port = NULL, *unix_path = NULL, *sentinel = NULL;
    unsigned long value;
    size_t i;

    memset(shard, 0, sizeof(*shard));
    shard->prefix = DEFAULT_PREFIX;
    if (node->type == YOML_TYPE_SCALAR)
        return parse_endpoint(p, node, DEFAULT_PORT, &shard->target.server);
    if (node->type != YOML_TYPE_MAPPING) {
        h2o_configurator_errprintf(p->cmd, node, "must be `HOST:PORT`, `unix:PATH`, a mapping, or a sequence of those (shards)");
        return -1;
    }
    for (i = 0; i != node->data.mapping.size; ++i) {
        yoml_t *key = node->data.mapping.elements[i].key, *v = node->data.mapping.elements[i].value;
        const char *k = key->type == YOML_TYPE_SCALAR ? key->data.scalar : "";
        if (strcmp(k, "host") == 0) {
            host = v;
        } else if (strcmp(k, "port") == 0) {
            port = v;
        } else if (strcmp(k, "unix") == 0) {
            unix_path = v;
        } else if (strcmp(k, "sentinel") == 0) {
            sentinel = v;
        } else if (strcmp(k, "password-file") == 0) {
            if ((shard->target.password = read_password(p, v)) == NULL)
                return -1;
        } else if (strcmp(k, "db") == 0) {
            if (parse_number(p, v, "db", 0, MAX_DB, &value) != 0)
                return -1;
            shard->target.db = (unsigned)value;
        } else if (strcmp(k, "prefix") == 0) {
            if (v->type != YOML_TYPE_SCALAR || strlen(v->data.scalar) > 64) {
                h2o_configurator_errprintf(p->cmd, v, "prefix must be a string of at most 64 bytes");
                return -1;
            }
            shard->prefix = own_strdup(p, v->data.scalar);
        } else {
            h2o_configurator_errprintf(p->cmd, key, "unknown key `%s` (known: host, port, unix, sentinel, password-file, db, prefix)", k);
            return -1;
        }
    }
    if ((host != NULL || port != NULL) + (unix_path != NULL) + (sentinel != NULL) != 1) {
        h2o_configurator_errprintf(p->cmd, node, "give exactly one of `host` (with `port`), `unix` or `sentinel`");
        return -1;
    }
    if (sentinel != NULL)
        return parse_sentinel(p, sentinel, &shard->target);
    if (unix_path != NULL) {
        if (unix_path->type != YOML_TYPE_SCALAR || unix_path->data.scalar[0] != '/') {
            h2o_configurator_errprintf(p->cmd, unix_path, "unix must be an absolute path to Redis's socket");
            return -1;
        }
        shard->target.server.unix_path = own_strdup(p, unix_path->data.scalar);
        return 0;
    }
    if (host == NULL) {
        h2o_configurator_errprintf(p->cmd, node, "`port` needs a `host`");
        return -1;
    }
    if (parse_endpoint(p, host, DEFAULT_PORT, &shard->target.server) != 0)
        return -1;
    if (port != NULL) {
        if (parse_number(p, port, "port", 1, 65535, &value) != 0)
            return -1;
        shard->target.server.port = (uint16_t)value;
    }
    return 0;
}

sig_redis_conf_t *sig_redis_config_parse(h2o_configurator_command_t *cmd, yoml_t *node, sig_redis_config_own_cb own, void *own_ctx)
{
    struct parse_ctx p = {cmd, own, own_ctx};
    sig_redis_conf_t *conf;
    yoml_t **items = &node;
    size_t n = 1, i;

    if (node->type == YOML_TYPE_SEQUENCE) {
        items = node->data.sequence.elements;
        n = node->data.sequence.size;
        if (n == 0 || n > MAX_SHARDS) {
            h2o_configurator_errprintf(cmd, node, "a sequence of shards must hold 1 to %d entries", MAX_SHARDS);
            return NULL;
        }
    }
    conf = own(own_ctx, h2o_mem_alloc(sizeof(*conf)));
    conf->shards = own(own_ctx, h2o_mem_alloc(sizeof(*conf->shards) * n));
    conf->num_shards = n;
    for (i = 0; i != n; ++i) {
        if (items[i]->type == YOML_TYPE_SEQUENCE) {
            h2o_configurator_errprintf(cmd, items[i], "a shard must be an address or a mapping, not a sequence");
            return NULL;
        }
        if (parse_shard(&p, items[i], conf->shards + i) != 0)
            return NULL;
    }
    return conf;
}

int sig_redis_config_check_node_id(h2o_configurator_command_t *cmd, yoml_t *node)
{
    const char *s = node->data.scalar;
    size_t i, len = strlen(s);

    for (i = 0; i != len; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            break;
    }
    if (len == 0 || len > SIG_BUS_NODE_ID_MAX || i != len) {
        h2o_configurator_errprintf(cmd, node, "`%s`: a node id is 1 to %d letters, digits, `.`, `-` or `_`", s, SIG_BUS_NODE_ID_MAX);
        return -1;
    }
    return 0;
}

const char *sig_redis_config_default_node_id(void)
{
    static char id[SIG_BUS_NODE_ID_MAX + 1];
    char host[40] = "node";
    unsigned char rnd[4] = {0};
    size_t i;

    if (id[0] != '\0')
        return id;
    if (gethostname(host, sizeof(host) - 1) != 0)
        strcpy(host, "node");
    host[sizeof(host) - 1] = '\0';
    for (i = 0; host[i] != '\0'; ++i) /* keep it a valid id whatever the host name holds */
        if (!((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z') || (host[i] >= '0' && host[i] <= '9') ||
              host[i] == '-' || host[i] == '.'))
            host[i] = '_';
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        memset(rnd, 0, sizeof(rnd));
    snprintf(id, sizeof(id), "%s-%d-%02x%02x%02x%02x", host, (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3]);
    return id;
}
