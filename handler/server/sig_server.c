/*
 * The host's runtime: binding, one libuv loop per thread, accepting, signals, shutdown.
 *
 * Threads: thread 0 is the main thread and owns the signal watchers. Every thread has its own
 * queue (for control, routing and backplane messages), its own SO_REUSEPORT socket per listener (the
 * kernel spreads connections evenly) and, per configuration generation, its own h2o_context_t
 * (sig_generation.c). Shutdown and generation switches travel to the other threads as messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <pwd.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <h2o.h>
#include <h2o/socket/uv-binding.h>
#include "server/sig_server.h"
#include "core/sig_addrcount.h"
#include "signaling/sig_signaling.h"

#define SIG_SHUTDOWN_GRACE_MS 5000 /* in-flight HTTP gets this long after SIGTERM */
#define SIG_SHUTDOWN_POLL_MS 50
#define SIG_COLLECT_INTERVAL_MS 1000 /* how often a thread looks for old generations to dispose */

/* ---- configuration ---- */

int sig_server_configure(sig_server_t *server, const char *path, int dry_run)
{
    memset(server, 0, sizeof(*server));
    server->config_file = path;
    pthread_mutex_init(&server->by_address_lock, NULL);
    sig_server_status_set_server(server);
    server->by_address = sig_addrcount_create();
    if ((server->conf = sig_server_conf_load(path, dry_run)) == NULL)
        return -1;
    /* process-wide settings of libh2o, from the first configuration (temp-buffer-path is restart-only) */
    h2o_hostinfo_max_threads = server->conf->num_name_resolution_threads;
    if (server->conf->temp_buffer_path != NULL) {
        char *base = strrchr(h2o_socket_buffer_mmap_settings.fn_template, '/'), tmpl[sizeof(h2o_socket_buffer_mmap_settings.fn_template)];
        snprintf(tmpl, sizeof(tmpl), "%s%s", server->conf->temp_buffer_path, base != NULL ? base : "/h2o.b.XXXXXX");
        strcpy(h2o_socket_buffer_mmap_settings.fn_template, tmpl);
    }
    sig_signaling_config_commit(); /* the first build serves from the start */
    return 0;
}

/* ---- binding ---- */

int sig_server_open_error_log(const char *path)
{
    /* `| command`: as stock h2o, a logger process reads the messages on its stdin (libh2o spawns it) */
    int fd = path[0] == '|' ? h2o_access_log_open_log(path) : open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd == -1) {
        fprintf(stderr, "error-log: cannot open `%s`: %s\n", path, strerror(errno));
        return -1;
    }
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    close(fd);
    return 0;
}

static int drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "user: `%s` does not exist\n", user);
        return -1;
    }
    if (setgid(pw->pw_gid) != 0 || initgroups(pw->pw_name, pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "user: cannot switch to `%s`: %s\n", user, strerror(errno));
        return -1;
    }
    return 0;
}


/* Descriptors open now (Linux: /proc/self/fd), plus what each thread opens (loop, queue, listeners,
 * Redis links) and some slack for files served and logs. */
static unsigned long long estimate_fd_reserve(const sig_server_conf_t *conf)
{
    unsigned long long open_now = 0;
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    if (dir != NULL) {
        while ((e = readdir(dir)) != NULL)
            open_now += e->d_name[0] != '.';
        closedir(dir);
    } else {
        open_now = 16;
    }
    return open_now + conf->num_threads * (8 + conf->listeners.size) + 32;
}

/* The soft open-files limit is often 1024 while the hard one is far higher: use what is allowed
 * (stock h2o does the same), and say at start when max-connections cannot be reached under it,
 * instead of refusing clients silently past about a thousand. */
