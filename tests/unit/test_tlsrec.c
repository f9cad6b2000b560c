/*
 * test_tlsrec.c: unit tests of handler/core/sig_tlsrec.c (TAP), the TLS 1.3 record layer that takes a connection over
 * from OpenSSL after the handshake, against real OpenSSL 3 as the peer. For each of the three suites: an in-memory
 * TLS 1.3 handshake (a self-signed P-256 certificate made here), the traffic secrets from the server's keylog callback
 * and the records it carried under them counted by its message callback; then the server side is sig_tlsrec (the
 * server `SSL` is freed) while the client stays OpenSSL. Data both ways byte for byte, an empty seal, 100000 bytes in
 * records of at most 2^14, several records in one buffer, the input cut at every byte offset, padded records (block
 * and callback padding), the client's KeyUpdates (not requested, requested: ours answers it and OpenSSL reads what
 * follows, several in a row), close_notify both ways, and refusals: every bit of a record flipped (the exact result
 * for each position), a record replayed, records reordered, a record of another connection. Also the key schedule:
 * RFC 8448 section 3's application keys and IVs, a KeyUpdate ("traffic upd") vector made by OpenSSL (from s2n-tls's
 * tests, TLS_AES_256_GCM_SHA384), and the test's own RFC 8446 code (tlsrec_harness.h) against OpenSSL's records.
 * What OpenSSL never sends is test_tlsrec_crafted.c's.
 */
#include "tlsrec_harness.h"

/* ---- the tests ---- */

static void test_suites(void)
{
    static const uint16_t others[] = {0x1304, 0x1305, 0, 0x1300, 0x0013, 0xc02f, 0xcca8, 0x0303, 0xffff};
    uint8_t secret[64] = {1};
    sig_tlsrec_t t;
    size_t i;

    is_int(sig_tlsrec_suite_supported(SIG_TLSREC_AES_128_GCM_SHA256), 1, "TLS_AES_128_GCM_SHA256 is supported");
    is_int(sig_tlsrec_suite_supported(SIG_TLSREC_AES_256_GCM_SHA384), 1, "TLS_AES_256_GCM_SHA384 is supported");
    is_int(sig_tlsrec_suite_supported(SIG_TLSREC_CHACHA20_POLY1305_SHA256), 1, "TLS_CHACHA20_POLY1305_SHA256 is supported");
    is_int(sig_tlsrec_secret_len(SIG_TLSREC_AES_128_GCM_SHA256), 32, "its secrets: 32 bytes (SHA-256)");
    is_int(sig_tlsrec_secret_len(SIG_TLSREC_AES_256_GCM_SHA384), 48, "its secrets: 48 bytes (SHA-384)");
    is_int(sig_tlsrec_secret_len(SIG_TLSREC_CHACHA20_POLY1305_SHA256), 32, "its secrets: 32 bytes (SHA-256)");
    for (i = 0; i != sizeof(others) / sizeof(others[0]); ++i) {
        is_int(sig_tlsrec_suite_supported(others[i]), 0, "suite 0x%04x is not supported", others[i]);
        is_int(sig_tlsrec_secret_len(others[i]), 0, "suite 0x%04x: secret_len 0", others[i]);
        is_int(sig_tlsrec_init(&t, others[i], secret, secret, 32, 0, 0), -1, "init refuses suite 0x%04x", others[i]);
    }
    for (i = 0; i != 3; ++i) {
        static const size_t lens[] = {0, 1, 16, 31, 32, 33, 47, 48, 49, 64};
        size_t j, want = sig_tlsrec_secret_len(suites[i]), refused = 0, accepted = 0;
        for (j = 0; j != sizeof(lens) / sizeof(lens[0]); ++j) {
            int ret = sig_tlsrec_init(&t, suites[i], secret, secret, lens[j], 0, 0);
            if (lens[j] == want)
                accepted += ret == 0;
            else
                refused += ret == -1;
        }
        ok(accepted == 1 && refused == sizeof(lens) / sizeof(lens[0]) - 1,
           "%s: init takes only %zu-byte secrets (refused %zu of %zu other lengths)", suite_name(suites[i]), want, refused,
           sizeof(lens) / sizeof(lens[0]) - 1);
        sig_tlsrec_dispose(&t);
    }
}

/* RFC 8448 section 3 (Simple 1-RTT Handshake), TLS_AES_128_GCM_SHA256: the application traffic secrets and the
 * keys and IVs derived from them ({server} derive write traffic keys for application data, {client} ditto). */
