/*
 * Server-level directives: the part of h2o's src/main.c an admin's config relies on.
 * Parsing only; binding happens later in sig_server_bind(), so `-t` never touches the network.
 */
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "server/sig_server.h"

struct st_sig_server_configurator_t {
    h2o_configurator_t super;
    sig_server_conf_t *server;
};

#define SIG_MAX_THREADS 256

static sig_server_conf_t *server_of(h2o_configurator_command_t *cmd)
{
    return ((struct st_sig_server_configurator_t *)cmd->configurator)->server;
}

static char *format_origin(yoml_t *node)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s:%zu", node->filename != NULL ? node->filename : "-", node->line + 1);
    return h2o_strdup(NULL, buf, SIZE_MAX).base;
}

/* The address's listener entry, or a new one (then `*is_new` is set). */
static sig_listener_conf_t *get_listener(sig_server_conf_t *server, yoml_t *node, const void *addr, socklen_t addrlen, int *is_new)
{
    sig_listener_conf_t *listener = sig_server_conf_find_listener(server, addr, addrlen);
    *is_new = listener == NULL;
    if (listener == NULL) {
        listener = h2o_mem_alloc(sizeof(*listener));
        memset(listener, 0, sizeof(*listener));
        memcpy(&listener->addr, addr, addrlen);
        listener->addrlen = addrlen;
        listener->unix_permission = UINT_MAX;
        listener->max_connections_per_address = SIZE_MAX;
        listener->origin = format_origin(node);
        h2o_vector_reserve(NULL, &server->listeners, server->listeners.size + 1);
        server->listeners.entries[server->listeners.size++] = listener;
    }
    return listener;
}

/* One more `listen` entry on an address: TLS and PROXY settings must agree (stock h2o's rules and
 * messages), the host joins its list, and its `ssl:` adds a certificate (SNI) or a name to one. */
static int join_listener(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node, yoml_t *ssl_node,
                         int proxy_protocol, size_t cap, sig_listener_conf_t *listener, int is_new)
{
    if (cap != SIZE_MAX)
        listener->max_connections_per_address = cap; /* the last entry of the address that names it */
    if (!is_new) {
        if (listener->proxy_protocol != proxy_protocol) {
            h2o_configurator_errprintf(cmd, node, "`proxy-protocol` cannot be turned %s, already defined as opposite (at %s)",
                                       proxy_protocol ? "on" : "off", listener->origin);
            return -1;
        }
        if (listener->tls.size != 0 && ssl_node == NULL) {
            h2o_configurator_errprintf(cmd, node, "cannot accept HTTP; already defined to accept HTTPS (at %s)", listener->origin);
            return -1;
        }
        if (listener->tls.size == 0 && ssl_node != NULL) {
            h2o_configurator_errprintf(cmd, ssl_node, "cannot accept HTTPS; already defined to accept HTTP (at %s)", listener->origin);
            return -1;
        }
    }
    listener->proxy_protocol = proxy_protocol;
    if (ssl_node != NULL && sig_tls_add_identity(cmd, ctx, ssl_node, &listener->tls) != 0)
        return -1;
    if (ctx->hostconf == NULL) {
        /* a global listener serves every host: its host list is set once all hosts exist */
        listener->is_global = 1;
        free(listener->hosts);
        listener->hosts = NULL;
    } else if (!listener->is_global) {
        if (listener->hosts == NULL) {
            listener->hosts = h2o_mem_alloc(sizeof(listener->hosts[0]));
            listener->hosts[0] = NULL;
        }
        h2o_append_to_null_terminated_list((void *)&listener->hosts, ctx->hostconf);
    }
    return 0;
}

