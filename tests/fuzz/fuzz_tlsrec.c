/*
 * fuzz_tlsrec.c: libFuzzer target for the TLS 1.3 record layer (handler/core/sig_tlsrec.c): a server's
 * sig_tlsrec_open() on what a client sent, with one sig_tlsrec_ciphers_t kept across inputs as a thread keeps it.
 *
 * Byte 0 sets it up: bits 0-1 the suite (0, 1, 2, 3 = AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM), bit 2
 * the mode, bit 3 the sequence numbers (0: 0x0102030405060708 client to server, every byte of the nonce's, and 7 back;
 * 1: SIG_TLSREC_REKEY_AFTER - 2 both ways, so a few records cross our rekey). Bytes 1-2 (big endian) say where the
 * stream is cut, modulo its length + 1. The secrets are fixed.
 * - mode 0, raw: the rest is the client's bytes as they are (past the AEAD only by chance: the headers, the lengths,
 *   the partial records);
 * - mode 1, sealed: a second sig_tlsrec_t, the client (the same secrets swapped), seals records the script gives:
 *   a count byte (1 + (b & 7) seals), then per seal a byte f, its length n = f & 63 and its kind f >> 6:
 *   0: n bytes of data, 1: n * 300 bytes (past a record), 2: the client's KeyUpdate, then n bytes; the data from the
 *   input (a pattern when it runs out); 3: the next n input bytes are a TLSInnerPlaintext as they are (content, type,
 *   padding), sealed by this target with EVP under the client's current key, IV and sequence number, which gets any
 *   alert, handshake message, content type or padding past the AEAD. Then a byte of options (bit 0: close_notify
 *   after the last seal; bit 1: the server replies; bit 2: with its KeyUpdate first; bit 3: and close_notify; bits
 *   4-7: the reply's length / 16); then 0-4 mutations of 4 bytes each (kind: flip a bit, truncate, duplicate a span in
 *   place, insert a byte, remove a byte; a 16-bit position; a value).
 * The stream is opened twice by fresh servers: whole, and cut in two calls (the kept bytes moved to the front, the
 * rest appended after them), each in a buffer of exactly the stream's size (ASan sees a read or write past it).
 * Checks:
 * - every result is 0, CLOSED or one of the four errors; both openings give the same result and, unless it is an
 *   error, the same *plain, *len and bytes;
 * - on 0 or CLOSED: *plain <= *len <= the stream's length; CLOSED has *len == *plain; 0 keeps after the data exactly the
 *   last *len - *plain bytes of the input, fewer than a largest record's;
 * - sealed, not mutated, no crafted record other than application data: exactly the data sealed (a crafted record's
 *   content included: the target's own AEAD checks the keys the implementation uses), CLOSED when close_notify was
 *   sealed, nothing left; otherwise, when not refused: the data opened is a prefix of the data sealed (nothing
 *   unauthenticated comes out);
 * - every seal writes at most sig_tlsrec_sealed_max() bytes (its buffer is exactly that size); the server's reply
 *   (after its open, whatever it gave, KeyUpdate or not) opens on the client as exactly the bytes sealed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "core/sig_tlsrec.h"
#include "fuzz_check.h"

static const uint16_t suites[4] = {SIG_TLSREC_AES_128_GCM_SHA256, SIG_TLSREC_AES_256_GCM_SHA384,
                                   SIG_TLSREC_CHACHA20_POLY1305_SHA256, SIG_TLSREC_AES_128_GCM_SHA256};
static sig_tlsrec_ciphers_t *ciphers;
static uint8_t client_secret[SIG_TLSREC_MAX_SECRET], server_secret[SIG_TLSREC_MAX_SECRET];

typedef struct {
    const uint8_t *p;
    size_t left;
} input_t;

static uint8_t next_byte(input_t *in)
{
    if (in->left == 0)
        return 0;
    --in->left;
    return *in->p++;
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytes_t;

static void bytes_reserve(bytes_t *b, size_t more)
{
    if (b->p != NULL && b->len + more <= b->cap)
        return; /* never NULL once reserved, even empty: memcpy and pointer arithmetic on NULL are undefined */
    b->cap = (b->len + more) * 2 + 16;
    b->p = realloc(b->p, b->cap);
    FUZZ_CHECK(b->p != NULL, "realloc");
}

