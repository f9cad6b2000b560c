/*
 * The host's runtime: config loading, listeners, one libuv loop per thread, signals, shutdown.
 *
 * Threads: thread 0 is the main thread and owns the signal watchers. Every thread has its own
 * h2o_context_t, its own SO_REUSEPORT socket per listener (the kernel spreads connections evenly)
 * and a receiver on its context's queue; shutdown travels to the other threads as a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include <h2o/socket/uv-binding.h>
#include "server/sig_server.h"
#include "signaling/sig_signaling.h"
#include "server/sig_yaml.h"

#define SIG_SHUTDOWN_GRACE_MS 5000 /* in-flight HTTP gets this long after SIGTERM */
#define SIG_SHUTDOWN_POLL_MS 50

struct st_sig_listener_t {
    uv_tcp_t tcp;
    h2o_accept_ctx_t accept_ctx;
    sig_thread_t *thread;
};

struct st_sig_thread_t {
    sig_server_t *server;
    size_t index;
    pthread_t tid;
    uv_loop_t loop;
    h2o_context_t ctx;
    struct st_sig_listener_t *listeners;
    h2o_multithread_receiver_t control; /* shutdown requests from thread 0 */
    size_t num_connections;             /* accepted sockets still open on this thread */
    int shutting_down;
    int done; /* shutdown finished (or its grace period ran out): leave the loop */
    uint64_t shutdown_deadline;
    uv_timer_t shutdown_timer;
    uv_signal_t signals[3]; /* thread 0 only: SIGTERM, SIGINT, SIGHUP */
};

/* ---- configuration ---- */

int sig_server_configure(sig_server_t *server, const char *path, int dry_run)
{
    char errbuf[1024];
    yoml_t *root;
    int ret = -1;

    memset(server, 0, sizeof(*server));
    server->config_file = path;
    server->num_threads = 1;
    server->max_connections = 1024;
    h2o_config_init(&server->globalconf);

    /* the stock directive families, in the order h2o's own main registers them */
    h2o_access_log_register_configurator(&server->globalconf);
    h2o_compress_register_configurator(&server->globalconf);
    h2o_expires_register_configurator(&server->globalconf);
    h2o_errordoc_register_configurator(&server->globalconf);
    h2o_fastcgi_register_configurator(&server->globalconf);
    h2o_file_register_configurator(&server->globalconf);
    h2o_throttle_resp_register_configurator(&server->globalconf);
    h2o_headers_register_configurator(&server->globalconf);
    h2o_proxy_register_configurator(&server->globalconf);
    h2o_reproxy_register_configurator(&server->globalconf);
    h2o_redirect_register_configurator(&server->globalconf);
    h2o_status_register_configurator(&server->globalconf);
    h2o_http2_debug_state_register_configurator(&server->globalconf);
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
            h2o_mimemap_define_mimetype(server->globalconf.mimemap, utf8_types[i][0], utf8_types[i][1], NULL);
    }
    sig_server_register_configurator(server);
    sig_signaling_register_configurator(&server->globalconf);

    if ((root = sig_yaml_load_file(path, errbuf, sizeof(errbuf))) == NULL) {
        fprintf(stderr, "%s\n", errbuf);
        return -1;
    }
    if (h2o_configurator_apply(&server->globalconf, root, dry_run) != 0)
        goto Exit;
    if (server->listeners.size == 0) {
        fprintf(stderr, "%s:1: listen: mandatory directive is missing (e.g. `listen: 8080`)\n", path);
        goto Exit;
    }
    ret = 0;
Exit:
    yoml_free(root, NULL);
    return ret;
}

/* ---- binding ---- */

/* Opens a socket bound to the listener's address; `reuseport` lets each thread have its own. */
static int open_listener(sig_listener_conf_t *l, int reuseport)
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
    return fd;
Error: {
    int saved = errno;
    close(fd);
    errno = saved;
}
    return -1;
}

