/*
 * Directives of the signaling handler. Parsing only: the runtime is in sig_signaling.c.
 *
 * Every `signaling.*` directive is a row of one table (name, field, default, bounds, doc line);
 * values set at global or host level are inherited by the paths below, as h2o's own are.
 * tests/unit/test_config_docs.c checks docs/configuration.md against the table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "sig_signaling.h"

#define FIELD(name) offsetof(sig_signaling_config_t, name)

const sig_directive_t sig_signaling_directives[] = {
    {"signaling.max-message-size", FIELD(ws.max_message_size), 0, 65536, 16, 16 * 1024 * 1024,
     "largest message a client may send, in bytes; a larger one closes the connection with 1009"},
    {"signaling.max-queued-bytes", FIELD(ws.max_queued_bytes), 0, 1024 * 1024, 1024, 1024ull * 1024 * 1024,
     "most bytes waiting to be sent to one connection; a client that stops reading past it is closed with 1008"},
    {"signaling.max-connections-per-user", FIELD(max_connections_per_user), 0, 8, 1, 1024,
     "most connections (devices) one user id may have at once; create_connect past it is refused"},
    {"signaling.ping-interval", FIELD(ws.ping_interval), 1, 30000, 0, 3600000,
     "milliseconds between the server's pings on an idle connection (0 turns the heartbeat off)"},
    {"signaling.ping-timeout", FIELD(ws.ping_timeout), 1, 10000, 1, 3600000,
     "milliseconds a client has to answer a ping before it is dropped and unregistered"},
    {NULL}};

struct st_sig_signaling_configurator_t {
    h2o_configurator_t super;
    sig_signaling_config_t *vars; /* the current level's settings, top of `stack` */
    sig_signaling_config_t stack[H2O_CONFIGURATOR_NUM_LEVELS + 1];
};

static const sig_directive_t *find_directive(const char *name)
{
    const sig_directive_t *d;
    for (d = sig_signaling_directives; d->name != NULL; ++d)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

static int on_config_number(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)cmd->configurator;
    const sig_directive_t *d = find_directive(cmd->name);
    const char *s = node->data.scalar;
    unsigned long long value;
    char *end;

    errno = 0;
    value = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || value < d->min_value || value > d->max_value) {
        h2o_configurator_errprintf(cmd, node, "must be a whole number from %llu to %llu, not `%s`", d->min_value, d->max_value, s);
        return -1;
    }
    if (d->is_u64)
        *(uint64_t *)((char *)self->vars + d->offset) = value;
    else
        *(size_t *)((char *)self->vars + d->offset) = (size_t)value;
    return 0;
}

static int on_config_signaling(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)cmd->configurator;
    switch (h2o_configurator_get_one_of(cmd, node, "OFF,ON")) {
    case 0:
        return 0;
    case 1:
        sig_signaling_register(ctx->pathconf, self->vars);
        return 0;
    default:
        return -1;
    }
}

static int on_config_enter(h2o_configurator_t *_self, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)_self;
    self->vars[1] = self->vars[0];
    ++self->vars;
    return 0;
}

static int on_config_exit(h2o_configurator_t *_self, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_signaling_configurator_t *self = (void *)_self;
    --self->vars;
    return 0;
}

void sig_signaling_register_configurator(h2o_globalconf_t *conf)
{
    struct st_sig_signaling_configurator_t *c = (void *)h2o_configurator_create(conf, sizeof(*c));
    const sig_directive_t *d;

    c->vars = c->stack;
    for (d = sig_signaling_directives; d->name != NULL; ++d) {
        if (d->is_u64)
            *(uint64_t *)((char *)c->vars + d->offset) = d->default_value;
        else
            *(size_t *)((char *)c->vars + d->offset) = (size_t)d->default_value;
        h2o_configurator_define_command(&c->super, d->name, H2O_CONFIGURATOR_FLAG_ALL_LEVELS | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                        on_config_number);
    }
    c->super.enter = on_config_enter;
    c->super.exit = on_config_exit;
    /* deferred: the signaling.* settings of the same path apply first, whatever their order in the file */
    h2o_configurator_define_command(&c->super, "signaling",
                                    H2O_CONFIGURATOR_FLAG_PATH | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR | H2O_CONFIGURATOR_FLAG_DEFERRED,
                                    on_config_signaling);
}
