/*
 * `crash-handler` and `crash-handler.wait-pipe-close` (sig_crash.h): the directives, the spawned
 * handler and the fatal-signal handler. Modelled on stock h2o 2.2.5's src/main.c (popen_crash_handler,
 * on_sigfatal), with three changes an admin can see: the handler's stdin is a socket, so that with
 * wait-pipe-close the server can end the backtrace (EOF) and still wait for the handler to finish; a
 * handler that cannot be spawned, or that already exited, leaves the backtrace on stderr and the first
 * case says so at start; the handler keeps a stderr (stock h2o closes its fd 2).
 */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include <h2o/serverutil.h>
#include "server/sig_crash.h"
#include "server/sig_share.h"

/* Ours, in our share/ (sig_share.h: the installed copy, or the source tree's for the uninstalled binary). */
#define SIG_CRASH_DEFAULT_HANDLER sig_share_path("annotate-backtrace-symbols")

#define SIG_CRASH_MAX_FRAMES 128

/* One configuration's values, hung off its globalconf. */
struct st_sig_crash_configurator_t {
    h2o_configurator_t super;
    char *handler;        /* `crash-handler` as written; NULL: the default */
    char *handler_origin; /* "FILE:LINE" of it, NULL when absent */
    int wait_pipe_close;
    char *wait_origin;
};

/* What the process installed at start; the signal handler reads only this. */
static struct {
    int installed;
    char *handler; /* the value it was installed from (not resolved) */
    int wait_pipe_close;
    int fd; /* our end of the handler's stdin, or 2 (stderr) */
} crash = {0, NULL, 0, 2};

const char *sig_crash_default_handler(void)
{
    return SIG_CRASH_DEFAULT_HANDLER;
}

/* ---- directives ---- */

static char *format_origin(yoml_t *node)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s:%zu", node->filename != NULL ? node->filename : "-", node->line + 1);
    return h2o_strdup(NULL, buf, SIZE_MAX).base;
}

static int on_config_crash_handler(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_crash_configurator_t *c = (void *)cmd->configurator;
    free(c->handler);
    free(c->handler_origin);
    c->handler = h2o_strdup(NULL, node->data.scalar, SIZE_MAX).base;
    c->handler_origin = format_origin(node);
    return 0;
}

static int on_config_wait_pipe_close(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_crash_configurator_t *c = (void *)cmd->configurator;
    ssize_t v;
    if ((v = h2o_configurator_get_one_of(cmd, node, "OFF,ON")) == -1)
        return -1;
    c->wait_pipe_close = (int)v;
    free(c->wait_origin);
    c->wait_origin = format_origin(node);
    return 0;
}

/* The handler is the process's: a reload that changes a value says it waits for the next restart. */
static int on_exit_level(h2o_configurator_t *configurator, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_crash_configurator_t *c = (void *)configurator;
    const char *handler = c->handler != NULL ? c->handler : SIG_CRASH_DEFAULT_HANDLER;

    if (ctx->parent != NULL || ctx->dry_run || !crash.installed)
        return 0;
    if (strcmp(handler, crash.handler) != 0) {
        if (c->handler_origin != NULL)
            fprintf(stderr, "%s: crash-handler: the new value takes effect at the next restart; `%s` stays until then\n",
                    c->handler_origin, crash.handler);
        else
            fprintf(stderr, "%s: crash-handler: the default takes effect at the next restart; `%s` stays until then\n",
                    node->filename != NULL ? node->filename : "-", crash.handler);
    }
    if (c->wait_pipe_close != crash.wait_pipe_close)
        fprintf(stderr, "%s: crash-handler.wait-pipe-close: %s takes effect at the next restart; %s stays until then\n",
                c->wait_origin != NULL ? c->wait_origin : (node->filename != NULL ? node->filename : "-"),
                c->wait_pipe_close ? "ON" : "OFF", crash.wait_pipe_close ? "ON" : "OFF");
    return 0;
}

static int on_dispose(h2o_configurator_t *configurator)
{
    struct st_sig_crash_configurator_t *c = (void *)configurator;
    /* may be called twice (the facts file): leave nothing to free again */
    free(c->handler);
    free(c->handler_origin);
    free(c->wait_origin);
    c->handler = c->handler_origin = c->wait_origin = NULL;
    return 0;
}

