/*
 * test_tlsrec.c: unit tests of handler/core/sig_tlsrec.c (TAP), the TLS 1.3 record layer that takes a connection over
 * from OpenSSL after the handshake. What it proves:
 * - against real OpenSSL 3 as the peer, for each of the three suites: an in-memory TLS 1.3 handshake (a self-signed
 *   P-256 certificate made here), the traffic secrets from the server's keylog callback and the records it carried
 *   under them counted by its message callback; then the server side is sig_tlsrec (the server `SSL` is freed) while
 *   the client stays OpenSSL. Data both ways byte for byte, an empty seal, 100000 bytes in records of at most 2^14,
 *   several records in one buffer, the input cut at every byte offset, padded records (block and callback padding),
 *   the client's KeyUpdates (not requested, requested: ours answers it and OpenSSL reads what follows, several in a
 *   row), close_notify both ways, and refusals: every bit of a record flipped (the exact result for each position),
 *   a record replayed, records reordered, a record of another connection;
 * - against the test's own RFC 8446 code (HKDF-Expand-Label on libcrypto's HMAC, the AEADs through EVP; checked here
 *   against RFC 8448 and against OpenSSL's records): what OpenSSL never sends (alerts, handshake messages, content
 *   types, zero-length data, padding up to and past the limit, all-zero plaintext, malformed KeyUpdates, bad headers
 *   with only the header in the buffer), sequence numbers using all eight nonce bytes, our KeyUpdate's bytes;
 * - the key schedule: RFC 8448 section 3's application keys and IVs, a KeyUpdate ("traffic upd") vector made by
 *   OpenSSL (from s2n-tls's tests, TLS_AES_256_GCM_SHA384);
 * - two sig_tlsrec_t talking to each other (swapped secrets): any sequence numbers, our own rekey at
 *   SIG_TLSREC_REKEY_AFTER (no key seals more than that many records), sig_tlsrec_sealed_max() bounding every seal
 *   (KeyUpdate and close_notify included, nothing written past it);
 * - one sig_tlsrec_ciphers_t shared by interleaved connections of every suite, a refusal on one not touching the
 *   others; suite_supported/secret_len/init refusals; dispose wipes every secret, key and IV.
 */
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

static const char *suite_name(uint16_t suite)
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

static const char *result_name(int ret)
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

