/*
 * loadgen.c: load generator for the /WsService protocol (docs/protocol.md: level 1, and level 2's calls), and for a raw
 * TCP echo.
 *
 * One thread, epoll, non-blocking sockets. A real WebSocket client: HTTP/1.1 upgrade with a random key, the 101 and
 * its Sec-WebSocket-Accept checked, every frame masked with a random mask, server frames parsed (16/64-bit lengths,
 * fragments), pings answered. Writes are batched: frames are appended to a per-connection buffer and each dirty
 * connection gets one write() per epoll turn.
 *
 * Workloads (--workload):
 *   routed  P pairs (--pairs), each connection registered (create_connect with "id", ack awaited), then ping-pong:
 *           both ends of a pair send K dials (--inflight) to each other, and every `called` a connection receives
 *           from its partner makes it send one dial back, so 2K messages per pair are always in flight. field1
 *           carries the send time ("t=<ns>;" + padding to --payload bytes): latency is send -> partner's receipt.
 *           --rate R paces R dials/s in total instead (busy-polling the next send time, no ping-pong).
 *   echo    the same shape against a raw TCP echo server (tests/bench/peers/tcp-echo.c): 2P connections, fixed-size
 *           messages as long as a routed dialing frame on the wire, K in flight each (or --rate).
 *   idle    N registered connections (--conns); server RSS and kernel TCP memory before and after, per connection.
 *   churn   C concurrent loops (--conns) of connect + upgrade + create_connect (ack awaited) + close handshake.
 *   resub   no WebSocket: watches a Redis (--redis-port) through a restart. Reads its pubsub_channels (INFO stats),
 *           prints `READY`, then PINGs it every ~1 ms; when the connection drops (someone shut Redis down) it
 *           reconnects every ~1 ms, and once Redis is back it measures how long until pubsub_channels is back to
 *           the count read first (the nodes re-subscribed their users) and the longest round trip of any command
 *           meanwhile (the longest stall Redis showed). Bounded by --duration.
 *   calls   level 2 (calls.md): P pairs (--pairs) of level-2 devices, caller cK (connection 2K, deviceId dc<K>) and
 *           callee eK (2K+1, de<K>), all registered first; then each pair loops: the caller sends `call` (video) and
 *           gets call_response{ringing}; the callee gets incoming_call and sends call_accept; both wait for
 *           call_accepted; then 10 call_signal (5 each way, alternating, the caller first, a ~200-byte candidate as
 *           data), each sent once the previous one reached the other side; then the caller's call_hangup, and the
 *           cycle ends when the callee has call_ended and the caller its call_hangup_response. Every reply must be ok:true with the expected state, every
 *           relayed signal in order (seq); anything else is an error. Figures: complete cycles/s, server CPU per
 *           cycle, setup latency (call sent -> call_accepted at the caller). Bounded by --duration and --count.
 *   callmem level 2's memory: P pairs registered (RSS before and after), then every pair put into an active call
 *           (call, accept, one signal each way) and held (RSS again): bytes per live call; then all hung up (RSS once
 *           more: the ended calls stay as tombstones for 30 s).
 *
 * Scale-out (several nodes on one Redis): --url2 ws://HOST:PORT[/PATH] connects the callees (the odd connections:
 * every caller's partner) of routed there instead, so every message crosses from one node to the other; --watch
 * NAME:PID reports the CPU of more processes (the other node, redis-server) over the same window; idle with
 * --redis-port reads Redis's used_memory before and after registering (bytes per user), and --hold S keeps the
 * registered connections open for up to S seconds after the RESULT line (until SIGTERM or SIGINT).
 *
 * Figures: server CPU comes from /proc/PID/stat (utime+stime) of --server-pid at the start and end of the measured
 * window; the generator's own CPU from getrusage. A saturation run in which the generator used more than 90% of its
 * core is marked client_limited=1: its throughput says more about the generator than about the server.
 * Output: a human-readable block and one `RESULT key=value ...` line per run. Exit status 0 only if the run completed
 * without any error (error replies, failed handshakes, connections lost) and delivered something.
 *
 * TLS (--tls): every workload but resub over TLS (wss://, or TLS to an echo), OpenSSL in the same event loop: the TCP
 * connect, then a non-blocking handshake (no SNI, no certificate verification: the bench's self-signed certificate),
 * then the same bytes as without it through SSL_write (one per dirty connection per turn: the batch leaves as one
 * record and one write) and SSL_read (read-ahead, drained while OpenSSL holds buffered records). --tls-resume keeps
 * the last session (TLS 1.3 ticket, or TLS 1.2 session) each slot received and offers a copy of it on each of that
 * slot's next connects: churn with resumed handshakes, even against a server that sends no new ticket after a resumed
 * handshake (RFC 8446 asks clients to use a ticket once, as browsers do: such a server makes them do a full handshake
 * every few connections). Reported: the protocol and cipher, the full and resumed handshakes, and the new tickets
 * per full and per resumed handshake. libssl (OpenSSL 3) is loaded with dlopen when --tls is given, so the build
 * needs libcrypto only, as before.
 *
 * Always bounded: every phase has a deadline, and only loopback addresses (127.0.0.0/8) are accepted.
 * Build: cc -O2 -Wall -Wextra -o loadgen loadgen.c $(pkg-config --cflags --libs libcrypto)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_FRAME (16u << 20)      /* a larger server frame is a protocol error here */
#define MAX_PENDING_CONNECTS 256   /* connections between connect() and registration, at most */
#define SETUP_TIMEOUT_NS (30 * NS) /* connecting and registering everyone (idle: scaled with N) */
#define CHURN_CYCLE_TIMEOUT_NS (5 * NS)
#define RATE_MAX_OUTSTANDING 256 /* paced sends per connection not yet delivered before a send is skipped */
#define MAX_ERRORS_SHOWN 5
#define NS 1000000000ull

/* ---------------------------------------------------------------------------------------------------------------------
 * Small helpers: time, random numbers, growable buffers, errors
 * -------------------------------------------------------------------------------------------------------------------*/

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state; /* xorshift64*, seeded from getrandom: masks need not be cryptographic */

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

typedef struct {
    char *base;
    size_t off, len, cap; /* bytes [off, len) are live: consumed from the front, appended at the back */
} buf_t;

