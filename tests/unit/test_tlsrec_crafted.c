/*
 * test_tlsrec_crafted.c: unit tests of handler/core/sig_tlsrec.c (TAP) on what OpenSSL never sends, with the test's
 * own RFC 8446 code (tlsrec_harness.h) as the client: alerts, handshake messages, content types, zero-length data,
 * padding up to and past the limit, all-zero plaintext, malformed KeyUpdates, bad headers with only the header in the
 * buffer, sequence numbers using all eight nonce bytes, our KeyUpdate's bytes; two sig_tlsrec_t talking to each other
 * (swapped secrets): any sequence numbers, our own rekey at SIG_TLSREC_REKEY_AFTER (no key seals more than that many
 * records), sig_tlsrec_sealed_max() bounding every seal (KeyUpdate and close_notify included, nothing written past
 * it); one sig_tlsrec_ciphers_t shared by interleaved connections of every suite, a refusal on one not touching the
 * others; suite_supported/secret_len/init refusals; dispose wipes every secret, key and IV. The tests against
 * OpenSSL as the peer are test_tlsrec.c's.
 */
#include "tlsrec_harness.h"

/* ---- records OpenSSL does not send, made by the reference as the client ---- */

typedef struct {
    uint16_t suite;
    uint8_t c_secret[SIG_TLSREC_MAX_SECRET], s_secret[SIG_TLSREC_MAX_SECRET];
    sig_tlsrec_t t;     /* the server */
    ref_dir_t client;   /* the reference writing as the client */
    ref_dir_t server;   /* the reference reading the server */
} crafted_t;

static void crafted_init(crafted_t *x, uint16_t suite, uint64_t read_seq, uint64_t write_seq)
{
    size_t len = sig_tlsrec_secret_len(suite);
    memset(x, 0, sizeof(*x));
    x->suite = suite;
    fill_pattern(x->c_secret, len, 100 + suite);
    fill_pattern(x->s_secret, len, 200 + suite);
    sig_tlsrec_init(&x->t, suite, x->c_secret, x->s_secret, len, read_seq, write_seq);
    ref_dir_init(&x->client, suite, x->c_secret, read_seq);
    ref_dir_init(&x->server, suite, x->s_secret, write_seq);
}

static void crafted_dispose(crafted_t *x)
{
    sig_tlsrec_dispose(&x->t);
}

/* A fresh server opens one record the reference made of (type, content, padding); the result, the data in `out`. */
static int open_crafted(uint16_t suite, uint8_t type, const void *content, size_t len, size_t padding, size_t *plain_out,
                        uint8_t *out)
{
    crafted_t x;
    uint8_t *buf = malloc(len + padding + 64);
    size_t n, plain = 0;
    int ret;

    crafted_init(&x, suite, 3, 3);
    n = ref_seal(&x.client, type, content, len, padding, buf);
    ret = sig_tlsrec_open(&x.t, ciphers, buf, &n, &plain);
    if (plain_out != NULL)
        *plain_out = ret == 0 ? plain : SIZE_MAX;
    if (out != NULL && ret == 0)
        memcpy(out, buf, plain);
    crafted_dispose(&x);
    free(buf);
    return ret;
}

/* One record of (type, content, padding) each, made by the reference, and what opening it gives: a result, or
 * REFUSED (any SIG_TLSREC_ERR_*: the header does not say which). */
