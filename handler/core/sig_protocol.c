/*
 * sig_protocol.c: the level-1 JSON codec. Decoding uses yajl's callback parser (no tree is built: values under keys
 * we do not know are skipped as they stream by, at any depth); encoding writes the exact bytes of protocol.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <yajl/yajl_parse.h>
#include "core/sig_json.h"
#include "core/sig_protocol.h"
#include "core/sig_registry.h" /* SIG_USER_ID_MAX: an id the decoder accepts must be one the registry can bind */

#define APPEND_LIT(buf, lit) sig_buf_append((buf), (lit), sizeof(lit) - 1)

/* ---------------------------------------------------------------------------------------------------------------------
 * Decoding
 * -------------------------------------------------------------------------------------------------------------------*/

/* the keys we know; the first NUM_TEXT_FIELDS are the sig_msg_t strings, in the order of their SIG_FIELD_* bits */
enum {
    F_SPONSOR_USER_ID,
    F_SPONSOR_USER_NAME,
    F_RECEIVER_USER_ID,
    F_FIELD1,
    F_FIELD2,
    F_FIELD3,
    F_AUTH,
    F_USER_ID,   /* push bodies only */
    F_DEVICE_ID, /* create_connect with "level":2 only */
    NUM_TEXT_FIELDS,
    F_TYPE = NUM_TEXT_FIELDS,
    F_ID,
    F_LEVEL,
    F_UNKNOWN
};

static const sig_str_t key_names[] = {
    [F_SPONSOR_USER_ID] = SIG_STRLIT("sponsorUserId"),
    [F_SPONSOR_USER_NAME] = SIG_STRLIT("sponsorUserName"),
    [F_RECEIVER_USER_ID] = SIG_STRLIT("receiverUserId"),
    [F_FIELD1] = SIG_STRLIT("field1"),
    [F_FIELD2] = SIG_STRLIT("field2"),
    [F_FIELD3] = SIG_STRLIT("field3"),
    [F_AUTH] = SIG_STRLIT("auth"),
    [F_USER_ID] = SIG_STRLIT("userId"),
    [F_DEVICE_ID] = SIG_STRLIT("deviceId"),
    [F_LEVEL] = SIG_STRLIT("level"),
    [F_TYPE] = SIG_STRLIT("type"),
    [F_ID] = SIG_STRLIT("id"),
};

/* what a value turned out to be, as far as the field rules care */
enum { V_NULL, V_BOOL, V_NUMBER, V_STRING, V_CONTAINER };

enum { TYPE_ABSENT, TYPE_KNOWN, TYPE_UNKNOWN };

struct st_slice_t {
    size_t off, len; /* into scratch, which may move while parsing: pointers are made once parsing is over */
};

struct st_decoder_t {
    sig_buf_t *scratch;
    int push;       /* a push API body (sig_push_decode), not a client message */
    size_t depth;   /* 0: outside the top value; 1: inside the top-level object; more: inside a value being skipped */
    int key;        /* the field the next value at depth 1 belongs to */
    int not_object; /* the top-level value is not an object */
    int type_bad;   /* "type" had a value of the wrong kind */
    int field_bad;  /* another known field had a value of the wrong kind */
    int type_state; /* TYPE_*, last "type" wins */
    sig_msg_type_t type;
    unsigned present;
    struct st_slice_t text[NUM_TEXT_FIELDS];
    struct st_slice_t id; /* len 0: none */
    struct st_slice_t type_name; /* an unknown type's text */
    int level;                   /* "level": 0 absent, 1 or 2 */
    int level_bad;               /* "level" or "deviceId" of the wrong kind: an error for create_connect alone */
};

static int lookup_key(const char *s, size_t len)
{
    int i;
    for (i = 0; i != F_UNKNOWN; ++i)
        if (sig_str_eq(key_names[i], sig_str(s, len)))
            return i;
    return F_UNKNOWN;
}