static void test_rfc8448(void)
{
    uint8_t c_secret[32], s_secret[32], c_key[16], c_iv[12], s_key[16], s_iv[12], key[16], iv[12];
    sig_tlsrec_t t;

    unhex("9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5", c_secret);
    unhex("a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43", s_secret);
    unhex("17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51", c_key);
    unhex("5b 78 92 3d ee 08 57 90 33 e5 23 d9", c_iv);
    unhex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56", s_key);
    unhex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84", s_iv);

    /* the test's own HKDF-Expand-Label first: the crafted records below rely on it */
    ref_expand_label(EVP_sha256(), s_secret, 32, "key", key, 16);
    ref_expand_label(EVP_sha256(), s_secret, 32, "iv", iv, 12);
    ok(memcmp(key, s_key, 16) == 0 && memcmp(iv, s_iv, 12) == 0, "RFC 8448: the reference derives the server's key and IV");

    /* as the server: reads with the client's secret, writes with its own */
    is_int(sig_tlsrec_init(&t, SIG_TLSREC_AES_128_GCM_SHA256, c_secret, s_secret, 32, 5, 7), 0, "RFC 8448: init");
    ok(memcmp(t.write.key, s_key, 16) == 0, "RFC 8448: write.key is the server application write key (9f 02 28 3b ...)");
    ok(memcmp(t.write.iv, s_iv, 12) == 0, "RFC 8448: write.iv is the server application write IV (cf 78 2b 88 ...)");
    ok(memcmp(t.read.key, c_key, 16) == 0, "RFC 8448: read.key is the client application write key (17 42 2d da ...)");
    ok(memcmp(t.read.iv, c_iv, 12) == 0, "RFC 8448: read.iv is the client application write IV (5b 78 92 3d ...)");
    ok(memcmp(t.read.secret, c_secret, 32) == 0 && memcmp(t.write.secret, s_secret, 32) == 0, "RFC 8448: the secrets kept");
    ok(t.read.seq == 5 && t.write.seq == 7 && t.suite == SIG_TLSREC_AES_128_GCM_SHA256 && t.secret_len == 32 &&
           t.key_len == 16 && t.key_update_due == 0,
       "RFC 8448: the sequence numbers, suite and lengths as given");
    sig_tlsrec_dispose(&t);
}

/* application_traffic_secret_N+1 for TLS_AES_256_GCM_SHA384, a vector OpenSSL's s_client produced (s2n-tls's
 * tests/unit/s2n_tls13_keys_test.c), both ways: our KeyUpdate updates write.secret, the peer's updates read.secret. */
static void test_key_update_vector(void)
{
    uint8_t secret[48], updated[48], other[48], wire[256], out[512];
    ref_dir_t ref;
    sig_tlsrec_t t;
    size_t n, plain, len;

    unhex("4bc28934ddd802b00f479e14a72d7725dab45d32b3b145f29e4c5b56677560eb5236b168c71c5c75aa52f3e20ee89bfb", secret);
    unhex("ee85dd54781bd4d8a100589a9fe6ac9a3797b811e977f549cd531be2441d7c63e2b9729d145c11d84af35957727565a4", updated);
    memset(other, 0x42, sizeof(other));
    ref_dir_init(&ref, SIG_TLSREC_AES_256_GCM_SHA384, secret, 0);
    ref_dir_update(&ref);
    ok(memcmp(ref.secret, updated, 48) == 0, "traffic upd vector: the reference agrees with OpenSSL");

    sig_tlsrec_init(&t, SIG_TLSREC_AES_256_GCM_SHA384, other, secret, 48, 0, 0);
    t.key_update_due = 1;
    n = sig_tlsrec_seal(&t, ciphers, (const uint8_t *)"x", 1, 0, out);
    ok(n > 0 && memcmp(t.write.secret, updated, 48) == 0 && t.key_update_due == 0,
       "traffic upd vector: our KeyUpdate leaves write.secret = application_traffic_secret_1");

    sig_tlsrec_init(&t, SIG_TLSREC_AES_256_GCM_SHA384, secret, other, 48, 0, 0);
    ref_dir_init(&ref, SIG_TLSREC_AES_256_GCM_SHA384, secret, 0);
    n = ref_seal(&ref, 22, "\x18\x00\x00\x01\x00", 5, 0, wire);
    len = n;
    plain = 0;
    ok(sig_tlsrec_open(&t, ciphers, wire, &len, &plain) == 0 && len == 0 && memcmp(t.read.secret, updated, 48) == 0 &&
           t.read.seq == 0,
       "traffic upd vector: the peer's KeyUpdate leaves read.secret = application_traffic_secret_1, read.seq 0");
    sig_tlsrec_dispose(&t);
}

