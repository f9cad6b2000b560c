/*
 * fuzz_jwt.c: libFuzzer target for the token parser (handler/core/sig_jwt.c), with a fixed 32-byte key and a fixed `now`.
 *
 * A random token almost never carries a valid HMAC, so the parser would stop at the signature. The first input byte
 * therefore picks what the rest is:
 *   odd:           the token itself, verified as it is;
 *   even, bit 1 0: the claims JSON, signed here with the fixed header {"alg":"HS256","typ":"JWT"};
 *   even, bit 1 1: "HEADER\0CLAIMS" (or only a header when there is no NUL), both signed here;
 * so mutations of the JSON reach the header and claims checks past the signature.
 *
 * Checks (a failure abort()s, which libFuzzer reports as a crash):
 * - the result is 0, SIG_ERR_AUTH_INVALID or SIG_ERR_AUTH_EXPIRED;
 * - a token that is not refused as invalid carries the right HMAC-SHA256 of its first two parts (recomputed here), and
 *   its header has an "alg" of "HS256";
 * - claims: zeroed when invalid; otherwise sub is 1..256 bytes, NUL-terminated and, like name, strict UTF-8 (both end
 *   up in `called` messages, where invalid UTF-8 makes the browser drop the connection); exp > now exactly when the
 *   result is 0; nbf <= now.
 */
#include <stdint.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>
#include "core/sig_jwt.h"
#include "core/sig_registry.h" /* SIG_USER_ID_MAX */
#include "fuzz_check.h"

#define NOW 1700000000
#define HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const unsigned char key[32] = "fuzz-key-0123456789abcdef-012345";
static sig_buf_t scratch = SIG_BUF_INIT, token = SIG_BUF_INIT, tmp = SIG_BUF_INIT;

/* ---------------------------------------------------------------------------------------------------------------------
 * base64url and HMAC, written here independently of sig_jwt.c
 * -------------------------------------------------------------------------------------------------------------------*/

static const char b64tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_encode(sig_buf_t *out, const void *src, size_t len)
{
    const unsigned char *s = src;
    uint32_t acc = 0;
    int bits = 0;
    size_t i;

    for (i = 0; i != len; ++i) {
        acc = acc << 8 | s[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            sig_buf_append_char(out, b64tbl[acc >> bits & 63]);
        }
    }
    if (bits != 0)
        sig_buf_append_char(out, b64tbl[acc << (6 - bits) & 63]);
}

/* Decodes base64url leniently (any leftover bits ignored); returns 0, or -1 on a character outside the alphabet. */
static int b64url_decode(sig_buf_t *out, const char *src, size_t len)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t i;

    for (i = 0; i != len; ++i) {
        const char *p = memchr(b64tbl, src[i], 64);
        if (p == NULL)
            return -1;
        acc = acc << 6 | (uint32_t)(p - b64tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sig_buf_append_char(out, (char)(acc >> bits & 0xff));
        }
    }
    return 0;
}

/* Appends HMAC-SHA256(key, out[0..len)) to `out`, base64url. */
static void sign(sig_buf_t *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)out->base, out->len, mac, &mac_len) == NULL)
        abort();
    sig_buf_append_char(out, '.');
    b64url_encode(out, mac, mac_len);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * The oracles
 * -------------------------------------------------------------------------------------------------------------------*/

/* Returns 1 if `tok` is A.B.C with C the base64url of HMAC-SHA256(key, "A.B"). */
static int signature_is_right(const char *tok, size_t len)
{
    const char *dot1 = memchr(tok, '.', len), *dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok)) : NULL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)) != NULL)
        return 0;
    sig_buf_reset(&tmp);
    if (b64url_decode(&tmp, dot2 + 1, len - (size_t)(dot2 + 1 - tok)) != 0 || tmp.len != 32)
        return 0;
    if (HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)tok, (size_t)(dot2 - tok), mac, &mac_len) == NULL)
        abort();
    return mac_len == 32 && CRYPTO_memcmp(mac, tmp.base, 32) == 0;
}

