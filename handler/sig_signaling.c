/*
 * The signaling handler's runtime: requests on a `signaling: ON` path become WebSocket connections.
 * (Interim: messages are echoed until the protocol lands.)
 */
#include <string.h>
#include <h2o.h>
#include "sig_signaling.h"
#include "sig_ws.h"

struct st_sig_handler_t {
    h2o_handler_t super;
    sig_signaling_config_t config;
};

static void on_message(sig_ws_conn_t *conn, const char *msg, size_t len)
{
    sig_ws_send_text(conn, msg, len);
}

static void on_close(sig_ws_conn_t *conn)
{
}

static const sig_ws_callbacks_t callbacks = {on_message, on_close};

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    struct st_sig_handler_t *self = (void *)_self;
    sig_ws_accept(req, &self->config.ws, &callbacks, self);
    return 0;
}

void sig_signaling_register(h2o_pathconf_t *pathconf, const sig_signaling_config_t *config)
{
    struct st_sig_handler_t *self = (void *)h2o_create_handler(pathconf, sizeof(*self));
    self->super.on_req = on_req;
    self->config = *config;
}

void sig_signaling_init(size_t num_threads)
{
}

void sig_signaling_thread_init(h2o_context_t *ctx, size_t thread_index)
{
    sig_ws_thread_init(ctx);
}

void sig_signaling_thread_shutdown(void)
{
    sig_ws_thread_shutdown();
}

void sig_signaling_thread_dispose(void)
{
    sig_ws_thread_dispose();
}

void sig_signaling_dispose(void)
{
}
