/*
 * tlsrec_harness.h: what test_tlsrec.c and test_tlsrec_crafted.c share: the test's own RFC 8446 record protection
 * (HKDF-Expand-Label on libcrypto's HMAC, the AEADs through EVP: the reference, independent of sig_tlsrec.c), and a
 * TLS 1.3 connection made by OpenSSL in memory whose server side is taken over by sig_tlsrec. Static: each test
 * program has its own certificate and cipher contexts.
 */
#ifndef TLSREC_HARNESS_H
#define TLSREC_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "core/sig_tlsrec.h"
#include "tap.h"

#define MAX_RECORD (SIG_TLSREC_HEADER + SIG_TLSREC_MAX_CIPHERTEXT)
#define MAX_INNER (SIG_TLSREC_MAX_PLAIN + 1) /* TLSInnerPlaintext, padding included (5.4) */

static const uint16_t suites[3] = {SIG_TLSREC_AES_128_GCM_SHA256, SIG_TLSREC_AES_256_GCM_SHA384,
                                   SIG_TLSREC_CHACHA20_POLY1305_SHA256};
static sig_tlsrec_ciphers_t *ciphers; /* the thread's, shared by every connection below */
static EVP_PKEY *server_key;
static X509 *server_cert;

static inline const char *suite_name(uint16_t suite)
{
    switch (suite) {
    case SIG_TLSREC_AES_128_GCM_SHA256:
        return "TLS_AES_128_GCM_SHA256";
    case SIG_TLSREC_AES_256_GCM_SHA384:
        return "TLS_AES_256_GCM_SHA384";
    default:
        return "TLS_CHACHA20_POLY1305_SHA256";
    }
}

static inline const char *result_name(int ret)
{
    switch (ret) {
    case 0:
        return "0";
    case SIG_TLSREC_CLOSED:
        return "CLOSED";
    case SIG_TLSREC_ERR_RECORD:
        return "ERR_RECORD";
    case SIG_TLSREC_ERR_AUTH:
        return "ERR_AUTH";
    case SIG_TLSREC_ERR_ALERT:
        return "ERR_ALERT";
    case SIG_TLSREC_ERR_UNEXPECTED:
        return "ERR_UNEXPECTED";
    default:
        return "?";
    }
}

static inline void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
    size_t i;
    for (i = 0; i != len; ++i) {
        seed = seed * 1103515245 + 12345;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static inline size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    unsigned v;
    while (*hex != '\0') {
        if (*hex == ' ') {
            ++hex;
            continue;
        }
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

static inline int all_zero(const uint8_t *p, size_t len)
{
    while (len-- != 0)
        if (*p++ != 0)
            return 0;
    return 1;
}

/* ---- the reference: RFC 8446's record protection written here, independently of sig_tlsrec.c ---- */

typedef struct {
    uint16_t suite;
    size_t secret_len, key_len;
    uint8_t secret[SIG_TLSREC_MAX_SECRET], key[32], iv[12];
    uint64_t seq;
} ref_dir_t;

static inline const EVP_MD *ref_md(uint16_t suite)
{
    return suite == SIG_TLSREC_AES_256_GCM_SHA384 ? EVP_sha384() : EVP_sha256();
}

static inline const EVP_CIPHER *ref_cipher(uint16_t suite)
{
    return suite == SIG_TLSREC_AES_128_GCM_SHA256   ? EVP_aes_128_gcm()
           : suite == SIG_TLSREC_AES_256_GCM_SHA384 ? EVP_aes_256_gcm()
                                                    : EVP_chacha20_poly1305();
}

/* HKDF-Expand (RFC 5869 2.3) of the HkdfLabel of RFC 8446 7.1 with an empty context, any length. */
static inline void ref_expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len, const char *label, uint8_t *out,
                             size_t len)
{
    uint8_t info[2 + 1 + 255 + 1], t[EVP_MAX_MD_SIZE], msg[EVP_MAX_MD_SIZE + sizeof(info) + 1];
    size_t info_len, label_len = strlen(label), done = 0, t_len = 0;
    unsigned int md_len;
    uint8_t counter = 1;

    info[0] = (uint8_t)(len >> 8);
    info[1] = (uint8_t)len;
    info[2] = (uint8_t)(6 + label_len);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, label_len);
    info[9 + label_len] = 0;
    info_len = 10 + label_len;
    while (done < len) {
        size_t n = t_len, take;
        memcpy(msg, t, t_len); /* T(i) = HMAC(PRK, T(i-1) | info | i) */
        memcpy(msg + n, info, info_len);
        n += info_len;
        msg[n++] = counter++;
        HMAC(md, secret, (int)secret_len, msg, n, t, &md_len);
        t_len = md_len;
        take = len - done < t_len ? len - done : t_len;
        memcpy(out + done, t, take);
        done += take;
    }
}