/** Copies `len` bytes into scratch, NUL-terminated for callers who print them. */
static struct st_slice_t store(struct st_decoder_t *d, const char *s, size_t len)
{
    struct st_slice_t slice = {d->scratch->len, len};
    sig_buf_append(d->scratch, s, len);
    sig_buf_append_char(d->scratch, '\0');
    return slice;
}

/** JSON integer text (yajl has checked it is a number): no fraction, no exponent. */
static int is_integer(const char *s, size_t len)
{
    size_t i;
    for (i = 0; i != len; ++i)
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
            return 0;
    return 1;
}

static void on_type(struct st_decoder_t *d, int kind, const char *s, size_t len)
{
    switch (kind) {
    case V_NULL:
        d->type_state = TYPE_ABSENT;
        d->type = SIG_MSG_PUSH_CALL; /* what an absent type means in a push body (unused otherwise) */
        break;
    case V_STRING:
        if (d->push) {
            if (sig_str_eq(sig_str(s, len), SIG_STRLIT("disconnect"))) {
                d->type_state = TYPE_KNOWN;
                d->type = SIG_MSG_PUSH_DISCONNECT;
            } else {
                d->type_state = TYPE_UNKNOWN;
            }
        } else if (sig_str_eq(sig_str(s, len), SIG_STRLIT("create_connect"))) {
            d->type_state = TYPE_KNOWN;
            d->type = SIG_MSG_CREATE_CONNECT;
        } else if (sig_str_eq(sig_str(s, len), SIG_STRLIT("dialing"))) {
            d->type_state = TYPE_KNOWN;
            d->type = SIG_MSG_DIALING;
        } else {
            d->type_state = TYPE_UNKNOWN;
            d->type_name = store(d, s, len);
        }
        break;
    default:
        d->type_bad = 1;
        break;
    }
}

static void on_id(struct st_decoder_t *d, int kind, const char *s, size_t len)
{
    size_t off = d->scratch->len;

    switch (kind) {
    case V_NUMBER: /* echoed as written: yajl has checked it is a JSON number */
        d->id = store(d, s, len);
        break;
    case V_STRING: /* re-encoded, so the echo is canonical JSON whatever escapes the client used */
        sig_json_append_string(d->scratch, sig_str(s, len));
        d->id = (struct st_slice_t){off, d->scratch->len - off};
        sig_buf_append_char(d->scratch, '\0');
        break;
    default:
        d->id = (struct st_slice_t){0, 0};
        d->field_bad = 1;
        break;
    }
}

/* "level": the protocol level a create_connect asks for (1 or 2; null is absent) */
static void on_level(struct st_decoder_t *d, int kind, const char *s, size_t len)
{
    if (kind == V_NULL)
        d->level = 0;
    else if (kind == V_NUMBER && len == 1 && (s[0] == '1' || s[0] == '2'))
        d->level = s[0] - '0';
    else
        d->level_bad = 1;
}

static void set_text_field(struct st_decoder_t *d, int field, const char *s, size_t len)
{
    d->text[field] = store(d, s, len);
    d->present |= 1u << field;
}

static void on_text_field(struct st_decoder_t *d, int field, int kind, const char *s, size_t len)
{
    switch (kind) {
    case V_NULL:
        d->present &= ~(1u << field);
        d->text[field] = (struct st_slice_t){0, 0};
        break;
    case V_NUMBER:
        /* a user id sent as a number means its decimal text (the old server's JSON library converted it); a fraction
         * or an exponent is no id anybody registered. Other fields keep the number as the client wrote it. */
        if ((field == F_SPONSOR_USER_ID || field == F_RECEIVER_USER_ID || field == F_USER_ID) && !is_integer(s, len))
            d->field_bad = 1;
        else
            set_text_field(d, field, s, len);
        break;
    case V_STRING:
        set_text_field(d, field, s, len);
        break;
    default:
        if (field == F_DEVICE_ID)
            d->level_bad = 1; /* a key level 1 ignores: only create_connect may fail on it */
        else
            d->field_bad = 1;
        break;
    }
}