/* Seals with `t` into a buffer of exactly sig_tlsrec_sealed_max(len) bytes, appended to `out`. */
static void seal_into(sig_tlsrec_t *t, const uint8_t *data, size_t len, int close_notify, bytes_t *out)
{
    size_t max = sig_tlsrec_sealed_max(len), n;
    uint8_t *buf = malloc(max);
    FUZZ_CHECK(buf != NULL, "malloc");
    n = sig_tlsrec_seal(t, ciphers, data, len, close_notify, buf);
    FUZZ_CHECK(n <= max, "seal wrote past sig_tlsrec_sealed_max");
    bytes_reserve(out, n);
    memcpy(out->p + out->len, buf, n);
    out->len += n;
    free(buf);
}

static int known_result(int ret)
{
    return ret == 0 || ret == SIG_TLSREC_CLOSED || ret == SIG_TLSREC_ERR_RECORD || ret == SIG_TLSREC_ERR_AUTH ||
           ret == SIG_TLSREC_ERR_ALERT || ret == SIG_TLSREC_ERR_UNEXPECTED;
}

/* After a call that gave 0 or CLOSED on the first `fed` bytes of `in`. */
static void check_state(int ret, const uint8_t *buf, size_t len, size_t plain, const uint8_t *in, size_t fed)
{
    FUZZ_CHECK(plain <= len && len <= fed, "*plain <= *len <= the bytes given does not hold");
    if (ret == SIG_TLSREC_CLOSED) {
        FUZZ_CHECK(len == plain, "CLOSED with bytes left after the data");
    } else {
        size_t keep = len - plain;
        FUZZ_CHECK(keep < SIG_TLSREC_HEADER + SIG_TLSREC_MAX_CIPHERTEXT, "more kept than a record's bytes");
        FUZZ_CHECK(keep == 0 || memcmp(buf + plain, in + fed - keep, keep) == 0,
                   "the bytes kept after the data are not the input's last ones");
    }
}

typedef struct {
    int ret;
    uint8_t *buf;
    size_t len, plain;
} opened_t;

/* A fresh server opens `in` in one call (cut == n) or two. */
static void open_stream(sig_tlsrec_t *server, uint16_t suite, uint64_t read_seq, uint64_t write_seq, const uint8_t *in,
                        size_t n, size_t cut, opened_t *o)
{
    size_t secret_len = sig_tlsrec_secret_len(suite);

    FUZZ_CHECK(sig_tlsrec_init(server, suite, client_secret, server_secret, secret_len, read_seq, write_seq) == 0, "init");
    o->buf = malloc(n != 0 ? n : 1);
    FUZZ_CHECK(o->buf != NULL, "malloc");
    memcpy(o->buf, in, cut);
    o->len = cut;
    o->plain = 0;
    o->ret = sig_tlsrec_open(server, ciphers, o->buf, &o->len, &o->plain);
    FUZZ_CHECK(known_result(o->ret), "an unknown result");
    if (o->ret < 0 || cut == n)
        goto done;
    check_state(o->ret, o->buf, o->len, o->plain, in, cut);
    if (o->ret == SIG_TLSREC_CLOSED)
        goto done;
    memcpy(o->buf + o->len, in + cut, n - cut);
    o->len += n - cut;
    o->ret = sig_tlsrec_open(server, ciphers, o->buf, &o->len, &o->plain);
    FUZZ_CHECK(known_result(o->ret), "an unknown result");
done:
    if (o->ret >= 0)
        check_state(o->ret, o->buf, o->len, o->plain, in, n);
}

