/*
 * sig_jwt.h: JSON Web Tokens signed with HS256 (RFC 7519 / 7515), the tokens app backends issue.
 * Pure: no I/O, no clock (the caller passes `now`), OpenSSL for HMAC-SHA256.
 */
#ifndef SIG_JWT_H
#define SIG_JWT_H

#include <stddef.h>
#include <stdint.h>
#include "common/sig_common.h"

/** Shortest HMAC key accepted: RFC 7518 3.2 wants at least the hash size. */
#define SIG_JWT_MIN_KEY_LEN 32
/** Longest token looked at; anything longer is invalid without further work. */
#define SIG_JWT_MAX_TOKEN_LEN 8192

/** The claims the service uses. Strings point into the scratch buffer given to sig_jwt_verify and are
 * followed by a NUL that len does not count. */
typedef struct st_sig_jwt_claims_t {
    sig_str_t sub;  /* the user id (a JSON integer means its decimal text, as in the protocol) */
    sig_str_t name; /* optional display name; {NULL, 0} when absent */
    int64_t exp;    /* expiry, seconds since the epoch */
    int64_t nbf;    /* not-before, 0 when absent */
} sig_jwt_claims_t;

/**
 * Verifies `token` (compact serialization: header.payload.signature) with `key` at time `now`
 * (seconds since the epoch). The signature is checked first, in constant time, so nothing from an
 * unsigned token is interpreted. Then: the header's `alg` must be "HS256" (no "none", no `crit`);
 * `sub` (string or integer, 1-256 bytes) and `exp` (a number) are required; `nbf` and `name` optional.
 * Returns 0 and fills `claims`, or:
 *   SIG_ERR_AUTH_INVALID  malformed, wrong algorithm, bad signature, missing or ill-typed claims,
 *                         or not valid yet (nbf > now);
 *   SIG_ERR_AUTH_EXPIRED  a valid token whose exp <= now.
 * `scratch` is reset first and reused (no allocation once warm).
 */
int sig_jwt_verify(const char *token, size_t len, const unsigned char *key, size_t key_len, int64_t now, sig_jwt_claims_t *claims,
                   sig_buf_t *scratch);

#endif
