/*
 * TLS 1.3 record protection after the handshake (RFC 8446 5, 7.3, 4.6.3); see sig_tlsrec.h for why it is ours.
 */
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include "common/sig_common.h"
#include "core/sig_tlsrec.h"

#define CONTENT_ALERT 21
#define CONTENT_HANDSHAKE 22
#define CONTENT_APPLICATION_DATA 23
#define HANDSHAKE_KEY_UPDATE 24
#define HANDSHAKE_HEADER 4
#define KEY_UPDATE_LEN (HANDSHAKE_HEADER + 1)
#define NUM_SUITES 3

/* Contexts kept keyed per suite and direction, chosen by the key's first bytes (keys are HKDF output: uniform). Keying
 * a context costs about as much as sealing a small record (OpenSSL 3.0's EVP_CipherInit_ex with a key: ~170 ns for
 * AES-GCM), and a thread's records alternate between connections, so one context per suite re-keyed nearly every
 * record. This many keep a thread's busiest connections keyed; a context is made on first use (~1 KB). */
#define CIPHER_SLOTS 256

struct st_cipher_slot_t {
    EVP_CIPHER_CTX *ctx;
    uint8_t key[32]; /* the key scheduled in ctx, to skip scheduling it again */
    int keyed;
};

struct st_sig_tlsrec_ciphers_t {
    struct st_cipher_slot_t by[NUM_SUITES][2][CIPHER_SLOTS]; /* [suite][1: sealing, 0: opening][slot_of(key)] */
};

static size_t slot_of(const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    return (size_t)(h % CIPHER_SLOTS);
}

/* The slot keyed with `key`, if any, lets it go */
static void forget_key(struct st_cipher_slot_t *slots, const uint8_t *key, size_t key_len)
{
    struct st_cipher_slot_t *slot = slots + slot_of(key);
    if (slot->keyed && memcmp(slot->key, key, key_len) == 0) {
        EVP_CIPHER_CTX_free(slot->ctx); /* which cleanses OpenSSL's key schedule */
        OPENSSL_cleanse(slot, sizeof(*slot));
    }
}

static int suite_index(uint16_t suite)
{
    switch (suite) {
    case SIG_TLSREC_AES_128_GCM_SHA256:
        return 0;
    case SIG_TLSREC_AES_256_GCM_SHA384:
        return 1;
    case SIG_TLSREC_CHACHA20_POLY1305_SHA256:
        return 2;
    default:
        return -1;
    }
}

int sig_tlsrec_suite_supported(uint16_t suite)
{
    return suite_index(suite) >= 0;
}

size_t sig_tlsrec_secret_len(uint16_t suite)
{
    return suite == SIG_TLSREC_AES_256_GCM_SHA384 ? 48 : suite_index(suite) >= 0 ? 32 : 0;
}

static const EVP_CIPHER *suite_cipher(int index)
{
    return index == 0 ? EVP_aes_128_gcm() : index == 1 ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
}

/* HMAC and its digests, fetched once: OpenSSL 3.0's one-shot HMAC() looks them up by name on every call, which made
 * the four expansions of a connection's takeover cost 9 us */
static CRYPTO_ONCE fetch_once = CRYPTO_ONCE_STATIC_INIT;
static EVP_MAC *hmac;
static OSSL_PARAM hmac_params[2][2];