/* The reference opens OpenSSL's records and OpenSSL reads the reference's: the crafted records below are real. */
static void test_reference_vs_openssl(pair_t *p)
{
    static const char msg[] = "checked by the reference";
    ref_dir_t rd;
    uint8_t wire[512], content[512], type;
    size_t n = client_send(p, msg, sizeof(msg), wire, sizeof(wire)), len = 0;
    const char *name = suite_name(p->suite);

    ref_dir_init(&rd, p->suite, p->client_secret, p->read_count);
    ok(n != 0 && ref_open(&rd, wire, n, &type, content, &len) == n && type == 23 && len == sizeof(msg) &&
           memcmp(content, msg, len) == 0,
       "%s: the reference opens OpenSSL's record at the counted sequence number", name);
    /* and sig_tlsrec too: the counts are right */
    {
        uint8_t *opened;
        size_t plain, left;
        int ret = server_open_copy(p, wire, n, &opened, &plain, &left);
        ok(ret == 0 && plain == sizeof(msg) && left == plain && memcmp(opened, msg, plain) == 0,
           "%s: sig_tlsrec opens the client's first record after the take-over (read_seq %llu)", name,
           (unsigned long long)p->read_count);
        free(opened);
    }
    ref_dir_init(&rd, p->suite, p->server_secret, p->t.write.seq);
    n = ref_seal(&rd, 23, "from the reference", 18, 3, wire);
    BIO_write(p->to_client, wire, (int)n);
    {
        int err;
        size_t got = ssl_read_all(p->c, content, sizeof(content), &err);
        ok(got == 18 && memcmp(content, "from the reference", 18) == 0, "%s: OpenSSL reads the reference's record", name);
    }
    ++p->t.write.seq; /* the reference sealed the server's next record in its place */
}

static void test_data_both_ways(uint16_t suite)
{
    pair_t *p = pair_new(suite);
    const char *name = suite_name(suite);
    uint8_t big[100000], *wire, *got;
    size_t n, i, max, bounds[16];
    int err, good;

    ok(p != NULL, "%s: a TLS 1.3 handshake through OpenSSL, taken over", name);
    if (p == NULL)
        return;
    test_reference_vs_openssl(p);
    ok(client_to_server_ok(p, "ping", 4), "%s: client -> server: 4 bytes", name);
    ok(server_to_client_ok(p, "pong", 4), "%s: server -> client: 4 bytes", name);
    fill_pattern(big, sizeof(big), 1);
    ok(client_to_server_ok(p, big, 16384), "%s: client -> server: 16384 bytes (one full record)", name);
    ok(client_to_server_ok(p, big, 40000), "%s: client -> server: 40000 bytes (three records in one buffer)", name);
    ok(server_to_client_ok(p, big, 16384), "%s: server -> client: 16384 bytes", name);

    /* an empty seal: nothing the client would read, and the client stays in step */
    max = sig_tlsrec_sealed_max(0);
    wire = malloc(max);
    n = sig_tlsrec_seal(&p->t, ciphers, (const uint8_t *)"", 0, 0, wire);
    ok(n <= max && (n == 0 || count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, NULL, 0) != 0),
       "%s: an empty seal writes %zu bytes (nothing or whole records), within sealed_max(0) = %zu", name, n, max);
    BIO_write(p->to_client, wire, (int)n);
    free(wire);
    got = malloc(sizeof(big) + 16);
    ok(ssl_read_all(p->c, got, 16, &err) == 0 && err == SSL_ERROR_WANT_READ, "%s: the client reads nothing from it", name);
    ok(server_to_client_ok(p, "after", 5), "%s: and reads what comes next", name);

    /* 100000 bytes: records of at most 2^14 bytes, all read */
    max = sig_tlsrec_sealed_max(sizeof(big));
    wire = malloc(max);
    n = sig_tlsrec_seal(&p->t, ciphers, big, sizeof(big), 0, wire);
    ok(n <= max, "%s: 100000 bytes sealed in %zu bytes, within sealed_max = %zu", name, n, max);
    is_int(count_records(wire, n, MAX_INNER + SIG_TLSREC_TAG, bounds, 16), 7,
           "%s: 100000 bytes are 7 records, none over 2^14 + 1 + 16", name);
    BIO_write(p->to_client, wire, (int)n);
    n = ssl_read_all(p->c, got, sizeof(big) + 16, &err);
    ok(n == sizeof(big) && memcmp(got, big, sizeof(big)) == 0, "%s: the client reads all 100000 bytes", name);
    free(wire);

    /* after all this, still both ways */
    good = client_to_server_ok(p, big + 7, 1000) && server_to_client_ok(p, big + 9, 1000);
    ok(good, "%s: 1000 bytes each way after it", name);
    for (i = 1, good = 1; i <= 64; ++i)
        good &= client_to_server_ok(p, big + i, i) && server_to_client_ok(p, big + 2 * i, i);
    ok(good, "%s: 64 exchanges of 1..64 bytes", name);
    free(got);
    pair_free(p);
}

