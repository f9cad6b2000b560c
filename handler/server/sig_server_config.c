/*
 * Server-level directives: the part of h2o's src/main.c an admin's config relies on.
 * Parsing only; binding happens later in sig_server_bind(), so `-t` never touches the network.
 */
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
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

/* `listen: PORT` or `listen: {port: N, host: H, ssl: {...}}`, at global or host level. */
static int on_config_listen(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    sig_server_conf_t *server = server_of(cmd);
    const char *host = NULL, *port = NULL;
    yoml_t *ssl_node = NULL;
    struct addrinfo hints, *res = NULL, *ai;
    size_t i;
    int gai_err;

    switch (node->type) {
    case YOML_TYPE_SCALAR:
        port = node->data.scalar;
        break;
    case YOML_TYPE_MAPPING:
        for (i = 0; i != node->data.mapping.size; ++i) {
            yoml_t *key = node->data.mapping.elements[i].key, *value = node->data.mapping.elements[i].value;
            if (key->type != YOML_TYPE_SCALAR) {
                h2o_configurator_errprintf(cmd, key, "keys must be scalars (port, host, ssl)");
                return -1;
            }
            if (strcmp(key->data.scalar, "ssl") == 0) {
                if (value->type != YOML_TYPE_MAPPING) {
                    h2o_configurator_errprintf(cmd, value, "`ssl` must be a mapping (certificate-file, key-file, ...)");
                    return -1;
                }
                ssl_node = value;
                continue;
            }
            if (value->type != YOML_TYPE_SCALAR) {
                h2o_configurator_errprintf(cmd, value, "`%s` must be a scalar", key->data.scalar);
                return -1;
            }
            if (strcmp(key->data.scalar, "port") == 0) {
                port = value->data.scalar;
            } else if (strcmp(key->data.scalar, "host") == 0) {
                host = value->data.scalar;
            } else if (strcmp(key->data.scalar, "type") == 0 && strcmp(value->data.scalar, "tcp") == 0) {
                /* the only type we support, accepted for compatibility with h2o configs */
            } else {
                h2o_configurator_errprintf(cmd, key, "unknown key (supported: port, host, ssl)");
                return -1;
            }
        }
        if (port == NULL) {
            h2o_configurator_errprintf(cmd, node, "mandatory key `port` is missing");
            return -1;
        }
        break;
    default:
        h2o_configurator_errprintf(cmd, node, "value must be a port number or a mapping with `port` (and `host`, `ssl`)");
        return -1;
    }

    {
        char *end;
        long n = strtol(port, &end, 10);
        if (*port == '\0' || *end != '\0' || n < 1 || n > 65535) {
            h2o_configurator_errprintf(cmd, node, "port must be a number from 1 to 65535, not `%s`", port);
            return -1;
        }
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

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        sig_listener_conf_t *listener = sig_server_conf_find_listener(server, ai->ai_addr, ai->ai_addrlen);
        if (listener == NULL) {
            listener = h2o_mem_alloc(sizeof(*listener));
            memset(listener, 0, sizeof(*listener));
            memcpy(&listener->addr, ai->ai_addr, ai->ai_addrlen);
            listener->addrlen = ai->ai_addrlen;
            listener->origin = format_origin(node);
            h2o_vector_reserve(NULL, &server->listeners, server->listeners.size + 1);
            server->listeners.entries[server->listeners.size++] = listener;
            if (ssl_node != NULL && (listener->ssl_ctx = sig_tls_create_context(cmd, ssl_node)) == NULL)
                goto Error;
        } else if (ssl_node != NULL || listener->ssl_ctx != NULL) {
            /* one certificate per address: SNI across hosts is not supported (yet) */
            h2o_configurator_errprintf(cmd, node, "this address is already listened on (at %s); a TLS listener cannot be shared",
                                       listener->origin);
            goto Error;
        }
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
    }
    freeaddrinfo(res);
    return 0;

Error:
    freeaddrinfo(res);
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
}
