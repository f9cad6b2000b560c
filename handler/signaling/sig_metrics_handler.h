/*
 * `signaling.metrics: ON`: the figures of every `signaling: ON` route of the process (core/sig_metrics.h), summed
 * over threads, as a Prometheus scrape target on a path of its own, and the same figures as the `signaling`
 * section of h2o's `status: ON` JSON. The counting itself happens where the events do (sig_signaling.c), in the
 * per-thread blocks of each route (route/sig_routes.h: kept with the route across reloads).
 */
#ifndef SIG_METRICS_HANDLER_H
#define SIG_METRICS_HANDLER_H

#include <stdint.h>
#include <time.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "core/sig_metrics.h"

/** The monotonic clock in nanoseconds, for dial durations (vDSO: no system call). */
static inline uint64_t sig_metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/**
 * The `signaling.metrics` directive (path level, deferred): ON installs the metrics handler on the path, which
 * must have no other handler (FILE:LINE error otherwise). OFF does nothing.
 */
int sig_metrics_on_config(h2o_configurator_command_t *cmd, h2o_configurator_context_t *ctx, yoml_t *node);

/** Whether `pathconf` serves the metrics (a `signaling: ON` or `websocket.echo: ON` there is refused). */
int sig_metrics_is_installed(h2o_pathconf_t *pathconf);

/** Adds the `signaling` section to the status JSON of `conf` (once per configuration, by the configurator). */
void sig_metrics_register_status(h2o_globalconf_t *conf);

/** Renders the Prometheus text of every serving route and of the process into `out` (any thread). */
void sig_metrics_render(sig_buf_t *out);

#endif
