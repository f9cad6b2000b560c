/*
 * TLS 1.3 record protection (RFC 8446 section 5) with no sockets: the application-data phase of a connection whose
 * handshake OpenSSL did. ws/sig_ws_tls.c hands a WebSocket connection's TLS over to this once the upgrade is written,
 * and frees OpenSSL's `SSL` object (about 11 KB per connection on OpenSSL 3.0 with its cipher contexts, kept for the
 * connection's life by libh2o). OpenSSL has no way to keep its record layer and drop the rest of the `SSL`: what it cannot do is here, and
 * it stays small, because the protocol after the handshake is small:
 *   - records of type application_data whose AEAD ciphertext carries the content and its real type (5.2);
 *   - the nonce: the traffic IV XOR the record's 64-bit sequence number (5.3); keys and IVs from the traffic secret
 *     (7.3: HKDF-Expand-Label, libcrypto's HMAC);
 *   - KeyUpdate (4.6.3) both ways: the peer's is applied, and answered with ours when it asks; ours also before a key
 *     passes SIG_TLSREC_REKEY_AFTER records (5.5: AES-GCM's safety margin);
 *   - alerts: close_notify ends the peer's data; any other alert, any other handshake message, a record that does not
 *     authenticate, or a malformed one ends the connection (we send no alert then: the connection is closed).
 * The AEAD itself is libcrypto's (EVP): AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, the three suites browsers and
 * Node offer. TLS 1.2 connections stay with OpenSSL.
 *
 * Contract: one sig_tlsrec_t per connection (about 200 bytes: secrets, keys, IVs, sequence numbers), used by one
 * thread at a time, with that thread's sig_tlsrec_ciphers_t (the cipher contexts, shared by every connection of the
 * thread). Secrets are wiped when disposed (sig_tlsrec_ciphers_forget wipes the thread's copy of a key).
 */
#ifndef SIG_TLSREC_H
#define SIG_TLSREC_H

#include <stddef.h>
#include <stdint.h>

#define SIG_TLSREC_HEADER 5
#define SIG_TLSREC_TAG 16
#define SIG_TLSREC_MAX_PLAIN 16384                                        /* 2^14, 5.1 */
#define SIG_TLSREC_MAX_CIPHERTEXT (SIG_TLSREC_MAX_PLAIN + 256)           /* 5.2 */
#define SIG_TLSREC_OVERHEAD (SIG_TLSREC_HEADER + 1 + SIG_TLSREC_TAG)    /* what sealing adds to a record's content */
#define SIG_TLSREC_MAX_SECRET 48                                          /* SHA-384 */
#define SIG_TLSREC_REKEY_AFTER ((uint64_t)1 << 24)                       /* records per write key (5.5 allows 2^24.5) */

/* sig_tlsrec_open's results */
#define SIG_TLSREC_CLOSED 1           /* the peer's close_notify came */
#define SIG_TLSREC_ERR_RECORD (-1)    /* a record's header or length is not a TLS 1.3 record's */
#define SIG_TLSREC_ERR_AUTH (-2)      /* a record does not authenticate (tampered, or not under the key we expect) */
#define SIG_TLSREC_ERR_ALERT (-3)     /* the peer sent an alert other than close_notify */
#define SIG_TLSREC_ERR_UNEXPECTED (-4) /* a handshake message other than KeyUpdate, or a content type not allowed now */

/* The cipher suites (their IANA numbers, SSL_CIPHER_get_protocol_id) */
#define SIG_TLSREC_AES_128_GCM_SHA256 0x1301
#define SIG_TLSREC_AES_256_GCM_SHA384 0x1302
#define SIG_TLSREC_CHACHA20_POLY1305_SHA256 0x1303

typedef struct st_sig_tlsrec_ciphers_t sig_tlsrec_ciphers_t;

