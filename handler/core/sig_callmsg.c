/*
 * sig_callmsg.c: the level-2 codec (sig_callmsg.h). Decoding uses yajl's callback parser like level 1
 * (core/sig_protocol.c), and keeps the byte span of the "data" value (yajl reports how far it has read
 * at each callback) so a call_signal's payload is relayed exactly as the client wrote it.
 */
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "core/sig_callmsg.h"
#include "core/sig_json.h"
#include "core/sig_protocol.h"
#include "core/sig_registry.h" /* SIG_USER_ID_MAX */

#define APPEND_LIT(buf, lit) sig_buf_append((buf), (lit), sizeof(lit) - 1)

static const struct {
    sig_str_t name;
    sig_call_req_type_t type;
} req_types[] = {{SIG_STRLIT("call"), SIG_CALL_REQ_CALL},         {SIG_STRLIT("call_ringing"), SIG_CALL_REQ_RINGING},
                 {SIG_STRLIT("call_accept"), SIG_CALL_REQ_ACCEPT}, {SIG_STRLIT("call_reject"), SIG_CALL_REQ_REJECT},
                 {SIG_STRLIT("call_hangup"), SIG_CALL_REQ_HANGUP}, {SIG_STRLIT("call_signal"), SIG_CALL_REQ_SIGNAL},
                 {SIG_STRLIT("call_resume"), SIG_CALL_REQ_RESUME}};
#define NUM_REQ_TYPES (sizeof(req_types) / sizeof(req_types[0]))

sig_call_req_type_t sig_callmsg_request_type(sig_str_t type)
{
    size_t i;
    for (i = 0; i != NUM_REQ_TYPES; ++i)
        if (sig_str_eq(type, req_types[i].name))
            return req_types[i].type;
    return 0;
}

int sig_callmsg_is_call_type(sig_str_t type)
{
    return sig_callmsg_request_type(type) != 0;
}

/* ---- decoding ---- */

/* the keys we know; the text fields first, in the order of `texts` in sig_callmsg_decode */
enum { K_CALL_ID, K_RECEIVER, K_MEDIA, K_NAME, K_FIELD1, K_FIELD2, K_FIELD3, K_REASON, K_KIND, NUM_TEXTS, K_TYPE = NUM_TEXTS, K_ID, K_DATA, K_UNKNOWN };

static const sig_str_t key_names[] = {
    [K_CALL_ID] = SIG_STRLIT("callId"), [K_RECEIVER] = SIG_STRLIT("receiverUserId"), [K_MEDIA] = SIG_STRLIT("media"),
    [K_NAME] = SIG_STRLIT("sponsorUserName"), [K_FIELD1] = SIG_STRLIT("field1"), [K_FIELD2] = SIG_STRLIT("field2"),
    [K_FIELD3] = SIG_STRLIT("field3"), [K_REASON] = SIG_STRLIT("reason"), [K_KIND] = SIG_STRLIT("kind"),
    [K_TYPE] = SIG_STRLIT("type"), [K_ID] = SIG_STRLIT("id"), [K_DATA] = SIG_STRLIT("data"),
};

enum { V_NULL, V_BOOL, V_NUMBER, V_STRING, V_CONTAINER };

struct st_slice_t {
    size_t off, len; /* into scratch (texts) or into the input (data) */
};

struct st_decoder_t {
    const char *json;
    size_t len;
    yajl_handle parser;
    sig_buf_t *scratch;
    size_t depth;
    int key;
    int not_object, bad_field, type_state; /* type_state: 0 absent, 1 known, 2 unknown, 3 wrong kind */
    sig_call_req_type_t type;
    unsigned present; /* bit per text field, and 1 << K_DATA */
    struct st_slice_t text[NUM_TEXTS], id, data;
    size_t data_start; /* while the data value is a container being read: where it began */
    int in_data;
};