void sig_crash_register_configurator(sig_server_conf_t *conf)
{
    struct st_sig_crash_configurator_t *c = (void *)h2o_configurator_create(&conf->globalconf, sizeof(*c));
    c->super.exit = on_exit_level;
    c->super.dispose = on_dispose;
    h2o_configurator_define_command(&c->super, "crash-handler", H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                    on_config_crash_handler);
    h2o_configurator_define_command(&c->super, "crash-handler.wait-pipe-close",
                                    H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR, on_config_wait_pipe_close);
}

/* ---- the handler process ---- */

/* Spawns `value` (resolved as stock h2o does) with a socket as its stdin and our stderr as its stdout
 * and stderr. Returns our end of the socket, or -1 after saying why. */
static int spawn_handler(const char *value)
{
    char *path = h2o_configurator_get_cmd_path(value), *argv[] = {path, NULL};
    int sv[2] = {-1, -1}, out = -1, err = -1, fd = -1;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || (out = fcntl(2, F_DUPFD_CLOEXEC, 3)) == -1 ||
        (err = fcntl(2, F_DUPFD_CLOEXEC, 3)) == -1) {
        fprintf(stderr, "crash-handler: cannot run `%s`: %s; backtraces go to stderr\n", path, strerror(errno));
        goto Exit;
    }
    {
        /* in the child: sv[1] -> stdin, stderr -> stdout and stderr (each source is closed after its dup2) */
        int mapped_fds[] = {sv[1], 0, out, 1, err, 2, -1};
        if (h2o_spawnp(path, argv, mapped_fds, 0) == -1) {
            fprintf(stderr, "crash-handler: cannot run `%s`: %s; backtraces go to stderr\n", path, strerror(errno));
            goto Exit;
        }
    }
    fd = sv[0];
    sv[0] = -1;
Exit:
    if (sv[0] != -1)
        close(sv[0]);
    if (sv[1] != -1)
        close(sv[1]);
    if (out != -1)
        close(out);
    if (err != -1)
        close(err);
    free(path);
    return fd;
}

/* ---- the fatal-signal handler (async-signal-safe calls only, but backtrace's, preloaded at install) ---- */

static void write_all(int fd, const char *s, size_t len)
{
    while (len != 0) {
        ssize_t r = write(fd, s, len);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        s += r;
        len -= (size_t)r;
    }
}

/* Whether the handler's end of the socket is gone (it exited or closed its stdin). */
static int handler_gone(int fd)
{
    struct pollfd pfd = {fd, POLLOUT, 0};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static void on_sigfatal(int signo)
{
    char msg[64] = "received fatal signal ", digits[16];
    size_t len = strlen(msg), n = 0;
    void *frames[SIG_CRASH_MAX_FRAMES];
    int framecnt, fd = crash.fd;
    unsigned v = (unsigned)signo;

    /* the disposition is back to the default (SA_RESETHAND): the raise() at the end kills the process */
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n != 0)
        msg[len++] = digits[--n];
    msg[len++] = '\n';
    write_all(2, msg, len);

    framecnt = backtrace(frames, SIG_CRASH_MAX_FRAMES);
    if (fd != 2 && handler_gone(fd))
        fd = 2;
    backtrace_symbols_fd(frames, framecnt, fd);

    if (fd != 2 && crash.wait_pipe_close) {
        /* EOF for the handler, then wait until it closed its end (it exited, or it is done) */
        struct pollfd pfd = {fd, 0, 0};
        shutdown(fd, SHUT_WR);
        while (poll(&pfd, 1, -1) == -1 && errno == EINTR)
            ;
    }
    raise(signo);
}

void sig_crash_install(sig_server_conf_t *conf)
{
    static const int signals[] = {SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV};
    h2o_configurator_command_t *cmd = h2o_configurator_get_command(&conf->globalconf, "crash-handler");
    struct st_sig_crash_configurator_t *c = (void *)cmd->configurator;
    const char *value = c->handler != NULL ? c->handler : SIG_CRASH_DEFAULT_HANDLER;
    struct sigaction sa;
    void *frame[1];
    size_t i;

    if (crash.installed)
        return;
    crash.installed = 1;
    crash.handler = h2o_strdup(NULL, value, SIZE_MAX).base;
    crash.wait_pipe_close = c->wait_pipe_close;
    if ((crash.fd = spawn_handler(value)) == -1)
        crash.fd = 2;
    /* the first backtrace() loads libgcc_s (malloc, dlopen): do it now, not inside the signal handler */
    backtrace(frame, 1);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigfatal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i != sizeof(signals) / sizeof(signals[0]); ++i)
        sigaction(signals[i], &sa, NULL);
}