#define REFUSED 99
static const struct {
    uint8_t type;
    const char *content;
    size_t len, padding;
    int want;
    const char *what;
} crafted_cases[] = {
    {20, "\x01", 1, 0, SIG_TLSREC_ERR_UNEXPECTED, "inner change_cipher_spec"},
    {24, "\x01\x00\x10", 3, 0, SIG_TLSREC_ERR_UNEXPECTED, "inner heartbeat (24)"},
    {0x42, "x", 1, 0, SIG_TLSREC_ERR_UNEXPECTED, "inner type 0x42"},
    {1, "x", 1, 0, SIG_TLSREC_ERR_UNEXPECTED, "inner type 1"},
    /* alerts */
    {21, "\x02\x28", 2, 0, SIG_TLSREC_ERR_ALERT, "alert handshake_failure"},
    {21, "\x01\x5a", 2, 0, SIG_TLSREC_ERR_ALERT, "alert user_canceled"},
    {21, "\x02\x14", 2, 0, SIG_TLSREC_ERR_ALERT, "alert bad_record_mac"},
    {21, "\x01\x00", 2, 7, SIG_TLSREC_CLOSED, "close_notify, padded"},
    {21, "\x02\x00", 2, 0, SIG_TLSREC_CLOSED, "close_notify at level fatal (6: TLS 1.3 ignores the level)"},
    {21, "\x01", 1, 0, REFUSED, "a 1-byte alert"},
    {21, "\x01\x00\x00", 3, 0, REFUSED, "close_notify with a byte more"},
    {21, "\x01\x00\x01\x00", 4, 0, REFUSED, "two close_notify in one record"},
    {21, NULL, 0, 0, REFUSED, "a zero-length alert"},
    /* handshake messages */
    {22, "\x04\x00\x00\x05\x00\x00\x00\x00\x00", 9, 0, SIG_TLSREC_ERR_UNEXPECTED, "a NewSessionTicket from the client"},
    {22, "\x01\x00\x00\x02\x03\x03", 6, 0, SIG_TLSREC_ERR_UNEXPECTED, "a ClientHello"},
    {22, "\x0b\x00\x00\x04\x00\x00\x00\x00", 8, 0, SIG_TLSREC_ERR_UNEXPECTED, "a Certificate"},
    {22, "\x14\x00\x00\x01\x00", 5, 0, SIG_TLSREC_ERR_UNEXPECTED, "a Finished (5 bytes, like a KeyUpdate)"},
    {22, "\x18\x00\x00\x01\x02", 5, 0, REFUSED, "KeyUpdate with request_update 2"},
    {22, "\x18\x00\x00\x02\x00\x00", 6, 0, REFUSED, "KeyUpdate of length 2"},
    {22, "\x18\x00\x00\x01\x00\x18\x00\x00\x01\x00", 10, 0, REFUSED,
     "two KeyUpdates in one record (a key change must end its record)"},
    {22, "\x18\x00\x00\x01\x00\x17", 6, 0, REFUSED, "KeyUpdate and a byte more in its record"},
    {22, NULL, 0, 0, REFUSED, "a zero-length handshake record"},
    {22, "\x18\x00\x00", 3, 0, REFUSED, "a truncated KeyUpdate"},
    {22, "\x18\x00\x00\x01\x00", 5, 40, 0, "a padded KeyUpdate: applied"},
};

