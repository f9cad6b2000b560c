/*
 * A fix for libh2o 2.2.5's TLS reads (found by tests/integration/wss-records.test.mjs).
 *
 * libh2o's libuv binding reads a TLS socket with on_read_ssl (lib/common/socket/uv-binding.c.h), which takes every
 * nread <= 0 for an I/O error. libuv passes nread == 0 when the read after one that filled the buffer finds nothing
 * (EAGAIN, "not an error": uv.h), so a TLS connection whose bytes filled h2o's 8 KB read buffer exactly and then paused
 * was closed: a TLS 1.2 WebSocket, a WebSocket before its upgrade or with signaling.tls-takeover OFF, a large body over
 * https. h2o's plain TCP callback (on_read_tcp) handles 0 correctly.
 *
 * on_read_ssl is static, so the fix sits where libh2o starts reading: this executable defines uv_read_start, to which
 * the dynamic linker resolves libh2o's calls (ld exports an executable's symbols that a linked shared library uses),
 * and for a TLS socket hands libuv a wrapper that drops nread == 0. Every uv_read_start in the process is libh2o's
 * do_read_start: the stream's data is the h2o socket, and its `ssl` says that the callback is on_read_ssl.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <uv.h>
#include <h2o.h>
#include "common/sig_common.h"

static pthread_once_t lookup_once = PTHREAD_ONCE_INIT;
static int (*libuv_read_start)(uv_stream_t *, uv_alloc_cb, uv_read_cb);
static uv_read_cb h2o_on_read_ssl; /* libh2o's on_read_ssl, as first passed for a TLS socket (set once, atomically) */

static void lookup(void)
{
    if ((libuv_read_start = (int (*)(uv_stream_t *, uv_alloc_cb, uv_read_cb))dlsym(RTLD_NEXT, "uv_read_start")) == NULL)
        sig_fatal("dlsym(uv_read_start) failed");
}

static void on_read_ssl_fixed(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    if (nread == 0)
        return; /* EAGAIN: nothing happened, libuv goes on reading */
    __atomic_load_n(&h2o_on_read_ssl, __ATOMIC_RELAXED)(stream, nread, buf);
}

int uv_read_start(uv_stream_t *stream, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    h2o_socket_t *sock = stream->data;

    pthread_once(&lookup_once, lookup);
    if (sock != NULL && sock->ssl != NULL && read_cb != on_read_ssl_fixed) {
        uv_read_cb known = NULL;
        if (!__atomic_compare_exchange_n(&h2o_on_read_ssl, &known, read_cb, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED) && known != read_cb)
            return libuv_read_start(stream, alloc_cb, read_cb); /* not libh2o's TLS callback: as it is */
        read_cb = on_read_ssl_fixed;
    }
    return libuv_read_start(stream, alloc_cb, read_cb);
}
