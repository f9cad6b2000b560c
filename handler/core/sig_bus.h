/*
 * sig_bus.h: what nodes say to each other over Redis pub/sub (scaleout.md, section 6): the names of the channels and
 * the bytes of the messages published on them. Pure: it builds and reads byte strings, it never talks to Redis.
 *
 * Channels. A node subscribes to PREFIX "u:" ROUTE ":" USER while it holds a connection of USER on ROUTE ("HOST/PATH"
 * of a signaling route, e.g. "default/WsService"), and to PREFIX "n:" NODE on every shard for the RESULTs and probes
 * addressed to it. Redis channel names are binary-safe and are never parsed back: a ':' in a path or a user id could
 * make two (route, user) pairs share a name, so a receiver matches the route and user a DIAL carries, never the
 * channel it came on.
 *
 * Messages. One kind byte, then the fields in order, no separators between them:
 *     DIAL   = 'D' str(origin_node) num(thread) num(seq) str(route) str(user) payload...
 *     RESULT = 'R' num(thread) num(seq) num(delivered)
 *     PROBE  = 'P' str(node) num(seq)
 * and, for level-2 calls (route/sig_calls.h: one node owns every call of a route):
 *     EVENT   = 'E' str(origin_node) num(event) num(thread) num(conn_id) num(level) num(flags)
 *                   str(user) str0(device) str0(req_id) str0(name) json...     a device's event, to the owner's node
 *     OUTPUT  = 'O' num(thread) num(conn_id) payload...                         the owner's message to one connection
 *     WHO     = 'W' str(origin_node) num(seq) str(route) str(user)              "which connections of user do you hold?"
 *     DEVICES = 'V' str(node) num(seq) num(count) then count times num(thread) num(conn_id) num(level): node's answer
 * EVENT and OUTPUT go on node channels, WHO on the user's channel, DEVICES on the asker's node channel. str0 is a str
 * that may be empty (str is 1 byte or more).
 * num is decimal digits (no sign, no leading zero unless the number is 0, at most 20 digits, within the field's type)
 * and one space; str is its byte length as a num, then that many bytes (any bytes: NUL, non-UTF-8). A DIAL's payload is
 * every byte after the user, possibly none. So a DIAL from "n1", thread 0, seq 7 to "2211" on "default/WsService" with
 * the payload {"type":"called"} is
 *     D2 n10 7 17 default/WsService4 2211{"type":"called"}
 * There is exactly one encoding of each message: decoding then encoding gives back the same bytes.
 */
#ifndef SIG_BUS_H
#define SIG_BUS_H

#include <stddef.h>
#include <stdint.h>
#include "common/sig_common.h"

/**
 * Longest node id in bytes (ids are 1..SIG_BUS_NODE_ID_MAX bytes).
 */
#define SIG_BUS_NODE_ID_MAX 64

/**
 * Longest route ("HOST/PATH") in bytes (routes are 1..SIG_BUS_ROUTE_MAX bytes).
 */
#define SIG_BUS_ROUTE_MAX 1024

/**
 * Appends the channel of `user_id` on `route` to `out`: PREFIX "u:" ROUTE ":" USER.
 */
void sig_bus_user_channel(sig_buf_t *out, sig_str_t prefix, sig_str_t route, sig_str_t user_id);

/**
 * Appends the channel of node `node_id` (its RESULTs and probes) to `out`: PREFIX "n:" NODE. The backplane
 * appends ":" ROUTE, so that each route of a node has its own.
 */
void sig_bus_node_channel(sig_buf_t *out, sig_str_t prefix, sig_str_t node_id);

/**
 * Appends the key of the lease that says which node owns the calls of `route`: PREFIX "o:" ROUTE.
 */
void sig_bus_owner_key(sig_buf_t *out, sig_str_t prefix, sig_str_t route);

/**
 * The kind of a message: its first byte.
 */
typedef enum en_sig_bus_kind_t {
    SIG_BUS_DIAL = 'D',   /* a message for a user, published on the user's channel */
    SIG_BUS_RESULT = 'R', /* how many connections took a DIAL, published on the origin's node channel */
    SIG_BUS_PROBE = 'P',  /* a node's liveness check of its own subscription, published on its node channel */
    SIG_BUS_EVENT = 'E',  /* a level-2 device's event, to the node that owns the route's calls */
    SIG_BUS_OUTPUT = 'O', /* what a call owner sends to one connection of the receiving node */
    SIG_BUS_WHO = 'W',    /* a call owner asks the nodes holding a user for its connections */
    SIG_BUS_DEVICES = 'V' /* the answer to a WHO */
} sig_bus_kind_t;

/** EVENT's `event`: what happened to the device. */
enum { SIG_BUS_EVENT_REGISTER = 0, SIG_BUS_EVENT_REQUEST = 1, SIG_BUS_EVENT_LOST = 2 };
/** EVENT's `flags`. */
#define SIG_BUS_EVENT_CLEAN 1u         /* LOST: the connection closed with 1000 or 1001 */
#define SIG_BUS_EVENT_NAME_VERIFIED 2u /* REQUEST: `name` came from a token */
/** Longest EVENT device id, and request id or name (longer ones are refused by the decoder). */
#define SIG_BUS_DEVICE_ID_MAX 64
#define SIG_BUS_FIELD_MAX 4096