static inline void ref_dir_init(ref_dir_t *d, uint16_t suite, const uint8_t *secret, uint64_t seq)
{
    memset(d, 0, sizeof(*d));
    d->suite = suite;
    d->secret_len = suite == SIG_TLSREC_AES_256_GCM_SHA384 ? 48 : 32;
    d->key_len = suite == SIG_TLSREC_AES_128_GCM_SHA256 ? 16 : 32;
    memmove(d->secret, secret, d->secret_len);
    ref_expand_label(ref_md(suite), d->secret, d->secret_len, "key", d->key, d->key_len);
    ref_expand_label(ref_md(suite), d->secret, d->secret_len, "iv", d->iv, 12);
    d->seq = seq;
}

/* application_traffic_secret_N+1 (7.2) */
static inline void ref_dir_update(ref_dir_t *d)
{
    uint8_t next[SIG_TLSREC_MAX_SECRET];
    ref_expand_label(ref_md(d->suite), d->secret, d->secret_len, "traffic upd", next, d->secret_len);
    ref_dir_init(d, d->suite, next, 0);
}

static inline void ref_nonce(const ref_dir_t *d, uint8_t nonce[12])
{
    int i;
    memcpy(nonce, d->iv, 12);
    for (i = 0; i != 8; ++i)
        nonce[11 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/* One record of the given TLSInnerPlaintext (content, type, padding: the caller's bytes as they are). */
static inline size_t ref_seal_inner(ref_dir_t *d, const uint8_t *inner, size_t inner_len, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    size_t ct_len = inner_len + SIG_TLSREC_TAG;
    uint8_t nonce[12];
    int n;

    out[0] = 23;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(ct_len >> 8);
    out[4] = (uint8_t)ct_len;
    ref_nonce(d, nonce);
    if (!EVP_EncryptInit_ex(ctx, ref_cipher(d->suite), NULL, d->key, nonce) || !EVP_EncryptUpdate(ctx, NULL, &n, out, 5) ||
        (inner_len != 0 && !EVP_EncryptUpdate(ctx, out + 5, &n, inner, (int)inner_len)) ||
        !EVP_EncryptFinal_ex(ctx, out + 5 + inner_len, &n) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SIG_TLSREC_TAG, out + 5 + inner_len))
        abort();
    EVP_CIPHER_CTX_free(ctx);
    ++d->seq;
    return 5 + ct_len;
}

/* One record: `len` bytes of content of `type`, then `padding` zeros. */
static inline size_t ref_seal(ref_dir_t *d, uint8_t type, const void *content, size_t len, size_t padding, uint8_t *out)
{
    uint8_t *inner = calloc(1, len + 1 + padding);
    size_t n;
    if (len != 0)
        memcpy(inner, content, len);
    inner[len] = type;
    n = ref_seal_inner(d, inner, len + 1 + padding, out);
    free(inner);
    return n;
}

/* Opens the record at `rec` (`avail` bytes there) into `content`; returns its size on the wire, 0 when it is not one
 * record under `d`'s key at `d->seq`. */
static inline size_t ref_open(ref_dir_t *d, const uint8_t *rec, size_t avail, uint8_t *type, uint8_t *content, size_t *len)
{
    EVP_CIPHER_CTX *ctx;
    uint8_t nonce[12], tag[SIG_TLSREC_TAG];
    size_t ct_len, n;
    int outl, good;

    if (avail < 5 || rec[0] != 23 || rec[1] != 3 || rec[2] != 3)
        return 0;
    ct_len = (size_t)rec[3] << 8 | rec[4];
    if (ct_len < SIG_TLSREC_TAG + 1 || ct_len > SIG_TLSREC_MAX_CIPHERTEXT || avail - 5 < ct_len)
        return 0;
    n = ct_len - SIG_TLSREC_TAG;
    memcpy(tag, rec + 5 + n, SIG_TLSREC_TAG);
    ref_nonce(d, nonce);
    ctx = EVP_CIPHER_CTX_new();
    good = EVP_DecryptInit_ex(ctx, ref_cipher(d->suite), NULL, d->key, nonce) && EVP_DecryptUpdate(ctx, NULL, &outl, rec, 5) &&
           EVP_DecryptUpdate(ctx, content, &outl, rec + 5, (int)n) &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, SIG_TLSREC_TAG, tag) && EVP_DecryptFinal_ex(ctx, content + n, &outl) > 0;
    EVP_CIPHER_CTX_free(ctx);
    if (!good)
        return 0;
    while (n != 0 && content[n - 1] == 0)
        --n;
    if (n == 0)
        return 0;
    *type = content[--n];
    *len = n;
    ++d->seq;
    return 5 + ct_len;
}

