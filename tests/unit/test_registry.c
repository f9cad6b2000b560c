/*
 * test_registry.c: unit tests of handler/core/sig_registry.c (TAP).
 */
#include <stdio.h>
#include <string.h>
#include "core/sig_registry.h"
#include "tap.h"

static const uint8_t test_key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static sig_endpoint_t ep(uint32_t thread, uint64_t conn_id)
{
    return (sig_endpoint_t){.thread = thread, .conn_id = conn_id};
}

/* the id a binding holds, as a NUL-terminated copy for is_str() */
static const char *id_of(const sig_binding_t *b)
{
    static char s[SIG_USER_ID_MAX + 1];
    sig_str_t id = sig_binding_user_id(b);
    memcpy(s, id.base, id.len);
    s[id.len] = '\0';
    return s;
}

static void test_bind_lookup_unbind(void)
{
    sig_registry_t *reg = sig_registry_create(4);
    sig_binding_t *a = NULL, *b = NULL;
    sig_endpoint_t out[4];

    is_int(sig_registry_num_users(reg), 0, "fresh registry has no users");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("1122"), out, 4), 0, "unknown user is offline");

    is_int(sig_registry_bind(reg, SIG_STRLIT("1122"), ep(0, 7), &a), 0, "bind 1122");
    ok(a != NULL, "bind sets the handle");
    is_str(id_of(a), "1122", "binding knows its identity");
    ok(sig_endpoint_eq(sig_binding_endpoint(a), ep(0, 7)), "binding knows its endpoint");
    is_int(sig_registry_bind(reg, SIG_STRLIT("2211"), ep(1, 9), &b), 0, "bind 2211");
    is_int(sig_registry_num_users(reg), 2, "two users");
    is_int(sig_registry_num_bindings(reg), 2, "two bindings");

    memset(out, 0, sizeof(out));
    is_int(sig_registry_lookup(reg, SIG_STRLIT("1122"), out, 4), 1, "1122 has one connection");
    ok(sig_endpoint_eq(out[0], ep(0, 7)), "and it is (0,7)");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("2211"), out, 4), 1, "2211 has one connection");
    ok(sig_endpoint_eq(out[0], ep(1, 9)), "and it is (1,9)");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("112"), out, 4), 0, "a prefix of an id is another id");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("11220"), out, 4), 0, "so is an extension");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("1122"), NULL, 0), 1, "lookup can just count");

    is_int(sig_registry_bind(reg, SIG_STRLIT("1122"), ep(0, 7), &a), 0, "binding the same id again succeeds");
    is_int(sig_registry_num_bindings(reg), 2, "and adds nothing");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("1122"), out, 4), 1, "1122 still has one connection");

    sig_registry_unbind(reg, &a);
    ok(a == NULL, "unbind clears the handle");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("1122"), out, 4), 0, "1122 is offline after unbind");
    is_int(sig_registry_num_users(reg), 1, "the user entry went with its last connection");
    is_int(sig_registry_num_bindings(reg), 1, "one binding left");
    sig_registry_unbind(reg, &a);
    ok(a == NULL, "unbind of an unbound handle is a no-op");
    is_int(sig_registry_num_bindings(reg), 1, "and changes nothing");

    sig_registry_destroy(reg);
}

static void test_multi_device(void)
{
    sig_registry_t *reg = sig_registry_create_seeded(3, test_key);
    sig_binding_t *b[4] = {NULL, NULL, NULL, NULL};
    sig_endpoint_t out[4];
    size_t i;

    for (i = 0; i != 3; ++i)
        is_int(sig_registry_bind(reg, SIG_STRLIT("u"), ep((uint32_t)i, 100 + i), &b[i]), 0, "bind device %zu", i);
    is_int(sig_registry_num_users(reg), 1, "three devices are one user");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("u"), out, 4), 3, "lookup counts three");
    for (i = 0; i != 3; ++i)
        ok(sig_endpoint_eq(out[i], ep((uint32_t)i, 100 + i)), "device %zu in bind order", i);
    is_int(sig_registry_lookup(reg, SIG_STRLIT("u"), out, 2), 3, "a short out array still gets the total");

    /* cap: the fourth device is refused, the first three stay */
    is_int(sig_registry_bind(reg, SIG_STRLIT("u"), ep(9, 9), &b[3]), SIG_ERR_TOO_MANY_CONNECTIONS, "fourth device refused");
    ok(b[3] == NULL, "the refused connection stays unbound");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("u"), out, 4), 3, "existing devices untouched");
    ok(sig_endpoint_eq(out[0], ep(0, 100)), "oldest device still first");
    is_int(sig_registry_num_bindings(reg), 3, "binding count unchanged by the refusal");

    /* removing the middle one keeps the order of the others (doubly linked unlink) */
    sig_registry_unbind(reg, &b[1]);
    is_int(sig_registry_lookup(reg, SIG_STRLIT("u"), out, 4), 2, "two devices after the middle one left");
    ok(sig_endpoint_eq(out[0], ep(0, 100)) && sig_endpoint_eq(out[1], ep(2, 102)), "order kept after unlinking the middle");
    is_int(sig_registry_bind(reg, SIG_STRLIT("u"), ep(9, 9), &b[3]), 0, "a free slot takes a new device");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("u"), out, 4), 3, "three again");
    ok(sig_endpoint_eq(out[2], ep(9, 9)), "the new device is last");

    /* removing head and tail */
    sig_registry_unbind(reg, &b[0]);
    sig_registry_unbind(reg, &b[3]);
    is_int(sig_registry_lookup(reg, SIG_STRLIT("u"), out, 4), 1, "one device after head and tail left");
    ok(sig_endpoint_eq(out[0], ep(2, 102)), "the middle one remains");
    sig_registry_unbind(reg, &b[2]);
    is_int(sig_registry_num_users(reg), 0, "no users left");
    is_int(sig_registry_num_bindings(reg), 0, "no bindings left");

    sig_registry_destroy(reg);
}