static void raise_fd_limit(sig_server_t *server, const sig_server_conf_t *conf)
{
    struct rlimit lim;
    unsigned long long need, fit;

    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return;
    if (lim.rlim_cur < lim.rlim_max) {
        rlim_t soft = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
            lim.rlim_cur = soft;
    }
    server->fd_limit = lim.rlim_cur == RLIM_INFINITY ? 0 : (unsigned long long)lim.rlim_cur;
    server->fd_reserve = estimate_fd_reserve(conf);
    need = (unsigned long long)conf->max_connections + server->fd_reserve;
    if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= need)
        return;
    fit = lim.rlim_cur > server->fd_reserve ? (unsigned long long)lim.rlim_cur - server->fd_reserve : 0;
    fprintf(stderr,
            "h2o-signaling: max-connections is %d, but the open-files limit is %llu (hard limit %llu): about %llu connections "
            "fit; raise the limit (ulimit -n, or LimitNOFILE= in a systemd unit) or lower max-connections\n",
            conf->max_connections, (unsigned long long)lim.rlim_cur, (unsigned long long)lim.rlim_max, fit);
}

int sig_server_bind(sig_server_t *server)
{
    sig_server_conf_t *conf = server->conf;

    raise_fd_limit(server, conf);
    if (sig_server_bind_listeners(conf, NULL, conf->num_threads) != 0)
        return -1;
    if (conf->error_log != NULL && sig_server_open_error_log(conf->error_log) != 0)
        return -1;
    if (conf->pid_file != NULL) {
        FILE *fp = fopen(conf->pid_file, "w");
        if (fp == NULL) {
            fprintf(stderr, "pid-file: cannot write `%s`: %s\n", conf->pid_file, strerror(errno));
            return -1;
        }
        fprintf(fp, "%d\n", (int)getpid());
        fclose(fp);
    }
    if (conf->user != NULL && drop_privileges(conf->user) != 0)
        return -1;
    sig_tls_start_ocsp(conf);
    return 0;
}

/* ---- shutdown ---- */

static void free_listener(uv_handle_t *handle)
{
    free(handle);
}

static void on_shutdown_timer(uv_timer_t *timer)
{
    sig_thread_t *thread = timer->data;
    if (thread->num_connections == 0 || uv_now(&thread->loop) >= thread->shutdown_deadline) {
        thread->done = 1;
        uv_timer_stop(timer);
    }
}

/* Stops accepting, asks HTTP connections (of every generation) to finish and WebSockets to go away,
 * then waits for them. */
static void begin_shutdown(sig_thread_t *thread)
{
    sig_gen_t *gen;
    size_t i;

    if (thread->shutting_down)
        return;
    thread->shutting_down = 1;
    for (i = 0; i != thread->listeners.size; ++i)
        uv_close((uv_handle_t *)&thread->listeners.entries[i]->stream, free_listener);
    thread->listeners.size = 0;
    for (gen = thread->server->gens; gen != NULL; gen = gen->next)
        if (gen->threads[thread->index].live)
            h2o_context_request_shutdown(&gen->threads[thread->index].ctx);
    sig_signaling_thread_shutdown();
    thread->shutdown_deadline = uv_now(&thread->loop) + SIG_SHUTDOWN_GRACE_MS;
    uv_timer_start(&thread->shutdown_timer, on_shutdown_timer, 0, SIG_SHUTDOWN_POLL_MS);
}

static void on_control_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    sig_thread_t *thread = H2O_STRUCT_FROM_MEMBER(sig_thread_t, control, receiver);
    /* the queue hands over a batch: every message must be unlinked and freed */
    while (!h2o_linklist_is_empty(messages)) {
        sig_control_msg_t *msg = H2O_STRUCT_FROM_MEMBER(sig_control_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        if (msg->kind == SIG_CONTROL_SWITCH)
            sig_generation_switch(thread, msg->gen);
        else
            begin_shutdown(thread);
        free(msg);
    }
}