static void fetch_hmac(void)
{
    static char sha256[] = "SHA256", sha384[] = "SHA384";
    if ((hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        sig_fatal("EVP_MAC_fetch(HMAC) failed");
    hmac_params[0][0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha256, 0);
    hmac_params[0][1] = OSSL_PARAM_construct_end();
    hmac_params[1][0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha384, 0);
    hmac_params[1][1] = OSSL_PARAM_construct_end();
}

/* HKDF-Expand-Label(secret, label, "", len) for len up to the hash's length (7.1): one HMAC block, T(1). */
static void expand_label(uint16_t suite, const uint8_t *secret, size_t secret_len, const char *label, uint8_t *out,
                         size_t len)
{
    uint8_t info[2 + 1 + 6 + 16 + 1 + 1], t1[EVP_MAX_MD_SIZE];
    size_t label_len = strlen(label), n = 0, t1_len;
    EVP_MAC_CTX *ctx;

    info[n++] = (uint8_t)(len >> 8);
    info[n++] = (uint8_t)len;
    info[n++] = (uint8_t)(6 + label_len);
    memcpy(info + n, "tls13 ", 6);
    memcpy(info + n + 6, label, label_len);
    n += 6 + label_len;
    info[n++] = 0; /* an empty context */
    info[n++] = 1; /* the block counter */
    if (!CRYPTO_THREAD_run_once(&fetch_once, fetch_hmac) || (ctx = EVP_MAC_CTX_new(hmac)) == NULL || !EVP_MAC_init(ctx, secret, secret_len, hmac_params[suite == SIG_TLSREC_AES_256_GCM_SHA384]) ||
        !EVP_MAC_update(ctx, info, n) || !EVP_MAC_final(ctx, t1, &t1_len, sizeof(t1)))
        sig_fatal("HMAC failed");
    EVP_MAC_CTX_free(ctx);
    memcpy(out, t1, len);
    OPENSSL_cleanse(t1, sizeof(t1));
}

/* A direction's traffic keys from its secret (7.3). */
static void set_secret(const sig_tlsrec_t *t, sig_tlsrec_dir_t *dir, const uint8_t *secret)
{
    if (secret != dir->secret)
        memcpy(dir->secret, secret, t->secret_len);
    expand_label(t->suite, dir->secret, t->secret_len, "key", dir->key, t->key_len);
    expand_label(t->suite, dir->secret, t->secret_len, "iv", dir->iv, sizeof(dir->iv));
    dir->seq = 0;
}

/* application_traffic_secret_N+1 = HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length);
 * the thread's context keyed with the old key forgets it (`seal`: the direction) */
static void update_keys(const sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, sig_tlsrec_dir_t *dir, int seal)
{
    uint8_t next[SIG_TLSREC_MAX_SECRET];
    if (c != NULL)
        forget_key(c->by[suite_index(t->suite)][seal], dir->key, t->key_len);
    expand_label(t->suite, dir->secret, t->secret_len, "traffic upd", next, t->secret_len);
    set_secret(t, dir, next);
    OPENSSL_cleanse(next, sizeof(next));
}

int sig_tlsrec_init(sig_tlsrec_t *t, uint16_t suite, const uint8_t *read_secret, const uint8_t *write_secret,
                    size_t secret_len, uint64_t read_seq, uint64_t write_seq)
{
    memset(t, 0, sizeof(*t));
    if (!sig_tlsrec_suite_supported(suite) || secret_len != sig_tlsrec_secret_len(suite))
        return -1;
    t->suite = suite;
    t->secret_len = (uint8_t)secret_len;
    t->key_len = suite == SIG_TLSREC_AES_128_GCM_SHA256 ? 16 : 32;
    set_secret(t, &t->read, read_secret);
    set_secret(t, &t->write, write_secret);
    t->read.seq = read_seq;
    t->write.seq = write_seq;
    return 0;
}

void sig_tlsrec_dispose(sig_tlsrec_t *t)
{
    OPENSSL_cleanse(t, sizeof(*t));
}

sig_tlsrec_ciphers_t *sig_tlsrec_ciphers_create(void)
{
    sig_tlsrec_ciphers_t *c = sig_mem_alloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    return c;
}

void sig_tlsrec_ciphers_destroy(sig_tlsrec_ciphers_t *c)
{
    size_t i, j, k;
    if (c == NULL)
        return;
    for (i = 0; i != NUM_SUITES; ++i)
        for (j = 0; j != 2; ++j)
            for (k = 0; k != CIPHER_SLOTS; ++k)
                EVP_CIPHER_CTX_free(c->by[i][j][k].ctx);
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

void sig_tlsrec_ciphers_forget(sig_tlsrec_ciphers_t *c, const sig_tlsrec_t *t)
{
    int index;
    if (c == NULL || (index = suite_index(t->suite)) < 0)
        return;
    forget_key(c->by[index][0], t->read.key, t->key_len);
    forget_key(c->by[index][1], t->write.key, t->key_len);
}

size_t sig_tlsrec_ciphers_keyed(const sig_tlsrec_ciphers_t *c)
{
    size_t i, j, k, n = 0;
    for (i = 0; i != NUM_SUITES; ++i)
        for (j = 0; j != 2; ++j)
            for (k = 0; k != CIPHER_SLOTS; ++k)
                n += c->by[i][j][k].keyed;
    return n;
}

/* The context for `dir`'s next record, keyed, with the record's nonce (5.3) set. */
static EVP_CIPHER_CTX *start_record(const sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, const sig_tlsrec_dir_t *dir, int seal)
{
    int index = suite_index(t->suite);
    uint8_t nonce[12];
    size_t i;
    struct st_cipher_slot_t *slot = &c->by[index][seal][slot_of(dir->key)];
    const uint8_t *key = NULL;

    if (slot->ctx == NULL) {
        if ((slot->ctx = EVP_CIPHER_CTX_new()) == NULL || !EVP_CipherInit_ex(slot->ctx, suite_cipher(index), NULL, NULL, NULL, seal))
            sig_fatal("EVP_CipherInit_ex failed");
    }
    if (!slot->keyed || memcmp(slot->key, dir->key, t->key_len) != 0) {
        memcpy(slot->key, dir->key, t->key_len);
        slot->keyed = 1;
        key = dir->key;
    }
    memcpy(nonce, dir->iv, sizeof(nonce));
    for (i = 0; i != 8; ++i)
        nonce[4 + i] ^= (uint8_t)(dir->seq >> (56 - 8 * i));
    if (!EVP_CipherInit_ex(slot->ctx, NULL, NULL, key, nonce, seal))
        sig_fatal("EVP_CipherInit_ex failed");
    return slot->ctx;
}

/* ---- sealing ---- */

size_t sig_tlsrec_sealed_max(size_t len)
{
    return len + (len / SIG_TLSREC_MAX_PLAIN + 1) * SIG_TLSREC_OVERHEAD + (SIG_TLSREC_OVERHEAD + KEY_UPDATE_LEN) +
           (SIG_TLSREC_OVERHEAD + 2);
}

/* One record of `type` carrying `len` (<= 2^14) bytes, at `out`; returns its size. */
static size_t seal_record(sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, uint8_t type, const uint8_t *in, size_t len, uint8_t *out)
{
    size_t ciphertext_len = len + 1 + SIG_TLSREC_TAG;
    EVP_CIPHER_CTX *ctx = start_record(t, c, &t->write, 1);
    int n;

    out[0] = CONTENT_APPLICATION_DATA; /* the outer type of every protected record (5.2) */
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(ciphertext_len >> 8);
    out[4] = (uint8_t)ciphertext_len;
    if (!EVP_CipherUpdate(ctx, NULL, &n, out, SIG_TLSREC_HEADER) ||
        (len != 0 && !EVP_CipherUpdate(ctx, out + SIG_TLSREC_HEADER, &n, in, (int)len)) ||
        !EVP_CipherUpdate(ctx, out + SIG_TLSREC_HEADER + len, &n, &type, 1) ||
        !EVP_CipherFinal_ex(ctx, out + SIG_TLSREC_HEADER + len + 1, &n) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SIG_TLSREC_TAG, out + SIG_TLSREC_HEADER + len + 1))
        sig_fatal("sealing a TLS record failed");
    ++t->write.seq;
    return SIG_TLSREC_HEADER + ciphertext_len;
}

/* Our KeyUpdate (update_not_requested) under the current key; the next records use the next one. */
static size_t seal_key_update(sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, uint8_t *out)
{
    static const uint8_t key_update[KEY_UPDATE_LEN] = {HANDSHAKE_KEY_UPDATE, 0, 0, 1, 0};
    size_t n = seal_record(t, c, CONTENT_HANDSHAKE, key_update, sizeof(key_update), out);
    update_keys(t, c, &t->write, 1);
    t->key_update_due = 0;
    return n;
}

size_t sig_tlsrec_seal(sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, const uint8_t *in, size_t len, int close_notify, uint8_t *out)
{
    static const uint8_t alert_close_notify[2] = {1 /* warning */, 0 /* close_notify */};
    size_t off = 0, written = 0;

    do {
        size_t n = len - off < SIG_TLSREC_MAX_PLAIN ? len - off : SIG_TLSREC_MAX_PLAIN;
        if (t->key_update_due || t->write.seq >= SIG_TLSREC_REKEY_AFTER - 1) /* the KeyUpdate is the key's last record */
            written += seal_key_update(t, c, out + written);
        if (n != 0)
            written += seal_record(t, c, CONTENT_APPLICATION_DATA, in + off, n, out + written);
        off += n;
    } while (off != len);
    if (close_notify)
        written += seal_record(t, c, CONTENT_ALERT, alert_close_notify, sizeof(alert_close_notify), out + written);
    return written;
}

/* ---- opening ---- */

/* The handshake messages of one record (only KeyUpdate may come after the handshake to a server that asks for no
 * client certificate); returns 0 or SIG_TLSREC_ERR_UNEXPECTED. A KeyUpdate must end its record (5.1). */
static int on_handshake(sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, const uint8_t *p, size_t len)
{
    if (len != KEY_UPDATE_LEN || p[0] != HANDSHAKE_KEY_UPDATE || p[1] != 0 || p[2] != 0 || p[3] != 1 || p[4] > 1)
        return SIG_TLSREC_ERR_UNEXPECTED;
    update_keys(t, c, &t->read, 0);
    if (p[4] == 1) /* update_requested: ours goes before our next record */
        t->key_update_due = 1;
    return 0;
}

/* Decrypts the record at `rec` (its header checked, `ciphertext_len` bytes after it) in place; returns the content's
 * length and type, or a SIG_TLSREC_ERR_*. */
static int open_record(sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, uint8_t *rec, size_t ciphertext_len, size_t *content_len,
                       uint8_t *type)
{
    uint8_t *body = rec + SIG_TLSREC_HEADER;
    size_t n = ciphertext_len - SIG_TLSREC_TAG;
    EVP_CIPHER_CTX *ctx = start_record(t, c, &t->read, 0);
    int outl;

    if (!EVP_CipherUpdate(ctx, NULL, &outl, rec, SIG_TLSREC_HEADER) || !EVP_CipherUpdate(ctx, body, &outl, body, (int)n) ||
        !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, SIG_TLSREC_TAG, body + n) || EVP_CipherFinal_ex(ctx, body + n, &outl) <= 0)
        return SIG_TLSREC_ERR_AUTH;
    ++t->read.seq;
    while (n != 0 && body[n - 1] == 0) /* padding (5.4) */
        --n;
    if (n == 0)
        return SIG_TLSREC_ERR_UNEXPECTED; /* all zeros: no content type */
    *type = body[--n];
    *content_len = n;
    return 0;
}

int sig_tlsrec_open(sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, uint8_t *buf, size_t *len, size_t *plain)
{
    size_t w = *plain, r = *plain, end = *len;

    while (end - r >= SIG_TLSREC_HEADER) {
        uint8_t *rec = buf + r, type;
        size_t ciphertext_len = (size_t)rec[3] << 8 | rec[4], n;
        int ret;

        if (rec[0] != CONTENT_APPLICATION_DATA || rec[1] != 3 || rec[2] != 3 || ciphertext_len > SIG_TLSREC_MAX_CIPHERTEXT ||
            ciphertext_len < SIG_TLSREC_TAG + 1)
            return SIG_TLSREC_ERR_RECORD;
        if (end - r - SIG_TLSREC_HEADER < ciphertext_len)
            break; /* the rest has not come yet */
        if ((ret = open_record(t, c, rec, ciphertext_len, &n, &type)) != 0)
            return ret;
        r += SIG_TLSREC_HEADER + ciphertext_len;
        switch (type) {
        case CONTENT_APPLICATION_DATA:
            if (n > SIG_TLSREC_MAX_PLAIN)
                return SIG_TLSREC_ERR_RECORD; /* record_overflow */
            memmove(buf + w, rec + SIG_TLSREC_HEADER, n);
            w += n;
            break;
        case CONTENT_HANDSHAKE:
            if ((ret = on_handshake(t, c, rec + SIG_TLSREC_HEADER, n)) != 0)
                return ret;
            break;
        case CONTENT_ALERT:
            if (n != 2 || rec[SIG_TLSREC_HEADER + 1] != 0)
                return SIG_TLSREC_ERR_ALERT;
            *len = *plain = w; /* close_notify: nothing after it counts (6.1) */
            return SIG_TLSREC_CLOSED;
        default:
            return SIG_TLSREC_ERR_UNEXPECTED;
        }
    }
    if (r != w)
        memmove(buf + w, buf + r, end - r);
    *len = w + (end - r);
    *plain = w;
    return 0;
}
