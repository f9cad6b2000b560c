/*
 * test_metrics.c: unit tests of handler/core/sig_metrics.c (TAP): per-thread blocks on lines of their own, counts
 * summed over threads (also while writers run), the mapping of dial answers and close codes to labels, the
 * histogram (buckets cumulative, bounds inclusive, count = observations, exact sum), and the exact Prometheus text
 * and status JSON.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/sig_metrics.h"
#include "tap.h"

static const char *text_of(sig_buf_t *buf)
{
    sig_buf_append_char(buf, '\0');
    --buf->len;
    return buf->base;
}

static void test_blocks(void)
{
    sig_metrics_t *m = sig_metrics_create(4);
    size_t t;
    int aligned = 1, zero = 1;

    for (t = 0; t != 4; ++t) {
        const unsigned char *p = (const unsigned char *)sig_metrics_thread(m, t);
        size_t i;
        aligned &= ((uintptr_t)p % 64) == 0;
        for (i = 0; i != sizeof(sig_metrics_thread_t); ++i)
            zero &= p[i] == 0;
    }
    ok(aligned, "every thread's block starts a cache line");
    ok(sizeof(sig_metrics_thread_t) % 64 == 0, "and covers whole lines: no two threads write the same line");
    ok(zero, "counters start at 0");
    ok((char *)sig_metrics_thread(m, 1) - (char *)sig_metrics_thread(m, 0) == (ptrdiff_t)sizeof(sig_metrics_thread_t),
       "blocks are consecutive");
    sig_metrics_destroy(m);
    sig_metrics_destroy(NULL);
    ok(1, "destroy(NULL) is a no-op");
}

static void test_labels(void)
{
    is_int(sig_metrics_dial_result_index(1), SIG_METRICS_DIAL_DELIVERED, "delivered to 1");
    is_int(sig_metrics_dial_result_index(8), SIG_METRICS_DIAL_DELIVERED, "delivered to 8");
    is_int(sig_metrics_dial_result_index(SIG_ERR_PEER_OFFLINE), SIG_METRICS_DIAL_PEER_OFFLINE, "peer_offline");
    is_int(sig_metrics_dial_result_index(SIG_ERR_PEER_GONE), SIG_METRICS_DIAL_PEER_GONE, "peer_gone");
    is_int(sig_metrics_dial_result_index(SIG_ERR_CLUSTER_UNAVAILABLE), SIG_METRICS_DIAL_CLUSTER_UNAVAILABLE, "cluster_unavailable");
    is_int(sig_metrics_dial_result_index(SIG_ERR_NOT_REGISTERED), SIG_METRICS_DIAL_NOT_REGISTERED, "not_registered");
    is_int(sig_metrics_dial_result_index(SIG_ERR_IDENTITY_MISMATCH), SIG_METRICS_DIAL_IDENTITY_MISMATCH, "identity_mismatch");
    is_int(sig_metrics_dial_result_index(SIG_ERR_RATE_LIMITED), SIG_METRICS_DIAL_RATE_LIMITED, "rate_limited");
    is_int(sig_metrics_dial_result_index(0), -1, "0 is no answer");
    is_int(sig_metrics_dial_result_index(SIG_ERR_BAD_JSON), -1, "an error that is not a dial's answer");

    is_int(sig_metrics_close_index(1000), 0, "1000: the first row");
    is_int(sig_metrics_close_index(1006), 5, "1006 has its row");
    is_int(sig_metrics_close_index(1011), SIG_METRICS_NUM_CLOSE_CODES - 2, "1011: the last code of its own");
    is_int(sig_metrics_close_index(4000), SIG_METRICS_NUM_CLOSE_CODES - 1, "4000: other");
    is_int(sig_metrics_close_index(1004), SIG_METRICS_NUM_CLOSE_CODES - 1, "1004 (reserved): other");
}

/* Fills two threads' blocks as a scripted scenario would, and checks the sums. */
static sig_metrics_t *scenario(sig_metrics_figures_t *f)
{
    sig_metrics_t *m = sig_metrics_create(2);
    sig_metrics_thread_t *a = sig_metrics_thread(m, 0), *b = sig_metrics_thread(m, 1);

    sig_counter_add(&a->connections, 3);
    sig_counter_add(&b->connections, 2);
    sig_counter_sub(&b->connections, 1);
    sig_counter_add(&a->messages[SIG_METRICS_MSG_CREATE_CONNECT], 3);
    sig_counter_add(&b->messages[SIG_METRICS_MSG_INVALID], 2);
    sig_counter_add(&a->messages[SIG_METRICS_MSG_CALL + (SIG_CALL_REQ_SIGNAL - SIG_CALL_REQ_CALL)], 7);
    sig_metrics_count_dial(a, 2, 400000);                          /* 0.4 ms */
    sig_metrics_count_dial(b, SIG_ERR_PEER_OFFLINE, 500000);       /* exactly the first bound: in it */
    sig_metrics_count_dial(b, SIG_ERR_CLUSTER_UNAVAILABLE, 1100000000); /* 1.1 s */
    sig_metrics_count_dial(a, SIG_ERR_RATE_LIMITED, 6000000000ull);     /* past the last bound */
    sig_counter_add(&b->called_sent, 2);
    sig_counter_add(&a->closes[sig_metrics_close_index(1000)], 1);
    sig_counter_add(&b->closes[sig_metrics_close_index(4000)], 1);
    memset(f, 0, sizeof(*f));
    f->route = SIG_STRLIT("default/WsService");
    f->users = 2;
    f->calls.ringing = 1; /* what the route's call owner published */
    f->calls.active = 2;
    f->calls.started = 9;
    f->calls.answered = 4;
    f->calls.ended[SIG_CALL_REASON_HANGUP] = 3;
    f->calls.ended[SIG_CALL_REASON_BUSY] = 2;
    sig_metrics_sum(m, f);
    return m;
}

