/*
 * TLS for `listen: {ssl: ...}`: an OpenSSL context per listener, HTTP/2 through ALPN.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "server/sig_server.h"

static const struct {
    const char *name;
    int version;
} tls_versions[] = {{"TLSv1", TLS1_VERSION}, {"TLSv1.1", TLS1_1_VERSION}, {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION}};

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

SSL_CTX *sig_tls_create_context(h2o_configurator_command_t *cmd, yoml_t *ssl_node)
{
    yoml_t *cert_node = NULL, *key_node = NULL, *minver_node = NULL, *ciphers_node = NULL;
    SSL_CTX *ctx = NULL;
    int min_version = TLS1_2_VERSION;
    size_t i;

    for (i = 0; i != ssl_node->data.mapping.size; ++i) {
        yoml_t *key = ssl_node->data.mapping.elements[i].key, *value = ssl_node->data.mapping.elements[i].value;
        yoml_t **slot = NULL;
        if (key->type == YOML_TYPE_SCALAR) {
            if (strcmp(key->data.scalar, "certificate-file") == 0)
                slot = &cert_node;
            else if (strcmp(key->data.scalar, "key-file") == 0)
                slot = &key_node;
            else if (strcmp(key->data.scalar, "minimum-version") == 0)
                slot = &minver_node;
            else if (strcmp(key->data.scalar, "cipher-suite") == 0)
                slot = &ciphers_node;
        }
        if (slot == NULL) {
            h2o_configurator_errprintf(cmd, key, "unknown key in `ssl` (supported: certificate-file, key-file, minimum-version, "
                                                 "cipher-suite)");
            return NULL;
        }
        if (value->type != YOML_TYPE_SCALAR) {
            h2o_configurator_errprintf(cmd, value, "`%s` must be a scalar", key->data.scalar);
            return NULL;
        }
        *slot = value;
    }
    if (cert_node == NULL || key_node == NULL) {
        h2o_configurator_errprintf(cmd, ssl_node, "`ssl` needs both `certificate-file` and `key-file`");
        return NULL;
    }
    if (minver_node != NULL) {
        for (i = 0; i != sizeof(tls_versions) / sizeof(tls_versions[0]); ++i)
            if (strcasecmp(minver_node->data.scalar, tls_versions[i].name) == 0)
                break;
        if (i == sizeof(tls_versions) / sizeof(tls_versions[0])) {
            h2o_configurator_errprintf(cmd, minver_node, "`minimum-version` must be one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3");
            return NULL;
        }
        min_version = tls_versions[i].version;
    }

    /* OpenSSL says only "system lib" for a missing file: name the file and the reason first */
    if (!file_is_readable(cmd, cert_node) || !file_is_readable(cmd, key_node))
        return NULL;
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        report_openssl_error(cmd, ssl_node, "cannot create a TLS context for", "ssl");
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
    SSL_CTX_set_min_proto_version(ctx, min_version);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_node->data.scalar) != 1) {
        report_openssl_error(cmd, cert_node, "cannot load certificate file", cert_node->data.scalar);
        goto Error;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_node->data.scalar, SSL_FILETYPE_PEM) != 1) {
        report_openssl_error(cmd, key_node, "cannot load key file", key_node->data.scalar);
        goto Error;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        report_openssl_error(cmd, key_node, "key does not match the certificate in", key_node->data.scalar);
        goto Error;
    }
    if (ciphers_node != NULL && SSL_CTX_set_cipher_list(ctx, ciphers_node->data.scalar) != 1) {
        report_openssl_error(cmd, ciphers_node, "invalid cipher-suite", ciphers_node->data.scalar);
        goto Error;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;

Error:
    SSL_CTX_free(ctx);
    return NULL;
}
