/*
 * The counters of a route (sig_metrics.h): per-thread blocks, their sums, and the two renderings.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_metrics.h"

struct st_sig_metrics_t {
    size_t num_threads;
    sig_metrics_thread_t *threads; /* num_threads blocks, each on lines of its own */
};

/* ---- the labels ---- */

#define MSG_LABEL_(name, label) label,
#define DIAL_LABEL_(name, label, err) label,
#define DIAL_ERR_(name, label, err) err,
#define CLOSE_CODE_(code) code,
#define BUCKET_NS_(ns, label) ns,
#define BUCKET_LABEL_(ns, label) label,
static const char *const message_labels[] = {SIG_METRICS_MESSAGE_TYPES(MSG_LABEL_)};
static const char *const dial_labels[] = {SIG_METRICS_DIAL_RESULTS(DIAL_LABEL_)};
static const int dial_errs[] = {SIG_METRICS_DIAL_RESULTS(DIAL_ERR_)};
static const uint16_t close_codes[] = {SIG_METRICS_CLOSE_CODES(CLOSE_CODE_)};
static const uint64_t bucket_ns[] = {SIG_METRICS_DIAL_BUCKETS(BUCKET_NS_)};
static const char *const bucket_labels[] = {SIG_METRICS_DIAL_BUCKETS(BUCKET_LABEL_) "+Inf"};

/* ---- counting ---- */

sig_metrics_t *sig_metrics_create(size_t num_threads)
{
    sig_metrics_t *metrics = sig_mem_alloc(sizeof(*metrics));
    void *blocks;

    if (posix_memalign(&blocks, 64, sizeof(sig_metrics_thread_t) * num_threads) != 0)
        sig_fatal("out of memory");
    memset(blocks, 0, sizeof(sig_metrics_thread_t) * num_threads); /* all-zero bytes are a zero counter */
    metrics->num_threads = num_threads;
    metrics->threads = blocks;
    return metrics;
}

void sig_metrics_destroy(sig_metrics_t *metrics)
{
    if (metrics == NULL)
        return;
    free(metrics->threads);
    free(metrics);
}

sig_metrics_thread_t *sig_metrics_thread(sig_metrics_t *metrics, size_t thread)
{
    return metrics->threads + thread;
}

int sig_metrics_dial_result_index(int result)
{
    size_t i;
    if (result > 0)
        return SIG_METRICS_DIAL_DELIVERED;
    for (i = 0; i != SIG_METRICS_NUM_DIAL_RESULTS; ++i)
        if (dial_errs[i] == result && result != 0)
            return (int)i;
    return -1;
}

size_t sig_metrics_close_index(uint16_t code)
{
    size_t i;
    for (i = 0; i != SIG_METRICS_NUM_CLOSE_CODES - 1; ++i)
        if (close_codes[i] == code)
            return i;
    return SIG_METRICS_NUM_CLOSE_CODES - 1;
}

void sig_metrics_count_dial(sig_metrics_thread_t *m, int result, uint64_t ns)
{
    int index = sig_metrics_dial_result_index(result);
    size_t bucket = 0;

    if (index >= 0)
        sig_counter_add(&m->dials[index], 1);
    while (bucket != SIG_METRICS_NUM_DIAL_BUCKETS - 1 && ns > bucket_ns[bucket])
        ++bucket;
    sig_counter_add(&m->dial_buckets[bucket], 1);
    sig_counter_add(&m->dial_ns_sum, ns);
}

void sig_metrics_sum(const sig_metrics_t *metrics, sig_metrics_figures_t *out)
{
    size_t t, i;

    out->connections = out->called_sent = out->dial_ns_sum = 0;
    memset(out->messages, 0, sizeof(out->messages));
    memset(out->dials, 0, sizeof(out->dials));
    memset(out->closes, 0, sizeof(out->closes));
    memset(out->dial_buckets, 0, sizeof(out->dial_buckets));
    for (t = 0; t != metrics->num_threads; ++t) {
        const sig_metrics_thread_t *m = metrics->threads + t;
        out->connections += sig_counter_get(&m->connections);
        for (i = 0; i != SIG_METRICS_NUM_MESSAGE_TYPES; ++i)
            out->messages[i] += sig_counter_get(&m->messages[i]);
        for (i = 0; i != SIG_METRICS_NUM_DIAL_RESULTS; ++i)
            out->dials[i] += sig_counter_get(&m->dials[i]);
        out->called_sent += sig_counter_get(&m->called_sent);
        for (i = 0; i != SIG_METRICS_NUM_CLOSE_CODES; ++i)
            out->closes[i] += sig_counter_get(&m->closes[i]);
        for (i = 0; i != SIG_METRICS_NUM_DIAL_BUCKETS; ++i)
            out->dial_buckets[i] += sig_counter_get(&m->dial_buckets[i]);
        out->dial_ns_sum += sig_counter_get(&m->dial_ns_sum);
    }
}

