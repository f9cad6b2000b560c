/*
 * tlsrec-bench.c: a micro-benchmark of TLS 1.3 records on the server (issue 14, item 3). It prints figures and
 * asserts nothing. For each suite and message size it times, per record, in ns (best of 7 runs of at least 20 ms):
 *   ours seal        sig_tlsrec_seal() of one message into one record (what a taken-over connection's flush does)
 *   ours open        sig_tlsrec_open() of that record in place
 *   OpenSSL write    SSL_write() of the message into a memory BIO, and reading the record out of it (libh2o's path,
 *                    minus h2o's own buffer and the uv_write)
 *   OpenSSL read     writing the record into the memory BIO and SSL_read() of it (records made first, 256 at a time)
 * both over the same TLS 1.3 connection of two OpenSSL 3.0 `SSL`s in memory (a throwaway P-256 certificate), the
 * server side taken over by sig_tlsrec at the sequence numbers the bench counts. Also the cost of a takeover
 * (sig_tlsrec_init: four HKDF-Expand-Label).
 *
 * Build and run it on the tree's sources:
 *   cc -O2 -Ihandler tests/bench/tlsrec-bench.c handler/core/sig_tlsrec.c handler/common/sig_common.c -lssl -lcrypto \
 *      -o /tmp/tlsrec-bench && taskset -c 1 /tmp/tlsrec-bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "core/sig_tlsrec.h"

#define BATCH 256

static uint8_t secrets[2][SIG_TLSREC_MAX_SECRET]; /* [0]: client (our read), [1]: server (our write) */
static size_t secret_len;
static uint64_t counts[2] = {UINT64_MAX, UINT64_MAX}; /* records under them: [0] read, [1] written */

static void on_keylog(const SSL *ssl, const char *line)
{
    int which = strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0 ? 0 : strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0 ? 1 : -1;
    const char *hex = line + 24 + 65;
    (void)ssl;
    if (which < 0)
        return;
    for (secret_len = 0; hex[2 * secret_len] != '\0'; ++secret_len)
        secrets[which][secret_len] = (uint8_t)(OPENSSL_hexchar2int(hex[2 * secret_len]) << 4 | OPENSSL_hexchar2int(hex[2 * secret_len + 1]));
    counts[which] = 0;
}

static void on_message(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version, (void)buf, (void)len, (void)ssl, (void)arg;
    if (type == SSL3_RT_HEADER && counts[write_p] != UINT64_MAX)
        ++counts[write_p];
}

