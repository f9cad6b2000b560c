/*
 * `websocket.echo: ON`: a diagnostic endpoint that sends every message back, text as text and
 * binary as binary, through the same WebSocket glue and limits as signaling. It lets a conformance
 * suite (or a client developer) test the framing layer on its own.
 */
#include <h2o.h>
#include "signaling/sig_signaling.h"
#include "ws/sig_ws.h"

struct st_sig_echo_handler_t {
    h2o_handler_t super;
    sig_ws_limits_t limits;
};

static void on_text(sig_ws_conn_t *conn, const char *msg, size_t len)
{
    sig_ws_send_text(conn, msg, len);
}

static void on_binary(sig_ws_conn_t *conn, const char *msg, size_t len)
{
    sig_ws_send_binary(conn, msg, len);
}

static void on_close(sig_ws_conn_t *conn)
{
}

static const sig_ws_callbacks_t echo_callbacks = {on_text, on_close, on_binary};

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    struct st_sig_echo_handler_t *self = (void *)_self;
    sig_ws_accept(req, &self->limits, &echo_callbacks, NULL);
    return 0;
}

void sig_echo_register(h2o_pathconf_t *pathconf, const sig_signaling_config_t *config)
{
    struct st_sig_echo_handler_t *self = (void *)h2o_create_handler(pathconf, sizeof(*self));
    self->super.on_req = on_req;
    self->limits = config->ws;
}
