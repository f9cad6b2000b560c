/*
 * fuzz_wsframe.c: libFuzzer target for the WebSocket frame reader (handler/core/sig_wsframe.c).
 *
 * The first input byte sets the reader up: bits 0-2 pick max_message_size from {0, 1, 10, 125, 126, 1000, 65536,
 * SIZE_MAX}, bit 3 is binary_ok, bits 4-7 how the stream is cut (0: all at once, n: chunks of 1..2^n bytes drawn
 * from a generator seeded by the input). The rest is what a client sent. It is read twice, as a connection would:
 * the bytes not consumed are kept, each chunk is appended, sig_wsframe_read() is called until NEED_MORE,
 * CLOSE_RECEIVED or ERROR, and `consumed` bytes are dropped after each event. Once in one chunk, once in the chunks
 * the first byte chose: both must give the same events (type, opcode, code, payload) and leave the same bytes.
 *
 * Each call gets a copy of the kept bytes in a buffer of exactly their size, so ASan sees any read past `len`.
 * Checks (a failure abort()s, which libFuzzer reports as a crash):
 * - consumed <= len; the bytes past `consumed` are left as they were (unless ERROR: the caller stops then);
 * - MESSAGE: opcode TEXT or BINARY (BINARY only with binary_ok), len <= max_message_size, a text is strict UTF-8
 *   (by sig_utf8_feed() and by the independent validator of fuzz_check.h);
 * - PING/PONG: at most 125 bytes; CLOSE_RECEIVED: a code a peer may send (1000-1003, 1007-1011, 3000-4999), or 1005
 *   with no reason; the reason at most 123 bytes of strict UTF-8;
 * - ERROR: code 1002, 1003, 1007 or 1009 with a reason; reader.failed set, and the next call returns ERROR again;
 * - every payload byte is read (ASan: within the input or the reader's own buffer);
 * - the reader holds nothing after sig_wsframe_reader_dispose() (LeakSanitizer).
 * Independently: sig_utf8_feed() agrees with the validator of fuzz_check.h on the raw stream, fed in one call or
 * split at any point; sig_wsframe_encode_header() writes the shortest length form and it decodes back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_wsframe.h"
#include "fuzz_check.h"

static const size_t max_sizes[8] = {0, 1, 10, 125, 126, 1000, 65536, SIZE_MAX};

/* what a run saw: the events, serialised, and the bytes it kept at the end */
struct st_log_t {
    uint8_t *base;
    size_t len, cap;
};

static void log_append(struct st_log_t *log, const void *p, size_t n)
{
    if (log->cap - log->len < n) {
        while (log->cap - log->len < n)
            log->cap = log->cap == 0 ? 256 : log->cap * 2;
        if ((log->base = realloc(log->base, log->cap)) == NULL)
            abort();
    }
    if (n != 0)
        memcpy(log->base + log->len, p, n);
    log->len += n;
}