static void test_move(void)
{
    sig_registry_t *reg = sig_registry_create_seeded(1, test_key);
    sig_binding_t *x = NULL, *y = NULL;
    sig_endpoint_t out[2];

    is_int(sig_registry_bind(reg, SIG_STRLIT("alice"), ep(0, 1), &x), 0, "x is alice");
    is_int(sig_registry_bind(reg, SIG_STRLIT("bob"), ep(0, 1), &x), 0, "x moves to bob");
    is_str(id_of(x), "bob", "x's identity is bob");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("alice"), out, 2), 0, "alice is offline after the move");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("bob"), out, 2), 1, "bob has x");
    ok(sig_endpoint_eq(out[0], ep(0, 1)), "bob's connection is x");
    is_int(sig_registry_num_users(reg), 1, "the emptied user was freed by the move");
    is_int(sig_registry_num_bindings(reg), 1, "a move does not add a binding");

    /* move refused at the cap: y stays carol */
    is_int(sig_registry_bind(reg, SIG_STRLIT("carol"), ep(1, 2), &y), 0, "y is carol");
    is_int(sig_registry_bind(reg, SIG_STRLIT("bob"), ep(1, 2), &y), SIG_ERR_TOO_MANY_CONNECTIONS, "y cannot join bob (cap 1)");
    ok(y != NULL, "y keeps its handle");
    is_str(id_of(y), "carol", "y is still carol");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("carol"), out, 2), 1, "carol still has y");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("bob"), out, 2), 1, "bob still has only x");
    ok(sig_endpoint_eq(out[0], ep(0, 1)), "bob's one connection is still x");

    /* a bad id leaves the old identity too */
    is_int(sig_registry_bind(reg, SIG_STRLIT(""), ep(1, 2), &y), SIG_ERR_BAD_ID, "moving to an empty id is refused");
    is_str(id_of(y), "carol", "y is still carol after the bad id");

    sig_registry_unbind(reg, &x);
    sig_registry_unbind(reg, &y);
    is_int(sig_registry_num_users(reg), 0, "all users gone");
    sig_registry_destroy(reg);
}

static void test_bad_ids(void)
{
    sig_registry_t *reg = sig_registry_create_seeded(0, test_key);
    sig_binding_t *b = NULL;
    char id[SIG_USER_ID_MAX + 1];
    sig_endpoint_t out[1];

    memset(id, 'x', sizeof(id));
    is_int(sig_registry_bind(reg, sig_str(id, 0), ep(0, 1), &b), SIG_ERR_BAD_ID, "empty id refused");
    is_int(sig_registry_bind(reg, sig_str(id, SIG_USER_ID_MAX + 1), ep(0, 1), &b), SIG_ERR_BAD_ID, "257-byte id refused");
    ok(b == NULL, "refused binds leave the handle NULL");
    is_int(sig_registry_num_users(reg), 0, "and add no user");
    is_int(sig_registry_bind(reg, sig_str(id, SIG_USER_ID_MAX), ep(0, 1), &b), 0, "256-byte id accepted");
    is_int(sig_binding_user_id(b).len, SIG_USER_ID_MAX, "stored in full");
    is_int(sig_registry_lookup(reg, sig_str(id, SIG_USER_ID_MAX), out, 1), 1, "256-byte id found");
    is_int(sig_registry_lookup(reg, sig_str(id, SIG_USER_ID_MAX + 1), out, 1), 0, "257-byte lookup is simply offline");
    is_int(sig_registry_lookup(reg, sig_str(NULL, 0), out, 1), 0, "empty lookup is simply offline");
    sig_registry_unbind(reg, &b);

    /* ids are bytes: embedded NUL and non-ASCII are distinct ids */
    {
        sig_binding_t *c = NULL, *d = NULL;
        is_int(sig_registry_bind(reg, sig_str("a\0b", 3), ep(0, 2), &c), 0, "id with NUL byte");
        is_int(sig_registry_bind(reg, SIG_STRLIT("张三"), ep(0, 3), &d), 0, "UTF-8 id");
        is_int(sig_registry_lookup(reg, sig_str("a", 1), out, 1), 0, "NUL does not terminate the id");
        is_int(sig_registry_lookup(reg, sig_str("a\0b", 3), out, 1), 1, "the whole id is found");
        is_int(sig_registry_lookup(reg, SIG_STRLIT("张三"), out, 1), 1, "UTF-8 id found");
        sig_registry_unbind(reg, &c);
        sig_registry_unbind(reg, &d);
    }
    sig_registry_destroy(reg);
}