static int open_error_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd == -1) {
        fprintf(stderr, "error-log: cannot open `%s`: %s\n", path, strerror(errno));
        return -1;
    }
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    close(fd);
    return 0;
}

static int drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "user: `%s` does not exist\n", user);
        return -1;
    }
    if (setgid(pw->pw_gid) != 0 || initgroups(pw->pw_name, pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "user: cannot switch to `%s`: %s\n", user, strerror(errno));
        return -1;
    }
    return 0;
}

int sig_server_bind(sig_server_t *server)
{
    size_t i, t;

    for (i = 0; i != server->listeners.size; ++i) {
        sig_listener_conf_t *l = server->listeners.entries[i];
        if (l->is_global)
            l->hosts = server->globalconf.hosts; /* read after apply: registering hosts reallocates the array */
        l->fds = h2o_mem_alloc(sizeof(int) * server->num_threads);
        for (t = 0; t != server->num_threads; ++t) {
            /* SO_REUSEPORT would also let a second server (same user) share the port silently: a probe
             * without it must bind first, so "address in use" is reported as it would be by h2o */
            if (t == 0) {
                int probe = open_listener(l, 0);
                if (probe != -1)
                    close(probe);
                l->fds[t] = probe == -1 ? -1 : open_listener(l, 1);
            } else {
                l->fds[t] = open_listener(l, 1);
            }
            if (l->fds[t] == -1) {
                char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
                getnameinfo((struct sockaddr *)&l->addr, l->addrlen, host, sizeof(host), port, sizeof(port),
                            NI_NUMERICHOST | NI_NUMERICSERV);
                fprintf(stderr, "%s: listen: cannot listen on %s port %s: %s\n", l->origin, host, port, strerror(errno));
                while (t-- != 0)
                    close(l->fds[t]);
                free(l->fds);
                l->fds = NULL;
                return -1;
            }
        }
    }
    if (server->error_log != NULL && open_error_log(server->error_log) != 0)
        return -1;
    if (server->pid_file != NULL) {
        FILE *fp = fopen(server->pid_file, "w");
        if (fp == NULL) {
            fprintf(stderr, "pid-file: cannot write `%s`: %s\n", server->pid_file, strerror(errno));
            return -1;
        }
        fprintf(fp, "%d\n", (int)getpid());
        fclose(fp);
    }
    if (server->user != NULL && drop_privileges(server->user) != 0)
        return -1;
    return 0;
}

/* ---- accepting ---- */

static void on_socket_close(void *data)
{
    sig_thread_t *thread = data;
    --thread->num_connections;
    __sync_fetch_and_sub(&thread->server->num_connections, 1);
}

static void free_handle(uv_handle_t *handle)
{
    free(handle);
}

static void on_connection(uv_stream_t *listener_stream, int status)
{
    struct st_sig_listener_t *listener = (struct st_sig_listener_t *)listener_stream;
    sig_thread_t *thread = listener->thread;
    uv_tcp_t *conn;
    h2o_socket_t *sock;

    if (status != 0)
        return;
    conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(&thread->loop, conn);
    if (uv_accept(listener_stream, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, free_handle);
        return;
    }
    /* over max-connections: close at once, so the client learns now instead of waiting in the backlog */
    if (__sync_add_and_fetch(&thread->server->num_connections, 1) > thread->server->max_connections) {
        __sync_fetch_and_sub(&thread->server->num_connections, 1);
        uv_close((uv_handle_t *)conn, free_handle);
        return;
    }
    /* small WebSocket frames must not wait ~40 ms for the peer's delayed ACK (Nagle) */
    uv_tcp_nodelay(conn, 1);
    ++thread->num_connections;
    sock = h2o_uv_socket_create((uv_stream_t *)conn, free_handle);
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = thread;
    h2o_accept(&listener->accept_ctx, sock);
}

/* ---- shutdown ---- */

static void on_shutdown_timer(uv_timer_t *timer)
{
    sig_thread_t *thread = timer->data;
    if (thread->num_connections == 0 || uv_now(&thread->loop) >= thread->shutdown_deadline) {
        thread->done = 1;
        uv_timer_stop(timer);
    }
}

