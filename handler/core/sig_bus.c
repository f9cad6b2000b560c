/*
 * sig_bus.c: channel names and the messages of the Redis backplane (see sig_bus.h).
 *
 * Length-prefixed fields rather than JSON or separators: a payload or an id may hold any byte, and nothing needs
 * escaping or a parser. The decoder is a cursor over the input that only moves forward and checks what is left before
 * every read, so no field can make it read past the end.
 */
#include "core/sig_bus.h"
#include "core/sig_registry.h" /* SIG_USER_ID_MAX */

/* the most digits a number may have: UINT64_MAX is 20 digits */
#define NUM_DIGITS_MAX 20

/* ---------------------------------------------------------------------------------------------------------------------
 * channel names
 * -------------------------------------------------------------------------------------------------------------------*/

void sig_bus_user_channel(sig_buf_t *out, sig_str_t prefix, sig_str_t route, sig_str_t user_id)
{
    sig_buf_append(out, prefix.base, prefix.len);
    sig_buf_append(out, "u:", 2);
    sig_buf_append(out, route.base, route.len);
    sig_buf_append_char(out, ':');
    sig_buf_append(out, user_id.base, user_id.len);
}

void sig_bus_node_channel(sig_buf_t *out, sig_str_t prefix, sig_str_t node_id)
{
    sig_buf_append(out, prefix.base, prefix.len);
    sig_buf_append(out, "n:", 2);
    sig_buf_append(out, node_id.base, node_id.len);
}

