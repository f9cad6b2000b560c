/*
 * fuzz_callmsg.c: the level-2 codec (handler/core/sig_callmsg.h). Beyond "no crash, no leak, no undefined behaviour":
 * a decoded call_signal's data is a span of the input that is itself one JSON value; every reply and every relayed
 * signal the codec writes from what it decoded is one valid JSON object in strict UTF-8; the level-1 decoder never
 * takes a level-2 type for one of its own.
 * Build: see tests/fuzz/run (target callmsg).
 */
#include <stdint.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/sig_callmsg.h"
#include "core/sig_protocol.h"
#include "fuzz_check.h"

static sig_buf_t scratch, out, l1scratch;

/* One JSON value, nothing around it (yajl_tree wants a NUL-terminated copy). */
static int is_json(const char *s, size_t len)
{
    char *copy = malloc(len + 1), err[64];
    yajl_val v;
    memcpy(copy, s, len);
    copy[len] = '\0';
    v = memchr(s, '\0', len) == NULL ? yajl_tree_parse(copy, err, sizeof(err)) : NULL;
    free(copy);
    if (v == NULL)
        return 0;
    yajl_tree_free(v);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    sig_call_request_t req;
    sig_call_out_t o;
    sig_msg_t msg;
    int ret = sig_callmsg_decode(json, size, &req, &scratch);

    if (sig_msg_decode(json, size, &msg, &l1scratch) == 0)
        FUZZ_CHECK(ret == SIG_ERR_UNKNOWN_TYPE, "a level-1 message is no level-2 request");
    if (ret == 0 && req.type == SIG_CALL_REQ_SIGNAL) {
        FUZZ_CHECK(req.data.len != 0 && req.data.base >= json && req.data.base + req.data.len <= json + size, "data is a span of the input");
        FUZZ_CHECK(is_json(req.data.base, req.data.len), "data is one JSON value");
        FUZZ_CHECK(memchr(req.data.base, '\f', req.data.len) == NULL && memchr(req.data.base, '\v', req.data.len) == NULL,
                   "data has only the blanks JSON.parse knows");
        memset(&o, 0, sizeof(o));
        o.type = SIG_CALL_OUT_SIGNAL;
        o.call_id = req.call_id;
        o.from_user_id = sig_str_cstr("u");
        o.seq = 1;
        o.kind = req.kind;
        o.data = req.data;
        sig_buf_reset(&out);
        sig_callmsg_encode(&out, &o);
        FUZZ_CHECK(is_json(out.base, out.len) && fuzz_utf8_valid(out.base, out.len), "the relayed signal is JSON");
    }
    if (ret == 0 || req.type != 0) {
        memset(&o, 0, sizeof(o));
        o.type = SIG_CALL_OUT_RESPONSE;
        o.req = req.type != 0 ? req.type : SIG_CALL_REQ_CALL;
        o.req_id = req.req_id;
        o.call_id = req.call_id;
        o.err = ret;
        o.state = SIG_CALL_RINGING;
        sig_buf_reset(&out);
        sig_callmsg_encode(&out, &o);
        FUZZ_CHECK(is_json(out.base, out.len) && fuzz_utf8_valid(out.base, out.len), "the reply is JSON");
    }
    return 0;
}
