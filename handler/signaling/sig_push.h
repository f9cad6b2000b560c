/*
 * The push API of a `signaling: ON` path (`signaling.push-key-file`, docs/operations.md): the app's
 * backend POSTs a JSON body with `Authorization: Bearer KEY` to the path, and the server delivers a
 * `called` to every connection of a user, or closes them with 4000, on every thread and node, then
 * answers with how many connections it reached.
 */
#ifndef SIG_PUSH_H
#define SIG_PUSH_H

#include <stdint.h>
#include <h2o.h>
#include "route/sig_router.h"
#include "signaling/sig_signaling.h"

/**
 * What a dial's cookie starts with (sig_router_dial copies it when the answer comes later): who waits
 * for the answer. A WebSocket sender's request id and receiver id follow it (sig_signaling.c).
 */
typedef struct st_sig_dial_cookie_t {
    uint64_t push_id;        /* != 0: a push request of this thread (sig_push_on_result) */
    uint64_t sender_conn_id; /* a WebSocket sender */
    size_t id_len;
    struct st_sig_metrics_thread_t *metrics; /* a WebSocket sender's counters (its route, its thread): the dial is
                                              * counted when its answer is known, also if the sender left */
    uint64_t started_ns;                     /* when the dialing was read (sig_metrics_now_ns) */
} sig_dial_cookie_t;

/**
 * Answers a request on a path with a push key: POST delivers (200, 400, 401, 404, 413, 503), other
 * methods get 405. Returns 0, as an h2o handler does.
 */
int sig_push_on_req(h2o_req_t *req, sig_router_t *router, const sig_signaling_config_t *config);

/** The answer of a push whose delivery crossed threads or nodes (on the thread that took the request). */
void sig_push_on_result(uint64_t push_id, int result);

#endif
