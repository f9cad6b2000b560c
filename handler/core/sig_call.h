/*
 * sig_call.h: the level-2 call state machine of ONE owner (calls.md). One thread of one node owns a set of calls and
 * every event of those calls reaches it; this is that owner's state: calls, parties, devices, ring sets, signal
 * buffers and timers as data. Pure: no I/O, no clock, no threads. Events go in with the time (ms, any monotonic
 * origin); everything the owner decides comes out through one sink, as structured records (sig_call_out_t) that the
 * level-2 codec turns into JSON and the router carries to the destination device.
 *
 * Driving it from an event loop (the glue):
 *   owner = sig_call_owner_create(&settings, sink);
 *   on a level-2 message routed here:  sig_call_handle(owner, now, &req);   (the reply is emitted, always)
 *   on create_connect of a device:      sig_call_device_registered(owner, now, &dev);
 *   on a connection's end:              sig_call_device_lost(owner, now, &dev, clean);
 *   after any of these, and in the timer callback after sig_call_on_time(owner, now):
 *       d = sig_call_next_deadline(owner); re-arm ONE timer for d (or stop it when d == SIG_CALL_NEVER).
 * Timers are polled, not requested: the owner keeps its deadlines in a heap, so the loop needs a single uv_timer_t per
 * owner, never a handle per call that must be cancelled (and could fire for a freed call).
 *
 * Who is who: a device is a connection, named by its sig_endpoint_t (thread, conn id) like the registry names it,
 * plus its user id, its optional deviceId and its level. A call has two parties: the caller (the device that sent
 * `call`) and the callee user, whose devices all ring (the ring set) until one accepts and becomes the callee party.
 *
 * Sink rules: the sink is called synchronously from inside these functions, in the order the messages must be sent
 * (per destination that order is the order to deliver in). Strings in a record are valid only during the callback.
 * The sink must not call back into the owner.
 */
#ifndef SIG_CALL_H
#define SIG_CALL_H

#include <stddef.h>
#include <stdint.h>
#include "common/sig_common.h"
#include "core/sig_registry.h"

/** Longest callId and deviceId: 1..64 characters of [0-9A-Za-z._~-]. */
#define SIG_CALL_ID_MAX 64
/** Longest signal `kind` and hangup detail reason, in bytes. */
#define SIG_CALL_TEXT_MAX 64
/** "No deadline" for sig_call_next_deadline(). */
#define SIG_CALL_NEVER UINT64_MAX

/**
 * The error codes of level 2 (calls.md), one row each: X(NAME, value, "protocol code"). Values -4xx, beside the ranges
 * of SIG_ERR_* in common/sig_common.h. An error never changes a call.
 */
#define SIG_CALL_ERR_MAP(X)                                                                                                \
    X(BAD_REQUEST, -400, "bad_request")                                                                                    \
    X(NOT_REGISTERED, -401, "not_registered")                                                                              \
    X(NOT_LEVEL2, -402, "not_level2")                                                                                      \
    X(SELF_CALL, -403, "self_call")                                                                                        \
    X(TOO_MANY_CALLS, -404, "too_many_calls")                                                                              \
    X(CALL_ID_TAKEN, -405, "call_id_taken")                                                                                \
    X(NO_SUCH_CALL, -406, "no_such_call")                                                                                  \
    X(NOT_A_PARTY, -407, "not_a_party")                                                                                    \
    X(BAD_STATE, -408, "bad_state")                                                                                        \
    X(ANSWERED_ELSEWHERE, -409, "answered_elsewhere")                                                                      \
    X(SIGNAL_TOO_LARGE, -410, "signal_too_large")                                                                          \
    X(RATE_LIMITED, -411, "rate_limited")                                                                                  \
    X(BUFFER_FULL, -412, "buffer_full")                                                                                    \
    X(CLUSTER_UNAVAILABLE, -413, "cluster_unavailable")