static void test_sum(void)
{
    sig_metrics_figures_t f;
    sig_metrics_t *m = scenario(&f);
    uint64_t count = 0, dials = 0;
    size_t i;

    is_int(f.connections, 4, "connections: 3 + (2 - 1)");
    is_int(f.users, 2, "users are left as the caller set them");
    is_str(f.route.base, "default/WsService", "and the route");
    is_int(f.messages[SIG_METRICS_MSG_CREATE_CONNECT], 3, "create_connect");
    is_int(f.messages[SIG_METRICS_MSG_DIALING], 0, "dialing");
    is_int(f.messages[SIG_METRICS_MSG_INVALID], 2, "invalid");
    is_int(f.dials[SIG_METRICS_DIAL_DELIVERED], 1, "delivered");
    is_int(f.dials[SIG_METRICS_DIAL_PEER_OFFLINE], 1, "peer_offline");
    is_int(f.dials[SIG_METRICS_DIAL_CLUSTER_UNAVAILABLE], 1, "cluster_unavailable");
    is_int(f.dials[SIG_METRICS_DIAL_RATE_LIMITED], 1, "rate_limited");
    is_int(f.called_sent, 2, "called_sent");
    is_int(f.closes[0], 1, "closes 1000");
    is_int(f.closes[SIG_METRICS_NUM_CLOSE_CODES - 1], 1, "closes other");
    for (i = 0; i != SIG_METRICS_NUM_DIAL_BUCKETS; ++i)
        count += f.dial_buckets[i];
    for (i = 0; i != SIG_METRICS_NUM_DIAL_RESULTS; ++i)
        dials += f.dials[i];
    is_int(count, 4, "4 observations in the buckets");
    is_int(count, dials, "the histogram counts every dial once");
    is_int(f.dial_buckets[0], 2, "0.4 ms and 0.5 ms in le=0.0005 (bounds are inclusive)");
    is_int(f.dial_buckets[11], 1, "1.1 s in le=2.5");
    is_int(f.dial_buckets[SIG_METRICS_NUM_DIAL_BUCKETS - 1], 1, "6 s above the last bound");
    is_int(f.dial_ns_sum, 7100900000ull, "the sum in ns is exact");

    /* summing again gives the same, not twice as much */
    sig_metrics_sum(m, &f);
    is_int(f.connections, 4, "a second sum replaces the first");
    is_int(f.dial_ns_sum, 7100900000ull, "sum replaced too");
    sig_metrics_destroy(m);

    /* every bound is inclusive, and one ns more is the next bucket */
    {
        static const uint64_t bounds[] = {500000ull, 1000000ull, 2500000ull, 5000000ull, 10000000ull, 25000000ull, 50000000ull,
                                          100000000ull, 250000000ull, 500000000ull, 1000000000ull, 2500000000ull, 5000000000ull};
        int good = 1;
        m = sig_metrics_create(1);
        for (i = 0; i != sizeof(bounds) / sizeof(bounds[0]); ++i) {
            sig_metrics_count_dial(sig_metrics_thread(m, 0), 1, bounds[i]);
            sig_metrics_count_dial(sig_metrics_thread(m, 0), 1, bounds[i] + 1);
        }
        sig_metrics_sum(m, &f);
        is_int(f.dial_buckets[0], 1, "le=0.0005 holds exactly 0.0005");
        for (i = 1; i != SIG_METRICS_NUM_DIAL_BUCKETS - 1; ++i)
            good &= f.dial_buckets[i] == 2;
        ok(good, "each next bucket holds the previous bound + 1 ns and its own bound");
        is_int(f.dial_buckets[SIG_METRICS_NUM_DIAL_BUCKETS - 1], 1, "+Inf holds 5 s + 1 ns");
        sig_metrics_destroy(m);
    }
}