/** Every value yajl reports goes through here before any change of depth. */
static void on_value(struct st_decoder_t *d, int kind, const char *s, size_t len)
{
    if (d->not_object)
        return;
    if (d->depth == 0) {
        d->not_object = 1; /* objects at depth 0 open the message and never get here */
        return;
    }
    if (d->depth != 1)
        return; /* inside a value we skip */
    /* "userId" is a push body's alone; "level" and "deviceId" a client's create_connect's */
    switch ((d->key == F_USER_ID && !d->push) || ((d->key == F_DEVICE_ID || d->key == F_LEVEL) && d->push) ? F_UNKNOWN : d->key) {
    case F_UNKNOWN:
        break; /* forward compatible: later levels add keys */
    case F_TYPE:
        on_type(d, kind, s, len);
        break;
    case F_ID:
        on_id(d, kind, s, len);
        break;
    case F_LEVEL:
        on_level(d, kind, s, len);
        break;
    default:
        on_text_field(d, d->key, kind, s, len);
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

static int cb_start_map(void *ctx)
{
    struct st_decoder_t *d = ctx;
    if (d->depth != 0)
        on_value(d, V_CONTAINER, NULL, 0);
    ++d->depth;
    return 1;
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct st_decoder_t *d = ctx;
    if (d->depth == 1 && !d->not_object)
        d->key = lookup_key((const char *)s, len);
    return 1;
}

static int cb_start_array(void *ctx)
{
    struct st_decoder_t *d = ctx;
    on_value(d, V_CONTAINER, NULL, 0);
    ++d->depth; /* yajl keeps its own stack on the heap, so depth costs one byte a level there and nothing here */
    return 1;
}

static int cb_end_container(void *ctx)
{
    struct st_decoder_t *d = ctx;
    --d->depth;
    return 1;
}

/* yajl_number takes precedence over yajl_integer/yajl_double: we get the text as written, never a lossy conversion */
static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end_container,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_container,
};

static sig_str_t slice_str(const sig_buf_t *scratch, struct st_slice_t slice);

static int check_user_id(const struct st_decoder_t *d, int field)
{
    if ((d->present & (1u << field)) == 0)
        return 0;
    return d->text[field].len != 0 && d->text[field].len <= SIG_USER_ID_MAX ? 0 : SIG_ERR_BAD_ID;
}

/** The rules that need the whole message: type first, then wrong kinds, then what each type requires. */
static int check_message(const struct st_decoder_t *d)
{
    int required, ret;

    if (d->not_object)
        return SIG_ERR_NOT_OBJECT;
    if (d->type_bad)
        return SIG_ERR_BAD_FIELD;
    if (d->type_state == TYPE_ABSENT && !d->push)
        return SIG_ERR_MISSING_TYPE;
    if (d->type_state == TYPE_UNKNOWN)
        return SIG_ERR_UNKNOWN_TYPE; /* before field checks: a later level's message is judged by its type alone */
    if (d->field_bad)
        return SIG_ERR_BAD_FIELD;
    required = d->type == SIG_MSG_CREATE_CONNECT ? F_SPONSOR_USER_ID : d->type == SIG_MSG_PUSH_DISCONNECT ? F_USER_ID : F_RECEIVER_USER_ID;
    if ((d->present & (1u << required)) == 0)
        return SIG_ERR_MISSING_FIELD;
    if ((ret = check_user_id(d, F_SPONSOR_USER_ID)) != 0 || (ret = check_user_id(d, F_RECEIVER_USER_ID)) != 0 ||
        (ret = check_user_id(d, F_USER_ID)) != 0)
        return ret;
    if (d->type == SIG_MSG_CREATE_CONNECT && !d->push &&
        (d->level_bad || (d->level == 2 && (d->present & SIG_FIELD_DEVICE_ID) != 0 && !sig_device_id_is_valid(slice_str(d->scratch, d->text[F_DEVICE_ID])))))
        return SIG_ERR_BAD_FIELD;
    return 0;
}

static sig_str_t slice_str(const sig_buf_t *scratch, struct st_slice_t slice)
{
    return sig_str(scratch->base + slice.off, slice.len);
}

static int decode(const char *json, size_t len, sig_msg_t *msg, sig_buf_t *scratch, int push)
{
    sig_json_arena_t arena;
    yajl_alloc_funcs funcs;
    struct st_decoder_t d = {.scratch = scratch, .push = push, .key = F_UNKNOWN, .type_state = TYPE_ABSENT, .type = SIG_MSG_PUSH_CALL};
    sig_str_t *texts[NUM_TEXT_FIELDS] = {&msg->sponsor_user_id,
                                         &msg->sponsor_user_name,
                                         &msg->receiver_user_id,
                                         &msg->field1,
                                         &msg->field2,
                                         &msg->field3,
                                         &msg->auth,
                                         &msg->user_id,
                                         &msg->device_id};
    yajl_handle parser;
    int ret, i;

    sig_json_arena_init(&arena, &funcs);
    sig_buf_reset(scratch);
    memset(msg, 0, sizeof(*msg));

    if ((parser = yajl_alloc(&callbacks, &funcs, &d)) == NULL)
        sig_fatal("no memory");
    /* strings are checked as UTF-8 (yajl's default) even though the websocket layer did it: the decoder is also fed
     * directly by tests and fuzzers, and a lone bad byte must not reach a peer */
    /* yajl's own UTF-8 check lets overlong forms, encoded surrogates and code points past U+10FFFF through */
    if (!sig_utf8_is_valid(json, len)) {
        ret = SIG_ERR_BAD_JSON;
        goto Exit;
    }
    if ((len != 0 && yajl_parse(parser, (const unsigned char *)json, len) != yajl_status_ok) ||
        yajl_complete_parse(parser) != yajl_status_ok || sig_json_check_escapes(json, len, 1) != 0) {
        ret = SIG_ERR_BAD_JSON;
        goto Exit;
    }
    ret = check_message(&d);

Exit:
    yajl_free(parser);
    /* fill the message on every path: an error reply echoes msg->id */
    if (d.type_state == TYPE_KNOWN || (push && d.type_state == TYPE_ABSENT))
        msg->type = d.type;
    for (i = 0; i != NUM_TEXT_FIELDS; ++i)
        if ((d.present & (1u << i)) != 0)
            *texts[i] = slice_str(scratch, d.text[i]);
    msg->present = d.present;
    if (d.type_state == TYPE_UNKNOWN)
        msg->type_name = slice_str(scratch, d.type_name);
    msg->level = d.level;
    /* an id is echoed only if it is sound text: half a surrogate pair decodes to invalid UTF-8, and a
     * reply carrying it would end the client's own connection */
    if (d.id.len != 0 && (ret != SIG_ERR_BAD_JSON || sig_json_check_escapes(json, len, 1) == 0))
        msg->id = slice_str(scratch, d.id);
    return ret;
}

int sig_device_id_is_valid(sig_str_t id)
{
    return sig_str_is_id_token(id, SIG_DEVICE_ID_MAX);
}

int sig_msg_decode(const char *json, size_t len, sig_msg_t *msg, sig_buf_t *scratch)
{
    return decode(json, len, msg, scratch, 0);
}

int sig_push_decode(const char *json, size_t len, sig_msg_t *msg, sig_buf_t *scratch)
{
    return decode(json, len, msg, scratch, 1);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Encoding
 * -------------------------------------------------------------------------------------------------------------------*/

/* 1 if any of the 8 bytes at `p` must be escaped in a JSON string (< 0x20, '"', '\\'): the classic exact
 * "has a byte less than n" and "has a zero byte" tests, so runs of plain text are skipped 8 bytes at a time. */
static inline int word_needs_escape(const unsigned char *p)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    uint64_t w, quote, backslash;
    memcpy(&w, p, 8);
    quote = w ^ (ones * '"');
    backslash = w ^ (ones * '\\');
    return ((((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash)) & highs) != 0;
}

void sig_json_append_string(sig_buf_t *buf, sig_str_t s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p, *end, *run;

    sig_buf_reserve(buf, s.len + 2); /* exact when nothing needs escaping, the common case */
    sig_buf_append_char(buf, '"');
    if (s.len == 0)
        goto Close;
    p = (const unsigned char *)s.base;
    end = p + s.len;
    while (1) {
        char esc[6] = {'\\'};
        size_t esc_len = 2;
        for (run = p; end - p >= 8 && !word_needs_escape(p); p += 8)
            ;
        for (; p != end && *p >= 0x20 && *p != '"' && *p != '\\'; ++p)
            ;
        sig_buf_append(buf, run, (size_t)(p - run));
        if (p == end)
            break;
        switch (*p) {
        case '"':
        case '\\':
            esc[1] = (char)*p;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0xf];
            esc_len = 6;
            break;
        }
        sig_buf_append(buf, esc, esc_len);
        ++p;
    }
Close:
    sig_buf_append_char(buf, '"');
}

static void append_id(sig_buf_t *buf, sig_str_t id)
{
    if (id.len == 0)
        return;
    APPEND_LIT(buf, ",\"id\":");
    sig_buf_append(buf, id.base, id.len);
}

static void append_size(sig_buf_t *buf, size_t n)
{
    char digits[sizeof(size_t) * 3];
    size_t pos = sizeof(digits);
    do {
        digits[--pos] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    sig_buf_append(buf, digits + pos, sizeof(digits) - pos);
}

void sig_encode_called(sig_buf_t *buf, sig_str_t sponsor_user_id, sig_str_t sponsor_user_name, sig_str_t field1,
                       sig_str_t field2, sig_str_t field3)
{
    APPEND_LIT(buf, "{\"type\":\"called\",\"ok\":true,\"msg\":\"\",\"data\":{\"sponsorUserId\":");
    sig_json_append_string(buf, sponsor_user_id);
    APPEND_LIT(buf, ",\"sponsorUserName\":");
    sig_json_append_string(buf, sponsor_user_name);
    APPEND_LIT(buf, ",\"field1\":");
    sig_json_append_string(buf, field1);
    APPEND_LIT(buf, ",\"field2\":");
    sig_json_append_string(buf, field2);
    APPEND_LIT(buf, ",\"field3\":");
    sig_json_append_string(buf, field3);
    APPEND_LIT(buf, "}}");
}

void sig_encode_dialing_ok(sig_buf_t *buf, sig_str_t id, sig_str_t receiver_user_id, size_t delivered)
{
    APPEND_LIT(buf, "{\"type\":\"dialing_response\",\"ok\":true,\"msg\":\"\"");
    append_id(buf, id);
    APPEND_LIT(buf, ",\"data\":{\"receiverUserId\":");
    sig_json_append_string(buf, receiver_user_id);
    APPEND_LIT(buf, ",\"delivered\":");
    append_size(buf, delivered);
    APPEND_LIT(buf, "}}");
}

void sig_encode_create_connect_ok(sig_buf_t *buf, sig_str_t id, sig_str_t sponsor_user_id)
{
    APPEND_LIT(buf, "{\"type\":\"create_connect_response\",\"ok\":true,\"msg\":\"\"");
    append_id(buf, id);
    APPEND_LIT(buf, ",\"data\":{\"sponsorUserId\":");
    sig_json_append_string(buf, sponsor_user_id);
    APPEND_LIT(buf, "}}");
}

void sig_encode_error(sig_buf_t *buf, const char *type, int err, sig_str_t id)
{
    sig_str_t type_str = sig_str_cstr(type);

    APPEND_LIT(buf, "{\"type\":");
    sig_json_append_string(buf, type_str);
    APPEND_LIT(buf, ",\"ok\":false,\"msg\":");
    sig_json_append_string(buf, sig_str_cstr(sig_err_message(err)));
    APPEND_LIT(buf, ",\"code\":");
    sig_json_append_string(buf, sig_str_cstr(sig_err_code(err)));
    append_id(buf, id);
    /* the old server's failure for dialing carried this block; deployed clients may read it */
    if (sig_str_eq(type_str, SIG_STRLIT("dialing_response")))
        APPEND_LIT(buf, ",\"data\":{\"sponsorUserId\":null}");
    sig_buf_append_char(buf, '}');
}
