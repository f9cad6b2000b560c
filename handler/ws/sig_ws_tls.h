/*
 * Taking a WebSocket connection's TLS over from libh2o once the upgrade is written (docs/performance.md#tls).
 *
 * libh2o 2.2.5 keeps OpenSSL's `SSL` object for a connection's life (about 11 KB with its cipher contexts on OpenSSL
 * 3.0) and writes every message through it and its own buffers (a TLS record per write call, a uv_write and an
 * epoll_ctl each). After the upgrade a WebSocket needs only the record layer, so for a TLS 1.3 connection with one of
 * core/sig_tlsrec.h's suites the handler keeps the traffic secrets and sequence numbers (about 200 bytes), frees the
 * `SSL` and h2o's TLS state, and turns the h2o socket into a plain one: reads give records, which sig_tlsrec opens in
 * place in the socket's input buffer; writes are sealed into one buffer per loop turn and written by the caller with
 * one write(). TLS 1.2 connections, and any a check below refuses, stay with h2o as before.
 *
 * The secrets and sequence numbers come from OpenSSL's own callbacks, installed on every server context by
 * sig_ws_tls_capture(): the key log callback gives the application traffic secrets as they are installed, and the
 * message callback counts the records each direction carried under them (OpenSSL 3.0 has no accessor for either).
 *
 * Threading: sig_ws_tls_capture at configuration time; the rest on the connection's thread.
 */
#ifndef SIG_WS_TLS_H
#define SIG_WS_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include "core/sig_tlsrec.h"

typedef struct st_sig_ws_tls_t {
    sig_tlsrec_t rec;
    size_t plain; /* the socket's input starts with this many bytes of opened data; records follow them */
} sig_ws_tls_t;

/** Makes connections of `ctx` ready for sig_ws_tls_take (the key log and message callbacks). */
void sig_ws_tls_capture(SSL_CTX *ctx);

/**
 * Takes the TLS of `sock` (a TLS socket whose handshake is done, with nothing being written; what its input holds is
 * opened data). Returns 1 with `*tls` set (the socket is plain TCP from now on: open what it reads with
 * sig_ws_tls_open, seal what goes out with sig_ws_tls_seal; reading, if started, goes on); 0 when it cannot yet (OpenSSL
 * holds part of a record: try again after the next read); -1 when it never will (TLS 1.2, another suite, a context
 * without sig_ws_tls_capture, no descriptor left): h2o keeps the TLS.
 */
int sig_ws_tls_take(h2o_socket_t *sock, sig_ws_tls_t **tls);

/** Opens the records that came into `sock`'s input; returns what sig_tlsrec_open does. */
int sig_ws_tls_open(sig_ws_tls_t *tls, h2o_socket_t *sock);

/**
 * Seals `len` bytes (with `close_notify`, that alert after them) into the thread's buffer, which it returns
 * (valid until the next call on this thread).
 */
h2o_iovec_t sig_ws_tls_seal(sig_ws_tls_t *tls, const void *data, size_t len, int close_notify);

/** Wipes and frees (NULL is fine). */
void sig_ws_tls_free(sig_ws_tls_t *tls);

/** The thread's cipher contexts and buffer, at the thread's end. */
void sig_ws_tls_thread_dispose(void);

#endif