/* One record of the TLSInnerPlaintext `inner` as it is, under `t`'s write key at its sequence number (5.2, 5.3). */
static void seal_inner(sig_tlsrec_t *t, const uint8_t *inner, size_t len, bytes_t *out)
{
    const EVP_CIPHER *cipher = t->suite == SIG_TLSREC_AES_128_GCM_SHA256   ? EVP_aes_128_gcm()
                               : t->suite == SIG_TLSREC_AES_256_GCM_SHA384 ? EVP_aes_256_gcm()
                                                                           : EVP_chacha20_poly1305();
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    size_t ct_len = len + SIG_TLSREC_TAG, i;
    uint8_t nonce[12], *rec;
    int n;

    bytes_reserve(out, SIG_TLSREC_HEADER + ct_len);
    rec = out->p + out->len;
    rec[0] = 23;
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = (uint8_t)(ct_len >> 8);
    rec[4] = (uint8_t)ct_len;
    memcpy(nonce, t->write.iv, 12);
    for (i = 0; i != 8; ++i)
        nonce[11 - i] ^= (uint8_t)(t->write.seq >> (8 * i));
    FUZZ_CHECK(ctx != NULL && EVP_EncryptInit_ex(ctx, cipher, NULL, t->write.key, nonce) &&
                   EVP_EncryptUpdate(ctx, NULL, &n, rec, SIG_TLSREC_HEADER) &&
                   (len == 0 || EVP_EncryptUpdate(ctx, rec + SIG_TLSREC_HEADER, &n, inner, (int)len)) &&
                   EVP_EncryptFinal_ex(ctx, rec + SIG_TLSREC_HEADER + len, &n) &&
                   EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SIG_TLSREC_TAG, rec + SIG_TLSREC_HEADER + len),
               "EVP sealing");
    EVP_CIPHER_CTX_free(ctx);
    ++t->write.seq;
    out->len += SIG_TLSREC_HEADER + ct_len;
}

/* The sealed mode's script: the client's records into `stream`, the application data they carry into `data`; returns
 * the options byte (bit 0: close_notify sealed); `*crafted` is 1 when seal_inner() sealed anything but application data. */
static int seal_script(sig_tlsrec_t *client, input_t *in, bytes_t *stream, bytes_t *data, int *crafted)
{
    int seals = 1 + (next_byte(in) & 7), i;
    uint8_t options;

    for (i = 0; i != seals; ++i) {
        uint8_t f = next_byte(in), kind = f >> 6;
        size_t len = (size_t)(f & 63) * (kind == 1 ? 300 : 1), j;
        bytes_reserve(data, len);
        if (kind == 3) {
            uint8_t inner[63];
            size_t end = len;
            for (j = 0; j != len; ++j)
                inner[j] = next_byte(in);
            seal_inner(client, inner, len, stream);
            while (end != 0 && inner[end - 1] == 0) /* the padding */
                --end;
            if (end != 0 && inner[end - 1] == 23) { /* application data, under the current key: must open exactly */
                memcpy(data->p + data->len, inner, end - 1);
                data->len += end - 1;
            } else { /* an alert, a handshake message, another type, no type: the outcome is the implementation's */
                *crafted = 1;
            }
            continue;
        }
        for (j = 0; j != len; ++j)
            data->p[data->len + j] = in->left != 0 ? next_byte(in) : (uint8_t)(j * 31 + f);
        if (kind == 2)
            client->key_update_due = 1;
        seal_into(client, data->p + data->len, len, 0, stream);
        data->len += len;
    }
    options = next_byte(in);
    if (options & 1)
        seal_into(client, data->p, 0, 1, stream);
    return options;
}

