/*
 * TLS session resumption: the global directive `ssl-session-resumption` of stock h2o 2.2.5
 * (docs/configuration.md), with stock's defaults when it is absent: mode `all`, the internal session
 * cache, internal ticket keys (aes-256-cbc, HMAC-SHA256) generated and rotated in the process, lifetime
 * 3600 s.
 *
 * What outlives a configuration (SIGHUP builds new SSL_CTX's while old connections go on):
 * - ticket keys live in process-wide key rings, not in a configuration: one ring per internal key
 *   recipe (cipher, hash, lifetime) and one per `ticket-file`. A reload that keeps the recipe or the
 *   file gets the same ring, so a ticket issued before the reload resumes after it. One maintenance
 *   thread rotates the internal rings as stock does (a new key every lifetime/4, published 60 s before
 *   it encrypts, each key accepted until lifetime after its start) and re-reads ticket files whose
 *   mtime changed (every 10 s, as stock).
 * - the session cache is OpenSSL's own, per SSL_CTX: a reload starts with an empty cache (stock h2o
 *   re-executes itself on reload and loses its cache too). Tickets are what survives a reload.
 *
 * Not supported (the parser names the key and says so): the `memcached` cache-store and ticket-store.
 */
#ifndef SIG_TLS_RESUMPTION_H
#define SIG_TLS_RESUMPTION_H

#include "server/sig_server.h"

/**
 * Registers `ssl-session-resumption` (global level) on `conf`. Errors in its mapping, including an
 * unreadable or malformed `ticket-file`, are printed at the offending node (FILE:LINE).
 */
void sig_tls_resumption_register_configurator(sig_server_conf_t *conf);

/**
 * Applies the configuration's resumption settings to the SSL_CTX of every TLS identity of every
 * listener of `conf` (after a successful apply): cache mode, ticket callback, lifetime. It installs
 * the key ring the settings name (creating it, or refreshing a ticket file's keys from what the parser
 * read) and starts the maintenance thread once per process. Does nothing when `dry_run` (`-t`). A
 * configuration that is disposed later (a rejected reload) takes its contexts out of the thread's list
 * as OpenSSL frees them; a ring it created stays (rings live as long as the process).
 */
void sig_tls_resumption_setup(sig_server_conf_t *conf, int dry_run);

#endif
