/*
 * tls-echo.c: a raw TLS echo server, one thread, epoll, OpenSSL: the ceiling for routed-like traffic over TLS
 * (loadgen --tls --workload echo), as tcp-echo.c is for plain TCP.
 *
 * Each connection's SSL is driven directly on its non-blocking socket: the handshake, then every readable event
 * decrypts all the records that arrived (read-ahead: one read() for them) and encrypts them back as one SSL_write, so
 * one record and one write() per event, no epoll_ctl while the socket takes it all, and no copy but the decryption
 * and the encryption. What the socket does not take is kept (SSL_write is retried with it on EPOLLOUT) and the
 * connection stops being read until it drains.
 *
 * Usage: tls-echo CERT KEY [PORT]   (PEM files; PORT or PORT in the environment, default 9004). Listens on 127.0.0.1
 * only and prints "tls-echo listening on 127.0.0.1:PORT" once it accepts connections. Ends on SIGINT/SIGTERM (exit
 * status 0). OpenSSL's defaults otherwise (TLS 1.3, stateless session tickets, record buffers kept per connection).
 * Build: cc -O2 -Wall -Wextra -o tls-echo tls-echo.c $(pkg-config --cflags --libs libssl libcrypto)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536

struct conn {
    int fd;
    SSL *ssl;
    int handshaken;
    uint32_t events;
    size_t pending_len; /* a write OpenSSL could not finish: retried with the same bytes on EPOLLOUT */
    char *pending;
};

static int ep;

static void on_stop(int sig)
{
    (void)sig;
    _exit(0); /* a clean end for whoever stops us (tests/bench/run counts a death by signal as a crash) */
}

static void conn_free(struct conn *c)
{
    SSL_free(c->ssl);
    close(c->fd);
    free(c->pending);
    free(c);
}

static void set_events(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (c->events != events) {
        c->events = events;
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

/** What OpenSSL wants after a call that returned r: 0 wait (events set), -1 the connection failed. */
static int want(struct conn *c, int r)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        set_events(c, EPOLLIN);
        return 0;
    case SSL_ERROR_WANT_WRITE:
        set_events(c, EPOLLOUT);
        return 0;
    default:
        ERR_clear_error();
        return -1;
    }
}

/** Encrypts `len` bytes as one record and writes it: 0 done, 1 kept for EPOLLOUT (the socket is full), -1 failed. */
static int conn_write(struct conn *c, const char *data, size_t len)
{
    int r = SSL_write(c->ssl, data, (int)len);
    if (r > 0)
        return 0;
    if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return -1;
    }
    if (data != c->pending) { /* SSL_write must be called again with the same bytes */
        if ((c->pending = malloc(len)) == NULL)
            return -1;
        memcpy(c->pending, data, len);
        c->pending_len = len;
    }
    set_events(c, EPOLLOUT); /* stop reading until the backlog is gone */
    return 1;
}

static void on_event(struct conn *c)
{
    static char buf[BUF_SIZE];
    size_t got = 0;
    int r;

    if (!c->handshaken) {
        if ((r = SSL_do_handshake(c->ssl)) != 1) {
            if (want(c, r) != 0)
                conn_free(c);
            return;
        }
        c->handshaken = 1;
        set_events(c, EPOLLIN);
    }
    if (c->pending != NULL) { /* EPOLLOUT: drain the backlog, then read again */
        if ((r = conn_write(c, c->pending, c->pending_len)) != 0) {
            if (r < 0)
                conn_free(c);
            return;
        }
        free(c->pending);
        c->pending = NULL;
        set_events(c, EPOLLIN);
    }
    for (;;) { /* every record that arrived, into one buffer */
        r = SSL_read(c->ssl, buf + got, (int)(sizeof(buf) - got));
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == sizeof(buf) || !SSL_has_pending(c->ssl))
            break;
    }
    if (got != 0) {
        if (conn_write(c, buf, got) < 0)
            conn_free(c);
        return;
    }
    if (want(c, r) != 0) /* EOF, close_notify or an error */
        conn_free(c);
}

int main(int argc, char **argv)
{
    const char *port_text = argc > 3 ? argv[3] : getenv("PORT") != NULL ? getenv("PORT") : "9004";
    struct sockaddr_in addr = {.sin_family = AF_INET};
    struct epoll_event ev = {.events = EPOLLIN}, evs[256];
    int lfd, one = 1, port = atoi(port_text);
    SSL_CTX *ctx;

    if (argc < 3 || port <= 0 || port > 65535) {
        fprintf(stderr, "usage: tls-echo CERT KEY [PORT]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL || SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "tls-echo: cannot load %s and %s: ", argv[1], argv[2]);
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(lfd, 4096) != 0) {
        perror("tls-echo: listen");
        return 1;
    }
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) {
        perror("tls-echo: epoll");
        return 1;
    }
    printf("tls-echo listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    for (;;) {
        int i, n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("tls-echo: epoll_wait");
            return 1;
        }
        for (i = 0; i < n; ++i) {
            if (evs[i].data.ptr != NULL) {
                on_event(evs[i].data.ptr);
                continue;
            }
            for (;;) { /* the listener (data.ptr NULL): accept everything waiting */
                struct conn *c;
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                    break;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                if ((c = calloc(1, sizeof(*c))) == NULL || (c->ssl = SSL_new(ctx)) == NULL) {
                    free(c);
                    close(fd);
                    continue;
                }
                c->fd = fd;
                SSL_set_fd(c->ssl, fd);
                SSL_set_accept_state(c->ssl);
                c->events = ev.events = EPOLLIN;
                ev.data.ptr = c;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
                    conn_free(c);
            }
        }
    }
}