static int lookup_key(const char *s, size_t len)
{
    int i;
    for (i = 0; i != K_UNKNOWN; ++i)
        if (sig_str_eq(key_names[i], sig_str(s, len)))
            return i;
    return K_UNKNOWN;
}

static struct st_slice_t store(struct st_decoder_t *d, const char *s, size_t len)
{
    struct st_slice_t slice = {d->scratch->len, len};
    sig_buf_append(d->scratch, s, len);
    sig_buf_append_char(d->scratch, '\0');
    return slice;
}

/* Where the value after the current key starts: past the blanks and the colon yajl has not consumed yet. */
static size_t value_start(struct st_decoder_t *d, size_t after_key)
{
    size_t i = after_key;
    while (i < d->len && (d->json[i] == ' ' || d->json[i] == '\t' || d->json[i] == '\r' || d->json[i] == '\n' || d->json[i] == '\f' ||
                          d->json[i] == '\v' || d->json[i] == ':')) /* what yajl skips */
        ++i;
    return i;
}

static void on_text(struct st_decoder_t *d, int kind, const char *s, size_t len)
{
    int field = d->key, numbers_ok = field == K_RECEIVER || field == K_NAME || field == K_FIELD1 || field == K_FIELD2 ||
                                     field == K_FIELD3;
    if (kind == V_NULL) {
        d->present &= ~(1u << field);
        return;
    }
    if (!(kind == V_STRING || (kind == V_NUMBER && numbers_ok))) {
        d->bad_field = 1;
        return;
    }
    if (kind == V_NUMBER && field == K_RECEIVER && (memchr(s, '.', len) != NULL || memchr(s, 'e', len) != NULL || memchr(s, 'E', len) != NULL)) {
        d->bad_field = 1; /* as level 1: a user id given as a number is an integer's text */
        return;
    }
    d->text[field] = store(d, s, len);
    d->present |= 1u << field;
}

static void on_value(struct st_decoder_t *d, int kind, const char *s, size_t len)
{
    size_t i;
    if (d->not_object)
        return;
    if (d->depth == 0) {
        d->not_object = 1;
        return;
    }
    if (d->depth != 1)
        return;
    switch (d->key) {
    case K_UNKNOWN:
        break;
    case K_TYPE:
        if (kind == V_NULL) {
            d->type_state = 0;
        } else if (kind != V_STRING) {
            d->type_state = 3;
        } else {
            d->type_state = 2;
            for (i = 0; i != NUM_REQ_TYPES; ++i)
                if (sig_str_eq(sig_str(s, len), req_types[i].name)) {
                    d->type_state = 1;
                    d->type = req_types[i].type;
                }
        }
        break;
    case K_ID:
        if (kind == V_NUMBER) {
            d->id = store(d, s, len);
        } else if (kind == V_STRING) {
            size_t off = d->scratch->len;
            sig_json_append_string(d->scratch, sig_str(s, len));
            d->id = (struct st_slice_t){off, d->scratch->len - off};
            sig_buf_append_char(d->scratch, '\0');
        } else {
            d->id = (struct st_slice_t){0, 0};
            d->bad_field = 1;
        }
        break;
    case K_DATA:
        if (kind == V_NULL) {
            d->present &= ~(1u << K_DATA);
        } else if (kind != V_CONTAINER) { /* a scalar: its whole text ends where yajl is now */
            size_t end = yajl_get_bytes_consumed(d->parser);
            d->data.off = d->data_start;
            d->data.len = end - d->data_start;
            d->present |= 1u << K_DATA;
        }
        break;
    default:
        on_text(d, kind, s, len);
        break;
    }
}

static int cb_null(void *ctx)
{
    on_value(ctx, V_NULL, NULL, 0);
    return 1;
}

static int cb_boolean(void *ctx, int value)
{
    (void)value;
    on_value(ctx, V_BOOL, NULL, 0);
    return 1;
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    on_value(ctx, V_NUMBER, s, len);
    return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    on_value(ctx, V_STRING, (const char *)s, len);
    return 1;
}