static const char expected_text[] =
    "# HELP h2o_signaling_connections Open WebSocket connections of the route.\n"
    "# TYPE h2o_signaling_connections gauge\n"
    "h2o_signaling_connections{route=\"default/WsService\"} 4\n"
    "# HELP h2o_signaling_users User ids with at least one registered connection on this node.\n"
    "# TYPE h2o_signaling_users gauge\n"
    "h2o_signaling_users{route=\"default/WsService\"} 2\n"
    "# HELP h2o_signaling_messages_received_total Messages received, by type (invalid: not decodable; rate-limited messages are not read).\n"
    "# TYPE h2o_signaling_messages_received_total counter\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"create_connect\"} 3\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"dialing\"} 0\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"call\"} 0\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"call_ringing\"} 0\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"call_accept\"} 0\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"call_reject\"} 0\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"call_hangup\"} 0\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"call_signal\"} 7\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"call_resume\"} 0\n"
    "h2o_signaling_messages_received_total{route=\"default/WsService\",type=\"invalid\"} 2\n"
    "# HELP h2o_signaling_dials_total Dialings by answer (rate_limited: messages the rate limit refused unread).\n"
    "# TYPE h2o_signaling_dials_total counter\n"
    "h2o_signaling_dials_total{route=\"default/WsService\",result=\"delivered\"} 1\n"
    "h2o_signaling_dials_total{route=\"default/WsService\",result=\"peer_offline\"} 1\n"
    "h2o_signaling_dials_total{route=\"default/WsService\",result=\"peer_gone\"} 0\n"
    "h2o_signaling_dials_total{route=\"default/WsService\",result=\"cluster_unavailable\"} 1\n"
    "h2o_signaling_dials_total{route=\"default/WsService\",result=\"not_registered\"} 0\n"
    "h2o_signaling_dials_total{route=\"default/WsService\",result=\"identity_mismatch\"} 0\n"
    "h2o_signaling_dials_total{route=\"default/WsService\",result=\"rate_limited\"} 1\n"
    "# HELP h2o_signaling_called_sent_total called pushes queued to connections of this node.\n"
    "# TYPE h2o_signaling_called_sent_total counter\n"
    "h2o_signaling_called_sent_total{route=\"default/WsService\"} 2\n"
    "# HELP h2o_signaling_closes_total Connections ended, by close code (1006: dropped without a close frame; other: 3000-4999).\n"
    "# TYPE h2o_signaling_closes_total counter\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1000\"} 1\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1001\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1002\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1003\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1005\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1006\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1007\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1008\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1009\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1010\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"1011\"} 0\n"
    "h2o_signaling_closes_total{route=\"default/WsService\",code=\"other\"} 1\n"
    "# HELP h2o_signaling_dial_duration_seconds Time from reading a dialing to knowing its answer (every node and thread involved answered).\n"
    "# TYPE h2o_signaling_dial_duration_seconds histogram\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.0005\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.001\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.0025\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.005\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.01\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.025\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.05\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.1\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.25\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"0.5\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"1\"} 2\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"2.5\"} 3\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"5\"} 3\n"
    "h2o_signaling_dial_duration_seconds_bucket{route=\"default/WsService\",le=\"+Inf\"} 4\n"
    "h2o_signaling_dial_duration_seconds_sum{route=\"default/WsService\"} 7.1009\n"
    "h2o_signaling_dial_duration_seconds_count{route=\"default/WsService\"} 4\n"
    "# HELP h2o_signaling_calls Level-2 calls live now, by state.\n"
    "# TYPE h2o_signaling_calls gauge\n"
    "h2o_signaling_calls{route=\"default/WsService\",state=\"ringing\"} 1\n"
    "h2o_signaling_calls{route=\"default/WsService\",state=\"active\"} 2\n"
    "# HELP h2o_signaling_calls_started_total Level-2 calls placed (rang, or ended at once: busy, offline, shutdown).\n"
    "# TYPE h2o_signaling_calls_started_total counter\n"
    "h2o_signaling_calls_started_total{route=\"default/WsService\"} 9\n"
    "# HELP h2o_signaling_calls_answered_total Level-2 calls answered (accepted, or joined by glare).\n"
    "# TYPE h2o_signaling_calls_answered_total counter\n"
    "h2o_signaling_calls_answered_total{route=\"default/WsService\"} 4\n"
    "# HELP h2o_signaling_calls_ended_total Level-2 calls ended, by the reason their caller was given.\n"
    "# TYPE h2o_signaling_calls_ended_total counter\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"cancelled\"} 0\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"rejected\"} 0\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"busy\"} 2\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"no_answer\"} 0\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"offline\"} 0\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"answered_elsewhere\"} 0\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"rejected_elsewhere\"} 0\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"hangup\"} 3\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"peer_gone\"} 0\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"replaced\"} 0\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"max_duration\"} 0\n"
    "h2o_signaling_calls_ended_total{route=\"default/WsService\",reason=\"shutdown\"} 0\n"
    "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
    "# TYPE process_resident_memory_bytes gauge\n"
    "process_resident_memory_bytes 123456\n"
    "# HELP process_open_fds Number of open file descriptors.\n"
    "# TYPE process_open_fds gauge\n"
    "process_open_fds 17\n"
    "# HELP process_max_fds Maximum number of open file descriptors.\n"
    "# TYPE process_max_fds gauge\n"
    "process_max_fds 1024\n"
    "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
    "# TYPE process_cpu_seconds_total counter\n"
    "process_cpu_seconds_total 2.5\n"