static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
    size_t i;
    for (i = 0; i != len; ++i) {
        seed = seed * 1103515245 + 12345;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static size_t unhex(const char *hex, uint8_t *out)
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

static int all_zero(const uint8_t *p, size_t len)
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

static const EVP_MD *ref_md(uint16_t suite)
{
    return suite == SIG_TLSREC_AES_256_GCM_SHA384 ? EVP_sha384() : EVP_sha256();
}

static const EVP_CIPHER *ref_cipher(uint16_t suite)
{
    return suite == SIG_TLSREC_AES_128_GCM_SHA256   ? EVP_aes_128_gcm()
           : suite == SIG_TLSREC_AES_256_GCM_SHA384 ? EVP_aes_256_gcm()
                                                    : EVP_chacha20_poly1305();
}

/* HKDF-Expand (RFC 5869 2.3) of the HkdfLabel of RFC 8446 7.1 with an empty context, any length. */
static void ref_expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len, const char *label, uint8_t *out,
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

static void ref_dir_init(ref_dir_t *d, uint16_t suite, const uint8_t *secret, uint64_t seq)
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
static void ref_dir_update(ref_dir_t *d)
{
    uint8_t next[SIG_TLSREC_MAX_SECRET];
    ref_expand_label(ref_md(d->suite), d->secret, d->secret_len, "traffic upd", next, d->secret_len);
    ref_dir_init(d, d->suite, next, 0);
}

static void ref_nonce(const ref_dir_t *d, uint8_t nonce[12])
{
    int i;
    memcpy(nonce, d->iv, 12);
    for (i = 0; i != 8; ++i)
        nonce[11 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/* One record of the given TLSInnerPlaintext (content, type, padding: the caller's bytes as they are). */
static size_t ref_seal_inner(ref_dir_t *d, const uint8_t *inner, size_t inner_len, uint8_t *out)
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
static size_t ref_seal(ref_dir_t *d, uint8_t type, const void *content, size_t len, size_t padding, uint8_t *out)
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
static size_t ref_open(ref_dir_t *d, const uint8_t *rec, size_t avail, uint8_t *type, uint8_t *content, size_t *len)
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
static size_t count_records(const uint8_t *buf, size_t len, size_t max_ct, size_t *bounds, size_t max_bounds)
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

static void make_certificate(void)
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
static void on_keylog(const SSL *ssl, const char *line)
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
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
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

static BIO *new_mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(b, -1); /* empty: "retry", not EOF */
    return b;
}

static void pump(BIO *from, BIO *to)
{
    uint8_t buf[4096];
    int n;
    while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
        BIO_write(to, buf, n);
}

/* Every byte OpenSSL's `ssl` can read now, into `out`; the last SSL_get_error in `*err`. */
static size_t ssl_read_all(SSL *ssl, uint8_t *out, size_t cap, int *err)
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

static void pair_free(pair_t *p)
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
static pair_t *pair_new(uint16_t suite)
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
static void pair_reset(pair_t *p)
{
    sig_tlsrec_init(&p->t, p->suite, p->client_secret, p->server_secret, p->client_secret_len, p->read_count, p->write_count);
}

/* What the client wrote since last asked. */
static size_t client_output(pair_t *p, uint8_t *out, size_t cap)
{
    int n = BIO_read(p->from_client, out, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

/* `len` bytes through SSL_write on the client, its records into `out`. */
static size_t client_send(pair_t *p, const void *data, size_t len, uint8_t *out, size_t cap)
{
    if (SSL_write(p->c, data, (int)len) != (int)len)
        return 0;
    return client_output(p, out, cap);
}

/* Seals with the server into the client's input; returns the bytes sealed, or SIZE_MAX if seal wrote past
 * sig_tlsrec_sealed_max(). */
static size_t server_send(pair_t *p, const void *data, size_t len, int close_notify)
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
static int server_open_copy(pair_t *p, const uint8_t *in, size_t len, uint8_t **opened, size_t *plain, size_t *left)
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
static int client_to_server_ok(pair_t *p, const void *data, size_t len)
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
static int server_to_client_ok(pair_t *p, const void *data, size_t len)
{
    uint8_t *got = malloc(len + 16);
    size_t n;
    int err, good = server_send(p, data, len, 0) != SIZE_MAX;
    n = ssl_read_all(p->c, got, len + 16, &err);
    good = good && n == len && (len == 0 || memcmp(got, data, len) == 0) && err == SSL_ERROR_WANT_READ;
    free(got);
    return good;
}

/* ---- the tests ---- */

static void test_suites(void)
{
    static const uint16_t others[] = {0x1304, 0x1305, 0, 0x1300, 0x0013, 0xc02f, 0xcca8, 0x0303, 0xffff};
    uint8_t secret[64] = {1};
    sig_tlsrec_t t;
    size_t i;

    is_int(sig_tlsrec_suite_supported(SIG_TLSREC_AES_128_GCM_SHA256), 1, "TLS_AES_128_GCM_SHA256 is supported");
    is_int(sig_tlsrec_suite_supported(SIG_TLSREC_AES_256_GCM_SHA384), 1, "TLS_AES_256_GCM_SHA384 is supported");
    is_int(sig_tlsrec_suite_supported(SIG_TLSREC_CHACHA20_POLY1305_SHA256), 1, "TLS_CHACHA20_POLY1305_SHA256 is supported");
    is_int(sig_tlsrec_secret_len(SIG_TLSREC_AES_128_GCM_SHA256), 32, "its secrets: 32 bytes (SHA-256)");
    is_int(sig_tlsrec_secret_len(SIG_TLSREC_AES_256_GCM_SHA384), 48, "its secrets: 48 bytes (SHA-384)");
    is_int(sig_tlsrec_secret_len(SIG_TLSREC_CHACHA20_POLY1305_SHA256), 32, "its secrets: 32 bytes (SHA-256)");
    for (i = 0; i != sizeof(others) / sizeof(others[0]); ++i) {
        is_int(sig_tlsrec_suite_supported(others[i]), 0, "suite 0x%04x is not supported", others[i]);
        is_int(sig_tlsrec_secret_len(others[i]), 0, "suite 0x%04x: secret_len 0", others[i]);
        is_int(sig_tlsrec_init(&t, others[i], secret, secret, 32, 0, 0), -1, "init refuses suite 0x%04x", others[i]);
    }
    for (i = 0; i != 3; ++i) {
        static const size_t lens[] = {0, 1, 16, 31, 32, 33, 47, 48, 49, 64};
        size_t j, want = sig_tlsrec_secret_len(suites[i]), refused = 0, accepted = 0;
        for (j = 0; j != sizeof(lens) / sizeof(lens[0]); ++j) {
            int ret = sig_tlsrec_init(&t, suites[i], secret, secret, lens[j], 0, 0);
            if (lens[j] == want)
                accepted += ret == 0;
            else
                refused += ret == -1;
        }
        ok(accepted == 1 && refused == sizeof(lens) / sizeof(lens[0]) - 1,
           "%s: init takes only %zu-byte secrets (refused %zu of %zu other lengths)", suite_name(suites[i]), want, refused,
           sizeof(lens) / sizeof(lens[0]) - 1);
        sig_tlsrec_dispose(&t);
    }
}

/* RFC 8448 section 3 (Simple 1-RTT Handshake), TLS_AES_128_GCM_SHA256: the application traffic secrets and the
 * keys and IVs derived from them ({server} derive write traffic keys for application data, {client} ditto). */
static void test_rfc8448(void)
{
    uint8_t c_secret[32], s_secret[32], c_key[16], c_iv[12], s_key[16], s_iv[12], key[16], iv[12];
    sig_tlsrec_t t;

    unhex("9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5", c_secret);
    unhex("a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43", s_secret);
    unhex("17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51", c_key);
    unhex("5b 78 92 3d ee 08 57 90 33 e5 23 d9", c_iv);
    unhex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56", s_key);
    unhex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84", s_iv);

    /* the test's own HKDF-Expand-Label first: the crafted records below rely on it */
    ref_expand_label(EVP_sha256(), s_secret, 32, "key", key, 16);
    ref_expand_label(EVP_sha256(), s_secret, 32, "iv", iv, 12);
    ok(memcmp(key, s_key, 16) == 0 && memcmp(iv, s_iv, 12) == 0, "RFC 8448: the reference derives the server's key and IV");

    /* as the server: reads with the client's secret, writes with its own */
    is_int(sig_tlsrec_init(&t, SIG_TLSREC_AES_128_GCM_SHA256, c_secret, s_secret, 32, 5, 7), 0, "RFC 8448: init");
    ok(memcmp(t.write.key, s_key, 16) == 0, "RFC 8448: write.key is the server application write key (9f 02 28 3b ...)");
    ok(memcmp(t.write.iv, s_iv, 12) == 0, "RFC 8448: write.iv is the server application write IV (cf 78 2b 88 ...)");
    ok(memcmp(t.read.key, c_key, 16) == 0, "RFC 8448: read.key is the client application write key (17 42 2d da ...)");
    ok(memcmp(t.read.iv, c_iv, 12) == 0, "RFC 8448: read.iv is the client application write IV (5b 78 92 3d ...)");
    ok(memcmp(t.read.secret, c_secret, 32) == 0 && memcmp(t.write.secret, s_secret, 32) == 0, "RFC 8448: the secrets kept");
    ok(t.read.seq == 5 && t.write.seq == 7 && t.suite == SIG_TLSREC_AES_128_GCM_SHA256 && t.secret_len == 32 &&
           t.key_len == 16 && t.key_update_due == 0,
       "RFC 8448: the sequence numbers, suite and lengths as given");
    sig_tlsrec_dispose(&t);
}

/* application_traffic_secret_N+1 for TLS_AES_256_GCM_SHA384, a vector OpenSSL's s_client produced (s2n-tls's
 * tests/unit/s2n_tls13_keys_test.c), both ways: our KeyUpdate updates write.secret, the peer's updates read.secret. */
static void test_key_update_vector(void)
{
    uint8_t secret[48], updated[48], other[48], wire[256], out[512];
    ref_dir_t ref;
    sig_tlsrec_t t;
    size_t n, plain, len;

    unhex("4bc28934ddd802b00f479e14a72d7725dab45d32b3b145f29e4c5b56677560eb5236b168c71c5c75aa52f3e20ee89bfb", secret);
    unhex("ee85dd54781bd4d8a100589a9fe6ac9a3797b811e977f549cd531be2441d7c63e2b9729d145c11d84af35957727565a4", updated);
    memset(other, 0x42, sizeof(other));
    ref_dir_init(&ref, SIG_TLSREC_AES_256_GCM_SHA384, secret, 0);
    ref_dir_update(&ref);
    ok(memcmp(ref.secret, updated, 48) == 0, "traffic upd vector: the reference agrees with OpenSSL");

    sig_tlsrec_init(&t, SIG_TLSREC_AES_256_GCM_SHA384, other, secret, 48, 0, 0);
    t.key_update_due = 1;
    n = sig_tlsrec_seal(&t, ciphers, (const uint8_t *)"x", 1, 0, out);
    ok(n > 0 && memcmp(t.write.secret, updated, 48) == 0 && t.key_update_due == 0,
       "traffic upd vector: our KeyUpdate leaves write.secret = application_traffic_secret_1");

    sig_tlsrec_init(&t, SIG_TLSREC_AES_256_GCM_SHA384, secret, other, 48, 0, 0);
    ref_dir_init(&ref, SIG_TLSREC_AES_256_GCM_SHA384, secret, 0);
    n = ref_seal(&ref, 22, "\x18\x00\x00\x01\x00", 5, 0, wire);
    len = n;
    plain = 0;
    ok(sig_tlsrec_open(&t, ciphers, wire, &len, &plain) == 0 && len == 0 && memcmp(t.read.secret, updated, 48) == 0 &&
           t.read.seq == 0,
       "traffic upd vector: the peer's KeyUpdate leaves read.secret = application_traffic_secret_1, read.seq 0");
    sig_tlsrec_dispose(&t);
}

/* The reference opens OpenSSL's records and OpenSSL reads the reference's: the crafted records below are real. */
static void test_reference_vs_openssl(pair_t *p)
{
    static const char msg[] = "checked by the reference";
    ref_dir_t rd;
    uint8_t wire[512], content[512], type;
    size_t n = client_send(p, msg, sizeof(msg), wire, sizeof(wire)), len = 0;
    const char *name = suite_name(p->suite);

    ref_dir_init(&rd, p->suite, p->client_secret, p->read_count);
    ok(n != 0 && ref_open(&rd, wire, n, &type, content, &len) == n && type == 23 && len == sizeof(msg) &&
           memcmp(content, msg, len) == 0,
       "%s: the reference opens OpenSSL's record at the counted sequence number", name);
    /* and sig_tlsrec too: the counts are right */
    {
        uint8_t *opened;
        size_t plain, left;
        int ret = server_open_copy(p, wire, n, &opened, &plain, &left);
        ok(ret == 0 && plain == sizeof(msg) && left == plain && memcmp(opened, msg, plain) == 0,
           "%s: sig_tlsrec opens the client's first record after the take-over (read_seq %llu)", name,
           (unsigned long long)p->read_count);
        free(opened);
    }
    ref_dir_init(&rd, p->suite, p->server_secret, p->t.write.seq);
    n = ref_seal(&rd, 23, "from the reference", 18, 3, wire);
    BIO_write(p->to_client, wire, (int)n);
    {
        int err;
        size_t got = ssl_read_all(p->c, content, sizeof(content), &err);
        ok(got == 18 && memcmp(content, "from the reference", 18) == 0, "%s: OpenSSL reads the reference's record", name);
    }
    ++p->t.write.seq; /* the reference sealed the server's next record in its place */
}

static void test_data_both_ways(uint16_t suite)
{
    pair_t *p = pair_new(suite);
    const char *name = suite_name(suite);
    uint8_t big[100000], *wire, *got;
    size_t n, i, max, bounds[16];
    int err, good;

    ok(p != NULL, "%s: a TLS 1.3 handshake through OpenSSL, taken over", name);
    if (p == NULL)
        return;
    test_reference_vs_openssl(p);
    ok(client_to_server_ok(p, "ping", 4), "%s: client -> server: 4 bytes", name);
    ok(server_to_client_ok(p, "pong", 4), "%s: server -> client: 4 bytes", name);
    fill_pattern(big, sizeof(big), 1);
    ok(client_to_server_ok(p, big, 16384), "%s: client -> server: 16384 bytes (one full record)", name);
    ok(client_to_server_ok(p, big, 40000), "%s: client -> server: 40000 bytes (three records in one buffer)", name);
    ok(server_to_client_ok(p, big, 16384), "%s: server -> client: 16384 bytes", name);

    /* an empty seal: nothing the client would read, and the client stays in step */
    max = sig_tlsrec_sealed_max(0);
    wire = malloc(max);
    n = sig_tlsrec_seal(&p->t, ciphers, (const uint8_t *)"", 0, 0, wire);
    ok(n <= max && (n == 0 || count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, NULL, 0) != 0),
       "%s: an empty seal writes %zu bytes (nothing or whole records), within sealed_max(0) = %zu", name, n, max);
    BIO_write(p->to_client, wire, (int)n);
    free(wire);
    got = malloc(sizeof(big) + 16);
    ok(ssl_read_all(p->c, got, 16, &err) == 0 && err == SSL_ERROR_WANT_READ, "%s: the client reads nothing from it", name);
    ok(server_to_client_ok(p, "after", 5), "%s: and reads what comes next", name);

    /* 100000 bytes: records of at most 2^14 bytes, all read */
    max = sig_tlsrec_sealed_max(sizeof(big));
    wire = malloc(max);
    n = sig_tlsrec_seal(&p->t, ciphers, big, sizeof(big), 0, wire);
    ok(n <= max, "%s: 100000 bytes sealed in %zu bytes, within sealed_max = %zu", name, n, max);
    is_int(count_records(wire, n, MAX_INNER + SIG_TLSREC_TAG, bounds, 16), 7,
           "%s: 100000 bytes are 7 records, none over 2^14 + 1 + 16", name);
    BIO_write(p->to_client, wire, (int)n);
    n = ssl_read_all(p->c, got, sizeof(big) + 16, &err);
    ok(n == sizeof(big) && memcmp(got, big, sizeof(big)) == 0, "%s: the client reads all 100000 bytes", name);
    free(wire);

    /* after all this, still both ways */
    good = client_to_server_ok(p, big + 7, 1000) && server_to_client_ok(p, big + 9, 1000);
    ok(good, "%s: 1000 bytes each way after it", name);
    for (i = 1, good = 1; i <= 64; ++i)
        good &= client_to_server_ok(p, big + i, i) && server_to_client_ok(p, big + 2 * i, i);
    ok(good, "%s: 64 exchanges of 1..64 bytes", name);
    free(got);
    pair_free(p);
}

/* The client's records cut at every byte offset across two calls, in a buffer that already holds opened data. */
static void test_split_everywhere(uint16_t suite)
{
    static const char prefix[] = "OPENED"; /* data a previous call opened, before the new input */
    pair_t *p = pair_new(suite);
    const char *name = suite_name(suite);
    uint8_t a[300], stream[2048], data[2048], buf[4096];
    size_t n = 0, data_len = 0, bounds[8], nrec, k, bad_k = SIZE_MAX, data_at[8];
    int bad_ret = 0;

    ok(p != NULL, "%s: a connection for the split test", name);
    if (p == NULL)
        return;
    fill_pattern(a, sizeof(a), 2);
    /* three records: 11 bytes, 300 bytes, 1 byte */
    n += client_send(p, "first write", 11, stream + n, sizeof(stream) - n);
    n += client_send(p, a, sizeof(a), stream + n, sizeof(stream) - n);
    n += client_send(p, "z", 1, stream + n, sizeof(stream) - n);
    memcpy(data, "first write", 11);
    memcpy(data + 11, a, sizeof(a));
    data[311] = 'z';
    data_len = 312;
    data_at[0] = 0;
    data_at[1] = 11;
    data_at[2] = 311;
    data_at[3] = 312;
    nrec = count_records(stream, n, SIG_TLSREC_MAX_CIPHERTEXT, bounds, 8);
    is_int(nrec, 3, "%s: the client wrote three records (%zu bytes)", name, n);
    if (nrec != 3) {
        pair_free(p);
        return;
    }

    {
        size_t plain = 0, len = n;
        pair_reset(p);
        memcpy(buf, stream, n);
        ok(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) == 0 && plain == data_len && len == data_len &&
               memcmp(buf, data, data_len) == 0,
           "%s: three records in one buffer open to their 312 bytes, nothing left", name);
    }

    for (k = 0; k <= n && bad_k == SIZE_MAX; ++k) {
        size_t pre = k % sizeof(prefix), whole = 0, plain = pre, len, keep, want;
        int ret;
        while (whole < 3 && bounds[whole] <= k)
            ++whole;
        keep = k - (whole == 0 ? 0 : bounds[whole - 1]);
        want = pre + data_at[whole];
        pair_reset(p);
        memcpy(buf, prefix, pre);
        memcpy(buf + pre, stream, k);
        len = pre + k;
        ret = sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain);
        if (ret != 0 || plain != want || len != want + keep || memcmp(buf, prefix, pre) != 0 ||
            memcmp(buf + pre, data, data_at[whole]) != 0 || memcmp(buf + want, stream + k - keep, keep) != 0) {
            bad_k = k;
            bad_ret = ret;
            break;
        }
        memcpy(buf + len, stream + k, n - k);
        len += n - k;
        ret = sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain);
        if (ret != 0 || plain != pre + data_len || len != plain || memcmp(buf, prefix, pre) != 0 ||
            memcmp(buf + pre, data, data_len) != 0) {
            bad_k = k;
            bad_ret = ret;
        }
    }
    ok(bad_k == SIZE_MAX,
       "%s: cut at every offset 0..%zu (after 0..5 opened bytes): the first call opens the whole records and keeps the "
       "partial one right after the data, the second opens the rest",
       name, n);
    if (bad_k != SIZE_MAX)
        printf("#   first failure at offset %zu (result %d)\n", bad_k, bad_ret);

    {
        /* a record followed by a partial one, completed a byte at a time */
        size_t plain = 0, len = bounds[0] + 3, fed, calls_bad = 0;
        pair_reset(p);
        memcpy(buf, stream, len);
        if (sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) != 0 || plain != 11 || len != 14)
            ++calls_bad;
        for (fed = bounds[0] + 3; fed < n; ++fed) {
            buf[len++] = stream[fed];
            if (sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) != 0)
                ++calls_bad;
        }
        ok(calls_bad == 0 && plain == data_len && len == data_len && memcmp(buf, data, data_len) == 0,
           "%s: a record and 3 bytes of the next, then the rest one byte per call", name);
    }
    {
        size_t plain = 3, len = 3;
        memcpy(buf, "abc", 3);
        ok(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) == 0 && plain == 3 && len == 3 && memcmp(buf, "abc", 3) == 0,
           "%s: nothing new: nothing changes", name);
    }
    pair_free(p);
}

