/*
 * Taking a WebSocket connection's TLS over from libh2o; see sig_ws_tls.h.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include "common/sig_common.h"
#include "ws/sig_ws_tls.h"

#define SEALED_KEEP (1024 * 1024) /* the thread's sealing buffer is freed after a burst needing more */

/* What the callbacks learn of one connection, in its SSL's ex_data (from its first traffic secret until SSL_free). */
struct st_capture_t {
    uint8_t read_secret[SIG_TLSREC_MAX_SECRET]; /* CLIENT_TRAFFIC_SECRET_0 */
    uint8_t write_secret[SIG_TLSREC_MAX_SECRET]; /* SERVER_TRAFFIC_SECRET_0 */
    uint8_t read_len, write_len;
    uint64_t read_records, write_records; /* carried under those secrets; -1 until the secret is known */
    uint8_t key_updated;                  /* OpenSSL saw a KeyUpdate: its keys are no longer those secrets' */
};

/* The first fields of libh2o 2.2.5's private struct st_h2o_socket_ssl_t (lib/common/socket.c:58-60), the same in
 * every h2o release: the only way from an h2o socket to its `SSL`. */
struct st_h2o_ssl_head_t {
    SSL_CTX *ssl_ctx;
    SSL *ossl;
};

static pthread_once_t capture_once = PTHREAD_ONCE_INIT;
static int capture_index = -1;

static __thread struct {
    sig_tlsrec_ciphers_t *ciphers;
    sig_buf_t sealed;
} thread;

static void free_capture(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr != NULL) {
        OPENSSL_cleanse(ptr, sizeof(struct st_capture_t));
        free(ptr);
    }
}

static void make_index(void)
{
    if ((capture_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_capture)) < 0)
        sig_fatal("SSL_get_ex_new_index failed");
}

/* "LABEL <client random, 64 hex digits> <secret in hex>": the secret's bytes, or 0 when the line is not that. */
static size_t parse_secret(const char *line, size_t label_len, uint8_t *out)
{
    size_t total = strlen(line), n = 0;
    const char *p, *end = line + total;
    if (total < label_len + 1 + 64 + 1 || line[label_len + 1 + 64] != ' ')
        return 0;
    p = line + label_len + 1 + 64 + 1;
    if ((end - p) % 2 != 0 || (size_t)(end - p) / 2 > SIG_TLSREC_MAX_SECRET)
        return 0;
    for (; p != end; p += 2) {
        int hi = OPENSSL_hexchar2int((unsigned char)p[0]), lo = OPENSSL_hexchar2int((unsigned char)p[1]);
        if (hi < 0 || lo < 0)
            return 0;
        out[n++] = (uint8_t)(hi << 4 | lo);
    }
    return n;
}

static struct st_capture_t *capture_of(const SSL *ssl, int create)
{
    struct st_capture_t *cap = SSL_get_ex_data(ssl, capture_index);
    if (cap == NULL && create) {
        cap = sig_mem_alloc(sizeof(*cap));
        memset(cap, 0, sizeof(*cap));
        cap->read_records = cap->write_records = UINT64_MAX;
        if (!SSL_set_ex_data((SSL *)ssl, capture_index, cap)) {
            free(cap);
            return NULL;
        }
    }
    return cap;
}

/* OpenSSL 3.0 logs each application traffic secret as it installs it: the server's after writing its Finished, the
 * client's after reading the client's Finished; every record after that point in that direction is under it. */
static void on_keylog(const SSL *ssl, const char *line)
{
    static const char read_label[] = "CLIENT_TRAFFIC_SECRET_0", write_label[] = "SERVER_TRAFFIC_SECRET_0";
    struct st_capture_t *cap;
    uint8_t secret[SIG_TLSREC_MAX_SECRET];
    size_t n;

    if (strncmp(line, read_label, sizeof(read_label) - 1) == 0 && line[sizeof(read_label) - 1] == ' ') {
        if ((n = parse_secret(line, sizeof(read_label) - 1, secret)) != 0 && (cap = capture_of(ssl, 1)) != NULL) {
            memcpy(cap->read_secret, secret, n);
            cap->read_len = (uint8_t)n;
            cap->read_records = 0;
        }
    } else if (strncmp(line, write_label, sizeof(write_label) - 1) == 0 && line[sizeof(write_label) - 1] == ' ') {
        if ((n = parse_secret(line, sizeof(write_label) - 1, secret)) != 0 && (cap = capture_of(ssl, 1)) != NULL) {
            memcpy(cap->write_secret, secret, n);
            cap->write_len = (uint8_t)n;
            cap->write_records = 0;
        }
    } else {
        return;
    }
    OPENSSL_cleanse(secret, sizeof(secret));
}

