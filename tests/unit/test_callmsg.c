/*
 * test_callmsg.c: the level-2 codec (handler/core/sig_callmsg.c) (TAP): every request decoded with its
 * fields, the raw `data` of call_signal kept byte for byte, the envelope's errors, and every output's exact bytes.
 */
#include <string.h>
#include "core/sig_callmsg.h"
#include "tap.h"

static sig_buf_t scratch, out;
static sig_call_request_t req;

static int decode(const char *json)
{
    return sig_callmsg_decode(json, strlen(json), &req, &scratch);
}

static int str_is(sig_str_t s, const char *want)
{
    return want == NULL ? s.base == NULL && s.len == 0 : s.len == strlen(want) && memcmp(s.base, want, s.len) == 0;
}

#define is_sig_str(s, want, ...) ok(str_is((s), (want)), __VA_ARGS__)

static void test_requests(void)
{
    is_int(decode("{\"type\":\"call\",\"receiverUserId\":2211,\"media\":\"video\",\"callId\":\"c-1\",\"field1\":\"x\",\"field3\":7,"
                  "\"sponsorUserName\":\"Ann\",\"id\":5}"),
           0, "call");
    is_int(req.type, SIG_CALL_REQ_CALL, "... type");
    is_sig_str(req.receiver_user_id, "2211", "... receiverUserId as an integer's text");
    is_sig_str(req.media, "video", "... media");
    is_sig_str(req.call_id, "c-1", "... callId");
    is_sig_str(req.sponsor_user_name, "Ann", "... sponsorUserName");
    is_sig_str(req.field1, "x", "... field1");
    is_sig_str(req.field3, "7", "... field3 as a number's text");
    is_int(req.fields_present, 5, "... fields_present: field1 and field3");
    is_sig_str(req.req_id, "5", "... id echoed as written");
    is_int(decode("{\"type\":\"call\",\"receiverUserId\":\"b\"}"), 0, "call without callId: the server picks one");
    is_sig_str(req.call_id, NULL, "... callId empty");

    static const struct {
        const char *type;
        sig_call_req_type_t want;
    } simple[] = {{"call_ringing", SIG_CALL_REQ_RINGING}, {"call_accept", SIG_CALL_REQ_ACCEPT}, {"call_resume", SIG_CALL_REQ_RESUME}};
    for (size_t i = 0; i != sizeof(simple) / sizeof(simple[0]); ++i) {
        char json[128];
        snprintf(json, sizeof(json), "{\"type\":\"%s\",\"callId\":\"k\",\"id\":\"r\"}", simple[i].type);
        is_int(decode(json), 0, "%s", simple[i].type);
        is_int(req.type, simple[i].want, "... its type");
        is_sig_str(req.req_id, "\"r\"", "... a string id echoed as canonical JSON");
    }
    is_int(decode("{\"type\":\"call_reject\",\"callId\":\"k\",\"reason\":\"busy\"}"), 0, "call_reject");
    is_sig_str(req.reason, "busy", "... reason");
    is_int(decode("{\"type\":\"call_hangup\",\"callId\":\"k\",\"reason\":\"ice_failed\"}"), 0, "call_hangup");
    is_sig_str(req.reason, "ice_failed", "... reason");
}

static void test_signal_data(void)
{
    static const char *values[] = {"{\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\",\"type\":\"offer\"}",
                                   "[1, 2, {\"a\": [true, null]}]",
                                   "\"a string\"",
                                   "12.5e3",
                                   "true",
                                   "{}",
                                   "{\"candidate\":\"candidate:1 1 udp 2122260223 192.168.1.2 54400 typ host\",\"sdpMid\":\"0\"}"};
    size_t i;
    for (i = 0; i != sizeof(values) / sizeof(values[0]); ++i) {
        char json[512];
        snprintf(json, sizeof(json), "{\"type\":\"call_signal\",\"callId\":\"k\",\"kind\":\"offer\",\"data\" :  %s , \"id\":1}", values[i]);
        is_int(decode(json), 0, "call_signal with data %s", values[i]);
        is_sig_str(req.data, values[i], "... data kept byte for byte");
        is_sig_str(req.kind, "offer", "... kind");
    }
    is_int(decode("{\"type\":\"call_signal\",\"data\":{\"x\":1},\"callId\":\"k\",\"data\":[2]}"), 0, "the last data wins");
    is_sig_str(req.data, "[2]", "... [2]");
    is_int(decode("{\"type\":\"call_signal\",\"callId\":\"k\",\"data\":{\"deep\":{\"data\":{\"callId\":1}}}}"), 0,
           "keys named like ours inside data are data");
    is_sig_str(req.data, "{\"deep\":{\"data\":{\"callId\":1}}}", "... kept whole");
    is_sig_str(req.call_id, "k", "... and the callId is the outer one");
}

