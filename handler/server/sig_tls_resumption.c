/*
 * `ssl-session-resumption` (sig_tls_resumption.h): the directive's parser, the process-wide ticket key
 * rings and their maintenance thread, and the OpenSSL callbacks. Stock h2o 2.2.5 keeps the same things
 * in src/ssl.c; the ticket-file format and the key layout (cipher key, then an HMAC key of the hash's
 * block size) are stock's, so a secrets file written for h2o works here and the other way round.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "server/sig_tls_resumption.h"
#include "server/sig_yaml.h"

#define SIG_RESUMPTION_DEFAULT_LIFETIME 3600
#define SIG_RESUMPTION_TICK_SECONDS 10 /* ticket files are polled this often (stock: 10 s) */
#define SIG_RESUMPTION_FLUSH_TICKS 6   /* expired cache entries are flushed every 6 ticks */
#define SIG_TICKET_NAME_LEN 16

enum { MODE_CACHE = 1, MODE_TICKET = 2 };
enum { STORE_INTERNAL, STORE_FILE };

/* ---- ticket keys ---- */

/** One ticket secret: stock's st_session_ticket_t. */
struct st_ticket_key_t {
    unsigned char name[SIG_TICKET_NAME_LEN];
    const EVP_CIPHER *cipher;
    const EVP_MD *md;
    uint64_t not_before, not_after;
    size_t cipher_key_len, hmac_key_len;
    unsigned char keys[]; /* cipher key, then HMAC key */
};

typedef H2O_VECTOR(struct st_ticket_key_t *) key_vector_t;

/** A process-wide key ring: what every SSL_CTX of the same recipe (or the same file) encrypts with. */
struct st_key_ring_t {
    struct st_key_ring_t *next;
    pthread_rwlock_t lock;
    key_vector_t keys; /* newest not_before first */
    int store;         /* STORE_INTERNAL: generated from the recipe below; STORE_FILE: read from filename */
    const EVP_CIPHER *cipher;
    const EVP_MD *md;
    unsigned lifetime;
    char *filename;
    time_t mtime; /* of the file when it was last read; 0: missing at the last look */
};

/** What an SSL_CTX carries (ex_data): its ring, and whether its session cache needs flushing. */
struct st_ctx_entry_t {
    struct st_ctx_entry_t *next, **prev;
    SSL_CTX *ctx;
    struct st_key_ring_t *ring; /* NULL: no tickets */
    int flush_cache;
};

static struct {
    pthread_mutex_t mutex; /* the lists below and the thread's start */
    struct st_key_ring_t *rings;
    struct st_ctx_entry_t *contexts;
    int thread_started;
    int ex_index;
    pthread_once_t once;
} state = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, -1, PTHREAD_ONCE_INIT};

static struct st_ticket_key_t *new_key(const EVP_CIPHER *cipher, const EVP_MD *md, uint64_t not_before, uint64_t not_after)
{
    size_t cipher_key_len = EVP_CIPHER_get_key_length(cipher), hmac_key_len = EVP_MD_get_block_size(md);
    struct st_ticket_key_t *key = h2o_mem_alloc(sizeof(*key) + cipher_key_len + hmac_key_len);
    memset(key, 0, sizeof(*key));
    key->cipher = cipher;
    key->md = md;
    key->not_before = not_before;
    key->not_after = not_after;
    key->cipher_key_len = cipher_key_len;
    key->hmac_key_len = hmac_key_len;
    return key;
}

static void free_key(struct st_ticket_key_t *key)
{
    OPENSSL_cleanse(key, sizeof(*key) + key->cipher_key_len + key->hmac_key_len);
    free(key);
}

static void free_keys(key_vector_t *keys)
{
    size_t i;
    for (i = 0; i != keys->size; ++i)
        free_key(keys->entries[i]);
    free(keys->entries);
    memset(keys, 0, sizeof(*keys));
}

/* newest not_before first, then by name: stock's order */
static int compare_keys(const void *_x, const void *_y)
{
    const struct st_ticket_key_t *x = *(struct st_ticket_key_t *const *)_x, *y = *(struct st_ticket_key_t *const *)_y;
    if (x->not_before != y->not_before)
        return x->not_before > y->not_before ? -1 : 1;
    return memcmp(x->name, y->name, sizeof(x->name));
}