static int listen_unix(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node, const char *path,
                       yoml_t *owner, yoml_t *permission, yoml_t *ssl_node, int proxy_protocol, size_t cap)
{
    struct sockaddr_un sa;
    sig_listener_conf_t *listener;
    unsigned mode = UINT_MAX;
    int is_new;

    memset(&sa, 0, sizeof(sa));
    if (path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path)) {
        h2o_configurator_errprintf(cmd, node, "path:%s is %s as a unix socket name", path, path[0] == '\0' ? "empty" : "too long");
        return -1;
    }
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    if (owner != NULL && getpwnam(owner->data.scalar) == NULL) {
        h2o_configurator_errprintf(cmd, owner, "user `%s` does not exist", owner->data.scalar);
        return -1;
    }
    if (permission != NULL) {
        char *end;
        unsigned long v = strtoul(permission->data.scalar, &end, 8);
        if (permission->data.scalar[0] == '\0' || *end != '\0' || v > 07777) {
            h2o_configurator_errprintf(cmd, permission, "`permission` must be an octal number (e.g. 0660), not `%s`",
                                       permission->data.scalar);
            return -1;
        }
        mode = (unsigned)v;
    }
    listener = get_listener(server_of(cmd), node, &sa, sizeof(sa), &is_new);
    if (is_new) {
        listener->is_unix = 1;
        listener->unix_owner = owner != NULL ? h2o_strdup(NULL, owner->data.scalar, SIZE_MAX).base : NULL;
        listener->unix_permission = mode;
    }
    return join_listener(cmd, ctx, node, ssl_node, proxy_protocol, cap, listener, is_new);
}