;

static void test_prometheus(void)
{
    sig_metrics_figures_t f[2];
    sig_metrics_process_t p = {123456, 17, 1024, 2500000000ull};
    sig_metrics_t *m = scenario(&f[0]);
    sig_buf_t out = SIG_BUF_INIT;
    const char *text;

    sig_metrics_render_prometheus(&out, f, 1, &p);
    is_str(text_of(&out), expected_text, "the exposition text of one route, exactly");
    ok(strstr(text_of(&out), "backplane") == NULL, "no backplane families without signaling.redis");

    /* a second route with a backplane, and a name that needs escaping */
    memset(&f[1], 0, sizeof(f[1]));
    f[1].route = SIG_STRLIT("a\"b\\c\n/x");
    f[1].has_backplane = 1;
    f[1].backplane_up = 1;
    f[1].backplane_reconnects = 4;
    sig_buf_reset(&out);
    sig_metrics_render_prometheus(&out, f, 2, &p);
    text = text_of(&out);
    ok(strncmp(text, "# HELP h2o_signaling_connections Open WebSocket connections of the route.\n"
                     "# TYPE h2o_signaling_connections gauge\n"
                     "h2o_signaling_connections{route=\"default/WsService\"} 4\n"
                     "h2o_signaling_connections{route=\"a\\\"b\\\\c\\n/x\"} 0\n"
                     "# HELP h2o_signaling_users ",
               strlen("# HELP h2o_signaling_connections Open WebSocket connections of the route.\n"
                      "# TYPE h2o_signaling_connections gauge\n"
                      "h2o_signaling_connections{route=\"default/WsService\"} 4\n"
                      "h2o_signaling_connections{route=\"a\\\"b\\\\c\\n/x\"} 0\n"
                      "# HELP h2o_signaling_users ")) == 0,
       "one family's series of every route together, the label escaped (\\\", \\\\, \\n)");
    ok(strstr(text, "# HELP h2o_signaling_backplane_up 1 when the subscribing connection of every Redis shard is up.\n"
                    "# TYPE h2o_signaling_backplane_up gauge\n"
                    "h2o_signaling_backplane_up{route=\"a\\\"b\\\\c\\n/x\"} 1\n"
                    "# HELP h2o_signaling_backplane_reconnects_total Times a Redis shard's subscribing connection came back after it was lost.\n"
                    "# TYPE h2o_signaling_backplane_reconnects_total counter\n"
                    "h2o_signaling_backplane_reconnects_total{route=\"a\\\"b\\\\c\\n/x\"} 4\n"
                    "# HELP process_resident_memory_bytes ") != NULL,
       "the backplane families list only the routes that have one, before the process's");
    ok(strstr(text, "h2o_signaling_dial_duration_seconds_count{route=\"default/WsService\"} 4\n"
                    "h2o_signaling_dial_duration_seconds_bucket{route=\"a\\\"b\\\\c\\n/x\",le=\"0.0005\"} 0\n") != NULL,
       "the histogram's series follow each other route by route");

    /* no route at all: the families are still described, and the process figures are there */
    sig_buf_reset(&out);
    sig_metrics_render_prometheus(&out, f, 0, &p);
    text = text_of(&out);
    ok(strstr(text, "# TYPE h2o_signaling_dials_total counter\n# HELP h2o_signaling_called_sent_total") != NULL,
       "no route: HELP and TYPE without samples");
    ok(strstr(text, "process_open_fds 17\n") != NULL, "no route: the process figures");

    /* seconds: exact decimals in their shortest form */
    f[0].dial_ns_sum = 2000;
    p.cpu_ns = 12000000000ull;
    sig_buf_reset(&out);
    sig_metrics_render_prometheus(&out, f, 1, &p);
    text = text_of(&out);
    ok(strstr(text, "_sum{route=\"default/WsService\"} 0.000002\n") != NULL, "2000 ns is 0.000002");
    ok(strstr(text, "process_cpu_seconds_total 12\n") != NULL, "12 s is 12");
    f[0].dial_ns_sum = 1;
    sig_buf_reset(&out);
    sig_metrics_render_prometheus(&out, f, 1, &p);
    ok(strstr(text_of(&out), "_sum{route=\"default/WsService\"} 0.000000001\n") != NULL, "1 ns is 0.000000001");

    sig_buf_dispose(&out);
    sig_metrics_destroy(m);
}