/** The key that encrypts at `now`: the newest already started, if it has not expired; else NULL. */
static struct st_ticket_key_t *key_for_encryption(key_vector_t *keys, uint64_t now)
{
    size_t i;
    for (i = 0; i != keys->size; ++i)
        if (keys->entries[i]->not_before <= now)
            return now <= keys->entries[i]->not_after ? keys->entries[i] : NULL;
    return NULL;
}

/**
 * Stock's rotation (src/ssl.c update_tickets): drops expired keys, and adds a key when none encrypts or
 * the newest is older than lifetime/4; a key added while another still encrypts starts 60 s later (stock
 * does so for servers sharing keys through memcached). Each key is valid for `lifetime` from its start.
 */
static void rotate_internal(struct st_key_ring_t *ring, uint64_t now)
{
    key_vector_t *keys = &ring->keys;
    int has_valid;

    while (keys->size != 0 && keys->entries[keys->size - 1]->not_after < now)
        free_key(keys->entries[--keys->size]);
    has_valid = key_for_encryption(keys, now) != NULL;
    if (!has_valid || keys->entries[0]->not_before + ring->lifetime / 4 < now) {
        uint64_t not_before = has_valid ? now + 60 : now;
        struct st_ticket_key_t *key = new_key(ring->cipher, ring->md, not_before, not_before + ring->lifetime - 1);
        RAND_bytes(key->name, sizeof(key->name));
        RAND_bytes(key->keys, (int)(key->cipher_key_len + key->hmac_key_len));
        h2o_vector_reserve(NULL, keys, keys->size + 1);
        memmove(keys->entries + 1, keys->entries, sizeof(keys->entries[0]) * keys->size);
        ++keys->size;
        keys->entries[0] = key;
    }
}

/* ---- the ticket-file format (stock's: a sequence of {name, cipher, hash, key, not_before, not_after}) ---- */