static void test_errors(void)
{
    static const struct {
        const char *json;
        int err;
        const char *what;
    } cases[] = {
        {"{\"type\":\"call\"", SIG_ERR_BAD_JSON, "truncated"},
        {"[1]", SIG_ERR_NOT_OBJECT, "not an object"},
        {"{\"callId\":\"k\"}", SIG_ERR_MISSING_TYPE, "no type"},
        {"{\"type\":\"call_transfer\",\"callId\":\"k\"}", SIG_ERR_UNKNOWN_TYPE, "a type of no level"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"b\"}", SIG_ERR_UNKNOWN_TYPE, "level 1's types are not ours"},
        {"{\"type\":7}", SIG_ERR_BAD_FIELD, "type not a string"},
        {"{\"type\":\"call\",\"receiverUserId\":\"b\",\"media\":1}", SIG_ERR_BAD_FIELD, "media a number"},
        {"{\"type\":\"call_accept\",\"callId\":12}", SIG_ERR_BAD_FIELD, "callId a number"},
        {"{\"type\":\"call\",\"receiverUserId\":1.5}", SIG_ERR_BAD_FIELD, "a fractional user id"},
        {"{\"type\":\"call\",\"receiverUserId\":{}}", SIG_ERR_BAD_FIELD, "an object user id"},
        {"{\"type\":\"call_accept\",\"callId\":\"k\",\"id\":null}", SIG_ERR_BAD_FIELD, "id null"},
        {"{\"type\":\"call\"}", SIG_ERR_MISSING_FIELD, "call without receiverUserId"},
        {"{\"type\":\"call_accept\"}", SIG_ERR_MISSING_FIELD, "call_accept without callId"},
        {"{\"type\":\"call_signal\",\"callId\":\"k\"}", SIG_ERR_MISSING_FIELD, "call_signal without data"},
        {"{\"type\":\"call_signal\",\"callId\":\"k\",\"data\":null}", SIG_ERR_MISSING_FIELD, "call_signal with data null"},
        {"{\"type\":\"call_signal\",\"data\":1}", SIG_ERR_MISSING_FIELD, "call_signal without callId"},
        {"{\"type\":\"call\",\"receiverUserId\":\"\"}", SIG_ERR_BAD_ID, "an empty receiver"},
        {"{\"type\":\"call\",\"receiverUserId\":\"\xc0\x80\"}", SIG_ERR_BAD_JSON, "overlong UTF-8"},
        {"{\"type\":\"call_signal\",\"callId\":\"k\",\"data\":{\"a\":\f1}}", SIG_ERR_BAD_JSON, "a form feed in data (yajl's blank, not JSON's)"},
    };
    size_t i;
    for (i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i)
        is_int(decode(cases[i].json), cases[i].err, "%s", cases[i].what);
    is_int(decode("{\"type\":\"call_accept\",\"id\":\"q\"}"), SIG_ERR_MISSING_FIELD, "an error keeps what the reply needs");
    is_int(req.type, SIG_CALL_REQ_ACCEPT, "... the type");
    is_sig_str(req.req_id, "\"q\"", "... the id");
}

static const char *encode(const sig_call_out_t *o)
{
    sig_buf_reset(&out);
    sig_callmsg_encode(&out, o);
    sig_buf_append_char(&out, '\0');
    return out.base;
}

