/*
 * fuzz_protocol.c: libFuzzer target for the level-1 JSON codec (handler/core/sig_protocol.c).
 *
 * Each input is one client message, given to sig_msg_decode() with one scratch buffer reused across inputs, as a
 * connection reuses it. Then every reply the glue (sig_signaling.c) could build from the result is encoded and
 * checked: on success `called`, `dialing_response` and `create_connect_response`; on failure the error reply that
 * echoes msg.id. A reply must be strict UTF-8 (a browser closes the connection with 1007 otherwise) and exactly one
 * JSON object that yajl parses back, giving back the relayed strings byte for byte and the id unchanged.
 * The decoder's own contract on sig_msg_t is checked too. A failed check abort()s: libFuzzer reports it as a crash.
 *
 * As a second, independent property, sig_json_append_string() of the raw input (when it is valid UTF-8) must parse
 * back to the same bytes.
 *
 * The same input is also decoded as a push API body (sig_push_decode(), into a scratch of its own): the contract on
 * sig_msg_t holds for it too (with "userId"), what it accepts carries its required user id, the `called` the push
 * handler (sig_push.c) encodes from it passes check_reply(), and everything but "type" and "userId" reads the same as
 * the client decoder read it.
 */
#include <stdint.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "core/sig_protocol.h"
#include "core/sig_registry.h" /* SIG_USER_ID_MAX */
#include "fuzz_check.h"

/* ---------------------------------------------------------------------------------------------------------------------
 * Parsing a reply back
 * -------------------------------------------------------------------------------------------------------------------*/

#define MAX_EXPECT 8

/* the reply's keys and values we compare, and what yajl saw */
struct st_reply_t {
    size_t depth;
    int events;         /* number of values and containers seen; the first must open the top-level object */
    char key[32];       /* the last key at depth 1 or 2, truncated (ours are short) */
    size_t key_len;
    struct {
        const char *key; /* at depth 2, inside "data" */
        sig_str_t value;
        int seen;
    } expect[MAX_EXPECT];
    size_t num_expect;
    sig_str_t id;  /* the id the reply must carry (canonical JSON), len 0: none */
    int id_seen;
    sig_buf_t *tmp; /* re-encodes a string id for comparison */
};

static int key_is(const struct st_reply_t *r, const char *k)
{
    return r->key_len == strlen(k) && memcmp(r->key, k, r->key_len) == 0;
}

static void reply_value(struct st_reply_t *r, int is_string, const char *s, size_t len)
{
    size_t i;

    FUZZ_CHECK(r->events++ != 0, "reply is not a JSON object");
    if (r->depth == 1 && key_is(r, "id")) {
        /* the echo of the request's id: a number as written, or a string whose canonical encoding is the id */
        FUZZ_CHECK(r->id.len != 0, "reply carries an id the request did not have");
        if (is_string) {
            sig_buf_reset(r->tmp);
            sig_json_append_string(r->tmp, sig_str(s, len));
            FUZZ_CHECK(sig_str_eq(sig_str(r->tmp->base, r->tmp->len), r->id), "string id not echoed as canonical JSON");
        } else {
            FUZZ_CHECK(s != NULL && sig_str_eq(sig_str(s, len), r->id), "number id not echoed as written");
        }
        ++r->id_seen;
    } else if (r->depth == 2) {
        for (i = 0; i != r->num_expect; ++i) {
            if (key_is(r, r->expect[i].key)) {
                FUZZ_CHECK(is_string, "relayed field is not a string");
                FUZZ_CHECK(sig_str_eq(sig_str(s, len), r->expect[i].value), "relayed field changed on its way");
                ++r->expect[i].seen;
            }
        }
    }
}

static int cb_null(void *ctx)
{
    reply_value(ctx, 0, NULL, 0);
    return 1;
}

static int cb_boolean(void *ctx, int v)
{
    (void)v;
    reply_value(ctx, 0, NULL, 0);
    return 1;
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    reply_value(ctx, 0, s, len);
    return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    reply_value(ctx, 1, (const char *)s, len);
    return 1;
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct st_reply_t *r = ctx;
    r->key_len = len < sizeof(r->key) ? len : sizeof(r->key);
    memcpy(r->key, s, r->key_len);
    return 1;
}

static int cb_start(void *ctx)
{
    struct st_reply_t *r = ctx;
    ++r->events; /* an object is fine anywhere, first or nested */
    ++r->depth;
    return 1;
}