static int mutate(input_t *in, bytes_t *s)
{
    int count = next_byte(in) % 5, i, changed = 0;
    for (i = 0; i != count; ++i) {
        uint8_t kind = next_byte(in), hi = next_byte(in), lo = next_byte(in), value = next_byte(in);
        size_t pos = (size_t)hi << 8 | lo, span;
        switch (kind % 5) {
        case 0: /* flip a bit */
            if (s->len == 0)
                break;
            s->p[pos % s->len] ^= (uint8_t)(1 << (value & 7));
            changed = 1;
            break;
        case 1: /* truncate */
            if (pos % (s->len + 1) != s->len)
                changed = 1;
            s->len = pos % (s->len + 1);
            break;
        case 2: /* a span again right after itself (a record replayed, when it is one) */
            pos %= s->len + 1;
            span = value < s->len - pos ? value : s->len - pos;
            bytes_reserve(s, span);
            memmove(s->p + pos + 2 * span, s->p + pos + span, s->len - pos - span);
            memcpy(s->p + pos + span, s->p + pos, span);
            s->len += span;
            changed |= span != 0;
            break;
        case 3: /* insert a byte */
            pos %= s->len + 1;
            bytes_reserve(s, 1);
            memmove(s->p + pos + 1, s->p + pos, s->len - pos);
            s->p[pos] = value;
            ++s->len;
            changed = 1;
            break;
        default: /* remove a byte */
            if (s->len == 0)
                break;
            pos %= s->len;
            memmove(s->p + pos, s->p + pos + 1, s->len - pos - 1);
            --s->len;
            changed = 1;
            break;
        }
    }
    return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    input_t in = {bytes, size};
    uint8_t config;
    uint16_t suite;
    uint64_t c_to_s, s_to_c;
    size_t cut, secret_len;
    sig_tlsrec_t client, whole_server, cut_server;
    bytes_t stream = {NULL, 0, 0}, data = {NULL, 0, 0};
    opened_t whole, split;
    int sealed, options = 0, mutated = 0, crafted = 0;

    if (ciphers == NULL) {
        size_t i;
        ciphers = sig_tlsrec_ciphers_create();
        for (i = 0; i != SIG_TLSREC_MAX_SECRET; ++i) {
            client_secret[i] = (uint8_t)(i * 7 + 1);
            server_secret[i] = (uint8_t)(i * 13 + 5);
        }
    }
    if (size < 3)
        return 0;
    config = next_byte(&in);
    cut = (size_t)next_byte(&in) << 8;
    cut |= next_byte(&in);
    suite = suites[config & 3];
    sealed = (config & 4) != 0;
    c_to_s = config & 8 ? SIG_TLSREC_REKEY_AFTER - 2 : 0x0102030405060708ull;
    s_to_c = config & 8 ? SIG_TLSREC_REKEY_AFTER - 2 : 7;
    secret_len = sig_tlsrec_secret_len(suite);
    FUZZ_CHECK(sig_tlsrec_init(&client, suite, server_secret, client_secret, secret_len, s_to_c, c_to_s) == 0, "init");

    bytes_reserve(&stream, 0);
    bytes_reserve(&data, 0);
    if (sealed) {
        options = seal_script(&client, &in, &stream, &data, &crafted);
        mutated = mutate(&in, &stream);
    } else {
        bytes_reserve(&stream, in.left);
        memcpy(stream.p, in.p, in.left);
        stream.len = in.left;
    }
    cut %= stream.len + 1;

    open_stream(&whole_server, suite, c_to_s, s_to_c, stream.p, stream.len, stream.len, &whole);
    open_stream(&cut_server, suite, c_to_s, s_to_c, stream.p, stream.len, cut, &split);
    FUZZ_CHECK(whole.ret == split.ret, "cut in two calls, the stream gives another result");
    if (whole.ret >= 0)
        FUZZ_CHECK(whole.plain == split.plain && whole.len == split.len && memcmp(whole.buf, split.buf, whole.len) == 0,
                   "cut in two calls, the stream opens to other bytes");

    if (sealed && !mutated && !crafted) {
        FUZZ_CHECK(whole.ret == ((options & 1) ? SIG_TLSREC_CLOSED : 0), "valid records refused (or CLOSED wrongly)");
        FUZZ_CHECK(whole.plain == data.len && whole.len == data.len &&
                       (data.len == 0 || memcmp(whole.buf, data.p, data.len) == 0),
                   "valid records open to other bytes");
    } else if (sealed && whole.ret >= 0) {
        FUZZ_CHECK(whole.plain <= data.len && (whole.plain == 0 || memcmp(whole.buf, data.p, whole.plain) == 0),
                   "mutated records opened to data that was not sealed");
    }

    if (sealed && whole.ret >= 0 && (options & 2)) {
        /* the server answers; the client, whose read side is untouched, opens exactly that */
        size_t reply_len = (size_t)(options >> 4) * 16, i, plain = 0, len;
        bytes_t reply = {NULL, 0, 0}, text = {NULL, 0, 0};
        int ret;
        bytes_reserve(&text, reply_len);
        for (i = 0; i != reply_len; ++i)
            text.p[i] = (uint8_t)(i * 17 + options);
        if (options & 4)
            whole_server.key_update_due = 1;
        seal_into(&whole_server, text.p, reply_len, (options & 8) != 0, &reply);
        len = reply.len;
        ret = sig_tlsrec_open(&client, ciphers, reply.p, &len, &plain);
        FUZZ_CHECK(ret == ((options & 8) ? SIG_TLSREC_CLOSED : 0) && plain == reply_len && len == reply_len &&
                       (reply_len == 0 || memcmp(reply.p, text.p, reply_len) == 0),
                   "the client does not open the server's reply exactly");
        free(reply.p);
        free(text.p);
    }

    sig_tlsrec_dispose(&client);
    sig_tlsrec_dispose(&whole_server);
    sig_tlsrec_dispose(&cut_server);
    free(whole.buf);
    free(split.buf);
    free(stream.p);
    free(data.p);
    return 0;
}