/* Returns 1 if the header of `tok` decodes to a JSON object with some "alg" key whose value is "HS256". */
static int header_says_hs256(const char *tok, size_t len)
{
    const char *dot1 = memchr(tok, '.', len);
    yajl_val header;
    size_t i;
    int found = 0;

    sig_buf_reset(&tmp);
    if (dot1 == NULL || b64url_decode(&tmp, tok, (size_t)(dot1 - tok)) != 0)
        return 0;
    sig_buf_append_char(&tmp, '\0');
    if ((header = yajl_tree_parse(tmp.base, NULL, 0)) == NULL)
        return 0;
    if (YAJL_IS_OBJECT(header))
        for (i = 0; i != header->u.object.len; ++i)
            if (strcmp(header->u.object.keys[i], "alg") == 0 && YAJL_IS_STRING(header->u.object.values[i]) &&
                strcmp(header->u.object.values[i]->u.string, "HS256") == 0)
                found = 1;
    yajl_tree_free(header);
    return found;
}

/* The first "sub" and "name" at the top level of the payload, read with yajl's length-aware callbacks. */
struct st_claim_reader_t {
    size_t depth;
    int key; /* 1: the next value is sub, 2: name, 0: neither */
    int have_sub, have_name;
    sig_buf_t sub, name;
};

static void claim_value(struct st_claim_reader_t *r, const char *s, size_t len)
{
    if (r->depth != 1)
        return;
    if (r->key == 1 && !r->have_sub) {
        r->have_sub = 1;
        sig_buf_append(&r->sub, s, len);
    } else if (r->key == 2 && !r->have_name) {
        r->have_name = 1;
        sig_buf_append(&r->name, s, len);
    }
    r->key = 0;
}

static int cr_scalar(void *ctx)
{
    ((struct st_claim_reader_t *)ctx)->key = 0;
    return 1;
}

static int cr_bool(void *ctx, int v)
{
    (void)v;
    return cr_scalar(ctx);
}

static int cr_number(void *ctx, const char *s, size_t len)
{
    claim_value(ctx, s, len);
    return 1;
}

static int cr_string(void *ctx, const unsigned char *s, size_t len)
{
    claim_value(ctx, (const char *)s, len);
    return 1;
}

static int cr_key(void *ctx, const unsigned char *s, size_t len)
{
    struct st_claim_reader_t *r = ctx;
    if (r->depth == 1)
        r->key = len == 3 && memcmp(s, "sub", 3) == 0 ? 1 : len == 4 && memcmp(s, "name", 4) == 0 ? 2 : 0;
    return 1;
}

static int cr_start(void *ctx)
{
    struct st_claim_reader_t *r = ctx;
    if (r->depth == 1)
        r->key = 0;
    ++r->depth;
    return 1;
}

static int cr_end(void *ctx)
{
    --((struct st_claim_reader_t *)ctx)->depth;
    return 1;
}

static const yajl_callbacks claim_callbacks = {.yajl_null = cr_scalar,
                                               .yajl_boolean = cr_bool,
                                               .yajl_number = cr_number,
                                               .yajl_string = cr_string,
                                               .yajl_start_map = cr_start,
                                               .yajl_map_key = cr_key,
                                               .yajl_end_map = cr_end,
                                               .yajl_start_array = cr_start,
                                               .yajl_end_array = cr_end};

/* Checks that the claims hold the payload's first sub and name exactly (an embedded NUL must not shorten them). Skipped
 * when the payload is not one JSON text by itself (sig_jwt.c stops reading at a NUL byte). */