/** One connection in a DEVICES answer. */
typedef struct st_sig_bus_device_t {
    uint32_t thread;
    uint64_t conn_id;
    int level; /* 1 or 2 */
} sig_bus_device_t;

/**
 * A decoded message. The strings point into the decoded bytes (valid as long as they are); the fields a kind does not
 * have are zero.
 */
typedef struct st_sig_bus_msg_t {
    sig_bus_kind_t kind;
    sig_str_t node;                 /* DIAL, EVENT, WHO: the origin node; PROBE, DEVICES: the node that sent it */
    uint32_t thread;                /* DIAL, RESULT: the dialing thread on the origin node; EVENT, OUTPUT: the connection's */
    uint64_t seq;                   /* DIAL, RESULT: the dial's ticket; PROBE: the probe's number; WHO, DEVICES: the ask's */
    uint64_t delivered;             /* RESULT; DEVICES: how many connections follow */
    sig_str_t route, user, payload; /* DIAL; WHO: route and user; EVENT: user, payload = the JSON; OUTPUT: payload */
    uint64_t conn_id;               /* EVENT, OUTPUT */
    unsigned event, level, flags;   /* EVENT */
    sig_str_t device, req_id, name; /* EVENT (each may be empty) */
    sig_str_t devices;              /* DEVICES: the encoded list, for sig_bus_devices_at */
} sig_bus_msg_t;

/**
 * Appends a DIAL to `out`. The caller passes fields the decoder accepts (origin 1..SIG_BUS_NODE_ID_MAX bytes, route
 * 1..SIG_BUS_ROUTE_MAX, user 1..SIG_USER_ID_MAX); the encoder does not check them. The payload may be empty.
 */
void sig_bus_encode_dial(sig_buf_t *out, sig_str_t origin, uint32_t thread, uint64_t seq, sig_str_t route,
                         sig_str_t user, sig_str_t payload);

/**
 * Appends a RESULT to `out`: the answer to the DIAL (thread, seq), `delivered` connections took it.
 */
void sig_bus_encode_result(sig_buf_t *out, uint32_t thread, uint64_t seq, uint64_t delivered);

/**
 * Appends a PROBE to `out` (`node` 1..SIG_BUS_NODE_ID_MAX bytes, not checked).
 */
void sig_bus_encode_probe(sig_buf_t *out, sig_str_t node, uint64_t seq);

/** Appends an EVENT (user 1..SIG_USER_ID_MAX, device 0..SIG_BUS_DEVICE_ID_MAX, req_id and name 0..SIG_BUS_FIELD_MAX). */
void sig_bus_encode_event(sig_buf_t *out, sig_str_t origin, unsigned event, uint32_t thread, uint64_t conn_id, unsigned level,
                          unsigned flags, sig_str_t user, sig_str_t device, sig_str_t req_id, sig_str_t name, sig_str_t json);
/** Appends an OUTPUT of `payload` for connection (thread, conn_id). */
void sig_bus_encode_output(sig_buf_t *out, uint32_t thread, uint64_t conn_id, sig_str_t payload);
/** Appends a WHO from `origin`, ask `seq`, for `user` on `route`. */
void sig_bus_encode_who(sig_buf_t *out, sig_str_t origin, uint64_t seq, sig_str_t route, sig_str_t user);
/** Appends node `node`'s DEVICES answer to ask `seq`, listing `n` connections. */
void sig_bus_encode_devices(sig_buf_t *out, sig_str_t node, uint64_t seq, const sig_bus_device_t *devices, size_t n);
/**
 * The connections of a decoded DEVICES message: fills up to `cap` of them into `out` and returns how many there are
 * (msg->delivered). The decoder checked the list, so this cannot fail.
 */
size_t sig_bus_devices_at(const sig_bus_msg_t *msg, sig_bus_device_t *out, size_t cap);

/**
 * Decodes the `len` bytes at `bytes` (which may be NULL when len is 0) into `*msg`. Returns 0, or -1 for anything
 * malformed: no input, an unknown kind, a number without its space, with a non-digit, a leading zero or more than 20
 * digits, a number past its field's type (thread: uint32_t), a string longer than the bytes left, a node id empty or
 * past SIG_BUS_NODE_ID_MAX, a route empty or past SIG_BUS_ROUTE_MAX, a user id empty or past SIG_USER_ID_MAX, bytes
 * after a RESULT, a PROBE, a WHO or a DEVICES; an EVENT whose event is not one of SIG_BUS_EVENT_*, whose level is not
 * 1 or 2, whose flags have other bits, whose device is past SIG_BUS_DEVICE_ID_MAX or req_id or name past
 * SIG_BUS_FIELD_MAX; a DEVICES whose count is not the number of entries that follow or whose level is not 1 or 2. Safe on any input (it reads what other processes wrote to Redis): it reads nothing past
 * `len` and allocates nothing. On -1, `*msg` is zeroed.
 */
int sig_bus_decode(const char *bytes, size_t len, sig_bus_msg_t *msg);

#endif