static void test_json(void)
{
    sig_metrics_figures_t f[2];
    sig_metrics_process_t p = {123456, 17, 1024, 2500000000ull};
    sig_metrics_t *m = scenario(&f[0]);
    sig_buf_t out = SIG_BUF_INIT, doc = SIG_BUF_INIT;
    char errbuf[256];
    yajl_val tree;
    const char *path_count[] = {"signaling", "routes", NULL};

    sig_metrics_render_json(&out, f, 1, &p);
    is_str(text_of(&out),
           ",\n \"signaling\": {\n  \"routes\": [\n"
           "   {\"route\": \"default/WsService\", \"connections\": 4, \"users\": 2, "
           "\"messages_received\": {\"create_connect\": 3, \"dialing\": 0, \"call\": 0, \"call_ringing\": 0, \"call_accept\": 0, "
           "\"call_reject\": 0, \"call_hangup\": 0, \"call_signal\": 7, \"call_resume\": 0, \"invalid\": 2}, "
           "\"dials\": {\"delivered\": 1, \"peer_offline\": 1, \"peer_gone\": 0, \"cluster_unavailable\": 1, \"not_registered\": 0, "
           "\"identity_mismatch\": 0, \"rate_limited\": 1}, \"called_sent\": 2, "
           "\"closes\": {\"1000\": 1, \"1001\": 0, \"1002\": 0, \"1003\": 0, \"1005\": 0, \"1006\": 0, \"1007\": 0, \"1008\": 0, "
           "\"1009\": 0, \"1010\": 0, \"1011\": 0, \"other\": 1}, "
           "\"dial_duration_seconds\": {\"buckets\": {\"0.0005\": 2, \"0.001\": 2, \"0.0025\": 2, \"0.005\": 2, \"0.01\": 2, "
           "\"0.025\": 2, \"0.05\": 2, \"0.1\": 2, \"0.25\": 2, \"0.5\": 2, \"1\": 2, \"2.5\": 3, \"5\": 3, \"+Inf\": 4}, "
           "\"sum\": 7.1009, \"count\": 4}, "
           "\"calls\": {\"ringing\": 1, \"active\": 2, \"started\": 9, \"answered\": 4, \"ended\": {\"cancelled\": 0, "
           "\"rejected\": 0, \"busy\": 2, \"no_answer\": 0, \"offline\": 0, \"answered_elsewhere\": 0, \"rejected_elsewhere\": 0, "
           "\"hangup\": 3, \"peer_gone\": 0, \"replaced\": 0, \"max_duration\": 0, \"shutdown\": 0}}}\n"
           "  ],\n"
           "  \"process\": {\"resident_memory_bytes\": 123456, \"open_fds\": 17, \"max_fds\": 1024, \"cpu_seconds\": 2.5}\n"
           " }",
           "the status section of one route, exactly");

    /* two routes (one with a backplane and a name to escape), as h2o joins it: valid JSON */
    memset(&f[1], 0, sizeof(f[1]));
    f[1].route = SIG_STRLIT("a\"b\\c\n/x");
    f[1].has_backplane = 1;
    f[1].backplane_reconnects = 4;
    sig_buf_reset(&out);
    sig_metrics_render_json(&out, f, 2, &p);
    sig_buf_append(&doc, "{\"other\": 1", 11);
    sig_buf_append(&doc, out.base, out.len);
    sig_buf_append(&doc, "\n}", 3); /* with the NUL */
    tree = yajl_tree_parse(doc.base, errbuf, sizeof(errbuf));
    ok(tree != NULL, "two routes after another section: valid JSON (%s)", tree == NULL ? errbuf : "ok");
    if (tree != NULL) {
        yajl_val routes = yajl_tree_get(tree, path_count, yajl_t_array);
        ok(routes != NULL && YAJL_GET_ARRAY(routes)->len == 2, "signaling.routes has both routes");
        if (routes != NULL && YAJL_GET_ARRAY(routes)->len == 2) {
            const char *name_path[] = {"route", NULL}, *up_path[] = {"backplane", "up", NULL};
            yajl_val second = YAJL_GET_ARRAY(routes)->values[1];
            yajl_val name = yajl_tree_get(second, name_path, yajl_t_string);
            yajl_val up = yajl_tree_get(second, up_path, yajl_t_number);
            is_str(name != NULL ? YAJL_GET_STRING(name) : NULL, "a\"b\\c\n/x", "the route's name comes back unescaped");
            ok(up != NULL && YAJL_GET_INTEGER(up) == 0, "backplane.up 0");
            ok(yajl_tree_get(YAJL_GET_ARRAY(routes)->values[0], up_path, yajl_t_number) == NULL,
               "no backplane member without one");
        }
        yajl_tree_free(tree);
    }
    sig_buf_reset(&out);
    sig_metrics_render_json(&out, f, 0, &p);
    is_str(text_of(&out),
           ",\n \"signaling\": {\n  \"routes\": [],\n"
           "  \"process\": {\"resident_memory_bytes\": 123456, \"open_fds\": 17, \"max_fds\": 1024, \"cpu_seconds\": 2.5}\n }",
           "no route: an empty list");
    sig_buf_dispose(&out);
    sig_buf_dispose(&doc);
    sig_metrics_destroy(m);
}

