/*
 * sig_metrics.h: the counters of one signaling route, kept per thread, summed and rendered on demand (Prometheus
 * text exposition 0.0.4 and the `signaling` section of h2o's status JSON). Pure: no clock, no I/O; the glue feeds
 * it events and durations and reads the figures it cannot count (users, the backplane, the process) itself.
 *
 * Threading: a route has one block of counters per thread (sig_metrics_thread), each on cache lines of its own.
 * Only the owning thread writes its block, with relaxed atomic loads and stores (a plain load, add and store on
 * every common CPU: no lock prefix, no shared line on the hot path); any thread may read every block at the same
 * time with relaxed loads (sig_metrics_sum). A sum is not a snapshot of one instant: counters read a few
 * nanoseconds apart may be one event apart, which a scrape tolerates; no counter ever goes back.
 *
 * The label sets are X-macro tables: a new message type (the level-2 call messages), dial result or close code
 * is one row, and the rendering follows.
 */
#ifndef SIG_METRICS_H
#define SIG_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "common/sig_common.h"
#include "core/sig_call.h"

/**
 * messages_received_total{type}: X(NAME, "label"). `invalid`: a message that could not be decoded. The call messages
 * follow the order of sig_call_req_type_t: SIG_METRICS_MSG_CALL + (type - SIG_CALL_REQ_CALL) is a request's row.
 */
#define SIG_METRICS_MESSAGE_TYPES(X)                                                                                      \
    X(CREATE_CONNECT, "create_connect")                                                                                \
    X(DIALING, "dialing")                                                                                              \
    X(CALL, "call")                                                                                                    \
    X(CALL_RINGING, "call_ringing")                                                                                    \
    X(CALL_ACCEPT, "call_accept")                                                                                      \
    X(CALL_REJECT, "call_reject")                                                                                      \
    X(CALL_HANGUP, "call_hangup")                                                                                      \
    X(CALL_SIGNAL, "call_signal")                                                                                      \
    X(CALL_RESUME, "call_resume")                                                                                      \
    X(INVALID, "invalid")

/** dials_total{result}: X(NAME, "label", SIG_ERR_* or 0 for "delivered to one connection or more"). */
#define SIG_METRICS_DIAL_RESULTS(X)                                                                                       \
    X(DELIVERED, "delivered", 0)                                                                                       \
    X(PEER_OFFLINE, "peer_offline", SIG_ERR_PEER_OFFLINE)                                                              \
    X(PEER_GONE, "peer_gone", SIG_ERR_PEER_GONE)                                                                       \
    X(CLUSTER_UNAVAILABLE, "cluster_unavailable", SIG_ERR_CLUSTER_UNAVAILABLE)                                         \
    X(NOT_REGISTERED, "not_registered", SIG_ERR_NOT_REGISTERED)                                                        \
    X(IDENTITY_MISMATCH, "identity_mismatch", SIG_ERR_IDENTITY_MISMATCH)                                               \
    X(RATE_LIMITED, "rate_limited", SIG_ERR_RATE_LIMITED)

/** closes_total{code}: the close codes counted one by one; any other (3000-4999) counts as "other". */
#define SIG_METRICS_CLOSE_CODES(X) X(1000) X(1001) X(1002) X(1003) X(1005) X(1006) X(1007) X(1008) X(1009) X(1010) X(1011)

/** The upper bounds of dial_duration_seconds: X(nanoseconds, "le label"), ascending; +Inf follows. */
#define SIG_METRICS_DIAL_BUCKETS(X)                                                                                       \
    X(500000ull, "0.0005")                                                                                             \
    X(1000000ull, "0.001")                                                                                             \
    X(2500000ull, "0.0025")                                                                                            \
    X(5000000ull, "0.005")                                                                                             \
    X(10000000ull, "0.01")                                                                                             \
    X(25000000ull, "0.025")                                                                                            \
    X(50000000ull, "0.05")                                                                                             \
    X(100000000ull, "0.1")                                                                                             \
    X(250000000ull, "0.25")                                                                                            \
    X(500000000ull, "0.5")                                                                                             \
    X(1000000000ull, "1")                                                                                              \
    X(2500000000ull, "2.5")                                                                                            \
    X(5000000000ull, "5")

#define SIG_METRICS_ENUM_MSG_(name, label) SIG_METRICS_MSG_##name,
#define SIG_METRICS_ENUM_DIAL_(name, label, err) SIG_METRICS_DIAL_##name,
#define SIG_METRICS_COUNT_(...) +1
enum {
    SIG_METRICS_MESSAGE_TYPES(SIG_METRICS_ENUM_MSG_) SIG_METRICS_NUM_MESSAGE_TYPES
};
enum {
    SIG_METRICS_DIAL_RESULTS(SIG_METRICS_ENUM_DIAL_) SIG_METRICS_NUM_DIAL_RESULTS
};
#define SIG_METRICS_NUM_CLOSE_CODES (0 SIG_METRICS_CLOSE_CODES(SIG_METRICS_COUNT_) + 1) /* + "other" */
#define SIG_METRICS_NUM_DIAL_BUCKETS (0 SIG_METRICS_DIAL_BUCKETS(SIG_METRICS_COUNT_) + 1) /* + the one above the last bound */
#undef SIG_METRICS_ENUM_MSG_
#undef SIG_METRICS_ENUM_DIAL_