/** One direction's state. */
typedef struct st_sig_tlsrec_dir_t {
    uint64_t seq;                          /* of the next record */
    uint8_t secret[SIG_TLSREC_MAX_SECRET]; /* the current traffic secret, for the next KeyUpdate */
    uint8_t key[32];
    uint8_t iv[12];
} sig_tlsrec_dir_t;

typedef struct st_sig_tlsrec_t {
    sig_tlsrec_dir_t read, write;
    uint16_t suite;
    uint8_t secret_len, key_len;
    uint8_t key_update_due; /* our KeyUpdate goes before the next record sealed */
} sig_tlsrec_t;

/** 1 for the suites above, else 0. */
int sig_tlsrec_suite_supported(uint16_t suite);

/** The traffic secrets' length for `suite` (its hash's: 32 or 48), 0 when it is not supported. */
size_t sig_tlsrec_secret_len(uint16_t suite);

/**
 * Sets `t` up for `suite` from the two application traffic secrets (`secret_len` bytes each; the peer's is the one
 * we read with) and the number of records each direction has carried under them already (the next sequence numbers).
 * Returns 0, or -1 when the suite is not supported or the length is not its hash's.
 */
int sig_tlsrec_init(sig_tlsrec_t *t, uint16_t suite, const uint8_t *read_secret, const uint8_t *write_secret,
                    size_t secret_len, uint64_t read_seq, uint64_t write_seq);

/** Wipes the secrets and keys. */
void sig_tlsrec_dispose(sig_tlsrec_t *t);

/**
 * A thread's cipher contexts: per suite and direction, 256 slots chosen by the key, each made as first needed and keeping
 * the last key it scheduled, so the thread's busiest connections (up to a few hundred) stay keyed while their records
 * alternate. About 1 KB per context in use. Aborts when out of memory, like the rest of the server.
 */
sig_tlsrec_ciphers_t *sig_tlsrec_ciphers_create(void);
/** NULL is fine. */
void sig_tlsrec_ciphers_destroy(sig_tlsrec_ciphers_t *c);
/** Wipes what `c` keeps of `t`'s keys (call before sig_tlsrec_dispose; `c` NULL is fine). A KeyUpdate wipes the old key
 * itself. */
void sig_tlsrec_ciphers_forget(sig_tlsrec_ciphers_t *c, const sig_tlsrec_t *t);
/** How many of `c`'s contexts hold a key now (none once every connection that used `c` was forgotten). */
size_t sig_tlsrec_ciphers_keyed(const sig_tlsrec_ciphers_t *c);

/**
 * Opens, in place, every complete record in buf[*plain .. *len): the bytes buf[0 .. *plain) are application data
 * opened before. On return buf[0 .. *plain) is all the application data opened so far, followed directly by what is
 * left of the input (the start of a record not complete yet) up to the new `*len`. KeyUpdates are applied on the way
 * (and `key_update_due` set when the peer asks for ours).
 * Returns 0; SIG_TLSREC_CLOSED at the peer's close_notify (the data before it is opened, the rest is dropped and
 * `*len` == `*plain`); or a SIG_TLSREC_ERR_* (the connection must end; `*plain` and `*len` then say nothing useful).
 */
int sig_tlsrec_open(sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, uint8_t *buf, size_t *len, size_t *plain);

/** The room sig_tlsrec_seal needs for `len` bytes of data (with a KeyUpdate and a close_notify). */
size_t sig_tlsrec_sealed_max(size_t len);

/**
 * Seals `len` bytes of application data (0 is fine) as records of at most SIG_TLSREC_MAX_PLAIN bytes into `out`, which
 * has room for sig_tlsrec_sealed_max(len): first our KeyUpdate when it is due (then the new key seals the rest),
 * and with `close_notify` that alert after the data (nothing may be sealed after it). Returns the bytes written.
 */
size_t sig_tlsrec_seal(sig_tlsrec_t *t, sig_tlsrec_ciphers_t *c, const uint8_t *in, size_t len, int close_notify,
                       uint8_t *out);

#endif
