/*
 * The metrics endpoint and the status section (sig_metrics_handler.h): the figures of every serving route are
 * gathered under the route table's lock, the process's read from /proc/self, and core/sig_metrics renders them.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "core/sig_metrics.h"
#include "route/sig_router.h"
#include "route/sig_routes.h"
#include "signaling/sig_metrics_handler.h"

/* ---- gathering ---- */

struct st_gather_t {
    H2O_VECTOR(sig_metrics_figures_t) routes;
    H2O_VECTOR(size_t) name_at; /* each route's name in `names`: copied, since a route may go once the lock is released */
    sig_buf_t names;
};

static void gather_route(sig_route_t *route, sig_str_t key, void *data)
{
    struct st_gather_t *g = data;
    sig_metrics_figures_t *f;
    sig_router_t *router = sig_route_router(route);

    h2o_vector_reserve(NULL, &g->routes, g->routes.size + 1);
    h2o_vector_reserve(NULL, &g->name_at, g->name_at.size + 1);
    f = g->routes.entries + g->routes.size++;
    memset(f, 0, sizeof(*f));
    g->name_at.entries[g->name_at.size++] = g->names.len;
    sig_buf_append(&g->names, key.base, key.len);
    f->route.len = key.len;
    sig_metrics_sum(sig_route_metrics(route), f);
    f->users = sig_router_num_users(router);
    sig_calls_stats(sig_route_calls(route), &f->calls);
    f->has_backplane = sig_router_backplane_health(router, &f->backplane_up, &f->backplane_reconnects);
}

/* /proc/self: resident set, CPU time, descriptors (a missing file leaves its figure 0). */
static void read_process(sig_metrics_process_t *p)
{
    unsigned long long size, resident, utime, stime;
    struct rlimit limit;
    char line[1024], *at;
    struct dirent *ent;
    FILE *fp;
    DIR *dir;

    memset(p, 0, sizeof(*p));
    if ((fp = fopen("/proc/self/statm", "r")) != NULL) {
        if (fscanf(fp, "%llu %llu", &size, &resident) == 2)
            p->resident_bytes = resident * (unsigned long long)sysconf(_SC_PAGESIZE);
        fclose(fp);
    }
    if ((fp = fopen("/proc/self/stat", "r")) != NULL) {
        /* after "pid (comm) ", whose comm may hold spaces and parentheses: fields 3 to 13, then utime and stime */
        if (fgets(line, sizeof(line), fp) != NULL && (at = strrchr(line, ')')) != NULL &&
            sscanf(at + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) == 2)
            p->cpu_ns = (utime + stime) * (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
        fclose(fp);
    }
    if ((dir = opendir("/proc/self/fd")) != NULL) {
        while ((ent = readdir(dir)) != NULL)
            if (ent->d_name[0] != '.')
                ++p->open_fds;
        if (p->open_fds != 0)
            --p->open_fds; /* the directory's own descriptor */
        closedir(dir);
    }
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0)
        p->max_fds = limit.rlim_cur == RLIM_INFINITY ? 0 : (uint64_t)limit.rlim_cur;
}

static void render(sig_buf_t *out, int json)
{
    struct st_gather_t g = {{NULL}};
    sig_metrics_process_t process;
    size_t i;

    sig_routes_foreach_serving(gather_route, &g);
    for (i = 0; i != g.routes.size; ++i)
        g.routes.entries[i].route.base = g.names.base + g.name_at.entries[i];
    read_process(&process);
    if (json)
        sig_metrics_render_json(out, g.routes.entries, g.routes.size, &process);
    else
        sig_metrics_render_prometheus(out, g.routes.entries, g.routes.size, &process);
    free(g.routes.entries);
    free(g.name_at.entries);
    sig_buf_dispose(&g.names);
}

void sig_metrics_render(sig_buf_t *out)
{
    render(out, 0);
}

/* ---- the scrape target ---- */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    sig_buf_t out = SIG_BUF_INIT;
    (void)self;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        h2o_send_error_generic(req, 405, "Method Not Allowed", "method not allowed\n", H2O_SEND_ERROR_KEEP_HEADERS);
        return 0;
    }
    render(&out, 0);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = out.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, out.base, out.len); /* copies into the request's pool */
    sig_buf_dispose(&out);
    return 0;
}

int sig_metrics_is_installed(h2o_pathconf_t *pathconf)
{
    size_t i;
    for (i = 0; i != pathconf->handlers.size; ++i)
        if (pathconf->handlers.entries[i]->on_req == on_req)
            return 1;
    return 0;
}

int sig_metrics_on_config(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node)
{
    h2o_handler_t *handler;

    switch (h2o_configurator_get_one_of(cmd, node, "OFF,ON")) {
    case 0:
        return 0;
    case 1:
        if (ctx->pathconf->handlers.size != 0) {
            h2o_configurator_errprintf(cmd, node, "the metrics need a path of their own (such as /metrics): this path has another "
                                                  "handler (`signaling: ON`, `file.dir`, ...)");
            return -1;
        }
        handler = h2o_create_handler(ctx->pathconf, sizeof(*handler));
        handler->on_req = on_req;
        return 0;
    default:
        return -1;
    }
}

/* ---- the section of h2o's status JSON ---- */

static h2o_iovec_t on_status_final(void *priv, h2o_globalconf_t *gconf, h2o_req_t *req)
{
    sig_buf_t out = SIG_BUF_INIT;
    h2o_iovec_t ret;
    (void)priv;
    (void)gconf;

    render(&out, 1);
    ret = h2o_strdup(&req->pool, out.base, out.len); /* writable: h2o turns the first section's comma into a space */
    sig_buf_dispose(&out);
    return ret;
}

/* Frees the configuration's list of status sections: libh2o 2.2.5's h2o_config_dispose frees everything
 * else of a configuration but forgets that list (a rejected reload, `-t`). */
struct st_status_list_owner_t {
    h2o_configurator_t super;
    h2o_globalconf_t *conf;
};

static int on_status_list_dispose(h2o_configurator_t *_self)
{
    struct st_status_list_owner_t *self = (void *)_self;
    free(self->conf->statuses.entries);
    memset(&self->conf->statuses, 0, sizeof(self->conf->statuses)); /* a second dispose finds nothing */
    return 0;
}

void sig_metrics_register_status(h2o_globalconf_t *conf)
{
    /* the figures are summed from every thread's counters directly: no per-thread pass is needed */
    h2o_status_handler_t handler = {{H2O_STRLIT("signaling")}, NULL, NULL, on_status_final};
    struct st_status_list_owner_t *owner = (void *)h2o_configurator_create(conf, sizeof(*owner));

    owner->conf = conf;
    owner->super.dispose = on_status_list_dispose;
    h2o_config_register_status_handler(conf, handler);
}