/* The records in `buf`: their count, and each one's ciphertext length checked against `max_ct`; 0 if `buf` is not a
 * whole number of well-formed record headers. */
static inline size_t count_records(const uint8_t *buf, size_t len, size_t max_ct, size_t *bounds, size_t max_bounds)
{
    size_t off = 0, n = 0;
    while (off < len) {
        size_t ct;
        if (len - off < 5 || buf[off] != 23 || buf[off + 1] != 3 || buf[off + 2] != 3)
            return 0;
        ct = (size_t)buf[off + 3] << 8 | buf[off + 4];
        if (ct > max_ct || len - off - 5 < ct)
            return 0;
        off += 5 + ct;
        if (bounds != NULL && n < max_bounds)
            bounds[n] = off;
        ++n;
    }
    return n;
}

/* ---- a connection made by OpenSSL and taken over: the server becomes sig_tlsrec, the client stays OpenSSL ---- */

typedef struct {
    uint16_t suite;
    SSL_CTX *sctx, *cctx;
    SSL *s, *c;
    BIO *to_server, *from_server, *to_client, *from_client;
    uint8_t client_secret[SIG_TLSREC_MAX_SECRET], server_secret[SIG_TLSREC_MAX_SECRET];
    size_t client_secret_len, server_secret_len;
    uint64_t read_count, write_count; /* the server's records under the client's / its own application key */
    sig_tlsrec_t t;
} pair_t;

static inline void make_certificate(void)
{
    X509_NAME *name;

    server_key = EVP_EC_gen("P-256");
    server_cert = X509_new();
    if (server_key == NULL || server_cert == NULL)
        abort();
    X509_set_version(server_cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(server_cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(server_cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(server_cert), 3600);
    name = X509_get_subject_name(server_cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test_tlsrec", -1, -1, 0);
    X509_set_issuer_name(server_cert, name);
    X509_set_pubkey(server_cert, server_key);
    if (X509_sign(server_cert, server_key, EVP_sha256()) == 0)
        abort();
}

/* "LABEL <client random> <secret>", on the server */
static inline void on_keylog(const SSL *ssl, const char *line)
{
    pair_t *p = SSL_get_app_data(ssl);
    const char *secret = strchr(line, ' ');
    uint8_t *dst;
    size_t *dst_len;

    if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) {
        dst = p->client_secret;
        dst_len = &p->client_secret_len;
    } else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0) {
        dst = p->server_secret;
        dst_len = &p->server_secret_len;
    } else {
        return;
    }
    if (secret == NULL || (secret = strchr(secret + 1, ' ')) == NULL || strlen(secret + 1) > 2 * SIG_TLSREC_MAX_SECRET)
        abort();
    *dst_len = unhex(secret + 1, dst);
}

/* Each record header the server writes after its application secret is logged is under that key; each it reads after
 * the client's is logged, under the client's. */
static inline void on_msg(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    pair_t *p = arg;
    (void)version, (void)buf, (void)len, (void)ssl;
    if (content_type != SSL3_RT_HEADER)
        return;
    if (write_p && p->server_secret_len != 0)
        ++p->write_count;
    if (!write_p && p->client_secret_len != 0)
        ++p->read_count;
}

static inline BIO *new_mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(b, -1); /* empty: "retry", not EOF */
    return b;
}

