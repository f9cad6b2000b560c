/*
 * OCSP stapling (sig_tls.h), as stock h2o 2.2.5's main does it: one updater thread per certificate runs
 * `ocsp-update-cmd CERTIFICATE-FILE` every `ocsp-update-interval` seconds; exit 0 = a new DER response on
 * stdout, 75 (EX_TEMPFAIL) = a temporary failure (the old response stays until `ocsp-max-failures` of them
 * in a row, then nothing is stapled until a success), anything else = a permanent failure (stapling ends
 * for that certificate). `num-ocsp-updaters` caps how many commands run at once, process-wide.
 *
 * Per configuration: sig_tls_start_ocsp when it starts serving, sig_tls_stop_ocsp when a newer one
 * replaced it; a stopped updater ends on its own (at once when it sleeps, after its command when one runs).
 */
#include "config.h" /* _GNU_SOURCE first: pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include <h2o/serverutil.h>
#include "server/sig_server.h"
#include "server/sig_share.h"
#include "server/sig_tls.h"

/* The default `ocsp-update-cmd`: ours, in POSIX sh (stock's is share/h2o/fetch-ocsp-response, in Perl), in our
 * share/ (sig_share.h: the installed copy, or the source tree's for the uninstalled binary). */
#define SIG_DEFAULT_OCSP_CMD sig_share_path("fetch-ocsp-response")
/* `num-ocsp-updaters` by default: stock's H2O_DEFAULT_OCSP_UPDATER_MAX_THREADS */
#define SIG_DEFAULT_OCSP_UPDATERS 10

struct st_sig_tls_ocsp_t {
    const char *certificate_file; /* the identity's */
    char *cmd;                    /* as configured; h2o_configurator_get_cmd_path resolves it at each run */
    uint64_t interval;            /* seconds, > 0 */
    unsigned max_failures;
    pthread_mutex_t mutex; /* guards what follows */
    pthread_cond_t wake;   /* signalled by stop */
    h2o_buffer_t *response; /* DER to staple; NULL: none */
    int started, stopping;
};

/* ---- the updaters' semaphore (`num-ocsp-updaters`, process-wide) ---- */

static h2o_sem_t updater_sem;
static pthread_once_t updater_sem_once = PTHREAD_ONCE_INIT;

static void init_updater_sem(void)
{
    h2o_sem_init(&updater_sem, SIG_DEFAULT_OCSP_UPDATERS);
}

struct st_sig_tls_configurator_t {
    h2o_configurator_t super;
    ssize_t num_ocsp_updaters;
};

static int on_configurator_dispose(h2o_configurator_t *configurator)
{
    (void)configurator; /* nothing owned; libh2o may call this twice */
    return 0;
}

static int on_config_num_ocsp_updaters(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    struct st_sig_tls_configurator_t *self = (void *)cmd->configurator;
    ssize_t n;
    (void)ctx;
    if (h2o_configurator_scanf(cmd, node, "%zd", &n) != 0)
        return -1;
    if (n <= 0) {
        h2o_configurator_errprintf(cmd, node, "must be at least 1 (stock h2o: num-ocsp-updaters must be >=1)");
        return -1;
    }
    self->num_ocsp_updaters = n;
    return 0;
}

void sig_tls_register_configurator(sig_server_conf_t *conf)
{
    struct st_sig_tls_configurator_t *c = (void *)h2o_configurator_create(&conf->globalconf, sizeof(*c));
    c->super.dispose = on_configurator_dispose; /* also how sig_tls_start_ocsp finds it again */
    c->num_ocsp_updaters = SIG_DEFAULT_OCSP_UPDATERS;
    h2o_configurator_define_command(&c->super, "num-ocsp-updaters",
                                    H2O_CONFIGURATOR_FLAG_GLOBAL | H2O_CONFIGURATOR_FLAG_EXPECT_SCALAR,
                                    on_config_num_ocsp_updaters);
}

/* `num-ocsp-updaters` of `conf` (the default when our configurator was not registered). */
static ssize_t num_ocsp_updaters(sig_server_conf_t *conf)
{
    h2o_linklist_t *node;
    for (node = conf->globalconf.configurators.next; node != &conf->globalconf.configurators; node = node->next) {
        h2o_configurator_t *c = H2O_STRUCT_FROM_MEMBER(h2o_configurator_t, _link, node);
        if (c->dispose == on_configurator_dispose)
            return ((struct st_sig_tls_configurator_t *)c)->num_ocsp_updaters;
    }
    return SIG_DEFAULT_OCSP_UPDATERS;
}

/* ---- one run of the command ---- */

/* Runs the command for `certificate_file`: its exit status (EX_CONFIG when it cannot be run, EX_TEMPFAIL when killed);
 * on 0, `*resp` holds its output. As stock h2o's get_ocsp_response. */
/*
 * Runs `argv` with its stdout into `*resp` (a new buffer), as libh2o's h2o_read_command does, but with
 * posix_spawn instead of fork: the updaters run while the server's threads do, and h2o_spawnp's child
 * allocates memory between fork and exec, which deadlocks when another thread held the allocator's lock
 * at the fork (seen under ASan: the child hung, keeping the server's stdout open). Returns 0 with
 * `*status` as waitpid gives it, or -1 with errno.
 */
