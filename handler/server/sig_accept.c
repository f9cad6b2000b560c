/*
 * Accepting (sig_server.h): from a listener's new socket to h2o_accept, with what guards the door
 * (docs/security.md): `max-connections`, the open-files limit, `max-connections-per-address` counted
 * over every thread, the PROXY line of `proxy-protocol: ON` listeners, and `first-request-timeout`,
 * the deadline by which a connection must have sent its first request (TLS handshake and headers
 * included; trickling bytes does not extend it).
 */
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <uv.h>
#include <h2o.h>
#include <h2o/socket/uv-binding.h>
#include "core/sig_addrcount.h"
#include "core/sig_proxyline.h"
#include "server/sig_server.h"

/* What the host keeps for each accepted socket, until h2o closes it. */
struct st_sig_socket_owner_t {
    sig_thread_t *thread;
    sig_gen_thread_t *gen; /* the generation the socket was accepted under */
    uv_stream_t *stream;
    h2o_timeout_entry_t deadline; /* first-request-timeout; unlinked once the first request is in */
    sig_addr_key_t address;       /* counted in server->by_address when `counted` */
    int counted;
};

/* A connection on a `proxy-protocol: ON` listener, until its PROXY line is read. */
struct st_sig_proxy_wait_t {
    h2o_accept_ctx_t *accept;
    h2o_socket_t *sock;
    h2o_timeout_entry_t deadline;
};

/* ---- the log ---- */

static void log_accept_trouble(sig_thread_t *thread, const char *why)
{
    static uint64_t last_logged;
    uint64_t now = uv_now(&thread->loop);
    if (last_logged != 0 && now - last_logged < 1000)
        return;
    last_logged = now;
    fprintf(stderr, "h2o-signaling: cannot accept more connections: %s (open-files limit %llu, %d connections open); new clients "
                    "are refused until descriptors are free\n",
            why, thread->server->fd_limit, thread->server->num_connections);
}

/* ---- per-address counting ---- */

static size_t address_cap(sig_gen_thread_t *gt, size_t listener_index)
{
    size_t own = gt->gen->conf->listeners.entries[listener_index]->max_connections_per_address;
    return own != SIZE_MAX ? own : gt->gen->conf->max_connections_per_address;
}

/* Counts the connection under its client address; 0 when the address is at its cap (then logged). */
static int count_address(struct st_sig_socket_owner_t *owner, const struct sockaddr *sa, size_t cap)
{
    static uint64_t last_logged;
    static size_t refused;
    sig_server_t *server = owner->thread->server;
    unsigned prefix = owner->gen->gen->conf->ipv6_prefix;
    char text[64];
    size_t taken, n;

    if (sa->sa_family == AF_INET)
        owner->address = sig_addrcount_key(4, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr, prefix);
    else if (sa->sa_family == AF_INET6)
        owner->address = sig_addrcount_key(6, (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr, prefix);
    else
        return 1; /* a unix socket's client has no address to count */
    pthread_mutex_lock(&server->by_address_lock);
    taken = sig_addrcount_take(server->by_address, &owner->address, cap);
    pthread_mutex_unlock(&server->by_address_lock);
    if (taken != 0) {
        owner->counted = 1;
        return 1;
    }
    /* one line a second at most, from any thread (a lost update of the time costs one line more or less),
     * with how many were refused since the last line */
    n = __sync_add_and_fetch(&refused, 1);
    if (last_logged == 0 || uv_now(&owner->thread->loop) - last_logged >= 1000) {
        last_logged = uv_now(&owner->thread->loop);
        __sync_fetch_and_sub(&refused, n);
        sig_addrcount_format(&owner->address, prefix, text, sizeof(text));
        fprintf(stderr, "h2o-signaling: refused %zu connection(s) from %s: the address holds max-connections-per-address (%zu)\n", n,
                text, cap);
    }
    return 0;
}

/* ---- the socket's life ---- */

static void on_socket_close(void *data)
{
    struct st_sig_socket_owner_t *owner = data;
    sig_server_t *server = owner->thread->server;

    if (h2o_timeout_is_linked(&owner->deadline))
        h2o_timeout_unlink(&owner->deadline);
    if (owner->counted) {
        pthread_mutex_lock(&server->by_address_lock);
        sig_addrcount_release(server->by_address, &owner->address);
        pthread_mutex_unlock(&server->by_address_lock);
    }
    --owner->gen->num_connections;
    --owner->thread->num_connections;
    __sync_fetch_and_sub(&server->num_connections, 1);
    free(owner);
}

/* The first request did not come in time: h2o owns the socket (HTTP/1 or TLS may be waiting for
 * bytes), so it is shut down rather than closed, and h2o closes it on the end of input it then reads. */
static void on_first_request_deadline(h2o_timeout_entry_t *entry)
{
    struct st_sig_socket_owner_t *owner = H2O_STRUCT_FROM_MEMBER(struct st_sig_socket_owner_t, deadline, entry);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)owner->stream, &fd) == 0)
        shutdown(fd, SHUT_RDWR);
}