static size_t padding_cb(SSL *ssl, int type, size_t len, void *arg)
{
    (void)ssl, (void)arg;
    return (len * 7 + (size_t)type) % 300;
}

static void test_padding(uint16_t suite)
{
    pair_t *p = pair_new(suite);
    const char *name = suite_name(suite);
    uint8_t wire[8192], a[3000];
    size_t n, ct;

    ok(p != NULL, "%s: a connection for the padding test", name);
    if (p == NULL)
        return;
    fill_pattern(a, sizeof(a), 3);
    SSL_set_block_padding(p->c, 512);
    n = client_send(p, "padded", 6, wire, sizeof(wire));
    ct = n >= 5 ? ((size_t)wire[3] << 8 | wire[4]) : 0;
    ok(n == 5 + 512 + SIG_TLSREC_TAG && ct == 512 + SIG_TLSREC_TAG, "%s: OpenSSL pads 6 bytes to a 512-byte block", name);
    {
        uint8_t *opened;
        size_t plain, left;
        int ret = server_open_copy(p, wire, n, &opened, &plain, &left);
        ok(ret == 0 && plain == 6 && left == 6 && memcmp(opened, "padded", 6) == 0, "%s: a block-padded record opens", name);
        free(opened);
    }
    ok(client_to_server_ok(p, a, sizeof(a)), "%s: 3000 bytes block-padded", name);
    SSL_set_block_padding(p->c, 1);
    SSL_set_record_padding_callback(p->c, padding_cb);
    ok(client_to_server_ok(p, a, 1000) && client_to_server_ok(p, a + 1, 1) && client_to_server_ok(p, a, 2999),
       "%s: records with the callback's padding (0..299 bytes) open", name);
    SSL_set_record_padding_callback(p->c, NULL);

    /* a 0-byte SSL_write: OpenSSL 3.0 sends nothing (if one ever does, it opens to nothing; the reference's
     * zero-length records are tested below) */
    SSL_write(p->c, "", 0);
    n = client_output(p, wire, sizeof(wire));
    if (n != 0) {
        uint8_t *opened;
        size_t plain, left;
        int ret = server_open_copy(p, wire, n, &opened, &plain, &left);
        ok(ret == 0 && plain == 0 && left == 0, "%s: OpenSSL's zero-length record opens to nothing", name);
        free(opened);
    }
    ok(client_to_server_ok(p, "still in step", 13), "%s: and the next record opens", name);
    pair_free(p);
}

/* Our KeyUpdate at the start of `wire`: the reference, at the server's sequence number, finds KeyUpdate
 * (update_not_requested) alone in the first record; then follows it and opens what comes after. */
static int starts_with_our_key_update(pair_t *p, const uint8_t *secret, uint64_t seq, const uint8_t *wire, size_t n,
                                      const void *data, size_t len)
{
    ref_dir_t rd;
    uint8_t *content = malloc(n + 16), type;
    size_t off, clen = 0;
    int good;

    ref_dir_init(&rd, p->suite, secret, seq);
    off = ref_open(&rd, wire, n, &type, content, &clen);
    good = off != 0 && type == 22 && clen == 5 && memcmp(content, "\x18\x00\x00\x01\x00", 5) == 0;
    ref_dir_update(&rd);
    good = good && ref_open(&rd, wire + off, n - off, &type, content, &clen) == n - off && type == 23 && clen == len &&
           memcmp(content, data, len) == 0;
    free(content);
    return good;
}

