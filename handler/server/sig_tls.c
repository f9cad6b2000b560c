/*
 * TLS for `listen: {ssl: ...}` (sig_tls.h): an OpenSSL context per certificate of an address, chosen by
 * SNI, HTTP/2 through ALPN. Every `ssl:` key of stock h2o 2.2.5 is read here; OCSP stapling runs in
 * sig_tls_ocsp.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "server/sig_server.h"
#include "server/sig_tls.h"
#include "ws/sig_ws_tls.h"

/* Protocol names as stock h2o spells them (case-insensitive). OpenSSL 3 has no SSLv2/SSLv3: as a minimum they mean
 * the lowest version it has (TLSv1, with a warning); as a maximum they are an error. */
static const struct {
    const char *name;
    int version; /* 0: not available in OpenSSL 3 */
} tls_versions[] = {{"SSLv2", 0},
                    {"SSLv3", 0},
                    {"TLSv1", TLS1_VERSION},
                    {"TLSv1.1", TLS1_1_VERSION},
                    {"TLSv1.2", TLS1_2_VERSION},
                    {"TLSv1.3", TLS1_3_VERSION}};

/* The values of one `ssl:` mapping; aliases (min-version / minimum-version) share a field. */
struct st_ssl_keys_t {
    yoml_t *certificate_file, *key_file, *min_version, *max_version, *cipher_suite, *cipher_preference, *dh_file,
        *ocsp_update_cmd, *ocsp_update_interval, *ocsp_max_failures, *neverbleed;
};

/* The keys stock h2o 2.2.5's listener_setup_ssl reads, and where each goes. */
static const struct {
    const char *name;
    size_t offset;
} ssl_keys[] = {
    {"certificate-file", offsetof(struct st_ssl_keys_t, certificate_file)},
    {"key-file", offsetof(struct st_ssl_keys_t, key_file)},
    {"min-version", offsetof(struct st_ssl_keys_t, min_version)},
    {"minimum-version", offsetof(struct st_ssl_keys_t, min_version)},
    {"max-version", offsetof(struct st_ssl_keys_t, max_version)},
    {"maximum-version", offsetof(struct st_ssl_keys_t, max_version)},
    {"cipher-suite", offsetof(struct st_ssl_keys_t, cipher_suite)},
    {"cipher-preference", offsetof(struct st_ssl_keys_t, cipher_preference)},
    {"dh-file", offsetof(struct st_ssl_keys_t, dh_file)},
    {"ocsp-update-cmd", offsetof(struct st_ssl_keys_t, ocsp_update_cmd)},
    {"ocsp-update-interval", offsetof(struct st_ssl_keys_t, ocsp_update_interval)},
    {"ocsp-max-failures", offsetof(struct st_ssl_keys_t, ocsp_max_failures)},
    {"neverbleed", offsetof(struct st_ssl_keys_t, neverbleed)},
};

#define SSL_KEY_LIST                                                                                                               \
    "certificate-file, key-file, min-version (minimum-version), max-version (maximum-version), cipher-suite, "                    \
    "cipher-preference, dh-file, ocsp-update-cmd, ocsp-update-interval, ocsp-max-failures, neverbleed"

/* What create_context read besides the context itself. */
struct st_ssl_settings_t {
    yoml_t *certificate_file;
    const char *ocsp_update_cmd; /* NULL: the default command */
    uint64_t ocsp_update_interval;
    unsigned ocsp_max_failures;
};

/* Prints OpenSSL's reason for the last failure, at the node that caused it. */
static void report_openssl_error(h2o_configurator_command_t *cmd, yoml_t *node, const char *what, const char *path)
{
    char reason[256] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    h2o_configurator_errprintf(cmd, node, "%s `%s`: %s", what, path, reason);
}

static int file_is_readable(h2o_configurator_command_t *cmd, yoml_t *node)
{
    FILE *fp = fopen(node->data.scalar, "r");
    if (fp == NULL) {
        h2o_configurator_errprintf(cmd, node, "cannot open `%s`: %s", node->data.scalar, strerror(errno));
        return 0;
    }
    fclose(fp);
    return 1;
}