static void check_claim_texts(const char *tok, size_t len, const sig_jwt_claims_t *claims)
{
    const char *dot1 = memchr(tok, '.', len), *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok));
    static struct st_claim_reader_t r;
    yajl_handle h;
    int parsed;

    r.depth = 0;
    r.key = r.have_sub = r.have_name = 0;
    sig_buf_reset(&r.sub);
    sig_buf_reset(&r.name);
    sig_buf_reset(&tmp);
    if (b64url_decode(&tmp, dot1 + 1, (size_t)(dot2 - dot1 - 1)) != 0)
        return;
    if ((h = yajl_alloc(&claim_callbacks, NULL, &r)) == NULL)
        abort();
    parsed = yajl_parse(h, (const unsigned char *)tmp.base, tmp.len) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    if (!parsed)
        return;
    FUZZ_CHECK(r.have_sub && sig_str_eq(claims->sub, sig_str(r.sub.base, r.sub.len)), "sub is not the token's sub");
    if (claims->name.base != NULL)
        FUZZ_CHECK(r.have_name && sig_str_eq(claims->name, sig_str(r.name.base, r.name.len)), "name is not the token's name");
}

static void check_result(const char *tok, size_t len, int ret, const sig_jwt_claims_t *claims)
{
    FUZZ_CHECK(ret == 0 || ret == SIG_ERR_AUTH_INVALID || ret == SIG_ERR_AUTH_EXPIRED, "unexpected result");
    if (ret == SIG_ERR_AUTH_INVALID) {
        FUZZ_CHECK(claims->sub.base == NULL && claims->sub.len == 0 && claims->name.base == NULL && claims->name.len == 0 &&
                       claims->exp == 0 && claims->nbf == 0,
                   "claims not zeroed on an invalid token");
        return;
    }
    FUZZ_CHECK(signature_is_right(tok, len), "accepted a token without the right signature");
    FUZZ_CHECK(header_says_hs256(tok, len), "accepted a token whose alg is not HS256");
    FUZZ_CHECK(claims->sub.base != NULL && claims->sub.len >= 1 && claims->sub.len <= SIG_USER_ID_MAX, "bad sub accepted");
    FUZZ_CHECK(claims->sub.base[claims->sub.len] == '\0', "sub not NUL-terminated");
    check_claim_texts(tok, len, claims);
    FUZZ_CHECK(fuzz_utf8_valid(claims->sub.base, claims->sub.len), "sub is not valid UTF-8");
    FUZZ_CHECK(claims->name.base != NULL || claims->name.len == 0, "name neither absent nor set");
    if (claims->name.base != NULL) {
        FUZZ_CHECK(claims->name.base[claims->name.len] == '\0', "name not NUL-terminated");
        FUZZ_CHECK(fuzz_utf8_valid(claims->name.base, claims->name.len), "name is not valid UTF-8");
    }
    FUZZ_CHECK((ret == 0) == (claims->exp > NOW), "exp and result disagree");
    FUZZ_CHECK(claims->nbf <= NOW, "accepted a token before its nbf");
}

/* ---------------------------------------------------------------------------------------------------------------------
 * The target
 * -------------------------------------------------------------------------------------------------------------------*/

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sig_jwt_claims_t claims;
    const char *tok;
    size_t len;
    int ret;

    if (size == 0)
        return 0;
    if ((data[0] & 1) != 0) {
        tok = (const char *)data + 1;
        len = size - 1;
    } else {
        const char *json = (const char *)data + 1, *nul;
        size_t json_len = size - 1;
        sig_buf_reset(&token);
        if ((data[0] & 2) != 0) {
            nul = memchr(json, '\0', json_len);
            b64url_encode(&token, json, nul != NULL ? (size_t)(nul - json) : json_len);
            sig_buf_append_char(&token, '.');
            if (nul != NULL)
                b64url_encode(&token, nul + 1, json_len - (size_t)(nul + 1 - json));
        } else {
            b64url_encode(&token, HEADER, sizeof(HEADER) - 1);
            sig_buf_append_char(&token, '.');
            b64url_encode(&token, json, json_len);
        }
        sign(&token);
        tok = token.base;
        len = token.len;
    }

    memset(&claims, 0xa5, sizeof(claims)); /* whatever the caller's stack held */
    ret = sig_jwt_verify(tok, len, key, sizeof(key), NOW, &claims, &scratch);
    check_result(tok, len, ret, &claims);
    return 0;
}