static void test_key_updates(uint16_t suite)
{
    pair_t *p = pair_new(suite);
    const char *name = suite_name(suite);
    uint8_t wire[4096], got[64], before[SIG_TLSREC_MAX_SECRET];
    size_t n, plain, left, i;
    uint64_t seq;
    uint8_t *opened;
    int ret, err;

    ok(p != NULL, "%s: a connection for the KeyUpdate tests", name);
    if (p == NULL)
        return;

    /* not requested: applied, nothing due */
    memcpy(before, p->t.read.secret, sizeof(before));
    ok(SSL_key_update(p->c, SSL_KEY_UPDATE_NOT_REQUESTED) == 1, "%s: client: SSL_key_update(NOT_REQUESTED)", name);
    n = client_send(p, "after update", 12, wire, sizeof(wire));
    is_int(count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, NULL, 0), 2, "%s: the client sent KeyUpdate and data", name);
    ret = server_open_copy(p, wire, n, &opened, &plain, &left);
    ok(ret == 0 && plain == 12 && left == 12 && memcmp(opened, "after update", 12) == 0,
       "%s: the data after the client's KeyUpdate opens", name);
    free(opened);
    ok(p->t.key_update_due == 0 && p->t.read.seq == 1 && memcmp(p->t.read.secret, before, sizeof(before)) != 0,
       "%s: not requested: nothing due, the read key moved on (read.seq 1)", name);
    ok(server_to_client_ok(p, "reply", 5), "%s: our next record has no KeyUpdate the client would mind", name);

    /* requested: ours goes first in the next seal, the client reads what follows */
    ok(SSL_key_update(p->c, SSL_KEY_UPDATE_REQUESTED) == 1, "%s: client: SSL_key_update(REQUESTED)", name);
    n = client_send(p, "please update", 13, wire, sizeof(wire));
    ret = server_open_copy(p, wire, n, &opened, &plain, &left);
    ok(ret == 0 && plain == 13 && memcmp(opened, "please update", 13) == 0 && p->t.key_update_due == 1,
       "%s: requested: the data opens and key_update_due is 1", name);
    free(opened);
    memcpy(before, p->t.write.secret, sizeof(before));
    seq = p->t.write.seq;
    n = sig_tlsrec_seal(&p->t, ciphers, (const uint8_t *)"updated", 7, 0, wire);
    ok(starts_with_our_key_update(p, before, seq, wire, n, "updated", 7),
       "%s: the next seal starts with our KeyUpdate (update_not_requested, alone in its record), then the data under the "
       "next key",
       name);
    ok(p->t.key_update_due == 0 && p->t.write.seq == 1, "%s: nothing due after it, write.seq 1", name);
    BIO_write(p->to_client, wire, (int)n);
    n = ssl_read_all(p->c, got, sizeof(got), &err);
    ok(n == 7 && memcmp(got, "updated", 7) == 0 && err == SSL_ERROR_WANT_READ, "%s: OpenSSL reads the data after it", name);
    ok(client_to_server_ok(p, "and on", 6) && server_to_client_ok(p, "and on", 6), "%s: both ways after it", name);

    /* later KeyUpdates from the client: one more of each */
    SSL_key_update(p->c, SSL_KEY_UPDATE_NOT_REQUESTED);
    ok(client_to_server_ok(p, "later", 5) && p->t.key_update_due == 0, "%s: a later client KeyUpdate (not requested)", name);
    SSL_key_update(p->c, SSL_KEY_UPDATE_REQUESTED);
    ok(client_to_server_ok(p, "later2", 6) && p->t.key_update_due == 1 && server_to_client_ok(p, "answered", 8) &&
           p->t.key_update_due == 0,
       "%s: a later client KeyUpdate (requested), answered", name);

    /* several in a row in one buffer, then data */
    for (i = 0, n = 0; i != 4; ++i) {
        SSL_key_update(p->c, i == 2 ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED);
        SSL_do_handshake(p->c);
        n += client_output(p, wire + n, sizeof(wire) - n);
    }
    n += client_send(p, "after four", 10, wire + n, sizeof(wire) - n);
    is_int(count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, NULL, 0), 5, "%s: four KeyUpdates and data from the client", name);
    ret = server_open_copy(p, wire, n, &opened, &plain, &left);
    ok(ret == 0 && plain == 10 && left == 10 && memcmp(opened, "after four", 10) == 0 && p->t.read.seq == 1 &&
           p->t.key_update_due == 1,
       "%s: four KeyUpdates in a row (the third requested) in one buffer: the data opens, ours is due", name);
    free(opened);
    ok(server_to_client_ok(p, "one answer", 10) && p->t.key_update_due == 0, "%s: one KeyUpdate answers them", name);

    /* our KeyUpdate with nothing else to send */
    SSL_key_update(p->c, SSL_KEY_UPDATE_REQUESTED);
    ok(client_to_server_ok(p, "x", 1) && p->t.key_update_due == 1, "%s: requested again", name);
    n = server_send(p, "", 0, 0);
    ok(n != SIZE_MAX && ssl_read_all(p->c, got, sizeof(got), &err) == 0 && err == SSL_ERROR_WANT_READ,
       "%s: an empty seal while a KeyUpdate is due: %zu bytes, the client reads nothing", name, n);
    ok(server_to_client_ok(p, "then data", 9) && p->t.key_update_due == 0, "%s: and then reads the data", name);
    pair_free(p);
}

static void test_close_notify(uint16_t suite)
{
    const char *name = suite_name(suite);
    pair_t *p = pair_new(suite);
    uint8_t wire[4096], got[64], *opened;
    size_t n, plain, left;
    int ret, err;

    ok(p != NULL, "%s: a connection for close_notify", name);
    if (p == NULL)
        return;
    n = client_send(p, "bye", 3, wire, sizeof(wire));
    ok(SSL_shutdown(p->c) == 0, "%s: client: SSL_shutdown sends close_notify", name);
    n += client_output(p, wire + n, sizeof(wire) - n);
    is_int(count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, NULL, 0), 2, "%s: data and the alert", name);
    memcpy(wire + n, "\x17\x03\x03\x00\x20trailing garbage", 21); /* after close_notify: dropped */
    ret = server_open_copy(p, wire, n + 21, &opened, &plain, &left);
    ok(ret == SIG_TLSREC_CLOSED && plain == 3 && left == 3 && memcmp(opened, "bye", 3) == 0,
       "%s: close_notify: CLOSED, the data before it opened, *len == *plain (what follows dropped)", name);
    free(opened);
    {
        /* the alert cut in two: the data first, CLOSED with the rest */
        size_t cut = n - 10, bounds[2];
        uint8_t buf[4096];
        count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, bounds, 2);
        pair_reset(p);
        memcpy(buf, wire, cut);
        plain = 0;
        left = cut;
        ret = sig_tlsrec_open(&p->t, ciphers, buf, &left, &plain);
        ok(ret == 0 && plain == 3 && left == 3 + cut - bounds[0] && memcmp(buf + 3, wire + bounds[0], cut - bounds[0]) == 0,
           "%s: close_notify cut in two: the first call opens the data", name);
        memcpy(buf + left, wire + cut, n - cut);
        left += n - cut;
        ret = sig_tlsrec_open(&p->t, ciphers, buf, &left, &plain);
        ok(ret == SIG_TLSREC_CLOSED && plain == 3 && left == 3 && memcmp(buf, "bye", 3) == 0,
           "%s: the second call: CLOSED", name);
    }
    pair_free(p);

    /* ours: the client reads the data, then SSL_read returns 0 with SSL_ERROR_ZERO_RETURN */
    p = pair_new(suite);
    ok(p != NULL && server_send(p, "last words", 10, 1) != SIZE_MAX, "%s: seal with close_notify", name);
    if (p != NULL) {
        n = ssl_read_all(p->c, got, sizeof(got), &err);
        ok(n == 10 && memcmp(got, "last words", 10) == 0 && err == SSL_ERROR_ZERO_RETURN,
           "%s: the client reads the data, then SSL_ERROR_ZERO_RETURN", name);
        ok((SSL_get_shutdown(p->c) & SSL_RECEIVED_SHUTDOWN) != 0, "%s: the client saw our close_notify", name);
    }
    pair_free(p);
    p = pair_new(suite);
    ok(p != NULL && server_send(p, "", 0, 1) != SIZE_MAX, "%s: close_notify alone (no data)", name);
    if (p != NULL) {
        n = ssl_read_all(p->c, got, sizeof(got), &err);
        ok(n == 0 && err == SSL_ERROR_ZERO_RETURN, "%s: the client gets SSL_ERROR_ZERO_RETURN", name);
    }
    pair_free(p);
}

/* The result the header's rules give for record `rec` (`n` bytes) with bit `bit` of byte `i` flipped, and whether the
 * record is then merely incomplete (0, nothing consumed). */