/* ---- text helpers ---- */

__attribute__((format(printf, 2, 3))) static void appendf(sig_buf_t *out, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p = sig_buf_reserve(out, 128);

    va_start(ap, fmt);
    n = vsnprintf(p, out->cap - out->len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= out->cap - out->len) { /* did not fit: again with room for all of it */
        p = sig_buf_reserve(out, (size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(p, out->cap - out->len, fmt, ap);
        va_end(ap);
    }
    if (n > 0)
        out->len += (size_t)n;
}

static void append_cstr(sig_buf_t *out, const char *s)
{
    sig_buf_append(out, s, strlen(s));
}

/* Nanoseconds as decimal seconds, exactly and in the shortest form: 1500000000 -> "1.5", 2000 -> "0.000002". */
static void append_seconds(sig_buf_t *out, uint64_t ns)
{
    uint64_t frac = ns % 1000000000u;
    int digits = 9;

    appendf(out, "%" PRIu64, ns / 1000000000u);
    if (frac == 0)
        return;
    while (frac % 10 == 0) {
        frac /= 10;
        --digits;
    }
    appendf(out, ".%0*" PRIu64, digits, frac);
}

/* A label value (Prometheus: backslash, double quote and newline escaped). */
static void append_label_value(sig_buf_t *out, sig_str_t s)
{
    size_t i;
    for (i = 0; i != s.len; ++i) {
        char c = s.base[i];
        if (c == '\\' || c == '"')
            sig_buf_append_char(out, '\\');
        if (c == '\n') {
            append_cstr(out, "\\n");
            continue;
        }
        sig_buf_append_char(out, c);
    }
}

/* A JSON string, quoted (our routes are UTF-8 from the config; control characters as \u00XX). */
static void append_json_string(sig_buf_t *out, sig_str_t s)
{
    size_t i;
    sig_buf_append_char(out, '"');
    for (i = 0; i != s.len; ++i) {
        unsigned char c = (unsigned char)s.base[i];
        if (c == '\\' || c == '"') {
            sig_buf_append_char(out, '\\');
            sig_buf_append_char(out, (char)c);
        } else if (c < 0x20) {
            appendf(out, "\\u%04x", c);
        } else {
            sig_buf_append_char(out, (char)c);
        }
    }
    sig_buf_append_char(out, '"');
}

/* ---- Prometheus ---- */

static void family(sig_buf_t *out, const char *name, const char *type, const char *help)
{
    appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* `name{route="R"` ... the caller adds more labels or closes the braces */
static void series_start(sig_buf_t *out, const char *name, const sig_metrics_figures_t *r)
{
    append_cstr(out, name);
    append_cstr(out, "{route=\"");
    append_label_value(out, r->route);
    sig_buf_append_char(out, '"');
}

static void route_value(sig_buf_t *out, const char *name, const sig_metrics_figures_t *r, uint64_t value)
{
    series_start(out, name, r);
    appendf(out, "} %" PRIu64 "\n", value);
}

static void labelled_value(sig_buf_t *out, const char *name, const sig_metrics_figures_t *r, const char *label,
                           const char *label_value, uint64_t value)
{
    series_start(out, name, r);
    appendf(out, ",%s=\"%s\"} %" PRIu64 "\n", label, label_value, value);
}

void sig_metrics_render_prometheus(sig_buf_t *out, const sig_metrics_figures_t *routes, size_t num_routes,
                                   const sig_metrics_process_t *process)
{
    size_t r, i;
    int any_backplane = 0;
    char code[8];

    family(out, "h2o_signaling_connections", "gauge", "Open WebSocket connections of the route.");
    for (r = 0; r != num_routes; ++r)
        route_value(out, "h2o_signaling_connections", routes + r, routes[r].connections);
    family(out, "h2o_signaling_users", "gauge", "User ids with at least one registered connection on this node.");
    for (r = 0; r != num_routes; ++r)
        route_value(out, "h2o_signaling_users", routes + r, routes[r].users);
    family(out, "h2o_signaling_messages_received_total", "counter",
           "Messages received, by type (invalid: not decodable; rate-limited messages are not read).");
    for (r = 0; r != num_routes; ++r)
        for (i = 0; i != SIG_METRICS_NUM_MESSAGE_TYPES; ++i)
            labelled_value(out, "h2o_signaling_messages_received_total", routes + r, "type", message_labels[i], routes[r].messages[i]);
    family(out, "h2o_signaling_dials_total", "counter",
           "Dialings by answer (rate_limited: messages the rate limit refused unread).");
    for (r = 0; r != num_routes; ++r)
        for (i = 0; i != SIG_METRICS_NUM_DIAL_RESULTS; ++i)
            labelled_value(out, "h2o_signaling_dials_total", routes + r, "result", dial_labels[i], routes[r].dials[i]);
    family(out, "h2o_signaling_called_sent_total", "counter", "called pushes queued to connections of this node.");
    for (r = 0; r != num_routes; ++r)
        route_value(out, "h2o_signaling_called_sent_total", routes + r, routes[r].called_sent);
    family(out, "h2o_signaling_closes_total", "counter",
           "Connections ended, by close code (1006: dropped without a close frame; other: 3000-4999).");
    for (r = 0; r != num_routes; ++r) {
        for (i = 0; i != SIG_METRICS_NUM_CLOSE_CODES; ++i) {
            if (i == SIG_METRICS_NUM_CLOSE_CODES - 1)
                snprintf(code, sizeof(code), "other");
            else
                snprintf(code, sizeof(code), "%u", (unsigned)close_codes[i]);
            labelled_value(out, "h2o_signaling_closes_total", routes + r, "code", code, routes[r].closes[i]);
        }
    }
    family(out, "h2o_signaling_dial_duration_seconds", "histogram",
           "Time from reading a dialing to knowing its answer (every node and thread involved answered).");
    for (r = 0; r != num_routes; ++r) {
        uint64_t cumulative = 0;
        for (i = 0; i != SIG_METRICS_NUM_DIAL_BUCKETS; ++i) {
            cumulative += routes[r].dial_buckets[i];
            labelled_value(out, "h2o_signaling_dial_duration_seconds_bucket", routes + r, "le", bucket_labels[i], cumulative);
        }
        series_start(out, "h2o_signaling_dial_duration_seconds_sum", routes + r);
        append_cstr(out, "} ");
        append_seconds(out, routes[r].dial_ns_sum);
        sig_buf_append_char(out, '\n');
        route_value(out, "h2o_signaling_dial_duration_seconds_count", routes + r, cumulative);
    }
    family(out, "h2o_signaling_calls", "gauge", "Level-2 calls live now, by state.");
    for (r = 0; r != num_routes; ++r) {
        labelled_value(out, "h2o_signaling_calls", routes + r, "state", "ringing", routes[r].calls.ringing);
        labelled_value(out, "h2o_signaling_calls", routes + r, "state", "active", routes[r].calls.active);
    }
    family(out, "h2o_signaling_calls_started_total", "counter",
           "Level-2 calls placed (rang, or ended at once: busy, offline, shutdown).");
    for (r = 0; r != num_routes; ++r)
        route_value(out, "h2o_signaling_calls_started_total", routes + r, routes[r].calls.started);
    family(out, "h2o_signaling_calls_answered_total", "counter", "Level-2 calls answered (accepted, or joined by glare).");
    for (r = 0; r != num_routes; ++r)
        route_value(out, "h2o_signaling_calls_answered_total", routes + r, routes[r].calls.answered);
    family(out, "h2o_signaling_calls_ended_total", "counter", "Level-2 calls ended, by the reason their caller was given.");
    for (r = 0; r != num_routes; ++r)
        for (i = 1; i != SIG_CALL_NUM_REASONS; ++i)
            labelled_value(out, "h2o_signaling_calls_ended_total", routes + r, "reason", sig_call_reason_name((sig_call_reason_t)i),
                           routes[r].calls.ended[i]);
    for (r = 0; r != num_routes; ++r)
        any_backplane |= routes[r].has_backplane;
    if (any_backplane) {
        family(out, "h2o_signaling_backplane_up", "gauge", "1 when the subscribing connection of every Redis shard is up.");
        for (r = 0; r != num_routes; ++r)
            if (routes[r].has_backplane)
                route_value(out, "h2o_signaling_backplane_up", routes + r, routes[r].backplane_up != 0);
        family(out, "h2o_signaling_backplane_reconnects_total", "counter",
               "Times a Redis shard's subscribing connection came back after it was lost.");
        for (r = 0; r != num_routes; ++r)
            if (routes[r].has_backplane)
                route_value(out, "h2o_signaling_backplane_reconnects_total", routes + r, routes[r].backplane_reconnects);
    }
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    appendf(out, "process_resident_memory_bytes %" PRIu64 "\n", process->resident_bytes);
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    appendf(out, "process_open_fds %" PRIu64 "\n", process->open_fds);
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    appendf(out, "process_max_fds %" PRIu64 "\n", process->max_fds);
    family(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    append_cstr(out, "process_cpu_seconds_total ");
    append_seconds(out, process->cpu_ns);
    sig_buf_append_char(out, '\n');
}

/* ---- h2o's status JSON ---- */

static void json_counts(sig_buf_t *out, const char *name, const char *const *labels, const uint64_t *values, size_t n)
{
    size_t i;
    appendf(out, ", \"%s\": {", name);
    for (i = 0; i != n; ++i)
        appendf(out, "%s\"%s\": %" PRIu64, i == 0 ? "" : ", ", labels[i], values[i]);
    sig_buf_append_char(out, '}');
}

void sig_metrics_render_json(sig_buf_t *out, const sig_metrics_figures_t *routes, size_t num_routes,
                             const sig_metrics_process_t *process)
{
    size_t r, i;

    append_cstr(out, ",\n \"signaling\": {\n  \"routes\": [");
    for (r = 0; r != num_routes; ++r) {
        const sig_metrics_figures_t *f = routes + r;
        uint64_t cumulative = 0;

        append_cstr(out, r == 0 ? "\n   {\"route\": " : ",\n   {\"route\": ");
        append_json_string(out, f->route);
        appendf(out, ", \"connections\": %" PRIu64 ", \"users\": %" PRIu64, f->connections, f->users);
        json_counts(out, "messages_received", message_labels, f->messages, SIG_METRICS_NUM_MESSAGE_TYPES);
        json_counts(out, "dials", dial_labels, f->dials, SIG_METRICS_NUM_DIAL_RESULTS);
        appendf(out, ", \"called_sent\": %" PRIu64 ", \"closes\": {", f->called_sent);
        for (i = 0; i != SIG_METRICS_NUM_CLOSE_CODES; ++i) {
            if (i == SIG_METRICS_NUM_CLOSE_CODES - 1)
                appendf(out, ", \"other\": %" PRIu64, f->closes[i]);
            else
                appendf(out, "%s\"%u\": %" PRIu64, i == 0 ? "" : ", ", (unsigned)close_codes[i], f->closes[i]);
        }
        append_cstr(out, "}, \"dial_duration_seconds\": {\"buckets\": {");
        for (i = 0; i != SIG_METRICS_NUM_DIAL_BUCKETS; ++i) {
            cumulative += f->dial_buckets[i];
            appendf(out, "%s\"%s\": %" PRIu64, i == 0 ? "" : ", ", bucket_labels[i], cumulative);
        }
        append_cstr(out, "}, \"sum\": ");
        append_seconds(out, f->dial_ns_sum);
        appendf(out, ", \"count\": %" PRIu64 "}", cumulative);
        appendf(out,
                ", \"calls\": {\"ringing\": %zu, \"active\": %zu, \"started\": %" PRIu64 ", \"answered\": %" PRIu64 ", \"ended\": {",
                f->calls.ringing, f->calls.active, f->calls.started, f->calls.answered);
        for (i = 1; i != SIG_CALL_NUM_REASONS; ++i)
            appendf(out, "%s\"%s\": %" PRIu64, i == 1 ? "" : ", ", sig_call_reason_name((sig_call_reason_t)i), f->calls.ended[i]);
        append_cstr(out, "}}");
        if (f->has_backplane)
            appendf(out, ", \"backplane\": {\"up\": %d, \"reconnects\": %" PRIu64 "}", f->backplane_up != 0,
                    f->backplane_reconnects);
        sig_buf_append_char(out, '}');
    }
    append_cstr(out, num_routes != 0 ? "\n  ],\n" : "],\n");
    appendf(out,
            "  \"process\": {\"resident_memory_bytes\": %" PRIu64 ", \"open_fds\": %" PRIu64 ", \"max_fds\": %" PRIu64
            ", \"cpu_seconds\": ",
            process->resident_bytes, process->open_fds, process->max_fds);
    append_seconds(out, process->cpu_ns);
    append_cstr(out, "}\n }");
}