static int listen_tcp(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node, const char *host,
                      const char *port, yoml_t *ssl_node, int proxy_protocol, size_t cap)
{
    struct addrinfo hints, *res = NULL, *ai;
    int gai_err, ret = 0;
    char *end;
    long n = strtol(port, &end, 10);

    if (*port == '\0' || *end != '\0' || n < 1 || n > 65535) {
        h2o_configurator_errprintf(cmd, node, "port must be a number from 1 to 65535, not `%s`", port);
        return -1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV | AI_PASSIVE;
    if ((gai_err = getaddrinfo(host, port, &hints, &res)) != 0 || res == NULL) {
        h2o_configurator_errprintf(cmd, node, "cannot resolve the address `%s`: %s", host != NULL ? host : "*",
                                   gai_err != 0 ? gai_strerror(gai_err) : "no address");
        return -1;
    }
    for (ai = res; ai != NULL && ret == 0; ai = ai->ai_next) {
        int is_new;
        sig_listener_conf_t *listener = get_listener(server_of(cmd), node, ai->ai_addr, ai->ai_addrlen, &is_new);
        ret = join_listener(cmd, ctx, node, ssl_node, proxy_protocol, cap, listener, is_new);
    }
    freeaddrinfo(res);
    return ret;
}

/* `listen: PORT` or `listen: {port, host, type: tcp|unix, owner, permission, proxy-protocol, ssl}`, at
 * global or host level, as stock h2o's (docs/configuration.md). */
static int on_config_listen(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    static const char *const keys[] = {"port", "host", "type", "owner", "permission", "proxy-protocol", "ssl",
                                       "max-connections-per-address", NULL};
    yoml_t *values[8] = {NULL};
    enum { PORT, HOST, TYPE, OWNER, PERMISSION, PROXY, SSL, CAP };
    size_t cap = SIZE_MAX;
    int proxy_protocol = 0;
    size_t i, k;

    switch (node->type) {
    case YOML_TYPE_SCALAR:
        return listen_tcp(cmd, ctx, node, NULL, node->data.scalar, NULL, 0, SIZE_MAX);
    case YOML_TYPE_MAPPING:
        break;
    default:
        h2o_configurator_errprintf(cmd, node, "value must be a port number or a mapping with `port` (and `host`, `type`, `ssl`, ...)");
        return -1;
    }
    for (i = 0; i != node->data.mapping.size; ++i) {
        yoml_t *key = node->data.mapping.elements[i].key, *value = node->data.mapping.elements[i].value;
        for (k = 0; key->type == YOML_TYPE_SCALAR && keys[k] != NULL && strcmp(key->data.scalar, keys[k]) != 0; ++k)
            ;
        if (key->type != YOML_TYPE_SCALAR || keys[k] == NULL) {
            h2o_configurator_errprintf(cmd, key, "unknown key (supported: port, host, type, owner, permission, proxy-protocol, ssl, "
                                                 "max-connections-per-address)");
            return -1;
        }
        if (k == SSL ? value->type != YOML_TYPE_MAPPING : value->type != YOML_TYPE_SCALAR) {
            h2o_configurator_errprintf(cmd, value, k == SSL ? "`ssl` must be a mapping (certificate-file, key-file, ...)"
                                                            : "`%s` must be a scalar", keys[k]);
            return -1;
        }
        values[k] = value;
    }
    if (values[PORT] == NULL) {
        h2o_configurator_errprintf(cmd, node, "mandatory key `port` is missing");
        return -1;
    }
    if (values[PROXY] != NULL) {
        if (strcasecmp(values[PROXY]->data.scalar, "ON") == 0) {
            proxy_protocol = 1;
        } else if (strcasecmp(values[PROXY]->data.scalar, "OFF") != 0) {
            h2o_configurator_errprintf(cmd, values[PROXY], "value of `proxy-protocol` must be either of: ON,OFF");
            return -1;
        }
    }
    if (values[CAP] != NULL && h2o_configurator_scanf(cmd, values[CAP], "%zu", &cap) != 0)
        return -1;
    if (values[TYPE] == NULL || strcmp(values[TYPE]->data.scalar, "tcp") == 0) {
        if (values[OWNER] != NULL || values[PERMISSION] != NULL) {
            h2o_configurator_errprintf(cmd, values[OWNER] != NULL ? values[OWNER] : values[PERMISSION],
                                       "`owner` and `permission` apply to `type: unix` only");
            return -1;
        }
        return listen_tcp(cmd, ctx, node, values[HOST] != NULL ? values[HOST]->data.scalar : NULL, values[PORT]->data.scalar,
                          values[SSL], proxy_protocol, cap);
    }
    if (strcmp(values[TYPE]->data.scalar, "unix") == 0)
        return listen_unix(cmd, ctx, node, values[PORT]->data.scalar, values[OWNER], values[PERMISSION], values[SSL],
                           proxy_protocol, cap);
    h2o_configurator_errprintf(cmd, values[TYPE], "unknown listen type: %s (tcp or unix)", values[TYPE]->data.scalar);
    return -1;
}

static int on_config_num_threads(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    sig_server_conf_t *server = server_of(cmd);
    if (h2o_configurator_scanf(cmd, node, "%zu", &server->num_threads) != 0)
        return -1;
    if (server->num_threads < 1 || server->num_threads > SIG_MAX_THREADS) {
        h2o_configurator_errprintf(cmd, node, "must be from 1 to %d", SIG_MAX_THREADS);
        return -1;
    }
    free(server->num_threads_origin);
    server->num_threads_origin = format_origin(node); /* a reload that changes it names this line */
    return 0;
}

static int on_config_max_connections(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    sig_server_conf_t *server = server_of(cmd);
    if (h2o_configurator_scanf(cmd, node, "%d", &server->max_connections) != 0)
        return -1;
    if (server->max_connections < 1) {
        h2o_configurator_errprintf(cmd, node, "must be at least 1");
        return -1;
    }
    return 0;
}

static int set_path(h2o_configurator_command_t *cmd, yoml_t *node, char **slot)
{
    if (node->data.scalar[0] == '\0') {
        h2o_configurator_errprintf(cmd, node, "must be a file path");
        return -1;
    }
    free(*slot);
    *slot = h2o_strdup(NULL, node->data.scalar, SIZE_MAX).base;
    return 0;
}

static int on_config_pid_file(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    return set_path(cmd, node, &server_of(cmd)->pid_file);
}

static int on_config_error_log(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    return set_path(cmd, node, &server_of(cmd)->error_log);
}

static int on_config_user(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    if (getpwnam(node->data.scalar) == NULL) {
        h2o_configurator_errprintf(cmd, node, "user `%s` does not exist", node->data.scalar);
        return -1;
    }
    free(server_of(cmd)->user_origin);
    server_of(cmd)->user_origin = format_origin(node);
    return set_path(cmd, node, &server_of(cmd)->user);
}

/* stock h2o's default TCP_FASTOPEN queue (H2O_DEFAULT_LENGTH_TCP_FASTOPEN_QUEUE) is set in sig_server_conf_load */
static int on_config_tcp_fastopen(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    sig_server_conf_t *server = server_of(cmd);
    if (h2o_configurator_scanf(cmd, node, "%d", &server->tcp_fastopen) != 0)
        return -1;
    if (server->tcp_fastopen < 0) {
        h2o_configurator_errprintf(cmd, node, "must be 0 (off) or a queue length");
        return -1;
    }
    return 0;
}

static int on_config_max_connections_per_address(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    return h2o_configurator_scanf(cmd, node, "%zu", &server_of(cmd)->max_connections_per_address);
}

static int on_config_ipv6_prefix(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    sig_server_conf_t *server = server_of(cmd);
    if (h2o_configurator_scanf(cmd, node, "%u", &server->ipv6_prefix) != 0)
        return -1;
    if (server->ipv6_prefix < 1 || server->ipv6_prefix > 128) {
        h2o_configurator_errprintf(cmd, node, "must be from 1 to 128 (bits of an IPv6 address that name one client)");
        return -1;
    }
    return 0;
}

static int on_config_first_request_timeout(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    sig_server_conf_t *server = server_of(cmd);
    unsigned seconds;
    if (h2o_configurator_scanf(cmd, node, "%u", &seconds) != 0)
        return -1;
    if (seconds > 3600) {
        h2o_configurator_errprintf(cmd, node, "must be from 0 (off) to 3600 seconds");
        return -1;
    }
    server->first_request_timeout = (uint64_t)seconds * 1000;
    return 0;
}

static int on_config_num_name_resolution_threads(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    sig_server_conf_t *server = server_of(cmd);
    if (h2o_configurator_scanf(cmd, node, "%zu", &server->num_name_resolution_threads) != 0)
        return -1;
    if (server->num_name_resolution_threads == 0) {
        h2o_configurator_errprintf(cmd, node, "num-name-resolution-threads must be >=1");
        return -1;
    }
    return 0;
}

/* The directory of the files that back request and response buffers past 32 MB (libh2o's mmap'd
 * buffers); libh2o keeps one process-wide template, so it is set once, at start. */
static int on_config_temp_buffer_path(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    sig_server_conf_t *server = server_of(cmd);
    const char *base = strrchr(h2o_socket_buffer_mmap_settings.fn_template, '/');
    if (strlen(node->data.scalar) + strlen(base != NULL ? base : "/h2o.b.XXXXXX") >= sizeof(h2o_socket_buffer_mmap_settings.fn_template)) {
        h2o_configurator_errprintf(cmd, node, "path is too long");
        return -1;
    }
    if (set_path(cmd, node, &server->temp_buffer_path) != 0)
        return -1;
    free(server->temp_buffer_path_origin);
    server->temp_buffer_path_origin = format_origin(node);
    return 0;
}

void sig_server_register_configurator(sig_server_conf_t *server)
{
    struct st_sig_server_configurator_t *c = (void *)h2o_configurator_create(&server->globalconf, sizeof(*c));
    c->server = server;
    h2o_configurator_define_command(&c->super, "listen", H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_HOST, on_config_listen);
    h2o_configurator_define_command(&c->super, "num-threads", H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                    on_config_num_threads);
    h2o_configurator_define_command(&c->super, "max-connections",
                                    H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR, on_config_max_connections);
    h2o_configurator_define_command(&c->super, "pid-file", H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                    on_config_pid_file);
    h2o_configurator_define_command(&c->super, "error-log", H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                    on_config_error_log);
    h2o_configurator_define_command(&c->super, "user", H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                    on_config_user);
    h2o_configurator_define_command(&c->super, "tcp-fastopen", H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                    on_config_tcp_fastopen);
    h2o_configurator_define_command(&c->super, "max-connections-per-address",
                                    H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                    on_config_max_connections_per_address);
    h2o_configurator_define_command(&c->super, "max-connections-per-address.ipv6-prefix",
                                    H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR, on_config_ipv6_prefix);
    h2o_configurator_define_command(&c->super, "first-request-timeout",
                                    H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR, on_config_first_request_timeout);
    h2o_configurator_define_command(&c->super, "num-name-resolution-threads",
                                    H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                    on_config_num_name_resolution_threads);
    h2o_configurator_define_command(&c->super, "temp-buffer-path",
                                    H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR, on_config_temp_buffer_path);
}