static int is_peer_close_code(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

/* Checks one event against the contract and logs it. Returns 1 when the caller stops reading. */
static int check_event(sig_wsframe_reader_t *reader, const sig_wsframe_event_t *ev, const char *input, size_t len,
                       struct st_log_t *log)
{
    volatile uint8_t sink = 0;
    uint8_t head[4 + sizeof(uint16_t) + sizeof(size_t)];
    size_t i;

    /* touch every byte: ASan reports a payload that is neither within the input nor in a live buffer */
    if (ev->len != 0) {
        FUZZ_CHECK(ev->payload != NULL, "event with a length but no payload");
        for (i = 0; i != ev->len; ++i)
            sink ^= (uint8_t)ev->payload[i];
        /* in place or in a buffer of its own, never straddling the end of the input */
        if ((const char *)ev->payload >= input && (const char *)ev->payload < input + len)
            FUZZ_CHECK(ev->len <= (size_t)(input + len - ev->payload), "payload runs past the end of the input");
    }
    (void)sink;

    switch (ev->type) {
    case SIG_WSFRAME_NEED_MORE:
        return 0;
    case SIG_WSFRAME_MESSAGE:
        FUZZ_CHECK(ev->opcode == SIG_WSFRAME_TEXT || ev->opcode == SIG_WSFRAME_BINARY, "message opcode not TEXT or BINARY");
        FUZZ_CHECK(ev->opcode == SIG_WSFRAME_TEXT || reader->binary_ok, "binary message without binary_ok");
        FUZZ_CHECK(ev->len <= reader->max_message_size, "message longer than max_message_size");
        if (ev->opcode == SIG_WSFRAME_TEXT) {
            FUZZ_CHECK(sig_utf8_feed(SIG_UTF8_ACCEPT, (const uint8_t *)ev->payload, ev->len) == SIG_UTF8_ACCEPT,
                       "text message is not UTF-8 (sig_utf8_feed)");
            FUZZ_CHECK(fuzz_utf8_valid(ev->payload, ev->len), "text message is not UTF-8 (reference validator)");
        }
        break;
    case SIG_WSFRAME_PING_RECEIVED:
    case SIG_WSFRAME_PONG_RECEIVED:
        FUZZ_CHECK(ev->len <= 125, "control frame payload over 125 bytes");
        break;
    case SIG_WSFRAME_CLOSE_RECEIVED:
        FUZZ_CHECK(is_peer_close_code(ev->code) || (ev->code == 1005 && ev->len == 0), "close code a peer may not send");
        FUZZ_CHECK(ev->len <= 123, "close reason over 123 bytes");
        FUZZ_CHECK(fuzz_utf8_valid(ev->payload, ev->len), "close reason is not UTF-8");
        break;
    case SIG_WSFRAME_ERROR:
        FUZZ_CHECK(ev->code == 1002 || ev->code == 1003 || ev->code == 1007 || ev->code == 1009,
                   "error code not 1002/1003/1007/1009");
        FUZZ_CHECK(ev->reason != NULL && ev->reason[0] != '\0', "error without a reason");
        FUZZ_CHECK(ev->code != 1003 || !reader->binary_ok, "1003 although binary_ok");
        FUZZ_CHECK(reader->failed, "ERROR without reader.failed");
        break;
    default:
        FUZZ_CHECK(0, "unknown event type");
    }

    /* the log: type, opcode, code, length, payload (NEED_MORE is not logged: it depends on the chunks) */
    head[0] = (uint8_t)ev->type;
    head[1] = ev->type == SIG_WSFRAME_MESSAGE ? ev->opcode : 0;
    head[2] = head[3] = 0;
    memcpy(head + 4, ev->type == SIG_WSFRAME_CLOSE_RECEIVED || ev->type == SIG_WSFRAME_ERROR ? &ev->code : &(uint16_t){0},
           sizeof(uint16_t));
    memcpy(head + 4 + sizeof(uint16_t), &ev->len, sizeof(size_t));
    log_append(log, head, sizeof(head));
    log_append(log, ev->payload, ev->len);
    return ev->type == SIG_WSFRAME_CLOSE_RECEIVED || ev->type == SIG_WSFRAME_ERROR;
}

/* the chunk sizes: a xorshift generator, so that a run is a function of the input alone */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Feeds `stream` to a fresh reader as a connection would, in chunks of 1..2^chunk_bits bytes (0: one chunk). */
static void run(uint8_t config, const uint8_t *stream, size_t size, unsigned chunk_bits, uint32_t seed, struct st_log_t *log)
{
    sig_wsframe_reader_t reader;
    sig_wsframe_event_t ev;
    uint8_t *pending = malloc(size + 1);
    size_t pending_len = 0, off = 0, consumed;
    int stopped = 0;

    if (pending == NULL)
        abort();
    memset(&reader, 0, sizeof(reader));
    reader.max_message_size = max_sizes[config & 7];
    reader.binary_ok = (config >> 3) & 1;

    while (off != size && !stopped) {
        size_t chunk = chunk_bits == 0 ? size - off : 1 + next_rand(&seed) % ((size_t)1 << chunk_bits);
        if (chunk > size - off)
            chunk = size - off;
        memcpy(pending + pending_len, stream + off, chunk);
        pending_len += chunk;
        off += chunk;
        for (;;) {
            /* the bytes kept, in a buffer of exactly their size (what the reader reads past `len` is an ASan report) */
            char *input = malloc(pending_len + 1);
            if (input == NULL)
                abort();
            memcpy(input, pending, pending_len);
            consumed = SIZE_MAX;
            sig_wsframe_read(&reader, input, pending_len, &consumed, &ev);
            FUZZ_CHECK(consumed <= pending_len, "consumed more than the input");
            if (ev.type != SIG_WSFRAME_ERROR)
                FUZZ_CHECK(memcmp(input + consumed, pending + consumed, pending_len - consumed) == 0,
                           "the reader changed bytes it did not consume");
            stopped = check_event(&reader, &ev, input, pending_len, log);
            if (ev.type == SIG_WSFRAME_ERROR) {
                /* an error sticks */
                sig_wsframe_event_t again;
                size_t consumed2 = SIZE_MAX;
                sig_wsframe_read(&reader, input + consumed, pending_len - consumed, &consumed2, &again);
                FUZZ_CHECK(again.type == SIG_WSFRAME_ERROR, "a call after an ERROR did not return ERROR");
                FUZZ_CHECK(consumed2 <= pending_len - consumed, "consumed more than the input after an ERROR");
            }
            free(input);
            memmove(pending, pending + consumed, pending_len - consumed);
            pending_len -= consumed;
            if (ev.type == SIG_WSFRAME_NEED_MORE || stopped)
                break;
        }
    }
    /* what is left: the same whatever the chunks (unless the reader stopped, when the rest is unread) */
    if (!stopped) {
        uint8_t mark = 0xff;
        log_append(log, &mark, 1);
        log_append(log, pending, pending_len);
    }
    free(pending);
    sig_wsframe_reader_dispose(&reader);
    FUZZ_CHECK(reader.msg.base == NULL && reader.delivered == NULL, "dispose left a buffer in the reader");
}

static void check_utf8(const uint8_t *data, size_t size)
{
    int valid = fuzz_utf8_valid((const char *)data, size);
    uint32_t state = sig_utf8_feed(SIG_UTF8_ACCEPT, data, size), split;
    size_t at = size == 0 ? 0 : data[0] % (size + 1);

    FUZZ_CHECK((state == SIG_UTF8_ACCEPT) == valid, "sig_utf8_feed disagrees with the reference validator");
    split = sig_utf8_feed(sig_utf8_feed(SIG_UTF8_ACCEPT, data, at), data + at, size - at);
    FUZZ_CHECK(split == state, "sig_utf8_feed ends in another state when the input is split");
}

static void check_encode(const uint8_t *data, size_t size)
{
    uint8_t h[SIG_WSFRAME_MAX_SERVER_HEADER];
    uint64_t want = 0, got;
    size_t n, i;

    for (i = 0; i != size && i != 8; ++i)
        want = want << 8 | data[i];
    want >>= size != 0 ? data[0] % 64 : 0; /* short lengths too */
    n = sig_wsframe_encode_header(h, size != 0 ? data[0] & 0xf : SIG_WSFRAME_TEXT, want);
    FUZZ_CHECK(n == (want < 126 ? 2 : want < 65536 ? 4 : 10), "encoded header not in the shortest length form");
    FUZZ_CHECK((h[0] & 0xf0) == 0x80 && (h[1] & 0x80) == 0, "encoded header: FIN not alone or mask bit set");
    if (n == 2) {
        got = h[1];
    } else {
        FUZZ_CHECK(h[1] == (n == 4 ? 126 : 127), "encoded header: wrong length marker");
        for (got = 0, i = 2; i != n; ++i)
            got = got << 8 | h[i];
    }
    FUZZ_CHECK(got == want, "encoded length does not decode back");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_log_t whole = {NULL, 0, 0}, chunked = {NULL, 0, 0};
    uint8_t config;
    unsigned chunk_bits;
    uint32_t seed;

    check_utf8(data, size);
    check_encode(data, size);
    if (size == 0)
        return 0;
    config = data[0];
    chunk_bits = config >> 4;
    seed = 0x9e3779b9u ^ (uint32_t)size * 2654435761u ^ config;

    run(config, data + 1, size - 1, 0, seed, &whole);
    if (chunk_bits != 0) {
        run(config, data + 1, size - 1, chunk_bits, seed, &chunked);
        FUZZ_CHECK(whole.len == chunked.len && memcmp(whole.base, chunked.base, whole.len) == 0,
                   "the events depend on how the stream was cut into chunks");
    }
    free(whole.base);
    free(chunked.base);
    return 0;
}