static int run_command(char **argv, h2o_buffer_t **resp, int *status)
{
    extern char **environ;
    posix_spawn_file_actions_t actions;
    int pipefds[2], err;
    pid_t pid;
    ssize_t n;

    if (pipe2(pipefds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipefds[1], 1);
    err = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipefds[1]);
    if (err != 0) {
        close(pipefds[0]);
        errno = err;
        return -1;
    }
    h2o_buffer_init(resp, &h2o_socket_buffer_prototype);
    for (;;) {
        h2o_iovec_t room = h2o_buffer_reserve(resp, 4096);
        if ((n = read(pipefds[0], room.base, room.len)) > 0)
            (*resp)->size += (size_t)n;
        else if (n == 0 || errno != EINTR)
            break;
    }
    close(pipefds[0]);
    while (waitpid(pid, status, 0) == -1 && errno == EINTR)
        ;
    return 0;
}

static int fetch_response(const char *certificate_file, const char *cmd, h2o_buffer_t **resp)
{
    char *path = h2o_configurator_get_cmd_path(cmd), *argv[] = {path, (char *)certificate_file, NULL};
    int child_status, ret;

    if (run_command(argv, resp, &child_status) != 0) {
        fprintf(stderr, "[OCSP Stapling] failed to execute %s:%s\n", cmd, strerror(errno));
        ret = errno == EACCES || errno == ENOENT || errno == ENOEXEC ? EX_CONFIG : EX_TEMPFAIL;
        goto Exit;
    }
    if (!(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0))
        h2o_buffer_dispose(resp);
    if (!WIFEXITED(child_status)) {
        fprintf(stderr, "[OCSP Stapling] command %s was killed by signal %d\n", path, WTERMSIG(child_status));
        ret = EX_TEMPFAIL;
        goto Exit;
    }
    ret = WEXITSTATUS(child_status);
    if (ret == 0 && (*resp)->size == 0) {
        /* nothing to staple: stock would staple an empty response, which clients reject */
        h2o_buffer_dispose(resp);
        fprintf(stderr, "[OCSP Stapling] command %s exited 0 but printed no response\n", path);
        ret = EX_TEMPFAIL;
    }

Exit:
    free(path);
    return ret;
}

/* ---- stapling ---- */

static void set_response(sig_tls_ocsp_t *ocsp, h2o_buffer_t *resp)
{
    pthread_mutex_lock(&ocsp->mutex);
    if (ocsp->response != NULL)
        h2o_buffer_dispose(&ocsp->response);
    ocsp->response = resp;
    pthread_mutex_unlock(&ocsp->mutex);
}

