/*
 * test_bus.c: unit tests of handler/core/sig_bus.c (TAP): channel names, the exact bytes of each message, round trips
 * with any bytes in the strings, every malformed form refused, and every truncation of a valid message refused (a
 * DIAL cut inside its payload is the same dial with a shorter payload).
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

/* Every proper prefix of a RESULT or PROBE is refused; of a DIAL, a prefix that ends before the payload is refused
 * and one that ends inside it gives the same dial with the payload cut. Each prefix is decoded from a buffer of exactly
 * its size, so ASan reports any read past the end. */
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
        r = sig_bus_decode(copy, cut, &msg);
        if (cut < header || full.kind != SIG_BUS_DIAL) {
            wrong += r != -1;
        } else {
            wrong += r != 0 || !sig_str_eq(msg.node, full.node) || msg.thread != full.thread || msg.seq != full.seq ||
                     !sig_str_eq(msg.route, full.route) || !sig_str_eq(msg.user, full.user) ||
                     msg.payload.len != cut - header || memcmp(msg.payload.base, full.payload.base, cut - header) != 0;
        }
        free(copy);
    }
    is_int(wrong, 0, "%s: each of its %zu truncations refused%s", what, b->len,
           full.kind == SIG_BUS_DIAL ? " (or, inside the payload, a shorter payload)" : "");
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