/* The client's records cut at every byte offset across two calls, in a buffer that already holds opened data. */
static void test_split_everywhere(uint16_t suite)
{
    static const char prefix[] = "OPENED"; /* data a previous call opened, before the new input */
    pair_t *p = pair_new(suite);
    const char *name = suite_name(suite);
    uint8_t a[300], stream[2048], data[2048], buf[4096];
    size_t n = 0, data_len = 0, bounds[8], nrec, k, bad_k = SIZE_MAX, data_at[8];
    int bad_ret = 0;

    ok(p != NULL, "%s: a connection for the split test", name);
    if (p == NULL)
        return;
    fill_pattern(a, sizeof(a), 2);
    /* three records: 11 bytes, 300 bytes, 1 byte */
    n += client_send(p, "first write", 11, stream + n, sizeof(stream) - n);
    n += client_send(p, a, sizeof(a), stream + n, sizeof(stream) - n);
    n += client_send(p, "z", 1, stream + n, sizeof(stream) - n);
    memcpy(data, "first write", 11);
    memcpy(data + 11, a, sizeof(a));
    data[311] = 'z';
    data_len = 312;
    data_at[0] = 0;
    data_at[1] = 11;
    data_at[2] = 311;
    data_at[3] = 312;
    nrec = count_records(stream, n, SIG_TLSREC_MAX_CIPHERTEXT, bounds, 8);
    is_int(nrec, 3, "%s: the client wrote three records (%zu bytes)", name, n);
    if (nrec != 3) {
        pair_free(p);
        return;
    }

    {
        size_t plain = 0, len = n;
        pair_reset(p);
        memcpy(buf, stream, n);
        ok(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) == 0 && plain == data_len && len == data_len &&
               memcmp(buf, data, data_len) == 0,
           "%s: three records in one buffer open to their 312 bytes, nothing left", name);
    }

    for (k = 0; k <= n && bad_k == SIZE_MAX; ++k) {
        size_t pre = k % sizeof(prefix), whole = 0, plain = pre, len, keep, want;
        int ret;
        while (whole < 3 && bounds[whole] <= k)
            ++whole;
        keep = k - (whole == 0 ? 0 : bounds[whole - 1]);
        want = pre + data_at[whole];
        pair_reset(p);
        memcpy(buf, prefix, pre);
        memcpy(buf + pre, stream, k);
        len = pre + k;
        ret = sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain);
        if (ret != 0 || plain != want || len != want + keep || memcmp(buf, prefix, pre) != 0 ||
            memcmp(buf + pre, data, data_at[whole]) != 0 || memcmp(buf + want, stream + k - keep, keep) != 0) {
            bad_k = k;
            bad_ret = ret;
            break;
        }
        memcpy(buf + len, stream + k, n - k);
        len += n - k;
        ret = sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain);
        if (ret != 0 || plain != pre + data_len || len != plain || memcmp(buf, prefix, pre) != 0 ||
            memcmp(buf + pre, data, data_len) != 0) {
            bad_k = k;
            bad_ret = ret;
        }
    }
    ok(bad_k == SIZE_MAX,
       "%s: cut at every offset 0..%zu (after 0..5 opened bytes): the first call opens the whole records and keeps the "
       "partial one right after the data, the second opens the rest",
       name, n);
    if (bad_k != SIZE_MAX)
        printf("#   first failure at offset %zu (result %d)\n", bad_k, bad_ret);

    {
        /* a record followed by a partial one, completed a byte at a time */
        size_t plain = 0, len = bounds[0] + 3, fed, calls_bad = 0;
        pair_reset(p);
        memcpy(buf, stream, len);
        if (sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) != 0 || plain != 11 || len != 14)
            ++calls_bad;
        for (fed = bounds[0] + 3; fed < n; ++fed) {
            buf[len++] = stream[fed];
            if (sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) != 0)
                ++calls_bad;
        }
        ok(calls_bad == 0 && plain == data_len && len == data_len && memcmp(buf, data, data_len) == 0,
           "%s: a record and 3 bytes of the next, then the rest one byte per call", name);
    }
    {
        size_t plain = 3, len = 3;
        memcpy(buf, "abc", 3);
        ok(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) == 0 && plain == 3 && len == 3 && memcmp(buf, "abc", 3) == 0,
           "%s: nothing new: nothing changes", name);
    }
    pair_free(p);
}

