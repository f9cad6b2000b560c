/*
 * HS256 JSON Web Tokens: base64url, HMAC-SHA256 compared in constant time, then the claims.
 */
#include <math.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <yajl/yajl_tree.h>
#include "core/sig_json.h"
#include "core/sig_jwt.h"
#include "core/sig_registry.h"

/* Appends the base64url decoding (RFC 4648 section 5, no padding) of src; returns 0 or -1. */
static int base64url_decode(sig_buf_t *out, const char *src, size_t len)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t i;

    if (len % 4 == 1)
        return -1;
    for (i = 0; i != len; ++i) {
        char c = src[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-' ? 62 : c == '_' ? 63 : -1;
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sig_buf_append_char(out, (char)(acc >> bits & 0xff));
        }
    }
    /* the leftover bits of the last character must be zero (one encoding per byte string) */
    return (acc & ((1u << bits) - 1)) == 0 ? 0 : -1;
}

/* Parses the JSON object at scratch[off..]; NUL-terminated there for yajl_tree. */
static yajl_val parse_object(sig_buf_t *scratch, size_t off)
{
    yajl_val v;
    sig_buf_append_char(scratch, '\0');
    v = yajl_tree_parse(scratch->base + off, NULL, 0);
    if (v != NULL && !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        v = NULL;
    }
    return v;
}

static yajl_val get_field(yajl_val obj, const char *name)
{
    size_t i;
    for (i = 0; i != obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], name) == 0)
            return obj->u.object.values[i];
    return NULL;
}

/* A NumericDate (RFC 7519 2): seconds, possibly fractional; only finite values in int64 range. */
static int get_time(yajl_val obj, const char *name, int64_t *t, int required)
{
    yajl_val v = get_field(obj, name);
    if (v == NULL)
        return required ? -1 : 0;
    if (YAJL_IS_INTEGER(v)) {
        *t = v->u.number.i;
        return 0;
    }
    if (YAJL_IS_DOUBLE(v) && isfinite(v->u.number.d) && v->u.number.d > -9.2e18 && v->u.number.d < 9.2e18) {
        *t = (int64_t)floor(v->u.number.d);
        return 0;
    }
    return -1;
}

/* Copies a string (or integer, as written) claim into scratch; returns its offset and length. */
static int get_text(sig_buf_t *scratch, yajl_val obj, const char *name, size_t *off, size_t *len, int allow_integer)
{
    yajl_val v = get_field(obj, name);
    const char *s;
    if (v == NULL)
        return 1;
    if (YAJL_IS_STRING(v))
        s = v->u.string;
    else if (allow_integer && YAJL_IS_INTEGER(v))
        s = v->u.number.r;
    else
        return -1;
    *off = scratch->len;
    *len = strlen(s);
    sig_buf_append(scratch, s, *len + 1); /* NUL-terminated, as the protocol decoder's strings */
    return 0;
}

int sig_jwt_verify(const char *token, size_t len, const unsigned char *key, size_t key_len, int64_t now, sig_jwt_claims_t *claims,
                   sig_buf_t *scratch)
{
    const char *dot1, *dot2;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t header_off, payload_off, sub_off = 0, sub_len = 0, name_off = 0, name_len = 0;
    yajl_val header = NULL, payload = NULL, alg;
    int ret = SIG_ERR_AUTH_INVALID, r;

    memset(claims, 0, sizeof(*claims));
    sig_buf_reset(scratch);
    if (len == 0 || len > SIG_JWT_MAX_TOKEN_LEN || (dot1 = memchr(token, '.', len)) == NULL ||
        (dot2 = memchr(dot1 + 1, '.', (size_t)(token + len - dot1 - 1))) == NULL ||
        memchr(dot2 + 1, '.', (size_t)(token + len - dot2 - 1)) != NULL)
        return SIG_ERR_AUTH_INVALID;

    /* the signature first: nothing of an unsigned token is interpreted */
    if (base64url_decode(scratch, dot2 + 1, (size_t)(token + len - dot2 - 1)) != 0 || scratch->len != 32)
        return SIG_ERR_AUTH_INVALID;
    if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)token, (size_t)(dot2 - token), mac, &mac_len) == NULL ||
        mac_len != 32 || CRYPTO_memcmp(mac, scratch->base, 32) != 0)
        return SIG_ERR_AUTH_INVALID;

    header_off = scratch->len;
    if (base64url_decode(scratch, token, (size_t)(dot1 - token)) != 0 || (header = parse_object(scratch, header_off)) == NULL)
        goto Exit;
    /* only HS256: "none" or another algorithm chosen by whoever wrote the token is refused */
    if ((alg = get_field(header, "alg")) == NULL || !YAJL_IS_STRING(alg) || strcmp(alg->u.string, "HS256") != 0 ||
        get_field(header, "crit") != NULL)
        goto Exit;

    payload_off = scratch->len;
    if (base64url_decode(scratch, dot1 + 1, (size_t)(dot2 - dot1 - 1)) != 0)
        goto Exit;
    /* yajl_tree hands strings as C strings: a \u0000 would cut `sub` short (another user's id), and half a
     * surrogate pair would decode to invalid UTF-8; neither belongs in an identity */
    if (!sig_utf8_is_valid(scratch->base + payload_off, scratch->len - payload_off) ||
        sig_json_check_escapes(scratch->base + payload_off, scratch->len - payload_off, 0) != 0 ||
        (payload = parse_object(scratch, payload_off)) == NULL)
        goto Exit;
    if (get_time(payload, "exp", &claims->exp, 1) != 0 || get_time(payload, "nbf", &claims->nbf, 0) != 0)
        goto Exit;
    if (get_text(scratch, payload, "sub", &sub_off, &sub_len, 1) != 0 || sub_len == 0 || sub_len > SIG_USER_ID_MAX)
        goto Exit;
    if ((r = get_text(scratch, payload, "name", &name_off, &name_len, 0)) < 0)
        goto Exit;
    if (claims->nbf > now)
        goto Exit;
    /* pointers last: appending may have moved scratch */
    claims->sub = sig_str(scratch->base + sub_off, sub_len);
    if (r == 0)
        claims->name = sig_str(scratch->base + name_off, name_len);
    ret = claims->exp <= now ? SIG_ERR_AUTH_EXPIRED : 0;

Exit:
    if (header != NULL)
        yajl_tree_free(header);
    if (payload != NULL)
        yajl_tree_free(payload);
    if (ret == SIG_ERR_AUTH_INVALID)
        memset(claims, 0, sizeof(*claims));
    return ret;
}
