/*
 * tcp-echo.c: a raw TCP echo server, one thread, epoll: the ceiling for routed-like traffic (loadgen --workload echo).
 *
 * Every read is written straight back in one write(); what the socket does not take is kept and the connection stops
 * being read until it drains, so a client that does not read cannot grow our memory without bound.
 *
 * Usage: tcp-echo [PORT]   (or PORT in the environment; default 9001). Listens on 127.0.0.1 only and prints
 * "tcp-echo listening on 127.0.0.1:PORT" once it accepts connections. Ends on SIGINT/SIGTERM (exit status 0).
 * Build: cc -O2 -Wall -Wextra -o tcp-echo tcp-echo.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536

/* A connection; `pending` holds bytes read but not yet written back (only after a partial write). */
struct conn {
    int fd;
    size_t pending_len;
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
    close(c->fd);
    free(c->pending);
    free(c);
}

static void set_events(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/** Writes `len` bytes; keeps what the socket refused and waits for EPOLLOUT. Returns -1 if the connection failed. */
static int conn_write(struct conn *c, const char *data, size_t len)
{
    ssize_t n = write(c->fd, data, len);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        n = 0;
    }
    if ((size_t)n < len) {
        char *rest = malloc(len - (size_t)n);
        if (rest == NULL)
            return -1;
        memcpy(rest, data + n, len - (size_t)n);
        free(c->pending);
        c->pending = rest;
        c->pending_len = len - (size_t)n;
        set_events(c, EPOLLOUT); /* stop reading until the backlog is gone */
    }
    return 0;
}

static void on_event(struct conn *c, uint32_t events)
{
    static char buf[BUF_SIZE];
    ssize_t n;

    if (c->pending != NULL) { /* EPOLLOUT: drain the backlog, then read again */
        char *p = c->pending;
        size_t len = c->pending_len;
        c->pending = NULL;
        if (conn_write(c, p, len) != 0) {
            free(p);
            conn_free(c);
            return;
        }
        free(p);
        if (c->pending == NULL)
            set_events(c, EPOLLIN);
        return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0)
        return;
    n = read(c->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0 || conn_write(c, buf, (size_t)n) != 0)
        conn_free(c);
}

int main(int argc, char **argv)
{
    const char *port_text = argc > 1 ? argv[1] : getenv("PORT") != NULL ? getenv("PORT") : "9001";
    struct sockaddr_in addr = {.sin_family = AF_INET};
    struct epoll_event ev = {.events = EPOLLIN}, evs[256];
    int lfd, one = 1, port = atoi(port_text);

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: tcp-echo [PORT]\n");
        return 2;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(lfd, 4096) != 0) {
        perror("tcp-echo: listen");
        return 1;
    }
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) {
        perror("tcp-echo: epoll");
        return 1;
    }
    printf("tcp-echo listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    for (;;) {
        int i, n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("tcp-echo: epoll_wait");
            return 1;
        }
        for (i = 0; i < n; ++i) {
            if (evs[i].data.ptr != NULL) {
                on_event(evs[i].data.ptr, evs[i].events);
                continue;
            }
            for (;;) { /* the listener (data.ptr NULL): accept everything waiting */
                struct conn *c;
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                    break;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                if ((c = calloc(1, sizeof(*c))) == NULL) {
                    close(fd);
                    continue;
                }
                c->fd = fd;
                ev.events = EPOLLIN;
                ev.data.ptr = c;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
                    conn_free(c);
            }
        }
    }
}