static size_t padding_cb(SSL *ssl, int type, size_t len, void *arg)
{
    (void)ssl, (void)arg;
    return (len * 7 + (size_t)type) % 300;
}

static void test_padding(uint16_t suite)
{
    pair_t *p = pair_new(suite);
    const char *name = suite_name(suite);
    uint8_t wire[8192], a[3000];
    size_t n, ct;

    ok(p != NULL, "%s: a connection for the padding test", name);
    if (p == NULL)
        return;
    fill_pattern(a, sizeof(a), 3);
    SSL_set_block_padding(p->c, 512);
    n = client_send(p, "padded", 6, wire, sizeof(wire));
    ct = n >= 5 ? ((size_t)wire[3] << 8 | wire[4]) : 0;
    ok(n == 5 + 512 + SIG_TLSREC_TAG && ct == 512 + SIG_TLSREC_TAG, "%s: OpenSSL pads 6 bytes to a 512-byte block", name);
    {
        uint8_t *opened;
        size_t plain, left;
        int ret = server_open_copy(p, wire, n, &opened, &plain, &left);
        ok(ret == 0 && plain == 6 && left == 6 && memcmp(opened, "padded", 6) == 0, "%s: a block-padded record opens", name);
        free(opened);
    }
    ok(client_to_server_ok(p, a, sizeof(a)), "%s: 3000 bytes block-padded", name);
    SSL_set_block_padding(p->c, 1);
    SSL_set_record_padding_callback(p->c, padding_cb);
    ok(client_to_server_ok(p, a, 1000) && client_to_server_ok(p, a + 1, 1) && client_to_server_ok(p, a, 2999),
       "%s: records with the callback's padding (0..299 bytes) open", name);
    SSL_set_record_padding_callback(p->c, NULL);

    /* a 0-byte SSL_write: OpenSSL 3.0 sends nothing (if one ever does, it opens to nothing; the reference's
     * zero-length records are tested below) */
    SSL_write(p->c, "", 0);
    n = client_output(p, wire, sizeof(wire));
    if (n != 0) {
        uint8_t *opened;
        size_t plain, left;
        int ret = server_open_copy(p, wire, n, &opened, &plain, &left);
        ok(ret == 0 && plain == 0 && left == 0, "%s: OpenSSL's zero-length record opens to nothing", name);
        free(opened);
    }
    ok(client_to_server_ok(p, "still in step", 13), "%s: and the next record opens", name);
    pair_free(p);
}

/* Our KeyUpdate at the start of `wire`: the reference, at the server's sequence number, finds KeyUpdate
 * (update_not_requested) alone in the first record; then follows it and opens what comes after. */
static int starts_with_our_key_update(pair_t *p, const uint8_t *secret, uint64_t seq, const uint8_t *wire, size_t n,
                                      const void *data, size_t len)
{
    ref_dir_t rd;
    uint8_t *content = malloc(n + 16), type;
    size_t off, clen = 0;
    int good;

    ref_dir_init(&rd, p->suite, secret, seq);
    off = ref_open(&rd, wire, n, &type, content, &clen);
    good = off != 0 && type == 22 && clen == 5 && memcmp(content, "\x18\x00\x00\x01\x00", 5) == 0;
    ref_dir_update(&rd);
    good = good && ref_open(&rd, wire + off, n - off, &type, content, &clen) == n - off && type == 23 && clen == len &&
           memcmp(content, data, len) == 0;
    free(content);
    return good;
}