/* Sorts the mapping's values into `keys`. Returns 0 or -1 (printed). */
static int read_keys(h2o_configurator_command_t *cmd, yoml_t *ssl_node, struct st_ssl_keys_t *keys)
{
    size_t i, k;

    if (ssl_node->type != YOML_TYPE_MAPPING) {
        h2o_configurator_errprintf(cmd, ssl_node, "`ssl` must be a mapping (keys: " SSL_KEY_LIST ")");
        return -1;
    }
    memset(keys, 0, sizeof(*keys));
    for (i = 0; i != ssl_node->data.mapping.size; ++i) {
        yoml_t *key = ssl_node->data.mapping.elements[i].key, *value = ssl_node->data.mapping.elements[i].value;
        for (k = 0; k != sizeof(ssl_keys) / sizeof(ssl_keys[0]); ++k)
            if (key->type == YOML_TYPE_SCALAR && strcmp(key->data.scalar, ssl_keys[k].name) == 0)
                break;
        if (k == sizeof(ssl_keys) / sizeof(ssl_keys[0])) {
            h2o_configurator_errprintf(cmd, key, "unknown key in `ssl` (supported: " SSL_KEY_LIST ")");
            return -1;
        }
        if (value->type != YOML_TYPE_SCALAR) {
            h2o_configurator_errprintf(cmd, value, "`%s` must be a scalar", key->data.scalar);
            return -1;
        }
        *(yoml_t **)((char *)keys + ssl_keys[k].offset) = value; /* a repeated key: the last one wins, as in h2o */
    }
    if (keys->certificate_file == NULL || keys->key_file == NULL) {
        h2o_configurator_errprintf(cmd, ssl_node, "`ssl` needs both `certificate-file` and `key-file`");
        return -1;
    }
    return 0;
}

/* `min-version` / `max-version`: the OpenSSL version number (0: the highest, only for a maximum), or -1 (printed). */
static int parse_version(h2o_configurator_command_t *cmd, yoml_t *node, int is_min)
{
    size_t i;
    for (i = 0; i != sizeof(tls_versions) / sizeof(tls_versions[0]); ++i)
        if (strcasecmp(node->data.scalar, tls_versions[i].name) == 0)
            break;
    if (i == sizeof(tls_versions) / sizeof(tls_versions[0])) {
        h2o_configurator_errprintf(cmd, node, "`%s` must be one of %sTLSv1, TLSv1.1, TLSv1.2, TLSv1.3, not `%s`",
                                   is_min ? "min-version" : "max-version", is_min ? "SSLv2, SSLv3, " : "", node->data.scalar);
        return -1;
    }
    if (tls_versions[i].version != 0)
        return tls_versions[i].version;
    if (!is_min) {
        h2o_configurator_errprintf(cmd, node, "`max-version: %s` cannot be served: OpenSSL 3 has no SSLv2 or SSLv3 (TLSv1 is the "
                                              "lowest)",
                                   node->data.scalar);
        return -1;
    }
    h2o_configurator_errprintf(cmd, node, "warning: OpenSSL 3 has no %s; `min-version` is TLSv1, the lowest it has",
                               node->data.scalar);
    return TLS1_VERSION;
}

/* A non-negative integer of a key, or -1 (printed). */
static int parse_uint(h2o_configurator_command_t *cmd, yoml_t *node, const char *key, uint64_t max, uint64_t *out)
{
    const char *s = node->data.scalar;
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || *out > max) {
        h2o_configurator_errprintf(cmd, node, "`%s` must be a number from 0 to %" PRIu64 ", not `%s`", key, max, s);
        return -1;
    }
    return 0;
}

/* `dh-file`: PEM DH parameters for the DHE cipher suites. Returns 0 or -1 (printed). */
static int load_dh_file(h2o_configurator_command_t *cmd, yoml_t *node, SSL_CTX *ctx)
{
    BIO *bio;
    EVP_PKEY *params;

    if (!file_is_readable(cmd, node))
        return -1;
    if ((bio = BIO_new_file(node->data.scalar, "r")) == NULL) {
        report_openssl_error(cmd, node, "cannot read dh-file", node->data.scalar);
        return -1;
    }
    params = PEM_read_bio_Parameters(bio, NULL);
    BIO_free(bio);
    if (params == NULL || !(EVP_PKEY_is_a(params, "DH") || EVP_PKEY_is_a(params, "DHX"))) {
        EVP_PKEY_free(params);
        report_openssl_error(cmd, node, "no PEM DH parameters (`openssl dhparam`) in dh-file", node->data.scalar);
        return -1;
    }
    if (SSL_CTX_set0_tmp_dh_pkey(ctx, params) != 1) { /* takes `params` only on success */
        EVP_PKEY_free(params);
        report_openssl_error(cmd, node, "unusable DH parameters in dh-file", node->data.scalar);
        return -1;
    }
    return 0;
}

/* `neverbleed: ON` keeps the key in this process: said once per process, at the first listener that asks. */
static void note_neverbleed(yoml_t *node)
{
    static int said;
    if (said++ == 0)
        fprintf(stderr,
                "%s:%zu: listen: note: `neverbleed: ON`: private keys stay in the server process (h2o-signaling has no "
                "neverbleed helper process; docs/configuration.md)\n",
                node->filename != NULL ? node->filename : "-", node->line + 1);
}