typedef enum en_sig_call_err_t {
#define SIG_CALL_ERR_ENUM_(name, value, code) SIG_CALL_ERR_##name = (value),
    SIG_CALL_ERR_MAP(SIG_CALL_ERR_ENUM_)
#undef SIG_CALL_ERR_ENUM_
} sig_call_err_t;

/** The protocol code of a SIG_CALL_ERR_* ("bad_request", ...); "internal" for anything else. Static, never NULL. */
const char *sig_call_err_code(int err);

/** `reason` of call_ended. */
typedef enum en_sig_call_reason_t {
    SIG_CALL_REASON_NONE = 0,
    SIG_CALL_REASON_CANCELLED,          /* the caller hung up while ringing */
    SIG_CALL_REASON_REJECTED,           /* a callee device rejected (to the caller) */
    SIG_CALL_REASON_BUSY,               /* the callee is in an active call, or rejected with reason "busy" */
    SIG_CALL_REASON_NO_ANSWER,          /* ring timeout */
    SIG_CALL_REASON_OFFLINE,            /* the callee has no device at all */
    SIG_CALL_REASON_ANSWERED_ELSEWHERE, /* another device of the callee accepted */
    SIG_CALL_REASON_REJECTED_ELSEWHERE, /* another device of the callee rejected */
    SIG_CALL_REASON_HANGUP,             /* a party hung up (or closed its connection cleanly); see `detail` */
    SIG_CALL_REASON_PEER_GONE,          /* a detached party did not come back within the reconnect grace */
    SIG_CALL_REASON_REPLACED,           /* a new call between the same pair replaced this one */
    SIG_CALL_REASON_MAX_DURATION,
    SIG_CALL_REASON_SHUTDOWN,
    SIG_CALL_NUM_REASONS
} sig_call_reason_t;

/** "cancelled", "rejected", ...; "" for NONE. Static. */
const char *sig_call_reason_name(sig_call_reason_t reason);

typedef enum en_sig_call_state_t { SIG_CALL_RINGING = 1, SIG_CALL_ACTIVE, SIG_CALL_ENDED } sig_call_state_t;

/** "ringing", "active", "ended". Static. */
const char *sig_call_state_name(sig_call_state_t state);

/** A client's level-2 request. */
typedef enum en_sig_call_req_type_t {
    SIG_CALL_REQ_CALL = 1,
    SIG_CALL_REQ_RINGING,
    SIG_CALL_REQ_ACCEPT,
    SIG_CALL_REQ_REJECT,
    SIG_CALL_REQ_HANGUP,
    SIG_CALL_REQ_SIGNAL,
    SIG_CALL_REQ_RESUME
} sig_call_req_type_t;

/** The type of the reply to a request: "call_response", "call_accept_response", ... Static. */
const char *sig_call_response_type(sig_call_req_type_t req);

/**
 * A device (connection) as the glue knows it. `level`: 0 not registered (no create_connect yet), 1, or 2.
 * `device_id` may be empty (none given).
 */
typedef struct st_sig_call_device_t {
    sig_endpoint_t ep;
    sig_str_t user_id;
    sig_str_t device_id;
    int level;
} sig_call_device_t;

/**
 * One level-2 request, as the codec decodes it plus what the glue adds. Only the fields of `type` are read:
 *   every type   from, req_id (the request's "id", echoed opaquely in the reply; may be empty), call_id
 *                (required, except for CALL where empty means "the server picks one");
 *   CALL         receiver_user_id, media ("audio" | "video"), sponsor_user_name, field1..3 with fields_present (bits
 *                1, 2, 4 for field1..3: which were given), and from the glue: callee_devices (every connection of the
 *                receiver known now, level 1 and 2, from the registry) and callee_busy (1 if the receiver is in an
 *                active call on any owner: the glue's cross-thread counter; the owner also knows its own calls);
 *   REJECT       reason: empty, "declined" or "busy";
 *   HANGUP       reason: empty or a detail of 1..SIG_CALL_TEXT_MAX bytes ("hangup", "ice_failed", ...);
 *   SIGNAL       kind (0..SIG_CALL_TEXT_MAX bytes), data (the JSON value's bytes, relayed as is).
 */