/** A counter written by one thread, read by any. */
typedef _Atomic uint64_t sig_counter_t;

/** One thread's counters of one route. Cache-line aligned: two threads never write the same line. */
typedef struct st_sig_metrics_thread_t {
    sig_counter_t connections; /* open now: accepted here minus closed here (a connection never changes thread) */
    sig_counter_t messages[SIG_METRICS_NUM_MESSAGE_TYPES];
    sig_counter_t dials[SIG_METRICS_NUM_DIAL_RESULTS];
    sig_counter_t called_sent;
    sig_counter_t closes[SIG_METRICS_NUM_CLOSE_CODES];
    sig_counter_t dial_buckets[SIG_METRICS_NUM_DIAL_BUCKETS]; /* per bucket, not cumulative */
    sig_counter_t dial_ns_sum;
} __attribute__((aligned(64))) sig_metrics_thread_t;

/** The counters of one route, one block per thread. */
typedef struct st_sig_metrics_t sig_metrics_t;

/** Allocates the blocks of `num_threads` threads (> 0), all zero. Aborts when out of memory. */
sig_metrics_t *sig_metrics_create(size_t num_threads);
void sig_metrics_destroy(sig_metrics_t *metrics);
/** The block that thread `thread` (< num_threads) writes. */
sig_metrics_thread_t *sig_metrics_thread(sig_metrics_t *metrics, size_t thread);

/** Adds `n` to a counter of the calling thread's own block (single writer: no read-modify-write instruction). */
static inline void sig_counter_add(sig_counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/** Subtracts `n` (a gauge's counter; the owning thread never takes it below 0). */
static inline void sig_counter_sub(sig_counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n, memory_order_relaxed);
}

/** Any thread: the counter's value. */
static inline uint64_t sig_counter_get(const sig_counter_t *c)
{
    return atomic_load_explicit((sig_counter_t *)c, memory_order_relaxed);
}

/** The dial_results index of a dial's outcome: > 0 (delivered) or one of the SIG_ERR_* of the table; -1 otherwise. */
int sig_metrics_dial_result_index(int result);
/** The closes index of a close code: its own row, else the last ("other"). */
size_t sig_metrics_close_index(uint16_t code);

/** Counts one dial whose answer (`result`, as sig_metrics_dial_result_index takes) came `ns` after it was read. */
void sig_metrics_count_dial(sig_metrics_thread_t *m, int result, uint64_t ns);

/** A route's figures, summed over threads, plus what the glue reads elsewhere. */
typedef struct st_sig_metrics_figures_t {
    sig_str_t route;    /* "HOST/PATH" */
    uint64_t connections, users;
    uint64_t messages[SIG_METRICS_NUM_MESSAGE_TYPES];
    uint64_t dials[SIG_METRICS_NUM_DIAL_RESULTS];
    uint64_t called_sent;
    uint64_t closes[SIG_METRICS_NUM_CLOSE_CODES];
    uint64_t dial_buckets[SIG_METRICS_NUM_DIAL_BUCKETS]; /* per bucket, not cumulative */
    uint64_t dial_ns_sum;
    sig_call_stats_t calls; /* the route's call owner (route/sig_calls.h): ringing, active, started, answered, ended */
    int has_backplane; /* with signaling.redis: the two below are shown */
    int backplane_up;  /* 1: every shard's subscriber is up */
    uint64_t backplane_reconnects;
} sig_metrics_figures_t;

/** Sets the counted fields of `out` to the sums over every thread of `metrics` (route, users and backplane stay). */
void sig_metrics_sum(const sig_metrics_t *metrics, sig_metrics_figures_t *out);

/** The process's own figures (read from /proc by the glue). */
typedef struct st_sig_metrics_process_t {
    uint64_t resident_bytes;
    uint64_t open_fds, max_fds;
    uint64_t cpu_ns; /* user + system */
} sig_metrics_process_t;

/** Appends the Prometheus text exposition (format 0.0.4) of `routes` and the process to `out`. */
void sig_metrics_render_prometheus(sig_buf_t *out, const sig_metrics_figures_t *routes, size_t num_routes,
                                   const sig_metrics_process_t *process);
/**
 * Appends the `signaling` member of h2o's status JSON: `,\n "signaling": {...}` (h2o's status handler joins the
 * sections so, and replaces the comma of the first one), with the same figures.
 */
void sig_metrics_render_json(sig_buf_t *out, const sig_metrics_figures_t *routes, size_t num_routes,
                             const sig_metrics_process_t *process);

#endif