static void fail(const char *what)
{
    fprintf(stderr, "tlsrec-bench: %s failed\n", what);
    exit(1);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* best of 7 runs of at least 20 ms, ns per call */
#define TIME(result, body)                                                                                                  \
    do {                                                                                                                   \
        double best = 1e18;                                                                                                \
        for (int run = 0; run != 7; ++run) {                                                                               \
            long n = 0;                                                                                                    \
            double start = now_ns(), t;                                                                                    \
            do {                                                                                                           \
                for (int k = 0; k != 64; ++k, ++n) {                                                                       \
                    body;                                                                                                  \
                }                                                                                                          \
            } while ((t = now_ns() - start) < 20e6);                                                                       \
            if (t / n < best)                                                                                              \
                best = t / n;                                                                                              \
        }                                                                                                                  \
        result = best;                                                                                                     \
    } while (0)

static SSL_CTX *server_context(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC, (const unsigned char *)"bench", -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, key);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* as the server sets it */
    SSL_CTX_set_keylog_callback(ctx, on_keylog);
    SSL_CTX_set_msg_callback(ctx, on_message);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

static void pump(BIO *from, BIO *to)
{
    char buf[65536];
    int n;
    while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
        BIO_write(to, buf, n);
}

static void bench_suite(const char *suite_name, uint16_t suite)
{
    static const size_t sizes[] = {130, 1400, 6000, 16384};
    SSL_CTX *sctx = server_context(), *cctx = SSL_CTX_new(TLS_client_method());
    SSL *s, *c;
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem()), *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    sig_tlsrec_ciphers_t *ciphers = sig_tlsrec_ciphers_create();
    sig_tlsrec_t ours, peer;
    static uint8_t msg[16384], rec[2][16384 + 512], in[16384 + 512], batch[BATCH][16384 + 512];
    static int batch_len[BATCH];
    double init_ns;
    size_t i;

    SSL_CTX_set_ciphersuites(cctx, suite_name);
    counts[0] = counts[1] = UINT64_MAX;
    s = SSL_new(sctx);
    c = SSL_new(cctx);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_bio(c, c_in, c_out);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    for (i = 0; i != 4; ++i) {
        SSL_do_handshake(c);
        pump(c_out, s_in);
        SSL_do_handshake(s);
        pump(s_out, c_in);
    }
    TIME(init_ns, sig_tlsrec_init(&ours, suite, secrets[0], secrets[1], secret_len, counts[0], counts[1]));
    printf("%s: a takeover (sig_tlsrec_init) %.0f ns\n", suite_name, init_ns);
    printf("  %6s %12s %12s %14s %14s\n", "bytes", "ours seal", "ours open", "OpenSSL write", "OpenSSL read");
    for (i = 0; i != sizeof(sizes) / sizeof(sizes[0]); ++i) {
        size_t len = sizes[i], rec_len, plain, in_len;
        double seal_ns, open_ns, write_ns, read_ns;

        memset(msg, 'a' + (int)i, len);
        /* ours, against a second instance as the peer (the client's keys) */
        sig_tlsrec_init(&peer, suite, secrets[1], secrets[0], secret_len, 0, 0);
        TIME(seal_ns, sig_tlsrec_seal(&ours, ciphers, msg, len, 0, rec[0]));
        rec_len = sig_tlsrec_seal(&peer, ciphers, msg, len, 0, rec[1]);
        TIME(open_ns, {
            memcpy(in, rec[1], rec_len); /* opening is in place: a fresh copy each time (memcpy counted, a few ns) */
            in_len = rec_len;
            plain = 0;
            ours.read.seq = peer.write.seq - 1;
            if (sig_tlsrec_open(&ours, ciphers, in, &in_len, &plain) != 0 || plain != len)
                fail("sig_tlsrec_open");
        });
        /* OpenSSL, both ways on the connection */
        TIME(write_ns, {
            if (SSL_write(s, msg, (int)len) != (int)len || BIO_read(s_out, rec[0], sizeof(rec[0])) <= 0)
                fail("SSL_write");
        });
        BIO_reset(c_in); /* the client never reads what the server wrote */
        read_ns = 1e18;
        for (int run = 0; run != 7; ++run) { /* a record authenticates once: a batch made first, then read */
            double start;
            for (int j = 0; j != BATCH; ++j)
                if (SSL_write(c, msg, (int)len) != (int)len || (batch_len[j] = BIO_read(c_out, batch[j], sizeof(batch[j]))) <= 0)
                    fail("the client's SSL_write");
            start = now_ns();
            for (int j = 0; j != BATCH; ++j) {
                BIO_write(s_in, batch[j], batch_len[j]);
                if (SSL_read(s, in, sizeof(in)) != (int)len)
                    fail("SSL_read");
            }
            if ((now_ns() - start) / BATCH < read_ns)
                read_ns = (now_ns() - start) / BATCH;
        }
        printf("  %6zu %12.0f %12.0f %14.0f %14.0f\n", len, seal_ns, open_ns, write_ns, read_ns);
        sig_tlsrec_dispose(&peer);
    }
    {
        /* a thread's records alternate between connections: `conns` instances with keys of their own take turns */
        static const size_t conns[] = {2, 64, 1024};
        static sig_tlsrec_t many[1024];
        size_t j, k, turn = 0;
        double alt_ns;
        memset(msg, 'x', 130);
        for (j = 0; j != 1024; ++j) {
            uint8_t r[SIG_TLSREC_MAX_SECRET], w[SIG_TLSREC_MAX_SECRET];
            for (k = 0; k != secret_len; ++k) {
                r[k] = (uint8_t)(secrets[0][k] ^ j ^ (j >> 8) * 131);
                w[k] = (uint8_t)(secrets[1][k] ^ j ^ (j >> 8) * 131);
            }
            sig_tlsrec_init(many + j, suite, r, w, secret_len, 0, 0);
        }
        for (j = 0; j != sizeof(conns) / sizeof(conns[0]); ++j) {
            TIME(alt_ns, sig_tlsrec_seal(many + turn++ % conns[j], ciphers, msg, 130, 0, rec[0]));
            printf("  130 bytes sealed by %4zu connections in turn: %.0f ns a record\n", conns[j], alt_ns);
        }
        for (j = 0; j != 1024; ++j) {
            sig_tlsrec_ciphers_forget(ciphers, many + j);
            sig_tlsrec_dispose(many + j);
        }
    }
    sig_tlsrec_ciphers_forget(ciphers, &ours);
    sig_tlsrec_dispose(&ours);
    sig_tlsrec_ciphers_destroy(ciphers);
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

int main(void)
{
    bench_suite("TLS_AES_128_GCM_SHA256", SIG_TLSREC_AES_128_GCM_SHA256);
    bench_suite("TLS_AES_256_GCM_SHA384", SIG_TLSREC_AES_256_GCM_SHA384);
    bench_suite("TLS_CHACHA20_POLY1305_SHA256", SIG_TLSREC_CHACHA20_POLY1305_SHA256);
    return 0;
}
