/*
 * fuzz_bus.c: libFuzzer target for the decoder of the backplane messages (handler/core/sig_bus.c), which reads what
 * other processes wrote to Redis.
 *
 * The input is one message, decoded from a buffer of exactly its size, so ASan sees any read past `len`.
 * Checks (a failure abort()s, which libFuzzer reports as a crash):
 * - a refusal leaves the message zeroed;
 * - an accepted message has a known kind, its strings lie inside the input, and each is within its limit (node
 *   1..SIG_BUS_NODE_ID_MAX bytes, route 1..SIG_BUS_ROUTE_MAX, user 1..SIG_USER_ID_MAX); the fields its kind does not
 *   have are zero; a DIAL's payload, an EVENT's JSON and an OUTPUT's payload end where the input ends; an EVENT's
 *   event, level and flags are known values and its device, req_id and name within their limits; a DEVICES list is
 *   the rest of the input, sig_bus_devices_at() gives its count, and every entry's level is 1 or 2;
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
        FUZZ_CHECK(inside(msg.node, input, size) && inside(msg.user, input, size) && inside(msg.payload, input, size) &&
                       (msg.device.len == 0 || inside(msg.device, input, size)) &&
                       (msg.req_id.len == 0 || inside(msg.req_id, input, size)) &&
                       (msg.name.len == 0 || inside(msg.name, input, size)),
                   "an EVENT string points outside the input");
        FUZZ_CHECK(msg.event <= SIG_BUS_EVENT_LOST && (msg.level == 1 || msg.level == 2) &&
                       (msg.flags & ~(SIG_BUS_EVENT_CLEAN | SIG_BUS_EVENT_NAME_VERIFIED)) == 0,
                   "an EVENT number out of bounds");
        FUZZ_CHECK(msg.node.len >= 1 && msg.node.len <= SIG_BUS_NODE_ID_MAX && msg.user.len >= 1 &&
                       msg.user.len <= SIG_USER_ID_MAX,
                   "EVENT origin or user length out of bounds");
        FUZZ_CHECK(msg.device.len <= SIG_BUS_DEVICE_ID_MAX && msg.req_id.len <= SIG_BUS_FIELD_MAX && msg.name.len <= SIG_BUS_FIELD_MAX,
                   "an EVENT string too long");
        FUZZ_CHECK(msg.payload.base + msg.payload.len == input + size, "the EVENT JSON does not end the input");
        FUZZ_CHECK(msg.seq == 0 && msg.delivered == 0 && is_empty(msg.route) && is_empty(msg.devices),
                   "an EVENT with fields it does not have");
        sig_bus_encode_event(&again, msg.node, msg.event, msg.thread, msg.conn_id, msg.level, msg.flags, msg.user, msg.device,
                             msg.req_id, msg.name, msg.payload);
        break;
    case SIG_BUS_OUTPUT:
        FUZZ_CHECK(inside(msg.payload, input, size) && msg.payload.base + msg.payload.len == input + size,
                   "the OUTPUT payload does not end the input");
        FUZZ_CHECK(is_empty(msg.node) && is_empty(msg.route) && is_empty(msg.user) && is_empty(msg.device) &&
                       is_empty(msg.req_id) && is_empty(msg.name) && is_empty(msg.devices) && msg.seq == 0 &&
                       msg.delivered == 0 && msg.event == 0 && msg.level == 0 && msg.flags == 0,
                   "an OUTPUT with fields it does not have");
        sig_bus_encode_output(&again, msg.thread, msg.conn_id, msg.payload);
        break;
    case SIG_BUS_WHO:
        FUZZ_CHECK(inside(msg.node, input, size) && inside(msg.route, input, size) && inside(msg.user, input, size),
                   "a WHO string points outside the input");
        FUZZ_CHECK(msg.node.len >= 1 && msg.node.len <= SIG_BUS_NODE_ID_MAX && msg.route.len >= 1 &&
                       msg.route.len <= SIG_BUS_ROUTE_MAX && msg.user.len >= 1 && msg.user.len <= SIG_USER_ID_MAX,
                   "WHO origin, route or user length out of bounds");
        FUZZ_CHECK(msg.thread == 0 && msg.conn_id == 0 && msg.delivered == 0 && is_empty(msg.payload) &&
                       is_empty(msg.devices) && is_empty(msg.device),
                   "a WHO with fields it does not have");
        sig_bus_encode_who(&again, msg.node, msg.seq, msg.route, msg.user);
        break;
    case SIG_BUS_DEVICES: {
        size_t n = (size_t)msg.delivered, i;
        sig_bus_device_t *devs;
        FUZZ_CHECK(msg.delivered <= size, "more DEVICES entries than bytes");
        FUZZ_CHECK(inside(msg.node, input, size) && msg.node.len >= 1 && msg.node.len <= SIG_BUS_NODE_ID_MAX,
                   "DEVICES node out of the input or its bounds");
        FUZZ_CHECK(inside(msg.devices, input, size) && msg.devices.base + msg.devices.len == input + size &&
                       (n == 0) == (msg.devices.len == 0),
                   "the DEVICES list is not the rest of the input");
        FUZZ_CHECK(msg.thread == 0 && msg.conn_id == 0 && is_empty(msg.route) && is_empty(msg.user) &&
                       is_empty(msg.payload) && msg.level == 0,
                   "a DEVICES with fields it does not have");
        devs = malloc(sizeof(*devs) * (n + 1));
        if (devs == NULL)
            abort();
        FUZZ_CHECK(sig_bus_devices_at(&msg, devs, n) == n, "devices_at does not give the count");
        for (i = 0; i != n; ++i)
            FUZZ_CHECK(devs[i].level == 1 || devs[i].level == 2, "a DEVICES entry with a level not 1 or 2");
        if (n != 0)
            FUZZ_CHECK(sig_bus_devices_at(&msg, devs, n - 1) == n, "devices_at with less room does not give the count");
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