static int cb_start(void *ctx)
{
    struct st_decoder_t *d = ctx;
    if (d->depth != 0) {
        on_value(d, V_CONTAINER, NULL, 0);
        if (d->depth == 1 && d->key == K_DATA && !d->not_object)
            d->in_data = 1;
    }
    ++d->depth;
    return 1;
}

static int cb_start_array(void *ctx)
{
    struct st_decoder_t *d = ctx;
    if (d->depth == 0)
        d->not_object = 1; /* the top value is an array */
    return cb_start(ctx);
}

static int cb_end(void *ctx)
{
    struct st_decoder_t *d = ctx;
    if (--d->depth == 1 && d->in_data) { /* the data container closed: its text ends here */
        d->data.off = d->data_start;
        d->data.len = yajl_get_bytes_consumed(d->parser) - d->data_start;
        d->present |= 1u << K_DATA;
        d->in_data = 0;
    }
    return 1;
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct st_decoder_t *d = ctx;
    if (d->depth == 1 && !d->not_object) {
        d->key = lookup_key((const char *)s, len);
        if (d->key == K_DATA)
            d->data_start = value_start(d, yajl_get_bytes_consumed(d->parser));
    }
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end,
};

static int check(const struct st_decoder_t *d)
{
    int required;
    if (d->not_object)
        return SIG_ERR_NOT_OBJECT;
    if (d->type_state == 3)
        return SIG_ERR_BAD_FIELD;
    if (d->type_state == 0)
        return SIG_ERR_MISSING_TYPE;
    if (d->type_state == 2)
        return SIG_ERR_UNKNOWN_TYPE;
    if (d->bad_field)
        return SIG_ERR_BAD_FIELD;
    required = d->type == SIG_CALL_REQ_CALL ? K_RECEIVER : d->type == SIG_CALL_REQ_SIGNAL ? K_DATA : K_CALL_ID;
    if ((d->present & (1u << required)) == 0 || (d->type == SIG_CALL_REQ_SIGNAL && (d->present & (1u << K_CALL_ID)) == 0))
        return SIG_ERR_MISSING_FIELD;
    if ((d->present & (1u << K_RECEIVER)) != 0 && (d->text[K_RECEIVER].len == 0 || d->text[K_RECEIVER].len > SIG_USER_ID_MAX))
        return SIG_ERR_BAD_ID;
    return 0;
}

int sig_callmsg_decode(const char *json, size_t len, sig_call_request_t *req, sig_buf_t *scratch)
{
    struct st_decoder_t d;
    sig_json_arena_t arena; /* no malloc for a message of a few KB: an SDP offer parses on the stack */
    yajl_alloc_funcs funcs;
    sig_str_t *texts[NUM_TEXTS] = {&req->call_id, &req->receiver_user_id, &req->media, &req->sponsor_user_name,
                                   &req->field1,  &req->field2,           &req->field3, &req->reason,
                                   &req->kind};
    int ret, i;

    memset(&d, 0, sizeof(d));
    memset(req, 0, sizeof(*req));
    d.json = json;
    d.len = len;
    d.scratch = scratch;
    d.key = K_UNKNOWN;
    sig_buf_reset(scratch);
    sig_json_arena_init(&arena, &funcs);
    if ((d.parser = yajl_alloc(&callbacks, &funcs, &d)) == NULL)
        sig_fatal("no memory");
    /* yajl's own UTF-8 check lets overlong forms and surrogates through (as in sig_protocol.c) */
    if (!sig_utf8_is_valid(json, len) || (len != 0 && yajl_parse(d.parser, (const unsigned char *)json, len) != yajl_status_ok) ||
        yajl_complete_parse(d.parser) != yajl_status_ok || sig_json_check_escapes(json, len, 1) != 0)
        ret = SIG_ERR_BAD_JSON;
    else
        ret = check(&d);
    yajl_free(d.parser);
    if (d.type_state == 1)
        req->type = d.type;
    for (i = 0; i != NUM_TEXTS; ++i)
        if ((d.present & (1u << i)) != 0)
            *texts[i] = sig_str(scratch->base + d.text[i].off, d.text[i].len);
    req->fields_present = ((d.present >> K_FIELD1) & 1u) | (((d.present >> K_FIELD2) & 1u) << 1) | (((d.present >> K_FIELD3) & 1u) << 2);
    if ((d.present & (1u << K_DATA)) != 0) {
        req->data = sig_str(json + d.data.off, d.data.len);
        /* yajl takes \f and \v for blanks, JSON.parse does not: relayed as is, they would break the receiver (a raw
         * control character cannot be inside a string, so any there is such a blank) */
        if (ret == 0 && (memchr(req->data.base, '\f', req->data.len) != NULL || memchr(req->data.base, '\v', req->data.len) != NULL))
            ret = SIG_ERR_BAD_JSON;
    }
    if (d.id.len != 0 && ret != SIG_ERR_BAD_JSON)
        req->req_id = sig_str(scratch->base + d.id.off, d.id.len);
    return ret;
}