static void test_crafted(uint16_t suite)
{
    const char *name = suite_name(suite);
    static uint8_t big[MAX_INNER + 300], out[MAX_INNER + 300];
    size_t plain, i;
    int ret;

    fill_pattern(big, sizeof(big), 5);
    big[16383] = 1; /* the last byte of a full record is not padding */
    ok(open_crafted(suite, 23, big, 10, 0, &plain, out) == 0 && plain == 10 && memcmp(out, big, 10) == 0,
       "%s: the reference's record opens", name);
    ok(open_crafted(suite, 23, NULL, 0, 0, &plain, NULL) == 0 && plain == 0, "%s: zero-length application data: nothing", name);
    ok(open_crafted(suite, 23, NULL, 0, 100, &plain, NULL) == 0 && plain == 0, "%s: zero-length data, padded: nothing", name);
    ok(open_crafted(suite, 23, big, 10, 5000, &plain, out) == 0 && plain == 10 && memcmp(out, big, 10) == 0,
       "%s: 10 bytes with 5000 bytes of padding", name);
    ok(open_crafted(suite, 23, big, 16384, 0, &plain, out) == 0 && plain == 16384 && memcmp(out, big, 16384) == 0,
       "%s: 2^14 bytes, the largest record", name);
    ok(open_crafted(suite, 23, big, 1000, MAX_INNER - 1001, &plain, out) == 0 && plain == 1000,
       "%s: padding up to exactly 2^14 + 1 bytes of TLSInnerPlaintext", name);
    is_int(open_crafted(suite, 23, big, 16385, 0, NULL, NULL), SIG_TLSREC_ERR_RECORD,
           "%s: 2^14 + 1 bytes of data: ERR_RECORD (record_overflow)", name);
    /* 5.4's "TLSInnerPlaintext MUST NOT exceed 2^14 + 1 octets" binds the sender; a receiver's record_overflow is for a
     * ciphertext past 2^14 + 256 (5.2) and content past 2^14, as OpenSSL 3.0's client does: padding past it is read */
    ok(open_crafted(suite, 23, big, 1000, MAX_INNER - 1000, &plain, out) == 0 && plain == 1000 && memcmp(out, big, 1000) == 0,
       "%s: TLSInnerPlaintext of 2^14 + 2 bytes by its padding: read, as OpenSSL reads it", name);
    ok(open_crafted(suite, 23, big, 1000, SIG_TLSREC_MAX_CIPHERTEXT - SIG_TLSREC_TAG - 1001, &plain, out) == 0 &&
           plain == 1000 && memcmp(out, big, 1000) == 0,
       "%s: a ciphertext of exactly 2^14 + 256 bytes (padding): read", name);
    {
        /* no content type: 1, 10, 261 (the header's last byte then reads as 21, an alert), 2^14 + 1 zeros */
        static const size_t zero_lens[] = {1, 10, 261, MAX_INNER};
        static uint8_t zeros[MAX_INNER], buf[MAX_RECORD];
        for (i = 0; i != sizeof(zero_lens) / sizeof(zero_lens[0]); ++i) {
            crafted_t x;
            size_t n, p0 = 0;
            crafted_init(&x, suite, 0, 0);
            n = ref_seal_inner(&x.client, zeros, zero_lens[i], buf);
            is_int(sig_tlsrec_open(&x.t, ciphers, buf, &n, &p0), SIG_TLSREC_ERR_UNEXPECTED,
                   "%s: %zu bytes of plaintext all zero (no content type): ERR_UNEXPECTED", name, zero_lens[i]);
            crafted_dispose(&x);
        }
    }
    for (i = 0; i != sizeof(crafted_cases) / sizeof(crafted_cases[0]); ++i) {
        ret = open_crafted(suite, crafted_cases[i].type, crafted_cases[i].content, crafted_cases[i].len,
                           crafted_cases[i].padding, NULL, NULL);
        if (crafted_cases[i].want == REFUSED)
            ok(ret < 0, "%s: %s: refused (%d)", name, crafted_cases[i].what, ret);
        else
            is_int(ret, crafted_cases[i].want, "%s: %s: %s", name, crafted_cases[i].what, result_name(crafted_cases[i].want));
    }
}