static SSL_CTX *create_context(h2o_configurator_command_t *cmd, yoml_t *ssl_node, struct st_ssl_settings_t *settings)
{
    struct st_ssl_keys_t keys;
    SSL_CTX *ctx = NULL;
    int min_version = TLS1_2_VERSION, max_version = 0, server_preference = 0;
    uint64_t n;

    if (read_keys(cmd, ssl_node, &keys) != 0)
        return NULL;
    if (keys.min_version != NULL && (min_version = parse_version(cmd, keys.min_version, 1)) < 0)
        return NULL;
    if (keys.max_version != NULL) {
        if ((max_version = parse_version(cmd, keys.max_version, 0)) < 0)
            return NULL;
        if (max_version < min_version) {
            h2o_configurator_errprintf(cmd, keys.max_version, "`max-version: %s` is below the minimum version (%s)",
                                       keys.max_version->data.scalar,
                                       keys.min_version != NULL ? keys.min_version->data.scalar : "TLSv1.2 by default");
            return NULL;
        }
    }
    if (keys.cipher_preference != NULL) {
        if (strcasecmp(keys.cipher_preference->data.scalar, "server") == 0) {
            server_preference = 1;
        } else if (strcasecmp(keys.cipher_preference->data.scalar, "client") != 0) {
            h2o_configurator_errprintf(cmd, keys.cipher_preference, "`cipher-preference` must be `client` or `server`, not `%s`",
                                       keys.cipher_preference->data.scalar);
            return NULL;
        }
    }
    if (keys.neverbleed != NULL) {
        if (strcasecmp(keys.neverbleed->data.scalar, "ON") == 0) {
            note_neverbleed(keys.neverbleed);
        } else if (strcasecmp(keys.neverbleed->data.scalar, "OFF") != 0) {
            h2o_configurator_errprintf(cmd, keys.neverbleed, "`neverbleed` must be `ON` or `OFF`, not `%s`",
                                       keys.neverbleed->data.scalar);
            return NULL;
        }
    }
    settings->certificate_file = keys.certificate_file;
    settings->ocsp_update_cmd = keys.ocsp_update_cmd != NULL ? keys.ocsp_update_cmd->data.scalar : NULL;
    settings->ocsp_update_interval = 4 * 60 * 60; /* stock's default: 4 hours */
    settings->ocsp_max_failures = 3;              /* stock's default */
    if (keys.ocsp_update_cmd != NULL && keys.ocsp_update_cmd->data.scalar[0] == '\0') {
        h2o_configurator_errprintf(cmd, keys.ocsp_update_cmd, "`ocsp-update-cmd` must be a command");
        return NULL;
    }
    if (keys.ocsp_update_interval != NULL) {
        if (parse_uint(cmd, keys.ocsp_update_interval, "ocsp-update-interval", UINT32_MAX, &settings->ocsp_update_interval) != 0)
            return NULL;
    }
    if (keys.ocsp_max_failures != NULL) {
        if (parse_uint(cmd, keys.ocsp_max_failures, "ocsp-max-failures", UINT32_MAX, &n) != 0)
            return NULL;
        settings->ocsp_max_failures = (unsigned)n;
    }

    /* OpenSSL says only "system lib" for a missing file: name the file and the reason first */
    if (!file_is_readable(cmd, keys.certificate_file) || !file_is_readable(cmd, keys.key_file))
        return NULL;
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        report_openssl_error(cmd, ssl_node, "cannot create a TLS context for", "ssl");
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_ALL | SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
    /* OpenSSL keeps a 16 KB+ read and write buffer per connection for its whole life; an idle WebSocket needs
     * neither (libh2o 2.2.5 does not set this) */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    sig_ws_tls_capture(ctx); /* a WebSocket's TLS 1.3 records can become the handler's after the upgrade */
    if (server_preference)
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    else
        SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_min_proto_version(ctx, min_version);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    if (SSL_CTX_use_certificate_chain_file(ctx, keys.certificate_file->data.scalar) != 1) {
        report_openssl_error(cmd, keys.certificate_file, "cannot load certificate file", keys.certificate_file->data.scalar);
        goto Error;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, keys.key_file->data.scalar, SSL_FILETYPE_PEM) != 1) {
        report_openssl_error(cmd, keys.key_file, "cannot load key file", keys.key_file->data.scalar);
        goto Error;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        report_openssl_error(cmd, keys.key_file, "key does not match the certificate in", keys.key_file->data.scalar);
        goto Error;
    }
    if (keys.cipher_suite != NULL && SSL_CTX_set_cipher_list(ctx, keys.cipher_suite->data.scalar) != 1) {
        report_openssl_error(cmd, keys.cipher_suite, "invalid cipher-suite", keys.cipher_suite->data.scalar);
        goto Error;
    }
    if (keys.dh_file != NULL && load_dh_file(cmd, keys.dh_file, ctx) != 0)
        goto Error;
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;