static void test_encode(void)
{
    sig_call_out_t o;

    memset(&o, 0, sizeof(o));
    o.type = SIG_CALL_OUT_RESPONSE;
    o.req = SIG_CALL_REQ_CALL;
    o.req_id = sig_str_cstr("5");
    o.call_id = sig_str_cstr("c1");
    o.state = SIG_CALL_RINGING;
    o.delivered_level2 = 2;
    o.delivered_legacy = 1;
    is_str(encode(&o),
           "{\"type\":\"call_response\",\"ok\":true,\"msg\":\"\",\"id\":5,\"data\":{\"callId\":\"c1\",\"state\":\"ringing\","
           "\"delivered\":{\"level2\":2,\"legacy\":1}}}",
           "call_response");
    o.err = SIG_CALL_ERR_SELF_CALL;
    is_str(encode(&o),
           "{\"type\":\"call_response\",\"ok\":false,\"msg\":\"a user cannot call itself\",\"code\":\"self_call\",\"id\":5}",
           "an error reply");
    o.err = 0;
    o.req = SIG_CALL_REQ_ACCEPT;
    o.state = SIG_CALL_ACTIVE;
    o.req_id = (sig_str_t){NULL, 0};
    is_str(encode(&o), "{\"type\":\"call_accept_response\",\"ok\":true,\"msg\":\"\",\"data\":{\"callId\":\"c1\",\"state\":\"active\"}}",
           "call_accept_response without an id");

    memset(&o, 0, sizeof(o));
    o.type = SIG_CALL_OUT_INCOMING;
    o.call_id = sig_str_cstr("c1");
    o.sponsor_user_id = sig_str_cstr("1122");
    o.sponsor_user_name = sig_str_cstr("Ann \"A\"");
    o.media = sig_str_cstr("audio");
    o.expires_in = 59000;
    is_str(encode(&o),
           "{\"type\":\"incoming_call\",\"ok\":true,\"msg\":\"\",\"data\":{\"callId\":\"c1\",\"sponsorUserId\":\"1122\","
           "\"sponsorUserName\":\"Ann \\\"A\\\"\",\"media\":\"audio\",\"expiresIn\":59000}}",
           "incoming_call");

    memset(&o, 0, sizeof(o));
    o.type = SIG_CALL_OUT_CALLED;
    o.call_id = sig_str_cstr("c1");
    o.sponsor_user_id = sig_str_cstr("1122");
    o.field1 = sig_str_cstr("c1");
    o.field2 = sig_str_cstr("video");
    is_str(encode(&o),
           "{\"type\":\"called\",\"ok\":true,\"msg\":\"\",\"data\":{\"sponsorUserId\":\"1122\",\"sponsorUserName\":\"\",\"field1\":\"c1\","
           "\"field2\":\"video\",\"field3\":\"\",\"callId\":\"c1\"}}",
           "called: level 1's bytes, callId last");

    memset(&o, 0, sizeof(o));
    o.type = SIG_CALL_OUT_STATE;
    o.call_id = sig_str_cstr("c1");
    o.state = SIG_CALL_RINGING;
    o.alerting = 2;
    o.peer_connected = 1;
    is_str(encode(&o),
           "{\"type\":\"call_state\",\"ok\":true,\"msg\":\"\",\"data\":{\"callId\":\"c1\",\"state\":\"ringing\",\"alerting\":2,"
           "\"peerConnected\":true}}",
           "call_state");

    memset(&o, 0, sizeof(o));
    o.type = SIG_CALL_OUT_ACCEPTED;
    o.call_id = sig_str_cstr("c1");
    o.by_user_id = sig_str_cstr("2211");
    o.by_device_id = sig_str_cstr("phone-1");
    o.polite = 1;
    is_str(encode(&o),
           "{\"type\":\"call_accepted\",\"ok\":true,\"msg\":\"\",\"data\":{\"callId\":\"c1\",\"by\":{\"userId\":\"2211\","
           "\"deviceId\":\"phone-1\"},\"polite\":true}}",
           "call_accepted");
    o.by_device_id = (sig_str_t){NULL, 0};
    o.polite = 0;
    o.glare = 1;
    is_str(encode(&o),
           "{\"type\":\"call_accepted\",\"ok\":true,\"msg\":\"\",\"data\":{\"callId\":\"c1\",\"by\":{\"userId\":\"2211\","
           "\"deviceId\":null},\"polite\":false,\"glare\":true}}",
           "call_accepted after glare, no deviceId");

    memset(&o, 0, sizeof(o));
    o.type = SIG_CALL_OUT_SIGNAL;
    o.call_id = sig_str_cstr("c1");
    o.from_user_id = sig_str_cstr("1122");
    o.seq = 3;
    o.kind = sig_str_cstr("candidate");
    o.data = sig_str_cstr("{\"candidate\":\"x\", \"sdpMid\" : \"0\"}");
    is_str(encode(&o),
           "{\"type\":\"call_signal\",\"ok\":true,\"msg\":\"\",\"data\":{\"callId\":\"c1\",\"from\":{\"userId\":\"1122\","
           "\"deviceId\":null},\"seq\":3,\"kind\":\"candidate\",\"data\":{\"candidate\":\"x\", \"sdpMid\" : \"0\"}}}",
           "call_signal: data as the sender wrote it");

    memset(&o, 0, sizeof(o));
    o.type = SIG_CALL_OUT_ENDED;
    o.call_id = sig_str_cstr("c1");
    o.reason = SIG_CALL_REASON_HANGUP;
    o.detail = sig_str_cstr("ice_failed");
    o.repeat = 1;
    is_str(encode(&o),
           "{\"type\":\"call_ended\",\"ok\":true,\"msg\":\"\",\"data\":{\"callId\":\"c1\",\"reason\":\"hangup\",\"detail\":\"ice_failed\","
           "\"repeat\":true}}",
           "call_ended");

    memset(&o, 0, sizeof(o));
    o.type = SIG_CALL_OUT_USER_ACTIVE;
    is_str(encode(&o), "", "USER_ACTIVE is no message");
}