/* Headers alone: refused as soon as the five bytes are in, without waiting for a body that may never fit. */
static void test_headers(uint16_t suite)
{
    static const struct {
        const char *bytes, *what;
        int want;
    } cases[] = {
        {"\x14\x03\x03\x00\x01", "change_cipher_spec (20)", SIG_TLSREC_ERR_RECORD},
        {"\x15\x03\x03\x00\x02", "a plaintext alert (21)", SIG_TLSREC_ERR_RECORD},
        {"\x16\x03\x03\x00\x20", "a plaintext handshake (22)", SIG_TLSREC_ERR_RECORD},
        {"\x18\x03\x03\x00\x20", "type 24", SIG_TLSREC_ERR_RECORD},
        {"\x00\x03\x03\x00\x20", "type 0", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x01\x00\x20", "version 0x0301", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x04\x00\x20", "version 0x0304", SIG_TLSREC_ERR_RECORD},
        {"\x17\x02\x03\x00\x20", "version 0x0203", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\x41\x01", "length 16641", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\xff\xff", "length 65535", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\x00\x10", "length 16 (no room for the type and tag)", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\x00\x00", "length 0", SIG_TLSREC_ERR_RECORD},
        {"\x17\x03\x03\x41\x00", "length 16640 (incomplete: waits)", 0},
        {"\x17\x03\x03\x00\x11", "length 17 (incomplete: waits)", 0},
    };
    const char *name = suite_name(suite);
    size_t i;

    for (i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        crafted_t x;
        uint8_t buf[16];
        size_t plain = 0, len = 5;
        int ret;
        crafted_init(&x, suite, 0, 0);
        memcpy(buf, cases[i].bytes, 5);
        ret = sig_tlsrec_open(&x.t, ciphers, buf, &len, &plain);
        if (cases[i].want == 0)
            ok(ret == 0 && plain == 0 && len == 5 && memcmp(buf, cases[i].bytes, 5) == 0, "%s: a header of %s, alone: kept", name,
               cases[i].what);
        else
            is_int(ret, cases[i].want, "%s: a header of %s, alone: ERR_RECORD", name, cases[i].what);
        crafted_dispose(&x);
    }
    {
        /* 17 bytes of ciphertext that is not a record's: ERR_AUTH; 1..4 bytes of a header: kept */
        crafted_t x;
        uint8_t buf[32];
        size_t plain = 0, len = 22, k, kept = 0;
        crafted_init(&x, suite, 0, 0);
        memcpy(buf, "\x17\x03\x03\x00\x11", 5);
        memset(buf + 5, 0x5c, 17);
        is_int(sig_tlsrec_open(&x.t, ciphers, buf, &len, &plain), SIG_TLSREC_ERR_AUTH,
               "%s: the shortest record, forged: ERR_AUTH", name);
        for (k = 0; k != 5; ++k) {
            len = k;
            plain = 0;
            memcpy(buf, "\x17\x03\x03\x00\x11", 5);
            kept += sig_tlsrec_open(&x.t, ciphers, buf, &len, &plain) == 0 && len == k && plain == 0;
        }
        is_int(kept, 5, "%s: 0..4 bytes of a header: kept, nothing opened", name);
        crafted_dispose(&x);
    }
}

/* Sequence numbers past what OpenSSL would reach: all eight bytes of the nonce; a peer past REKEY_AFTER is read. */
static void test_sequence_numbers(uint16_t suite)
{
    const char *name = suite_name(suite);
    static const uint64_t read_seqs[] = {0x0102030405060708ull, SIG_TLSREC_REKEY_AFTER + 7, 0xfedcba9876543210ull, 255, 256};
    size_t i;

    for (i = 0; i != sizeof(read_seqs) / sizeof(read_seqs[0]); ++i) {
        crafted_t x;
        uint8_t buf[256];
        size_t n, plain = 0;
        crafted_init(&x, suite, read_seqs[i], 0x00a1b2c3);
        n = ref_seal(&x.client, 23, "seq", 3, 0, buf);
        n += ref_seal(&x.client, 23, "next", 4, 0, buf + n);
        ok(sig_tlsrec_open(&x.t, ciphers, buf, &n, &plain) == 0 && plain == 7 && memcmp(buf, "seqnext", 7) == 0 &&
               x.t.read.seq == read_seqs[i] + 2,
           "%s: records at read_seq 0x%016llx and the next open", name, (unsigned long long)read_seqs[i]);
        crafted_dispose(&x);
    }
    {
        crafted_t x;
        uint8_t buf[256], content[256], type;
        size_t n, clen = 0, off;
        crafted_init(&x, suite, 0, 0x00a1b2c3);
        n = sig_tlsrec_seal(&x.t, ciphers, (const uint8_t *)"abc", 3, 0, buf);
        n += sig_tlsrec_seal(&x.t, ciphers, (const uint8_t *)"defg", 4, 0, buf + n);
        off = ref_open(&x.server, buf, n, &type, content, &clen);
        ok(off == 5 + 3 + 1 + 16 && type == 23 && clen == 3 && memcmp(content, "abc", 3) == 0,
           "%s: our record at write_seq 0x00a1b2c3 opens with the reference (nonce = IV xor seq)", name);
        ok(ref_open(&x.server, buf + off, n - off, &type, content, &clen) == n - off && clen == 4 && x.t.write.seq == 0x00a1b2c5,
           "%s: and the next at 0x00a1b2c4", name);
        crafted_dispose(&x);
    }
    {
        /* the peer's KeyUpdate, requested: applied (checked by the reference's next record), ours in the next seal */
        crafted_t x;
        uint8_t buf[256], content[256], type;
        size_t n, plain = 0, clen = 0, off;
        crafted_init(&x, suite, 77, 99);
        n = ref_seal(&x.client, 22, "\x18\x00\x00\x01\x01", 5, 0, buf);
        ref_dir_update(&x.client);
        n += ref_seal(&x.client, 23, "new key", 7, 0, buf + n);
        ok(sig_tlsrec_open(&x.t, ciphers, buf, &n, &plain) == 0 && plain == 7 && memcmp(buf, "new key", 7) == 0 &&
               x.t.key_update_due == 1 && memcmp(x.t.read.secret, x.client.secret, x.client.secret_len) == 0,
           "%s: the reference's KeyUpdate (requested): read.secret is its next secret, ours is due", name);
        n = sig_tlsrec_seal(&x.t, ciphers, (const uint8_t *)"ok", 2, 0, buf);
        off = ref_open(&x.server, buf, n, &type, content, &clen);
        ok(off != 0 && type == 22 && clen == 5 && memcmp(content, "\x18\x00\x00\x01\x00", 5) == 0,
           "%s: our KeyUpdate: 18 00 00 01 00 (update_not_requested) at write_seq 99", name);
        ref_dir_update(&x.server);
        ok(ref_open(&x.server, buf + off, n - off, &type, content, &clen) == n - off && type == 23 && clen == 2 &&
               memcmp(content, "ok", 2) == 0 && memcmp(x.t.write.secret, x.server.secret, x.server.secret_len) == 0,
           "%s: the data after it under the next key, write.secret is that key's secret", name);
        crafted_dispose(&x);
    }
}