/* Stops accepting, asks HTTP connections to finish and WebSockets to go away, then waits for them. */
static void begin_shutdown(sig_thread_t *thread)
{
    size_t i;

    if (thread->shutting_down)
        return;
    thread->shutting_down = 1;
    for (i = 0; i != thread->server->listeners.size; ++i)
        uv_close((uv_handle_t *)&thread->listeners[i].tcp, NULL);
    h2o_context_request_shutdown(&thread->ctx);
    sig_signaling_thread_shutdown();
    thread->shutdown_deadline = uv_now(&thread->loop) + SIG_SHUTDOWN_GRACE_MS;
    uv_timer_start(&thread->shutdown_timer, on_shutdown_timer, 0, SIG_SHUTDOWN_POLL_MS);
}

static void on_control_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    sig_thread_t *thread = H2O_STRUCT_FROM_MEMBER(sig_thread_t, control, receiver);
    /* the queue hands over a batch: every message must be unlinked and freed */
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *message = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&message->link);
        free(message);
    }
    begin_shutdown(thread);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    sig_thread_t *thread = handle->data;
    size_t i;

    if (signum == SIGHUP) {
        if (thread->server->error_log != NULL)
            open_error_log(thread->server->error_log);
        return;
    }
    if (thread->shutting_down)
        return;
    fprintf(stderr, "h2o-signaling: received %s, shutting down\n", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    for (i = 1; i < thread->server->num_threads; ++i) {
        h2o_multithread_message_t *message = h2o_mem_alloc(sizeof(*message));
        memset(message, 0, sizeof(*message));
        h2o_multithread_send_message(&thread->server->threads[i].control, message);
    }
    begin_shutdown(thread);
}

/* ---- threads ---- */

