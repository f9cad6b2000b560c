/*
 * test_bus.c: unit tests of handler/core/sig_bus.c (TAP): channel names, the exact bytes of each message, round trips
 * with any bytes in the strings, every malformed form refused, and every truncation of a valid message refused (a
 * DIAL, EVENT or OUTPUT cut inside its payload is the same message with a shorter payload), for the DIAL, RESULT and PROBE
 * of level 1 and the EVENT, OUTPUT, WHO and DEVICES of level-2 calls.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "core/sig_bus.h"
#include "core/sig_registry.h"
#include "tap.h"

/* decodes a string literal (its NUL excluded) */
#define DECODE(lit, msg) sig_bus_decode((lit), sizeof(lit) - 1, (msg))

/* the buffer's content as a NUL-terminated copy for is_str() */
static const char *cstr(const sig_buf_t *b)
{
    static char s[4096];
    size_t n = b->len < sizeof(s) - 1 ? b->len : sizeof(s) - 1;
    if (n != 0)
        memcpy(s, b->base, n);
    s[n] = '\0';
    return s;
}

static int is_zero(const sig_bus_msg_t *msg)
{
    static const sig_bus_msg_t zero;
    return memcmp(msg, &zero, sizeof(zero)) == 0;
}

static void test_channels(void)
{
    sig_buf_t b = SIG_BUF_INIT;

    sig_bus_user_channel(&b, SIG_STRLIT("sig:"), SIG_STRLIT("default/WsService"), SIG_STRLIT("2211"));
    is_str(cstr(&b), "sig:u:default/WsService:2211", "user channel: PREFIX u: ROUTE : USER");
    sig_buf_append_char(&b, '|');
    sig_bus_node_channel(&b, SIG_STRLIT("sig:"), SIG_STRLIT("n1"));
    is_str(cstr(&b), "sig:u:default/WsService:2211|sig:n:n1", "node channel: PREFIX n: NODE, appended");
    sig_buf_reset(&b);
    sig_bus_owner_key(&b, SIG_STRLIT("sig:"), SIG_STRLIT("default/WsService"));
    is_str(cstr(&b), "sig:o:default/WsService", "the calls' lease key: PREFIX o: ROUTE");
    sig_buf_reset(&b);
    sig_bus_user_channel(&b, sig_str(NULL, 0), SIG_STRLIT("example.com:8443/WsService"), SIG_STRLIT("a:b"));
    is_str(cstr(&b), "u:example.com:8443/WsService:a:b", "an empty prefix; ':' in the route and the id kept as is");
    sig_buf_reset(&b);
    sig_bus_user_channel(&b, SIG_STRLIT("p:"), SIG_STRLIT("h/p"), SIG_STRLIT("x\0y"));
    ok(b.len == 11 && memcmp(b.base, "p:u:h/p:x\0y", 11) == 0, "a NUL in the id is kept (channels are binary-safe)");
    sig_buf_dispose(&b);
}

static void test_example(void)
{
    static const char want[] = "D2 n10 7 17 default/WsService4 2211{\"type\":\"called\"}";
    sig_buf_t b = SIG_BUF_INIT;
    sig_bus_msg_t msg;

    sig_bus_encode_dial(&b, SIG_STRLIT("n1"), 0, 7, SIG_STRLIT("default/WsService"), SIG_STRLIT("2211"),
                        SIG_STRLIT("{\"type\":\"called\"}"));
    ok(b.len == sizeof(want) - 1 && memcmp(b.base, want, b.len) == 0, "the DIAL of the example is the bytes given");
    is_int(sig_bus_decode(b.base, b.len, &msg), 0, "and decodes");
    is_int(msg.kind, SIG_BUS_DIAL, "kind DIAL");
    ok(sig_str_eq(msg.node, SIG_STRLIT("n1")), "origin n1");
    is_int(msg.thread, 0, "thread 0");
    is_int(msg.seq, 7, "seq 7");
    ok(sig_str_eq(msg.route, SIG_STRLIT("default/WsService")), "route default/WsService");
    ok(sig_str_eq(msg.user, SIG_STRLIT("2211")), "user 2211");
    ok(sig_str_eq(msg.payload, SIG_STRLIT("{\"type\":\"called\"}")), "the payload");
    is_int(msg.delivered, 0, "a field DIAL does not have is 0");
    ok(msg.node.base > b.base && msg.payload.base + msg.payload.len == b.base + b.len,
       "the strings point into the decoded bytes");

    sig_buf_reset(&b);
    sig_bus_encode_result(&b, 3, 7, 2);
    is_str(cstr(&b), "R3 7 2 ", "RESULT thread 3, seq 7, delivered 2");
    is_int(sig_bus_decode(b.base, b.len, &msg), 0, "decodes");
    ok(msg.kind == SIG_BUS_RESULT && msg.thread == 3 && msg.seq == 7 && msg.delivered == 2, "with its fields");
    ok(msg.node.base == NULL && msg.route.len == 0 && msg.user.len == 0 && msg.payload.len == 0,
       "and no strings");

    sig_buf_reset(&b);
    sig_bus_encode_probe(&b, SIG_STRLIT("node-a"), 0);
    is_str(cstr(&b), "P6 node-a0 ", "PROBE node-a, seq 0");
    is_int(sig_bus_decode(b.base, b.len, &msg), 0, "decodes");
    ok(msg.kind == SIG_BUS_PROBE && sig_str_eq(msg.node, SIG_STRLIT("node-a")) && msg.seq == 0, "with its fields");

    sig_buf_reset(&b);
    sig_buf_append(&b, "xy", 2);
    sig_bus_encode_result(&b, 0, 0, 0);
    is_str(cstr(&b), "xyR0 0 0 ", "the encoders append");
    sig_buf_dispose(&b);
}

/* encodes a DIAL, decodes it and checks every field and that re-encoding gives the same bytes */
static void round_trip_dial(const char *what, sig_str_t origin, uint32_t thread, uint64_t seq, sig_str_t route,
                            sig_str_t user, sig_str_t payload)
{
    sig_buf_t b = SIG_BUF_INIT, again = SIG_BUF_INIT;
    sig_bus_msg_t msg;
    int r = -2;

    sig_bus_encode_dial(&b, origin, thread, seq, route, user, payload);
    r = sig_bus_decode(b.base, b.len, &msg);
    is_int(r, 0, "%s: decodes", what);
    ok(r == 0 && msg.kind == SIG_BUS_DIAL && sig_str_eq(msg.node, origin) && msg.thread == thread && msg.seq == seq &&
           sig_str_eq(msg.route, route) && sig_str_eq(msg.user, user) && sig_str_eq(msg.payload, payload),
       "%s: every field back", what);
    sig_bus_encode_dial(&again, msg.node, msg.thread, msg.seq, msg.route, msg.user, msg.payload);
    ok(again.len == b.len && memcmp(again.base, b.base, b.len) == 0, "%s: the same bytes re-encoded", what);
    sig_buf_dispose(&b);
    sig_buf_dispose(&again);
}