/* No key seals more than SIG_TLSREC_REKEY_AFTER records: the reference follows our output from write_seq
 * REKEY_AFTER - 2, one small seal at a time, and fails on a record at a sequence number >= REKEY_AFTER. */
static void test_rekey_limit(uint16_t suite)
{
    const char *name = suite_name(suite);
    crafted_t x;
    uint8_t buf[512], content[512], type;
    size_t i, updates = 0, data = 0, over = 0;
    uint64_t update_seq = 0;

    crafted_init(&x, suite, 0, SIG_TLSREC_REKEY_AFTER - 2);
    for (i = 0; i != 5; ++i) {
        size_t n = sig_tlsrec_seal(&x.t, ciphers, (const uint8_t *)"r", 1, 0, buf), off = 0, clen;
        while (off < n) {
            size_t m;
            if (x.server.seq >= SIG_TLSREC_REKEY_AFTER)
                ++over;
            if ((m = ref_open(&x.server, buf + off, n - off, &type, content, &clen)) == 0)
                break;
            off += m;
            if (type == 22 && clen == 5 && content[0] == 24) {
                update_seq = x.server.seq - 1;
                ref_dir_update(&x.server);
                ++updates;
            } else if (type == 23 && clen == 1 && content[0] == 'r') {
                ++data;
            }
        }
        if (off != n)
            break;
    }
    ok(data == 5 && updates == 1, "%s: five records from write_seq REKEY_AFTER - 2: one KeyUpdate of ours among them", name);
    is_int(over, 0, "%s: no record sealed at a sequence number >= SIG_TLSREC_REKEY_AFTER under one key", name);
    if (over != 0)
        printf("#   our KeyUpdate was sealed at seq REKEY_AFTER %+lld: the key sealed %llu records\n",
               (long long)(update_seq - SIG_TLSREC_REKEY_AFTER), (unsigned long long)update_seq + 1);
    crafted_dispose(&x);
}

/* ---- two sig_tlsrec_t talking to each other ---- */

typedef struct {
    uint16_t suite;
    sig_tlsrec_t server, client;
} duo_t;