void sig_bus_owner_key(sig_buf_t *out, sig_str_t prefix, sig_str_t route)
{
    sig_buf_append(out, prefix.base, prefix.len);
    sig_buf_append(out, "o:", 2);
    sig_buf_append(out, route.base, route.len);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * encoding
 * -------------------------------------------------------------------------------------------------------------------*/

/* num: the decimal digits of v, then a space */
static void append_num(sig_buf_t *out, uint64_t v)
{
    char digits[NUM_DIGITS_MAX + 1];
    size_t n = sizeof(digits);

    digits[--n] = ' ';
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    sig_buf_append(out, digits + n, sizeof(digits) - n);
}

/* str: the length as a num, then the bytes */
static void append_str(sig_buf_t *out, sig_str_t s)
{
    append_num(out, s.len);
    sig_buf_append(out, s.base, s.len);
}

void sig_bus_encode_dial(sig_buf_t *out, sig_str_t origin, uint32_t thread, uint64_t seq, sig_str_t route,
                         sig_str_t user, sig_str_t payload)
{
    sig_buf_append_char(out, SIG_BUS_DIAL);
    append_str(out, origin);
    append_num(out, thread);
    append_num(out, seq);
    append_str(out, route);
    append_str(out, user);
    sig_buf_append(out, payload.base, payload.len);
}

void sig_bus_encode_result(sig_buf_t *out, uint32_t thread, uint64_t seq, uint64_t delivered)
{
    sig_buf_append_char(out, SIG_BUS_RESULT);
    append_num(out, thread);
    append_num(out, seq);
    append_num(out, delivered);
}

void sig_bus_encode_probe(sig_buf_t *out, sig_str_t node, uint64_t seq)
{
    sig_buf_append_char(out, SIG_BUS_PROBE);
    append_str(out, node);
    append_num(out, seq);
}

void sig_bus_encode_event(sig_buf_t *out, sig_str_t origin, unsigned event, uint32_t thread, uint64_t conn_id, unsigned level,
                          unsigned flags, sig_str_t user, sig_str_t device, sig_str_t req_id, sig_str_t name, sig_str_t json)
{
    sig_buf_append_char(out, SIG_BUS_EVENT);
    append_str(out, origin);
    append_num(out, event);
    append_num(out, thread);
    append_num(out, conn_id);
    append_num(out, level);
    append_num(out, flags);
    append_str(out, user);
    append_str(out, device);
    append_str(out, req_id);
    append_str(out, name);
    sig_buf_append(out, json.base, json.len);
}

void sig_bus_encode_output(sig_buf_t *out, uint32_t thread, uint64_t conn_id, sig_str_t payload)
{
    sig_buf_append_char(out, SIG_BUS_OUTPUT);
    append_num(out, thread);
    append_num(out, conn_id);
    sig_buf_append(out, payload.base, payload.len);
}

void sig_bus_encode_who(sig_buf_t *out, sig_str_t origin, uint64_t seq, sig_str_t route, sig_str_t user)
{
    sig_buf_append_char(out, SIG_BUS_WHO);
    append_str(out, origin);
    append_num(out, seq);
    append_str(out, route);
    append_str(out, user);
}

void sig_bus_encode_devices(sig_buf_t *out, sig_str_t node, uint64_t seq, const sig_bus_device_t *devices, size_t n)
{
    size_t i;
    sig_buf_append_char(out, SIG_BUS_DEVICES);
    append_str(out, node);
    append_num(out, seq);
    append_num(out, n);
    for (i = 0; i != n; ++i) {
        append_num(out, devices[i].thread);
        append_num(out, devices[i].conn_id);
        append_num(out, (uint64_t)devices[i].level);
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * decoding
 * -------------------------------------------------------------------------------------------------------------------*/

struct st_cursor_t {
    const char *p, *end;
};

/* Reads a num no greater than `max` into *v. Returns 0, or -1 when the bytes left do not start with one. */
static int read_num(struct st_cursor_t *c, uint64_t max, uint64_t *v)
{
    const char *start = c->p;
    uint64_t n = 0;

    while (c->p != c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (c->p - start == NUM_DIGITS_MAX)
            return -1;
        if (d > max || n > (max - d) / 10) /* n * 10 + d > max, without overflowing (max may be below 9) */
            return -1;
        n = n * 10 + d;
        ++c->p;
    }
    if (c->p == start || c->p == c->end || *c->p != ' ')
        return -1; /* no digit, or the digits do not end with the space */
    if (*start == '0' && c->p - start != 1)
        return -1; /* a leading zero: "0" alone is the only way to write 0, so the encoding stays unique */
    ++c->p;
    *v = n;
    return 0;
}

/* Reads a str of 0..max bytes into *s. Returns 0 or -1. */
static int read_str0(struct st_cursor_t *c, size_t max, sig_str_t *s)
{
    uint64_t len;

    if (read_num(c, max, &len) != 0)
        return -1;
    if (len > (uint64_t)(c->end - c->p))
        return -1; /* longer than what is left */
    *s = sig_str(c->p, (size_t)len);
    c->p += len;
    return 0;
}

/* Reads a str of 1..max bytes into *s. Returns 0 or -1. */
static int read_str(struct st_cursor_t *c, size_t max, sig_str_t *s)
{
    return read_str0(c, max, s) != 0 || s->len == 0 ? -1 : 0;
}

static int decode_dial(struct st_cursor_t *c, sig_bus_msg_t *msg)
{
    uint64_t thread;

    if (read_str(c, SIG_BUS_NODE_ID_MAX, &msg->node) != 0 || read_num(c, UINT32_MAX, &thread) != 0 ||
        read_num(c, UINT64_MAX, &msg->seq) != 0 || read_str(c, SIG_BUS_ROUTE_MAX, &msg->route) != 0 ||
        read_str(c, SIG_USER_ID_MAX, &msg->user) != 0)
        return -1;
    msg->thread = (uint32_t)thread;
    msg->payload = sig_str(c->p, (size_t)(c->end - c->p));
    c->p = c->end;
    return 0;
}

static int decode_result(struct st_cursor_t *c, sig_bus_msg_t *msg)
{
    uint64_t thread;

    if (read_num(c, UINT32_MAX, &thread) != 0 || read_num(c, UINT64_MAX, &msg->seq) != 0 ||
        read_num(c, UINT64_MAX, &msg->delivered) != 0)
        return -1;
    msg->thread = (uint32_t)thread;
    return 0;
}

static int decode_probe(struct st_cursor_t *c, sig_bus_msg_t *msg)
{
    return read_str(c, SIG_BUS_NODE_ID_MAX, &msg->node) != 0 || read_num(c, UINT64_MAX, &msg->seq) != 0 ? -1 : 0;
}

static int decode_event(struct st_cursor_t *c, sig_bus_msg_t *msg)
{
    uint64_t event, thread, level, flags;

    if (read_str(c, SIG_BUS_NODE_ID_MAX, &msg->node) != 0 || read_num(c, SIG_BUS_EVENT_LOST, &event) != 0 ||
        read_num(c, UINT32_MAX, &thread) != 0 || read_num(c, UINT64_MAX, &msg->conn_id) != 0 || read_num(c, 2, &level) != 0 ||
        level == 0 || read_num(c, SIG_BUS_EVENT_CLEAN | SIG_BUS_EVENT_NAME_VERIFIED, &flags) != 0 ||
        read_str(c, SIG_USER_ID_MAX, &msg->user) != 0 || read_str0(c, SIG_BUS_DEVICE_ID_MAX, &msg->device) != 0 ||
        read_str0(c, SIG_BUS_FIELD_MAX, &msg->req_id) != 0 || read_str0(c, SIG_BUS_FIELD_MAX, &msg->name) != 0)
        return -1;
    msg->event = (unsigned)event;
    msg->thread = (uint32_t)thread;
    msg->level = (unsigned)level;
    msg->flags = (unsigned)flags; /* 0..3: both bits are known ones */
    msg->payload = sig_str(c->p, (size_t)(c->end - c->p));
    c->p = c->end;
    return 0;
}

static int decode_output(struct st_cursor_t *c, sig_bus_msg_t *msg)
{
    uint64_t thread;

    if (read_num(c, UINT32_MAX, &thread) != 0 || read_num(c, UINT64_MAX, &msg->conn_id) != 0)
        return -1;
    msg->thread = (uint32_t)thread;
    msg->payload = sig_str(c->p, (size_t)(c->end - c->p));
    c->p = c->end;
    return 0;
}

static int decode_who(struct st_cursor_t *c, sig_bus_msg_t *msg)
{
    return read_str(c, SIG_BUS_NODE_ID_MAX, &msg->node) != 0 || read_num(c, UINT64_MAX, &msg->seq) != 0 ||
                   read_str(c, SIG_BUS_ROUTE_MAX, &msg->route) != 0 || read_str(c, SIG_USER_ID_MAX, &msg->user) != 0
               ? -1
               : 0;
}

/* One entry of a DEVICES list. */
static int read_device(struct st_cursor_t *c, sig_bus_device_t *d)
{
    uint64_t thread, level;

    if (read_num(c, UINT32_MAX, &thread) != 0 || read_num(c, UINT64_MAX, &d->conn_id) != 0 || read_num(c, 2, &level) != 0 ||
        level == 0)
        return -1;
    d->thread = (uint32_t)thread;
    d->level = (int)level;
    return 0;
}

static int decode_devices(struct st_cursor_t *c, sig_bus_msg_t *msg)
{
    sig_bus_device_t d;
    uint64_t i;

    if (read_str(c, SIG_BUS_NODE_ID_MAX, &msg->node) != 0 || read_num(c, UINT64_MAX, &msg->seq) != 0 ||
        read_num(c, UINT64_MAX, &msg->delivered) != 0)
        return -1;
    msg->devices.base = c->p;
    for (i = 0; i != msg->delivered; ++i) /* each entry is at least 6 bytes: a huge count ends at the input's end */
        if (read_device(c, &d) != 0)
            return -1;
    msg->devices.len = (size_t)(c->p - msg->devices.base);
    return 0;
}

size_t sig_bus_devices_at(const sig_bus_msg_t *msg, sig_bus_device_t *out, size_t cap)
{
    struct st_cursor_t c = {msg->devices.base, msg->devices.base + msg->devices.len};
    size_t i;

    for (i = 0; i != cap && i != msg->delivered; ++i)
        read_device(&c, out + i);
    return (size_t)msg->delivered;
}

int sig_bus_decode(const char *bytes, size_t len, sig_bus_msg_t *msg)
{
    struct st_cursor_t c;
    int ret;

    memset(msg, 0, sizeof(*msg));
    if (bytes == NULL || len == 0)
        return -1;
    c.p = bytes + 1;
    c.end = bytes + len;
    switch (bytes[0]) {
    case SIG_BUS_DIAL:
        ret = decode_dial(&c, msg);
        break;
    case SIG_BUS_RESULT:
        ret = decode_result(&c, msg);
        break;
    case SIG_BUS_PROBE:
        ret = decode_probe(&c, msg);
        break;
    case SIG_BUS_EVENT:
        ret = decode_event(&c, msg);
        break;
    case SIG_BUS_OUTPUT:
        ret = decode_output(&c, msg);
        break;
    case SIG_BUS_WHO:
        ret = decode_who(&c, msg);
        break;
    case SIG_BUS_DEVICES:
        ret = decode_devices(&c, msg);
        break;
    default:
        return -1;
    }
    if (ret != 0 || c.p != c.end) {
        memset(msg, 0, sizeof(*msg)); /* no half-decoded fields: a refused message gives nothing */
        return -1;
    }
    msg->kind = (sig_bus_kind_t)bytes[0];
    return 0;
}
