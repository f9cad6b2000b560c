/*
 * test_jwt.c: HS256 token verification (handler/core/sig_jwt.c). Tokens are made here with OpenSSL, so
 * every case names exactly what is wrong with its token.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "core/sig_jwt.h"
#include "tap.h"

static const unsigned char key[] = "0123456789abcdef0123456789abcdef";
#define KEY_LEN 32
#define NOW 1700000000

static sig_buf_t scratch = SIG_BUF_INIT;
static sig_jwt_claims_t claims;

static void b64url(sig_buf_t *out, const void *src, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *s = src;
    size_t i;
    for (i = 0; i + 2 < len; i += 3) {
        sig_buf_append_char(out, tbl[s[i] >> 2]);
        sig_buf_append_char(out, tbl[(s[i] & 3) << 4 | s[i + 1] >> 4]);
        sig_buf_append_char(out, tbl[(s[i + 1] & 15) << 2 | s[i + 2] >> 6]);
        sig_buf_append_char(out, tbl[s[i + 2] & 63]);
    }
    if (len - i == 1) {
        sig_buf_append_char(out, tbl[s[i] >> 2]);
        sig_buf_append_char(out, tbl[(s[i] & 3) << 4]);
    } else if (len - i == 2) {
        sig_buf_append_char(out, tbl[s[i] >> 2]);
        sig_buf_append_char(out, tbl[(s[i] & 3) << 4 | s[i + 1] >> 4]);
        sig_buf_append_char(out, tbl[(s[i + 1] & 15) << 2]);
    }
}

/* header.payload.signature, signed with `k` */
static const char *make_token(const char *header, const char *payload, const unsigned char *k, size_t klen)
{
    static sig_buf_t tok = SIG_BUF_INIT;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len;

    sig_buf_reset(&tok);
    b64url(&tok, header, strlen(header));
    sig_buf_append_char(&tok, '.');
    b64url(&tok, payload, strlen(payload));
    HMAC(EVP_sha256(), k, (int)klen, (const unsigned char *)tok.base, tok.len, mac, &mac_len);
    sig_buf_append_char(&tok, '.');
    b64url(&tok, mac, mac_len);
    sig_buf_append_char(&tok, '\0');
    --tok.len;
    return tok.base;
}

