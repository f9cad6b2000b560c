/*
 * fuzz_bus.c: libFuzzer target for the decoder of the backplane messages (handler/core/sig_bus.c), which reads what
 * other processes wrote to Redis.
 *
 * The input is one message, decoded from a buffer of exactly its size, so ASan sees any read past `len`.
 * Checks (a failure abort()s, which libFuzzer reports as a crash):
 * - a refusal leaves the message zeroed;
 * - an accepted message has a known kind, its strings lie inside the input, and each is within its limit (node
 *   1..SIG_BUS_NODE_ID_MAX bytes, route 1..SIG_BUS_ROUTE_MAX, user 1..SIG_USER_ID_MAX); the fields its kind does not
 *   have are zero; a DIAL's payload ends where the input ends;
 * - the encoding is unique: re-encoding the decoded fields with sig_bus_encode_*() gives back the input, byte for byte;
 * - the decoder allocates nothing and the encoders free everything (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_bus.h"
#include "core/sig_registry.h"
#include "fuzz_check.h"

/* 1 if the slice lies inside [base, base + len) (an empty one may point just past the end) */
static int inside(sig_str_t s, const char *base, size_t len)
{
    return s.base >= base && s.len <= len && (size_t)(s.base - base) <= len - s.len;
}

static int is_empty(sig_str_t s)
{
    return s.base == NULL && s.len == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const sig_bus_msg_t zero;
    char *input = malloc(size != 0 ? size : 1);
    sig_buf_t again = SIG_BUF_INIT;
    sig_bus_msg_t msg;

    if (input == NULL)
        abort();
    if (size != 0)
        memcpy(input, data, size);
    memset(&msg, 0xa5, sizeof(msg));

    if (sig_bus_decode(input, size, &msg) != 0) {
        FUZZ_CHECK(memcmp(&msg, &zero, sizeof(msg)) == 0, "a refused message was not zeroed");
        goto Exit;
    }
    FUZZ_CHECK(size != 0 && (uint8_t)msg.kind == data[0], "the kind is not the first byte");
    switch (msg.kind) {
    case SIG_BUS_DIAL:
        FUZZ_CHECK(inside(msg.node, input, size) && inside(msg.route, input, size) && inside(msg.user, input, size) &&
                       inside(msg.payload, input, size),
                   "a DIAL string points outside the input");
        FUZZ_CHECK(msg.node.len >= 1 && msg.node.len <= SIG_BUS_NODE_ID_MAX, "DIAL origin length out of bounds");
        FUZZ_CHECK(msg.route.len >= 1 && msg.route.len <= SIG_BUS_ROUTE_MAX, "DIAL route length out of bounds");
        FUZZ_CHECK(msg.user.len >= 1 && msg.user.len <= SIG_USER_ID_MAX, "DIAL user length out of bounds");
        FUZZ_CHECK(msg.payload.base + msg.payload.len == input + size, "the DIAL payload does not end the input");
        FUZZ_CHECK(msg.delivered == 0, "a DIAL with a delivered count");
        sig_bus_encode_dial(&again, msg.node, msg.thread, msg.seq, msg.route, msg.user, msg.payload);
        break;
    case SIG_BUS_RESULT:
        FUZZ_CHECK(is_empty(msg.node) && is_empty(msg.route) && is_empty(msg.user) && is_empty(msg.payload),
                   "a RESULT with strings");
        sig_bus_encode_result(&again, msg.thread, msg.seq, msg.delivered);
        break;
    case SIG_BUS_PROBE:
        FUZZ_CHECK(inside(msg.node, input, size), "the PROBE node points outside the input");
        FUZZ_CHECK(msg.node.len >= 1 && msg.node.len <= SIG_BUS_NODE_ID_MAX, "PROBE node length out of bounds");
        FUZZ_CHECK(msg.thread == 0 && msg.delivered == 0 && is_empty(msg.route) && is_empty(msg.user) &&
                       is_empty(msg.payload),
                   "a PROBE with fields it does not have");
        sig_bus_encode_probe(&again, msg.node, msg.seq);
        break;
    case SIG_BUS_EVENT:
        FUZZ_CHECK(inside(msg.node, input, size) && inside(msg.user, input, size) && inside(msg.payload, input, size),
                   "an EVENT string points outside the input");
        FUZZ_CHECK(msg.event <= SIG_BUS_EVENT_LOST && (msg.level == 1 || msg.level == 2) &&
                       (msg.flags & ~(SIG_BUS_EVENT_CLEAN | SIG_BUS_EVENT_NAME_VERIFIED)) == 0,
                   "an EVENT number out of bounds");
        FUZZ_CHECK(msg.device.len <= SIG_BUS_DEVICE_ID_MAX && msg.req_id.len <= SIG_BUS_FIELD_MAX && msg.name.len <= SIG_BUS_FIELD_MAX,
                   "an EVENT string too long");
        sig_bus_encode_event(&again, msg.node, msg.event, msg.thread, msg.conn_id, msg.level, msg.flags, msg.user, msg.device,
                             msg.req_id, msg.name, msg.payload);
        break;
    case SIG_BUS_OUTPUT:
        FUZZ_CHECK(msg.payload.base + msg.payload.len == input + size, "the OUTPUT payload does not end the input");
        sig_bus_encode_output(&again, msg.thread, msg.conn_id, msg.payload);
        break;
    case SIG_BUS_WHO:
        FUZZ_CHECK(inside(msg.node, input, size) && inside(msg.route, input, size) && inside(msg.user, input, size),
                   "a WHO string points outside the input");
        sig_bus_encode_who(&again, msg.node, msg.seq, msg.route, msg.user);
        break;
    case SIG_BUS_DEVICES: {
        size_t n = (size_t)msg.delivered;
        sig_bus_device_t *devs;
        FUZZ_CHECK(msg.delivered <= size, "more DEVICES entries than bytes");
        devs = malloc(sizeof(*devs) * (n + 1));
        sig_bus_devices_at(&msg, devs, n);
        sig_bus_encode_devices(&again, msg.node, msg.seq, devs, n);
        free(devs);
    } break;
    default:
        FUZZ_CHECK(0, "accepted an unknown kind");
    }
    FUZZ_CHECK(again.len == size && memcmp(again.base, input, size) == 0, "re-encoding does not give the input back");

Exit:
    sig_buf_dispose(&again);
    free(input);
    return 0;
}