typedef struct st_sig_call_request_t {
    sig_call_req_type_t type;
    sig_call_device_t from;
    sig_str_t req_id;
    sig_str_t call_id;
    sig_str_t receiver_user_id, media, sponsor_user_name, field1, field2, field3;
    unsigned fields_present;
    const sig_call_device_t *callee_devices;
    size_t num_callee_devices;
    int callee_busy;
    sig_str_t reason;
    sig_str_t kind, data;
} sig_call_request_t;

/** What the owner emits. */
typedef enum en_sig_call_out_type_t {
    SIG_CALL_OUT_RESPONSE = 1, /* the reply to a request (ok when err == 0) */
    SIG_CALL_OUT_INCOMING,     /* incoming_call, to a level-2 device of the callee */
    SIG_CALL_OUT_CALLED,       /* level-1 `called`, to a level-1 device of the callee */
    SIG_CALL_OUT_STATE,        /* call_state */
    SIG_CALL_OUT_ACCEPTED,     /* call_accepted */
    SIG_CALL_OUT_SIGNAL,       /* call_signal */
    SIG_CALL_OUT_ENDED,        /* call_ended */
    SIG_CALL_OUT_USER_ACTIVE   /* not a message: user_id enters (+1) or leaves (-1) an active call; for the glue's
                                  cross-thread busy counter (`to` is unused) */
} sig_call_out_type_t;

/** "incoming_call", "called", "call_state", ...; for RESPONSE use sig_call_response_type(out->req). Static. */
const char *sig_call_out_type_name(sig_call_out_type_t type);

/**
 * One output record. Fields not listed for a type are zero / empty.
 *   every message  to, call_id
 *   RESPONSE       req, req_id, err; on success also state (the call's, after the request: ENDED when it answers a
 *                  request about an ended call); for CALL: delivered_level2, delivered_legacy, glare (1: the call
 *                  joined the receiver's call to us, call_id is that call's)
 *   INCOMING       sponsor_user_id, sponsor_user_name, media, expires_in (ms left to ring), replaces (callId of the
 *                  call this one replaces, or empty)
 *   CALLED         sponsor_user_id, sponsor_user_name, field1..3 (the call's, or callId, media, "" when none given)
 *   STATE          state, alerting (callee devices that sent call_ringing), peer_connected (the other side, seen
 *                  from the recipient: 1 if it is attached / has a device ringing)
 *   ACCEPTED       by_user_id, by_device_id (the accepting callee device), polite (1 for the callee), glare
 *   SIGNAL         from_user_id, from_device_id, seq (per direction, from 1), kind, data
 *   ENDED          reason, detail (the hangup's reason text when one was given), repeat (1: the answer to a message
 *                  about a call that had already ended, sent right after that message's RESPONSE)
 *   USER_ACTIVE    user_id, active_delta
 */
typedef struct st_sig_call_out_t {
    sig_call_out_type_t type;
    sig_endpoint_t to;
    sig_str_t call_id;
    sig_call_req_type_t req;
    sig_str_t req_id;
    int err;
    sig_call_state_t state;
    unsigned delivered_level2, delivered_legacy;
    int glare;
    sig_str_t sponsor_user_id, sponsor_user_name, media;
    uint64_t expires_in;
    sig_str_t replaces;
    sig_str_t field1, field2, field3;
    unsigned alerting;
    int peer_connected;
    sig_str_t by_user_id, by_device_id;
    int polite;
    sig_str_t from_user_id, from_device_id;
    uint64_t seq;
    sig_str_t kind, data;
    sig_call_reason_t reason;
    sig_str_t detail;
    int repeat;
    sig_str_t user_id;
    int active_delta;
} sig_call_out_t;