static void test_round_trips(void)
{
    static char node_max[SIG_BUS_NODE_ID_MAX], route_max[SIG_BUS_ROUTE_MAX], user_max[SIG_USER_ID_MAX];
    static char all_bytes[256];
    sig_buf_t b = SIG_BUF_INIT;
    sig_bus_msg_t msg;
    size_t i;

    memset(node_max, 'N', sizeof(node_max));
    memset(route_max, '/', sizeof(route_max));
    memset(user_max, 0xff, sizeof(user_max));
    for (i = 0; i != sizeof(all_bytes); ++i)
        all_bytes[i] = (char)i;

    round_trip_dial("NUL and non-ASCII payload", SIG_STRLIT("n1"), 1, 2, SIG_STRLIT("h/p"), SIG_STRLIT("u"),
                    SIG_STRLIT("a\0b\xc3\xa9\xff\x80 0 D"));
    round_trip_dial("every byte value in the payload", SIG_STRLIT("n"), 0, 0, SIG_STRLIT("h/p"), SIG_STRLIT("u"),
                    sig_str(all_bytes, sizeof(all_bytes)));
    round_trip_dial("empty payload", SIG_STRLIT("n"), 0, 0, SIG_STRLIT("h/p"), SIG_STRLIT("u"), sig_str(NULL, 0));
    round_trip_dial("max-size ids and numbers", sig_str(node_max, sizeof(node_max)), UINT32_MAX, UINT64_MAX,
                    sig_str(route_max, sizeof(route_max)), sig_str(user_max, sizeof(user_max)), SIG_STRLIT("x"));
    round_trip_dial("ids of spaces, digits and NULs", SIG_STRLIT(" 1 "), 10, 100, SIG_STRLIT("0 0"), SIG_STRLIT("\0"),
                    SIG_STRLIT("9 "));

    sig_bus_encode_result(&b, UINT32_MAX, UINT64_MAX, UINT64_MAX);
    is_str(cstr(&b), "R4294967295 18446744073709551615 18446744073709551615 ", "RESULT with every number at its max");
    ok(sig_bus_decode(b.base, b.len, &msg) == 0 && msg.thread == UINT32_MAX && msg.seq == UINT64_MAX &&
           msg.delivered == UINT64_MAX,
       "decodes back");
    sig_buf_reset(&b);
    sig_bus_encode_probe(&b, sig_str(node_max, sizeof(node_max)), UINT64_MAX);
    ok(sig_bus_decode(b.base, b.len, &msg) == 0 && sig_str_eq(msg.node, sig_str(node_max, sizeof(node_max))) &&
           msg.seq == UINT64_MAX,
       "PROBE with a max-size node id and seq round-trips");
    sig_buf_reset(&b);
    sig_bus_encode_probe(&b, SIG_STRLIT("\0\xfe"), 1);
    ok(sig_bus_decode(b.base, b.len, &msg) == 0 && sig_str_eq(msg.node, SIG_STRLIT("\0\xfe")),
       "PROBE node id of any bytes");
    sig_buf_dispose(&b);
}