/* the level-2 messages: exact bytes, fields, round trips, refusals */
static void test_call_messages(void)
{
    sig_buf_t b = SIG_BUF_INIT, again = SIG_BUF_INIT;
    sig_bus_msg_t msg;
    sig_bus_device_t devs[3] = {{0, 5, 2}, {3, 1234, 1}}, got[3];

    sig_bus_owner_key(&b, SIG_STRLIT("sig:"), SIG_STRLIT("default/WsService"));
    is_str(cstr(&b), "sig:o:default/WsService", "the lease key");

    sig_buf_reset(&b);
    sig_bus_encode_event(&b, SIG_STRLIT("n1"), SIG_BUS_EVENT_REQUEST, 2, 77, 2, SIG_BUS_EVENT_NAME_VERIFIED, SIG_STRLIT("1122"),
                         SIG_STRLIT("ph"), sig_str(NULL, 0), SIG_STRLIT("Ann"), SIG_STRLIT("{\"type\":\"call\"}"));
    is_str(cstr(&b), "E2 n11 2 77 2 2 4 11222 ph0 3 Ann{\"type\":\"call\"}", "EVENT: the bytes");
    is_int(sig_bus_decode(b.base, b.len, &msg), 0, "EVENT decodes");
    ok(msg.kind == SIG_BUS_EVENT && sig_str_eq(msg.node, SIG_STRLIT("n1")) && msg.event == SIG_BUS_EVENT_REQUEST && msg.thread == 2 &&
           msg.conn_id == 77 && msg.level == 2 && msg.flags == SIG_BUS_EVENT_NAME_VERIFIED && sig_str_eq(msg.user, SIG_STRLIT("1122")) &&
           sig_str_eq(msg.device, SIG_STRLIT("ph")) && msg.req_id.len == 0 && sig_str_eq(msg.name, SIG_STRLIT("Ann")) &&
           sig_str_eq(msg.payload, SIG_STRLIT("{\"type\":\"call\"}")),
       "EVENT: every field");
    sig_bus_encode_event(&again, msg.node, msg.event, msg.thread, msg.conn_id, msg.level, msg.flags, msg.user, msg.device, msg.req_id,
                         msg.name, msg.payload);
    ok(again.len == b.len && memcmp(again.base, b.base, b.len) == 0, "EVENT: the same bytes re-encoded");

    sig_buf_reset(&b);
    sig_bus_encode_output(&b, 1, 9, sig_str(NULL, 0));
    is_str(cstr(&b), "O1 9 ", "OUTPUT with no payload");
    is_int(sig_bus_decode(b.base, b.len, &msg), 0, "decodes");
    ok(msg.kind == SIG_BUS_OUTPUT && msg.thread == 1 && msg.conn_id == 9 && msg.payload.len == 0, "OUTPUT: its fields");

    sig_buf_reset(&b);
    sig_bus_encode_who(&b, SIG_STRLIT("n1"), 4, SIG_STRLIT("h/p"), SIG_STRLIT("u"));
    is_str(cstr(&b), "W2 n14 3 h/p1 u", "WHO");
    is_int(sig_bus_decode(b.base, b.len, &msg), 0, "decodes");
    ok(msg.kind == SIG_BUS_WHO && msg.seq == 4 && sig_str_eq(msg.route, SIG_STRLIT("h/p")) && sig_str_eq(msg.user, SIG_STRLIT("u")),
       "WHO: its fields");

    sig_buf_reset(&b);
    sig_bus_encode_devices(&b, SIG_STRLIT("n2"), 4, devs, 2);
    is_str(cstr(&b), "V2 n24 2 0 5 2 3 1234 1 ", "DEVICES");
    is_int(sig_bus_decode(b.base, b.len, &msg), 0, "decodes");
    ok(msg.kind == SIG_BUS_DEVICES && sig_str_eq(msg.node, SIG_STRLIT("n2")) && msg.seq == 4 && msg.delivered == 2, "DEVICES: its fields");
    is_int(sig_bus_devices_at(&msg, got, 1), 2, "the count, whatever the room");
    ok(got[0].thread == 0 && got[0].conn_id == 5 && got[0].level == 2, "the room is filled");
    sig_bus_devices_at(&msg, got, 3);
    ok(got[1].thread == 3 && got[1].conn_id == 1234 && got[1].level == 1, "every entry");

    /* refusals: each leaves the message zeroed */
    {
        static const char *bad[] = {
            "E2 n13 2 77 2 0 1 u0 0 0 ",       /* event 3 */
            "E2 n11 2 77 0 0 1 u0 0 0 ",       /* level 0 */
            "E2 n11 2 77 3 0 1 u0 0 0 ",       /* level 3 */
            "E2 n11 2 77 2 4 1 u0 0 0 ",       /* an unknown flag */
            "E2 n11 2 77 2 0 0 0 0 0 ",        /* no user */
            "E2 n11 2 77 2 0 1 u0 0 5 ab",     /* a name past the end */
            "O1 ",                             /* no conn_id */
            "W2 n14 3 h/p1 ux",                /* bytes after a WHO */
            "W2 n14 0 1 u",                    /* an empty route */
            "V2 n24 3 0 5 2 3 1234 1 ",        /* three said, two given */
            "V2 n24 1 0 5 2 3 1234 1 ",        /* one said, two given */
            "V2 n24 1 0 5 3 ",                 /* level 3 */
            "V2 n24 18446744073709551615 ",    /* a huge count, no entries */
        };
        size_t i;
        for (i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
            ok(sig_bus_decode(bad[i], strlen(bad[i]), &msg) == -1 && is_zero(&msg), "refused: %s", bad[i]);
    }
    {
        sig_buf_t big = SIG_BUF_INIT;
        char device[SIG_BUS_DEVICE_ID_MAX + 1];
        memset(device, 'd', sizeof(device));
        sig_bus_encode_event(&big, SIG_STRLIT("n1"), 0, 0, 1, 2, 0, SIG_STRLIT("u"), sig_str(device, sizeof(device)), sig_str(NULL, 0),
                             sig_str(NULL, 0), sig_str(NULL, 0));
        ok(sig_bus_decode(big.base, big.len, &msg) == -1 && is_zero(&msg), "refused: a deviceId of 65 bytes");
        sig_buf_reset(&big);
        sig_bus_encode_event(&big, SIG_STRLIT("n1"), 0, 0, 1, 2, 0, SIG_STRLIT("u"), sig_str(device, sizeof(device) - 1),
                             sig_str(NULL, 0), sig_str(NULL, 0), sig_str(NULL, 0));
        is_int(sig_bus_decode(big.base, big.len, &msg), 0, "a deviceId of 64 bytes decodes");
        sig_buf_dispose(&big);
    }
    sig_buf_dispose(&b);
    sig_buf_dispose(&again);
}

int main(void)
{
    test_call_messages();
    test_channels();
    test_example();
    test_round_trips();
    test_malformed();
    test_truncations();
    test_no_input();
    return done_testing();
}
