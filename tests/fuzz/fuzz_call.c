/*
 * fuzz_call.c: the level-2 call state machine (handler/core/sig_call.h) driven by bytes: each input is a script of
 * events (connect / lose a device, a request of any type with any field from a small alphabet, time passing) on 3
 * users x 3 devices of one owner. Checks beyond "no crash, no leak, no undefined behaviour": every request gets
 * exactly one response, first and to the requester; nothing goes to a connection that is not alive; a level-1
 * connection gets only `called`; the user_active outputs agree with sig_call_user_active(); no deadline is left in the
 * past after sig_call_on_time(); after shutdown and the tombstones' expiry nothing is left. (tests/unit/test_call.c
 * checks the finer invariants on random scripts.)
 * Build: clang -fsanitize=fuzzer,address,undefined -Ihandler -Itests/fuzz tests/fuzz/fuzz_call.c
 *        handler/core/sig_call.c handler/core/sig_call_store.c handler/common/sig_common.c
 */
#include <stdint.h>
#include <string.h>
#include "core/sig_call.h"
#include "fuzz_check.h"

enum { NU = 3, ND = 3 };

static struct {
    int alive;
    uint64_t conn;
} devs[NU][ND];
static long active[NU];
static const sig_call_request_t *cur;
static int responses, outputs;
static uint64_t next_conn;

static const char *const users[NU] = {"u0", "u1", "u2"};
static const char *const dids[ND] = {"d0", "d1", ""};
static const char *const ids[] = {"a", "b", "zz", "", "bad id", "k_0"};

static int alive_conn(uint64_t conn, int *level)
{
    int u, d;
    for (u = 0; u != NU; ++u)
        for (d = 0; d != ND; ++d)
            if (devs[u][d].alive && devs[u][d].conn == conn) {
                *level = d == 2 ? 1 : 2; /* device 2 of each user is a level-1 connection */
                return 1;
            }
    return 0;
}

static void emit(void *ctx, const sig_call_out_t *out)
{
    int level = 0;
    (void)ctx;
    if (out->type == SIG_CALL_OUT_USER_ACTIVE) {
        int u = out->user_id.len == 2 ? out->user_id.base[1] - '0' : -1;
        FUZZ_CHECK(u >= 0 && u < NU, "user_active for a known user");
        active[u] += out->active_delta;
        FUZZ_CHECK(active[u] >= 0, "user_active never below 0");
        return;
    }
    ++outputs;
    FUZZ_CHECK(alive_conn(out->to.conn_id, &level), "output to an alive connection");
    FUZZ_CHECK(level == 2 || out->type == SIG_CALL_OUT_CALLED || out->type == SIG_CALL_OUT_RESPONSE,
               "a level-1 connection gets only `called` (and answers)");
    if (out->type == SIG_CALL_OUT_RESPONSE) {
        FUZZ_CHECK(cur != NULL && outputs == 1 && sig_endpoint_eq(out->to, cur->from.ep), "the response first, to the requester");
        ++responses;
    }
}

static sig_call_device_t dev(int u, int d)
{
    sig_call_device_t x;
    x.ep = (sig_endpoint_t){.thread = 0, .conn_id = devs[u][d].conn}; /* node 0 (this node), not stack garbage */
    x.user_id = sig_str_cstr(users[u]);
    x.device_id = sig_str_cstr(dids[d]);
    x.level = d == 2 ? 1 : 2;
    return x;
}

static uint64_t rnd_state;

