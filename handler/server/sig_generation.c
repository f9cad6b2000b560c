/*
 * Configuration generations (sig_server.h): loading a configuration, SIGHUP's reload, the switch of
 * every thread to the new generation, and the disposal of what old generations leave.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "server/sig_crash.h"
#include "server/sig_server.h"
#include "server/sig_tls_resumption.h"
#include "server/sig_yaml.h"
#include "signaling/sig_signaling.h"

/* An old generation's context is disposed only this long after the switch, when its connections are
 * gone: libh2o 2.2.5 lets a cancelled getaddrinfo (proxy) still post to the context's queue. */
#define SIG_GEN_QUARANTINE_MS 10000

/* ---- configurations ---- */

sig_server_conf_t *sig_server_conf_new(const char *path)
{
    sig_server_conf_t *conf = h2o_mem_alloc(sizeof(*conf));

    memset(conf, 0, sizeof(*conf));
    conf->config_file = path;
    conf->num_threads = 1;
    conf->max_connections = 16384; /* docs/operations.md "Limits": why not h2o's 1024 */
    conf->tcp_fastopen = 4096; /* stock h2o's H2O_DEFAULT_LENGTH_TCP_FASTOPEN_QUEUE */
    conf->max_connections_per_address = 1024; /* docs/security.md: a NAT of a few hundred users stays under it */
    conf->ipv6_prefix = 64;
    conf->first_request_timeout = 5000;
    conf->num_name_resolution_threads = 32; /* stock h2o main's H2O_DEFAULT_NUM_NAME_RESOLUTION_THREADS */
    h2o_config_init(&conf->globalconf);
    sig_server_register_main_status(conf); /* first, as stock main registers it */

    /* the stock directive families, in the order h2o's own main registers them */
    h2o_access_log_register_configurator(&conf->globalconf);
    h2o_compress_register_configurator(&conf->globalconf);
    h2o_expires_register_configurator(&conf->globalconf);
    h2o_errordoc_register_configurator(&conf->globalconf);
    h2o_fastcgi_register_configurator(&conf->globalconf);
    h2o_file_register_configurator(&conf->globalconf);
    h2o_throttle_resp_register_configurator(&conf->globalconf);
    h2o_headers_register_configurator(&conf->globalconf);
    h2o_proxy_register_configurator(&conf->globalconf);
    h2o_reproxy_register_configurator(&conf->globalconf);
    h2o_redirect_register_configurator(&conf->globalconf);
    h2o_status_register_configurator(&conf->globalconf);
    h2o_http2_debug_state_register_configurator(&conf->globalconf);
    /* text files are served as UTF-8 (stock h2o sends no charset); file.mime.* can still override */
    {
        static const char *const utf8_types[][2] = {{"html", "text/html; charset=utf-8"},
                                                    {"htm", "text/html; charset=utf-8"},
                                                    {"css", "text/css; charset=utf-8"},
                                                    {"js", "application/javascript; charset=utf-8"},
                                                    {"json", "application/json; charset=utf-8"},
                                                    {"txt", "text/plain; charset=utf-8"}};
        size_t i;
        for (i = 0; i != sizeof(utf8_types) / sizeof(utf8_types[0]); ++i)
            h2o_mimemap_define_mimetype(conf->globalconf.mimemap, utf8_types[i][0], utf8_types[i][1], NULL);
    }
    sig_server_register_configurator(conf);
    sig_crash_register_configurator(conf);
    sig_tls_resumption_register_configurator(conf);
    sig_tls_register_configurator(conf);
    sig_signaling_register_configurator(&conf->globalconf);

    return conf;
}

sig_server_conf_t *sig_server_conf_load(const char *path, int dry_run)
{
    sig_server_conf_t *conf = sig_server_conf_new(path);
    char errbuf[1024];
    yoml_t *root;
    int ok = 0;

    if ((root = sig_yaml_load_file(path, errbuf, sizeof(errbuf))) == NULL) {
        fprintf(stderr, "%s\n", errbuf);
        sig_server_conf_dispose(conf);
        return NULL;
    }
    sig_signaling_config_begin();
    if (h2o_configurator_apply(&conf->globalconf, root, dry_run) == 0) {
        if (conf->listeners.size == 0)
            fprintf(stderr, "%s:1: listen: mandatory directive is missing (e.g. `listen: 8080`)\n", path);
        else
            ok = 1;
    }
    if (ok) {
        sig_tls_resumption_setup(conf, dry_run); /* every TLS identity's SSL_CTX; the ticket keys outlive this configuration */
        if (conf->first_request_timeout != 0)
            sig_server_install_first_request_hook(conf);
        sig_server_fix_status_handlers(conf);
    }
    yoml_free(root, NULL);
    if (!ok) {
        sig_server_conf_dispose(conf);
        return NULL;
    }
    return conf;
}