/* First in every path's handler list (sig_server_install_first_request_hook): a request has arrived,
 * so its connection's deadline is over; then the path's own handlers run. */
static int on_request_arrived(h2o_handler_t *self, h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock != NULL && sock->on_close.cb == on_socket_close) {
        struct st_sig_socket_owner_t *owner = sock->on_close.data;
        if (h2o_timeout_is_linked(&owner->deadline))
            h2o_timeout_unlink(&owner->deadline);
    }
    return -1; /* not handled: on to the next handler */
}

static void hook_path(h2o_pathconf_t *path)
{
    h2o_handler_t *hook = h2o_create_handler(path, sizeof(*hook)); /* appended: move it to the front */
    memmove(path->handlers.entries + 1, path->handlers.entries, sizeof(path->handlers.entries[0]) * (path->handlers.size - 1));
    path->handlers.entries[0] = hook;
    hook->on_req = on_request_arrived;
}

void sig_server_install_first_request_hook(sig_server_conf_t *conf)
{
    size_t i, j;
    for (i = 0; conf->globalconf.hosts[i] != NULL; ++i) {
        h2o_hostconf_t *host = conf->globalconf.hosts[i];
        for (j = 0; j != host->paths.size; ++j)
            hook_path(host->paths.entries + j);
        hook_path(&host->fallback_path);
    }
}

/* ---- PROXY protocol ---- */

static void end_proxy_wait(struct st_sig_proxy_wait_t *wait, int accept)
{
    h2o_socket_t *sock = wait->sock;
    h2o_accept_ctx_t *accept_ctx = wait->accept;
    h2o_timeout_unlink(&wait->deadline);
    free(wait);
    sock->data = NULL;
    if (!accept) {
        h2o_socket_close(sock);
        return;
    }
    h2o_socket_read_stop(sock);
    h2o_accept(accept_ctx, sock); /* the bytes after the line are in sock->input: HTTP/1 and TLS read them first */
}

static void on_proxy_deadline(h2o_timeout_entry_t *entry)
{
    end_proxy_wait(H2O_STRUCT_FROM_MEMBER(struct st_sig_proxy_wait_t, deadline, entry), 0);
}

/* libh2o 2.2.5 has its own PROXY reader (expect_proxy_line), but it passes a connection without the line
 * on as if it came directly; behind a load balancer that would let anyone who reaches the port claim
 * any address in X-Forwarded-For and the per-address limits. Here a connection without it is closed. */
static void on_proxy_read(h2o_socket_t *sock, const char *err)
{
    struct st_sig_proxy_wait_t *wait = sock->data;
    struct st_sig_socket_owner_t *owner = sock->on_close.data;
    sig_proxyline_t line;
    union {
        struct sockaddr sa;
        struct sockaddr_in sin;
        struct sockaddr_in6 sin6;
    } addr;
    socklen_t len;
    long n;

    if (err != NULL) {
        end_proxy_wait(wait, 0);
        return;
    }
    n = sig_proxyline_parse(sock->input->bytes, sock->input->size, &line);
    if (n == SIG_PROXYLINE_INCOMPLETE)
        return;
    if (n == SIG_PROXYLINE_INVALID) {
        end_proxy_wait(wait, 0);
        return;
    }
    h2o_buffer_consume(&sock->input, (size_t)n);
    memset(&addr, 0, sizeof(addr));
    if (line.family == 4) {
        addr.sin.sin_family = AF_INET;
        addr.sin.sin_port = htons(line.port);
        memcpy(&addr.sin.sin_addr, line.addr, 4);
        len = sizeof(addr.sin);
    } else if (line.family == 6) {
        addr.sin6.sin6_family = AF_INET6;
        addr.sin6.sin6_port = htons(line.port);
        memcpy(&addr.sin6.sin6_addr, line.addr, 16);
        len = sizeof(addr.sin6);
    } else {
        end_proxy_wait(wait, 1); /* PROXY UNKNOWN: the connection's own address stays, and the balancer is not counted */
        return;
    }
    h2o_socket_setpeername(sock, &addr.sa, len);
    /* the client behind the balancer is the one counted, never the balancer */
    end_proxy_wait(wait, count_address(owner, &addr.sa, address_cap(owner->gen, (size_t)(wait->accept - owner->gen->accept))));
}