/* A signal decoded and relayed: the bytes another client gets parse back to the same data. */
static void test_round_trip(void)
{
    sig_call_out_t o;
    sig_call_request_t first;
    is_int(decode("{\"type\":\"call_signal\",\"callId\":\"k\",\"kind\":\"answer\",\"data\":{\"sdp\":\"\\u00e9\\n\"}}"), 0, "a signal");
    first = req;
    memset(&o, 0, sizeof(o));
    o.type = SIG_CALL_OUT_SIGNAL;
    o.call_id = first.call_id;
    o.from_user_id = sig_str_cstr("u");
    o.seq = 1;
    o.kind = first.kind;
    o.data = first.data;
    ok(strstr(encode(&o), "\"data\":{\"sdp\":\"\\u00e9\\n\"}}}") != NULL, "relayed with its escapes untouched: %s", out.base);
}

/* A level-2 device's create_connect_response, with and without calls and deviceId. */
static void test_connect_ok(void)
{
    sig_call_info_t calls[2] = {{SIG_STRLIT("c1"), SIG_CALL_RINGING, 1, SIG_STRLIT("2211"), SIG_STRLIT("video")},
                                {SIG_STRLIT("c2"), SIG_CALL_ACTIVE, 0, SIG_STRLIT("7"), SIG_STRLIT("audio")}};
    sig_buf_reset(&out);
    sig_callmsg_encode_connect_ok(&out, SIG_STRLIT("1"), SIG_STRLIT("1122"), SIG_STRLIT("phone"), calls, 2);
    sig_buf_append_char(&out, '\0');
    is_str(out.base,
           "{\"type\":\"create_connect_response\",\"ok\":true,\"msg\":\"\",\"id\":1,\"data\":{\"sponsorUserId\":\"1122\","
           "\"level\":2,\"deviceId\":\"phone\",\"calls\":[{\"callId\":\"c1\",\"state\":\"ringing\",\"role\":\"caller\","
           "\"peerUserId\":\"2211\",\"media\":\"video\"},{\"callId\":\"c2\",\"state\":\"active\",\"role\":\"callee\","
           "\"peerUserId\":\"7\",\"media\":\"audio\"}]}}",
           "connect ok with two calls");
    sig_buf_reset(&out);
    sig_callmsg_encode_connect_ok(&out, sig_str(NULL, 0), SIG_STRLIT("a\"b"), sig_str(NULL, 0), NULL, 0);
    sig_buf_append_char(&out, '\0');
    is_str(out.base,
           "{\"type\":\"create_connect_response\",\"ok\":true,\"msg\":\"\",\"data\":{\"sponsorUserId\":\"a\\\"b\","
           "\"level\":2,\"deviceId\":null,\"calls\":[]}}",
           "no id, no deviceId, no calls; the user id escaped");
    is_int(sig_callmsg_request_type(sig_str_cstr("call_resume")), SIG_CALL_REQ_RESUME, "request_type of call_resume");
    is_int(sig_callmsg_request_type(sig_str_cstr("call")), SIG_CALL_REQ_CALL, "... of call");
    is_int(sig_callmsg_request_type(sig_str_cstr("calls")), 0, "... of something else: 0");
}

int main(void)
{
    test_requests();
    test_signal_data();
    test_errors();
    test_encode();
    test_round_trip();
    test_connect_ok();
    ok(sig_callmsg_is_call_type(sig_str_cstr("call_hangup")) && !sig_callmsg_is_call_type(sig_str_cstr("dialing")),
       "is_call_type");
    sig_buf_dispose(&scratch);
    sig_buf_dispose(&out);
    return done_testing();
}