static void test_key_updates(uint16_t suite)
{
    pair_t *p = pair_new(suite);
    const char *name = suite_name(suite);
    uint8_t wire[4096], got[64], before[SIG_TLSREC_MAX_SECRET];
    size_t n, plain, left, i;
    uint64_t seq;
    uint8_t *opened;
    int ret, err;

    ok(p != NULL, "%s: a connection for the KeyUpdate tests", name);
    if (p == NULL)
        return;

    /* not requested: applied, nothing due */
    memcpy(before, p->t.read.secret, sizeof(before));
    ok(SSL_key_update(p->c, SSL_KEY_UPDATE_NOT_REQUESTED) == 1, "%s: client: SSL_key_update(NOT_REQUESTED)", name);
    n = client_send(p, "after update", 12, wire, sizeof(wire));
    is_int(count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, NULL, 0), 2, "%s: the client sent KeyUpdate and data", name);
    ret = server_open_copy(p, wire, n, &opened, &plain, &left);
    ok(ret == 0 && plain == 12 && left == 12 && memcmp(opened, "after update", 12) == 0,
       "%s: the data after the client's KeyUpdate opens", name);
    free(opened);
    ok(p->t.key_update_due == 0 && p->t.read.seq == 1 && memcmp(p->t.read.secret, before, sizeof(before)) != 0,
       "%s: not requested: nothing due, the read key moved on (read.seq 1)", name);
    ok(server_to_client_ok(p, "reply", 5), "%s: our next record has no KeyUpdate the client would mind", name);

    /* requested: ours goes first in the next seal, the client reads what follows */
    ok(SSL_key_update(p->c, SSL_KEY_UPDATE_REQUESTED) == 1, "%s: client: SSL_key_update(REQUESTED)", name);
    n = client_send(p, "please update", 13, wire, sizeof(wire));
    ret = server_open_copy(p, wire, n, &opened, &plain, &left);
    ok(ret == 0 && plain == 13 && memcmp(opened, "please update", 13) == 0 && p->t.key_update_due == 1,
       "%s: requested: the data opens and key_update_due is 1", name);
    free(opened);
    memcpy(before, p->t.write.secret, sizeof(before));
    seq = p->t.write.seq;
    n = sig_tlsrec_seal(&p->t, ciphers, (const uint8_t *)"updated", 7, 0, wire);
    ok(starts_with_our_key_update(p, before, seq, wire, n, "updated", 7),
       "%s: the next seal starts with our KeyUpdate (update_not_requested, alone in its record), then the data under the "
       "next key",
       name);
    ok(p->t.key_update_due == 0 && p->t.write.seq == 1, "%s: nothing due after it, write.seq 1", name);
    BIO_write(p->to_client, wire, (int)n);
    n = ssl_read_all(p->c, got, sizeof(got), &err);
    ok(n == 7 && memcmp(got, "updated", 7) == 0 && err == SSL_ERROR_WANT_READ, "%s: OpenSSL reads the data after it", name);
    ok(client_to_server_ok(p, "and on", 6) && server_to_client_ok(p, "and on", 6), "%s: both ways after it", name);

    /* later KeyUpdates from the client: one more of each */
    SSL_key_update(p->c, SSL_KEY_UPDATE_NOT_REQUESTED);
    ok(client_to_server_ok(p, "later", 5) && p->t.key_update_due == 0, "%s: a later client KeyUpdate (not requested)", name);
    SSL_key_update(p->c, SSL_KEY_UPDATE_REQUESTED);
    ok(client_to_server_ok(p, "later2", 6) && p->t.key_update_due == 1 && server_to_client_ok(p, "answered", 8) &&
           p->t.key_update_due == 0,
       "%s: a later client KeyUpdate (requested), answered", name);

    /* several in a row in one buffer, then data */
    for (i = 0, n = 0; i != 4; ++i) {
        SSL_key_update(p->c, i == 2 ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED);
        SSL_do_handshake(p->c);
        n += client_output(p, wire + n, sizeof(wire) - n);
    }
    n += client_send(p, "after four", 10, wire + n, sizeof(wire) - n);
    is_int(count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, NULL, 0), 5, "%s: four KeyUpdates and data from the client", name);
    ret = server_open_copy(p, wire, n, &opened, &plain, &left);
    ok(ret == 0 && plain == 10 && left == 10 && memcmp(opened, "after four", 10) == 0 && p->t.read.seq == 1 &&
           p->t.key_update_due == 1,
       "%s: four KeyUpdates in a row (the third requested) in one buffer: the data opens, ours is due", name);
    free(opened);
    ok(server_to_client_ok(p, "one answer", 10) && p->t.key_update_due == 0, "%s: one KeyUpdate answers them", name);

    /* our KeyUpdate with nothing else to send */
    SSL_key_update(p->c, SSL_KEY_UPDATE_REQUESTED);
    ok(client_to_server_ok(p, "x", 1) && p->t.key_update_due == 1, "%s: requested again", name);
    n = server_send(p, "", 0, 0);
    ok(n != SIZE_MAX && ssl_read_all(p->c, got, sizeof(got), &err) == 0 && err == SSL_ERROR_WANT_READ,
       "%s: an empty seal while a KeyUpdate is due: %zu bytes, the client reads nothing", name, n);
    ok(server_to_client_ok(p, "then data", 9) && p->t.key_update_due == 0, "%s: and then reads the data", name);
    pair_free(p);
}