/* ---- accept ---- */

static void free_handle(uv_handle_t *handle)
{
    free(handle);
}

void sig_server_on_connection(uv_stream_t *listener_stream, int status)
{
    sig_listener_t *listener = (sig_listener_t *)listener_stream;
    sig_thread_t *thread = listener->thread;
    sig_server_t *server = thread->server;
    sig_gen_thread_t *gt = thread->current;
    sig_listener_conf_t *lc = gt->gen->conf->listeners.entries[listener->conf_index];
    h2o_accept_ctx_t *accept = gt->accept + listener->conf_index;
    struct st_sig_socket_owner_t *owner;
    union {
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } * conn;
    h2o_socket_t *sock;

    if (status != 0) {
        log_accept_trouble(thread, uv_strerror(status));
        return;
    }
    conn = h2o_mem_alloc(sizeof(*conn));
    if (listener->is_unix)
        uv_pipe_init(&thread->loop, &conn->pipe, 0);
    else
        uv_tcp_init(&thread->loop, &conn->tcp);
    if (uv_accept(listener_stream, &conn->stream) != 0) {
        uv_close((uv_handle_t *)conn, free_handle);
        return;
    }
    /* over max-connections: close at once, so the client learns now instead of waiting in the backlog */
    if (__sync_add_and_fetch(&server->num_connections, 1) > gt->gen->conf->max_connections) {
        __sync_fetch_and_sub(&server->num_connections, 1);
        uv_close((uv_handle_t *)conn, free_handle);
        return;
    }
    /* at the open-files limit libuv accepts and closes the next clients itself, silently (and without
     * spinning): say so while the count of connections stands there */
    if (server->fd_limit != 0 && (unsigned long long)server->num_connections + server->fd_reserve >= server->fd_limit)
        log_accept_trouble(thread, "the open-files limit is reached");
    __atomic_add_fetch(&server->num_sessions, 1, __ATOMIC_RELAXED);
    owner = h2o_mem_alloc(sizeof(*owner));
    memset(owner, 0, sizeof(*owner));
    owner->thread = thread;
    owner->gen = gt;
    owner->stream = &conn->stream;
    if (!listener->is_unix && !lc->proxy_protocol) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) == 0 &&
            !count_address(owner, (struct sockaddr *)&ss, address_cap(gt, listener->conf_index))) {
            __sync_fetch_and_sub(&server->num_connections, 1);
            free(owner);
            uv_close((uv_handle_t *)conn, free_handle);
            return;
        }
        /* small WebSocket frames must not wait ~40 ms for the peer's delayed ACK (Nagle) */
        uv_tcp_nodelay(&conn->tcp, 1);
    } else if (!listener->is_unix) {
        uv_tcp_nodelay(&conn->tcp, 1);
    }
    ++thread->num_connections;
    ++gt->num_connections;
    sock = h2o_uv_socket_create(&conn->stream, free_handle);
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = owner;
    owner->deadline.cb = on_first_request_deadline;
    if (gt->gen->conf->first_request_timeout != 0)
        h2o_timeout_link(&thread->loop, &gt->first_request_timeout, &owner->deadline);
    if (lc->proxy_protocol) {
        struct st_sig_proxy_wait_t *wait = h2o_mem_alloc(sizeof(*wait));
        memset(wait, 0, sizeof(*wait));
        wait->accept = accept;
        wait->sock = sock;
        wait->deadline.cb = on_proxy_deadline;
        /* the line comes first or never: it gets the TLS handshake's deadline (and first-request-timeout) */
        h2o_timeout_link(&thread->loop, &accept->ctx->handshake_timeout, &wait->deadline);
        sock->data = wait;
        h2o_socket_read_start(sock, on_proxy_read);
        return;
    }
    h2o_accept(accept, sock);
}