static void fixed_random(void *ctx, void *buf, size_t len)
{
    unsigned char *p = buf;
    (void)ctx;
    while (len--) {
        rnd_state = rnd_state * 6364136223846793005ULL + 1442695040888963407ULL;
        *p++ = (unsigned char)(rnd_state >> 56);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sig_call_settings_t s;
    sig_call_owner_t *o;
    sig_call_stats_t st;
    uint64_t now = 1000;
    size_t i = 0;
    int u, d;
    char big[300];

    memset(devs, 0, sizeof(devs));
    memset(active, 0, sizeof(active));
    memset(big, 'x', sizeof(big));
    next_conn = 1;
    rnd_state = 1;
    sig_call_settings_default(&s);
    s.ring_timeout_ms = 500;
    s.reconnect_grace_ms = 300;
    s.tombstone_ms = 400;
    s.max_per_user = 2;
    s.signal_buffer = 3;
    s.signal_buffer_bytes = 512;
    s.max_signal_size = 256;
    s.signal_burst = 4;
    if (size != 0) {
        s.max_duration_ms = data[0] & 1 ? 1000 : 0;
        s.when_busy = data[0] & 2 ? SIG_CALL_WHEN_BUSY_RING : SIG_CALL_WHEN_BUSY_BUSY;
        s.reconnect_grace_ms = data[0] & 4 ? 0 : 300;
        i = 1;
    }
    s.random = fixed_random; /* reproducible: the generated callIds decide same-millisecond glare */
    o = sig_call_owner_create(&s, (sig_call_sink_t){emit, NULL});

    while (i + 2 <= size) {
        uint8_t op = data[i], arg = data[i + 1];
        i += 2;
        u = (arg >> 4) % NU;
        d = (arg >> 2) % ND;
        switch (op % 8) {
        case 0: /* connect */
            if (!devs[u][d].alive) {
                sig_call_device_t x;
                devs[u][d].alive = 1;
                devs[u][d].conn = next_conn++;
                x = dev(u, d);
                sig_call_device_registered(o, now, &x);
            }
            break;
        case 1: /* lose */
            if (devs[u][d].alive) {
                sig_call_device_t x = dev(u, d);
                devs[u][d].alive = 0;
                sig_call_device_lost(o, now, &x, arg & 1);
            }
            break;
        case 2: /* time */
            now += (uint64_t)arg * (op & 0x80 ? 10 : 1);
            sig_call_on_time(o, now);
            FUZZ_CHECK(sig_call_next_deadline(o) > now, "no deadline left in the past");
            break;
        default: { /* a request */
            sig_call_request_t q;
            sig_call_device_t callee[ND];
            size_t n = 0;
            int v = (op >> 3) % NU, k;
            if (!devs[u][d].alive)
                break;
            memset(&q, 0, sizeof(q));
            q.type = (sig_call_req_type_t)(1 + (op >> 5) % 7);
            q.from = dev(u, d);
            q.call_id = sig_str_cstr(ids[arg % 6]);
            q.receiver_user_id = sig_str_cstr(users[v]);
            q.media = arg & 2 ? SIG_STRLIT("audio") : SIG_STRLIT("video");
            q.reason = arg & 1 ? SIG_STRLIT("busy") : SIG_STRLIT("");
            q.kind = SIG_STRLIT("candidate");
            q.data = sig_str(big, (size_t)(arg & 3) * 100);
            for (k = 0; k != ND; ++k)
                if (devs[v][k].alive)
                    callee[n++] = dev(v, k);
            q.callee_devices = callee;
            q.num_callee_devices = n;
            q.callee_busy = active[v] > 0 && (op & 1);
            cur = &q;
            outputs = responses = 0;
            sig_call_handle(o, now, &q);
            FUZZ_CHECK(responses == 1, "exactly one response per request");
            cur = NULL;
        }
        }
        for (u = 0; u != NU; ++u)
            FUZZ_CHECK((size_t)active[u] == sig_call_user_active(o, sig_str_cstr(users[u])), "user_active agrees");
    }
    sig_call_shutdown(o, now);
    sig_call_stats(o, &st);
    FUZZ_CHECK(st.live == 0 && st.users == 0 && st.buffered_signals == 0 && st.buffered_bytes == 0, "nothing live after shutdown");
    sig_call_on_time(o, now + 1000);
    sig_call_stats(o, &st);
    FUZZ_CHECK(st.tombstones == 0 && sig_call_next_deadline(o) == SIG_CALL_NEVER, "tombstones expire");
    sig_call_owner_destroy(o);
    return 0;
}