static int expected_for_flip(const uint8_t *rec, size_t n, size_t i, int bit, int *pending)
{
    size_t ct = (size_t)rec[3] << 8 | rec[4];
    *pending = 0;
    if (i < 3)
        return SIG_TLSREC_ERR_RECORD; /* the type is not 23, or the version not 0x0303 */
    if (i < 5) {
        ct ^= (size_t)1 << (bit + (i == 3 ? 8 : 0));
        if (ct > SIG_TLSREC_MAX_CIPHERTEXT || ct < SIG_TLSREC_TAG + 1)
            return SIG_TLSREC_ERR_RECORD;
        if (ct > n - 5) {
            *pending = 1;
            return 0;
        }
    }
    return SIG_TLSREC_ERR_AUTH; /* a shorter record, or a changed byte of the ciphertext or tag */
}

static void test_refusals(uint16_t suite)
{
    const char *name = suite_name(suite);
    pair_t *p = pair_new(suite), *other = pair_new(suite);
    uint8_t r1[256], r2[256], both[512], flipped[256], buf[512], msg[40];
    size_t n1, n2, i, plain, len, bad_pos = SIZE_MAX, positions = 0;
    int bit, bad_ret = 0, bad_bit = 0;

    ok(p != NULL && other != NULL, "%s: connections for the refusals", name);
    if (p == NULL || other == NULL) {
        pair_free(p);
        pair_free(other);
        return;
    }
    fill_pattern(msg, sizeof(msg), 4);
    n1 = client_send(p, msg, sizeof(msg), r1, sizeof(r1));
    n2 = client_send(p, "second", 6, r2, sizeof(r2));
    ok(n1 == 5 + 40 + 1 + 16 && n2 == 5 + 6 + 1 + 16, "%s: two records from the client", name);

    for (i = 0; i != n1 && bad_pos == SIZE_MAX; ++i) {
        for (bit = 0; bit != 8; ++bit) {
            int pending, want = expected_for_flip(r1, n1, i, bit, &pending), ret;
            memcpy(flipped, r1, n1);
            flipped[i] ^= (uint8_t)(1 << bit);
            pair_reset(p);
            plain = 0;
            len = n1;
            ret = sig_tlsrec_open(&p->t, ciphers, flipped, &len, &plain);
            ++positions;
            if (ret != want || (pending && (plain != 0 || len != n1))) {
                bad_pos = i;
                bad_bit = bit;
                bad_ret = ret;
                break;
            }
        }
    }
    ok(bad_pos == SIZE_MAX,
       "%s: each of the %zu bits of a record flipped: ERR_RECORD in the type and version, ERR_RECORD or an incomplete "
       "record or ERR_AUTH by the length it makes, ERR_AUTH in the ciphertext and tag",
       name, positions);
    if (bad_pos != SIZE_MAX)
        printf("#   byte %zu bit %d: got %d\n", bad_pos, bad_bit, bad_ret);

    /* replay, reorder, another connection's record */
    pair_reset(p);
    memcpy(both, r1, n1);
    memcpy(both + n1, r1, n1);
    plain = 0;
    len = 2 * n1;
    is_int(sig_tlsrec_open(&p->t, ciphers, both, &len, &plain), SIG_TLSREC_ERR_AUTH,
           "%s: a record twice in one buffer: ERR_AUTH", name);
    pair_reset(p);
    memcpy(buf, r1, n1);
    plain = 0;
    len = n1;
    ok(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) == 0 && plain == 40, "%s: the record once", name);
    memcpy(buf, r1, n1);
    plain = 0;
    len = n1;
    is_int(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain), SIG_TLSREC_ERR_AUTH, "%s: the same bytes again: ERR_AUTH", name);
    pair_reset(p);
    memcpy(both, r2, n2);
    memcpy(both + n2, r1, n1);
    plain = 0;
    len = n1 + n2;
    is_int(sig_tlsrec_open(&p->t, ciphers, both, &len, &plain), SIG_TLSREC_ERR_AUTH,
           "%s: the two records reordered: ERR_AUTH", name);
    pair_reset(p);
    memcpy(buf, r2, n2);
    plain = 0;
    len = n2;
    is_int(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain), SIG_TLSREC_ERR_AUTH, "%s: the second record first: ERR_AUTH", name);
    n1 = client_send(other, msg, sizeof(msg), buf, sizeof(buf));
    pair_reset(p);
    plain = 0;
    len = n1;
    is_int(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain), SIG_TLSREC_ERR_AUTH,
           "%s: another connection's record (same suite, same seq): ERR_AUTH", name);
    /* the refusals above left the shared contexts fine: the right records still open */
    pair_reset(p);
    memcpy(both, r1, n1);
    memcpy(both + n1, r2, n2);
    plain = 0;
    len = n1 + n2;
    ok(sig_tlsrec_open(&p->t, ciphers, both, &len, &plain) == 0 && plain == 46 && memcmp(both, msg, 40) == 0 &&
           memcmp(both + 40, "second", 6) == 0,
       "%s: after all the refusals, the two records open in order", name);
    pair_free(p);
    pair_free(other);
}

/* ---- records OpenSSL does not send, made by the reference as the client ---- */

typedef struct {
    uint16_t suite;
    uint8_t c_secret[SIG_TLSREC_MAX_SECRET], s_secret[SIG_TLSREC_MAX_SECRET];
    sig_tlsrec_t t;     /* the server */
    ref_dir_t client;   /* the reference writing as the client */
    ref_dir_t server;   /* the reference reading the server */
} crafted_t;

static void crafted_init(crafted_t *x, uint16_t suite, uint64_t read_seq, uint64_t write_seq)
{
    size_t len = sig_tlsrec_secret_len(suite);
    memset(x, 0, sizeof(*x));
    x->suite = suite;
    fill_pattern(x->c_secret, len, 100 + suite);
    fill_pattern(x->s_secret, len, 200 + suite);
    sig_tlsrec_init(&x->t, suite, x->c_secret, x->s_secret, len, read_seq, write_seq);
    ref_dir_init(&x->client, suite, x->c_secret, read_seq);
    ref_dir_init(&x->server, suite, x->s_secret, write_seq);
}

static void crafted_dispose(crafted_t *x)
{
    sig_tlsrec_dispose(&x->t);
}

/* A fresh server opens one record the reference made of (type, content, padding); the result, the data in `out`. */
static int open_crafted(uint16_t suite, uint8_t type, const void *content, size_t len, size_t padding, size_t *plain_out,
                        uint8_t *out)
{
    crafted_t x;
    uint8_t *buf = malloc(len + padding + 64);
    size_t n, plain = 0;
    int ret;

    crafted_init(&x, suite, 3, 3);
    n = ref_seal(&x.client, type, content, len, padding, buf);
    ret = sig_tlsrec_open(&x.t, ciphers, buf, &n, &plain);
    if (plain_out != NULL)
        *plain_out = ret == 0 ? plain : SIZE_MAX;
    if (out != NULL && ret == 0)
        memcpy(out, buf, plain);
    crafted_dispose(&x);
    free(buf);
    return ret;
}

/* One record of (type, content, padding) each, made by the reference, and what opening it gives: a result, or
 * REFUSED (any SIG_TLSREC_ERR_*: the header does not say which). */
#define REFUSED 99
static const struct {
    uint8_t type;
    const char *content;
    size_t len, padding;
    int want;
    const char *what;
} crafted_cases[] = {
    {20, "\x01", 1, 0, SIG_TLSREC_ERR_UNEXPECTED, "inner change_cipher_spec"},
    {24, "\x01\x00\x10", 3, 0, SIG_TLSREC_ERR_UNEXPECTED, "inner heartbeat (24)"},
    {0x42, "x", 1, 0, SIG_TLSREC_ERR_UNEXPECTED, "inner type 0x42"},
    {1, "x", 1, 0, SIG_TLSREC_ERR_UNEXPECTED, "inner type 1"},
    /* alerts */
    {21, "\x02\x28", 2, 0, SIG_TLSREC_ERR_ALERT, "alert handshake_failure"},
    {21, "\x01\x5a", 2, 0, SIG_TLSREC_ERR_ALERT, "alert user_canceled"},
    {21, "\x02\x14", 2, 0, SIG_TLSREC_ERR_ALERT, "alert bad_record_mac"},
    {21, "\x01\x00", 2, 7, SIG_TLSREC_CLOSED, "close_notify, padded"},
    {21, "\x02\x00", 2, 0, SIG_TLSREC_CLOSED, "close_notify at level fatal (6: TLS 1.3 ignores the level)"},
    {21, "\x01", 1, 0, REFUSED, "a 1-byte alert"},
    {21, "\x01\x00\x00", 3, 0, REFUSED, "close_notify with a byte more"},
    {21, "\x01\x00\x01\x00", 4, 0, REFUSED, "two close_notify in one record"},
    {21, NULL, 0, 0, REFUSED, "a zero-length alert"},
    /* handshake messages */
    {22, "\x04\x00\x00\x05\x00\x00\x00\x00\x00", 9, 0, SIG_TLSREC_ERR_UNEXPECTED, "a NewSessionTicket from the client"},
    {22, "\x01\x00\x00\x02\x03\x03", 6, 0, SIG_TLSREC_ERR_UNEXPECTED, "a ClientHello"},
    {22, "\x0b\x00\x00\x04\x00\x00\x00\x00", 8, 0, SIG_TLSREC_ERR_UNEXPECTED, "a Certificate"},
    {22, "\x14\x00\x00\x01\x00", 5, 0, SIG_TLSREC_ERR_UNEXPECTED, "a Finished (5 bytes, like a KeyUpdate)"},
    {22, "\x18\x00\x00\x01\x02", 5, 0, REFUSED, "KeyUpdate with request_update 2"},
    {22, "\x18\x00\x00\x02\x00\x00", 6, 0, REFUSED, "KeyUpdate of length 2"},
    {22, "\x18\x00\x00\x01\x00\x18\x00\x00\x01\x00", 10, 0, REFUSED,
     "two KeyUpdates in one record (a key change must end its record)"},
    {22, "\x18\x00\x00\x01\x00\x17", 6, 0, REFUSED, "KeyUpdate and a byte more in its record"},
    {22, NULL, 0, 0, REFUSED, "a zero-length handshake record"},
    {22, "\x18\x00\x00", 3, 0, REFUSED, "a truncated KeyUpdate"},
    {22, "\x18\x00\x00\x01\x00", 5, 40, 0, "a padded KeyUpdate: applied"},
};

