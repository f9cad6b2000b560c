/*
 * sig_common.h: what every part of h2o-signaling shares: string slices, the SIG_ERR_* codes with their protocol
 * code strings and texts, a growable byte buffer and allocation that aborts on failure.
 *
 * Pure parts (registry, protocol, config) return 0 or a negative SIG_ERR_*; only the handler glue turns a code into
 * a JSON error reply (sig_err_code() + sig_err_message()) or a close code.
 */
#ifndef SIG_COMMON_H
#define SIG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/**
 * A byte slice that does not own its memory. Not necessarily NUL-terminated; base may be NULL when len is 0.
 */
typedef struct st_sig_str_t {
    const char *base;
    size_t len;
} sig_str_t;

/**
 * sig_str_t of a string literal (a compound literal, unlike H2O_STRLIT which expands to two arguments).
 */
#define SIG_STRLIT(s) ((sig_str_t){(s), sizeof(s) - 1})

/**
 * Builds a slice from a pointer and a length.
 */
static inline sig_str_t sig_str(const char *base, size_t len)
{
    return (sig_str_t){base, len};
}

/**
 * Slice of a NUL-terminated string (NULL gives the empty slice).
 */
static inline sig_str_t sig_str_cstr(const char *s)
{
    return (sig_str_t){s, s != NULL ? strlen(s) : 0};
}

/**
 * Returns 1 if both slices hold the same bytes, 0 otherwise.
 */
/** 1 if `s` is 1..`max` characters of [0-9A-Za-z._~-]: the ids of level 2 (callId, deviceId). */
int sig_str_is_id_token(sig_str_t s, size_t max);