/** Where outputs go: `emit(ctx, out)` for each, synchronously (see the sink rules above). */
typedef struct st_sig_call_sink_t {
    void (*emit)(void *ctx, const sig_call_out_t *out);
    void *ctx;
} sig_call_sink_t;

enum { SIG_CALL_WHEN_BUSY_BUSY = 0, SIG_CALL_WHEN_BUSY_RING = 1 };

/**
 * The directives (calls.md), times in ms. sig_call_settings_default() fills the contract's defaults.
 * `random` fills `len` bytes with unpredictable ones: server-generated callIds (128 bits, base64url) and the hash key
 * come from it; NULL uses getrandom() (as the registry does). Tests pass a seeded generator.
 */
typedef struct st_sig_call_settings_t {
    uint64_t ring_timeout_ms;     /* signaling.call.ring-timeout, 60000 */
    uint64_t reconnect_grace_ms;  /* signaling.call.reconnect-grace, 30000 (0: an abnormal loss ends the call at once) */
    int when_busy;                /* signaling.call.when-busy, SIG_CALL_WHEN_BUSY_BUSY */
    size_t max_per_user;          /* signaling.call.max-per-user, 4 live calls (either role); 0: no limit */
    size_t max_signal_size;       /* signaling.call.max-signal-size, 65536 bytes of `data` */
    size_t signal_rate;           /* signaling.call.signal-rate, 20/s (0: no limit) ... */
    size_t signal_burst;          /* ... with a burst of 64 */
    size_t signal_buffer;         /* signaling.call.signal-buffer, 64 messages ... */
    size_t signal_buffer_bytes;   /* ... and 262144 bytes (kind + data) per waiting direction */
    uint64_t max_duration_ms;     /* signaling.call.max-duration, 0 (off); counted from the accept */
    uint64_t tombstone_ms;        /* how long an ended call answers repeats, 30000 */
    void (*random)(void *ctx, void *buf, size_t len);
    void *random_ctx;
} sig_call_settings_t;

/** Fills `s` with the defaults above. */
void sig_call_settings_default(sig_call_settings_t *s);

typedef struct st_sig_call_owner_t sig_call_owner_t;

/** Creates an owner with no call. Settings are copied. Never returns NULL (aborts when out of memory). */
sig_call_owner_t *sig_call_owner_create(const sig_call_settings_t *settings, sig_call_sink_t sink);

/**
 * Later events follow `settings` (a reload); `random` stays the one given at create. Deadlines already set keep their
 * time: a new ring timeout applies to calls that start ringing from now on.
 */
void sig_call_owner_set_settings(sig_call_owner_t *owner, const sig_call_settings_t *settings);

/** Frees every call, tombstone and buffer without emitting anything (call sig_call_shutdown() first to tell). */
void sig_call_owner_destroy(sig_call_owner_t *owner);

/**
 * Handles one request at `now`. The reply (SIG_CALL_OUT_RESPONSE, with req_id) is always emitted, first, to
 * req->from.ep; then whatever the request caused. Returns the reply's err: 0 or a SIG_CALL_ERR_* (for metrics and
 * tests; the glue need not answer it). Errors, checked in this order: not_registered / not_level2 (from.level),
 * bad_request (malformed field), then per call: no_such_call, not_a_party (the sender's user is neither party's),
 * bad_state / answered_elsewhere (the message does not fit the call's state or the sender's role),
 * signal_too_large, buffer_full, rate_limited; for CALL: self_call, too_many_calls (the caller's user already has
 * max_per_user live calls), call_id_taken (a live or recently ended call of another caller has that id), bad_state (a
 * call between the pair rings in the same direction already, or is active and when-busy is ring).
 * A request naming a call that ended less than tombstone_ms ago is answered with RESPONSE (ok for CALL, REJECT and
 * HANGUP, bad_state otherwise; state ENDED) followed by the same call_ended the device's side was sent (repeat = 1).
 */
int sig_call_handle(sig_call_owner_t *owner, uint64_t now, const sig_call_request_t *req);