static void test_crafted(uint16_t suite)
{
    const char *name = suite_name(suite);
    static uint8_t big[MAX_INNER + 300], out[MAX_INNER + 300];
    size_t plain, i;
    int ret;

    fill_pattern(big, sizeof(big), 5);
    big[16383] = 1; /* the last byte of a full record is not padding */
    ok(open_crafted(suite, 23, big, 10, 0, &plain, out) == 0 && plain == 10 && memcmp(out, big, 10) == 0,
       "%s: the reference's record opens", name);
    ok(open_crafted(suite, 23, NULL, 0, 0, &plain, NULL) == 0 && plain == 0, "%s: zero-length application data: nothing", name);
    ok(open_crafted(suite, 23, NULL, 0, 100, &plain, NULL) == 0 && plain == 0, "%s: zero-length data, padded: nothing", name);
    ok(open_crafted(suite, 23, big, 10, 5000, &plain, out) == 0 && plain == 10 && memcmp(out, big, 10) == 0,
       "%s: 10 bytes with 5000 bytes of padding", name);
    ok(open_crafted(suite, 23, big, 16384, 0, &plain, out) == 0 && plain == 16384 && memcmp(out, big, 16384) == 0,
       "%s: 2^14 bytes, the largest record", name);
    ok(open_crafted(suite, 23, big, 1000, MAX_INNER - 1001, &plain, out) == 0 && plain == 1000,
       "%s: padding up to exactly 2^14 + 1 bytes of TLSInnerPlaintext", name);
    is_int(open_crafted(suite, 23, big, 16385, 0, NULL, NULL), SIG_TLSREC_ERR_RECORD,
           "%s: 2^14 + 1 bytes of data: ERR_RECORD (record_overflow)", name);
    /* 5.4's "TLSInnerPlaintext MUST NOT exceed 2^14 + 1 octets" binds the sender; a receiver's record_overflow is for a
     * ciphertext past 2^14 + 256 (5.2) and content past 2^14, as OpenSSL 3.0's client does: padding past it is read */
    ok(open_crafted(suite, 23, big, 1000, MAX_INNER - 1000, &plain, out) == 0 && plain == 1000 && memcmp(out, big, 1000) == 0,
       "%s: TLSInnerPlaintext of 2^14 + 2 bytes by its padding: read, as OpenSSL reads it", name);
    ok(open_crafted(suite, 23, big, 1000, SIG_TLSREC_MAX_CIPHERTEXT - SIG_TLSREC_TAG - 1001, &plain, out) == 0 &&
           plain == 1000 && memcmp(out, big, 1000) == 0,
       "%s: a ciphertext of exactly 2^14 + 256 bytes (padding): read", name);
    {
        /* no content type: 1, 10, 261 (the header's last byte then reads as 21, an alert), 2^14 + 1 zeros */
        static const size_t zero_lens[] = {1, 10, 261, MAX_INNER};
        static uint8_t zeros[MAX_INNER], buf[MAX_RECORD];
        for (i = 0; i != sizeof(zero_lens) / sizeof(zero_lens[0]); ++i) {
            crafted_t x;
            size_t n, p0 = 0;
            crafted_init(&x, suite, 0, 0);
            n = ref_seal_inner(&x.client, zeros, zero_lens[i], buf);
            is_int(sig_tlsrec_open(&x.t, ciphers, buf, &n, &p0), SIG_TLSREC_ERR_UNEXPECTED,
                   "%s: %zu bytes of plaintext all zero (no content type): ERR_UNEXPECTED", name, zero_lens[i]);
            crafted_dispose(&x);
        }
    }
    for (i = 0; i != sizeof(crafted_cases) / sizeof(crafted_cases[0]); ++i) {
        ret = open_crafted(suite, crafted_cases[i].type, crafted_cases[i].content, crafted_cases[i].len,
                           crafted_cases[i].padding, NULL, NULL);
        if (crafted_cases[i].want == REFUSED)
            ok(ret < 0, "%s: %s: refused (%d)", name, crafted_cases[i].what, ret);
        else
            is_int(ret, crafted_cases[i].want, "%s: %s: %s", name, crafted_cases[i].what, result_name(crafted_cases[i].want));
    }
}