static inline int sig_str_eq(sig_str_t a, sig_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

/**
 * The error table: one row per code, X(NAME, value, "protocol code", "msg text").
 * Values are grouped in ranges (wslay style): -1xx a client message that cannot be used, -2xx session and routing,
 * -3xx transport faults that end the connection, -9xx ours. The code strings are a stable public interface (clients
 * match on them) and the two Chinese texts are what deployed clients show people (protocol.md): never change either.
 */
#define SIG_ERR_MAP(X)                                                                                                     \
    X(BAD_JSON, -100, "bad_json", "message is not valid JSON")                                                             \
    X(NOT_OBJECT, -101, "not_object", "message is not a JSON object")                                                      \
    X(MISSING_TYPE, -102, "missing_type", "message has no type")                                                           \
    X(UNKNOWN_TYPE, -103, "unknown_type", "message type is not known")                                                     \
    X(BAD_FIELD, -104, "bad_field", "a field has a value of the wrong kind")                                               \
    X(MISSING_FIELD, -105, "missing_field", "a required field is missing")                                                 \
    X(BAD_ID, -106, "bad_id", "user id must be 1 to 256 bytes")                                                            \
    X(NOT_REGISTERED, -200, "not_registered", "send create_connect before dialing")                                        \
    X(IDENTITY_MISMATCH, -201, "identity_mismatch", "sponsorUserId does not match this connection's identity")             \
    X(PEER_OFFLINE, -202, "peer_offline", "对方未建立链接")                                                                \
    X(PEER_GONE, -203, "peer_gone", "对方意外断开连接")                                                                    \
    X(TOO_MANY_CONNECTIONS, -204, "too_many_connections", "this user has too many connections")                            \
    X(AUTH_REQUIRED, -205, "auth_required", "a token is required: send it in auth")                                        \
    X(AUTH_INVALID, -206, "auth_invalid", "the token is not valid")                                                        \
    X(AUTH_EXPIRED, -207, "auth_expired", "the token has expired")                                                         \
    X(RATE_LIMITED, -208, "rate_limited", "too many messages: slow down")                                                  \
    X(CLUSTER_UNAVAILABLE, -209, "cluster_unavailable", "the cluster cannot be reached: only users on this server are reachable") \
    X(UNSUPPORTED_DATA, -300, "unsupported_data", "binary messages are not supported")                                     \
    X(MESSAGE_TOO_LARGE, -301, "message_too_large", "message is too large")                                                \
    X(BAD_UTF8, -302, "bad_utf8", "message is not valid UTF-8")                                                            \
    X(BAD_DEFLATE, -303, "bad_deflate", "compressed message is not valid deflate data")                                    \
    X(INTERNAL, -900, "internal", "internal server error")

/**
 * The error codes; every one is negative, 0 means success.
 */
typedef enum en_sig_err_t {
#define SIG_ERR_ENUM_(name, value, code, text) SIG_ERR_##name = (value),
    SIG_ERR_MAP(SIG_ERR_ENUM_)
#undef SIG_ERR_ENUM_
} sig_err_t;

/**
 * The stable machine-readable protocol code of an error ("bad_json", "peer_offline", ...). Any value that is not a
 * SIG_ERR_* (0 included) maps to "internal". Never NULL; the string is static.
 */
const char *sig_err_code(int err);

/**
 * The human-readable "msg" text sent with an error (UTF-8; for peer_offline and peer_gone exactly the texts deployed
 * clients display). Any value that is not a SIG_ERR_* maps to the text of SIG_ERR_INTERNAL. Never NULL; static.
 */
const char *sig_err_message(int err);

/**
 * Prints "fatal: <msg>" to stderr and aborts. Used where h2o would abort too (out of memory).
 */
__attribute__((noreturn)) void sig_fatal(const char *msg);

/**
 * malloc() that aborts instead of returning NULL (like h2o_mem_alloc). A size of 0 still returns a unique pointer.
 */
void *sig_mem_alloc(size_t size);

/**
 * realloc() that aborts instead of returning NULL.
 */
void *sig_mem_realloc(void *p, size_t size);

/**
 * A growable byte buffer owned by its user: base[0..len) is the content, cap the allocated size. Zero-initialise it
 * (SIG_BUF_INIT) before first use; dispose of it with sig_buf_dispose(). The content is not NUL-terminated.
 */
typedef struct st_sig_buf_t {
    char *base;
    size_t len;
    size_t cap;
} sig_buf_t;

#define SIG_BUF_INIT {NULL, 0, 0}

/**
 * Makes room for at least `min_free` more bytes after len (growing geometrically, aborting on failure) and returns
 * where they start (base + len). base may move: pointers into the old content become invalid.
 */
char *sig_buf_reserve(sig_buf_t *buf, size_t min_free);

/**
 * Appends `len` bytes from `src`.
 */
static inline void sig_buf_append(sig_buf_t *buf, const void *src, size_t len)
{
    if (len == 0)
        return; /* src may be NULL for an empty slice; memcpy(NULL, ...) is undefined even for 0 bytes */
    if (buf->cap - buf->len < len)
        sig_buf_reserve(buf, len);
    memcpy(buf->base + buf->len, src, len);
    buf->len += len;
}

/**
 * Appends one byte.
 */
static inline void sig_buf_append_char(sig_buf_t *buf, char c)
{
    if (buf->cap == buf->len)
        sig_buf_reserve(buf, 1);
    buf->base[buf->len++] = c;
}

/**
 * Empties the buffer but keeps its memory, so a buffer reused across messages stops allocating once warm.
 */
static inline void sig_buf_reset(sig_buf_t *buf)
{
    buf->len = 0;
}

/**
 * Frees the memory and leaves the buffer empty and reusable (as after SIG_BUF_INIT).
 */
void sig_buf_dispose(sig_buf_t *buf);

/**
 * Returns 1 if `len` bytes at `s` are strictly valid UTF-8 (RFC 3629: no overlong forms, no encoded
 * surrogates, nothing past U+10FFFF), 0 otherwise.
 */
int sig_utf8_is_valid(const char *s, size_t len);

/** Incremental strict UTF-8 (same rules), for text that arrives in pieces. */
#define SIG_UTF8_ACCEPT 0 /* between characters: complete and valid so far */
#define SIG_UTF8_REJECT 1 /* not UTF-8, whatever follows */
/**
 * Feeds `len` bytes to a decoder in `state` (start at SIG_UTF8_ACCEPT) and returns the new state:
 * SIG_UTF8_REJECT as soon as the bytes cannot be UTF-8, any other value inside a character. The
 * text is valid iff it ends in SIG_UTF8_ACCEPT. Runs of ASCII are checked 8 bytes at a time.
 */
uint32_t sig_utf8_feed(uint32_t state, const uint8_t *bytes, size_t len);

#endif