/* ---- encoding ---- */

/* English texts for the level-2 error codes (clients match on `code`) */
static const char *call_err_text(int err)
{
    switch (err) {
    case SIG_CALL_ERR_BAD_REQUEST:
        return "the request is not valid for a call";
    case SIG_CALL_ERR_NOT_REGISTERED:
        return "send create_connect before calling";
    case SIG_CALL_ERR_NOT_LEVEL2:
        return "this connection did not opt in to calls (create_connect with \"level\":2)";
    case SIG_CALL_ERR_SELF_CALL:
        return "a user cannot call itself";
    case SIG_CALL_ERR_TOO_MANY_CALLS:
        return "too many live calls";
    case SIG_CALL_ERR_CALL_ID_TAKEN:
        return "this callId is in use";
    case SIG_CALL_ERR_NO_SUCH_CALL:
        return "no such call";
    case SIG_CALL_ERR_NOT_A_PARTY:
        return "this device is not a party of the call";
    case SIG_CALL_ERR_BAD_STATE:
        return "not possible in the call's state";
    case SIG_CALL_ERR_ANSWERED_ELSEWHERE:
        return "another device answered the call";
    case SIG_CALL_ERR_SIGNAL_TOO_LARGE:
        return "the signal is too large";
    case SIG_CALL_ERR_RATE_LIMITED:
        return "too many signals: slow down";
    case SIG_CALL_ERR_BUFFER_FULL:
        return "too many signals waiting for the other party";
    case SIG_CALL_ERR_CLUSTER_UNAVAILABLE:
        return "the node that owns the calls cannot be reached";
    default:
        return sig_err_message(err);
    }
}

static void key_str(sig_buf_t *buf, const char *key, sig_str_t value)
{
    sig_buf_append_char(buf, '"');
    sig_buf_append(buf, key, strlen(key));
    APPEND_LIT(buf, "\":");
    sig_json_append_string(buf, value);
}

static void key_num(sig_buf_t *buf, const char *key, unsigned long long value)
{
    char num[24];
    sig_buf_append_char(buf, '"');
    sig_buf_append(buf, key, strlen(key));
    APPEND_LIT(buf, "\":");
    sig_buf_append(buf, num, (size_t)snprintf(num, sizeof(num), "%llu", value));
}

static void key_bool(sig_buf_t *buf, const char *key, int value)
{
    sig_buf_append_char(buf, '"');
    sig_buf_append(buf, key, strlen(key));
    if (value)
        APPEND_LIT(buf, "\":true");
    else
        APPEND_LIT(buf, "\":false");
}