/* Headers alone: refused as soon as the five bytes are in, without waiting for a body that may never fit. */
static void test_headers(uint16_t suite)
{
    static const struct {
        const char *bytes, *what;
        int want;
    } cases[] = {
        {"\x14\x03\x03\x00\x01", "change_cipher_spec (20)", SIG_TLSREC_ERR_RECORD},
        {"\x15\x03\x03\x00\x02", "a plaintext alert (21)", SIG_TLSREC_ERR_RECORD},
        {"\x16\x03\x03\x00\x20", "a plaintext handshake (22)", SIG_TLSREC_ERR_RECORD},
        {"\x18\x03\x03\x00\x20", "type 24", SIG_TLSREC_ERR_RECORD},
        {"\x00\x03\x03\x00\x20", "type 0", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x01\x00\x20", "version 0x0301", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x04\x00\x20", "version 0x0304", SIG_TLSREC_ERR_RECORD},
        {"\x17\x02\x03\x00\x20", "version 0x0203", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\x41\x01", "length 16641", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\xff\xff", "length 65535", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\x00\x10", "length 16 (no room for the type and tag)", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\x00\x00", "length 0", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\x41\x00", "length 16640 (incomplete: waits)", 0},
        {"\x17\x03\x03\x00\x11", "length 17 (incomplete: waits)", 0},
    };
    const char *name = suite_name(suite);
    size_t i;

    for (i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        crafted_t x;
        uint8_t buf[16];
        size_t plain = 0, len = 5;
        int ret;
        crafted_init(&x, suite, 0, 0);
        memcpy(buf, cases[i].bytes, 5);
        ret = sig_tlsrec_open(&x.t, ciphers, buf, &len, &plain);
        if (cases[i].want == 0)
            ok(ret == 0 && plain == 0 && len == 5 && memcmp(buf, cases[i].bytes, 5) == 0, "%s: a header of %s, alone: kept", name,
               cases[i].what);
        else
            is_int(ret, cases[i].want, "%s: a header of %s, alone: ERR_RECORD", name, cases[i].what);
        crafted_dispose(&x);
    }
    {
        /* 17 bytes of ciphertext that is not a record's: ERR_AUTH; 1..4 bytes of a header: kept */
        crafted_t x;
        uint8_t buf[32];
        size_t plain = 0, len = 22, k, kept = 0;
        crafted_init(&x, suite, 0, 0);
        memcpy(buf, "\x17\x03\x03\x00\x11", 5);
        memset(buf + 5, 0x5c, 17);
        is_int(sig_tlsrec_open(&x.t, ciphers, buf, &len, &plain), SIG_TLSREC_ERR_AUTH,
               "%s: the shortest record, forged: ERR_AUTH", name);
        for (k = 0; k != 5; ++k) {
            len = k;
            plain = 0;
            memcpy(buf, "\x17\x03\x03\x00\x11", 5);
            kept += sig_tlsrec_open(&x.t, ciphers, buf, &len, &plain) == 0 && len == k && plain == 0;
        }
        is_int(kept, 5, "%s: 0..4 bytes of a header: kept, nothing opened", name);
        crafted_dispose(&x);
    }
}

/* Sequence numbers past what OpenSSL would reach: all eight bytes of the nonce; a peer past REKEY_AFTER is read. */
static void test_sequence_numbers(uint16_t suite)
{
    const char *name = suite_name(suite);
    static const uint64_t read_seqs[] = {0x0102030405060708ull, SIG_TLSREC_REKEY_AFTER + 7, 0xfedcba9876543210ull, 255, 256};
    size_t i;

    for (i = 0; i != sizeof(read_seqs) / sizeof(read_seqs[0]); ++i) {
        crafted_t x;
        uint8_t buf[256];
        size_t n, plain = 0;
        crafted_init(&x, suite, read_seqs[i], 0x00a1b2c3);
        n = ref_seal(&x.client, 23, "seq", 3, 0, buf);
        n += ref_seal(&x.client, 23, "next", 4, 0, buf + n);
        ok(sig_tlsrec_open(&x.t, ciphers, buf, &n, &plain) == 0 && plain == 7 && memcmp(buf, "seqnext", 7) == 0 &&
               x.t.read.seq == read_seqs[i] + 2,
           "%s: records at read_seq 0x%016llx and the next open", name, (unsigned long long)read_seqs[i]);
        crafted_dispose(&x);
    }
    {
        crafted_t x;
        uint8_t buf[256], content[256], type;
        size_t n, clen = 0, off;
        crafted_init(&x, suite, 0, 0x00a1b2c3);
        n = sig_tlsrec_seal(&x.t, ciphers, (const uint8_t *)"abc", 3, 0, buf);
        n += sig_tlsrec_seal(&x.t, ciphers, (const uint8_t *)"defg", 4, 0, buf + n);
        off = ref_open(&x.server, buf, n, &type, content, &clen);
        ok(off == 5 + 3 + 1 + 16 && type == 23 && clen == 3 && memcmp(content, "abc", 3) == 0,
           "%s: our record at write_seq 0x00a1b2c3 opens with the reference (nonce = IV xor seq)", name);
        ok(ref_open(&x.server, buf + off, n - off, &type, content, &clen) == n - off && clen == 4 && x.t.write.seq == 0x00a1b2c5,
           "%s: and the next at 0x00a1b2c4", name);
        crafted_dispose(&x);
    }
    {
        /* the peer's KeyUpdate, requested: applied (checked by the reference's next record), ours in the next seal */
        crafted_t x;
        uint8_t buf[256], content[256], type;
        size_t n, plain = 0, clen = 0, off;
        crafted_init(&x, suite, 77, 99);
        n = ref_seal(&x.client, 22, "\x18\x00\x00\x01\x01", 5, 0, buf);
        ref_dir_update(&x.client);
        n += ref_seal(&x.client, 23, "new key", 7, 0, buf + n);
        ok(sig_tlsrec_open(&x.t, ciphers, buf, &n, &plain) == 0 && plain == 7 && memcmp(buf, "new key", 7) == 0 &&
               x.t.key_update_due == 1 && memcmp(x.t.read.secret, x.client.secret, x.client.secret_len) == 0,
           "%s: the reference's KeyUpdate (requested): read.secret is its next secret, ours is due", name);
        n = sig_tlsrec_seal(&x.t, ciphers, (const uint8_t *)"ok", 2, 0, buf);
        off = ref_open(&x.server, buf, n, &type, content, &clen);
        ok(off != 0 && type == 22 && clen == 5 && memcmp(content, "\x18\x00\x00\x01\x00", 5) == 0,
           "%s: our KeyUpdate: 18 00 00 01 00 (update_not_requested) at write_seq 99", name);
        ref_dir_update(&x.server);
        ok(ref_open(&x.server, buf + off, n - off, &type, content, &clen) == n - off && type == 23 && clen == 2 &&
               memcmp(content, "ok", 2) == 0 && memcmp(x.t.write.secret, x.server.secret, x.server.secret_len) == 0,
           "%s: the data after it under the next key, write.secret is that key's secret", name);
        crafted_dispose(&x);
    }
}

/* No key seals more than SIG_TLSREC_REKEY_AFTER records: the reference follows our output from write_seq
 * REKEY_AFTER - 2, one small seal at a time, and fails on a record at a sequence number >= REKEY_AFTER. */
static void test_rekey_limit(uint16_t suite)
{
    const char *name = suite_name(suite);
    crafted_t x;
    uint8_t buf[512], content[512], type;
    size_t i, updates = 0, data = 0, over = 0;
    uint64_t update_seq = 0;

    crafted_init(&x, suite, 0, SIG_TLSREC_REKEY_AFTER - 2);
    for (i = 0; i != 5; ++i) {
        size_t n = sig_tlsrec_seal(&x.t, ciphers, (const uint8_t *)"r", 1, 0, buf), off = 0, clen;
        while (off < n) {
            size_t m;
            if (x.server.seq >= SIG_TLSREC_REKEY_AFTER)
                ++over;
            if ((m = ref_open(&x.server, buf + off, n - off, &type, content, &clen)) == 0)
                break;
            off += m;
            if (type == 22 && clen == 5 && content[0] == 24) {
                update_seq = x.server.seq - 1;
                ref_dir_update(&x.server);
                ++updates;
            } else if (type == 23 && clen == 1 && content[0] == 'r') {
                ++data;
            }
        }
        if (off != n)
            break;
    }
    ok(data == 5 && updates == 1, "%s: five records from write_seq REKEY_AFTER - 2: one KeyUpdate of ours among them", name);
    is_int(over, 0, "%s: no record sealed at a sequence number >= SIG_TLSREC_REKEY_AFTER under one key", name);
    if (over != 0)
        printf("#   our KeyUpdate was sealed at seq REKEY_AFTER %+lld: the key sealed %llu records\n",
               (long long)(update_seq - SIG_TLSREC_REKEY_AFTER), (unsigned long long)update_seq + 1);
    crafted_dispose(&x);
}

/* ---- two sig_tlsrec_t talking to each other ---- */

typedef struct {
    uint16_t suite;
    sig_tlsrec_t server, client;
} duo_t;

static void duo_init(duo_t *d, uint16_t suite, uint64_t s_to_c, uint64_t c_to_s, uint32_t seed)
{
    uint8_t c_secret[SIG_TLSREC_MAX_SECRET], s_secret[SIG_TLSREC_MAX_SECRET];
    size_t len = sig_tlsrec_secret_len(suite);
    fill_pattern(c_secret, len, seed);
    fill_pattern(s_secret, len, seed + 1);
    d->suite = suite;
    sig_tlsrec_init(&d->server, suite, c_secret, s_secret, len, c_to_s, s_to_c);
    sig_tlsrec_init(&d->client, suite, s_secret, c_secret, len, s_to_c, c_to_s);
}

static void duo_dispose(duo_t *d)
{
    sig_tlsrec_dispose(&d->server);
    sig_tlsrec_dispose(&d->client);
}

/* `from` seals (into a buffer with guard bytes past sealed_max), `to` opens: 1 when `to` gets exactly the data (and
 * CLOSED with close_notify), nothing written past sealed_max, nothing left over. */
static int transfer(sig_tlsrec_t *from, sig_tlsrec_t *to, const uint8_t *data, size_t len, int close_notify)
{
    size_t max = sig_tlsrec_sealed_max(len), n, plain = 0, i;
    uint8_t *buf = malloc(max + 64);
    int ret, good;

    memset(buf, 0xa5, max + 64);
    n = sig_tlsrec_seal(from, ciphers, data, len, close_notify, buf);
    good = n <= max;
    for (i = max; i != max + 64; ++i)
        good &= buf[i] == 0xa5;
    ret = sig_tlsrec_open(to, ciphers, buf, &n, &plain);
    good &= ret == (close_notify ? SIG_TLSREC_CLOSED : 0) && plain == len && n == len && (len == 0 || memcmp(buf, data, len) == 0);
    free(buf);
    return good;
}

static void test_duo(uint16_t suite)
{
    static const size_t sizes[] = {0, 1, 2, 100, 16383, 16384, 16385, 32768, 32769, 50000, 100000};
    static const uint64_t seqs[] = {0, 1, 12345, SIG_TLSREC_REKEY_AFTER - 3, SIG_TLSREC_REKEY_AFTER - 1};
    const char *name = suite_name(suite);
    static uint8_t data[100000 + 16]; /* sizes up to 100000 from offsets up to 10 */
    size_t i, j, failures = 0, runs = 0;
    duo_t d;

    fill_pattern(data, sizeof(data), 6);
    for (i = 0; i != sizeof(seqs) / sizeof(seqs[0]); ++i) {
        size_t bad = 0;
        duo_init(&d, suite, seqs[i], seqs[(i + 2) % 5], (uint32_t)i);
        for (j = 0; j != sizeof(sizes) / sizeof(sizes[0]); ++j) {
            bad += !transfer(&d.server, &d.client, data, sizes[j], 0);
            bad += !transfer(&d.client, &d.server, data + j, sizes[j], 0);
        }
        ok(bad == 0, "%s: two instances from seqs %llu/%llu: %zu sizes (0..100000) each way arrive exactly", name,
           (unsigned long long)seqs[i], (unsigned long long)seqs[(i + 2) % 5], sizeof(sizes) / sizeof(sizes[0]));
        duo_dispose(&d);
    }

    /* every combination of a due KeyUpdate, close_notify and a rekey on the way: within sealed_max, exact */
    for (i = 0; i != sizeof(sizes) / sizeof(sizes[0]); ++i) {
        int due, close_notify, near;
        for (near = 0; near != 2; ++near)
            for (due = 0; due != 2; ++due)
                for (close_notify = 0; close_notify != 2; ++close_notify) {
                    duo_init(&d, suite, near ? SIG_TLSREC_REKEY_AFTER - 2 : 5, 9, 77);
                    d.server.key_update_due = (uint8_t)due;
                    failures += !transfer(&d.server, &d.client, data, sizes[i], close_notify);
                    ++runs;
                    duo_dispose(&d);
                }
    }
    is_int(failures, 0, "%s: %zu seals (11 sizes x KeyUpdate due or not x close_notify or not x near the rekey or not): "
                        "within sealed_max, nothing past it written, opened exactly", name, runs);

    /* our own rekey: from REKEY_AFTER - 1 the KeyUpdate is the old key's last record (REKEY_AFTER in all), then four
     * records under the new key; the peer follows, the key changed */
    duo_init(&d, suite, SIG_TLSREC_REKEY_AFTER - 1, 0, 8);
    {
        uint8_t key_before[32];
        int good = 1;
        memcpy(key_before, d.server.write.key, sizeof(key_before));
        for (i = 0; i != 4; ++i)
            good &= transfer(&d.server, &d.client, data + i, 10, 0);
        ok(good && d.server.write.seq == 4 && memcmp(d.server.write.key, key_before, sizeof(key_before)) != 0 &&
               memcmp(d.server.write.secret, d.client.read.secret, sizeof(d.server.write.secret)) == 0,
           "%s: from write_seq REKEY_AFTER - 1: we rekeyed, the peer followed (write.seq %llu)", name,
           (unsigned long long)d.server.write.seq);
        good = transfer(&d.server, &d.client, data, 100000, 1);
        ok(good, "%s: then 100000 bytes and close_notify", name);
    }
    duo_dispose(&d);
    duo_init(&d, suite, SIG_TLSREC_REKEY_AFTER - 3, 0, 9);
    ok(transfer(&d.server, &d.client, data, 100000, 0) && d.server.write.seq < 7,
       "%s: a rekey in the middle of one seal of 100000 bytes", name);
    duo_dispose(&d);
}

/* One thread's contexts shared by connections of every suite, interleaved record by record; a refusal on one leaves
 * the others working, including one with the same keys. */
static void test_shared_ciphers(void)
{
    duo_t d[6];
    sig_tlsrec_t twin;
    uint8_t data[3000], bad[256], good[256];
    size_t i, round, n, len, plain, failures = 0;

    fill_pattern(data, sizeof(data), 7);
    for (i = 0; i != 6; ++i)
        duo_init(&d[i], suites[i % 3], i * 1000, i * 7, (uint32_t)(40 + i));
    for (round = 0; round != 20; ++round)
        for (i = 0; i != 6; ++i) {
            failures += !transfer(&d[i].server, &d[i].client, data + round, 100 + round * 100, 0);
            failures += !transfer(&d[i].client, &d[i].server, data + i, 50 + round, 0);
            if (round % 7 == 3)
                d[i].client.key_update_due = 1;
        }
    is_int(failures, 0, "six connections (two per suite) interleaved with one sig_tlsrec_ciphers_t, KeyUpdates among them");

    twin = d[0].client; /* the same keys and seqs: a second reader of d[0]'s stream */
    n = sig_tlsrec_seal(&d[0].server, ciphers, (const uint8_t *)"forged?", 7, 0, good);
    memcpy(bad, good, n);
    bad[n - 1] ^= 1;
    len = n;
    plain = 0;
    is_int(sig_tlsrec_open(&d[0].client, ciphers, bad, &len, &plain), SIG_TLSREC_ERR_AUTH, "a tampered record on one: ERR_AUTH");
    memcpy(bad, good, n); /* a refused record may have been decrypted in place: its bytes say nothing */
    plain = 0;
    ok(sig_tlsrec_open(&twin, ciphers, bad, &n, &plain) == 0 && plain == 7 && memcmp(bad, "forged?", 7) == 0,
       "the same record untouched opens with the same keys right after the refusal");
    for (i = 1, failures = 0; i != 6; ++i)
        failures += !transfer(&d[i].server, &d[i].client, data, 1000, 0) + !transfer(&d[i].client, &d[i].server, data, 1000, 0);
    is_int(failures, 0, "the other five connections carry on");
    sig_tlsrec_dispose(&twin);
    for (i = 0; i != 6; ++i)
        duo_dispose(&d[i]);

    {
        /* a second contexts object, and destroy(NULL) */
        sig_tlsrec_ciphers_t *other = sig_tlsrec_ciphers_create();
        duo_t e;
        sig_tlsrec_ciphers_t *saved = ciphers;
        duo_init(&e, SIG_TLSREC_CHACHA20_POLY1305_SHA256, 0, 0, 3);
        ciphers = other;
        ok(other != NULL && transfer(&e.server, &e.client, data, sizeof(data), 0), "a second sig_tlsrec_ciphers_t works alike");
        duo_dispose(&e);
        ciphers = saved;
        sig_tlsrec_ciphers_destroy(other);
        sig_tlsrec_ciphers_destroy(NULL);
    }
}

/* More connections than a thread keeps keyed: slots shared by several keys, every suite, KeyUpdates among them; once
 * each connection is forgotten no key is left in the contexts (a KeyUpdate wiped the old one itself). */
static void test_many_connections(void)
{
    enum { N = 600 };
    static duo_t d[N];
    sig_tlsrec_ciphers_t *saved = ciphers;
    uint8_t data[300];
    size_t i, round, failures = 0;

    ciphers = sig_tlsrec_ciphers_create();
    fill_pattern(data, sizeof(data), 99);
    for (i = 0; i != N; ++i)
        duo_init(&d[i], suites[i % 3], i, 2 * i, (uint32_t)(1000 + 2 * i));
    for (round = 0; round != 3; ++round)
        for (i = 0; i != N; ++i) {
            if (round == 1 && i % 7 == 0)
                d[i].server.key_update_due = 1; /* ours, then the client's answer below */
            if (round == 1 && i % 11 == 0)
                d[i].client.key_update_due = 1;
            failures += !transfer(&d[i].server, &d[i].client, data, 1 + (i + round) % sizeof(data), 0) +
                        !transfer(&d[i].client, &d[i].server, data, sizeof(data) - (i + round) % 50, 0);
        }
    is_int(failures, 0, "%d connections (all suites) in turn on one sig_tlsrec_ciphers_t, 3 rounds both ways, KeyUpdates", N);
    ok(sig_tlsrec_ciphers_keyed(ciphers) > 256, "contexts keyed for more than one slot's worth of connections (%zu)",
       sig_tlsrec_ciphers_keyed(ciphers));
    for (i = 0; i != N; ++i) {
        sig_tlsrec_ciphers_forget(ciphers, &d[i].server);
        sig_tlsrec_ciphers_forget(ciphers, &d[i].client);
        duo_dispose(&d[i]);
    }
    is_int((int)sig_tlsrec_ciphers_keyed(ciphers), 0, "no key left once every connection was forgotten, KeyUpdates included");
    sig_tlsrec_ciphers_destroy(ciphers);
    ciphers = saved;
}

static void test_dispose(void)
{
    size_t i;
    for (i = 0; i != 3; ++i) {
        duo_t d;
        duo_init(&d, suites[i], 5, 6, 11);
        d.server.key_update_due = 1;
        transfer(&d.server, &d.client, (const uint8_t *)"before", 6, 0);
        ok(!all_zero(d.server.write.secret, d.server.secret_len) && !all_zero(d.server.write.key, d.server.key_len),
           "%s: secrets and keys in use", suite_name(suites[i]));
        duo_dispose(&d);
        ok(all_zero(d.server.read.secret, sizeof(d.server.read.secret)) && all_zero(d.server.read.key, sizeof(d.server.read.key)) &&
               all_zero(d.server.read.iv, sizeof(d.server.read.iv)) &&
               all_zero(d.server.write.secret, sizeof(d.server.write.secret)) &&
               all_zero(d.server.write.key, sizeof(d.server.write.key)) && all_zero(d.server.write.iv, sizeof(d.server.write.iv)),
           "%s: dispose wipes both directions' secret, key and IV", suite_name(suites[i]));
    }
}

int main(void)
{
    size_t i;

    ciphers = sig_tlsrec_ciphers_create();
    make_certificate();
    test_suites();
    test_rfc8448();
    test_key_update_vector();
    for (i = 0; i != 3; ++i) {
        test_data_both_ways(suites[i]);
        test_split_everywhere(suites[i]);
        test_padding(suites[i]);
        test_key_updates(suites[i]);
        test_close_notify(suites[i]);
        test_refusals(suites[i]);
        test_crafted(suites[i]);
        test_headers(suites[i]);
        test_sequence_numbers(suites[i]);
        test_rekey_limit(suites[i]);
        test_duo(suites[i]);
    }
    test_shared_ciphers();
    test_many_connections();
    test_dispose();
    sig_tlsrec_ciphers_destroy(ciphers);
    X509_free(server_cert);
    EVP_PKEY_free(server_key);
    return done_testing();
}