/** Makes room for `n` more bytes at the end; returns where they go. */
static char *buf_reserve(buf_t *b, size_t n)
{
    if (b->off != 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->cap - b->len < n) {
        if (b->off != 0) { /* slide the live bytes to the front before growing */
            memmove(b->base, b->base + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        while (b->cap - b->len < n)
            b->cap = b->cap != 0 ? b->cap * 2 : 512;
        if ((b->base = realloc(b->base, b->cap)) == NULL)
            die("out of memory");
    }
    return b->base + b->len;
}

static void buf_consume(buf_t *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Latency histogram, log-linear like HdrHistogram: values in ns, exact below 128, then 64 buckets per power of two,
 * so every bucket is within 1/64 (< 1.6%) of its value. Percentiles report a bucket's upper bound.
 * -------------------------------------------------------------------------------------------------------------------*/

#define HIST_SUB 128
#define HIST_HALF (HIST_SUB / 2)
#define HIST_N (HIST_SUB + 57 * HIST_HALF)

typedef struct {
    uint64_t count[HIST_N];
    uint64_t total, max;
} hist_t;

static unsigned hist_index(uint64_t v)
{
    unsigned shift;
    if (v < HIST_SUB)
        return (unsigned)v;
    shift = (unsigned)(63 - __builtin_clzll(v)) - 6; /* >= 1: keeps v >> shift in [64, 128) */
    return HIST_SUB + (shift - 1) * HIST_HALF + (unsigned)((v >> shift) - HIST_HALF);
}

/** The largest value that falls into bucket `i`. */
static uint64_t hist_upper(unsigned i)
{
    unsigned shift;
    if (i < HIST_SUB)
        return i;
    shift = (i - HIST_SUB) / HIST_HALF + 1;
    return (((uint64_t)((i - HIST_SUB) % HIST_HALF + HIST_HALF + 1)) << shift) - 1;
}

static void hist_add(hist_t *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->total++;
    if (v > h->max)
        h->max = v;
}

/** Value at quantile q (0..1) in microseconds; 0 when empty. */
static double hist_quantile_us(const hist_t *h, double q)
{
    uint64_t want = (uint64_t)(q * (double)h->total + 0.999999), seen = 0;
    unsigned i;
    if (h->total == 0)
        return 0;
    if (want == 0)
        want = 1;
    for (i = 0; i != HIST_N; ++i)
        if ((seen += h->count[i]) >= want)
            break;
    return (double)(hist_upper(i) < h->max ? hist_upper(i) : h->max) / 1e3;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Options and global state
 * -------------------------------------------------------------------------------------------------------------------*/

enum workload { W_ROUTED, W_ECHO, W_IDLE, W_CHURN, W_RESUB, W_CALLS, W_CALLMEM };
static const char *const workload_names[] = {"routed", "echo", "idle", "churn", "resub", "calls", "callmem"};
#define NUM_WORKLOADS 7
#define IS_CALLS(w) ((w) == W_CALLS || (w) == W_CALLMEM)
#define MAX_WATCH 4

static struct {
    const char *host, *path, *label;
    int port, pairs, inflight, conns, payload, server_pid;
    enum workload workload;
    double duration, warmup, rate;
    uint64_t count;
    const char *url2;            /* routed: where the callees (odd connections) go; NULL: all to --host/--port */
    char host2[64], path2[256];  /* parsed from url2 */
    int port2, redis_port;       /* redis_port: idle's used_memory, resub's target; 0: none */
    double hold;                 /* idle: seconds to keep the connections after the RESULT line */
    double after_close;          /* idle: close every connection, then report the server's RSS this many s later */
    int nwatch;
    struct {
        char name[24];
        int pid;
        double cpu0, cpu1;
    } watch[MAX_WATCH]; /* --watch NAME:PID: more processes whose CPU is reported per message */
    int tls, tls_resume; /* --tls: every connection over TLS; --tls-resume: each slot offers its last session */
} opt = {"127.0.0.1", "/WsService", NULL, 0, 50, 1, -1, 100, 0, W_ROUTED, 5, 1, 0, 0,
           NULL, "", "", 0, 0, 0, 0, 0, {{"", 0, 0, 0}}, 0, 0};

enum conn_state { S_CLOSED, S_CONNECTING, S_TLS, S_HANDSHAKE, S_OPEN, S_CLOSING }; /* S_TLS: the TLS handshake */

typedef struct conn {
    int fd, idx;
    enum conn_state state;
    int ready;            /* registered (WebSocket) or connected (echo) */
    int dirty, want_out;  /* in the flush list this turn; EPOLLOUT armed for a partial write */
    buf_t in, out, msg;   /* bytes read, bytes to write, a fragmented message being assembled */
    char accept[32];      /* the Sec-WebSocket-Accept the server must send */
    uint64_t cycle_start; /* churn: when this cycle began */
    uint64_t sent;        /* rate mode: messages this connection sent; its partner's `received` trails it */
    uint64_t received;
    struct conn *next_dirty;
    unsigned gen;         /* connections opened in this slot: tells a churn slot's next connection from this one */
    SSL *ssl;             /* --tls: this connection's TLS */
    SSL_SESSION *sess;    /* --tls-resume: the last session this slot received, offered on its next connect */
} conn_t;

static struct {
    int ep;
    struct sockaddr_in addr, addr2; /* addr2: --url2 */
    conn_t *conns;
    int nconns;                 /* slots in use: 2P, N or C */
    int opened, pending, ready; /* connections started, started but not ready, ready */
    conn_t *dirty;
    uint64_t user_seq;  /* churn: a new user id per cycle */
    int measuring;      /* inside the measured window */
    int started;        /* traffic started (routed/echo) */
    size_t echo_size;   /* bytes per echo message */
    uint64_t delivered; /* messages (routed/echo) or cycles (churn) counted in the window */
    uint64_t errors, skipped;
    uint64_t rate_next, rate_interval; /* paced mode: when the next send is due, ns between sends */
    int rate_rr;
    hist_t hist;
    volatile sig_atomic_t stop; /* SIGTERM or SIGINT while holding */
    struct call_pair *pairs;    /* calls, callmem: one per pair of connections */
    int calls_busy;             /* pairs between the start of a step (call, hangup) and its end, or its failure */
    int calls_held;             /* callmem: pairs in an active call */
    uint64_t calls_ended;       /* cycles (calls) or hangups (callmem) completed, in the window or not */
    int calls_closing;          /* the figures are out: what comes now (the ends of interrupted calls) is ignored */
    SSL_CTX *tls_ctx;           /* --tls */
    uint64_t tls_handshakes, tls_resumed; /* completed handshakes, and how many of them resumed a session */
    uint64_t tls_tickets_full, tls_tickets_resumed; /* new sessions (tickets) received after full / resumed handshakes */
    char tls_version[16], tls_cipher[64]; /* what the first handshake negotiated */
} g;

static void report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void report_error(const char *fmt, ...)
{
    va_list ap;
    if (g.errors++ < MAX_ERRORS_SHOWN) {
        va_start(ap, fmt);
        fputs("loadgen: error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Measuring the server and ourselves
 * -------------------------------------------------------------------------------------------------------------------*/

/** utime+stime of process `pid` in microseconds (all its threads), or -1 when pid <= 0. */
static double proc_cpu_us(int pid)
{
    char path[64], text[1024], *p;
    unsigned long long utime, stime;
    FILE *f;
    size_t n;
    int i;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        die("cannot read %s: %s", path, strerror(errno));
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    if ((p = strrchr(text, ')')) == NULL) /* the command name may hold spaces: fields start after it */
        die("cannot parse %s", path);
    for (i = 0; i < 12; ++i) /* the space before field 3 (state), ..., the space before field 14 (utime) */
        if ((p = strchr(p + 1, ' ')) == NULL)
            die("cannot parse %s", path);
    if (sscanf(p, " %llu %llu", &utime, &stime) != 2)
        die("cannot parse %s", path);
    return (double)(utime + stime) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/** utime+stime of the server process in microseconds, or -1 without --server-pid. */
static double server_cpu_us(void)
{
    return proc_cpu_us(opt.server_pid);
}

/** Reads every --watch process's CPU into cpu0 (at the window's start) or cpu1 (at its end). */
static void watch_sample(int end)
{
    int i;
    for (i = 0; i != opt.nwatch; ++i) {
        double v = proc_cpu_us(opt.watch[i].pid);
        if (end)
            opt.watch[i].cpu1 = v;
        else
            opt.watch[i].cpu0 = v;
    }
}

/** The --watch processes' figures: human-readable lines (`human`) or RESULT fields; `per`: messages or cycles. */
static void watch_print(int human, double secs, uint64_t per, const char *unit)
{
    int i;
    for (i = 0; i != opt.nwatch; ++i) {
        double d = opt.watch[i].cpu1 - opt.watch[i].cpu0, pct = d / 1e4 / secs, us = per != 0 ? d / (double)per : -1;
        if (human)
            printf("  %-13s %.1f %%  %.3f us/%s (pid %d)\n", opt.watch[i].name, pct, us, unit, opt.watch[i].pid);
        else
            printf(" %s_us_per_%s=%.3f %s_cpu_pct=%.1f", opt.watch[i].name, unit, us, opt.watch[i].name, pct);
    }
}

/** One "Key: value" number from a /proc text file (VmRSS in kB, ...), or -1. */
static long proc_field(const char *path, const char *key)
{
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static long server_rss_kb(void)
{
    char path[64];
    if (opt.server_pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/status", opt.server_pid);
    return proc_field(path, "VmRSS");
}

/** Kernel memory of all TCP sockets (both ends of every loopback connection), in kB: /proc/net/sockstat `mem` pages. */
static long tcp_mem_kb(void)
{
    char line[256];
    long pages = -1;
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *m;
        if (strncmp(line, "TCP:", 4) == 0 && (m = strstr(line, " mem ")) != NULL)
            pages = strtol(m + 5, NULL, 10);
    }
    fclose(f);
    return pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/** Kernel slab memory of the whole host in kB (/proc/meminfo Slab): where socket structures live. */
static long slab_kb(void)
{
    return proc_field("/proc/meminfo", "Slab");
}

/** CPU time all processes of the host spent busy (everything but idle and iowait), in microseconds: /proc/stat. */
static double host_busy_us(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int n = f != NULL
                ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
                : 0;
    if (f != NULL)
        fclose(f);
    if (n < 5)
        return -1;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * TLS (--tls): OpenSSL's libssl, loaded at run time (the build links libcrypto only), one SSL per connection
 * -------------------------------------------------------------------------------------------------------------------*/

#define TLS_FUNCS(X)                                                                                                        \
    X(TLS_client_method) X(SSL_CTX_new) X(SSL_CTX_ctrl) X(SSL_CTX_set_options) X(SSL_CTX_set_verify)                       \
    X(SSL_CTX_sess_set_new_cb) X(SSL_new) X(SSL_free) X(SSL_set_fd) X(SSL_set_connect_state) X(SSL_do_handshake)          \
    X(SSL_read) X(SSL_write) X(SSL_get_error) X(SSL_has_pending) X(SSL_set_ex_data) X(SSL_get_ex_data)                    \
    X(SSL_set_session) X(SSL_SESSION_free) X(SSL_SESSION_dup) X(SSL_session_reused) X(SSL_set_shutdown)                   \
    X(SSL_get_version) X(SSL_get_current_cipher) X(SSL_CIPHER_get_name)

static struct {
#define X(f) __typeof__(f) *f;
    TLS_FUNCS(X)
#undef X
} ssl_fn;

static void tls_load(void)
{
    static const char *const names[] = {"libssl.so.3", "libssl.so"};
    void *h = NULL;
    size_t i;
    for (i = 0; i != sizeof(names) / sizeof(names[0]) && h == NULL; ++i)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        die("--tls needs OpenSSL's libssl (libssl.so.3): %s", dlerror());
#define X(f)                                                                                                                \
    {                                                                                                                       \
        void *sym = dlsym(h, #f);                                                                                           \
        if (sym == NULL)                                                                                                    \
            die("libssl has no %s (OpenSSL 3 is needed)", #f);                                                              \
        memcpy(&ssl_fn.f, &sym, sizeof(sym));                                                                               \
    }
    TLS_FUNCS(X)
#undef X
}

/** OpenSSL's first queued error as text (the queue is cleared), or `fallback`. */
static const char *tls_error_text(const char *fallback)
{
    static char text[256];
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0)
        return fallback;
    ERR_error_string_n(e, text, sizeof(text));
    return text;
}

/** A new session from the server (TLS 1.3: a ticket after the handshake), counted by the kind of handshake it followed;
 * with --tls-resume it replaces the slot's previous one. */
static int tls_on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    conn_t *c = ssl_fn.SSL_get_ex_data(ssl, 0);
    if (ssl_fn.SSL_session_reused(ssl))
        g.tls_tickets_resumed++;
    else
        g.tls_tickets_full++;
    if (c == NULL || !opt.tls_resume)
        return 0;
    if (c->sess != NULL)
        ssl_fn.SSL_SESSION_free(c->sess);
    c->sess = sess;
    return 1; /* the reference is ours now */
}

static void tls_init(void)
{
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; /* out may grow between retries */
    tls_load();
    if ((g.tls_ctx = ssl_fn.SSL_CTX_new(ssl_fn.TLS_client_method())) == NULL)
        die("SSL_CTX_new: %s", tls_error_text("failed"));
    ssl_fn.SSL_CTX_set_verify(g.tls_ctx, SSL_VERIFY_NONE, NULL); /* the bench's self-signed certificate */
    if (opt.workload == W_IDLE)
        mode |= SSL_MODE_RELEASE_BUFFERS; /* thousands of idle clients: no 16 KB record buffers kept on our side */
    ssl_fn.SSL_CTX_ctrl(g.tls_ctx, SSL_CTRL_MODE, mode, NULL);
    ssl_fn.SSL_CTX_ctrl(g.tls_ctx, SSL_CTRL_SET_READ_AHEAD, 1, NULL); /* one read() for all records that arrived */
    ssl_fn.SSL_CTX_set_options(g.tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF); /* a server's close without close_notify is EOF */
    /* every new session is seen (and counted); kept only with --tls-resume */
    ssl_fn.SSL_CTX_ctrl(g.tls_ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE, NULL);
    ssl_fn.SSL_CTX_sess_set_new_cb(g.tls_ctx, tls_on_new_session);
    signal(SIGPIPE, SIG_IGN); /* OpenSSL writes to the socket itself */
}

/** The TLS figures: a human-readable line (`human`) or RESULT fields; nothing without --tls. */
static void tls_print(int human)
{
    if (!opt.tls)
        return;
    uint64_t full = g.tls_handshakes - g.tls_resumed;
    double pct = g.tls_handshakes != 0 ? 100.0 * (double)g.tls_resumed / (double)g.tls_handshakes : 0.0;
    double per_full = full != 0 ? (double)g.tls_tickets_full / (double)full : -1;
    double per_resumed = g.tls_resumed != 0 ? (double)g.tls_tickets_resumed / (double)g.tls_resumed : -1;
    if (human)
        printf("  tls           %s %s, %" PRIu64 " handshakes, %" PRIu64 " resumed (%.1f %%)%s; new tickets per full handshake %.2f, "
               "per resumed %.2f\n",
               g.tls_version[0] ? g.tls_version : "-", g.tls_cipher[0] ? g.tls_cipher : "-", g.tls_handshakes, g.tls_resumed, pct,
               opt.tls_resume ? " (--tls-resume)" : "", per_full, per_resumed);
    else
        printf(" tls=1 tls_resume=%d tls_version=%s tls_cipher=%s tls_handshakes=%" PRIu64 " tls_resumed=%" PRIu64
               " tls_resumed_pct=%.1f tls_tickets_per_full=%.2f tls_tickets_per_resumed=%.2f",
               opt.tls_resume, g.tls_version[0] ? g.tls_version : "-", g.tls_cipher[0] ? g.tls_cipher : "-", g.tls_handshakes,
               g.tls_resumed, pct, per_full, per_resumed);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Sockets and the write batching
 * -------------------------------------------------------------------------------------------------------------------*/

static void conn_close(conn_t *c)
{
    if (c->ssl != NULL) { /* no close_notify (the server closes first); marked as shut down so the session stays resumable */
        ssl_fn.SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        ssl_fn.SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
    if (c->state != S_CLOSED && !c->ready)
        g.pending--;
    if (c->ready)
        g.ready--;
    c->state = S_CLOSED;
    c->ready = 0;
    c->in.off = c->in.len = c->out.off = c->out.len = c->msg.off = c->msg.len = 0;
}

/** Marks `c` for the flush at the end of this epoll turn. */
static void conn_mark_dirty(conn_t *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        c->next_dirty = g.dirty;
        g.dirty = c;
    }
}

static void conn_set_events(conn_t *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
}

/** One write of everything queued for `c`; the rest waits for EPOLLOUT. Returns -1 if the connection failed. */
static int conn_flush(conn_t *c)
{
    ssize_t n;
    if (c->fd < 0 || c->out.len == c->out.off || c->state == S_TLS)
        return 0;
    if (c->ssl != NULL) { /* one record per SSL_write (up to 16 KB): one write() for a turn's frames */
        while (c->out.len != c->out.off) {
            size_t len = c->out.len - c->out.off;
            int r = ssl_fn.SSL_write(c->ssl, c->out.base + c->out.off, len > (1u << 30) ? 1 << 30 : (int)len), e;
            if (r > 0) {
                buf_consume(&c->out, (size_t)r);
                continue;
            }
            if ((e = ssl_fn.SSL_get_error(c->ssl, r)) == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                break;
            report_error("conn %d: TLS write: %s", c->idx, e == SSL_ERROR_SYSCALL && errno != 0 ? strerror(errno) : tls_error_text("failed"));
            conn_close(c);
            return -1;
        }
    } else {
        n = write(c->fd, c->out.base + c->out.off, c->out.len - c->out.off);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            report_error("conn %d: write: %s", c->idx, strerror(errno));
            conn_close(c);
            return -1;
        }
        if (n > 0)
            buf_consume(&c->out, (size_t)n);
    }
    if ((c->out.len != c->out.off) != c->want_out) {
        c->want_out = c->out.len != c->out.off;
        conn_set_events(c, EPOLLIN | (c->want_out ? EPOLLOUT : 0));
    }
    return 0;
}

static void flush_dirty(void)
{
    while (g.dirty != NULL) {
        conn_t *c = g.dirty;
        g.dirty = c->next_dirty;
        c->dirty = 0;
        conn_flush(c);
    }
}

/** Whether `c` goes to --url2: the odd connections (every caller's partner) of a routed run. */
static int on_url2(const conn_t *c)
{
    return opt.url2 != NULL && (c->idx & 1) != 0;
}

/** Starts a non-blocking connect for slot `c`; the rest happens in on_connected(). */
static void conn_open(conn_t *c)
{
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    int one = 1;

    if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        die("socket: %s (raise the fd limit or lower --conns)", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)(on_url2(c) ? &g.addr2 : &g.addr), sizeof(g.addr)) != 0 && errno != EINPROGRESS)
        die("connect to %s:%d: %s", on_url2(c) ? opt.host2 : opt.host, on_url2(c) ? opt.port2 : opt.port, strerror(errno));
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    c->state = S_CONNECTING;
    c->want_out = 0;
    c->gen++;
    c->cycle_start = now_ns();
    g.pending++;
    g.opened++;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * WebSocket framing (client side: every frame masked)
 * -------------------------------------------------------------------------------------------------------------------*/

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/** Appends one masked frame with `len` bytes of `payload` to c's output. */
static void ws_queue_frame(conn_t *c, int opcode, const void *payload, size_t len)
{
    unsigned char *p = (unsigned char *)buf_reserve(&c->out, len + 14), *start = p, mask[4];
    uint32_t m = (uint32_t)rng_next();
    size_t i;

    *p++ = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        *p++ = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    } else {
        *p++ = 0x80 | 127;
        for (i = 0; i < 8; ++i)
            *p++ = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(mask, &m, 4);
    memcpy(p, mask, 4);
    p += 4;
    for (i = 0; i < len; ++i)
        p[i] = ((const unsigned char *)payload)[i] ^ mask[i & 3];
    c->out.len += (size_t)(p - start) + len;
    conn_mark_dirty(c);
}

static void ws_queue_text(conn_t *c, const char *text, size_t len)
{
    ws_queue_frame(c, OP_TEXT, text, len);
}

/** Sends the upgrade request with a fresh random key and remembers the accept value the server must answer. */
static void ws_send_upgrade(conn_t *c)
{
    unsigned char raw[16], digest[EVP_MAX_MD_SIZE];
    char key[32], keyguid[96], req[512];
    unsigned dlen;
    int n;

    if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
        die("getrandom: %s", strerror(errno));
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    snprintf(keyguid, sizeof(keyguid), "%s%s", key, WS_GUID);
    if (!EVP_Digest(keyguid, strlen(keyguid), digest, &dlen, EVP_sha1(), NULL))
        die("EVP_Digest(sha1) failed");
    EVP_EncodeBlock((unsigned char *)c->accept, digest, (int)dlen);
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 on_url2(c) ? opt.path2 : opt.path, on_url2(c) ? opt.host2 : opt.host, on_url2(c) ? opt.port2 : opt.port, key);
    memcpy(buf_reserve(&c->out, (size_t)n), req, (size_t)n);
    c->out.len += (size_t)n;
    conn_mark_dirty(c);
}

/** Checks the response head in c->in: 0 when complete and valid (consumed), 1 when incomplete, -1 when refused. */
static int ws_check_upgrade(conn_t *c)
{
    char *head = c->in.base + c->in.off, *end, *line;
    size_t avail = c->in.len - c->in.off;
    int accepted = 0;

    if ((end = memmem(head, avail, "\r\n\r\n", 4)) == NULL)
        return avail > 8192 ? -1 : 1;
    *end = '\0';
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        report_error("conn %d: upgrade refused: %.60s", c->idx, head);
        return -1;
    }
    for (line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, "Sec-WebSocket-Accept:", 21) == 0) {
            char *v = line + 21;
            size_t vlen;
            while (*v == ' ' || *v == '\t')
                ++v;
            vlen = strcspn(v, " \t\r");
            accepted = vlen == strlen(c->accept) && memcmp(v, c->accept, vlen) == 0;
        }
    }
    if (!accepted) {
        report_error("conn %d: missing or wrong Sec-WebSocket-Accept", c->idx);
        return -1;
    }
    buf_consume(&c->in, (size_t)(end + 4 - head));
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * The level-1 protocol: what each workload sends, and what it does with what arrives
 * -------------------------------------------------------------------------------------------------------------------*/

static conn_t *partner_of(conn_t *c)
{
    return &g.conns[c->idx ^ 1];
}

static void send_create_connect(conn_t *c)
{
    char text[160];
    int n;
    if (opt.workload == W_ROUTED)
        n = snprintf(text, sizeof(text),
                     "{\"type\":\"create_connect\",\"sponsorUserId\":\"u%d\",\"sponsorUserName\":\"n\",\"id\":1}", c->idx);
    else if (IS_CALLS(opt.workload)) /* a level-2 device: caller cK or callee eK, deviceId dcK or deK */
        n = snprintf(text, sizeof(text),
                     "{\"type\":\"create_connect\",\"id\":1,\"sponsorUserId\":\"%c%d\",\"sponsorUserName\":\"n\",\"level\":2,"
                     "\"deviceId\":\"d%c%d\"}",
                     (c->idx & 1) != 0 ? 'e' : 'c', c->idx >> 1, (c->idx & 1) != 0 ? 'e' : 'c', c->idx >> 1);
    else /* idle and churn: a user of its own per connection, a fresh one per churn cycle */
        n = snprintf(text, sizeof(text),
                     "{\"type\":\"create_connect\",\"sponsorUserId\":\"%c%" PRIu64 "\",\"sponsorUserName\":\"n\",\"id\":1}",
                     opt.workload == W_IDLE ? 'i' : 'c', ++g.user_seq);
    ws_queue_text(c, text, (size_t)n);
}

/** Writes the dialing text c sends to its partner, stamped with `t`; returns its length. */
static size_t format_dial(char *text, size_t size, const conn_t *c, uint64_t t)
{
    int n = snprintf(text, size, "{\"type\":\"dialing\",\"receiverUserId\":\"u%d\",\"field1\":\"t=%020" PRIu64 ";", c->idx ^ 1, t);
    int pad = opt.payload - 23; /* "t=" + 20 digits + ";" */
    if (pad > 0) {
        memset(text + n, 'x', (size_t)pad);
        n += pad;
    }
    memcpy(text + n, "\"}", 3);
    return (size_t)n + 2;
}

/** One message from c to its partner, stamped with `t` (the send time, or the scheduled one when paced). */
static void send_one(conn_t *c, uint64_t t)
{
    char text[8192];
    c->sent++;
    if (opt.workload == W_ECHO) {
        memset(text, 'e', g.echo_size);
        memcpy(text, &t, sizeof(t));
        memcpy(buf_reserve(&c->out, g.echo_size), text, g.echo_size);
        c->out.len += g.echo_size;
        conn_mark_dirty(c);
    } else {
        ws_queue_text(c, text, format_dial(text, sizeof(text), c, t));
    }
}

/** A message sent at `t` arrived at c: count it and, unless paced, answer with the next one. */
static void on_delivered(conn_t *c, uint64_t t)
{
    uint64_t now = now_ns();
    c->received++;
    if (g.measuring) {
        g.delivered++;
        hist_add(&g.hist, now > t ? now - t : 0);
    }
    if (opt.rate == 0)
        send_one(c, now); /* routed: c answers the partner the message came from; echo: c sends again */
}

/** Finds "key": in a reply and returns where its value starts. The server's replies are flat and known; not a parser. */
static const char *json_value(const char *s, size_t len, const char *key)
{
    char quoted[40];
    const char *p, *end = s + len;
    int n = snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    if ((p = memmem(s, len, quoted, (size_t)n)) == NULL)
        return NULL;
    for (p += n; p < end && (*p == ' ' || *p == ':'); ++p)
        ;
    return p < end ? p : NULL;
}

static int value_is(const char *v, const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return v != NULL && (size_t)(s + len - v) >= n && memcmp(v, lit, n) == 0;
}

static void on_ready(conn_t *c)
{
    c->ready = 1;
    g.pending--;
    g.ready++;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Level 2 (calls, callmem): pair K is the caller cK (connection 2K, side 0) and the callee eK (2K+1, side 1)
 * -------------------------------------------------------------------------------------------------------------------*/

#define CALL_SIGNALS 10 /* per cycle: 5 each way, alternating, the caller first */
#define CALL_ID_MAX 64
#define CALL_REPLIES_MAX 8 /* replies one device may await at once (at most 2 in practice) */
#define CALL_STEP_TIMEOUT_NS (5 * NS)

enum call_phase { CP_IDLE, CP_SETUP, CP_SIGNALS, CP_ENDING, CP_HELD, CP_FAILED };
enum call_req { CR_CALL = 1, CR_ACCEPT, CR_SIGNAL, CR_HANGUP };

typedef struct call_pair {
    enum call_phase phase;
    int accepted[2];      /* call_accepted seen by each side this cycle */
    int down;             /* the hangup: 1 the caller's call_hangup_response came, 2 the callee's call_ended */
    int signals;          /* call_signals delivered this cycle */
    uint64_t seq[2];      /* the seq each side expects on the next call_signal it gets (per direction, from 1) */
    uint64_t t_call;      /* when the call was sent: setup latency runs to the caller's call_accepted */
    uint64_t step_start;  /* when the current step (a cycle, or callmem's hangup) began: a stall is an error */
    char id[2][CALL_ID_MAX]; /* the callId as each side learnt it (call_response, incoming_call) */
    size_t id_len[2];
    unsigned req_seq[2];                    /* each side's request ids */
    unsigned char due[2][CALL_REPLIES_MAX]; /* the replies each side awaits, in order (enum call_req) */
    int due_head[2], due_len[2];
} call_pair_t;

/* the data of every call_signal: a trickled ICE candidate as browsers send it (204 bytes) */
static const char call_signal_data[] =
    "{\"candidate\":\"candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0 "
    "ufrag EsAa network-cost 10\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"usernameFragment\":\"EsAa\"}";

static call_pair_t *pair_of(const conn_t *c)
{
    return &g.pairs[c->idx >> 1];
}

/** Shows at most 200 bytes of a server message in an error. */
static int shown(size_t len)
{
    return (int)(len < 200 ? len : 200);
}

/** The pair stops cycling (an error was reported): its step counts as over. */
static void call_fail(call_pair_t *p)
{
    if (p->phase == CP_SETUP || p->phase == CP_SIGNALS || p->phase == CP_ENDING)
        g.calls_busy--;
    else if (p->phase == CP_HELD)
        g.calls_held--;
    p->phase = CP_FAILED;
}

/** Queues a request of c's and the reply it awaits. */
static void call_request(conn_t *c, enum call_req r, const char *json, int len)
{
    call_pair_t *p = pair_of(c);
    int side = c->idx & 1;
    if (p->due_len[side] == CALL_REPLIES_MAX) {
        report_error("conn %d: %d replies outstanding", c->idx, CALL_REPLIES_MAX);
        call_fail(p);
        return;
    }
    p->due[side][(p->due_head[side] + p->due_len[side]++) % CALL_REPLIES_MAX] = (unsigned char)r;
    ws_queue_text(c, json, (size_t)len);
}

/** The caller of c's pair places the next call. */
static void call_start(conn_t *caller, uint64_t now)
{
    call_pair_t *p = pair_of(caller);
    char text[160];
    int n = snprintf(text, sizeof(text), "{\"type\":\"call\",\"id\":%u,\"receiverUserId\":\"e%d\",\"media\":\"video\"}",
                     ++p->req_seq[0], caller->idx >> 1);
    if (p->phase != CP_SETUP && p->phase != CP_SIGNALS && p->phase != CP_ENDING)
        g.calls_busy++;
    p->phase = CP_SETUP;
    p->accepted[0] = p->accepted[1] = p->down = 0;
    p->signals = 0;
    p->seq[0] = p->seq[1] = 1;
    p->id_len[0] = p->id_len[1] = 0;
    p->t_call = p->step_start = now;
    call_request(caller, CR_CALL, text, n);
}

/** c sends the request `type` about its current call (call_accept, call_hangup, or a call_signal). */
static void call_send(conn_t *c, enum call_req r)
{
    call_pair_t *p = pair_of(c);
    int side = c->idx & 1, n;
    char text[512];
    if (r == CR_SIGNAL)
        n = snprintf(text, sizeof(text), "{\"type\":\"call_signal\",\"id\":%u,\"callId\":\"%.*s\",\"kind\":\"candidate\",\"data\":%s}",
                     ++p->req_seq[side], (int)p->id_len[side], p->id[side], call_signal_data);
    else
        n = snprintf(text, sizeof(text), "{\"type\":\"%s\",\"id\":%u,\"callId\":\"%.*s\"}",
                     r == CR_ACCEPT ? "call_accept" : "call_hangup", ++p->req_seq[side], (int)p->id_len[side], p->id[side]);
    call_request(c, r, text, n);
}

/** The string value at v (a '"' first) as (*tok, return value); 0 when v is not a string. */
static size_t str_token(const char *v, const char *s, size_t len, const char **tok)
{
    const char *end = s + len, *q;
    if (v == NULL || v >= end || *v != '"' || (q = memchr(v + 1, '"', (size_t)(end - v - 1))) == NULL)
        return 0;
    *tok = v + 1;
    return (size_t)(q - v - 1);
}

static int tok_is(const char *tok, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(tok, lit, n) == 0;
}

/** Whether the message's callId is the one this side knows (learns it when `learn` and not known yet). */
static int call_id_matches(conn_t *c, const char *s, size_t len, int learn)
{
    call_pair_t *p = pair_of(c);
    int side = c->idx & 1;
    const char *tok;
    size_t n = str_token(json_value(s, len, "callId"), s, len, &tok);
    if (n == 0 || n >= CALL_ID_MAX)
        return 0;
    if (p->id_len[side] == 0 && learn) {
        memcpy(p->id[side], tok, n);
        p->id_len[side] = n;
        /* the other side may know it already: the same call for both */
        return p->id_len[side ^ 1] == 0 || (p->id_len[side ^ 1] == n && memcmp(p->id[side ^ 1], tok, n) == 0);
    }
    return p->id_len[side] == n && memcmp(p->id[side], tok, n) == 0;
}

/** Half of the teardown happened (`bit`: see `down`); with both, the cycle is complete and the next one starts. */
static void call_down(call_pair_t *p, int bit)
{
    p->down |= bit;
    if (p->down != 3)
        return;
    g.calls_ended++;
    if (opt.workload == W_CALLS) {
        if (g.measuring)
            g.delivered++;
        call_start(&g.conns[2 * (p - g.pairs)], now_ns());
    } else {
        p->phase = CP_IDLE;
        g.calls_busy--;
    }
}

/** A `..._response`: the reply c awaited first, ok:true, with the state the contract gives. */
static void call_reply(conn_t *c, const char *tok, size_t tlen, const char *s, size_t len)
{
    static const char *const names[] = {"", "call_response", "call_accept_response", "call_signal_response", "call_hangup_response"};
    static const char *const states[] = {NULL, "\"ringing\"", "\"active\"", NULL, "\"ended\""};
    call_pair_t *p = pair_of(c);
    int side = c->idx & 1, r;

    if (p->due_len[side] == 0) {
        report_error("conn %d: a reply nothing awaited: %.*s", c->idx, shown(len), s);
        call_fail(p);
        return;
    }
    r = p->due[side][p->due_head[side]];
    p->due_head[side] = (p->due_head[side] + 1) % CALL_REPLIES_MAX;
    p->due_len[side]--;
    if (!tok_is(tok, tlen, names[r]) || !value_is(json_value(s, len, "ok"), s, len, "true") ||
        (states[r] != NULL && !value_is(json_value(s, len, "state"), s, len, states[r])) || !call_id_matches(c, s, len, r == CR_CALL)) {
        report_error("conn %d: expected %s (ok, %s), got: %.*s", c->idx, names[r], states[r] != NULL ? states[r] : "-", shown(len), s);
        call_fail(p);
    } else if (r == CR_HANGUP) {
        call_down(p, 1);
    }
}

/** One complete text message to a level-2 device of the bench. */
static void calls_on_text(conn_t *c, const char *s, size_t len)
{
    call_pair_t *p = pair_of(c);
    int side = c->idx & 1;
    const char *tok;
    size_t n = str_token(json_value(s, len, "type"), s, len, &tok);

    if (tok_is(tok, n, "create_connect_response")) {
        if (c->ready || !value_is(json_value(s, len, "ok"), s, len, "true") || !value_is(json_value(s, len, "level"), s, len, "2")) {
            report_error("conn %d: not registered as a level-2 device: %.*s", c->idx, shown(len), s);
            return;
        }
        on_ready(c);
        return;
    }
    if (p->phase == CP_FAILED || g.calls_closing)
        return; /* reported already, or the run is over: what still comes for it is no news */
    if (n > 9 && memcmp(tok + n - 9, "_response", 9) == 0) {
        call_reply(c, tok, n, s, len);
        return;
    }
    if (!value_is(json_value(s, len, "ok"), s, len, "true"))
        goto Unexpected;
    if (tok_is(tok, n, "incoming_call")) {
        if (side != 1 || p->phase != CP_SETUP || p->id_len[1] != 0 || !call_id_matches(c, s, len, 1))
            goto Unexpected;
        call_send(c, CR_ACCEPT);
    } else if (tok_is(tok, n, "call_accepted")) {
        if (p->phase != CP_SETUP || p->accepted[side] || !call_id_matches(c, s, len, 0))
            goto Unexpected;
        p->accepted[side] = 1;
        if (side == 0 && g.measuring) {
            uint64_t now = now_ns();
            hist_add(&g.hist, now - p->t_call);
        }
        if (p->accepted[0] && p->accepted[1]) { /* both know: the caller sends the first signal */
            p->phase = CP_SIGNALS;
            call_send(&g.conns[c->idx & ~1], CR_SIGNAL);
        }
    } else if (tok_is(tok, n, "call_signal")) {
        const char *seq = json_value(s, len, "seq");
        if (p->phase != CP_SIGNALS || (p->signals & 1) != (side ^ 1) || !call_id_matches(c, s, len, 0) || seq == NULL ||
            strtoull(seq, NULL, 10) != p->seq[side] || !value_is(json_value(s, len, "kind"), s, len, "\"candidate\"") ||
            memmem(s, len, call_signal_data, sizeof(call_signal_data) - 1) == NULL)
            goto Unexpected;
        p->seq[side]++;
        p->signals++;
        if (opt.workload == W_CALLMEM && p->signals == 2) { /* one each way: the call is up and held */
            p->phase = CP_HELD;
            g.calls_busy--;
            g.calls_held++;
        } else if (opt.workload == W_CALLS && p->signals == CALL_SIGNALS) { /* the caller had the last: it hangs up */
            p->phase = CP_ENDING;
            call_send(c, CR_HANGUP);
        } else {
            call_send(c, CR_SIGNAL); /* the answer goes back the other way */
        }
    } else if (tok_is(tok, n, "call_ended")) {
        if (side != 1 || p->phase != CP_ENDING || !call_id_matches(c, s, len, 0) ||
            !value_is(json_value(s, len, "reason"), s, len, "\"hangup\""))
            goto Unexpected;
        call_down(p, 2);
    } else {
        goto Unexpected;
    }
    return;
Unexpected:
    report_error("conn %d (%s, pair step %d, signal %d): unexpected: %.*s", c->idx, side ? "callee" : "caller", p->phase, p->signals,
                 shown(len), s);
    call_fail(p);
}

/** A pair whose step has not ended within CALL_STEP_TIMEOUT_NS is an error (a message lost or never sent). */
static void calls_check_stalls(uint64_t now)
{
    int i;
    for (i = 0; i != opt.pairs; ++i) {
        call_pair_t *p = &g.pairs[i];
        if ((p->phase == CP_SETUP || p->phase == CP_SIGNALS || p->phase == CP_ENDING) && now - p->step_start > CALL_STEP_TIMEOUT_NS) {
            report_error("pair %d: stuck for %llu s (step %d, signal %d, replies awaited %d/%d)", i, CALL_STEP_TIMEOUT_NS / NS, p->phase,
                         p->signals, p->due_len[0], p->due_len[1]);
            call_fail(p);
        }
    }
}

/** One complete text message from the server. */
static void on_text(conn_t *c, const char *s, size_t len)
{
    const char *type = json_value(s, len, "type");

    if (IS_CALLS(opt.workload)) {
        calls_on_text(c, s, len);
        return;
    }
    if (value_is(type, s, len, "\"called\"")) {
        const char *f1 = json_value(s, len, "field1");
        if (opt.workload != W_ROUTED || !value_is(f1, s, len, "\"t=")) {
            report_error("conn %d: unexpected called: %.*s", c->idx, (int)(len < 200 ? len : 200), s);
            return;
        }
        on_delivered(c, strtoull(f1 + 3, NULL, 10));
    } else if (value_is(type, s, len, "\"create_connect_response\"") && value_is(json_value(s, len, "ok"), s, len, "true")) {
        if (c->ready)
            return;
        on_ready(c);
        if (opt.workload == W_CHURN) { /* registered: the cycle ends with the close handshake */
            unsigned char code[2] = {1000 >> 8, 1000 & 0xff};
            ws_queue_frame(c, OP_CLOSE, code, 2);
            c->state = S_CLOSING;
        }
    } else {
        report_error("conn %d: server says: %.*s", c->idx, (int)(len < 200 ? len : 200), s);
    }
}

/** The end of a churn cycle (or a failure): counts it and starts the next one in the same slot. */
static void churn_next(conn_t *c, int ok)
{
    conn_close(c);
    if (ok && g.measuring)
        g.delivered++;
    conn_open(c);
}

/** Parses every complete frame in c->in. Returns -1 if the connection is gone. */
static int ws_read_frames(conn_t *c)
{
    for (;;) {
        unsigned char *p = (unsigned char *)c->in.base + c->in.off;
        size_t avail = c->in.len - c->in.off, hdr = 2, i;
        uint64_t len;
        int fin, op;

        if (avail < 2)
            return 0;
        fin = p[0] & 0x80;
        op = p[0] & 0x0f;
        len = p[1] & 0x7f;
        if (len == 126) {
            if (avail < 4)
                return 0;
            len = (uint64_t)p[2] << 8 | p[3];
            hdr = 4;
        } else if (len == 127) {
            if (avail < 10)
                return 0;
            for (len = 0, i = 0; i < 8; ++i)
                len = len << 8 | p[2 + i];
            hdr = 10;
        }
        if (p[1] & 0x80) /* servers must not mask; unmask anyway */
            hdr += 4;
        if (len > MAX_FRAME) {
            report_error("conn %d: server frame of %" PRIu64 " bytes", c->idx, len);
            goto Fail;
        }
        if (avail < hdr + len)
            return 0;
        if (p[1] & 0x80)
            for (i = 0; i < len; ++i)
                p[hdr + i] ^= p[hdr - 4 + (i & 3)];
        p += hdr;
        buf_consume(&c->in, hdr + (size_t)len); /* the bytes stay in place until the next read */

        switch (op) {
        case OP_PING:
            ws_queue_frame(c, OP_PONG, p, (size_t)len);
            break;
        case OP_PONG:
            break;
        case OP_CLOSE:
            if (c->state == S_CLOSING) /* our close answered; the server closes TCP first (RFC 6455 7.1.1): wait */
                break;
            report_error("conn %d: server closed the WebSocket (code %d)", c->idx, len >= 2 ? p[0] << 8 | p[1] : 1005);
            goto Fail;
        case OP_TEXT:
        case OP_BINARY:
        case OP_CONT:
            if (fin && op != OP_CONT && c->msg.len == 0) {
                on_text(c, (const char *)p, (size_t)len);
            } else {
                memcpy(buf_reserve(&c->msg, (size_t)len), p, (size_t)len);
                c->msg.len += (size_t)len;
                if (fin) {
                    on_text(c, c->msg.base, c->msg.len);
                    c->msg.off = c->msg.len = 0;
                }
            }
            break;
        default:
            report_error("conn %d: unknown opcode %d", c->idx, op);
            goto Fail;
        }
        if (c->fd < 0)
            return -1;
    }
Fail:
    if (opt.workload == W_CHURN)
        churn_next(c, 0);
    else
        conn_close(c);
    return -1;
}

/** Echo: every echo_size bytes are one message back. */
static void echo_read(conn_t *c)
{
    while (c->in.len - c->in.off >= g.echo_size) {
        uint64_t t;
        memcpy(&t, c->in.base + c->in.off, sizeof(t));
        buf_consume(&c->in, g.echo_size);
        on_delivered(c, t);
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * The event loop
 * -------------------------------------------------------------------------------------------------------------------*/

/** A connection that failed: churn starts the slot's next cycle, the other workloads lose it. */
static void conn_fail(conn_t *c)
{
    if (opt.workload == W_CHURN)
        churn_next(c, 0);
    else
        conn_close(c);
}

/** TCP (and TLS, with --tls) is up: echo is ready, WebSocket sends its upgrade. */
static void on_transport_up(conn_t *c)
{
    if (opt.workload == W_ECHO) {
        c->state = S_OPEN;
        on_ready(c);
    } else {
        c->state = S_HANDSHAKE;
        ws_send_upgrade(c);
    }
}

/** Drives the TLS handshake one step; on_transport_up() once it is complete. */
static void tls_handshake(conn_t *c)
{
    int r = ssl_fn.SSL_do_handshake(c->ssl), e;
    uint32_t events = EPOLLIN;

    if (r == 1) {
        g.tls_handshakes++;
        if (ssl_fn.SSL_session_reused(c->ssl))
            g.tls_resumed++;
        if (g.tls_version[0] == '\0') {
            snprintf(g.tls_version, sizeof(g.tls_version), "%s", ssl_fn.SSL_get_version(c->ssl));
            snprintf(g.tls_cipher, sizeof(g.tls_cipher), "%s", ssl_fn.SSL_CIPHER_get_name(ssl_fn.SSL_get_current_cipher(c->ssl)));
        }
    } else if ((e = ssl_fn.SSL_get_error(c->ssl, r)) == SSL_ERROR_WANT_WRITE) {
        events |= EPOLLOUT;
    } else if (e != SSL_ERROR_WANT_READ) {
        report_error("conn %d: TLS handshake: %s", c->idx,
                     e == SSL_ERROR_SYSCALL && errno != 0 ? strerror(errno) : tls_error_text("connection closed"));
        conn_fail(c);
        return;
    }
    if (c->want_out != ((events & EPOLLOUT) != 0)) {
        c->want_out = (events & EPOLLOUT) != 0;
        conn_set_events(c, events);
    }
    if (r == 1)
        on_transport_up(c);
}

static void on_connected(conn_t *c)
{
    int err = 0;
    socklen_t elen = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) {
        report_error("conn %d: connect: %s", c->idx, strerror(err));
        conn_fail(c);
        return;
    }
    conn_set_events(c, EPOLLIN);
    if (!opt.tls) {
        on_transport_up(c);
        return;
    }
    if ((c->ssl = ssl_fn.SSL_new(g.tls_ctx)) == NULL || !ssl_fn.SSL_set_fd(c->ssl, c->fd))
        die("SSL_new: %s", tls_error_text("failed"));
    ssl_fn.SSL_set_ex_data(c->ssl, 0, c);
    ssl_fn.SSL_set_connect_state(c->ssl);
    if (opt.tls_resume && c->sess != NULL) { /* a copy: OpenSSL marks a TLS 1.3 session it resumed as used up */
        SSL_SESSION *copy = ssl_fn.SSL_SESSION_dup(c->sess);
        if (copy == NULL || !ssl_fn.SSL_set_session(c->ssl, copy))
            die("SSL_set_session: %s", tls_error_text("failed"));
        ssl_fn.SSL_SESSION_free(copy); /* the SSL holds its own reference */
    }
    c->state = S_TLS;
    tls_handshake(c);
}

static char rbuf[65536]; /* read here, kept per connection only as long as needed: idle buffers stay small */

/** Appends n bytes of rbuf to c's input. */
static void conn_take(conn_t *c, size_t n)
{
    memcpy(buf_reserve(&c->in, n), rbuf, n);
    c->in.len += n;
}

/** --tls: everything OpenSSL can give now into c->in (one record per SSL_read; read-ahead may hold more).
 * Returns the bytes added; *eof is 1 when the server closed (close_notify or EOF), -1 on an error (*why says which). */
static size_t tls_read_all(conn_t *c, int *eof, const char **why)
{
    size_t got = 0;
    for (;;) {
        int r = ssl_fn.SSL_read(c->ssl, rbuf, sizeof(rbuf)), e;
        if (r > 0) {
            conn_take(c, (size_t)r);
            got += (size_t)r;
            if (!ssl_fn.SSL_has_pending(c->ssl)) /* the next record, if any, is in the kernel: epoll says so */
                return got;
            continue;
        }
        e = ssl_fn.SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return got;
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
            ERR_clear_error();
            *eof = 1;
        } else {
            *why = e == SSL_ERROR_SYSCALL ? strerror(errno) : tls_error_text("TLS error");
            *eof = -1;
        }
        return got;
    }
}

static void on_readable(conn_t *c)
{
    const char *why = NULL;
    unsigned gen = c->gen;
    size_t got;
    int eof = 0;

    if (c->ssl != NULL) {
        got = tls_read_all(c, &eof, &why);
    } else {
        ssize_t n = read(c->fd, rbuf, sizeof(rbuf));
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            eof = n == 0 ? 1 : -1;
            why = n == 0 ? NULL : strerror(errno);
            got = 0;
        } else {
            conn_take(c, (size_t)n);
            got = (size_t)n;
        }
    }
    if (got != 0) {
        if (opt.workload == W_ECHO) {
            echo_read(c);
        } else {
            if (c->state == S_HANDSHAKE) {
                int r = ws_check_upgrade(c);
                if (r < 0) {
                    conn_fail(c);
                    return;
                }
                if (r == 0) {
                    c->state = S_OPEN;
                    send_create_connect(c);
                }
            }
            if (c->state != S_HANDSHAKE)
                ws_read_frames(c);
        }
        if (c->fd < 0 || c->gen != gen) /* closed, or a new churn cycle in this slot */
            return;
    }
    if (eof == 0)
        return;
    if (opt.workload == W_CHURN && c->state == S_CLOSING) { /* the server closed after the close handshake */
        churn_next(c, 1);
        return;
    }
    if (IS_CALLS(opt.workload) && c->state == S_CLOSING) { /* calls_close_all: the handshake is over */
        conn_close(c);
        return;
    }
    report_error("conn %d: server %s", c->idx, why == NULL ? "closed the connection" : why);
    conn_fail(c);
}

/** Paced mode: sends every message due by now, round robin over the connections. */
static void pace(uint64_t now)
{
    while (g.rate_next <= now) {
        conn_t *c = &g.conns[g.rate_rr];
        conn_t *to = opt.workload == W_ECHO ? c : partner_of(c);
        g.rate_rr = (g.rate_rr + 1) % g.nconns;
        if (c->fd >= 0 && c->sent - to->received < RATE_MAX_OUTSTANDING)
            send_one(c, g.rate_next); /* stamped with the scheduled time: a late send counts against latency */
        else
            g.skipped++;
        g.rate_next += g.rate_interval;
    }
}

/** Runs the loop until `deadline` or until `until()` says so; busy-polls in paced mode. */
static void run_loop(uint64_t deadline, int (*until)(void))
{
    struct epoll_event evs[512];
    uint64_t last_scan = 0;

    for (;;) {
        uint64_t now = now_ns();
        int i, n, timeout;

        if (now >= deadline || (until != NULL && until()))
            return;
        /* keep MAX_PENDING_CONNECTS connections on their way until every slot is open (idle, routed, echo) */
        while (opt.workload != W_CHURN && g.opened < g.nconns && g.pending < MAX_PENDING_CONNECTS)
            conn_open(&g.conns[g.opened]);
        if (opt.workload == W_CHURN && now - last_scan > NS / 10) { /* a cycle that hangs is an error */
            last_scan = now;
            for (i = 0; i < g.nconns; ++i)
                if (now - g.conns[i].cycle_start > CHURN_CYCLE_TIMEOUT_NS) {
                    report_error("conn %d: churn cycle took longer than %llu s (state %d)", i, CHURN_CYCLE_TIMEOUT_NS / NS,
                                 g.conns[i].state);
                    churn_next(&g.conns[i], 0);
                }
        }
        if (IS_CALLS(opt.workload) && g.started && now - last_scan > NS / 10) {
            last_scan = now;
            calls_check_stalls(now);
        }
        timeout = opt.rate > 0 && g.started ? 0 : (int)((deadline - now) / 1000000 + 1);
        if (timeout > 100)
            timeout = 100;
        if ((n = epoll_wait(g.ep, evs, 512, timeout)) < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (i = 0; i < n; ++i) {
            conn_t *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (c->state == S_CONNECTING) {
                on_connected(c);
                continue;
            }
            if (c->state == S_TLS) {
                tls_handshake(c);
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && conn_flush(c) != 0)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c);
        }
        if (opt.rate > 0 && g.started)
            pace(now_ns());
        flush_dirty();
        if (g.errors > 1000)
            die("too many errors (%" PRIu64 "), giving up", g.errors);
    }
}

static int all_ready(void)
{
    return g.ready == g.nconns;
}

/** Every connection was started and is now either ready or lost. */
static int setup_done(void)
{
    return g.opened == g.nconns && g.pending == 0;
}

static int count_reached(void)
{
    return opt.count != 0 && g.delivered >= opt.count;
}

static int any_lost(void)
{
    return g.opened == g.nconns && g.ready + g.pending < g.nconns;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Workloads
 * -------------------------------------------------------------------------------------------------------------------*/

static long long redis_info_once(const char *section, const char *key);
static int stop_requested(void);

static const char *label(void)
{
    return opt.label != NULL ? opt.label : "server";
}

/** routed, echo, churn: warmup, then the measured window; prints the figures. */
static int run_traffic(void)
{
    uint64_t t0, t1, deadline;
    double cpu0, cpu1, srv0, srv1, host0, host1, secs, client_pct, server_pct = -1, per = -1, other_pct = -1;
    int limited, i;

    if (opt.workload == W_CHURN) {
        for (i = 0; i < g.nconns; ++i)
            conn_open(&g.conns[i]);
    } else {
        run_loop(now_ns() + SETUP_TIMEOUT_NS, setup_done);
        if (!all_ready())
            die("only %d of %d connections %s within %llu s", g.ready, g.nconns,
                opt.workload == W_ECHO ? "connected" : "registered", SETUP_TIMEOUT_NS / NS);
        g.started = 1;
        if (opt.rate > 0) {
            g.rate_interval = (uint64_t)(1e9 / opt.rate);
            g.rate_next = now_ns();
        } else {
            for (i = 0; i < g.nconns; ++i)
                for (int k = 0; k < opt.inflight; ++k)
                    send_one(&g.conns[i], now_ns());
            flush_dirty();
        }
    }
    run_loop(now_ns() + (uint64_t)(opt.warmup * 1e9), any_lost);

    g.measuring = 1;
    t0 = now_ns();
    cpu0 = self_cpu_us();
    srv0 = server_cpu_us();
    watch_sample(0);
    host0 = host_busy_us();
    deadline = t0 + (uint64_t)(opt.duration * 1e9);
    run_loop(deadline, opt.count != 0 ? count_reached : any_lost);
    t1 = now_ns();
    cpu1 = self_cpu_us();
    srv1 = server_cpu_us();
    watch_sample(1);
    host1 = host_busy_us();
    g.measuring = 0;

    secs = (double)(t1 - t0) / 1e9;
    client_pct = (cpu1 - cpu0) / 1e4 / secs;
    if (srv0 >= 0) {
        server_pct = (srv1 - srv0) / 1e4 / secs;
        per = g.delivered != 0 ? (srv1 - srv0) / (double)g.delivered : -1;
        /* what the rest of the host did meanwhile (other processes, kernel threads): a noise gauge */
        if (host0 >= 0) { /* tick-based counters: a small negative remainder is rounding */
            other_pct = (host1 - host0) / 1e4 / secs - server_pct - client_pct;
            for (i = 0; i != opt.nwatch; ++i) /* the other node, redis-server: measured, not noise */
                other_pct -= (opt.watch[i].cpu1 - opt.watch[i].cpu0) / 1e4 / secs;
            other_pct = other_pct < 0 ? 0 : other_pct;
        }
    }
    /* paced runs busy-poll, so their CPU says nothing: they are judged by whether the rate was reached */
    limited = opt.rate > 0 ? 0 : client_pct > 90;
    if (any_lost())
        report_error("%d of %d connections lost during the run", g.nconns - g.ready - g.pending, g.nconns);

    if (opt.workload == W_CHURN) {
        printf("loadgen churn -> %s:%d%s [%s]: %d concurrent loops, window %.2f s (warmup %.2f s)\n", opt.host, opt.port, opt.path,
               label(), g.nconns, secs, opt.warmup);
        printf("  cycles        %" PRIu64 "  (%.0f cycles/s)\n", g.delivered, (double)g.delivered / secs);
        printf("  server CPU    %.1f %%  %.2f us/cycle\n", server_pct, per);
        watch_print(1, secs, g.delivered, "cycle");
        printf("  client CPU    %.1f %%%s\n", client_pct, limited ? "  CLIENT-LIMITED" : "");
        tls_print(1);
        printf("  other CPU     %.1f %% (the rest of the host)\n  errors        %" PRIu64 "\n", other_pct, g.errors);
        printf("RESULT workload=churn server=%s conns=%d secs=%.3f cycles=%" PRIu64 " cycles_per_s=%.1f "
               "server_us_per_cycle=%.3f server_cpu_pct=%.1f client_cpu_pct=%.1f client_limited=%d other_cpu_pct=%.1f "
               "errors=%" PRIu64,
               label(), g.nconns, secs, g.delivered, (double)g.delivered / secs, per, server_pct, client_pct, limited, other_pct,
               g.errors);
        watch_print(0, secs, g.delivered, "cycle");
        tls_print(0);
        putchar('\n');
    } else {
        double rate_got = (double)g.delivered / secs;
        int rate_ok = opt.rate == 0 || (rate_got >= 0.95 * opt.rate && g.skipped == 0);
        printf("loadgen %s -> %s:%d%s [%s]: %d %s, %s, %d-byte %s, window %.2f s (warmup %.2f s)\n", workload_names[opt.workload],
               opt.host, opt.port, opt.workload == W_ECHO ? "" : opt.path, label(), opt.workload == W_ECHO ? g.nconns : opt.pairs,
               opt.workload == W_ECHO ? "connections" : "pairs", opt.rate > 0 ? "paced" : "ping-pong",
               opt.workload == W_ECHO ? (int)g.echo_size : opt.payload, opt.workload == W_ECHO ? "messages" : "field1", secs,
               opt.warmup);
        if (opt.url2 != NULL)
            printf("  callees on    %s:%d%s (callers above)\n", opt.host2, opt.port2, opt.path2);
        if (opt.rate > 0)
            printf("  paced         %.0f msgs/s asked, %.0f delivered, %" PRIu64 " skipped%s\n", opt.rate, rate_got, g.skipped,
                   rate_ok ? "" : "  RATE NOT REACHED");
        else
            printf("  in flight     %d per connection\n", opt.inflight);
        printf("  delivered     %" PRIu64 " msgs  (%.0f msgs/s)\n", g.delivered, rate_got);
        printf("  server CPU    %.1f %%  %.3f us/msg\n", server_pct, per);
        watch_print(1, secs, g.delivered, "msg");
        printf("  latency us    p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", hist_quantile_us(&g.hist, 0.5),
               hist_quantile_us(&g.hist, 0.99), hist_quantile_us(&g.hist, 0.999), (double)g.hist.max / 1e3);
        printf("  client CPU    %.1f %%%s\n", client_pct, opt.rate > 0 ? " (busy-polling)" : limited ? "  CLIENT-LIMITED" : "");
        tls_print(1);
        printf("  other CPU     %.1f %% (the rest of the host)\n  errors        %" PRIu64 "\n", other_pct, g.errors);
        printf("RESULT workload=%s server=%s pairs=%d inflight=%d rate=%.0f secs=%.3f delivered=%" PRIu64
               " msgs_per_s=%.1f server_us_per_msg=%.3f server_cpu_pct=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
               "max_us=%.1f client_cpu_pct=%.1f client_limited=%d other_cpu_pct=%.1f rate_ok=%d errors=%" PRIu64,
               workload_names[opt.workload], label(), opt.pairs, opt.inflight, opt.rate, secs, g.delivered, rate_got, per,
               server_pct, hist_quantile_us(&g.hist, 0.5), hist_quantile_us(&g.hist, 0.99), hist_quantile_us(&g.hist, 0.999),
               (double)g.hist.max / 1e3, client_pct, limited, other_pct, rate_ok, g.errors);
        watch_print(0, secs, g.delivered, "msg");
        tls_print(0);
        putchar('\n');
    }
    fflush(stdout);
    return g.errors == 0 && g.delivered > 0 ? 0 : 1;
}

/** idle: N registered connections, memory before and after. */
static int run_idle(void)
{
    long rss0 = server_rss_kb(), tcp0 = tcp_mem_kb(), slab0 = slab_kb(), rss1, tcp1, slab1;
    uint64_t timeout = SETUP_TIMEOUT_NS + (uint64_t)g.nconns * 1000000; /* + 1 ms per connection */
    double rss_per, tcp_per, slab_per, secs;
    long long redis0 = opt.redis_port ? redis_info_once("memory", "used_memory") : -1, redis1 = -1, chans = -1;
    uint64_t t0 = now_ns();
    int status, ready;

    run_loop(t0 + timeout, setup_done);
    secs = (double)(now_ns() - t0) / 1e9;
    if (!all_ready())
        report_error("only %d of %d connections registered within %.0f s", g.ready, g.nconns, (double)timeout / 1e9);
    run_loop(now_ns() + (uint64_t)(opt.warmup * 1e9), NULL); /* let the server settle (answering pings meanwhile) */
    rss1 = server_rss_kb();
    tcp1 = tcp_mem_kb();
    slab1 = slab_kb();
    if (opt.redis_port) {
        redis1 = redis_info_once("memory", "used_memory");
        chans = redis_info_once("stats", "pubsub_channels");
    }
    rss_per = g.ready != 0 && rss0 >= 0 ? (double)(rss1 - rss0) / g.ready : -1;
    tcp_per = g.ready != 0 ? (double)(tcp1 - tcp0) / g.ready : -1;
    slab_per = g.ready != 0 ? (double)(slab1 - slab0) / g.ready : -1;

    printf("loadgen idle -> %s:%d%s [%s]: %d registered connections (%d asked) in %.2f s\n", opt.host, opt.port, opt.path, label(),
           g.ready, g.nconns, secs);
    printf("  server RSS    %ld kB -> %ld kB: %.2f kB per connection\n", rss0, rss1, rss_per);
    printf("  kernel TCP    %ld kB -> %ld kB: %.2f kB per connection (sockstat mem: buffered data, both ends, whole host)\n", tcp0,
           tcp1, tcp_per);
    printf("  kernel slab   %ld kB -> %ld kB: %.2f kB per connection (socket structures, both ends, whole host)\n", slab0, slab1,
           slab_per);
    if (opt.redis_port)
        printf("  redis memory  %lld B -> %lld B: %.1f B per user (used_memory); pubsub_channels %lld\n", redis0, redis1,
               g.ready != 0 ? (double)(redis1 - redis0) / g.ready : -1, chans);
    tls_print(1);
    printf("  errors        %" PRIu64 "\n", g.errors);
    printf("RESULT workload=idle server=%s conns=%d connect_secs=%.3f rss_before_kb=%ld rss_after_kb=%ld "
           "rss_kb_per_conn=%.3f kernel_tcp_kb_per_conn=%.3f kernel_slab_kb_per_conn=%.3f errors=%" PRIu64,
           label(), g.ready, secs, rss0, rss1, rss_per, tcp_per, slab_per, g.errors);
    if (opt.redis_port)
        printf(" redis_used_before=%lld redis_used_after=%lld redis_bytes_per_user=%.1f redis_pubsub_channels=%lld", redis0,
               redis1, g.ready != 0 ? (double)(redis1 - redis0) / g.ready : -1, chans);
    tls_print(0);
    if (opt.after_close > 0) { /* a storm that ends: does the server give the memory back? */
        long rss2;
        int i;
        for (i = 0; i != g.nconns; ++i)
            conn_close(&g.conns[i]);
        usleep((useconds_t)(opt.after_close * 1e6));
        rss2 = server_rss_kb();
        printf(" rss_after_close_kb=%ld rss_after_close_vs_before=%.3f", rss2, rss0 > 0 ? (double)rss2 / rss0 : -1);
        fprintf(stderr, "  server RSS    %.1f s after they all closed: %ld kB (%.2fx the RSS before them)\n", opt.after_close, rss2,
                rss0 > 0 ? (double)rss2 / rss0 : -1);
    }
    putchar('\n');
    fflush(stdout);
    status = g.errors == 0 && g.ready == g.nconns ? 0 : 1;
    if (opt.hold > 0) { /* someone measures while these users stay registered; SIGTERM or SIGINT ends it */
        ready = g.ready;
        run_loop(now_ns() + (uint64_t)(opt.hold * 1e9), stop_requested);
        if (g.ready < ready) {
            fprintf(stderr, "loadgen: error: %d of %d connections lost while holding\n", ready - g.ready, ready);
            status = 1;
        }
    }
    return status;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * calls, callmem (level 2)
 * -------------------------------------------------------------------------------------------------------------------*/

static int calls_window_over(void)
{
    return count_reached() || any_lost();
}

static int calls_settled(void)
{
    return g.calls_busy == 0 || any_lost();
}

static int none_open(void)
{
    return g.ready == 0;
}

/** The end: every connection closed cleanly (1000), so the calls left end at once (a clean close is a hangup) instead of
 * waiting 30 s for their devices to come back (the same deviceIds, on the same server, would be re-attached to them). */
static void calls_close_all(void)
{
    unsigned char code[2] = {1000 >> 8, 1000 & 0xff};
    int i;
    g.calls_closing = 1;
    for (i = 0; i != g.nconns; ++i)
        if (g.conns[i].fd >= 0 && g.conns[i].state == S_OPEN) {
            ws_queue_frame(&g.conns[i], OP_CLOSE, code, 2);
            g.conns[i].state = S_CLOSING;
        }
    flush_dirty();
    run_loop(now_ns() + 2 * NS, none_open);
}

/** calls: cycles of call, accept, 10 signals, hangup per pair; see the top of this file. */
static int run_calls(void)
{
    uint64_t t0, t1, deadline;
    double cpu0, cpu1, srv0, srv1, host0, host1, secs, client_pct, server_pct = -1, per = -1, other_pct = -1;
    long rss0, rss1;
    int limited, i;

    run_loop(now_ns() + SETUP_TIMEOUT_NS, setup_done);
    if (!all_ready())
        die("only %d of %d connections registered as level-2 devices within %llu s (%" PRIu64 " errors)", g.ready, g.nconns,
            SETUP_TIMEOUT_NS / NS, g.errors);
    g.started = 1;
    for (i = 0; i < opt.pairs; ++i)
        call_start(&g.conns[2 * i], now_ns());
    flush_dirty();
    run_loop(now_ns() + (uint64_t)(opt.warmup * 1e9), any_lost);

    g.measuring = 1;
    rss0 = server_rss_kb();
    t0 = now_ns();
    cpu0 = self_cpu_us();
    srv0 = server_cpu_us();
    watch_sample(0);
    host0 = host_busy_us();
    deadline = t0 + (uint64_t)(opt.duration * 1e9);
    run_loop(deadline, calls_window_over);
    t1 = now_ns();
    cpu1 = self_cpu_us();
    srv1 = server_cpu_us();
    watch_sample(1);
    host1 = host_busy_us();
    g.measuring = 0;
    rss1 = server_rss_kb();

    secs = (double)(t1 - t0) / 1e9;
    client_pct = (cpu1 - cpu0) / 1e4 / secs;
    if (srv0 >= 0) {
        server_pct = (srv1 - srv0) / 1e4 / secs;
        per = g.delivered != 0 ? (srv1 - srv0) / (double)g.delivered : -1;
        if (host0 >= 0) {
            other_pct = (host1 - host0) / 1e4 / secs - server_pct - client_pct;
            for (i = 0; i != opt.nwatch; ++i)
                other_pct -= (opt.watch[i].cpu1 - opt.watch[i].cpu0) / 1e4 / secs;
            other_pct = other_pct < 0 ? 0 : other_pct;
        }
    }
    limited = client_pct > 90;
    if (any_lost())
        report_error("%d of %d connections lost during the run", g.nconns - g.ready - g.pending, g.nconns);

    printf("loadgen calls -> %s:%d%s [%s]: %d pairs of level-2 devices, window %.2f s (warmup %.2f s)\n", opt.host, opt.port,
           opt.path, label(), opt.pairs, secs, opt.warmup);
    printf("  per cycle     call, incoming_call, call_accept, call_accepted x2, %d call_signal (%zu-byte data), call_hangup,\n"
           "                call_ended: 13 messages to the server, 27 from it (every request is answered)\n",
           CALL_SIGNALS, sizeof(call_signal_data) - 1);
    printf("  cycles        %" PRIu64 "  (%.0f cycles/s)\n", g.delivered, (double)g.delivered / secs);
    printf("  server CPU    %.1f %%  %.2f us/cycle\n", server_pct, per);
    watch_print(1, secs, g.delivered, "cycle");
    printf("  setup us      p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f (call sent -> call_accepted at the caller)\n",
           hist_quantile_us(&g.hist, 0.5), hist_quantile_us(&g.hist, 0.99), hist_quantile_us(&g.hist, 0.999), (double)g.hist.max / 1e3);
    printf("  server RSS    %ld kB -> %ld kB over the window (ended calls stay 30 s as tombstones)\n", rss0, rss1);
    printf("  client CPU    %.1f %%%s\n", client_pct, limited ? "  CLIENT-LIMITED" : "");
    tls_print(1);
    printf("  other CPU     %.1f %% (the rest of the host)\n  errors        %" PRIu64 "%s\n", other_pct, g.errors,
           g.errors != 0 ? "  THE RUN HAD ERRORS (above, on stderr)" : "");
    printf("RESULT workload=calls server=%s pairs=%d secs=%.3f cycles=%" PRIu64 " cycles_per_s=%.1f server_us_per_cycle=%.3f "
           "server_cpu_pct=%.1f setup_p50_us=%.1f setup_p99_us=%.1f setup_p999_us=%.1f setup_max_us=%.1f rss_window_start_kb=%ld "
           "rss_window_end_kb=%ld client_cpu_pct=%.1f client_limited=%d other_cpu_pct=%.1f errors=%" PRIu64,
           label(), opt.pairs, secs, g.delivered, (double)g.delivered / secs, per, server_pct, hist_quantile_us(&g.hist, 0.5),
           hist_quantile_us(&g.hist, 0.99), hist_quantile_us(&g.hist, 0.999), (double)g.hist.max / 1e3, rss0, rss1, client_pct,
           limited, other_pct, g.errors);
    watch_print(0, secs, g.delivered, "cycle");
    tls_print(0);
    putchar('\n');
    fflush(stdout);
    calls_close_all();
    return g.errors == 0 && g.delivered > 0 ? 0 : 1;
}

/** callmem: N pairs registered, then all in an active call, then all hung up; the server's RSS at each point. */
static int run_callmem(void)
{
    uint64_t timeout = SETUP_TIMEOUT_NS + (uint64_t)g.nconns * 1000000; /* + 1 ms per connection */
    uint64_t t0 = now_ns(), t1;
    long rss0 = server_rss_kb(), rss1, rss2 = -1, rss3 = -1;
    double reg_secs, call_secs = -1, per_call = -1;
    int i, held = 0, pairs_up = 0;

    run_loop(t0 + timeout, setup_done);
    reg_secs = (double)(now_ns() - t0) / 1e9;
    if (!all_ready())
        report_error("only %d of %d connections registered within %.0f s", g.ready, g.nconns, (double)timeout / 1e9);
    run_loop(now_ns() + (uint64_t)(opt.warmup * 1e9), NULL); /* let the server settle */
    rss1 = server_rss_kb();

    g.started = 1;
    t1 = now_ns();
    for (i = 0; i < opt.pairs; ++i)
        if (g.conns[2 * i].ready && g.conns[2 * i + 1].ready) {
            call_start(&g.conns[2 * i], t1);
            pairs_up++;
        }
    flush_dirty();
    run_loop(t1 + timeout, calls_settled);
    call_secs = (double)(now_ns() - t1) / 1e9;
    held = g.calls_held;
    if (held != opt.pairs)
        report_error("only %d of %d pairs got into an active call (%d still on their way)", held, opt.pairs, g.calls_busy);
    run_loop(now_ns() + (uint64_t)(opt.warmup * 1e9), NULL);
    rss2 = server_rss_kb();
    per_call = held != 0 && rss1 >= 0 ? (double)(rss2 - rss1) * 1024 / held : -1;

    /* then every caller hangs up: what the ended calls keep (their tombstones, 30 s) */
    t1 = now_ns();
    for (i = 0; i < opt.pairs; ++i) {
        call_pair_t *p = &g.pairs[i];
        if (p->phase == CP_HELD) {
            p->phase = CP_ENDING;
            p->step_start = t1;
            g.calls_held--;
            g.calls_busy++;
            call_send(&g.conns[2 * i], CR_HANGUP);
        }
    }
    flush_dirty();
    run_loop(t1 + timeout, calls_settled);
    if (g.calls_ended != (uint64_t)held)
        report_error("only %" PRIu64 " of %d calls ended after the hangup", g.calls_ended, held);
    run_loop(now_ns() + (uint64_t)(opt.warmup * 1e9), NULL);
    rss3 = server_rss_kb();
    if (any_lost())
        report_error("%d of %d connections lost during the run", g.nconns - g.ready - g.pending, g.nconns);

    printf("loadgen callmem -> %s:%d%s [%s]: %d pairs of level-2 devices (%d connections registered in %.2f s)\n", opt.host, opt.port,
           opt.path, label(), opt.pairs, g.ready, reg_secs);
    printf("  server RSS    %ld kB before, %ld kB registered (%.2f kB per connection)\n", rss0, rss1,
           g.ready != 0 ? (double)(rss1 - rss0) / g.ready : -1.0);
    printf("  live calls    %d of %d pairs active in %.2f s (call, accept, one signal each way): RSS %ld kB\n", held, pairs_up,
           call_secs, rss2);
    printf("  per live call %.0f bytes ((RSS active - RSS registered) / calls)\n", per_call);
    printf("  hung up       %" PRIu64 " calls ended: RSS %ld kB (%+.0f bytes per call vs registered; tombstones for 30 s)\n",
           g.calls_ended, rss3, held != 0 ? (double)(rss3 - rss1) * 1024 / held : -1.0);
    tls_print(1);
    printf("  errors        %" PRIu64 "%s\n", g.errors, g.errors != 0 ? "  THE RUN HAD ERRORS (above, on stderr)" : "");
    printf("RESULT workload=callmem server=%s pairs=%d conns=%d calls=%d rss_before_kb=%ld rss_registered_kb=%ld rss_active_kb=%ld "
           "rss_hungup_kb=%ld kb_per_conn_registered=%.3f bytes_per_call=%.0f bytes_per_call_hungup=%.0f setup_secs=%.3f "
           "errors=%" PRIu64,
           label(), opt.pairs, g.ready, held, rss0, rss1, rss2, rss3, g.ready != 0 ? (double)(rss1 - rss0) / g.ready : -1.0,
           per_call, held != 0 ? (double)(rss3 - rss1) * 1024 / held : -1.0, call_secs, g.errors);
    tls_print(0);
    putchar('\n');
    fflush(stdout);
    calls_close_all();
    return g.errors == 0 && held == opt.pairs ? 0 : 1;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * resub: a Redis through a restart (blocking sockets, one command at a time)
 * -------------------------------------------------------------------------------------------------------------------*/

/** run_idle --hold: until SIGTERM or SIGINT. */
static int stop_requested(void)
{
    return g.stop;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    g.stop = 1;
}

/** A blocking connection to the Redis on 127.0.0.1:--redis-port with a 2 s receive timeout, or -1. */
static int redis_connect(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.redis_port)};
    struct timeval tv = {2, 0};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/** Sends one inline command and reads its whole reply (a line, or a bulk string) into `r`, NUL-terminated.
 * Returns 0, or -1 when the connection failed or the reply is an error. */
static int redis_call(int fd, const char *cmd, buf_t *r)
{
    size_t n = strlen(cmd), need = 0;
    r->off = r->len = 0;
    if (write(fd, cmd, n) != (ssize_t)n)
        return -1;
    for (;;) {
        char *crlf;
        ssize_t got;
        buf_reserve(r, 4096);
        if ((got = read(fd, r->base + r->len, r->cap - r->len - 1)) <= 0)
            return -1;
        r->len += (size_t)got;
        r->base[r->len] = '\0';
        if (need == 0 && (crlf = strstr(r->base, "\r\n")) != NULL) {
            if (r->base[0] != '$')
                return r->base[0] == '-' ? -1 : 0;
            need = (size_t)(crlf - r->base) + 2 + strtoull(r->base + 1, NULL, 10) + 2;
        }
        if (need != 0 && r->len >= need)
            return 0;
    }
}

/** The number after "KEY:" in an INFO reply, or -1. */
static long long info_field(const char *text, const char *key)
{
    size_t klen = strlen(key);
    const char *p;
    for (p = text; (p = strstr(p, key)) != NULL; p += klen)
        if ((p == text || p[-1] == '\n') && p[klen] == ':')
            return strtoll(p + klen + 1, NULL, 10);
    return -1;
}

/** INFO SECTION's KEY, over a connection of its own; -1 on failure. */
static long long redis_info_once(const char *section, const char *key)
{
    char cmd[64];
    buf_t r = {0};
    long long v = -1;
    int fd = redis_connect();
    if (fd < 0) {
        report_error("cannot connect to redis on port %d", opt.redis_port);
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "INFO %s\r\n", section);
    if (redis_call(fd, cmd, &r) == 0)
        v = info_field(r.base, key);
    if (v < 0)
        report_error("redis on port %d: no %s in INFO %s", opt.redis_port, key, section);
    close(fd);
    free(r.base);
    return v;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / NS), (long)(t % NS)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/** resub: see the top of this file. */
static int run_resub(void)
{
    enum { BEFORE, DOWN, BACK, DONE } state = BEFORE;
    uint64_t deadline, t_down = 0, t_up = 0, t_first = 0, t_done = 0, t_end = 0, tick, pings = 0, max_ns = 0;
    long long target, count = -1, max_seen = 0;
    int fd1, fd2, i = 0;
    buf_t r = {0};
    hist_t *h = &g.hist;

    if ((fd1 = redis_connect()) < 0 || (fd2 = redis_connect()) < 0)
        die("cannot connect to redis on 127.0.0.1:%d", opt.redis_port);
    if (redis_call(fd2, "INFO stats\r\n", &r) != 0 || (target = info_field(r.base, "pubsub_channels")) < 0)
        die("redis on port %d: no pubsub_channels in INFO stats", opt.redis_port);
    printf("READY pubsub_channels=%lld\n", target);
    fflush(stdout);
    deadline = now_ns() + (uint64_t)(opt.duration * 1e9);
    for (tick = now_ns();; tick += 1000000) { /* one PING a millisecond, INFO stats every other one once back */
        uint64_t t0, t1;
        if (now_ns() >= deadline || (state == DONE && now_ns() >= t_end))
            break;
        sleep_until(tick);
        if (state == DOWN) {
            if ((fd1 = redis_connect()) < 0)
                continue;
            if ((fd2 = redis_connect()) < 0) {
                close(fd1);
                continue;
            }
            t_up = now_ns();
            state = BACK;
        }
        t0 = now_ns();
        if (redis_call(fd1, "PING\r\n", &r) != 0) {
            if (state != BEFORE)
                die("redis on port %d: connection lost again after the restart", opt.redis_port);
            t_down = now_ns();
            close(fd1);
            close(fd2);
            state = DOWN;
            continue;
        }
        t1 = now_ns();
        if (state == BEFORE)
            continue;
        pings++;
        hist_add(h, t1 - t0);
        if (t1 - t0 > max_ns)
            max_ns = t1 - t0;
        if (state != BACK || (i++ & 1) != 0)
            continue;
        t0 = now_ns();
        if (redis_call(fd2, "INFO stats\r\n", &r) != 0 || (count = info_field(r.base, "pubsub_channels")) < 0)
            die("redis on port %d: INFO stats failed after the restart", opt.redis_port);
        t1 = now_ns();
        if (t1 - t0 > max_ns)
            max_ns = t1 - t0;
        if (count > max_seen)
            max_seen = count;
        if (count > 0 && t_first == 0)
            t_first = t1;
        if (count >= target) {
            t_done = t1;
            t_end = t1 + NS / 5; /* a little longer: a stall right after the last SUBSCRIBE counts too */
            state = DONE;
        }
    }
    free(r.base);
    printf("loadgen resub -> redis 127.0.0.1:%d: %lld channels before the restart\n", opt.redis_port, target);
    if (state == BEFORE)
        printf("  redis was never shut down within %.0f s\n", opt.duration);
    else if (state == DOWN)
        printf("  redis did not come back within %.0f s\n", opt.duration);
    else {
        printf("  down          %.1f ms (connection lost -> accepting again)\n", (double)(t_up - t_down) / 1e6);
        printf("  first channel %.1f ms after redis was back\n", t_first ? (double)(t_first - t_up) / 1e6 : -1.0);
        printf("  all channels  %.1f ms after redis was back (%lld of %lld)%s\n",
               t_done ? (double)(t_done - t_up) / 1e6 : -1.0, state == DONE ? target : max_seen, target,
               state == DONE ? "" : "  NOT ALL RE-SUBSCRIBED");
        printf("  longest stall %.2f ms (%" PRIu64 " PINGs, p99 %.1f us)\n", (double)max_ns / 1e6, pings,
               hist_quantile_us(h, 0.99));
    }
    printf("RESULT workload=resub channels=%lld resubscribed=%lld down_ms=%.1f first_ms=%.1f all_ms=%.1f total_ms=%.1f "
           "resub_per_s=%.0f max_stall_ms=%.3f ping_p99_us=%.1f pings=%" PRIu64 " errors=%d\n",
           target, state == DONE ? target : max_seen, state >= BACK ? (double)(t_up - t_down) / 1e6 : -1,
           t_first ? (double)(t_first - t_up) / 1e6 : -1, t_done ? (double)(t_done - t_up) / 1e6 : -1,
           t_done ? (double)(t_done - t_down) / 1e6 : -1,
           t_done && t_done > t_first ? (double)target / ((double)(t_done - t_first) / 1e9) : -1, (double)max_ns / 1e6,
           hist_quantile_us(h, 0.99), pings, state == DONE ? 0 : 1);
    fflush(stdout);
    return state == DONE ? 0 : 1;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * main
 * -------------------------------------------------------------------------------------------------------------------*/

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --port PORT [options]\n"
               "  --workload W      routed (default), echo, idle, churn, calls, callmem (level 2)\n"
               "  --host ADDR       loopback IPv4 address of the server (default 127.0.0.1)\n"
               "  --path PATH       WebSocket path (default /WsService)\n"
               "  --label NAME      name of the server in the output (default \"server\")\n"
               "  --server-pid PID  server process, for its CPU (/proc/PID/stat) and RSS\n"
               "  --pairs P         routed/echo/calls/callmem: P pairs, 2P connections (default 50)\n"
               "  --inflight K      routed/echo: messages in flight per connection (default 1)\n"
               "  --rate R          routed/echo: pace R messages/s in total instead of ping-pong\n"
               "  --payload B       routed: field1 bytes (default 100, min 23); echo: message size follows it\n"
               "  --conns N         idle: connections (default 1000); churn: concurrent loops (default 16)\n"
               "  --warmup S        seconds before the window (default 1); idle, callmem: settle time before measuring\n"
               "  --duration S      measured seconds (default 5)\n"
               "  --count N         routed/echo/churn/calls: end the window after N messages or cycles\n"
               "  --url2 URL        routed: the callees (odd connections) connect to ws://HOST:PORT[/PATH] instead\n"
               "                    (wss:// with --tls)\n"
               "  --watch NAME:PID  also report this process's CPU over the window (up to 4; NAME: a-z 0-9 _); not\n"
               "                    counted in `other CPU`\n"
               "  --redis-port P    idle: Redis used_memory before and after (bytes per user); resub: the Redis watched\n"
               "  --hold S          idle: keep the connections up to S s after the RESULT line (until SIGTERM/SIGINT)\n"
               "  --after-close S   idle: then close them all and report the server's RSS S s later (vs before)\n"
               "  --tls             every connection over TLS (wss://; echo: TLS to the echo), no certificate check\n"
               "  --tls-resume      --tls, and each connection offers the session its slot got last (churn: resumption)\n"
               "  resub: --redis-port P [--duration S]: READY, then the time until Redis is re-subscribed after a restart\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, NULL, 'h'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"path", required_argument, NULL, 'P'},
                                             {"workload", required_argument, NULL, 'w'},
                                             {"pairs", required_argument, NULL, 'n'},
                                             {"inflight", required_argument, NULL, 'k'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"warmup", required_argument, NULL, 'W'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"conns", required_argument, NULL, 'c'},
                                             {"server-pid", required_argument, NULL, 's'},
                                             {"payload", required_argument, NULL, 'b'},
                                             {"count", required_argument, NULL, 'C'},
                                             {"label", required_argument, NULL, 'l'},
                                             {"url2", required_argument, NULL, 'u'},
                                             {"watch", required_argument, NULL, 'x'},
                                             {"redis-port", required_argument, NULL, 'R'},
                                             {"hold", required_argument, NULL, 'o'},
                                             {"after-close", required_argument, NULL, 'A'},
                                             {"tls", no_argument, NULL, 't'},
                                             {"tls-resume", no_argument, NULL, 'E'},
                                             {"help", no_argument, NULL, 'H'},
                                             {NULL, 0, NULL, 0}};
    struct rlimit rl = {0, 0};
    int ch, i;

    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'P':
            opt.path = optarg;
            break;
        case 'w':
            for (i = 0; i < NUM_WORKLOADS && strcmp(optarg, workload_names[i]) != 0; ++i)
                ;
            if (i == NUM_WORKLOADS)
                die("unknown workload %s", optarg);
            opt.workload = (enum workload)i;
            break;
        case 'n':
            opt.pairs = atoi(optarg);
            break;
        case 'k':
            opt.inflight = atoi(optarg);
            break;
        case 'd':
            opt.duration = atof(optarg);
            break;
        case 'W':
            opt.warmup = atof(optarg);
            break;
        case 'r':
            opt.rate = atof(optarg);
            break;
        case 'c':
            opt.conns = atoi(optarg);
            break;
        case 's':
            opt.server_pid = atoi(optarg);
            break;
        case 'b':
            opt.payload = atoi(optarg);
            break;
        case 'C':
            opt.count = strtoull(optarg, NULL, 10);
            break;
        case 'l':
            opt.label = optarg;
            break;
        case 'u': { /* ws://HOST:PORT[/PATH] (wss:// with --tls) */
            int n = 0;
            opt.url2 = optarg;
            if ((sscanf(optarg, "ws://%63[0-9.]:%d%n", opt.host2, &opt.port2, &n) != 2 &&
                 sscanf(optarg, "wss://%63[0-9.]:%d%n", opt.host2, &opt.port2, &n) != 2) ||
                opt.port2 <= 0 || opt.port2 > 65535 || (optarg[n] != '\0' && optarg[n] != '/') || strlen(optarg + n) >= sizeof(opt.path2))
                die("--url2 must be ws://IPV4:PORT[/PATH] or wss://..., not %s", optarg);
            snprintf(opt.path2, sizeof(opt.path2), "%s", optarg[n] != '\0' ? optarg + n : "");
            break;
        }
        case 'x': {
            const char *colon = strchr(optarg, ':');
            size_t len = colon != NULL ? (size_t)(colon - optarg) : 0;
            if (opt.nwatch == MAX_WATCH || len == 0 || len >= sizeof(opt.watch[0].name) ||
                strspn(optarg, "abcdefghijklmnopqrstuvwxyz0123456789_") != len || atoi(colon + 1) <= 0)
                die("--watch NAME:PID (at most %d; NAME of a-z 0-9 _), not %s", MAX_WATCH, optarg);
            memcpy(opt.watch[opt.nwatch].name, optarg, len);
            opt.watch[opt.nwatch].name[len] = '\0';
            opt.watch[opt.nwatch++].pid = atoi(colon + 1);
            break;
        }
        case 'R':
            opt.redis_port = atoi(optarg);
            if (opt.redis_port <= 0 || opt.redis_port > 65535)
                die("--redis-port must be 1..65535");
            break;
        case 'o':
            opt.hold = atof(optarg);
            if (opt.hold < 0 || opt.hold > 3600)
                die("--hold must be 0..3600 s");
            break;
        case 'A':
            opt.after_close = atof(optarg);
            if (opt.after_close <= 0 || opt.after_close > 600)
                die("--after-close must be 0..600 s");
            break;
        case 't':
            opt.tls = 1;
            break;
        case 'E':
            opt.tls = opt.tls_resume = 1;
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (opt.workload == W_RESUB) {
        if (opt.tls)
            die("resub talks to Redis: no --tls");
        if (optind != argc || opt.redis_port == 0)
            die("resub needs --redis-port");
        if (opt.duration <= 0 || opt.duration > 3600)
            die("--duration must be 0..3600 s");
        return run_resub();
    }
    if (optind != argc || opt.port <= 0 || opt.port > 65535) {
        usage(stderr);
        return 2;
    }
    /* bounded always: loopback only, and every count and time has a ceiling */
    g.addr.sin_family = AF_INET;
    g.addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &g.addr.sin_addr) != 1 || (ntohl(g.addr.sin_addr.s_addr) >> 24) != 127)
        die("--host must be a loopback IPv4 address (127.0.0.0/8), not %s", opt.host);
    if (opt.url2 != NULL) {
        if (opt.workload != W_ROUTED)
            die("--url2 is for the routed workload");
        if ((strncmp(opt.url2, "wss://", 6) == 0) != opt.tls)
            die("--url2 is wss:// with --tls, ws:// without");
        if (opt.path2[0] == '\0')
            snprintf(opt.path2, sizeof(opt.path2), "%s", opt.path);
        g.addr2.sin_family = AF_INET;
        g.addr2.sin_port = htons((uint16_t)opt.port2);
        if (inet_pton(AF_INET, opt.host2, &g.addr2.sin_addr) != 1 || (ntohl(g.addr2.sin_addr.s_addr) >> 24) != 127)
            die("--url2 must be on a loopback IPv4 address (127.0.0.0/8), not %s", opt.host2);
    }
    if (opt.hold > 0) { /* no SA_RESTART: the signal interrupts epoll_wait, and the loop sees g.stop */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }
    if (opt.pairs < 1 || opt.pairs > 5000 || opt.inflight < 1 || opt.inflight > 1000 || opt.duration <= 0 || opt.duration > 3600 ||
        opt.warmup < 0 || opt.warmup > 600 || opt.rate < 0 || opt.rate > 1e7 || opt.payload < 23 || opt.payload > 4000)
        die("an option is out of range (pairs 1..5000, inflight 1..1000, duration 0..3600 s, warmup 0..600 s, "
            "rate 0..1e7, payload 23..4000)");
    if (opt.conns < 0)
        opt.conns = opt.workload == W_CHURN ? 16 : 1000;
    if (opt.conns < 1 || opt.conns > 100000)
        die("--conns must be 1..100000");

    /* as many descriptors as the hard limit allows */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state) || rng_state == 0)
        rng_state = now_ns() | 1;
    if (opt.tls)
        tls_init();
    if ((g.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1: %s", strerror(errno));

    g.nconns = opt.workload == W_IDLE || opt.workload == W_CHURN ? opt.conns : 2 * opt.pairs;
    if ((rlim_t)g.nconns + 16 > rl.rlim_max)
        die("%d connections need more descriptors than the hard limit (%llu)", g.nconns, (unsigned long long)rl.rlim_max);
    if ((g.conns = calloc((size_t)g.nconns, sizeof(*g.conns))) == NULL)
        die("out of memory");
    if (IS_CALLS(opt.workload) && (g.pairs = calloc((size_t)opt.pairs, sizeof(*g.pairs))) == NULL)
        die("out of memory");
    for (i = 0; i < g.nconns; ++i) {
        g.conns[i].fd = -1;
        g.conns[i].idx = i;
    }
    if (opt.workload == W_ECHO) { /* as long as a routed dialing frame on the wire: 2-4 header + 4 mask + text */
        char text[8192];
        size_t n = format_dial(text, sizeof(text), &g.conns[0], 0);
        g.echo_size = n + (n < 126 ? 2 : 4) + 4;
    }
    if (IS_CALLS(opt.workload))
        return opt.workload == W_CALLS ? run_calls() : run_callmem();
    return opt.workload == W_IDLE ? run_idle() : run_traffic();
}