static inline void pump(BIO *from, BIO *to)
{
    uint8_t buf[4096];
    int n;
    while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
        BIO_write(to, buf, n);
}

/* Every byte OpenSSL's `ssl` can read now, into `out`; the last SSL_get_error in `*err`. */
static inline size_t ssl_read_all(SSL *ssl, uint8_t *out, size_t cap, int *err)
{
    size_t total = 0;
    int n;
    for (;;) {
        n = SSL_read(ssl, out + total, (int)(cap - total > 16384 ? 16384 : cap - total));
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    *err = SSL_get_error(ssl, n);
    return total;
}

static inline void pair_free(pair_t *p)
{
    if (p == NULL)
        return;
    sig_tlsrec_dispose(&p->t);
    SSL_free(p->s);
    SSL_free(p->c);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    free(p);
}

/* A TLS 1.3 connection with `suite`, a message each way through OpenSSL on both sides (the client has read the two
 * NewSessionTickets too), then the server's side handed to sig_tlsrec and its `SSL` freed. NULL on any failure. */
static inline pair_t *pair_new(uint16_t suite)
{
    static const char hello_c[] = "hello from the client", hello_s[] = "hello from the server";
    pair_t *p = calloc(1, sizeof(*p));
    uint8_t buf[256];
    int i, err, fail = 0;

    p->suite = suite;
    p->sctx = SSL_CTX_new(TLS_server_method());
    p->cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(p->sctx, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(p->cctx, TLS1_3_VERSION);
    if (!SSL_CTX_set_ciphersuites(p->sctx, suite_name(suite)) || !SSL_CTX_set_ciphersuites(p->cctx, suite_name(suite)) ||
        !SSL_CTX_use_certificate(p->sctx, server_cert) || !SSL_CTX_use_PrivateKey(p->sctx, server_key))
        fail = 1;
    SSL_CTX_set_keylog_callback(p->sctx, on_keylog);
    SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
    p->s = SSL_new(p->sctx);
    p->c = SSL_new(p->cctx);
    p->to_server = new_mem_bio();
    p->from_server = new_mem_bio();
    p->to_client = new_mem_bio();
    p->from_client = new_mem_bio();
    SSL_set_bio(p->s, p->to_server, p->from_server);
    SSL_set_bio(p->c, p->to_client, p->from_client);
    SSL_set_app_data(p->s, p);
    SSL_set_msg_callback(p->s, on_msg);
    SSL_set_msg_callback_arg(p->s, p);
    SSL_set_accept_state(p->s);
    SSL_set_connect_state(p->c);

    for (i = 0; i != 10 && !(SSL_is_init_finished(p->s) && SSL_is_init_finished(p->c)); ++i) {
        SSL_do_handshake(p->c);
        pump(p->from_client, p->to_server);
        SSL_do_handshake(p->s);
        pump(p->from_server, p->to_client);
    }
    fail |= !SSL_is_init_finished(p->s) || !SSL_is_init_finished(p->c) || SSL_version(p->s) != TLS1_3_VERSION;
    fail |= (SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(p->s)) & 0xffff) != suite;

    /* some data both ways through OpenSSL: the counts are not 0 */
    fail |= SSL_write(p->c, hello_c, sizeof(hello_c)) != (int)sizeof(hello_c);
    pump(p->from_client, p->to_server);
    fail |= ssl_read_all(p->s, buf, sizeof(buf), &err) != sizeof(hello_c) || memcmp(buf, hello_c, sizeof(hello_c)) != 0;
    fail |= SSL_write(p->s, hello_s, sizeof(hello_s)) != (int)sizeof(hello_s);
    pump(p->from_server, p->to_client);
    fail |= ssl_read_all(p->c, buf, sizeof(buf), &err) != sizeof(hello_s) || memcmp(buf, hello_s, sizeof(hello_s)) != 0;
    fail |= BIO_pending(p->to_server) != 0 || BIO_pending(p->to_client) != 0 || BIO_pending(p->from_server) != 0 ||
            BIO_pending(p->from_client) != 0 || SSL_pending(p->s) != 0;
    fail |= p->client_secret_len != sig_tlsrec_secret_len(suite) || p->server_secret_len != p->client_secret_len;
    fail |= p->read_count == 0 || p->write_count < 3; /* the tickets and the message */

    /* the take-over */
    fail |= sig_tlsrec_init(&p->t, suite, p->client_secret, p->server_secret, p->client_secret_len, p->read_count,
                            p->write_count) != 0;
    SSL_free(p->s);
    p->s = NULL;
    if (fail) {
        ERR_print_errors_fp(stdout);
        pair_free(p);
        return NULL;
    }
    return p;
}

/* The server back at its take-over state (the same secrets and counts), for replaying the same client bytes. */
static inline void pair_reset(pair_t *p)
{
    sig_tlsrec_init(&p->t, p->suite, p->client_secret, p->server_secret, p->client_secret_len, p->read_count, p->write_count);
}

/* What the client wrote since last asked. */
static inline size_t client_output(pair_t *p, uint8_t *out, size_t cap)
{
    int n = BIO_read(p->from_client, out, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

/* `len` bytes through SSL_write on the client, its records into `out`. */
static inline size_t client_send(pair_t *p, const void *data, size_t len, uint8_t *out, size_t cap)
{
    if (SSL_write(p->c, data, (int)len) != (int)len)
        return 0;
    return client_output(p, out, cap);
}

/* Seals with the server into the client's input; returns the bytes sealed, or SIZE_MAX if seal wrote past
 * sig_tlsrec_sealed_max(). */
static inline size_t server_send(pair_t *p, const void *data, size_t len, int close_notify)
{
    size_t max = sig_tlsrec_sealed_max(len), n;
    uint8_t *out = malloc(max + 64);
    memset(out, 0xa5, max + 64);
    n = sig_tlsrec_seal(&p->t, ciphers, data, len, close_notify, out);
    if (n > max || out[max] != 0xa5 || out[max + 63] != 0xa5)
        n = SIZE_MAX;
    else
        BIO_write(p->to_client, out, (int)n);
    free(out);
    return n;
}

/* Opens `in` (copied into a buffer of its own) with the server; the result, the opened bytes in `*opened`. */
static inline int server_open_copy(pair_t *p, const uint8_t *in, size_t len, uint8_t **opened, size_t *plain, size_t *left)
{
    uint8_t *buf = malloc(len + 1);
    int ret;
    memcpy(buf, in, len);
    *plain = 0;
    *left = len;
    ret = sig_tlsrec_open(&p->t, ciphers, buf, left, plain);
    *opened = buf;
    return ret;
}

/* Checks that what the client sends next opens as exactly `data` and nothing is left. */
static inline int client_to_server_ok(pair_t *p, const void *data, size_t len)
{
    uint8_t *wire = malloc(2 * len + 4096), *opened;
    size_t n = client_send(p, data, len, wire, 2 * len + 4096), plain, left;
    int ret = server_open_copy(p, wire, n, &opened, &plain, &left), good;
    good = n != 0 && ret == 0 && plain == len && left == len && memcmp(opened, data, len) == 0;
    free(wire);
    free(opened);
    return good;
}

/* Checks that the client reads exactly `data` from what the server seals, and no more for now. */
static inline int server_to_client_ok(pair_t *p, const void *data, size_t len)
{
    uint8_t *got = malloc(len + 16);
    size_t n;
    int err, good = server_send(p, data, len, 0) != SIZE_MAX;
    n = ssl_read_all(p->c, got, len + 16, &err);
    good = good && n == len && (len == 0 || memcmp(got, data, len) == 0) && err == SSL_ERROR_WANT_READ;
    free(got);
    return good;
}

/* A test program's start: the thread's cipher contexts and the server certificate. */
static inline void harness_start(void)
{
    ciphers = sig_tlsrec_ciphers_create();
    make_certificate();
}

/* ... and its end: frees them; the TAP result. */
static inline int harness_done(void)
{
    sig_tlsrec_ciphers_destroy(ciphers);
    X509_free(server_cert);
    EVP_PKEY_free(server_key);
    return done_testing();
}

#endif