/* Called for every record header OpenSSL reads or writes, and every message (only a KeyUpdate matters here). */
static void on_message(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    struct st_capture_t *cap;
    (void)version, (void)arg;
    if ((content_type != SSL3_RT_HEADER && content_type != SSL3_RT_HANDSHAKE) || (cap = capture_of(ssl, 0)) == NULL)
        return;
    if (content_type == SSL3_RT_HANDSHAKE) {
        if (len != 0 && *(const uint8_t *)buf == SSL3_MT_KEY_UPDATE)
            cap->key_updated = 1; /* a client's, before the upgrade was written (OpenSSL logs no updated secret) */
        return;
    }
    if (write_p) {
        if (cap->write_records != UINT64_MAX)
            ++cap->write_records;
    } else if (cap->read_records != UINT64_MAX) {
        ++cap->read_records;
    }
}

void sig_ws_tls_capture(SSL_CTX *ctx)
{
    pthread_once(&capture_once, make_index);
    SSL_CTX_set_keylog_callback(ctx, on_keylog);
    SSL_CTX_set_msg_callback(ctx, on_message);
}

int sig_ws_tls_take(h2o_socket_t *sock, sig_ws_tls_t **out)
{
    SSL *ssl = ((struct st_h2o_ssl_head_t *)sock->ssl)->ossl;
    struct st_capture_t *cap;
    uint16_t suite;
    h2o_socket_export_t dead;
    sig_ws_tls_t *tls;
    int reading;

    if (capture_index < 0 || SSL_version(ssl) != TLS1_3_VERSION || !SSL_is_init_finished(ssl) || SSL_get_shutdown(ssl) != 0 ||
        (cap = capture_of(ssl, 0)) == NULL || cap->read_records == UINT64_MAX || cap->write_records == UINT64_MAX ||
        cap->key_updated)
        return -1;
    suite = (uint16_t)SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(ssl));
    if (!sig_tlsrec_suite_supported(suite) || cap->read_len != sig_tlsrec_secret_len(suite) || cap->write_len != cap->read_len)
        return -1;
    /* the 101 went out under the write secret: a count of 0 means the counting did not run (another message callback
     * replaced ours), and guessing a sequence number could reuse a nonce */
    if (cap->write_records == 0)
        return -1;
    if (SSL_has_pending(ssl))
        return 0; /* part of a record is in OpenSSL's buffer: its sequence number is counted, its bytes are not ours */
    /* h2o frees its TLS state only together with a descriptor (h2o_socket_dispose_export closes it) */
    memset(&dead, 0, sizeof(dead));
    if ((dead.fd = dup(h2o_socket_get_fd(sock))) == -1)
        return -1;
    tls = sig_mem_alloc(sizeof(*tls));
    if (sig_tlsrec_init(&tls->rec, suite, cap->read_secret, cap->write_secret, cap->read_len, cap->read_records,
                        cap->write_records) != 0)
        sig_fatal("sig_tlsrec_init refused a checked suite");
    tls->plain = sock->input->size;

    /* the socket's read callbacks are chosen by whether it has TLS (uv-binding.c.h do_read_start) */
    if ((reading = h2o_socket_is_reading(sock)))
        h2o_socket_read_stop(sock);
    dead.ssl = sock->ssl;
    sock->ssl = NULL;
    h2o_buffer_init(&dead.input, &h2o_socket_buffer_prototype);
    h2o_socket_dispose_export(&dead); /* SSL_free (and our capture with it), h2o's buffers, the dup */
    if (reading)
        h2o_socket_read_start(sock, sock->_cb.read);
    *out = tls;
    return 1;
}

int sig_ws_tls_open(sig_ws_tls_t *tls, h2o_socket_t *sock)
{
    size_t len = sock->input->size;
    int ret;

    if (len == tls->plain)
        return 0; /* nothing new (the input may be h2o's shared empty buffer: not written to) */
    if (thread.ciphers == NULL)
        thread.ciphers = sig_tlsrec_ciphers_create();
    ret = sig_tlsrec_open(&tls->rec, thread.ciphers, (uint8_t *)sock->input->bytes, &len, &tls->plain);
    sock->input->size = len;
    return ret;
}

h2o_iovec_t sig_ws_tls_seal(sig_ws_tls_t *tls, const void *data, size_t len, int close_notify)
{
    uint8_t *out;

    if (thread.ciphers == NULL)
        thread.ciphers = sig_tlsrec_ciphers_create();
    if (thread.sealed.cap > SEALED_KEEP)
        sig_buf_dispose(&thread.sealed); /* the last burst's room is not kept for the thread's life */
    sig_buf_reset(&thread.sealed);
    out = (uint8_t *)sig_buf_reserve(&thread.sealed, sig_tlsrec_sealed_max(len));
    thread.sealed.len = sig_tlsrec_seal(&tls->rec, thread.ciphers, data, len, close_notify, out);
    return h2o_iovec_init(thread.sealed.base, thread.sealed.len);
}

void sig_ws_tls_free(sig_ws_tls_t *tls)
{
    if (tls == NULL)
        return;
    sig_tlsrec_ciphers_forget(thread.ciphers, &tls->rec);
    sig_tlsrec_dispose(&tls->rec);
    free(tls);
}

void sig_ws_tls_thread_dispose(void)
{
    sig_tlsrec_ciphers_destroy(thread.ciphers);
    thread.ciphers = NULL;
    sig_buf_dispose(&thread.sealed);
}