static void duo_init(duo_t *d, uint16_t suite, uint64_t s_to_c, uint64_t c_to_s, uint32_t seed)
{
    uint8_t c_secret[SIG_TLSREC_MAX_SECRET], s_secret[SIG_TLSREC_MAX_SECRET];
    size_t len = sig_tlsrec_secret_len(suite);
    fill_pattern(c_secret, len, seed);
    fill_pattern(s_secret, len, seed + 1);
    d->suite = suite;
    sig_tlsrec_init(&d->server, suite, c_secret, s_secret, len, c_to_s, s_to_c);
    sig_tlsrec_init(&d->client, suite, s_secret, c_secret, len, s_to_c, c_to_s);
}

static void duo_dispose(duo_t *d)
{
    sig_tlsrec_dispose(&d->server);
    sig_tlsrec_dispose(&d->client);
}

/* `from` seals (into a buffer with guard bytes past sealed_max), `to` opens: 1 when `to` gets exactly the data (and
 * CLOSED with close_notify), nothing written past sealed_max, nothing left over. */
static int transfer(sig_tlsrec_t *from, sig_tlsrec_t *to, const uint8_t *data, size_t len, int close_notify)
{
    size_t max = sig_tlsrec_sealed_max(len), n, plain = 0, i;
    uint8_t *buf = malloc(max + 64);
    int ret, good;

    memset(buf, 0xa5, max + 64);
    n = sig_tlsrec_seal(from, ciphers, data, len, close_notify, buf);
    good = n <= max;
    for (i = max; i != max + 64; ++i)
        good &= buf[i] == 0xa5;
    ret = sig_tlsrec_open(to, ciphers, buf, &n, &plain);
    good &= ret == (close_notify ? SIG_TLSREC_CLOSED : 0) && plain == len && n == len && (len == 0 || memcmp(buf, data, len) == 0);
    free(buf);
    return good;
}

static void test_duo(uint16_t suite)
{
    static const size_t sizes[] = {0, 1, 2, 100, 16383, 16384, 16385, 32768, 32769, 50000, 100000};
    static const uint64_t seqs[] = {0, 1, 12345, SIG_TLSREC_REKEY_AFTER - 3, SIG_TLSREC_REKEY_AFTER - 1};
    const char *name = suite_name(suite);
    static uint8_t data[100000 + 16]; /* sizes up to 100000 from offsets up to 10 */
    size_t i, j, failures = 0, runs = 0;
    duo_t d;

    fill_pattern(data, sizeof(data), 6);
    for (i = 0; i != sizeof(seqs) / sizeof(seqs[0]); ++i) {
        size_t bad = 0;
        duo_init(&d, suite, seqs[i], seqs[(i + 2) % 5], (uint32_t)i);
        for (j = 0; j != sizeof(sizes) / sizeof(sizes[0]); ++j) {
            bad += !transfer(&d.server, &d.client, data, sizes[j], 0);
            bad += !transfer(&d.client, &d.server, data + j, sizes[j], 0);
        }
        ok(bad == 0, "%s: two instances from seqs %llu/%llu: %zu sizes (0..100000) each way arrive exactly", name,
           (unsigned long long)seqs[i], (unsigned long long)seqs[(i + 2) % 5], sizeof(sizes) / sizeof(sizes[0]));
        duo_dispose(&d);
    }

    /* every combination of a due KeyUpdate, close_notify and a rekey on the way: within sealed_max, exact */
    for (i = 0; i != sizeof(sizes) / sizeof(sizes[0]); ++i) {
        int due, close_notify, near;
        for (near = 0; near != 2; ++near)
            for (due = 0; due != 2; ++due)
                for (close_notify = 0; close_notify != 2; ++close_notify) {
                    duo_init(&d, suite, near ? SIG_TLSREC_REKEY_AFTER - 2 : 5, 9, 77);
                    d.server.key_update_due = (uint8_t)due;
                    failures += !transfer(&d.server, &d.client, data, sizes[i], close_notify);
                    ++runs;
                    duo_dispose(&d);
                }
    }
    is_int(failures, 0, "%s: %zu seals (11 sizes x KeyUpdate due or not x close_notify or not x near the rekey or not): "
                        "within sealed_max, nothing past it written, opened exactly", name, runs);

    /* our own rekey: from REKEY_AFTER - 1 the KeyUpdate is the old key's last record (REKEY_AFTER in all), then four
     * records under the new key; the peer follows, the key changed */
    duo_init(&d, suite, SIG_TLSREC_REKEY_AFTER - 1, 0, 8);
    {
        uint8_t key_before[32];
        int good = 1;
        memcpy(key_before, d.server.write.key, sizeof(key_before));
        for (i = 0; i != 4; ++i)
            good &= transfer(&d.server, &d.client, data + i, 10, 0);
        ok(good && d.server.write.seq == 4 && memcmp(d.server.write.key, key_before, sizeof(key_before)) != 0 &&
               memcmp(d.server.write.secret, d.client.read.secret, sizeof(d.server.write.secret)) == 0,
           "%s: from write_seq REKEY_AFTER - 1: we rekeyed, the peer followed (write.seq %llu)", name,
           (unsigned long long)d.server.write.seq);
        good = transfer(&d.server, &d.client, data, 100000, 1);
        ok(good, "%s: then 100000 bytes and close_notify", name);
    }
    duo_dispose(&d);
    duo_init(&d, suite, SIG_TLSREC_REKEY_AFTER - 3, 0, 9);
    ok(transfer(&d.server, &d.client, data, 100000, 0) && d.server.write.seq < 7,
       "%s: a rekey in the middle of one seal of 100000 bytes", name);
    duo_dispose(&d);
}