static int verify(const char *token)
{
    return sig_jwt_verify(token, strlen(token), key, KEY_LEN, NOW, &claims, &scratch);
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

int main(void)
{
    char buf[SIG_JWT_MAX_TOKEN_LEN + 64];
    const char *t;

    is_int(verify(make_token(HS256, "{\"sub\":\"1122\",\"exp\":1700000100,\"name\":\"张三\"}", key, KEY_LEN)), 0, "a valid token");
    is_str(claims.sub.base, "1122", "sub");
    is_int(claims.sub.len, 4, "sub length");
    is_str(claims.name.base, "张三", "name (UTF-8)");
    is_int(claims.exp, 1700000100, "exp");

    is_int(verify(make_token(HS256, "{\"sub\":1122,\"exp\":1700000100.9}", key, KEY_LEN)), 0, "integer sub and fractional exp");
    is_str(claims.sub.base, "1122", "an integer sub means its decimal text");
    ok(claims.name.base == NULL && claims.name.len == 0, "no name: absent");

    is_int(verify(make_token(HS256, "{\"sub\":\"1122\",\"exp\":1700000000}", key, KEY_LEN)), SIG_ERR_AUTH_EXPIRED,
           "exp == now: expired");
    is_int(verify(make_token(HS256, "{\"sub\":\"1122\",\"exp\":1600000000}", key, KEY_LEN)), SIG_ERR_AUTH_EXPIRED,
           "exp in the past: expired");
    is_str(claims.sub.base, "1122", "an expired token still names its subject");
    is_int(verify(make_token(HS256, "{\"sub\":\"1122\",\"exp\":1700000100,\"nbf\":1700000050}", key, KEY_LEN)),
           SIG_ERR_AUTH_INVALID, "nbf in the future: not valid yet");
    is_int(verify(make_token(HS256, "{\"sub\":\"1122\",\"exp\":1700000100,\"nbf\":1690000000}", key, KEY_LEN)), 0,
           "nbf in the past: fine");

    /* signatures and algorithms */
    is_int(verify(make_token(HS256, "{\"sub\":\"1122\",\"exp\":1700000100}", (const unsigned char *)"another key of 32 bytes long!!!!",
                             KEY_LEN)),
           SIG_ERR_AUTH_INVALID, "signed with another key");
    t = make_token(HS256, "{\"sub\":\"1122\",\"exp\":1700000100}", key, KEY_LEN);
    snprintf(buf, sizeof(buf), "%s", t);
    buf[strchr(buf, '.') - buf + 3] ^= 1; /* one payload character changed */
    is_int(verify(buf), SIG_ERR_AUTH_INVALID, "payload tampered with");
    snprintf(buf, sizeof(buf), "%.*s.", (int)(strrchr(t, '.') - t), t);
    is_int(verify(buf), SIG_ERR_AUTH_INVALID, "empty signature (alg none style)");
    is_int(verify(make_token("{\"alg\":\"none\"}", "{\"sub\":\"1122\",\"exp\":1700000100}", key, KEY_LEN)), SIG_ERR_AUTH_INVALID,
           "alg none, even correctly signed, is refused");
    is_int(verify(make_token("{\"alg\":\"HS512\"}", "{\"sub\":\"1122\",\"exp\":1700000100}", key, KEY_LEN)), SIG_ERR_AUTH_INVALID,
           "another algorithm is refused");
    is_int(verify(make_token("{\"alg\":\"HS256\",\"crit\":[\"x\"]}", "{\"sub\":\"1122\",\"exp\":1700000100}", key, KEY_LEN)),
           SIG_ERR_AUTH_INVALID, "a critical header we do not understand is refused");
    is_int(verify(make_token("[1]", "{\"sub\":\"1122\",\"exp\":1700000100}", key, KEY_LEN)), SIG_ERR_AUTH_INVALID,
           "header not an object");

    /* claims */
    is_int(verify(make_token(HS256, "{\"exp\":1700000100}", key, KEY_LEN)), SIG_ERR_AUTH_INVALID, "no sub");
    is_int(verify(make_token(HS256, "{\"sub\":\"1122\"}", key, KEY_LEN)), SIG_ERR_AUTH_INVALID, "no exp");
    is_int(verify(make_token(HS256, "{\"sub\":\"\",\"exp\":1700000100}", key, KEY_LEN)), SIG_ERR_AUTH_INVALID, "empty sub");
    is_int(verify(make_token(HS256, "{\"sub\":true,\"exp\":1700000100}", key, KEY_LEN)), SIG_ERR_AUTH_INVALID, "sub a boolean");
    is_int(verify(make_token(HS256, "{\"sub\":\"1\",\"exp\":\"soon\"}", key, KEY_LEN)), SIG_ERR_AUTH_INVALID, "exp a string");
    is_int(verify(make_token(HS256, "{\"sub\":\"1\",\"exp\":1700000100,\"name\":5}", key, KEY_LEN)), SIG_ERR_AUTH_INVALID,
           "name a number");
    is_int(verify(make_token(HS256, "not json", key, KEY_LEN)), SIG_ERR_AUTH_INVALID, "payload not JSON");
    {
        char payload[400];
        memset(buf, 'x', 257);
        snprintf(payload, sizeof(payload), "{\"sub\":\"%.257s\",\"exp\":1700000100}", buf);
        is_int(verify(make_token(HS256, payload, key, KEY_LEN)), SIG_ERR_AUTH_INVALID, "sub of 257 bytes");
    }

    /* shapes */
    is_int(verify(""), SIG_ERR_AUTH_INVALID, "empty token");
    is_int(verify("abc"), SIG_ERR_AUTH_INVALID, "no dots");
    is_int(verify("a.b.c.d"), SIG_ERR_AUTH_INVALID, "four parts");
    t = make_token(HS256, "{\"sub\":\"1122\",\"exp\":1700000100}", key, KEY_LEN);
    snprintf(buf, sizeof(buf), "%s=", t);
    is_int(verify(buf), SIG_ERR_AUTH_INVALID, "padding is not base64url");
    memset(buf, 'a', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    buf[10] = buf[20] = '.';
    is_int(verify(buf), SIG_ERR_AUTH_INVALID, "longer than SIG_JWT_MAX_TOKEN_LEN");

    sig_buf_dispose(&scratch);
    return done_testing();
}