#define MANY 5000

static void test_many_users(void)
{
    sig_registry_t *reg = sig_registry_create(2);
    static sig_binding_t *b[MANY][2];
    sig_endpoint_t out[2];
    char id[32];
    size_t i, found = 0, right = 0, bad_counts = 0;

    memset(b, 0, sizeof(b));
    for (i = 0; i != MANY; ++i) {
        int n = snprintf(id, sizeof(id), "user-%zu", i);
        if (sig_registry_bind(reg, sig_str(id, (size_t)n), ep(0, i), &b[i][0]) != 0 ||
            sig_registry_bind(reg, sig_str(id, (size_t)n), ep(1, i), &b[i][1]) != 0)
            ++bad_counts;
    }
    is_int(bad_counts, 0, "%d users with two devices each bound", MANY);
    is_int(sig_registry_num_users(reg), MANY, "user count after growth");
    is_int(sig_registry_num_bindings(reg), 2 * MANY, "binding count after growth");

    for (i = 0; i != MANY; ++i) {
        int n = snprintf(id, sizeof(id), "user-%zu", i);
        if (sig_registry_lookup(reg, sig_str(id, (size_t)n), out, 2) == 2) {
            ++found;
            if (sig_endpoint_eq(out[0], ep(0, i)) && sig_endpoint_eq(out[1], ep(1, i)))
                ++right;
        }
    }
    is_int(found, MANY, "every user found after the table grew");
    is_int(right, MANY, "every user's endpoints intact and in order");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("user-5000"), out, 2), 0, "an id never bound is not found");

    /* remove half (shrinking starts), check the rest, then remove all */
    for (i = 0; i < MANY; i += 2) {
        sig_registry_unbind(reg, &b[i][0]);
        sig_registry_unbind(reg, &b[i][1]);
    }
    is_int(sig_registry_num_users(reg), MANY / 2, "half the users left");
    found = 0;
    for (i = 0; i != MANY; ++i) {
        int n = snprintf(id, sizeof(id), "user-%zu", i);
        if (sig_registry_lookup(reg, sig_str(id, (size_t)n), out, 2) == (i % 2 == 0 ? 0 : 2))
            ++found;
    }
    is_int(found, MANY, "removed users offline, remaining users intact");
    for (i = 1; i < MANY; i += 2) {
        sig_registry_unbind(reg, &b[i][1]);
        sig_registry_unbind(reg, &b[i][0]);
    }
    is_int(sig_registry_num_users(reg), 0, "no users after removing all");
    is_int(sig_registry_num_bindings(reg), 0, "no bindings after removing all");

    /* the shrunken table still works */
    is_int(sig_registry_bind(reg, SIG_STRLIT("again"), ep(0, 1), &b[0][0]), 0, "bind after shrinking");
    is_int(sig_registry_lookup(reg, SIG_STRLIT("again"), out, 2), 1, "lookup after shrinking");
    sig_registry_unbind(reg, &b[0][0]);
    sig_registry_destroy(reg);
}

static void test_destroy_with_bindings(void)
{
    sig_registry_t *reg = sig_registry_create(0);
    sig_binding_t *b[100];
    char id[16];
    size_t i;
    int fails = 0;

    for (i = 0; i != 100; ++i) {
        int n = snprintf(id, sizeof(id), "%zu", i % 10);
        b[i] = NULL;
        fails += sig_registry_bind(reg, sig_str(id, (size_t)n), ep(0, i), &b[i]) != 0;
    }
    is_int(fails, 0, "max 0 means no limit: 10 connections for each of 10 users");
    is_int(sig_registry_num_users(reg), 10, "10 users");
    sig_registry_destroy(reg); /* frees everything still bound: checked by ASan/valgrind */
    ok(1, "destroy with bindings still in place");
}

int main(void)
{
    test_bind_lookup_unbind();
    test_multi_device();
    test_move();
    test_bad_ids();
    test_many_users();
    test_destroy_with_bindings();
    return done_testing();
}