/* {"userId":..,"deviceId":..|null} */
static void who(sig_buf_t *buf, const char *key, sig_str_t user_id, sig_str_t device_id)
{
    sig_buf_append_char(buf, '"');
    sig_buf_append(buf, key, strlen(key));
    APPEND_LIT(buf, "\":{");
    key_str(buf, "userId", user_id);
    if (device_id.len != 0) {
        sig_buf_append_char(buf, ',');
        key_str(buf, "deviceId", device_id);
    } else {
        APPEND_LIT(buf, ",\"deviceId\":null");
    }
    sig_buf_append_char(buf, '}');
}

static void open_message(sig_buf_t *buf, const char *type, sig_str_t id)
{
    APPEND_LIT(buf, "{\"type\":\"");
    sig_buf_append(buf, type, strlen(type));
    APPEND_LIT(buf, "\",\"ok\":true,\"msg\":\"\"");
    if (id.len != 0) {
        APPEND_LIT(buf, ",\"id\":");
        sig_buf_append(buf, id.base, id.len); /* canonical JSON from the decoder */
    }
    APPEND_LIT(buf, ",\"data\":{\"callId\":"); /* the callers append its value */
}

void sig_callmsg_encode(sig_buf_t *buf, const sig_call_out_t *out)
{
    const char *type;

    if (out->type == SIG_CALL_OUT_USER_ACTIVE)
        return;
    if (out->type == SIG_CALL_OUT_RESPONSE && out->err != 0) {
        const char *code = out->err <= -400 ? sig_call_err_code(out->err) : sig_err_code(out->err);
        APPEND_LIT(buf, "{\"type\":\"");
        type = sig_call_response_type(out->req);
        sig_buf_append(buf, type, strlen(type));
        APPEND_LIT(buf, "\",\"ok\":false,");
        key_str(buf, "msg", sig_str_cstr(call_err_text(out->err)));
        sig_buf_append_char(buf, ',');
        key_str(buf, "code", sig_str_cstr(code));
        if (out->req_id.len != 0) {
            APPEND_LIT(buf, ",\"id\":");
            sig_buf_append(buf, out->req_id.base, out->req_id.len);
        }
        sig_buf_append_char(buf, '}');
        return;
    }
    type = out->type == SIG_CALL_OUT_RESPONSE ? sig_call_response_type(out->req) : sig_call_out_type_name(out->type);
    if (out->type == SIG_CALL_OUT_CALLED) { /* level 1's bytes, callId last */
        sig_encode_called(buf, out->sponsor_user_id, out->sponsor_user_name, out->field1, out->field2, out->field3);
        buf->len -= 2; /* the closing "}}" */
        sig_buf_append_char(buf, ',');
        key_str(buf, "callId", out->call_id);
        APPEND_LIT(buf, "}}");
        return;
    }
    open_message(buf, type, out->type == SIG_CALL_OUT_RESPONSE ? out->req_id : (sig_str_t){NULL, 0});
    sig_json_append_string(buf, out->call_id);
    switch (out->type) {
    case SIG_CALL_OUT_RESPONSE:
        sig_buf_append_char(buf, ',');
        key_str(buf, "state", sig_str_cstr(sig_call_state_name(out->state)));
        if (out->req == SIG_CALL_REQ_CALL) {
            APPEND_LIT(buf, ",\"delivered\":{");
            key_num(buf, "level2", out->delivered_level2);
            sig_buf_append_char(buf, ',');
            key_num(buf, "legacy", out->delivered_legacy);
            sig_buf_append_char(buf, '}');
            if (out->glare)
                APPEND_LIT(buf, ",\"glare\":true");
        }
        break;
    case SIG_CALL_OUT_INCOMING:
        sig_buf_append_char(buf, ',');
        key_str(buf, "sponsorUserId", out->sponsor_user_id);
        sig_buf_append_char(buf, ',');
        key_str(buf, "sponsorUserName", out->sponsor_user_name);
        sig_buf_append_char(buf, ',');
        key_str(buf, "media", out->media);
        sig_buf_append_char(buf, ',');
        key_num(buf, "expiresIn", out->expires_in);
        if (out->replaces.len != 0) {
            sig_buf_append_char(buf, ',');
            key_str(buf, "replaces", out->replaces);
        }
        break;
    case SIG_CALL_OUT_STATE:
        sig_buf_append_char(buf, ',');
        key_str(buf, "state", sig_str_cstr(sig_call_state_name(out->state)));
        sig_buf_append_char(buf, ',');
        key_num(buf, "alerting", out->alerting);
        sig_buf_append_char(buf, ',');
        key_bool(buf, "peerConnected", out->peer_connected);
        break;
    case SIG_CALL_OUT_ACCEPTED:
        sig_buf_append_char(buf, ',');
        who(buf, "by", out->by_user_id, out->by_device_id);
        sig_buf_append_char(buf, ',');
        key_bool(buf, "polite", out->polite);
        if (out->glare)
            APPEND_LIT(buf, ",\"glare\":true");
        break;
    case SIG_CALL_OUT_SIGNAL:
        sig_buf_append_char(buf, ',');
        who(buf, "from", out->from_user_id, out->from_device_id);
        sig_buf_append_char(buf, ',');
        key_num(buf, "seq", out->seq);
        sig_buf_append_char(buf, ',');
        key_str(buf, "kind", out->kind);
        APPEND_LIT(buf, ",\"data\":");
        if (out->data.len != 0)
            sig_buf_append(buf, out->data.base, out->data.len); /* the sender's JSON text, checked when it came in */
        else
            APPEND_LIT(buf, "null");
        break;
    case SIG_CALL_OUT_ENDED:
        sig_buf_append_char(buf, ',');
        key_str(buf, "reason", sig_str_cstr(sig_call_reason_name(out->reason)));
        if (out->detail.len != 0) {
            sig_buf_append_char(buf, ',');
            key_str(buf, "detail", out->detail);
        }
        if (out->repeat)
            APPEND_LIT(buf, ",\"repeat\":true");
        break;
    default:
        break;
    }
    APPEND_LIT(buf, "}}");
}