void sig_server_conf_dispose(sig_server_conf_t *conf)
{
    size_t i, t;

    for (i = 0; i != conf->listeners.size; ++i) {
        sig_listener_conf_t *l = conf->listeners.entries[i];
        if (l->fds != NULL) {
            for (t = 0; t != conf->num_threads; ++t)
                if (l->fds[t] != -1)
                    close(l->fds[t]);
            free(l->fds);
        }
        if (!l->is_global)
            free(l->hosts);
        sig_tls_dispose_identities(&l->tls);
        free(l->unix_owner);
        free(l->origin);
        free(l);
    }
    free(conf->listeners.entries);
    free(conf->pid_file);
    free(conf->error_log);
    free(conf->user);
    free(conf->num_threads_origin);
    free(conf->user_origin);
    free(conf->temp_buffer_path);
    free(conf->temp_buffer_path_origin);
    h2o_config_dispose(&conf->globalconf);
    free(conf);
}

/* ---- binding ---- */

sig_listener_conf_t *sig_server_conf_find_listener(const sig_server_conf_t *conf, const void *addr, socklen_t len)
{
    size_t i;
    for (i = 0; conf != NULL && i != conf->listeners.size; ++i)
        if (conf->listeners.entries[i]->addrlen == len && memcmp(&conf->listeners.entries[i]->addr, addr, len) == 0)
            return conf->listeners.entries[i];
    return NULL;
}

/* Opens a TCP socket bound to the listener's address; `reuseport` lets each thread have its own. */
static int open_tcp_listener(const sig_listener_conf_t *l, int reuseport, int tcp_fastopen)
{
    int fd, on = 1;

    if ((fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP)) == -1)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0))
        goto Error;
    /* an IPv6 wildcard must not also claim the IPv4 port, which has its own listener */
    if (l->addr.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0)
        goto Error;
    /* bound only: each thread starts listening on its own (uv_listen), so the port accepts nothing
     * before a thread is there to serve it */
    if (bind(fd, (struct sockaddr *)&l->addr, l->addrlen) != 0)
        goto Error;
    /* as stock h2o: a kernel without TCP Fast Open costs a warning, not the listener */
    if (tcp_fastopen > 0 && setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &tcp_fastopen, sizeof(tcp_fastopen)) != 0)
        fprintf(stderr, "%s: listen: [warning] failed to set TCP_FASTOPEN: %s\n", l->origin, strerror(errno));
    return fd;
Error: {
    int saved = errno;
    close(fd);
    errno = saved;
}
    return -1;
}

/* Opens the unix socket of a `type: unix` listener: a stale socket file is replaced (as stock h2o
 * does), any other file at the path is an error; then `owner` and `permission` are applied. */
static int open_unix_listener(const sig_listener_conf_t *l)
{
    const struct sockaddr_un *sa = (const void *)&l->addr;
    struct stat st;
    int fd;

    if (lstat(sa->sun_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            fprintf(stderr, "%s: listen: %s already exists and is not a unix socket\n", l->origin, sa->sun_path);
            return -1;
        }
        unlink(sa->sun_path);
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 || bind(fd, (const void *)sa, sizeof(*sa)) != 0) {
        fprintf(stderr, "%s: listen: cannot listen on unix socket %s: %s\n", l->origin, sa->sun_path, strerror(errno));
        goto Error;
    }
    if (l->unix_owner != NULL) {
        struct passwd *pw = getpwnam(l->unix_owner);
        if (pw == NULL || chown(sa->sun_path, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "%s: listen: cannot chown unix socket %s to %s: %s\n", l->origin, sa->sun_path, l->unix_owner,
                    pw == NULL ? "no such user" : strerror(errno));
            goto Error;
        }
    }
    if (l->unix_permission != UINT_MAX && chmod(sa->sun_path, l->unix_permission) != 0) {
        fprintf(stderr, "%s: listen: cannot chmod unix socket %s to %o: %s\n", l->origin, sa->sun_path, l->unix_permission,
                strerror(errno));
        goto Error;
    }
    return fd;
Error:
    if (fd != -1)
        close(fd);
    return -1;
}