static int cb_start_array(void *ctx)
{
    struct st_reply_t *r = ctx;
    FUZZ_CHECK(r->events++ != 0, "reply is not a JSON object");
    ++r->depth;
    return 1;
}

static int cb_end(void *ctx)
{
    struct st_reply_t *r = ctx;
    --r->depth;
    return 1;
}

static const yajl_callbacks reply_callbacks = {
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

static void expect_field(struct st_reply_t *r, const char *key, sig_str_t value)
{
    r->expect[r->num_expect].key = key;
    r->expect[r->num_expect].value = value;
    r->expect[r->num_expect].seen = 0;
    ++r->num_expect;
}

/* Checks one encoded reply: strict UTF-8, one JSON object (yajl's defaults: no comments, nothing after it), every
 * expected field present once with its value, the id present iff expected. */
static void check_reply(const sig_buf_t *out, struct st_reply_t *r)
{
    yajl_handle h;
    size_t i;

    FUZZ_CHECK(fuzz_utf8_valid(out->base, out->len), "reply is not valid UTF-8");
    if ((h = yajl_alloc(&reply_callbacks, NULL, r)) == NULL)
        abort();
    FUZZ_CHECK(yajl_parse(h, (const unsigned char *)out->base, out->len) == yajl_status_ok, "reply is not JSON");
    FUZZ_CHECK(yajl_complete_parse(h) == yajl_status_ok, "reply is not one complete JSON text");
    yajl_free(h);
    FUZZ_CHECK(r->depth == 0 && r->events != 0, "reply is not one JSON object");
    for (i = 0; i != r->num_expect; ++i)
        FUZZ_CHECK(r->expect[i].seen == 1, "relayed field missing or repeated");
    FUZZ_CHECK(r->id_seen == (r->id.len != 0), "id missing or repeated in the reply");
}

/* ---------------------------------------------------------------------------------------------------------------------
 * The target
 * -------------------------------------------------------------------------------------------------------------------*/

static sig_buf_t scratch = SIG_BUF_INIT, out = SIG_BUF_INIT, tmp = SIG_BUF_INIT;
static sig_buf_t push_scratch = SIG_BUF_INIT; /* the push decode's strings live beside the client decode's */
static const char wrap_open[] = "{\"type\":\"x\",\"data\":{\"field1\":";

/* What sig_protocol.h promises about the fields of a decoded message, whatever the result. */
static void check_message(const sig_msg_t *msg, int ret)
{
    const sig_str_t *texts[] = {&msg->sponsor_user_id, &msg->sponsor_user_name, &msg->receiver_user_id, &msg->field1,
                                &msg->field2,          &msg->field3,            &msg->auth};
    size_t i;

    FUZZ_CHECK(ret == 0 || (ret <= SIG_ERR_BAD_JSON && ret >= SIG_ERR_BAD_ID), "decoder returned a code outside -100..-106");
    FUZZ_CHECK(msg->type == 0 || msg->type == SIG_MSG_CREATE_CONNECT || msg->type == SIG_MSG_DIALING, "unknown msg.type");
    FUZZ_CHECK((msg->present & ~(0x7fu | SIG_FIELD_DEVICE_ID)) == 0, "unknown present bits");
    FUZZ_CHECK(msg->level >= 0 && msg->level <= 2, "level outside 0..2");
    if ((msg->present & SIG_FIELD_DEVICE_ID) != 0)
        FUZZ_CHECK(msg->device_id.base != NULL && msg->device_id.base[msg->device_id.len] == '\0', "deviceId not NUL-terminated");
    else
        FUZZ_CHECK(msg->device_id.base == NULL && msg->device_id.len == 0, "absent deviceId is not {NULL, 0}");
    if (ret == 0 && msg->type == SIG_MSG_CREATE_CONNECT && msg->level == 2 && (msg->present & SIG_FIELD_DEVICE_ID) != 0)
        FUZZ_CHECK(sig_device_id_is_valid(msg->device_id), "an accepted level-2 create_connect has a bad deviceId");
    for (i = 0; i != sizeof(texts) / sizeof(texts[0]); ++i) {
        if ((msg->present & (1u << i)) != 0) {
            FUZZ_CHECK(texts[i]->base != NULL && texts[i]->base[texts[i]->len] == '\0', "present field not NUL-terminated");
            if (ret == 0)
                FUZZ_CHECK(fuzz_utf8_valid(texts[i]->base, texts[i]->len), "accepted field is not valid UTF-8");
        } else {
            FUZZ_CHECK(texts[i]->base == NULL && texts[i]->len == 0, "absent field is not {NULL, 0}");
        }
    }
    FUZZ_CHECK((msg->id.len == 0) == (msg->id.base == NULL), "id is neither absent nor set");
    if (ret != 0)
        return;
    FUZZ_CHECK(msg->type != 0, "accepted message without a type");
    FUZZ_CHECK((msg->present & (msg->type == SIG_MSG_CREATE_CONNECT ? SIG_FIELD_SPONSOR_USER_ID : SIG_FIELD_RECEIVER_USER_ID)) != 0,
               "accepted message without its required user id");
    if ((msg->present & SIG_FIELD_SPONSOR_USER_ID) != 0)
        FUZZ_CHECK(msg->sponsor_user_id.len >= 1 && msg->sponsor_user_id.len <= SIG_USER_ID_MAX, "accepted bad sponsorUserId");
    if ((msg->present & SIG_FIELD_RECEIVER_USER_ID) != 0)
        FUZZ_CHECK(msg->receiver_user_id.len >= 1 && msg->receiver_user_id.len <= SIG_USER_ID_MAX, "accepted bad receiverUserId");
}

/* What sig_protocol.h promises about a push body, and what it must share with the client decoder's reading (`cmsg`,
 * `cret`) of the same bytes: JSON and object errors, every field but "userId", and the id. */
static void check_push_message(const sig_msg_t *msg, int ret, const sig_msg_t *cmsg, int cret)
{
    const sig_str_t *texts[] = {&msg->sponsor_user_id, &msg->sponsor_user_name, &msg->receiver_user_id, &msg->field1,
                                &msg->field2,          &msg->field3,            &msg->auth,             &msg->user_id};
    const sig_str_t *ctexts[] = {&cmsg->sponsor_user_id, &cmsg->sponsor_user_name, &cmsg->receiver_user_id, &cmsg->field1,
                                 &cmsg->field2,          &cmsg->field3,            &cmsg->auth};
    size_t i;

    FUZZ_CHECK(ret == 0 || (ret <= SIG_ERR_BAD_JSON && ret >= SIG_ERR_BAD_ID), "push decoder returned a code outside -100..-106");
    FUZZ_CHECK(ret != SIG_ERR_MISSING_TYPE, "a push body needs no type");
    FUZZ_CHECK(ret == 0 || strcmp(sig_err_code(ret), "internal") != 0, "push error without a code for its 400");
    FUZZ_CHECK(msg->type == 0 || msg->type == SIG_MSG_PUSH_CALL || msg->type == SIG_MSG_PUSH_DISCONNECT, "unknown push msg.type");
    FUZZ_CHECK((msg->present & ~0xffu) == 0, "unknown present bits in a push");
    for (i = 0; i != sizeof(texts) / sizeof(texts[0]); ++i) {
        if ((msg->present & (1u << i)) != 0) {
            FUZZ_CHECK(texts[i]->base != NULL && texts[i]->base[texts[i]->len] == '\0', "present push field not NUL-terminated");
            if (ret == 0)
                FUZZ_CHECK(fuzz_utf8_valid(texts[i]->base, texts[i]->len), "accepted push field is not valid UTF-8");
        } else {
            FUZZ_CHECK(texts[i]->base == NULL && texts[i]->len == 0, "absent push field is not {NULL, 0}");
        }
    }
    /* both decoders read the same bytes with the same rules but for "type", "userId" and create_connect's
     * "level"/"deviceId" (a client's only) */
    FUZZ_CHECK((ret == SIG_ERR_BAD_JSON) == (cret == SIG_ERR_BAD_JSON), "bad_json for one decoder only");
    FUZZ_CHECK((ret == SIG_ERR_NOT_OBJECT) == (cret == SIG_ERR_NOT_OBJECT), "not_object for one decoder only");
    FUZZ_CHECK((msg->present & 0x7fu) == (cmsg->present & ~SIG_FIELD_DEVICE_ID), "push and client decoders disagree on present fields");
    for (i = 0; i != sizeof(ctexts) / sizeof(ctexts[0]); ++i)
        FUZZ_CHECK(sig_str_eq(*texts[i], *ctexts[i]), "push and client decoders read a field differently");
    FUZZ_CHECK(sig_str_eq(msg->id, cmsg->id), "push and client decoders read the id differently");
    if (ret != 0)
        return;
    FUZZ_CHECK(msg->type != 0, "accepted push without a type");
    FUZZ_CHECK((msg->present & (msg->type == SIG_MSG_PUSH_DISCONNECT ? SIG_FIELD_USER_ID : SIG_FIELD_RECEIVER_USER_ID)) != 0,
               "accepted push without its required user id");
    if ((msg->present & SIG_FIELD_SPONSOR_USER_ID) != 0)
        FUZZ_CHECK(msg->sponsor_user_id.len >= 1 && msg->sponsor_user_id.len <= SIG_USER_ID_MAX, "accepted push, bad sponsorUserId");
    if ((msg->present & SIG_FIELD_RECEIVER_USER_ID) != 0)
        FUZZ_CHECK(msg->receiver_user_id.len >= 1 && msg->receiver_user_id.len <= SIG_USER_ID_MAX, "accepted push, bad receiverUserId");
    if ((msg->present & SIG_FIELD_USER_ID) != 0)
        FUZZ_CHECK(msg->user_id.len >= 1 && msg->user_id.len <= SIG_USER_ID_MAX, "accepted push with a bad userId");
}

static void start_reply(struct st_reply_t *r, sig_str_t id)
{
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->tmp = &tmp;
    sig_buf_reset(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    struct st_reply_t r;
    sig_msg_t msg, pmsg;
    int ret, pret;

    ret = sig_msg_decode(json, size, &msg, &scratch);
    check_message(&msg, ret);

    /* the same bytes as a push API body: its own contract, and what it shares with the client decoder */
    pret = sig_push_decode(json, size, &pmsg, &push_scratch);
    check_push_message(&pmsg, pret, &msg, ret);
    if (pret == 0 && pmsg.type == SIG_MSG_PUSH_CALL) {
        /* what every connection of the receiver gets (sig_push.c): the sponsor fields as given, absent ones "" */
        start_reply(&r, sig_str(NULL, 0));
        sig_encode_called(&out, pmsg.sponsor_user_id, pmsg.sponsor_user_name, pmsg.field1, pmsg.field2, pmsg.field3);
        expect_field(&r, "sponsorUserId", pmsg.sponsor_user_id);
        expect_field(&r, "sponsorUserName", pmsg.sponsor_user_name);
        expect_field(&r, "field1", pmsg.field1);
        expect_field(&r, "field2", pmsg.field2);
        expect_field(&r, "field3", pmsg.field3);
        check_reply(&out, &r);
    }

    if (ret == 0) {
        /* what the receiver gets (an absent field is sent as "") */
        start_reply(&r, sig_str(NULL, 0));
        sig_encode_called(&out, msg.sponsor_user_id, msg.sponsor_user_name, msg.field1, msg.field2, msg.field3);
        expect_field(&r, "sponsorUserId", msg.sponsor_user_id);
        expect_field(&r, "sponsorUserName", msg.sponsor_user_name);
        expect_field(&r, "field1", msg.field1);
        expect_field(&r, "field2", msg.field2);
        expect_field(&r, "field3", msg.field3);
        check_reply(&out, &r);

        /* what the sender gets */
        start_reply(&r, msg.id);
        if (msg.type == SIG_MSG_DIALING) {
            sig_encode_dialing_ok(&out, msg.id, msg.receiver_user_id, size);
            expect_field(&r, "receiverUserId", msg.receiver_user_id);
        } else {
            sig_encode_create_connect_ok(&out, msg.id, msg.sponsor_user_id);
            expect_field(&r, "sponsorUserId", msg.sponsor_user_id);
        }
        check_reply(&out, &r);
    } else {
        /* the glue answers every refused message with its id echoed (sig_signaling.c) */
        start_reply(&r, msg.id);
        sig_encode_error(&out, "error", ret, msg.id);
        check_reply(&out, &r);
        start_reply(&r, msg.id);
        sig_encode_error(&out, "dialing_response", ret, msg.id);
        check_reply(&out, &r);
    }

    /* the string encoder alone: valid UTF-8 in, the same bytes back out of a JSON parser */
    if (fuzz_utf8_valid(json, size)) {
        start_reply(&r, sig_str(NULL, 0));
        sig_buf_append(&out, wrap_open, sizeof(wrap_open) - 1);
        sig_json_append_string(&out, sig_str(json, size));
        sig_buf_append(&out, "}}", 2);
        expect_field(&r, "field1", sig_str(json, size));
        check_reply(&out, &r);
    }
    return 0;
}