void sig_callmsg_encode_connect_ok(sig_buf_t *buf, sig_str_t id, sig_str_t user_id, sig_str_t device_id, const sig_call_info_t *calls,
                                   size_t num_calls)
{
    size_t i;

    APPEND_LIT(buf, "{\"type\":\"create_connect_response\",\"ok\":true,\"msg\":\"\"");
    if (id.len != 0) {
        APPEND_LIT(buf, ",\"id\":");
        sig_buf_append(buf, id.base, id.len);
    }
    APPEND_LIT(buf, ",\"data\":{");
    key_str(buf, "sponsorUserId", user_id);
    APPEND_LIT(buf, ",\"level\":2,");
    if (device_id.len != 0)
        key_str(buf, "deviceId", device_id);
    else
        APPEND_LIT(buf, "\"deviceId\":null");
    APPEND_LIT(buf, ",\"calls\":[");
    for (i = 0; i != num_calls; ++i) {
        if (i != 0)
            sig_buf_append_char(buf, ',');
        sig_buf_append_char(buf, '{');
        key_str(buf, "callId", calls[i].call_id);
        sig_buf_append_char(buf, ',');
        key_str(buf, "state", sig_str_cstr(sig_call_state_name(calls[i].state)));
        sig_buf_append_char(buf, ',');
        key_str(buf, "role", sig_str_cstr(calls[i].is_caller ? "caller" : "callee"));
        sig_buf_append_char(buf, ',');
        key_str(buf, "peerUserId", calls[i].peer_user_id);
        sig_buf_append_char(buf, ',');
        key_str(buf, "media", calls[i].media);
        sig_buf_append_char(buf, '}');
    }
    APPEND_LIT(buf, "]}}");
}