/* One socket per thread for `l`: a unix socket is bound once and shared (dup), a TCP address gets an
 * SO_REUSEPORT socket per thread. Returns 0 or -1 (printed). */
static int open_listener_fds(sig_listener_conf_t *l, size_t num_threads, int tcp_fastopen)
{
    size_t t;
    for (t = 0; t != num_threads; ++t) {
        if (l->is_unix) {
            l->fds[t] = t == 0 ? open_unix_listener(l) : fcntl(l->fds[0], F_DUPFD_CLOEXEC, 0);
            if (l->fds[t] == -1) {
                if (t != 0)
                    fprintf(stderr, "%s: listen: cannot share the unix socket: %s\n", l->origin, strerror(errno));
                return -1;
            }
            continue;
        }
        /* SO_REUSEPORT would also let a second server (same user) share the port silently: a probe
         * without it must bind first, so "address in use" is reported as it would be by h2o */
        if (t == 0) {
            int probe = open_tcp_listener(l, 0, 0);
            if (probe != -1)
                close(probe);
            l->fds[t] = probe == -1 ? -1 : open_tcp_listener(l, 1, tcp_fastopen);
        } else {
            l->fds[t] = open_tcp_listener(l, 1, tcp_fastopen);
        }
        if (l->fds[t] == -1) {
            char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
            getnameinfo((struct sockaddr *)&l->addr, l->addrlen, host, sizeof(host), port, sizeof(port),
                        NI_NUMERICHOST | NI_NUMERICSERV);
            fprintf(stderr, "%s: listen: cannot listen on %s port %s: %s\n", l->origin, host, port, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void unbind_listeners(sig_server_conf_t *conf, size_t num_threads)
{
    size_t i, t;
    for (i = 0; i != conf->listeners.size; ++i) {
        sig_listener_conf_t *l = conf->listeners.entries[i];
        if (l->fds == NULL)
            continue;
        for (t = 0; t != num_threads; ++t)
            if (l->fds[t] != -1)
                close(l->fds[t]);
        free(l->fds);
        l->fds = NULL;
    }
}

int sig_server_bind_listeners(sig_server_conf_t *conf, const sig_server_conf_t *running, size_t num_threads)
{
    size_t i, t;

    for (i = 0; i != conf->listeners.size; ++i) {
        sig_listener_conf_t *l = conf->listeners.entries[i];
        if (l->is_global)
            l->hosts = conf->globalconf.hosts; /* read after apply: registering hosts reallocates the array */
        if (sig_server_conf_find_listener(running, &l->addr, l->addrlen) != NULL)
            continue; /* the running generation's sockets go on listening */
        l->fds = h2o_mem_alloc(sizeof(int) * num_threads);
        for (t = 0; t != num_threads; ++t)
            l->fds[t] = -1;
        if (open_listener_fds(l, num_threads, conf->tcp_fastopen) != 0) {
            unbind_listeners(conf, num_threads);
            return -1;
        }
    }
    return 0;
}

/* ---- generations ---- */

sig_gen_t *sig_generation_create(sig_server_t *server, sig_server_conf_t *conf)
{
    sig_gen_t *gen = h2o_mem_alloc(sizeof(*gen));
    memset(gen, 0, sizeof(*gen));
    gen->id = ++server->num_gens_made;
    gen->conf = conf;
    gen->threads = h2o_mem_alloc(sizeof(*gen->threads) * server->num_threads);
    memset(gen->threads, 0, sizeof(*gen->threads) * server->num_threads);
    return gen;
}

static void free_listener(uv_handle_t *handle)
{
    free(handle);
}

void sig_generation_switch(sig_thread_t *thread, sig_gen_t *gen)
{
    sig_gen_thread_t *gt = gen->threads + thread->index, *old = thread->current;
    sig_server_conf_t *conf = gen->conf;
    size_t i, j;

    if (thread->shutting_down)
        return; /* a switch that crossed a shutdown: the old generation finishes the process */
    gt->gen = gen;
    h2o_context_init(&gt->ctx, &thread->loop, &conf->globalconf);
    h2o_timeout_init(&thread->loop, &gt->first_request_timeout, conf->first_request_timeout != 0 ? conf->first_request_timeout : 1);
    gt->live = 1;
    __atomic_add_fetch(&gen->live_contexts, 1, __ATOMIC_ACQ_REL);
    gt->accept = h2o_mem_alloc(sizeof(*gt->accept) * conf->listeners.size);
    for (i = 0; i != conf->listeners.size; ++i) {
        memset(gt->accept + i, 0, sizeof(gt->accept[i]));
        gt->accept[i].ctx = &gt->ctx;
        gt->accept[i].hosts = conf->listeners.entries[i]->hosts;
        /* the first certificate's context; its SNI callback switches to the others */
        gt->accept[i].ssl_ctx = conf->listeners.entries[i]->tls.size != 0 ? conf->listeners.entries[i]->tls.entries[0]->ctx : NULL;
    }
    thread->current = gt;
    if (old != NULL) {
        old->retired_at = uv_now(&thread->loop);
        /* HTTP/1 connections close after their response, HTTP/2 ones get GOAWAY; WebSockets stay */
        h2o_context_request_shutdown(&old->ctx);
    }

    /* listeners: the kept addresses point at the new configuration, removed ones close, new ones open */
    for (i = 0; i != thread->listeners.size;) {
        sig_listener_t *l = thread->listeners.entries[i];
        sig_listener_conf_t *kept = sig_server_conf_find_listener(conf, &l->addr, l->addrlen);
        if (kept != NULL) {
            for (j = 0; conf->listeners.entries[j] != kept; ++j)
                ;
            l->conf_index = j;
            ++i;
            continue;
        }
        uv_close((uv_handle_t *)&l->stream, free_listener); /* sockets it accepted stay */
        thread->listeners.entries[i] = thread->listeners.entries[--thread->listeners.size];
    }
    for (j = 0; j != conf->listeners.size; ++j) {
        sig_listener_conf_t *lc = conf->listeners.entries[j];
        sig_listener_t *l;
        if (lc->fds == NULL || lc->fds[thread->index] == -1)
            continue; /* an address already listened on */
        l = h2o_mem_alloc(sizeof(*l));
        memset(l, 0, sizeof(*l));
        l->thread = thread;
        memcpy(&l->addr, &lc->addr, lc->addrlen);
        l->addrlen = lc->addrlen;
        l->conf_index = j;
        l->is_unix = lc->is_unix;
        if (l->is_unix) {
            uv_pipe_init(&thread->loop, &l->pipe, 0);
            uv_pipe_open(&l->pipe, lc->fds[thread->index]);
        } else {
            uv_tcp_init(&thread->loop, &l->tcp);
            uv_tcp_open(&l->tcp, lc->fds[thread->index]);
        }
        lc->fds[thread->index] = -1; /* owned by the handle now */
        uv_listen(&l->stream, SOMAXCONN, sig_server_on_connection);
        h2o_vector_reserve(NULL, &thread->listeners, thread->listeners.size + 1);
        thread->listeners.entries[thread->listeners.size++] = l;
    }
    sig_signaling_thread_switch();
}

/* The access logs of a generation nobody serves under any more: their files stay open for as long
 * as the loggers hold them, and the configuration itself is never disposed (sig_server.h). */
static void release_loggers(sig_server_conf_t *conf)
{
    size_t i, j, k;
    for (i = 0; conf->globalconf.hosts[i] != NULL; ++i) {
        h2o_hostconf_t *host = conf->globalconf.hosts[i];
        for (j = 0; j <= host->paths.size; ++j) {
            h2o_pathconf_t *path = j < host->paths.size ? host->paths.entries + j : &host->fallback_path;
            for (k = 0; k != path->loggers.size; ++k) {
                h2o_logger_t *logger = path->loggers.entries[k];
                if (logger->dispose != NULL)
                    logger->dispose(logger);
                free(logger);
            }
            path->loggers.size = 0;
        }
    }
}

static void dispose_context(sig_gen_thread_t *gt)
{
    /* h2o_context_request_shutdown armed HTTP/2's one-second GOAWAY timer; with no connection left it has
     * nothing to do, and h2o_context_dispose asserts every timeout list is empty */
    if (h2o_timeout_is_linked(&gt->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&gt->ctx.http2._graceful_shutdown_timeout);
    h2o_timeout_dispose(gt->ctx.loop, &gt->first_request_timeout); /* empty: its connections are gone */
    h2o_context_dispose(&gt->ctx); /* runs the loop once, for the close callbacks: never from a callback */
    free(gt->accept);
    gt->accept = NULL;
    gt->live = 0;
    if (__atomic_sub_fetch(&gt->gen->live_contexts, 1, __ATOMIC_ACQ_REL) == 0)
        release_loggers(gt->gen->conf);
}

void sig_generation_collect(sig_thread_t *thread, int all)
{
    sig_gen_t *gen;
    uint64_t now = uv_now(&thread->loop);

    for (gen = __atomic_load_n(&thread->server->gens, __ATOMIC_ACQUIRE); gen != NULL; gen = gen->next) {
        sig_gen_thread_t *gt = gen->threads + thread->index;
        if (!gt->live)
            continue;
        if (all || (gt != thread->current && gt->num_connections == 0 && now - gt->retired_at >= SIG_GEN_QUARANTINE_MS))
            dispose_context(gt);
    }
}

size_t sig_generation_count_alive(sig_server_t *server)
{
    sig_gen_t *gen;
    size_t n = 0, t;
    for (gen = server->gens; gen != NULL; gen = gen->next) {
        int alive = gen == server->gens;
        for (t = 0; !alive && t != server->num_threads; ++t)
            alive = __atomic_load_n(&gen->threads[t].num_connections, __ATOMIC_RELAXED) != 0;
        n += alive;
    }
    return n;
}

/* ---- SIGHUP ---- */

static int same_string(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Where to point at a restart-only directive: its line in the new file, else where it was (removed). */
static void print_restart_only(const sig_server_conf_t *conf, const char *name, const char *new_origin, const char *old_origin)
{
    if (new_origin != NULL)
        fprintf(stderr, "%s: %s: cannot be changed by a reload; restart the server\n", new_origin, name);
    else if (old_origin != NULL)
        fprintf(stderr, "%s: %s: cannot be removed by a reload; restart the server\n", old_origin, name);
    else
        fprintf(stderr, "%s:1: %s: cannot be changed by a reload; restart the server\n", conf->config_file, name);
}

/* The directives a running process cannot take: one line each. */
static int check_restart_only(const sig_server_conf_t *running, const sig_server_conf_t *conf)
{
    int ok = 1;
    if (conf->num_threads != running->num_threads) {
        print_restart_only(conf, "num-threads", conf->num_threads_origin, running->num_threads_origin);
        ok = 0;
    }
    if (!same_string(conf->user, running->user)) {
        print_restart_only(conf, "user", conf->user_origin, running->user_origin);
        ok = 0;
    }
    if (!same_string(conf->temp_buffer_path, running->temp_buffer_path)) {
        /* libh2o has one process-wide template that other threads read while they allocate */
        print_restart_only(conf, "temp-buffer-path", conf->temp_buffer_path_origin, running->temp_buffer_path_origin);
        ok = 0;
    }
    return ok;
}

void sig_server_reload(sig_server_t *server)
{
    sig_thread_t *thread0 = server->threads;
    sig_server_conf_t *conf;
    sig_gen_t *gen;
    size_t i;

    if (thread0->shutting_down)
        return;
    if ((conf = sig_server_conf_load(server->config_file, 0)) == NULL)
        goto Rejected;
    if (!check_restart_only(server->conf, conf) || sig_server_bind_listeners(conf, server->conf, server->num_threads) != 0) {
        sig_server_conf_dispose(conf); /* safe: no context was made for it */
        goto Rejected;
    }
    sig_signaling_config_commit();
    sig_tls_stop_ocsp(server->conf);
    sig_tls_start_ocsp(conf);
    h2o_hostinfo_max_threads = conf->num_name_resolution_threads;
    gen = sig_generation_create(server, conf);
    gen->next = server->gens;
    __atomic_store_n(&server->gens, gen, __ATOMIC_RELEASE);
    server->conf = conf;
    for (i = 1; i < server->num_threads; ++i) {
        sig_control_msg_t *msg = h2o_mem_alloc(sizeof(*msg));
        memset(msg, 0, sizeof(*msg));
        msg->kind = SIG_CONTROL_SWITCH;
        msg->gen = gen;
        h2o_multithread_send_message(&server->threads[i].control, &msg->super);
    }
    sig_generation_switch(thread0, gen);
    fprintf(stderr, "h2o-signaling: reloaded %s (generation %u, %zu alive)\n", server->config_file, gen->id,
            sig_generation_count_alive(server));
    return;

Rejected:
    fprintf(stderr, "h2o-signaling: reload of %s rejected; still serving generation %u\n", server->config_file, server->gens->id);
}