/* Writers on 4 threads, each on its own block, while a reader sums: no count is lost, and no sum goes back. */
#define WRITES 200000
struct st_writer_t {
    sig_metrics_t *m;
    size_t index;
};

static _Atomic int writers_done;

static void *writer(void *arg)
{
    struct st_writer_t *w = arg;
    sig_metrics_thread_t *block = sig_metrics_thread(w->m, w->index);
    int i;
    for (i = 0; i != WRITES; ++i) {
        sig_counter_add(&block->messages[SIG_METRICS_MSG_DIALING], 1);
        sig_metrics_count_dial(block, 1, (uint64_t)(i % 7) * 400000);
        sig_counter_add(&block->connections, 1);
        sig_counter_sub(&block->connections, 1);
    }
    atomic_fetch_add(&writers_done, 1);
    return NULL;
}

static void test_threads(void)
{
    sig_metrics_t *m = sig_metrics_create(4);
    struct st_writer_t w[4];
    pthread_t tid[4];
    sig_metrics_figures_t f;
    uint64_t last = 0, count;
    int monotonic = 1, sums = 0, gauge_ok = 1;
    size_t i;

    for (i = 0; i != 4; ++i) {
        w[i].m = m;
        w[i].index = i;
        pthread_create(&tid[i], NULL, writer, &w[i]);
    }
    while (atomic_load(&writers_done) != 4) {
        sig_metrics_sum(m, &f);
        monotonic &= f.messages[SIG_METRICS_MSG_DIALING] >= last;
        gauge_ok &= f.connections <= 4; /* each writer holds at most one at a time */
        last = f.messages[SIG_METRICS_MSG_DIALING];
        ++sums;
    }
    for (i = 0; i != 4; ++i)
        pthread_join(tid[i], NULL);
    sig_metrics_sum(m, &f);
    ok(monotonic, "no sum went back while 4 threads counted (%d sums)", sums);
    ok(gauge_ok, "the gauge stayed within what was open");
    is_int(f.messages[SIG_METRICS_MSG_DIALING], 4 * WRITES, "every message counted once");
    is_int(f.dials[SIG_METRICS_DIAL_DELIVERED], 4 * WRITES, "every dial counted once");
    for (count = 0, i = 0; i != SIG_METRICS_NUM_DIAL_BUCKETS; ++i)
        count += f.dial_buckets[i];
    is_int(count, 4 * WRITES, "histogram count = dials");
    is_int(f.connections, 0, "the gauge is back to 0");
    sig_metrics_destroy(m);
}

int main(void)
{
    test_blocks();
    test_labels();
    test_sum();
    test_prometheus();
    test_json();
    test_threads();
    return done_testing();
}