static void test_malformed(void)
{
    static const struct {
        const char *what, *bytes;
        size_t len;
    } bad[] = {
#define BAD(what, lit) {what, lit, sizeof(lit) - 1}
        BAD("unknown kind", "X0 0 0 "),
        BAD("kind in lower case", "r0 0 0 "),
        BAD("a NUL kind", "\0" "0 0 0 "),
        BAD("kind only: D", "D"),
        BAD("kind only: R", "R"),
        BAD("kind only: P", "P"),
        BAD("RESULT: missing final space", "R0 7 1"),
        BAD("RESULT: missing field", "R0 7 "),
        BAD("RESULT: two spaces", "R0  7 1 "),
        BAD("RESULT: a tab for the space", "R0\t7 1 "),
        BAD("RESULT: a non-digit", "R0 7x 1 "),
        BAD("RESULT: a sign", "R0 +7 1 "),
        BAD("RESULT: a minus", "R0 -7 1 "),
        BAD("RESULT: leading zero", "R0 07 1 "),
        BAD("RESULT: 00", "R00 7 1 "),
        BAD("RESULT: thread past uint32", "R4294967296 7 1 "),
        BAD("RESULT: seq past uint64", "R0 18446744073709551616 1 "),
        BAD("RESULT: delivered past uint64", "R0 1 99999999999999999999 "),
        BAD("RESULT: 21 digits", "R0 100000000000000000000 1 "),
        BAD("RESULT: trailing bytes", "R0 7 1 x"),
        BAD("RESULT: trailing space", "R0 7 1  "),
        BAD("PROBE: trailing bytes", "P2 n17 7 "),
        BAD("PROBE: empty node", "P0 7 "),
        BAD("PROBE: node longer than what is left", "P9 n17 "),
        BAD("PROBE: node length huge", "P18446744073709551615 n1"),
        BAD("PROBE: node length with leading zero", "P02 n17 "),
        BAD("PROBE: no space after the length", "P2n17 "),
        BAD("PROBE: no seq", "P2 n1"),
        BAD("DIAL: empty origin", "D0 0 7 3 h/p1 u"),
        BAD("DIAL: empty route", "D2 n10 7 0 1 u"),
        BAD("DIAL: empty user", "D2 n10 7 3 h/p0 "),
        BAD("DIAL: thread past uint32", "D2 n14294967296 7 3 h/p1 u"),
        BAD("DIAL: seq past uint64", "D2 n10 18446744073709551616 3 h/p1 u"),
        BAD("DIAL: thread with leading zero", "D2 n100 7 3 h/p1 u"),
        BAD("DIAL: user longer than what is left", "D2 n10 7 3 h/p5 u"),
        BAD("DIAL: a NUL for the space after seq", "D2 n10 7\0" "3 h/p1 u"),
        BAD("DIAL: route length not a number", "D2 n10 7 x h/p1 u"),
#undef BAD
    };
    char long_msg[2048];
    sig_bus_msg_t msg;
    size_t i;
    int n;

    for (i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        memset(&msg, 0xa5, sizeof(msg));
        is_int(sig_bus_decode(bad[i].bytes, bad[i].len, &msg), -1, "%s: refused", bad[i].what);
        ok(is_zero(&msg), "%s: the message is left zeroed", bad[i].what);
    }

    is_int(DECODE("R4294967295 18446744073709551615 0 ", &msg), 0, "the largest numbers of each type pass");
    is_int(DECODE("R0 00000000000000000001 0 ", &msg), -1, "20 digits with leading zeros do not");

    /* the length limits, one byte past and at the limit */
    n = snprintf(long_msg, sizeof(long_msg), "P%d ", SIG_BUS_NODE_ID_MAX + 1);
    memset(long_msg + n, 'a', SIG_BUS_NODE_ID_MAX + 1);
    n += SIG_BUS_NODE_ID_MAX + 1;
    n += snprintf(long_msg + n, sizeof(long_msg) - (size_t)n, "7 ");
    is_int(sig_bus_decode(long_msg, (size_t)n, &msg), -1, "PROBE: node id of %d bytes refused",
           SIG_BUS_NODE_ID_MAX + 1);

    n = snprintf(long_msg, sizeof(long_msg), "D%d ", SIG_BUS_NODE_ID_MAX + 1);
    memset(long_msg + n, 'a', SIG_BUS_NODE_ID_MAX + 1);
    n += SIG_BUS_NODE_ID_MAX + 1;
    n += snprintf(long_msg + n, sizeof(long_msg) - (size_t)n, "0 7 3 h/p1 u");
    is_int(sig_bus_decode(long_msg, (size_t)n, &msg), -1, "DIAL: origin of %d bytes refused", SIG_BUS_NODE_ID_MAX + 1);

    n = snprintf(long_msg, sizeof(long_msg), "D1 n0 7 %d ", SIG_BUS_ROUTE_MAX + 1);
    memset(long_msg + n, '/', SIG_BUS_ROUTE_MAX + 1);
    n += SIG_BUS_ROUTE_MAX + 1;
    n += snprintf(long_msg + n, sizeof(long_msg) - (size_t)n, "1 u");
    is_int(sig_bus_decode(long_msg, (size_t)n, &msg), -1, "DIAL: route of %d bytes refused", SIG_BUS_ROUTE_MAX + 1);

    n = snprintf(long_msg, sizeof(long_msg), "D1 n0 7 3 h/p%d ", SIG_USER_ID_MAX + 1);
    memset(long_msg + n, 'u', SIG_USER_ID_MAX + 1);
    n += SIG_USER_ID_MAX + 1;
    is_int(sig_bus_decode(long_msg, (size_t)n, &msg), -1, "DIAL: user id of %d bytes refused", SIG_USER_ID_MAX + 1);
    n = snprintf(long_msg, sizeof(long_msg), "D1 n0 7 3 h/p%d ", SIG_USER_ID_MAX);
    memset(long_msg + n, 'u', SIG_USER_ID_MAX + 1);
    n += SIG_USER_ID_MAX + 1;
    ok(sig_bus_decode(long_msg, (size_t)n, &msg) == 0 && msg.user.len == SIG_USER_ID_MAX && msg.payload.len == 1,
       "DIAL: a user id of %d bytes passes, the byte after it is the payload", SIG_USER_ID_MAX);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * the level-2 kinds: EVENT, OUTPUT, WHO, DEVICES
 * -------------------------------------------------------------------------------------------------------------------*/

/* re-encodes a decoded message of any kind into *out with its sig_bus_encode_*() */
static void reencode(sig_buf_t *out, const sig_bus_msg_t *msg)
{
    switch (msg->kind) {
    case SIG_BUS_DIAL:
        sig_bus_encode_dial(out, msg->node, msg->thread, msg->seq, msg->route, msg->user, msg->payload);
        break;
    case SIG_BUS_RESULT:
        sig_bus_encode_result(out, msg->thread, msg->seq, msg->delivered);
        break;
    case SIG_BUS_PROBE:
        sig_bus_encode_probe(out, msg->node, msg->seq);
        break;
    case SIG_BUS_EVENT:
        sig_bus_encode_event(out, msg->node, msg->event, msg->thread, msg->conn_id, msg->level, msg->flags, msg->user,
                             msg->device, msg->req_id, msg->name, msg->payload);
        break;
    case SIG_BUS_OUTPUT:
        sig_bus_encode_output(out, msg->thread, msg->conn_id, msg->payload);
        break;
    case SIG_BUS_WHO:
        sig_bus_encode_who(out, msg->node, msg->seq, msg->route, msg->user);
        break;
    case SIG_BUS_DEVICES: {
        size_t n = (size_t)msg->delivered; /* the decoder checked each of them is in the input */
        sig_bus_device_t *list = sig_mem_alloc(n != 0 ? n * sizeof(*list) : 1);
        is_int(sig_bus_devices_at(msg, list, n), n, "devices_at gives the count");
        sig_bus_encode_devices(out, msg->node, msg->seq, list, n);
        free(list);
        break;
    }
    }
}

/* decodes the `len` bytes (a copy of exactly that size, for ASan), checks it passes and that re-encoding gives the
 * same bytes; *msg is left decoded (its strings point into `bytes`, not into the freed copy) */
static void decode_and_back(const char *what, const char *bytes, size_t len, sig_bus_msg_t *msg)
{
    sig_buf_t again = SIG_BUF_INIT;
    char *copy = sig_mem_alloc(len);
    int r;

    memcpy(copy, bytes, len);
    r = sig_bus_decode(copy, len, msg);
    is_int(r, 0, "%s: decodes", what);
    if (r == 0)
        reencode(&again, msg);
    ok(r == 0 && again.len == len && memcmp(again.base, copy, len) == 0, "%s: decode then encode gives the same bytes",
       what);
    free(copy);
    sig_bus_decode(bytes, len, msg); /* again, from `bytes`, so that the caller can look at the strings */
    sig_buf_dispose(&again);
}

/* 1 if the slice holds exactly the NUL-less literal `lit` */
#define STR_IS(s, lit) sig_str_eq((s), SIG_STRLIT(lit))

static void test_event(void)
{
    static const char want[] = "E2 n11 3 42 2 2 4 22115 dev-12 r13 Bob{\"a\":1}";
    static const char want_empty[] = "E2 n10 0 0 1 0 1 u0 0 0 ";
    static const char want_lost[] = "E5 node2" "2 4294967295 18446744073709551615 1 1 3 a\0b0 0 0 ";
    sig_buf_t b = SIG_BUF_INIT;
    sig_bus_msg_t msg;

    sig_bus_encode_event(&b, SIG_STRLIT("n1"), SIG_BUS_EVENT_REQUEST, 3, 42, 2, SIG_BUS_EVENT_NAME_VERIFIED,
                         SIG_STRLIT("2211"), SIG_STRLIT("dev-1"), SIG_STRLIT("r1"), SIG_STRLIT("Bob"),
                         SIG_STRLIT("{\"a\":1}"));
    ok(b.len == sizeof(want) - 1 && memcmp(b.base, want, b.len) == 0, "EVENT REQUEST: the bytes of the grammar");
    if (!(b.len == sizeof(want) - 1 && memcmp(b.base, want, b.len) == 0))
        printf("#   got: '%s'\n", cstr(&b));
    decode_and_back("EVENT REQUEST", want, sizeof(want) - 1, &msg);
    ok(msg.kind == SIG_BUS_EVENT && STR_IS(msg.node, "n1") && msg.event == SIG_BUS_EVENT_REQUEST && msg.thread == 3 &&
           msg.conn_id == 42 && msg.level == 2 && msg.flags == SIG_BUS_EVENT_NAME_VERIFIED && STR_IS(msg.user, "2211") &&
           STR_IS(msg.device, "dev-1") && STR_IS(msg.req_id, "r1") && STR_IS(msg.name, "Bob") &&
           STR_IS(msg.payload, "{\"a\":1}"),
       "EVENT REQUEST: every field");
    ok(msg.seq == 0 && msg.delivered == 0 && msg.route.base == NULL && msg.route.len == 0 && msg.devices.base == NULL &&
           msg.devices.len == 0,
       "EVENT: the fields it does not have are zero");
    ok(msg.payload.base + msg.payload.len == want + sizeof(want) - 1, "EVENT: the JSON ends the input");

    sig_buf_reset(&b);
    sig_bus_encode_event(&b, SIG_STRLIT("n1"), SIG_BUS_EVENT_REGISTER, 0, 0, 1, 0, SIG_STRLIT("u"), sig_str(NULL, 0),
                         sig_str(NULL, 0), sig_str(NULL, 0), sig_str(NULL, 0));
    ok(b.len == sizeof(want_empty) - 1 && memcmp(b.base, want_empty, b.len) == 0,
       "EVENT REGISTER with empty device, req_id, name and JSON: the bytes of the grammar");
    decode_and_back("EVENT REGISTER, empty strings", want_empty, sizeof(want_empty) - 1, &msg);
    ok(msg.kind == SIG_BUS_EVENT && STR_IS(msg.node, "n1") && msg.event == SIG_BUS_EVENT_REGISTER && msg.thread == 0 &&
           msg.conn_id == 0 && msg.level == 1 && msg.flags == 0 && STR_IS(msg.user, "u") && msg.device.len == 0 &&
           msg.req_id.len == 0 && msg.name.len == 0 && msg.payload.len == 0,
       "EVENT REGISTER: every field, the empty ones empty");

    sig_buf_reset(&b);
    sig_bus_encode_event(&b, SIG_STRLIT("node2"), SIG_BUS_EVENT_LOST, UINT32_MAX, UINT64_MAX, 1, SIG_BUS_EVENT_CLEAN,
                         SIG_STRLIT("a\0b"), sig_str(NULL, 0), sig_str(NULL, 0), sig_str(NULL, 0), sig_str(NULL, 0));
    ok(b.len == sizeof(want_lost) - 1 && memcmp(b.base, want_lost, b.len) == 0,
       "EVENT LOST, clean, numbers at their max, a NUL in the user: the bytes of the grammar");
    decode_and_back("EVENT LOST", want_lost, sizeof(want_lost) - 1, &msg);
    ok(msg.event == SIG_BUS_EVENT_LOST && msg.thread == UINT32_MAX && msg.conn_id == UINT64_MAX && msg.level == 1 &&
           msg.flags == SIG_BUS_EVENT_CLEAN && msg.user.len == 3 && memcmp(msg.user.base, "a\0b", 3) == 0,
       "EVENT LOST: every field");

    is_int(DECODE("E2 n12 0 0 2 3 1 u0 0 0 ", &msg), 0, "EVENT: flags 3 (both known bits) pass");
    is_int(DECODE("E2 n10 0 0 1 0 1 u0 0 0 \0\xff{", &msg), 0, "EVENT: any bytes in the JSON");
    ok(msg.payload.len == 3 && memcmp(msg.payload.base, "\0\xff{", 3) == 0, "and they are the payload");
    sig_buf_dispose(&b);
}

static void test_output(void)
{
    static const char want[] = "O5 7 {\"type\":\"x\"}";
    static const char want_empty[] = "O0 0 ";
    static const char want_max[] = "O4294967295 18446744073709551615 a\0b";
    sig_buf_t b = SIG_BUF_INIT;
    sig_bus_msg_t msg;

    sig_bus_encode_output(&b, 5, 7, SIG_STRLIT("{\"type\":\"x\"}"));
    ok(b.len == sizeof(want) - 1 && memcmp(b.base, want, b.len) == 0, "OUTPUT: the bytes of the grammar");
    decode_and_back("OUTPUT", want, sizeof(want) - 1, &msg);
    ok(msg.kind == SIG_BUS_OUTPUT && msg.thread == 5 && msg.conn_id == 7 && STR_IS(msg.payload, "{\"type\":\"x\"}"),
       "OUTPUT: every field");
    ok(msg.node.base == NULL && msg.user.base == NULL && msg.route.base == NULL && msg.seq == 0 && msg.delivered == 0 &&
           msg.event == 0 && msg.level == 0 && msg.flags == 0 && msg.device.base == NULL && msg.devices.base == NULL,
       "OUTPUT: the fields it does not have are zero");

    sig_buf_reset(&b);
    sig_bus_encode_output(&b, 0, 0, sig_str(NULL, 0));
    ok(b.len == sizeof(want_empty) - 1 && memcmp(b.base, want_empty, b.len) == 0,
       "OUTPUT with an empty payload: the bytes of the grammar");
    decode_and_back("OUTPUT, empty payload", want_empty, sizeof(want_empty) - 1, &msg);
    ok(msg.kind == SIG_BUS_OUTPUT && msg.thread == 0 && msg.conn_id == 0 && msg.payload.len == 0,
       "OUTPUT, empty payload: every field");

    sig_buf_reset(&b);
    sig_bus_encode_output(&b, UINT32_MAX, UINT64_MAX, SIG_STRLIT("a\0b"));
    ok(b.len == sizeof(want_max) - 1 && memcmp(b.base, want_max, b.len) == 0,
       "OUTPUT with numbers at their max and a NUL in the payload: the bytes of the grammar");
    decode_and_back("OUTPUT, max numbers", want_max, sizeof(want_max) - 1, &msg);
    ok(msg.thread == UINT32_MAX && msg.conn_id == UINT64_MAX && msg.payload.len == 3, "OUTPUT, max numbers: every field");
    sig_buf_dispose(&b);
}

static void test_who(void)
{
    static const char want[] = "W2 n19 17 default/WsService4 2211";
    static char node_max[SIG_BUS_NODE_ID_MAX], route_max[SIG_BUS_ROUTE_MAX], user_max[SIG_USER_ID_MAX];
    sig_buf_t b = SIG_BUF_INIT, copy = SIG_BUF_INIT;
    sig_bus_msg_t msg;

    sig_bus_encode_who(&b, SIG_STRLIT("n1"), 9, SIG_STRLIT("default/WsService"), SIG_STRLIT("2211"));
    ok(b.len == sizeof(want) - 1 && memcmp(b.base, want, b.len) == 0, "WHO: the bytes of the grammar");
    decode_and_back("WHO", want, sizeof(want) - 1, &msg);
    ok(msg.kind == SIG_BUS_WHO && STR_IS(msg.node, "n1") && msg.seq == 9 && STR_IS(msg.route, "default/WsService") &&
           STR_IS(msg.user, "2211"),
       "WHO: every field");
    ok(msg.thread == 0 && msg.conn_id == 0 && msg.delivered == 0 && msg.payload.base == NULL && msg.payload.len == 0 &&
           msg.devices.base == NULL,
       "WHO: the fields it does not have are zero");

    memset(node_max, 'N', sizeof(node_max));
    memset(route_max, '/', sizeof(route_max));
    memset(user_max, 0, sizeof(user_max));
    sig_buf_reset(&b);
    sig_bus_encode_who(&b, sig_str(node_max, sizeof(node_max)), UINT64_MAX, sig_str(route_max, sizeof(route_max)),
                       sig_str(user_max, sizeof(user_max)));
    sig_buf_append(&copy, b.base, b.len);
    decode_and_back("WHO with max-size ids (a user of NULs)", copy.base, copy.len, &msg);
    ok(msg.node.len == SIG_BUS_NODE_ID_MAX && msg.seq == UINT64_MAX && msg.route.len == SIG_BUS_ROUTE_MAX &&
           msg.user.len == SIG_USER_ID_MAX,
       "WHO with max-size ids: every field");
    sig_buf_dispose(&b);
    sig_buf_dispose(&copy);
}

static void test_devices(void)
{
    static const char want[] = "V2 n29 3 0 5 1 4294967295 18446744073709551615 2 7 0 1 ";
    static const char want_empty[] = "V2 n20 0 ";
    static const sig_bus_device_t list[] = {{0, 5, 1}, {UINT32_MAX, UINT64_MAX, 2}, {7, 0, 1}};
    sig_buf_t b = SIG_BUF_INIT;
    sig_bus_device_t got[5];
    sig_bus_msg_t msg;
    size_t i;

    sig_bus_encode_devices(&b, SIG_STRLIT("n2"), 9, list, 3);
    ok(b.len == sizeof(want) - 1 && memcmp(b.base, want, b.len) == 0, "DEVICES of 3: the bytes of the grammar");
    decode_and_back("DEVICES of 3", want, sizeof(want) - 1, &msg);
    ok(msg.kind == SIG_BUS_DEVICES && STR_IS(msg.node, "n2") && msg.seq == 9 && msg.delivered == 3,
       "DEVICES of 3: node, seq and count");
    ok(msg.devices.base == want + 9 && msg.devices.len == sizeof(want) - 1 - 9, "DEVICES: the list is the bytes after the count");
    ok(msg.thread == 0 && msg.conn_id == 0 && msg.route.base == NULL && msg.user.base == NULL &&
           msg.payload.base == NULL && msg.level == 0,
       "DEVICES: the fields it does not have are zero");

    memset(got, 0xa5, sizeof(got));
    is_int(sig_bus_devices_at(&msg, got, 5), 3, "devices_at, cap 5: returns the count 3");
    ok(got[0].thread == 0 && got[0].conn_id == 5 && got[0].level == 1 && got[1].thread == UINT32_MAX &&
           got[1].conn_id == UINT64_MAX && got[1].level == 2 && got[2].thread == 7 && got[2].conn_id == 0 &&
           got[2].level == 1,
       "devices_at, cap 5: the 3 entries in order");
    for (i = 0; i != sizeof(got[3]); ++i)
        if (((unsigned char *)&got[3])[i] != 0xa5)
            break;
    ok(i == sizeof(got[3]), "devices_at, cap 5: nothing written past the count");

    memset(got, 0xa5, sizeof(got));
    is_int(sig_bus_devices_at(&msg, got, 2), 3, "devices_at, cap 2: still returns the count 3");
    ok(got[0].conn_id == 5 && got[0].level == 1 && got[1].thread == UINT32_MAX && got[1].conn_id == UINT64_MAX &&
           got[1].level == 2,
       "devices_at, cap 2: the first 2 entries");
    for (i = 0; i != sizeof(got[2]); ++i)
        if (((unsigned char *)&got[2])[i] != 0xa5)
            break;
    ok(i == sizeof(got[2]), "devices_at, cap 2: the third slot left alone");
    is_int(sig_bus_devices_at(&msg, NULL, 0), 3, "devices_at, cap 0 and no array: the count");

    sig_buf_reset(&b);
    sig_bus_encode_devices(&b, SIG_STRLIT("n2"), 0, NULL, 0);
    ok(b.len == sizeof(want_empty) - 1 && memcmp(b.base, want_empty, b.len) == 0, "DEVICES of 0: the bytes of the grammar");
    decode_and_back("DEVICES of 0", want_empty, sizeof(want_empty) - 1, &msg);
    ok(msg.kind == SIG_BUS_DEVICES && STR_IS(msg.node, "n2") && msg.seq == 0 && msg.delivered == 0 &&
           msg.devices.len == 0,
       "DEVICES of 0: every field, an empty list");
    memset(got, 0xa5, sizeof(got));
    is_int(sig_bus_devices_at(&msg, got, 5), 0, "devices_at of an empty list: 0");
    ok(((unsigned char *)got)[0] == 0xa5, "and writes nothing");
    sig_buf_dispose(&b);
}

/* a kind byte, str(len, c) for a string of `n` copies of c, then `tail`: to build the messages at the length limits */
static void append_long(sig_buf_t *b, size_t n, char c)
{
    char len[24];
    int l = snprintf(len, sizeof(len), "%zu ", n);
    sig_buf_append(b, len, (size_t)l);
    while (n-- != 0)
        sig_buf_append_char(b, c);
}

/* decodes b (a copy of exactly its size), expecting `want`; on -1, also that msg is zeroed */
static void check_limit(const char *what, const sig_buf_t *b, int want)
{
    char *copy = sig_mem_alloc(b->len);
    sig_bus_msg_t msg;
    int r;

    memcpy(copy, b->base, b->len);
    memset(&msg, 0xa5, sizeof(msg));
    r = sig_bus_decode(copy, b->len, &msg);
    is_int(r, want, "%s: %s", what, want == 0 ? "passes" : "refused");
    if (want != 0)
        ok(is_zero(&msg), "%s: the message is left zeroed", what);
    free(copy);
}

static void test_new_limits(void)
{
    sig_buf_t b = SIG_BUF_INIT;

    /* EVENT device: 64 passes, 65 does not */
    sig_buf_append(&b, "E2 n10 0 0 1 0 1 u", 18);
    append_long(&b, SIG_BUS_DEVICE_ID_MAX, 'd');
    sig_buf_append(&b, "0 0 ", 4);
    check_limit("EVENT: device of 64 bytes", &b, 0);
    sig_buf_reset(&b);
    sig_buf_append(&b, "E2 n10 0 0 1 0 1 u", 18);
    append_long(&b, SIG_BUS_DEVICE_ID_MAX + 1, 'd');
    sig_buf_append(&b, "0 0 ", 4);
    check_limit("EVENT: device of 65 bytes", &b, -1);

    /* req_id and name: 4096 pass, 4097 do not */
    sig_buf_reset(&b);
    sig_buf_append(&b, "E2 n10 0 0 1 0 1 u0 ", 20);
    append_long(&b, SIG_BUS_FIELD_MAX, 'r');
    sig_buf_append(&b, "0 ", 2);
    check_limit("EVENT: req_id of 4096 bytes", &b, 0);
    sig_buf_reset(&b);
    sig_buf_append(&b, "E2 n10 0 0 1 0 1 u0 ", 20);
    append_long(&b, SIG_BUS_FIELD_MAX + 1, 'r');
    sig_buf_append(&b, "0 ", 2);
    check_limit("EVENT: req_id of 4097 bytes", &b, -1);
    sig_buf_reset(&b);
    sig_buf_append(&b, "E2 n10 0 0 1 0 1 u0 0 ", 22);
    append_long(&b, SIG_BUS_FIELD_MAX, 'm');
    check_limit("EVENT: name of 4096 bytes", &b, 0);
    sig_buf_reset(&b);
    sig_buf_append(&b, "E2 n10 0 0 1 0 1 u0 0 ", 22);
    append_long(&b, SIG_BUS_FIELD_MAX + 1, 'm');
    check_limit("EVENT: name of 4097 bytes", &b, -1);

    /* EVENT user and origin */
    sig_buf_reset(&b);
    sig_buf_append(&b, "E2 n10 0 0 1 0 ", 15);
    append_long(&b, SIG_USER_ID_MAX, 'u');
    sig_buf_append(&b, "0 0 0 ", 6);
    check_limit("EVENT: user of 256 bytes", &b, 0);
    sig_buf_reset(&b);
    sig_buf_append(&b, "E2 n10 0 0 1 0 ", 15);
    append_long(&b, SIG_USER_ID_MAX + 1, 'u');
    sig_buf_append(&b, "0 0 0 ", 6);
    check_limit("EVENT: user of 257 bytes", &b, -1);
    sig_buf_reset(&b);
    sig_buf_append_char(&b, 'E');
    append_long(&b, SIG_BUS_NODE_ID_MAX + 1, 'n');
    sig_buf_append(&b, "0 0 0 1 0 1 u0 0 0 ", 19);
    check_limit("EVENT: origin of 65 bytes", &b, -1);

    /* WHO route, user and origin */
    sig_buf_reset(&b);
    sig_buf_append(&b, "W2 n10 ", 7);
    append_long(&b, SIG_BUS_ROUTE_MAX + 1, '/');
    sig_buf_append(&b, "1 u", 3);
    check_limit("WHO: route of 1025 bytes", &b, -1);
    sig_buf_reset(&b);
    sig_buf_append(&b, "W2 n10 3 h/p", 12);
    append_long(&b, SIG_USER_ID_MAX + 1, 'u');
    check_limit("WHO: user of 257 bytes", &b, -1);
    sig_buf_reset(&b);
    sig_buf_append_char(&b, 'W');
    append_long(&b, SIG_BUS_NODE_ID_MAX + 1, 'n');
    sig_buf_append(&b, "0 3 h/p1 u", 10);
    check_limit("WHO: origin of 65 bytes", &b, -1);

    /* DEVICES node */
    sig_buf_reset(&b);
    sig_buf_append_char(&b, 'V');
    append_long(&b, SIG_BUS_NODE_ID_MAX + 1, 'n');
    sig_buf_append(&b, "0 0 ", 4);
    check_limit("DEVICES: node of 65 bytes", &b, -1);
    sig_buf_dispose(&b);
}

static void test_new_malformed(void)
{
    static const struct {
        const char *what, *bytes;
        size_t len;
    } bad[] = {
#define BAD(what, lit) {what, lit, sizeof(lit) - 1}
        BAD("kind only: E", "E"),
        BAD("kind only: O", "O"),
        BAD("kind only: W", "W"),
        BAD("kind only: V", "V"),
        BAD("kinds in lower case: e", "e2 n10 0 0 1 0 1 u0 0 0 "),
        BAD("kinds in lower case: v", "v2 n20 0 "),
        /* EVENT */
        BAD("EVENT: event 3", "E2 n13 0 0 1 0 1 u0 0 0 "),
        BAD("EVENT: event 9", "E2 n19 0 0 1 0 1 u0 0 0 "),
        BAD("EVENT: event 10", "E2 n110 0 0 1 0 1 u0 0 0 "),
        BAD("EVENT: event 13", "E2 n113 0 0 1 0 1 u0 0 0 "),
        BAD("EVENT: event 9999999999 (past unsigned)", "E2 n19999999999 0 0 1 0 1 u0 0 0 "),
        BAD("EVENT: event 4294967296", "E2 n14294967296 0 0 1 0 1 u0 0 0 "),
        BAD("EVENT: event with leading zero", "E2 n101 0 0 1 0 1 u0 0 0 "),
        BAD("EVENT: level 0", "E2 n10 0 0 0 0 1 u0 0 0 "),
        BAD("EVENT: level 3", "E2 n10 0 0 3 0 1 u0 0 0 "),
        BAD("EVENT: level 9", "E2 n10 0 0 9 0 1 u0 0 0 "),
        BAD("EVENT: level 12", "E2 n10 0 0 12 0 1 u0 0 0 "),
        BAD("EVENT: flags 4", "E2 n10 0 0 1 4 1 u0 0 0 "),
        BAD("EVENT: flags 7", "E2 n10 0 0 1 7 1 u0 0 0 "),
        BAD("EVENT: flags 33", "E2 n10 0 0 1 33 1 u0 0 0 "),
        BAD("EVENT: empty origin", "E0 0 0 0 1 0 1 u0 0 0 "),
        BAD("EVENT: empty user", "E2 n10 0 0 1 0 0 0 0 0 "),
        BAD("EVENT: thread past uint32", "E2 n10 4294967296 0 1 0 1 u0 0 0 "),
        BAD("EVENT: conn_id past uint64", "E2 n10 0 18446744073709551616 1 0 1 u0 0 0 "),
        BAD("EVENT: device longer than what is left", "E2 n10 0 0 1 0 1 u5 ab"),
        BAD("EVENT: req_id longer than what is left", "E2 n10 0 0 1 0 1 u0 3 a"),
        BAD("EVENT: name longer than what is left", "E2 n10 0 0 1 0 1 u0 0 9 x"),
        BAD("EVENT: user longer than what is left", "E2 n10 0 0 1 0 9 u"),
        BAD("EVENT: no name", "E2 n10 0 0 1 0 1 u0 0 "),
        BAD("EVENT: no req_id nor name", "E2 n10 0 0 1 0 1 u0 "),
        BAD("EVENT: no device, req_id nor name", "E2 n10 0 0 1 0 1 u"),
        BAD("EVENT: name length without its space", "E2 n10 0 0 1 0 1 u0 0 0"),
        BAD("EVENT: device length with leading zero", "E2 n10 0 0 1 0 1 u01 d0 0 "),
        BAD("EVENT: device length huge", "E2 n10 0 0 1 0 1 u18446744073709551615 d0 0 "),
        BAD("EVENT: no flags", "E2 n10 0 0 1 "),
        /* OUTPUT */
        BAD("OUTPUT: missing conn_id", "O5 "),
        BAD("OUTPUT: missing conn_id, no space", "O5"),
        BAD("OUTPUT: conn_id without its space", "O5 7"),
        BAD("OUTPUT: conn_id followed by the payload, no space", "O5 7{}"),
        BAD("OUTPUT: thread past uint32", "O4294967296 7 {}"),
        BAD("OUTPUT: conn_id past uint64", "O5 18446744073709551616 {}"),
        BAD("OUTPUT: conn_id with leading zero", "O5 07 {}"),
        BAD("OUTPUT: a sign", "O5 +7 {}"),
        /* WHO */
        BAD("WHO: trailing bytes", "W2 n19 3 h/p4 2211x"),
        BAD("WHO: trailing space", "W2 n19 3 h/p4 2211 "),
        BAD("WHO: empty route", "W2 n19 0 4 2211"),
        BAD("WHO: empty user", "W2 n19 3 h/p0 "),
        BAD("WHO: empty origin", "W0 9 3 h/p4 2211"),
        BAD("WHO: user longer than what is left", "W2 n19 3 h/p5 2211"),
        BAD("WHO: no user", "W2 n19 3 h/p"),
        BAD("WHO: seq past uint64", "W2 n118446744073709551616 3 h/p4 2211"),
        /* DEVICES */
        BAD("DEVICES: count 3, 2 entries", "V2 n29 3 0 5 1 1 6 2 "),
        BAD("DEVICES: count 2, 3 entries (trailing bytes)", "V2 n29 2 0 5 1 1 6 2 2 7 1 "),
        BAD("DEVICES: count 1, 0 entries", "V2 n29 1 "),
        BAD("DEVICES: count 0, 1 entry", "V2 n29 0 0 5 1 "),
        BAD("DEVICES: count 0, trailing bytes", "V2 n29 0 x"),
        BAD("DEVICES: level 3 in an entry", "V2 n29 2 0 5 1 1 6 3 "),
        BAD("DEVICES: level 0 in an entry", "V2 n29 1 0 5 0 "),
        BAD("DEVICES: level 9 in an entry", "V2 n29 1 0 5 9 "),
        BAD("DEVICES: level 12 in an entry", "V2 n29 1 0 5 12 "),
        BAD("DEVICES: huge count, no entries", "V2 n29 18446744073709551615 "),
        BAD("DEVICES: huge count, one entry", "V2 n29 18446744073709551615 0 5 1 "),
        BAD("DEVICES: count past uint64", "V2 n29 18446744073709551616 "),
        BAD("DEVICES: half an entry", "V2 n29 1 0 5 "),
        BAD("DEVICES: entry level without its space", "V2 n29 1 0 5 1"),
        BAD("DEVICES: entry thread past uint32", "V2 n29 1 4294967296 5 1 "),
        BAD("DEVICES: entry conn_id past uint64", "V2 n29 1 0 18446744073709551616 1 "),
        BAD("DEVICES: no count", "V2 n29 "),
        BAD("DEVICES: empty node", "V0 9 0 "),
#undef BAD
    };
    sig_bus_msg_t msg;
    size_t i;

    for (i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        char *copy = sig_mem_alloc(bad[i].len); /* exactly its size, so ASan sees a read past the end */
        memcpy(copy, bad[i].bytes, bad[i].len);
        memset(&msg, 0xa5, sizeof(msg));
        is_int(sig_bus_decode(copy, bad[i].len, &msg), -1, "%s: refused", bad[i].what);
        ok(is_zero(&msg), "%s: the message is left zeroed", bad[i].what);
        free(copy);
    }
}

/* 1 for the kinds whose last field is "every byte left": a DIAL's payload, an EVENT's JSON, an OUTPUT's payload */
static int has_tail(sig_bus_kind_t kind)
{
    return kind == SIG_BUS_DIAL || kind == SIG_BUS_EVENT || kind == SIG_BUS_OUTPUT;
}

/* 1 if the two decoded messages have the same fields, compared by content, except the payload */
static int same_but_payload(const sig_bus_msg_t *a, const sig_bus_msg_t *b)
{
    return a->kind == b->kind && sig_str_eq(a->node, b->node) && a->thread == b->thread && a->seq == b->seq &&
           a->delivered == b->delivered && sig_str_eq(a->route, b->route) && sig_str_eq(a->user, b->user) &&
           a->conn_id == b->conn_id && a->event == b->event && a->level == b->level && a->flags == b->flags &&
           sig_str_eq(a->device, b->device) && sig_str_eq(a->req_id, b->req_id) && sig_str_eq(a->name, b->name) &&
           sig_str_eq(a->devices, b->devices);
}

/* Every proper prefix of a RESULT, PROBE, WHO or DEVICES is refused; of a DIAL, EVENT or OUTPUT, a prefix that ends
 * before the payload is refused and one that ends inside it gives the same message with the payload cut. Each prefix
 * is decoded from a buffer of exactly its size, so ASan reports any read past the end. */
static void check_truncations(const char *what, const sig_buf_t *b, size_t payload_len)
{
    size_t header = b->len - payload_len, cut;
    int wrong = 0;
    sig_bus_msg_t full, msg;

    ok(sig_bus_decode(b->base, b->len, &full) == 0, "%s: the whole message decodes", what);
    for (cut = 0; cut != b->len; ++cut) {
        char *copy = sig_mem_alloc(cut);
        int r;
        memcpy(copy, b->base, cut);
        memset(&msg, 0xa5, sizeof(msg));
        r = sig_bus_decode(copy, cut, &msg);
        if (cut < header || !has_tail(full.kind)) {
            wrong += r != -1 || !is_zero(&msg);
        } else {
            wrong += r != 0 || !same_but_payload(&msg, &full) || msg.payload.len != cut - header ||
                     memcmp(msg.payload.base, full.payload.base, cut - header) != 0;
        }
        free(copy);
    }
    is_int(wrong, 0, "%s: each of its %zu truncations refused%s", what, b->len,
           has_tail(full.kind) ? " (or, inside the payload, a shorter payload)" : "");
}

static void test_truncations(void)
{
    sig_buf_t b = SIG_BUF_INIT;

    sig_bus_encode_dial(&b, SIG_STRLIT("n1"), 12, 345, SIG_STRLIT("default/WsService"), SIG_STRLIT("2211"),
                        SIG_STRLIT("{\"type\":\"called\"}"));
    check_truncations("DIAL", &b, 17);
    sig_buf_reset(&b);
    sig_bus_encode_dial(&b, SIG_STRLIT("node-1234567890"), UINT32_MAX, UINT64_MAX, SIG_STRLIT("h/p"), SIG_STRLIT("u"),
                        sig_str(NULL, 0));
    check_truncations("DIAL with an empty payload", &b, 0);
    sig_buf_reset(&b);
    sig_bus_encode_result(&b, 1234, 56789, 10);
    check_truncations("RESULT", &b, 0);
    sig_buf_reset(&b);
    sig_bus_encode_probe(&b, SIG_STRLIT("node-1234567890"), 99999);
    check_truncations("PROBE", &b, 0);
    {
        static const sig_bus_device_t list[] = {{0, 5, 1}, {UINT32_MAX, UINT64_MAX, 2}, {12, 3456, 1}};
        sig_buf_reset(&b);
        sig_bus_encode_event(&b, SIG_STRLIT("n1"), SIG_BUS_EVENT_REQUEST, 12, 345, 2, SIG_BUS_EVENT_NAME_VERIFIED,
                             SIG_STRLIT("2211"), SIG_STRLIT("dev-1"), SIG_STRLIT("req-9"), SIG_STRLIT("Bob"),
                             SIG_STRLIT("{\"type\":\"call\"}"));
        check_truncations("EVENT", &b, 15);
        sig_buf_reset(&b);
        sig_bus_encode_event(&b, SIG_STRLIT("node-1"), SIG_BUS_EVENT_LOST, UINT32_MAX, UINT64_MAX, 1, SIG_BUS_EVENT_CLEAN,
                             SIG_STRLIT("u"), sig_str(NULL, 0), sig_str(NULL, 0), sig_str(NULL, 0), sig_str(NULL, 0));
        check_truncations("EVENT with empty strings and JSON", &b, 0);
        sig_buf_reset(&b);
        sig_bus_encode_output(&b, 12, 345, SIG_STRLIT("{\"type\":\"x\"}"));
        check_truncations("OUTPUT", &b, 12);
        sig_buf_reset(&b);
        sig_bus_encode_output(&b, UINT32_MAX, UINT64_MAX, sig_str(NULL, 0));
        check_truncations("OUTPUT with an empty payload", &b, 0);
        sig_buf_reset(&b);
        sig_bus_encode_who(&b, SIG_STRLIT("node-1"), 99999, SIG_STRLIT("default/WsService"), SIG_STRLIT("2211"));
        check_truncations("WHO", &b, 0);
        sig_buf_reset(&b);
        sig_bus_encode_devices(&b, SIG_STRLIT("node-1"), 99999, list, 3);
        check_truncations("DEVICES", &b, 0);
        sig_buf_reset(&b);
        sig_bus_encode_devices(&b, SIG_STRLIT("node-1"), 99999, NULL, 0);
        check_truncations("DEVICES of 0", &b, 0);
    }
    sig_buf_dispose(&b);
}

static void test_no_input(void)
{
    char *empty = sig_mem_alloc(0); /* reading even its first byte is an ASan report */
    sig_bus_msg_t msg;

    memset(&msg, 0xa5, sizeof(msg));
    is_int(sig_bus_decode(NULL, 0, &msg), -1, "NULL, 0 refused");
    ok(is_zero(&msg), "and the message zeroed");
    is_int(sig_bus_decode(empty, 0, &msg), -1, "a 0-length input refused without reading it");
    is_int(sig_bus_decode(NULL, 10, &msg), -1, "NULL with a length refused");
    free(empty);
}

int main(void)
{
    test_channels();
    test_example();
    test_round_trips();
    test_malformed();
    test_truncations();
    test_no_input();
    test_event();
    test_output();
    test_who();
    test_devices();
    test_new_limits();
    test_new_malformed();
    return done_testing();
}
