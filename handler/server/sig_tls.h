/*
 * TLS of the listeners, as stock h2o 2.2.5's `listen: {ssl: ...}` (docs/configuration.md):
 * one identity (certificate, key, SSL_CTX) per `certificate-file` of an address, chosen by the
 * client's server name (SNI); HTTP/2 through ALPN; OCSP stapling kept fresh by updater threads.
 */
#ifndef SIG_TLS_H
#define SIG_TLS_H

#include <stdint.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include <h2o/configurator.h>

typedef struct st_sig_server_conf_t sig_server_conf_t;
typedef struct st_sig_tls_ocsp_t sig_tls_ocsp_t;

/** One certificate of a TLS address and the host names it is chosen for. */
typedef struct st_sig_tls_identity_t {
    SSL_CTX *ctx;
    char *certificate_file;
    H2O_VECTOR(h2o_iovec_t) hostnames; /* hosts' names without port; "*.example.com" matches any sub-name */
    sig_tls_ocsp_t *ocsp;              /* stapling state; NULL when ocsp-update-interval is 0 */
} sig_tls_identity_t;

/** The identities of one address: [0] is the default (a client without SNI, or naming no host, gets it). */
typedef H2O_VECTOR(sig_tls_identity_t *) sig_tls_identities_t;

/**
 * Applies a `listen` entry's `ssl:` mapping to `identities` (an address's), for the host of `ctx`
 * (NULL at global level). As in stock h2o: a certificate-file already on the address gains the host's
 * name; another one makes a new identity. The SNI callback lives on the first identity's SSL_CTX, with
 * `identities` (which must not move) as its argument. Errors are printed at the offending node
 * (FILE:LINE). Returns 0 or -1.
 */
int sig_tls_add_identity(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *ssl_node,
                         sig_tls_identities_t *identities);

/** The identity for a client's server name: the first whose names match (exactly or by wildcard,
 * case-insensitively), else the default. */
sig_tls_identity_t *sig_tls_resolve_sni(const sig_tls_identities_t *identities, const char *name, size_t len);

/** Frees the identities (their SSL_CTX's) of a configuration that never served. */
void sig_tls_dispose_identities(sig_tls_identities_t *identities);

/** Starts the OCSP updaters of a configuration that begins to serve (not in `-t`). */
void sig_tls_start_ocsp(sig_server_conf_t *conf);
/** Stops the OCSP updaters of a configuration a newer generation replaced (returns without waiting). */
void sig_tls_stop_ocsp(sig_server_conf_t *conf);

/** Registers the global TLS directives of stock h2o's main (`num-ocsp-updaters`) on `conf`. */
void sig_tls_register_configurator(sig_server_conf_t *conf);

/* ---- between sig_tls.c (contexts) and sig_tls_ocsp.c (stapling) ---- */

/**
 * Gives `id` stapling state: `cmd` (NULL: the shipped share/fetch-ocsp-response) run with the certificate file every
 * `interval` (> 0) seconds once started; `max_failures` temporary failures in a row keep the previous response. Installs
 * the status callback on `id->ctx`, which staples the current response (none until the first success).
 */
void sig_tls_ocsp_setup(sig_tls_identity_t *id, const char *cmd, uint64_t interval, unsigned max_failures);
/**
 * `-t`: runs the command once for `id` and prints whether stapling works (as stock h2o: a failure is printed at `node`,
 * FILE:LINE, and does not fail the test). Returns the command's status (0, 75 = temporary, other = permanent).
 */
int sig_tls_ocsp_test(sig_tls_identity_t *id, h2o_configurator_command_t *cmd, yoml_t *node);
/** Frees the stapling state of an identity whose updater never started. */
void sig_tls_ocsp_dispose(sig_tls_ocsp_t *ocsp);

#endif
