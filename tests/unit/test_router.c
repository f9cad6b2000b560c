/*
 * test_router.c: the router's answers on one thread, with a scripted local delivery: who is
 * offline (no connection), gone (every connection refused the message) or reached, and how many.
 * Cross-thread delivery runs in tests/integration/signaling-threads.test.mjs.
 */
#include <string.h>
#include "route/sig_router.h"
#include "tap.h"

static int deliver_ok[16];  /* per conn_id: does the connection take messages? */
static int delivered_to[16];
static char last_payload[64];

static int deliver(uint64_t conn_id, const char *payload, size_t len)
{
    if (!deliver_ok[conn_id])
        return 0;
    ++delivered_to[conn_id];
    snprintf(last_payload, sizeof(last_payload), "%.*s", (int)len, payload);
    return 1;
}

static void on_result(const void *cookie, size_t cookie_len, int result)
{
    ok(0, "no dial on one thread is answered later");
}

static void on_bound(uint64_t conn_id)
{
    ok(0, "no bind without a backplane is acknowledged later");
}

static sig_endpoint_t ep(uint64_t conn_id)
{
    sig_endpoint_t e = {.conn_id = conn_id};
    return e;
}

int main(void)
{
    sig_router_t *router;
    sig_binding_t *a = NULL, *b1 = NULL, *b2 = NULL, *c = NULL;

    sig_router_global_init(1, deliver, on_result, on_bound);
    router = sig_router_create(2, 0, NULL, SIG_STRLIT("default/WsService"));

    is_int(sig_router_dial(router, SIG_STRLIT("2211"), "x", 1, NULL, 0), SIG_ERR_PEER_OFFLINE, "nobody registered: peer_offline");

    is_int(sig_router_bind(router, SIG_STRLIT("1122"), ep(1), &a), 0, "1122 binds");
    is_int(sig_router_bind(router, SIG_STRLIT("2211"), ep(2), &b1), 0, "2211 binds its phone");
    is_int(sig_router_bind(router, SIG_STRLIT("2211"), ep(3), &b2), 0, "2211 binds its browser");
    is_int(sig_router_bind(router, SIG_STRLIT("2211"), ep(4), &c), SIG_ERR_TOO_MANY_CONNECTIONS, "a third device is refused");

    deliver_ok[2] = deliver_ok[3] = 1;
    is_int(sig_router_dial(router, SIG_STRLIT("2211"), "hello", 5, NULL, 0), 2, "both devices take it");
    ok(delivered_to[2] == 1 && delivered_to[3] == 1, "each device got it once");
    is_str(last_payload, "hello", "the payload arrives as given");

    deliver_ok[2] = 0;
    is_int(sig_router_dial(router, SIG_STRLIT("2211"), "x", 1, NULL, 0), 1, "one device closing: delivered 1");
    deliver_ok[3] = 0;
    is_int(sig_router_dial(router, SIG_STRLIT("2211"), "x", 1, NULL, 0), SIG_ERR_PEER_GONE,
           "every device gone or closing: peer_gone");

    sig_router_unbind(router, &b1);
    sig_router_unbind(router, &b2);
    ok(b1 == NULL && b2 == NULL, "unbind clears the handles");
    is_int(sig_router_dial(router, SIG_STRLIT("2211"), "x", 1, NULL, 0), SIG_ERR_PEER_OFFLINE, "after both closed: peer_offline");
    sig_router_unbind(router, &b1); /* the close path calls it unconditionally */

    is_int(sig_router_bind(router, SIG_STRLIT("9"), ep(1), &a), 0, "1122 moves to 9");
    deliver_ok[1] = 1;
    is_int(sig_router_dial(router, SIG_STRLIT("1122"), "x", 1, NULL, 0), SIG_ERR_PEER_OFFLINE, "the old id is offline");
    is_int(sig_router_dial(router, SIG_STRLIT("9"), "x", 1, NULL, 0), 1, "the new id is reached");
    sig_router_unbind(router, &a);

    sig_router_destroy(router);

    /* connections per client address: the same registry, keyed by address */
    router = sig_router_create(8, 2, NULL, SIG_STRLIT("default/WsService"));
    {
        sig_binding_t *x1 = NULL, *x2 = NULL, *x3 = NULL, *y = NULL;
        is_int(sig_router_bind_address(router, SIG_STRLIT("127.0.0.1"), ep(1), &x1), 0, "first connection from an address");
        is_int(sig_router_bind_address(router, SIG_STRLIT("127.0.0.1"), ep(2), &x2), 0, "second");
        is_int(sig_router_bind_address(router, SIG_STRLIT("127.0.0.1"), ep(3), &x3), SIG_ERR_TOO_MANY_CONNECTIONS,
               "third from the same address refused");
        is_int(sig_router_bind_address(router, SIG_STRLIT("::1"), ep(4), &y), 0, "another address is counted apart");
        sig_router_unbind_address(router, &x1);
        is_int(sig_router_bind_address(router, SIG_STRLIT("127.0.0.1"), ep(3), &x3), 0, "a slot freed by a close is reused");
        is_int(sig_router_dial(router, SIG_STRLIT("127.0.0.1"), "x", 1, NULL, 0), SIG_ERR_PEER_OFFLINE,
               "addresses are not users");
        sig_router_unbind_address(router, &x2);
        sig_router_unbind_address(router, &x3);
        sig_router_unbind_address(router, &y);
    }
    sig_router_destroy(router);
    router = sig_router_create(8, 0, NULL, SIG_STRLIT("default/WsService"));
    {
        sig_binding_t *z = NULL;
        size_t i;
        int fails = 0;
        for (i = 0; i != 100; ++i)
            fails += sig_router_bind_address(router, SIG_STRLIT("10.0.0.1"), ep(1), &z) != 0;
        is_int(fails, 0, "no cap: every connection is admitted");
        ok(z == NULL, "... and nothing is counted");
    }
    sig_router_destroy(router);
    router = sig_router_create(8, 0, NULL, SIG_STRLIT("default/WsService"));
    {
        /* levels: a lookup says which connections are level-2 devices */
        sig_binding_t *p = NULL, *q = NULL, *q2 = NULL, *r = NULL;
        sig_endpoint_t eps[4];
        int levels[4];
        is_int(sig_router_bind_level2(router, SIG_STRLIT("2211"), ep(2), &q2), 0, "the phone is level 2 first ...");
        is_int(sig_router_bind(router, SIG_STRLIT("2211"), ep(2), &q), 0, "... then bound");
        is_int(sig_router_bind(router, SIG_STRLIT("2211"), ep(3), &p), 0, "a level-1 browser");
        is_int(sig_router_bind(router, SIG_STRLIT("1122"), ep(4), &r), 0, "another user");
        is_int((int)sig_router_lookup_devices(router, SIG_STRLIT("2211"), eps, levels, 4), 2, "2211 has two connections");
        ok((eps[0].conn_id == 2 && levels[0] == 2 && eps[1].conn_id == 3 && levels[1] == 1) ||
               (eps[0].conn_id == 3 && levels[0] == 1 && eps[1].conn_id == 2 && levels[1] == 2),
           "... the phone level 2, the browser level 1");
        is_int((int)sig_router_lookup_devices(router, SIG_STRLIT("2211"), eps, levels, 1), 2, "a short array: the count still");
        is_int((int)sig_router_lookup_devices(router, SIG_STRLIT("9"), eps, levels, 4), 0, "nobody");
        sig_router_unbind(router, &q);
        sig_router_unbind_level2(router, &q2);
        ok(q2 == NULL, "unbound");
        sig_router_unbind_level2(router, &q2); /* safe twice */
        is_int((int)sig_router_lookup_devices(router, SIG_STRLIT("2211"), eps, levels, 4), 1, "the browser is left");
        is_int(levels[0], 1, "... level 1");
        sig_router_unbind(router, &p);
        sig_router_unbind(router, &r);
    }
    sig_router_destroy(router);
    sig_router_global_dispose();
    return done_testing();
}