static void *run_thread(void *arg)
{
    sig_thread_t *thread = arg;
    sig_server_t *server = thread->server;
    size_t i;
    static const int signums[] = {SIGTERM, SIGINT, SIGHUP};

    uv_loop_init(&thread->loop);
    h2o_context_init(&thread->ctx, &thread->loop, &server->globalconf);
    h2o_multithread_register_receiver(thread->ctx.queue, &thread->control, on_control_message);
    uv_timer_init(&thread->loop, &thread->shutdown_timer);
    thread->shutdown_timer.data = thread;
    sig_signaling_thread_init(&thread->ctx, thread->index);
    if (thread->index == 0) {
        for (i = 0; i != sizeof(signums) / sizeof(signums[0]); ++i) {
            uv_signal_init(&thread->loop, thread->signals + i);
            thread->signals[i].data = thread;
            uv_signal_start(thread->signals + i, on_signal, signums[i]);
        }
    }
    /* no thread may receive a message (shutdown, delivery), nor a client connect, before every thread
     * has registered its receivers and thread 0 its signal handlers (SIGTERM's default would kill us) */
    pthread_barrier_wait(&server->startup_barrier);

    thread->listeners = h2o_mem_alloc(sizeof(*thread->listeners) * server->listeners.size);
    for (i = 0; i != server->listeners.size; ++i) {
        sig_listener_conf_t *conf = server->listeners.entries[i];
        struct st_sig_listener_t *listener = thread->listeners + i;
        memset(listener, 0, sizeof(*listener));
        listener->thread = thread;
        listener->accept_ctx.ctx = &thread->ctx;
        listener->accept_ctx.hosts = conf->hosts;
        listener->accept_ctx.ssl_ctx = conf->ssl_ctx;
        uv_tcp_init(&thread->loop, &listener->tcp);
        uv_tcp_open(&listener->tcp, conf->fds[thread->index]);
        conf->fds[thread->index] = -1; /* owned by the handle now */
        uv_listen((uv_stream_t *)&listener->tcp, SOMAXCONN, on_connection);
    }

    while (!thread->done) {
        uv_run(&thread->loop, UV_RUN_ONCE);
        /* a file replaced on disk must not be served stale: the cache lives for one iteration */
        h2o_filecache_clear(thread->ctx.filecache);
    }

    /* a thread tearing down must not get messages from one still running (h2o's queue asserts on a
     * message to a receiver that unregistered, and frees the queue): wait for every loop to stop, then
     * have every later message dropped */
    pthread_barrier_wait(&server->shutdown_barrier);
    sig_signaling_thread_quiesce();

    if (thread->num_connections != 0) {
        /* the grace period ran out with clients still attached: leave their memory to the process exit */
        fprintf(stderr, "h2o-signaling: thread %zu: %zu connection(s) still open after %d ms, exiting anyway\n", thread->index,
                thread->num_connections, SIG_SHUTDOWN_GRACE_MS);
        return NULL;
    }
    if (thread->index == 0) {
        for (i = 0; i != sizeof(signums) / sizeof(signums[0]); ++i)
            uv_close((uv_handle_t *)(thread->signals + i), NULL);
    }
    uv_close((uv_handle_t *)&thread->shutdown_timer, NULL);
    sig_signaling_thread_dispose();
    h2o_multithread_unregister_receiver(thread->ctx.queue, &thread->control);
    /* h2o_context_request_shutdown armed HTTP/2's one-second GOAWAY timer; with no connection left it has
     * nothing to do, and h2o_context_dispose asserts every timeout list is empty */
    if (h2o_timeout_is_linked(&thread->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&thread->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&thread->ctx); /* also runs the loop once, for the close callbacks */
    free(thread->listeners);
    /* the loop is left open: handlers such as proxy.reverse.url keep a timer on the first context's loop
     * for as long as the configuration lives, which is until the process exits */
    return NULL;
}

int sig_server_run(sig_server_t *server)
{
    size_t i;

    server->threads = h2o_mem_alloc(sizeof(*server->threads) * server->num_threads);
    memset(server->threads, 0, sizeof(*server->threads) * server->num_threads);
    for (i = 0; i != server->num_threads; ++i) {
        server->threads[i].server = server;
        server->threads[i].index = i;
    }
    sig_signaling_init(server->num_threads);
    pthread_barrier_init(&server->startup_barrier, NULL, (unsigned)server->num_threads);
    pthread_barrier_init(&server->shutdown_barrier, NULL, (unsigned)server->num_threads);
    fprintf(stderr, "h2o-signaling: serving %s with %zu thread(s)\n", server->config_file, server->num_threads);
    for (i = 1; i < server->num_threads; ++i) {
        int err = pthread_create(&server->threads[i].tid, NULL, run_thread, server->threads + i);
        if (err != 0) {
            fprintf(stderr, "h2o-signaling: cannot start thread %zu: %s\n", i, strerror(err));
            abort();
        }
    }
    run_thread(server->threads);
    for (i = 1; i < server->num_threads; ++i)
        pthread_join(server->threads[i].tid, NULL);
    pthread_barrier_destroy(&server->startup_barrier);
    pthread_barrier_destroy(&server->shutdown_barrier);
    if (server->pid_file != NULL)
        unlink(server->pid_file);
    return 0;
}

void sig_server_dispose(sig_server_t *server)
{
    size_t i, t;

    for (i = 0; i != server->listeners.size; ++i) {
        sig_listener_conf_t *l = server->listeners.entries[i];
        if (l->fds != NULL) {
            for (t = 0; t != server->num_threads; ++t)
                if (l->fds[t] != -1)
                    close(l->fds[t]);
            free(l->fds);
        }
        if (!l->is_global)
            free(l->hosts);
        if (l->ssl_ctx != NULL)
            SSL_CTX_free(l->ssl_ctx);
        free(l->origin);
        free(l);
    }
    free(server->listeners.entries);
    free(server->pid_file);
    free(server->error_log);
    free(server->user);
    h2o_config_dispose(&server->globalconf);
    sig_signaling_dispose();
    free(server->threads);
}