static void on_signal(uv_signal_t *handle, int signum)
{
    sig_thread_t *thread = handle->data;
    sig_server_t *server = thread->server;
    size_t i;

    if (signum == SIGHUP) {
        /* the log first: logrotate's HUP must work even when the edited file is broken (a piped logger
         * rotates by itself: it keeps its process) */
        if (server->conf->error_log != NULL && server->conf->error_log[0] != '|')
            sig_server_open_error_log(server->conf->error_log);
        sig_server_reload(server);
        return;
    }
    if (thread->shutting_down)
        return;
    fprintf(stderr, "h2o-signaling: received %s, shutting down\n", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    for (i = 1; i < server->num_threads; ++i) {
        sig_control_msg_t *msg = h2o_mem_alloc(sizeof(*msg));
        memset(msg, 0, sizeof(*msg));
        msg->kind = SIG_CONTROL_SHUTDOWN;
        h2o_multithread_send_message(&server->threads[i].control, &msg->super);
    }
    begin_shutdown(thread);
}

/*
 * After a storm of connections, glibc's malloc keeps what they freed in its arenas and the process
 * stays at its peak (nothing leaks: nothing gives it back). Once the connections fell to half their
 * peak, and by at least SIG_TRIM_MIN_DROP, thread 0 has malloc return its free memory to the system,
 * at most every SIG_TRIM_INTERVAL_MS. malloc_trim walks every arena (each thread's) under its lock:
 * milliseconds, rarely, and never on the path of a message.
 */
#define SIG_TRIM_MIN_DROP 1000
#define SIG_TRIM_INTERVAL_MS 10000

static void trim_after_storm(sig_server_t *server, uint64_t now)
{
    int open = __atomic_load_n(&server->num_connections, __ATOMIC_RELAXED);
    if (open > server->trim_peak)
        server->trim_peak = open;
    if (server->trim_peak - open < SIG_TRIM_MIN_DROP || open > server->trim_peak / 2 ||
        (server->trimmed_at != 0 && now - server->trimmed_at < SIG_TRIM_INTERVAL_MS))
        return;
    malloc_trim(0);
    server->trimmed_at = now;
    server->trim_peak = open;
}

static void on_collect_timer(uv_timer_t *timer)
{
    sig_thread_t *thread = timer->data;
    if (thread->index == 0)
        trim_after_storm(thread->server, uv_now(&thread->loop));
    thread->collect_due = 1; /* h2o_context_dispose runs the loop: not from a callback */
}

/* ---- threads ---- */

static void *run_thread(void *arg)
{
    sig_thread_t *thread = arg;
    sig_server_t *server = thread->server;
    sig_gen_t *gen;
    size_t i;
    static const int signums[] = {SIGTERM, SIGINT, SIGHUP};

    uv_loop_init(&thread->loop);
    thread->queue = h2o_multithread_create_queue(&thread->loop);
    h2o_multithread_register_receiver(thread->queue, &thread->control, on_control_message);
    uv_timer_init(&thread->loop, &thread->shutdown_timer);
    thread->shutdown_timer.data = thread;
    uv_timer_init(&thread->loop, &thread->collect_timer);
    thread->collect_timer.data = thread;
    uv_timer_start(&thread->collect_timer, on_collect_timer, SIG_COLLECT_INTERVAL_MS, SIG_COLLECT_INTERVAL_MS);
    uv_unref((uv_handle_t *)&thread->collect_timer);
    sig_signaling_thread_init(&thread->loop, thread->queue, thread->index);
    if (thread->index == 0) {
        for (i = 0; i != sizeof(signums) / sizeof(signums[0]); ++i) {
            uv_signal_init(&thread->loop, thread->signals + i);
            thread->signals[i].data = thread;
            uv_signal_start(thread->signals + i, on_signal, signums[i]);
        }
    }
    /* no thread may receive a message (shutdown, delivery), nor a client connect, before every thread
     * has registered its receivers and thread 0 its signal handlers (SIGTERM's default would kill us) */
    pthread_barrier_wait(&server->startup_barrier);
    sig_generation_switch(thread, server->gens);

    while (!thread->done) {
        uv_run(&thread->loop, UV_RUN_ONCE);
        /* a file replaced on disk must not be served stale: the caches live for one iteration */
        for (gen = __atomic_load_n(&server->gens, __ATOMIC_ACQUIRE); gen != NULL; gen = gen->next)
            if (gen->threads[thread->index].live)
                h2o_filecache_clear(gen->threads[thread->index].ctx.filecache);
        if (thread->collect_due) {
            thread->collect_due = 0;
            sig_generation_collect(thread, 0);
        }
    }

    /* a thread tearing down must not get messages from one still running (h2o's queue asserts on a
     * message to a receiver that unregistered, and frees the queue): wait for every loop to stop, then
     * have every later message dropped */
    pthread_barrier_wait(&server->shutdown_barrier);
    sig_signaling_thread_quiesce();

    if (thread->num_connections != 0) {
        /* the grace period ran out with clients still attached: leave their memory to the process exit */
        fprintf(stderr, "h2o-signaling: thread %zu: %zu connection(s) still open after %d ms, exiting anyway\n", thread->index,
                thread->num_connections, SIG_SHUTDOWN_GRACE_MS);
        return NULL;
    }
    if (thread->index == 0) {
        for (i = 0; i != sizeof(signums) / sizeof(signums[0]); ++i)
            uv_close((uv_handle_t *)(thread->signals + i), NULL);
    }
    uv_close((uv_handle_t *)&thread->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&thread->collect_timer, NULL);
    sig_signaling_thread_dispose();
    h2o_multithread_unregister_receiver(thread->queue, &thread->control);
    sig_generation_collect(thread, 1); /* every generation's context; each runs the loop once */
    h2o_multithread_destroy_queue(thread->queue);
    uv_run(&thread->loop, UV_RUN_NOWAIT); /* the queue's close callback */
    free(thread->listeners.entries);
    /* the loop is left open: handlers such as proxy.reverse.url keep a timer on the first context's loop
     * for as long as the configuration lives, which is until the process exits */
    return NULL;
}

int sig_server_run(sig_server_t *server)
{
    size_t i;

    server->num_threads = server->conf->num_threads;
    server->gens = sig_generation_create(server, server->conf);
    server->threads = h2o_mem_alloc(sizeof(*server->threads) * server->num_threads);
    memset(server->threads, 0, sizeof(*server->threads) * server->num_threads);
    for (i = 0; i != server->num_threads; ++i) {
        server->threads[i].server = server;
        server->threads[i].index = i;
    }
    sig_signaling_init(server->num_threads);
    pthread_barrier_init(&server->startup_barrier, NULL, (unsigned)server->num_threads);
    pthread_barrier_init(&server->shutdown_barrier, NULL, (unsigned)server->num_threads);
    fprintf(stderr, "h2o-signaling: serving %s with %zu thread(s)\n", server->config_file, server->num_threads);
    for (i = 1; i < server->num_threads; ++i) {
        int err = pthread_create(&server->threads[i].tid, NULL, run_thread, server->threads + i);
        if (err != 0) {
            fprintf(stderr, "h2o-signaling: cannot start thread %zu: %s\n", i, strerror(err));
            abort();
        }
    }
    run_thread(server->threads);
    for (i = 1; i < server->num_threads; ++i)
        pthread_join(server->threads[i].tid, NULL);
    pthread_barrier_destroy(&server->startup_barrier);
    pthread_barrier_destroy(&server->shutdown_barrier);
    if (server->conf->pid_file != NULL)
        unlink(server->conf->pid_file);
    return 0;
}

void sig_server_dispose(sig_server_t *server)
{
    if (server->conf != NULL)
        sig_server_conf_dispose(server->conf);
    sig_signaling_dispose();
    sig_addrcount_destroy(server->by_address);
    free(server->threads);
}