static int hex_digit(int c)
{
    if ('0' <= c && c <= '9')
        return c - '0';
    if ('a' <= c && c <= 'f')
        return c - 'a' + 10;
    if ('A' <= c && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes exactly `len` bytes from 2*len hex digits. Returns 0 or -1. */
static int hex_decode(unsigned char *dst, const char *src, size_t len)
{
    size_t i;
    if (strlen(src) != len * 2)
        return -1;
    for (i = 0; i != len; ++i) {
        int hi = hex_digit(src[2 * i]), lo = hex_digit(src[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        dst[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static yoml_t *mapping_get(yoml_t *map, const char *name)
{
    size_t i;
    for (i = 0; i != map->data.mapping.size; ++i) {
        yoml_t *key = map->data.mapping.elements[i].key;
        if (key->type == YOML_TYPE_SCALAR && strcmp(key->data.scalar, name) == 0)
            return map->data.mapping.elements[i].value;
    }
    return NULL;
}

/* Trial runs: the cipher and the hash must work for tickets under the providers OpenSSL has loaded (a
 * legacy name EVP_get_*byname knows may not, and would fail every handshake later). */
static int cipher_usable(const EVP_CIPHER *cipher)
{
    unsigned char key[EVP_MAX_KEY_LENGTH] = {0}, iv[EVP_MAX_IV_LENGTH] = {0};
    EVP_CIPHER_CTX *ctx;
    int ok;

    if ((EVP_CIPHER_get_flags(cipher) & EVP_CIPH_FLAG_AEAD_CIPHER) != 0 || EVP_CIPHER_get_key_length(cipher) <= 0 ||
        EVP_CIPHER_get_key_length(cipher) > EVP_MAX_KEY_LENGTH || EVP_CIPHER_get_iv_length(cipher) > EVP_MAX_IV_LENGTH)
        return 0;
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
        return 0;
    ok = EVP_EncryptInit_ex(ctx, cipher, NULL, key, iv) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

/* Points `hctx` (HMAC) at `md` with `key`. Returns 1 or 0. */
static int hmac_init(EVP_MAC_CTX *hctx, const EVP_MD *md, const unsigned char *key, size_t key_len)
{
    char digest[80];
    OSSL_PARAM params[3];
    const char *name = EVP_MD_get0_name(md);

    if (name == NULL || strlen(name) >= sizeof(digest))
        return 0;
    strcpy(digest, name);
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key, key_len);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

static int hash_usable(const EVP_MD *md)
{
    unsigned char key[EVP_MAX_MD_SIZE * 2] = {0};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *hctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    int ok = 0;

    if (hctx != NULL && EVP_MD_get_block_size(md) > 0 && (size_t)EVP_MD_get_block_size(md) <= sizeof(key))
        ok = hmac_init(hctx, md, key, EVP_MD_get_block_size(md)) && EVP_MAC_init(hctx, NULL, 0, NULL) == 1;
    EVP_MAC_CTX_free(hctx);
    EVP_MAC_free(mac);
    return ok;
}

/* One element of a ticket file, or NULL with the reason in `err`. */
static struct st_ticket_key_t *parse_key_entry(yoml_t *element, size_t *line, char *err, size_t errlen)
{
    static const char *const names[] = {"name", "cipher", "hash", "key", "not_before", "not_after"};
    yoml_t *v[6];
    unsigned char name[SIG_TICKET_NAME_LEN];
    const EVP_CIPHER *cipher;
    const EVP_MD *md;
    uint64_t not_before, not_after;
    struct st_ticket_key_t *key;
    size_t i;

    *line = element->line;
    if (element->type != YOML_TYPE_MAPPING) {
        snprintf(err, errlen, "the entry is not a mapping");
        return NULL;
    }
    for (i = 0; i != 6; ++i) {
        if ((v[i] = mapping_get(element, names[i])) == NULL) {
            snprintf(err, errlen, "mandatory attribute `%s` is missing", names[i]);
            return NULL;
        }
        *line = v[i]->line;
        if (v[i]->type != YOML_TYPE_SCALAR) {
            snprintf(err, errlen, "attribute `%s` is not a string", names[i]);
            return NULL;
        }
    }
    *line = v[0]->line;
    if (hex_decode(name, v[0]->data.scalar, sizeof(name)) != 0) {
        snprintf(err, errlen, "`name` must be 32 hex digits");
        return NULL;
    }
    *line = v[1]->line;
    if ((cipher = EVP_get_cipherbyname(v[1]->data.scalar)) == NULL || !cipher_usable(cipher)) {
        snprintf(err, errlen, "unknown or unusable cipher `%s`", v[1]->data.scalar);
        return NULL;
    }
    *line = v[2]->line;
    if ((md = EVP_get_digestbyname(v[2]->data.scalar)) == NULL || !hash_usable(md)) {
        snprintf(err, errlen, "unknown or unusable hash `%s`", v[2]->data.scalar);
        return NULL;
    }
    *line = v[4]->line;
    if (parse_u64(v[4]->data.scalar, &not_before) != 0 || parse_u64(v[5]->data.scalar, &not_after) != 0) {
        snprintf(err, errlen, "`not_before` and `not_after` must be numbers (seconds since the epoch)");
        return NULL;
    }
    if (not_before > not_after) {
        snprintf(err, errlen, "`not_after` is less than `not_before`");
        return NULL;
    }
    key = new_key(cipher, md, not_before, not_after);
    memcpy(key->name, name, sizeof(name));
    *line = v[3]->line;
    if (hex_decode(key->keys, v[3]->data.scalar, key->cipher_key_len + key->hmac_key_len) != 0) {
        snprintf(err, errlen, "`key` must be %zu hex digits (%s key, then %s HMAC key)",
                 (key->cipher_key_len + key->hmac_key_len) * 2, v[1]->data.scalar, v[2]->data.scalar);
        free_key(key);
        return NULL;
    }
    return key;
}

/* Overwrites the `key` scalars of a parsed ticket file before it is freed. */
static void cleanse_secrets(yoml_t *root)
{
    size_t i;
    if (root->type != YOML_TYPE_SEQUENCE)
        return;
    for (i = 0; i != root->data.sequence.size; ++i) {
        yoml_t *e = root->data.sequence.elements[i], *k;
        if (e->type == YOML_TYPE_MAPPING && (k = mapping_get(e, "key")) != NULL && k->type == YOML_TYPE_SCALAR)
            OPENSSL_cleanse(k->data.scalar, strlen(k->data.scalar));
    }
}

/**
 * Reads ticket file `path` into `keys` (sorted, newest first) and its mtime into `*mtime`. Returns 0, or
 * -1 with a message ("FILE:LINE: ..." or "FILE: ...") in `err`.
 */
static int load_ticket_file(const char *path, key_vector_t *keys, time_t *mtime, char *err, size_t errlen)
{
    struct stat st;
    yoml_t *root;
    size_t i;
    char reason[256];

    memset(keys, 0, sizeof(*keys));
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if ((root = sig_yaml_load_file(path, err, errlen)) == NULL)
        return -1;
    if (root->type != YOML_TYPE_SEQUENCE) {
        snprintf(err, errlen, "%s:%zu: the secrets must be a sequence of {name, cipher, hash, key, not_before, not_after}", path,
                 root->line + 1);
        goto Error;
    }
    for (i = 0; i != root->data.sequence.size; ++i) {
        yoml_t *element = root->data.sequence.elements[i];
        size_t line;
        struct st_ticket_key_t *key = parse_key_entry(element, &line, reason, sizeof(reason));
        if (key == NULL) {
            snprintf(err, errlen, "%s:%zu: %s", path, line + 1, reason);
            goto Error;
        }
        h2o_vector_reserve(NULL, keys, keys->size + 1);
        keys->entries[keys->size++] = key;
    }
    if (keys->size > 1)
        qsort(keys->entries, keys->size, sizeof(keys->entries[0]), compare_keys);
    cleanse_secrets(root);
    yoml_free(root, NULL);
    *mtime = st.st_mtime;
    return 0;
Error:
    cleanse_secrets(root);
    yoml_free(root, NULL);
    free_keys(keys);
    return -1;
}

/* ---- OpenSSL callbacks ---- */

static void free_ctx_entry(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct st_ctx_entry_t *entry = ptr;
    if (entry == NULL)
        return;
    pthread_mutex_lock(&state.mutex); /* not while the maintenance thread flushes it */
    if ((*entry->prev = entry->next) != NULL)
        entry->next->prev = entry->prev;
    pthread_mutex_unlock(&state.mutex);
    free(entry);
}

static void init_ex_index(void)
{
    state.ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ctx_entry);
}

/* RFC 5077 tickets (TLS 1.2) and TLS 1.3's stateless tickets: returns 1 (key set), 2 (decrypted with an
 * older key: issue a new ticket), 0 (unknown or expired key on decryption; no ticket on encryption), -1. */
static int on_ticket_key(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct st_ctx_entry_t *entry = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), state.ex_index);
    struct st_key_ring_t *ring = entry != NULL ? entry->ring : NULL;
    struct st_ticket_key_t *key = NULL;
    uint64_t now = (uint64_t)time(NULL);
    size_t i;
    int ret = 0;

    if (ring == NULL)
        return 0;
    pthread_rwlock_rdlock(&ring->lock);
    if (enc) {
        if ((key = key_for_encryption(&ring->keys, now)) == NULL && ring->store == STORE_INTERNAL) {
            /* the thread's tick has not come yet (a lifetime shorter than the tick): rotate here */
            pthread_rwlock_unlock(&ring->lock);
            pthread_rwlock_wrlock(&ring->lock);
            rotate_internal(ring, now);
            key = key_for_encryption(&ring->keys, now);
        }
        if (key == NULL)
            goto Exit; /* a file whose keys all expired: no ticket, the session still works */
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(key->cipher)) != 1)
            goto Fail;
        memcpy(key_name, key->name, sizeof(key->name));
        if (EVP_EncryptInit_ex(cctx, key->cipher, NULL, key->keys, iv) != 1)
            goto Fail;
        ret = 1;
    } else {
        for (i = 0; i != ring->keys.size; ++i)
            if (memcmp(ring->keys.entries[i]->name, key_name, SIG_TICKET_NAME_LEN) == 0)
                break;
        if (i == ring->keys.size || ring->keys.entries[i]->not_after < now)
            goto Exit; /* unknown or expired: a full handshake */
        key = ring->keys.entries[i];
        if (EVP_DecryptInit_ex(cctx, key->cipher, NULL, key->keys, iv) != 1)
            goto Fail;
        /* renew a ticket made with an older key once a newer one encrypts; with TLS 1.3 always: clients use each
         * ticket once (RFC 8446 C.4, as browsers do), and without a new one every third connection would be a full
         * handshake */
        ret = SSL_version(ssl) == TLS1_3_VERSION || (i != 0 && ring->keys.entries[i - 1]->not_before <= now) ? 2 : 1;
    }
    if (!hmac_init(hctx, key->md, key->keys + key->cipher_key_len, key->hmac_key_len))
        goto Fail;
Exit:
    pthread_rwlock_unlock(&ring->lock);
    return ret;
Fail:
    pthread_rwlock_unlock(&ring->lock);
    return -1;
}

/* ---- the maintenance thread ---- */

static void refresh_file_ring(struct st_key_ring_t *ring)
{
    struct stat st;
    key_vector_t keys;
    time_t mtime;
    char err[512];

    if (stat(ring->filename, &st) != 0) {
        if (ring->mtime != 0)
            fprintf(stderr, "h2o-signaling: cannot read session ticket secrets %s: %s (the keys read before stay)\n",
                    ring->filename, strerror(errno));
        ring->mtime = 0;
        return;
    }
    if (st.st_mtime == ring->mtime)
        return;
    if (load_ticket_file(ring->filename, &keys, &mtime, err, sizeof(err)) != 0) {
        fprintf(stderr, "h2o-signaling: cannot load session ticket secrets: %s (the keys read before stay)\n", err);
        ring->mtime = st.st_mtime; /* reported once per change */
        return;
    }
    pthread_rwlock_wrlock(&ring->lock);
    h2o_mem_swap(&ring->keys, &keys, sizeof(keys));
    ring->mtime = mtime;
    pthread_rwlock_unlock(&ring->lock);
    free_keys(&keys);
    fprintf(stderr, "h2o-signaling: session ticket secrets have been reloaded from %s\n", ring->filename);
}

static void *maintenance_main(void *unused)
{
    unsigned tick;
    for (tick = 1;; ++tick) {
        struct st_key_ring_t *ring;
        struct st_ctx_entry_t *entry;
        sleep(SIG_RESUMPTION_TICK_SECONDS);
        pthread_mutex_lock(&state.mutex);
        for (ring = state.rings; ring != NULL; ring = ring->next) {
            if (ring->store == STORE_INTERNAL) {
                pthread_rwlock_wrlock(&ring->lock);
                rotate_internal(ring, (uint64_t)time(NULL));
                pthread_rwlock_unlock(&ring->lock);
            } else {
                refresh_file_ring(ring);
            }
        }
        /* the caches run with SSL_SESS_CACHE_NO_AUTO_CLEAR (no flush inside a handshake), as in stock */
        if (tick % SIG_RESUMPTION_FLUSH_TICKS == 0)
            for (entry = state.contexts; entry != NULL; entry = entry->next)
                if (entry->flush_cache)
                    SSL_CTX_flush_sessions(entry->ctx, time(NULL));
        pthread_mutex_unlock(&state.mutex);
    }
    return NULL;
}

/* ---- the directive ---- */

typedef struct st_resumption_settings_t {
    int modes;
    int ticket_store;
    const EVP_CIPHER *cipher;
    const EVP_MD *md;
    char *ticket_file;
    key_vector_t file_keys; /* read by the parser; handed to the file's ring by setup */
    time_t file_mtime;
    unsigned lifetime;
} resumption_settings_t;

struct st_resumption_configurator_t {
    h2o_configurator_t super;
    resumption_settings_t settings;
};

static void reset_settings(resumption_settings_t *s)
{
    free(s->ticket_file);
    free_keys(&s->file_keys);
    memset(s, 0, sizeof(*s));
    s->modes = MODE_CACHE | MODE_TICKET;
    s->ticket_store = STORE_INTERNAL;
    /* to protect the secret beyond 2030 AES-256 is needed; sha256 is RFC 5077's recommendation (stock's words) */
    s->cipher = EVP_aes_256_cbc();
    s->md = EVP_sha256();
    s->lifetime = SIG_RESUMPTION_DEFAULT_LIFETIME;
}

static int on_dispose(h2o_configurator_t *_self)
{
    struct st_resumption_configurator_t *self = (void *)_self;
    /* Debian's libh2o calls a configurator's dispose twice (dispose_configurators, then destroy_configurator) */
    free(self->settings.ticket_file);
    self->settings.ticket_file = NULL;
    free_keys(&self->settings.file_keys);
    return 0;
}

static int scalar_is(yoml_t *node, const char *value)
{
    return node->type == YOML_TYPE_SCALAR && strcasecmp(node->data.scalar, value) == 0;
}

/* The `memcached` mapping, checked as stock checks it (host, port, protocol: BINARY | ASCII). */
static int check_memcached(h2o_configurator_command_t *cmd, yoml_t *node)
{
    size_t i;
    int has_host = 0;

    if (node->type != YOML_TYPE_MAPPING) {
        h2o_configurator_errprintf(cmd, node, "`memcached` must be a mapping (host, port, protocol)");
        return -1;
    }
    for (i = 0; i != node->data.mapping.size; ++i) {
        yoml_t *key = node->data.mapping.elements[i].key, *value = node->data.mapping.elements[i].value;
        uint64_t port;
        if (key->type != YOML_TYPE_SCALAR) {
            h2o_configurator_errprintf(cmd, key, "attribute must be a string");
            return -1;
        }
        if (strcmp(key->data.scalar, "host") == 0) {
            if (value->type != YOML_TYPE_SCALAR) {
                h2o_configurator_errprintf(cmd, value, "`host` must be a string");
                return -1;
            }
            has_host = 1;
        } else if (strcmp(key->data.scalar, "port") == 0) {
            if (value->type != YOML_TYPE_SCALAR || parse_u64(value->data.scalar, &port) != 0 || port > 65535) {
                h2o_configurator_errprintf(cmd, value, "`port` must be a number");
                return -1;
            }
        } else if (strcmp(key->data.scalar, "protocol") == 0) {
            if (h2o_configurator_get_one_of(cmd, value, "BINARY,ASCII") == -1)
                return -1;
        } else {
            h2o_configurator_errprintf(cmd, key, "unknown attribute: %s", key->data.scalar);
            return -1;
        }
    }
    if (!has_host) {
        h2o_configurator_errprintf(cmd, node, "mandatory attribute `host` is missing");
        return -1;
    }
    return 0;
}

static int on_config(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    static const char *const known[] = {
        "mode",        "cache-store", "cache-memcached-num-threads", "cache-memcached-prefix",  "ticket-store", "ticket-cipher",
        "ticket-hash", "ticket-file", "ticket-memcached-key",        "ticket-memcached-prefix", "lifetime",     "memcached"};
    resumption_settings_t *s = &((struct st_resumption_configurator_t *)cmd->configurator)->settings;
    yoml_t *t;
    size_t i, j;

    reset_settings(s); /* the last occurrence wins, as in stock */
    for (i = 0; i != node->data.mapping.size; ++i) {
        yoml_t *key = node->data.mapping.elements[i].key;
        for (j = 0; j != sizeof(known) / sizeof(known[0]); ++j)
            if (key->type == YOML_TYPE_SCALAR && strcmp(key->data.scalar, known[j]) == 0)
                break;
        if (j == sizeof(known) / sizeof(known[0])) {
            h2o_configurator_errprintf(cmd, key, "unknown attribute: %s", key->type == YOML_TYPE_SCALAR ? key->data.scalar : "?");
            return -1;
        }
    }

    if ((t = mapping_get(node, "mode")) == NULL) {
        h2o_configurator_errprintf(cmd, node, "mandatory attribute `mode` is missing");
        return -1;
    }
    if (scalar_is(t, "off")) {
        s->modes = 0;
    } else if (scalar_is(t, "all")) {
        s->modes = MODE_CACHE | MODE_TICKET;
    } else if (scalar_is(t, "cache")) {
        s->modes = MODE_CACHE;
    } else if (scalar_is(t, "ticket")) {
        s->modes = MODE_TICKET;
    } else {
        h2o_configurator_errprintf(cmd, t, "value of `mode` must be one of: off | all | cache | ticket");
        return -1;
    }

    /* attributes of a method that is off are not looked at (stock's rule) */
    if ((s->modes & MODE_CACHE) != 0 && (t = mapping_get(node, "cache-store")) != NULL) {
        if (scalar_is(t, "memcached")) {
            h2o_configurator_errprintf(cmd, t,
                                       "`cache-store: memcached` is not supported by h2o-signaling; use `internal` "
                                       "(tickets, on by default, resume across servers sharing a `ticket-file`)");
            return -1;
        }
        if (!scalar_is(t, "internal")) {
            h2o_configurator_errprintf(cmd, t, "value of `cache-store` must be one of: internal | memcached");
            return -1;
        }
    }

    if ((s->modes & MODE_TICKET) != 0) {
        if ((t = mapping_get(node, "ticket-store")) != NULL) {
            if (scalar_is(t, "internal")) {
                s->ticket_store = STORE_INTERNAL;
            } else if (scalar_is(t, "file")) {
                s->ticket_store = STORE_FILE;
            } else if (scalar_is(t, "memcached")) {
                h2o_configurator_errprintf(cmd, t,
                                           "`ticket-store: memcached` is not supported by h2o-signaling; use `internal`, or "
                                           "`file` with one secrets file shared by the servers");
                return -1;
            } else {
                h2o_configurator_errprintf(cmd, t, "value of `ticket-store` must be one of: internal | file | memcached");
                return -1;
            }
        }
        if (s->ticket_store == STORE_INTERNAL) {
            if ((t = mapping_get(node, "ticket-cipher")) != NULL) {
                if (t->type != YOML_TYPE_SCALAR || (s->cipher = EVP_get_cipherbyname(t->data.scalar)) == NULL) {
                    h2o_configurator_errprintf(cmd, t, "unknown cipher algorithm");
                    return -1;
                }
                if (!cipher_usable(s->cipher)) {
                    h2o_configurator_errprintf(cmd, t, "cipher `%s` cannot encrypt tickets (AEAD or unavailable in this OpenSSL)",
                                               t->data.scalar);
                    return -1;
                }
            }
            if ((t = mapping_get(node, "ticket-hash")) != NULL) {
                if (t->type != YOML_TYPE_SCALAR || (s->md = EVP_get_digestbyname(t->data.scalar)) == NULL) {
                    h2o_configurator_errprintf(cmd, t, "unknown hash algorithm");
                    return -1;
                }
                if (!hash_usable(s->md)) {
                    h2o_configurator_errprintf(cmd, t, "hash `%s` cannot be used for HMAC in this OpenSSL", t->data.scalar);
                    return -1;
                }
            }
        } else {
            char err[512];
            if ((t = mapping_get(node, "ticket-file")) == NULL) {
                h2o_configurator_errprintf(cmd, node, "mandatory attribute `ticket-file` is missing (`ticket-store: file`)");
                return -1;
            }
            if (t->type != YOML_TYPE_SCALAR) {
                h2o_configurator_errprintf(cmd, t, "`ticket-file` must be a string");
                return -1;
            }
            /* read now, so that `-t` and a reload check it (stock reads it only once serving) */
            if (load_ticket_file(t->data.scalar, &s->file_keys, &s->file_mtime, err, sizeof(err)) != 0) {
                h2o_configurator_errprintf(cmd, t, "cannot load session ticket secrets: %s", err);
                return -1;
            }
            s->ticket_file = h2o_strdup(NULL, t->data.scalar, SIZE_MAX).base;
        }
    }

    if ((t = mapping_get(node, "memcached")) != NULL && check_memcached(cmd, t) != 0)
        return -1;

    if ((t = mapping_get(node, "lifetime")) != NULL) {
        uint64_t v;
        if (t->type != YOML_TYPE_SCALAR || parse_u64(t->data.scalar, &v) != 0 || v == 0 || v > INT_MAX) {
            h2o_configurator_errprintf(cmd, t, "value of `lifetime` must be a positive number (seconds)");
            return -1;
        }
        s->lifetime = (unsigned)v;
    }
    return 0;
}

void sig_tls_resumption_register_configurator(sig_server_conf_t *conf)
{
    struct st_resumption_configurator_t *c = (void *)h2o_configurator_create(&conf->globalconf, sizeof(*c));
    memset(&c->settings, 0, sizeof(c->settings));
    reset_settings(&c->settings); /* stock's defaults when the directive is absent */
    c->super.dispose = on_dispose;
    h2o_configurator_define_command(&c->super, "ssl-session-resumption",
                                    H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_MAPPING, on_config);
}

/* ---- applying ---- */

static resumption_settings_t *settings_of(sig_server_conf_t *conf)
{
    h2o_linklist_t *node;
    for (node = conf->globalconf.configurators.next; node != &conf->globalconf.configurators; node = node->next) {
        h2o_configurator_t *c = H2O_STRUCT_FROM_MEMBER(h2o_configurator_t, _link, node);
        if (c->dispose == on_dispose)
            return &((struct st_resumption_configurator_t *)c)->settings;
    }
    return NULL;
}

/* The ring the settings name, made if new; called with state.mutex held. */
static struct st_key_ring_t *get_ring(resumption_settings_t *s)
{
    struct st_key_ring_t *ring;

    for (ring = state.rings; ring != NULL; ring = ring->next) {
        if (ring->store != s->ticket_store)
            continue;
        if (s->ticket_store == STORE_INTERNAL ? ring->cipher == s->cipher && ring->md == s->md && ring->lifetime == s->lifetime
                                              : strcmp(ring->filename, s->ticket_file) == 0)
            break;
    }
    if (ring == NULL) {
        ring = h2o_mem_alloc(sizeof(*ring));
        memset(ring, 0, sizeof(*ring));
        pthread_rwlock_init(&ring->lock, NULL);
        ring->store = s->ticket_store;
        ring->cipher = s->cipher;
        ring->md = s->md;
        ring->lifetime = s->lifetime;
        if (s->ticket_store == STORE_INTERNAL)
            rotate_internal(ring, (uint64_t)time(NULL)); /* its first key, at once */
        else
            ring->filename = h2o_strdup(NULL, s->ticket_file, SIZE_MAX).base;
        ring->next = state.rings;
        state.rings = ring;
    }
    if (s->ticket_store == STORE_FILE) {
        /* what this configuration's parser just read is the file's newest content: a SIGHUP re-reads it */
        pthread_rwlock_wrlock(&ring->lock);
        h2o_mem_swap(&ring->keys, &s->file_keys, sizeof(ring->keys));
        ring->mtime = s->file_mtime;
        pthread_rwlock_unlock(&ring->lock);
        free_keys(&s->file_keys);
    }
    return ring;
}

static void setup_ctx(SSL_CTX *ctx, const resumption_settings_t *s, struct st_key_ring_t *ring)
{
    struct st_ctx_entry_t *entry;

    if (SSL_CTX_get_ex_data(ctx, state.ex_index) != NULL)
        return; /* an identity seen through another listener */
    entry = h2o_mem_alloc(sizeof(*entry));
    memset(entry, 0, sizeof(*entry));
    entry->ctx = ctx;
    entry->ring = ring;
    entry->flush_cache = (s->modes & MODE_CACHE) != 0;
    if ((entry->next = state.contexts) != NULL)
        state.contexts->prev = &entry->next;
    entry->prev = &state.contexts;
    state.contexts = entry;
    SSL_CTX_set_ex_data(ctx, state.ex_index, entry);

    if ((s->modes & MODE_CACHE) != 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if ((s->modes & MODE_TICKET) != 0) {
        SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
    } else {
        /* TLS 1.2 sends no ticket; TLS 1.3 sends stateful ones (ids into the cache) only with `cache` */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        if ((s->modes & MODE_CACHE) == 0)
            SSL_CTX_set_num_tickets(ctx, 0);
    }
    if (s->modes != 0)
        SSL_CTX_set_timeout(ctx, s->lifetime); /* sessions and tickets (TLS 1.3's lifetime hint) */
}

void sig_tls_resumption_setup(sig_server_conf_t *conf, int dry_run)
{
    resumption_settings_t *s = settings_of(conf);
    struct st_key_ring_t *ring = NULL;
    size_t i, j, num_contexts = 0;

    if (dry_run || s == NULL)
        return;
    for (i = 0; i != conf->listeners.size; ++i)
        num_contexts += conf->listeners.entries[i]->tls.size;
    if (num_contexts == 0)
        return;
    pthread_once(&state.once, init_ex_index);
    pthread_mutex_lock(&state.mutex);
    if ((s->modes & MODE_TICKET) != 0)
        ring = get_ring(s);
    for (i = 0; i != conf->listeners.size; ++i)
        for (j = 0; j != conf->listeners.entries[i]->tls.size; ++j)
            setup_ctx(conf->listeners.entries[i]->tls.entries[j]->ctx, s, ring);
    if (!state.thread_started) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&tid, &attr, maintenance_main, NULL) == 0)
            state.thread_started = 1;
        else
            fprintf(stderr, "h2o-signaling: cannot start the TLS session maintenance thread; ticket keys will not rotate\n");
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_unlock(&state.mutex);
}