static void test_close_notify(uint16_t suite)
{
    const char *name = suite_name(suite);
    pair_t *p = pair_new(suite);
    uint8_t wire[4096], got[64], *opened;
    size_t n, plain, left;
    int ret, err;

    ok(p != NULL, "%s: a connection for close_notify", name);
    if (p == NULL)
        return;
    n = client_send(p, "bye", 3, wire, sizeof(wire));
    ok(SSL_shutdown(p->c) == 0, "%s: client: SSL_shutdown sends close_notify", name);
    n += client_output(p, wire + n, sizeof(wire) - n);
    is_int(count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, NULL, 0), 2, "%s: data and the alert", name);
    memcpy(wire + n, "\x17\x03\x03\x00\x20trailing garbage", 21); /* after close_notify: dropped */
    ret = server_open_copy(p, wire, n + 21, &opened, &plain, &left);
    ok(ret == SIG_TLSREC_CLOSED && plain == 3 && left == 3 && memcmp(opened, "bye", 3) == 0,
       "%s: close_notify: CLOSED, the data before it opened, *len == *plain (what follows dropped)", name);
    free(opened);
    {
        /* the alert cut in two: the data first, CLOSED with the rest */
        size_t cut = n - 10, bounds[2];
        uint8_t buf[4096];
        count_records(wire, n, SIG_TLSREC_MAX_CIPHERTEXT, bounds, 2);
        pair_reset(p);
        memcpy(buf, wire, cut);
        plain = 0;
        left = cut;
        ret = sig_tlsrec_open(&p->t, ciphers, buf, &left, &plain);
        ok(ret == 0 && plain == 3 && left == 3 + cut - bounds[0] && memcmp(buf + 3, wire + bounds[0], cut - bounds[0]) == 0,
           "%s: close_notify cut in two: the first call opens the data", name);
        memcpy(buf + left, wire + cut, n - cut);
        left += n - cut;
        ret = sig_tlsrec_open(&p->t, ciphers, buf, &left, &plain);
        ok(ret == SIG_TLSREC_CLOSED && plain == 3 && left == 3 && memcmp(buf, "bye", 3) == 0,
           "%s: the second call: CLOSED", name);
    }
    pair_free(p);

    /* ours: the client reads the data, then SSL_read returns 0 with SSL_ERROR_ZERO_RETURN */
    p = pair_new(suite);
    ok(p != NULL && server_send(p, "last words", 10, 1) != SIZE_MAX, "%s: seal with close_notify", name);
    if (p != NULL) {
        n = ssl_read_all(p->c, got, sizeof(got), &err);
        ok(n == 10 && memcmp(got, "last words", 10) == 0 && err == SSL_ERROR_ZERO_RETURN,
           "%s: the client reads the data, then SSL_ERROR_ZERO_RETURN", name);
        ok((SSL_get_shutdown(p->c) & SSL_RECEIVED_SHUTDOWN) != 0, "%s: the client saw our close_notify", name);
    }
    pair_free(p);
    p = pair_new(suite);
    ok(p != NULL && server_send(p, "", 0, 1) != SIZE_MAX, "%s: close_notify alone (no data)", name);
    if (p != NULL) {
        n = ssl_read_all(p->c, got, sizeof(got), &err);
        ok(n == 0 && err == SSL_ERROR_ZERO_RETURN, "%s: the client gets SSL_ERROR_ZERO_RETURN", name);
    }
    pair_free(p);
}

/* The result the header's rules give for record `rec` (`n` bytes) with bit `bit` of byte `i` flipped, and whether the
 * record is then merely incomplete (0, nothing consumed). */
static int expected_for_flip(const uint8_t *rec, size_t n, size_t i, int bit, int *pending)
{
    size_t ct = (size_t)rec[3] << 8 | rec[4];
    *pending = 0;
    if (i < 3)
        return SIG_TLSREC_ERR_RECORD; /* the type is not 23, or the version not 0x0303 */
    if (i < 5) {
        ct ^= (size_t)1 << (bit + (i == 3 ? 8 : 0));
        if (ct > SIG_TLSREC_MAX_CIPHERTEXT || ct < SIG_TLSREC_TAG + 1)
            return SIG_TLSREC_ERR_RECORD;
        if (ct > n - 5) {
            *pending = 1;
            return 0;
        }
    }
    return SIG_TLSREC_ERR_AUTH; /* a shorter record, or a changed byte of the ciphertext or tag */
}