/* One thread's contexts shared by connections of every suite, interleaved record by record; a refusal on one leaves
 * the others working, including one with the same keys. */
static void test_shared_ciphers(void)
{
    duo_t d[6];
    sig_tlsrec_t twin;
    uint8_t data[3000], bad[256], good[256];
    size_t i, round, n, len, plain, failures = 0;

    fill_pattern(data, sizeof(data), 7);
    for (i = 0; i != 6; ++i)
        duo_init(&d[i], suites[i % 3], i * 1000, i * 7, (uint32_t)(40 + i));
    for (round = 0; round != 20; ++round)
        for (i = 0; i != 6; ++i) {
            failures += !transfer(&d[i].server, &d[i].client, data + round, 100 + round * 100, 0);
            failures += !transfer(&d[i].client, &d[i].server, data + i, 50 + round, 0);
            if (round % 7 == 3)
                d[i].client.key_update_due = 1;
        }
    is_int(failures, 0, "six connections (two per suite) interleaved with one sig_tlsrec_ciphers_t, KeyUpdates among them");

    twin = d[0].client; /* the same keys and seqs: a second reader of d[0]'s stream */
    n = sig_tlsrec_seal(&d[0].server, ciphers, (const uint8_t *)"forged?", 7, 0, good);
    memcpy(bad, good, n);
    bad[n - 1] ^= 1;
    len = n;
    plain = 0;
    is_int(sig_tlsrec_open(&d[0].client, ciphers, bad, &len, &plain), SIG_TLSREC_ERR_AUTH, "a tampered record on one: ERR_AUTH");
    memcpy(bad, good, n); /* a refused record may have been decrypted in place: its bytes say nothing */
    plain = 0;
    ok(sig_tlsrec_open(&twin, ciphers, bad, &n, &plain) == 0 && plain == 7 && memcmp(bad, "forged?", 7) == 0,
       "the same record untouched opens with the same keys right after the refusal");
    for (i = 1, failures = 0; i != 6; ++i)
        failures += !transfer(&d[i].server, &d[i].client, data, 1000, 0) + !transfer(&d[i].client, &d[i].server, data, 1000, 0);
    is_int(failures, 0, "the other five connections carry on");
    sig_tlsrec_dispose(&twin);
    for (i = 0; i != 6; ++i)
        duo_dispose(&d[i]);

    {
        /* a second contexts object, and destroy(NULL) */
        sig_tlsrec_ciphers_t *other = sig_tlsrec_ciphers_create();
        duo_t e;
        sig_tlsrec_ciphers_t *saved = ciphers;
        duo_init(&e, SIG_TLSREC_CHACHA20_POLY1305_SHA256, 0, 0, 3);
        ciphers = other;
        ok(other != NULL && transfer(&e.server, &e.client, data, sizeof(data), 0), "a second sig_tlsrec_ciphers_t works alike");
        duo_dispose(&e);
        ciphers = saved;
        sig_tlsrec_ciphers_destroy(other);
        sig_tlsrec_ciphers_destroy(NULL);
    }
}