Error:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- SNI ---- */

sig_tls_identity_t *sig_tls_resolve_sni(const sig_tls_identities_t *identities, const char *name, size_t len)
{
    size_t i, j;
    for (i = 0; i != identities->size; ++i) {
        sig_tls_identity_t *id = identities->entries[i];
        for (j = 0; j != id->hostnames.size; ++j) {
            h2o_iovec_t host = id->hostnames.entries[j];
            if (host.len != 0 && host.base[0] == '*') {
                /* "*.example.com" matches "a.example.com" (and deeper names, as in h2o), not "example.com" */
                size_t suffix = host.len - 1;
                if (suffix < len && h2o_lcstris(name + len - suffix, suffix, host.base + 1, suffix))
                    return id;
            } else if (h2o_lcstris(name, len, host.base, host.len)) {
                return id;
            }
        }
    }
    return identities->entries[0];
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    const sig_tls_identities_t *identities = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name != NULL) {
        sig_tls_identity_t *id = sig_tls_resolve_sni(identities, name, strlen(name));
        if (id->ctx != SSL_get_SSL_CTX(ssl))
            SSL_set_SSL_CTX(ssl, id->ctx);
    }
    return SSL_TLSEXT_ERR_OK;
}

/* The host's name without its port (the authority of `hosts: "example.com:443"`). */
static void add_hostname(sig_tls_identity_t *id, h2o_iovec_t hostport)
{
    const char *colon = memchr(hostport.base, ':', hostport.len);
    size_t len = colon != NULL ? (size_t)(colon - hostport.base) : hostport.len;
    h2o_vector_reserve(NULL, &id->hostnames, id->hostnames.size + 1);
    id->hostnames.entries[id->hostnames.size++] = h2o_strdup(NULL, hostport.base, len);
}

int sig_tls_add_identity(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *ssl_node,
                         sig_tls_identities_t *identities)
{
    struct st_ssl_settings_t settings;
    sig_tls_identity_t *id;
    SSL_CTX *ssl_ctx;
    size_t i;

    if ((ssl_ctx = create_context(cmd, ssl_node, &settings)) == NULL)
        return -1;
    /* a certificate already on this address: the host is one more name for it (its other keys are the first's, as in h2o) */
    for (i = 0; i != identities->size; ++i) {
        if (strcmp(identities->entries[i]->certificate_file, settings.certificate_file->data.scalar) == 0) {
            SSL_CTX_free(ssl_ctx);
            if (ctx->hostconf != NULL)
                add_hostname(identities->entries[i], ctx->hostconf->authority.hostport);
            return 0;
        }
    }
    id = h2o_mem_alloc(sizeof(*id));
    memset(id, 0, sizeof(*id));
    id->ctx = ssl_ctx;
    id->certificate_file = h2o_strdup(NULL, settings.certificate_file->data.scalar, SIZE_MAX).base;
    if (ctx->hostconf != NULL)
        add_hostname(id, ctx->hostconf->authority.hostport);
    h2o_vector_reserve(NULL, identities, identities->size + 1);
    identities->entries[identities->size++] = id;
    if (identities->size == 2) {
        /* a second certificate on the address: from now on the default one chooses by server name */
        SSL_CTX_set_tlsext_servername_callback(identities->entries[0]->ctx, on_servername);
        SSL_CTX_set_tlsext_servername_arg(identities->entries[0]->ctx, identities);
    }
    if (settings.ocsp_update_interval != 0) {
        sig_tls_ocsp_setup(id, settings.ocsp_update_cmd, settings.ocsp_update_interval, settings.ocsp_max_failures);
        if (ctx->dry_run)
            sig_tls_ocsp_test(id, cmd, settings.certificate_file); /* prints whether stapling works; never fails `-t` */
    }
    return 0;
}

void sig_tls_dispose_identities(sig_tls_identities_t *identities)
{
    size_t i, j;
    for (i = 0; i != identities->size; ++i) {
        sig_tls_identity_t *id = identities->entries[i];
        if (id->ocsp != NULL)
            sig_tls_ocsp_dispose(id->ocsp);
        SSL_CTX_free(id->ctx);
        free(id->certificate_file);
        for (j = 0; j != id->hostnames.size; ++j)
            free(id->hostnames.entries[j].base);
        free(id->hostnames.entries);
        free(id);
    }
    free(identities->entries);
    memset(identities, 0, sizeof(*identities));
}