static void test_refusals(uint16_t suite)
{
    const char *name = suite_name(suite);
    pair_t *p = pair_new(suite), *other = pair_new(suite);
    uint8_t r1[256], r2[256], both[512], flipped[256], buf[512], msg[40];
    size_t n1, n2, i, plain, len, bad_pos = SIZE_MAX, positions = 0;
    int bit, bad_ret = 0, bad_bit = 0;

    ok(p != NULL && other != NULL, "%s: connections for the refusals", name);
    if (p == NULL || other == NULL) {
        pair_free(p);
        pair_free(other);
        return;
    }
    fill_pattern(msg, sizeof(msg), 4);
    n1 = client_send(p, msg, sizeof(msg), r1, sizeof(r1));
    n2 = client_send(p, "second", 6, r2, sizeof(r2));
    ok(n1 == 5 + 40 + 1 + 16 && n2 == 5 + 6 + 1 + 16, "%s: two records from the client", name);

    for (i = 0; i != n1 && bad_pos == SIZE_MAX; ++i) {
        for (bit = 0; bit != 8; ++bit) {
            int pending, want = expected_for_flip(r1, n1, i, bit, &pending), ret;
            memcpy(flipped, r1, n1);
            flipped[i] ^= (uint8_t)(1 << bit);
            pair_reset(p);
            plain = 0;
            len = n1;
            ret = sig_tlsrec_open(&p->t, ciphers, flipped, &len, &plain);
            ++positions;
            if (ret != want || (pending && (plain != 0 || len != n1))) {
                bad_pos = i;
                bad_bit = bit;
                bad_ret = ret;
                break;
            }
        }
    }
    ok(bad_pos == SIZE_MAX,
       "%s: each of the %zu bits of a record flipped: ERR_RECORD in the type and version, ERR_RECORD or an incomplete "
       "record or ERR_AUTH by the length it makes, ERR_AUTH in the ciphertext and tag",
       name, positions);
    if (bad_pos != SIZE_MAX)
        printf("#   byte %zu bit %d: got %d\n", bad_pos, bad_bit, bad_ret);

    /* replay, reorder, another connection's record */
    pair_reset(p);
    memcpy(both, r1, n1);
    memcpy(both + n1, r1, n1);
    plain = 0;
    len = 2 * n1;
    is_int(sig_tlsrec_open(&p->t, ciphers, both, &len, &plain), SIG_TLSREC_ERR_AUTH,
           "%s: a record twice in one buffer: ERR_AUTH", name);
    pair_reset(p);
    memcpy(buf, r1, n1);
    plain = 0;
    len = n1;
    ok(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain) == 0 && plain == 40, "%s: the record once", name);
    memcpy(buf, r1, n1);
    plain = 0;
    len = n1;
    is_int(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain), SIG_TLSREC_ERR_AUTH, "%s: the same bytes again: ERR_AUTH", name);
    pair_reset(p);
    memcpy(both, r2, n2);
    memcpy(both + n2, r1, n1);
    plain = 0;
    len = n1 + n2;
    is_int(sig_tlsrec_open(&p->t, ciphers, both, &len, &plain), SIG_TLSREC_ERR_AUTH,
           "%s: the two records reordered: ERR_AUTH", name);
    pair_reset(p);
    memcpy(buf, r2, n2);
    plain = 0;
    len = n2;
    is_int(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain), SIG_TLSREC_ERR_AUTH, "%s: the second record first: ERR_AUTH", name);
    n1 = client_send(other, msg, sizeof(msg), buf, sizeof(buf));
    pair_reset(p);
    plain = 0;
    len = n1;
    is_int(sig_tlsrec_open(&p->t, ciphers, buf, &len, &plain), SIG_TLSREC_ERR_AUTH,
           "%s: another connection's record (same suite, same seq): ERR_AUTH", name);
    /* the refusals above left the shared contexts fine: the right records still open */
    pair_reset(p);
    memcpy(both, r1, n1);
    memcpy(both + n1, r2, n2);
    plain = 0;
    len = n1 + n2;
    ok(sig_tlsrec_open(&p->t, ciphers, both, &len, &plain) == 0 && plain == 46 && memcmp(both, msg, 40) == 0 &&
           memcmp(both + 40, "second", 6) == 0,
       "%s: after all the refusals, the two records open in order", name);
    pair_free(p);
    pair_free(other);
}

int main(void)
{
    size_t i;

    harness_start();
    test_suites();
    test_rfc8448();
    test_key_update_vector();
    for (i = 0; i != 3; ++i) {
        test_data_both_ways(suites[i]);
        test_split_everywhere(suites[i]);
        test_padding(suites[i]);
        test_key_updates(suites[i]);
        test_close_notify(suites[i]);
        test_refusals(suites[i]);
    }
    return harness_done();
}