/* More connections than a thread keeps keyed: slots shared by several keys, every suite, KeyUpdates among them; once
 * each connection is forgotten no key is left in the contexts (a KeyUpdate wiped the old one itself). */
static void test_many_connections(void)
{
    enum { N = 600 };
    static duo_t d[N];
    sig_tlsrec_ciphers_t *saved = ciphers;
    uint8_t data[300];
    size_t i, round, failures = 0;

    ciphers = sig_tlsrec_ciphers_create();
    fill_pattern(data, sizeof(data), 99);
    for (i = 0; i != N; ++i)
        duo_init(&d[i], suites[i % 3], i, 2 * i, (uint32_t)(1000 + 2 * i));
    for (round = 0; round != 3; ++round)
        for (i = 0; i != N; ++i) {
            if (round == 1 && i % 7 == 0)
                d[i].server.key_update_due = 1; /* ours, then the client's answer below */
            if (round == 1 && i % 11 == 0)
                d[i].client.key_update_due = 1;
            failures += !transfer(&d[i].server, &d[i].client, data, 1 + (i + round) % sizeof(data), 0) +
                        !transfer(&d[i].client, &d[i].server, data, sizeof(data) - (i + round) % 50, 0);
        }
    is_int(failures, 0, "%d connections (all suites) in turn on one sig_tlsrec_ciphers_t, 3 rounds both ways, KeyUpdates", N);
    ok(sig_tlsrec_ciphers_keyed(ciphers) > 256, "contexts keyed for more than one slot's worth of connections (%zu)",
       sig_tlsrec_ciphers_keyed(ciphers));
    for (i = 0; i != N; ++i) {
        sig_tlsrec_ciphers_forget(ciphers, &d[i].server);
        sig_tlsrec_ciphers_forget(ciphers, &d[i].client);
        duo_dispose(&d[i]);
    }
    is_int((int)sig_tlsrec_ciphers_keyed(ciphers), 0, "no key left once every connection was forgotten, KeyUpdates included");
    sig_tlsrec_ciphers_destroy(ciphers);
    ciphers = saved;
}

static void test_dispose(void)
{
    size_t i;
    for (i = 0; i != 3; ++i) {
        duo_t d;
        duo_init(&d, suites[i], 5, 6, 11);
        d.server.key_update_due = 1;
        transfer(&d.server, &d.client, (const uint8_t *)"before", 6, 0);
        ok(!all_zero(d.server.write.secret, d.server.secret_len) && !all_zero(d.server.write.key, d.server.key_len),
           "%s: secrets and keys in use", suite_name(suites[i]));
        duo_dispose(&d);
        ok(all_zero(d.server.read.secret, sizeof(d.server.read.secret)) && all_zero(d.server.read.key, sizeof(d.server.read.key)) &&
               all_zero(d.server.read.iv, sizeof(d.server.read.iv)) &&
               all_zero(d.server.write.secret, sizeof(d.server.write.secret)) &&
               all_zero(d.server.write.key, sizeof(d.server.write.key)) && all_zero(d.server.write.iv, sizeof(d.server.write.iv)),
           "%s: dispose wipes both directions' secret, key and IV", suite_name(suites[i]));
    }
}

int main(void)
{
    size_t i;

    harness_start();
    for (i = 0; i != 3; ++i) {
        test_crafted(suites[i]);
        test_headers(suites[i]);
        test_sequence_numbers(suites[i]);
        test_rekey_limit(suites[i]);
        test_duo(suites[i]);
    }
    test_shared_ciphers();
    test_many_connections();
    test_dispose();
    return harness_done();
}
