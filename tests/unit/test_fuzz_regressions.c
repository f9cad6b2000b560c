/*
 * test_fuzz_regressions.c: the inputs tests/fuzz found, minimised, one test each (TAP). Each names the target that
 * found it and what the reply or the claims must be instead.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "core/sig_jwt.h"
#include "core/sig_protocol.h"
#include "tap.h"
#include "utf8_reference.h"

static sig_buf_t scratch = SIG_BUF_INIT, out = SIG_BUF_INIT;

/* ---------------------------------------------------------------------------------------------------------------------
 * fuzz_protocol
 * -------------------------------------------------------------------------------------------------------------------*/

/* A message yajl gives up on (here: truncated) after it has read an "id" holding a \u escape of a lone low surrogate.
 * yajl decodes that escape to ED B0 80; has_unpaired_surrogate() is only run on text yajl accepted, so the id is kept
 * and the glue's `error` reply echoes it: invalid UTF-8 in a text frame, and the client's browser drops the connection
 * (1007). Everything the client sent was valid UTF-8 (the escape is ASCII), so the WebSocket layer lets it through. */
static void test_protocol_bad_json_echoes_lone_surrogate_id(void)
{
    static const char *const inputs[] = {
        "{\"type\":\"dialing\",\"id\":\"\\udc00\"",     /* truncated */
        "{\"id\":\"\\udc00\",\"type\":\"dialing\"} x", /* trailing garbage */
        "{\"id\":\"a\\ude00b\",]",                     /* a syntax error later on */
    };
    sig_msg_t msg;
    size_t i;

    for (i = 0; i != sizeof(inputs) / sizeof(inputs[0]); ++i) {
        is_int(sig_msg_decode(inputs[i], strlen(inputs[i]), &msg, &scratch), SIG_ERR_BAD_JSON, "%s: bad_json", inputs[i]);
        sig_buf_reset(&out);
        sig_encode_error(&out, "error", SIG_ERR_BAD_JSON, msg.id);
        ok(utf8_reference_valid((const uint8_t *)out.base, out.len), "... and the error reply is valid UTF-8 (id %s)", msg.id.len != 0 ? "echoed" : "dropped");
    }
}

/* Bytes that are not UTF-8 but that yajl's check lets through: overlong forms, UTF-8 encoded surrogates, code points
 * above U+10FFFF. sig_protocol.h promises SIG_ERR_BAD_JSON for invalid UTF-8 and sig_msg_decode() says it checks "even
 * though the websocket layer did it". (From the network this is unreachable: wslay closes with 1007 first, see the
 * conformance suite; it matters for every other caller and for the promise.) */
static void test_protocol_invalid_utf8_accepted(void)
{
    static const char *const bytes[] = {"\xc0\x80", "\xe0\x8b\x86", "\xf0\x80\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                        "\xf5\x80\x80\x80"};
    char json[128];
    sig_msg_t msg;
    size_t i;

    for (i = 0; i != sizeof(bytes) / sizeof(bytes[0]); ++i) {
        snprintf(json, sizeof(json), "{\"type\":\"dialing\",\"receiverUserId\":\"1\",\"field1\":\"%s\"}", bytes[i]);
        is_int(sig_msg_decode(json, strlen(json), &msg, &scratch), SIG_ERR_BAD_JSON, "invalid UTF-8 #%zu in field1: bad_json", i);
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * fuzz_jwt
 * -------------------------------------------------------------------------------------------------------------------*/

static const unsigned char key[] = "fuzz-key-0123456789abcdef-012345";
#define KEY_LEN 32
#define NOW 1700000000

static void b64url(sig_buf_t *buf, const char *src, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t i;

    for (i = 0; i != len; ++i) {
        acc = acc << 8 | (unsigned char)src[i];
        for (bits += 8; bits >= 6; bits -= 6)
            sig_buf_append_char(buf, tbl[acc >> (bits - 6) & 63]);
    }
    if (bits != 0)
        sig_buf_append_char(buf, tbl[acc << (6 - bits) & 63]);
}

/* verifies a token with the fixed header, `payload` as claims, signed with the key */
static int verify_claims(const char *payload, sig_jwt_claims_t *claims)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static sig_buf_t tok = SIG_BUF_INIT;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    sig_buf_reset(&tok);
    b64url(&tok, header, sizeof(header) - 1);
    sig_buf_append_char(&tok, '.');
    b64url(&tok, payload, strlen(payload));
    HMAC(EVP_sha256(), key, KEY_LEN, (const unsigned char *)tok.base, tok.len, mac, &mac_len);
    sig_buf_append_char(&tok, '.');
    b64url(&tok, (const char *)mac, mac_len);
    return sig_jwt_verify(tok.base, tok.len, key, KEY_LEN, NOW, claims, &scratch);
}

/* A lone low surrogate escape in `name` or `sub` becomes ED B0 80 (yajl), and the claims carry it: the name goes into
 * every `called` this connection sends, so each callee's browser drops its connection (1007). JavaScript backends can
 * produce such a token: JSON.stringify("\udc00") is "\"\\udc00\"". */
static void test_jwt_lone_surrogate_in_claims(void)
{
    sig_jwt_claims_t claims;
    int ret;

    ret = verify_claims("{\"sub\":\"1122\",\"exp\":1800000000,\"name\":\"x\\udc00\"}", &claims);
    ok(ret == SIG_ERR_AUTH_INVALID || (ret == 0 && utf8_reference_valid((const uint8_t *)claims.name.base, claims.name.len)),
       "name with a lone surrogate: refused, or valid UTF-8 (ret %d)", ret);
    ret = verify_claims("{\"sub\":\"\\udc00\",\"exp\":1800000000}", &claims);
    ok(ret == SIG_ERR_AUTH_INVALID || (ret == 0 && utf8_reference_valid((const uint8_t *)claims.sub.base, claims.sub.len)),
       "sub with a lone surrogate: refused, or valid UTF-8 (ret %d)", ret);
}

/* sig_jwt.c takes strings from yajl_tree, which NUL-terminates them, and measures them with strlen(): a token issued
 * to "1122\u0000x" authenticates as "1122" (create_connect with sponsorUserId "1122" passes the identity check). */
static void test_jwt_nul_in_sub(void)
{
    sig_jwt_claims_t claims;
    int ret;

    ret = verify_claims("{\"sub\":\"1122\\u0000x\",\"exp\":1800000000}", &claims);
    ok(ret == SIG_ERR_AUTH_INVALID || (ret == 0 && claims.sub.len == 6),
       "sub \"1122\\u0000x\": refused, or all 6 bytes (ret %d, sub length %zu)", ret, claims.sub.len);
    ret = verify_claims("{\"sub\":\"1122\",\"exp\":1800000000,\"name\":\"a\\u0000b\"}", &claims);
    ok(ret == SIG_ERR_AUTH_INVALID || (ret == 0 && claims.name.len == 3),
       "name \"a\\u0000b\": refused, or all 3 bytes (ret %d, name length %zu)", ret, claims.name.len);
}

int main(void)
{
    test_protocol_bad_json_echoes_lone_surrogate_id();
    test_protocol_invalid_utf8_accepted();
    test_jwt_lone_surrogate_in_claims();
    test_jwt_nul_in_sub();
    sig_buf_dispose(&scratch);
    sig_buf_dispose(&out);
    return done_testing();
}