/* The status callback (a client asked for stapling): a copy of the current response, which OpenSSL frees. */
static int on_status_request(SSL *ssl, void *arg)
{
    sig_tls_ocsp_t *ocsp = arg;
    unsigned char *resp = NULL;
    size_t len = 0;

    pthread_mutex_lock(&ocsp->mutex);
    if (ocsp->response != NULL && (resp = OPENSSL_malloc(ocsp->response->size)) != NULL) {
        len = ocsp->response->size;
        memcpy(resp, ocsp->response->bytes, len);
    }
    pthread_mutex_unlock(&ocsp->mutex);
    if (resp == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    SSL_set_tlsext_status_ocsp_resp(ssl, resp, (long)len);
    return SSL_TLSEXT_ERR_OK;
}

void sig_tls_ocsp_setup(sig_tls_identity_t *id, const char *cmd, uint64_t interval, unsigned max_failures)
{
    sig_tls_ocsp_t *ocsp = h2o_mem_alloc(sizeof(*ocsp));
    pthread_condattr_t attr;

    memset(ocsp, 0, sizeof(*ocsp));
    ocsp->certificate_file = id->certificate_file;
    ocsp->cmd = h2o_strdup(NULL, cmd != NULL ? cmd : SIG_DEFAULT_OCSP_CMD, SIZE_MAX).base;
    ocsp->interval = interval;
    ocsp->max_failures = max_failures;
    pthread_mutex_init(&ocsp->mutex, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* the interval does not move with the wall clock */
    pthread_cond_init(&ocsp->wake, &attr);
    pthread_condattr_destroy(&attr);
    id->ocsp = ocsp;
    SSL_CTX_set_tlsext_status_cb(id->ctx, on_status_request);
    SSL_CTX_set_tlsext_status_arg(id->ctx, ocsp);
}

void sig_tls_ocsp_dispose(sig_tls_ocsp_t *ocsp)
{
    if (ocsp->started)
        return; /* its updater may still run: a configuration that served is never freed (sig_server.h) */
    if (ocsp->response != NULL)
        h2o_buffer_dispose(&ocsp->response);
    pthread_cond_destroy(&ocsp->wake);
    pthread_mutex_destroy(&ocsp->mutex);
    free(ocsp->cmd);
    free(ocsp);
}

int sig_tls_ocsp_test(sig_tls_identity_t *id, h2o_configurator_command_t *cmd, yoml_t *node)
{
    h2o_buffer_t *resp;
    int status;

    fprintf(stderr, "[OCSP Stapling] testing for certificate file:%s\n", id->certificate_file);
    switch (status = fetch_response(id->certificate_file, id->ocsp->cmd, &resp)) {
    case 0:
        h2o_buffer_dispose(&resp);
        fprintf(stderr, "[OCSP Stapling] stapling works for file:%s\n", id->certificate_file);
        break;
    case EX_TEMPFAIL:
        h2o_configurator_errprintf(cmd, node, "[OCSP Stapling] temporary failed for file:%s (`%s` exited 75)", id->certificate_file,
                                   id->ocsp->cmd);
        break;
    default:
        h2o_configurator_errprintf(cmd, node, "[OCSP Stapling] does not work, will be disabled for file:%s (`%s` exited %d)",
                                   id->certificate_file, id->ocsp->cmd, status);
        break;
    }
    return status;
}

/* ---- the updater threads ---- */

static int is_stopping(sig_tls_ocsp_t *ocsp)
{
    int stopping;
    pthread_mutex_lock(&ocsp->mutex);
    stopping = ocsp->stopping;
    pthread_mutex_unlock(&ocsp->mutex);
    return stopping;
}

/* Sleeps `secs` seconds or until stopped. Returns 1 when stopped. */
static int sleep_unless_stopped(sig_tls_ocsp_t *ocsp, uint64_t secs)
{
    struct timespec until;
    int stopping;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)secs;
    pthread_mutex_lock(&ocsp->mutex);
    while (!ocsp->stopping && pthread_cond_timedwait(&ocsp->wake, &ocsp->mutex, &until) != ETIMEDOUT)
        ;
    stopping = ocsp->stopping;
    pthread_mutex_unlock(&ocsp->mutex);
    return stopping;
}

static void *updater_main(void *arg)
{
    sig_tls_ocsp_t *ocsp = arg;
    unsigned failures = 0;
    h2o_buffer_t *resp;
    int status;

    while (!is_stopping(ocsp)) {
        h2o_sem_wait(&updater_sem);
        status = is_stopping(ocsp) ? -1 : fetch_response(ocsp->certificate_file, ocsp->cmd, &resp);
        h2o_sem_post(&updater_sem);
        if (status == -1)
            break;
        if (is_stopping(ocsp)) {
            /* replaced while the command ran: a newer configuration staples now */
            if (status == 0)
                h2o_buffer_dispose(&resp);
            break;
        }
        switch (status) {
        case 0:
            failures = 0;
            set_response(ocsp, resp);
            fprintf(stderr, "[OCSP Stapling] successfully updated the response for certificate file:%s\n", ocsp->certificate_file);
            break;
        case EX_TEMPFAIL:
            if (failures == ocsp->max_failures) {
                fprintf(stderr, "[OCSP Stapling] OCSP stapling is temporary disabled due to repeated errors for certificate file:%s\n",
                        ocsp->certificate_file);
                set_response(ocsp, NULL);
            } else {
                fprintf(stderr,
                        "[OCSP Stapling] reusing old response due to a temporary error occurred while fetching OCSP response for "
                        "certificate file:%s\n",
                        ocsp->certificate_file);
                ++failures;
            }
            break;
        default:
            set_response(ocsp, NULL);
            fprintf(stderr, "[OCSP Stapling] disabled for certificate file:%s\n", ocsp->certificate_file);
            return NULL;
        }
        if (sleep_unless_stopped(ocsp, ocsp->interval))
            break;
    }
    return NULL;
}

/* Calls `fn` on the stapling state of every certificate of `conf`. */
static void each_ocsp(sig_server_conf_t *conf, void (*fn)(sig_tls_ocsp_t *))
{
    size_t i, j;
    for (i = 0; i != conf->listeners.size; ++i) {
        sig_tls_identities_t *ids = &conf->listeners.entries[i]->tls;
        for (j = 0; j != ids->size; ++j)
            if (ids->entries[j]->ocsp != NULL)
                fn(ids->entries[j]->ocsp);
    }
}

static void start_one(sig_tls_ocsp_t *ocsp)
{
    pthread_attr_t attr;
    pthread_t tid;

    if (ocsp->started)
        return;
    ocsp->started = 1;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED); /* nobody joins: stop only asks it to end */
    h2o_multithread_create_thread(&tid, &attr, updater_main, ocsp);
    pthread_attr_destroy(&attr);
}

static void stop_one(sig_tls_ocsp_t *ocsp)
{
    pthread_mutex_lock(&ocsp->mutex);
    ocsp->stopping = 1;
    pthread_cond_signal(&ocsp->wake);
    pthread_mutex_unlock(&ocsp->mutex);
}

void sig_tls_start_ocsp(sig_server_conf_t *conf)
{
    pthread_once(&updater_sem_once, init_updater_sem);
    h2o_sem_set_capacity(&updater_sem, num_ocsp_updaters(conf));
    each_ocsp(conf, start_one);
}

void sig_tls_stop_ocsp(sig_server_conf_t *conf)
{
    each_ocsp(conf, stop_one);
}