/**
 * A connection of `dev->user_id` made create_connect (the glue calls it on every owner that may hold calls of that
 * user; an owner with none does nothing). For a level-2 device: each call of the user that rings it gets an
 * incoming_call (expires_in = what is left) and it joins the ring set; a detached party with the same non-empty
 * deviceId is re-attached to it (call_state to both sides, buffered signals flushed, in order).
 */
void sig_call_device_registered(sig_call_owner_t *owner, uint64_t now, const sig_call_device_t *dev);

/**
 * A connection ended; `clean` = it closed with 1000/1001. For each call of `dev->user_id` that involves dev->ep: a
 * ringing callee device leaves the ring set (the ring timer keeps running); a party's clean close is its hangup
 * (cancel while ringing); an abnormal loss detaches the party: the other side gets call_state peer_connected 0, and the
 * call ends with peer_gone unless the party comes back within reconnect_grace_ms.
 */
void sig_call_device_lost(sig_call_owner_t *owner, uint64_t now, const sig_call_device_t *dev, int clean);

/**
 * Every device whose endpoint is on `node` (sig_endpoint_t.node, never 0: this node's devices end one by one) is lost
 * abnormally, as sig_call_device_lost(clean = 0) says: the glue found that node out of reach.
 */
void sig_call_node_lost(sig_call_owner_t *owner, uint64_t now, uint32_t node);

/**
 * A SIGNAL output (as the sink got it) did not reach its device: the glue found the device's node lost on its way, and
 * called sig_call_node_lost() first. If the call is active and its party on `signal->to` is detached, the signal waits
 * for that party among the ones kept since, in seq order (flushed when it re-attaches, as they are); returns 1. Returns
 * 0 and keeps nothing when the call ended, the party is attached (again) or is another device now, the signal (its
 * seq) waits already, or the party's buffer is full (signal-buffer): then it is lost, as in flight.
 */
int sig_call_signal_returned(sig_call_owner_t *owner, const sig_call_out_t *signal);

/** The earliest time sig_call_on_time() has something to do, or SIG_CALL_NEVER. */
uint64_t sig_call_next_deadline(const sig_call_owner_t *owner);

/**
 * Fires every timer due at `now` (ring timeout, reconnect grace, max duration, tombstone expiry), earliest first.
 * Calling it early or twice is harmless.
 */
void sig_call_on_time(sig_call_owner_t *owner, uint64_t now);

/**
 * Ends every live call with call_ended{shutdown} to all its attached devices. Later `call` requests are answered
 * with a response (state ended) and call_ended{shutdown}. Tombstones stay until destroy.
 */
void sig_call_shutdown(sig_call_owner_t *owner, uint64_t now);

/** How many ACTIVE calls of this owner `user_id` is a party of (busy is judged on this being > 0). */
size_t sig_call_user_active(const sig_call_owner_t *owner, sig_str_t user_id);

/** A live call as create_connect_response lists it. Strings valid until the next call into the owner. */
typedef struct st_sig_call_info_t {
    sig_str_t call_id;
    sig_call_state_t state;
    int is_caller;
    sig_str_t peer_user_id;
    sig_str_t media;
} sig_call_info_t;

/** Copies up to `cap` of the live calls of `user_id` into `out`; returns how many there are in all. */
size_t sig_call_user_calls(const sig_call_owner_t *owner, sig_str_t user_id, sig_call_info_t *out, size_t cap);

/** Counts, for metrics and tests. */
typedef struct st_sig_call_stats_t {
    size_t live, ringing, active, tombstones, users, buffered_signals, buffered_bytes;
    /* since the owner was made: calls placed (every `call` that rang, or ended at once as busy/offline/shutdown), calls
     * answered (an accept or a glare join), and calls ended by the reason their caller was given */
    uint64_t started, answered, ended[SIG_CALL_NUM_REASONS];
} sig_call_stats_t;

void sig_call_stats(const sig_call_owner_t *owner, sig_call_stats_t *stats);

#endif
