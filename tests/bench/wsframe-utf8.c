/*
 * wsframe-utf8.c: a micro-benchmark of the UTF-8 check of text frames (issue 15, item 4). It prints figures and asserts
 * nothing. For a 1 KB and a 16 KB message, ASCII (JSON as clients send it) and mixed (a third of it CJK and emoji):
 *   check, whole     sig_utf8_is_valid() over the unmasked message: the check alone, as the reader made it once the
 *                    frame was complete
 *   check, N pieces  sig_utf8_feed() over the same bytes in pieces of N, the state carried from one to the next
 *   read, 1 read     sig_wsframe_read() on the whole masked frame (copied into the input first; the copy is timed in
 *                    "copy" and included here): header, unmask, check, the message
 *   read, N-byte reads  the frame arriving in reads of N bytes, read as a connection does (keep, append, read again):
 *                    the reader checks what has arrived of a text frame at every read, not only once it is complete
 * Each figure is the best of 7 runs of at least 20 ms, in ns per message (and MB/s of payload).
 *
 * Build and run it on the reader of the tree:
 *   cc -O2 -Ihandler tests/bench/wsframe-utf8.c handler/core/sig_wsframe.c handler/common/sig_common.c -o /tmp/b && /tmp/b
 * With -DOTHER_READER it also times another reader in the same binary, its symbols renamed other_*, each "read" row
 * run in turn on both (so the shared code and the machine's load are the same for the two): e.g. the reader from
 * before text was checked as it arrives (068e87e, which checked each frame once it was complete):
 *   git show 068e87e:handler/core/sig_wsframe.c >/tmp/old.c
 *   cc -O2 -Ihandler -c /tmp/old.c -o /tmp/old.o -Dsig_wsframe_read=other_wsframe_read \
 *      -Dsig_wsframe_reader_dispose=other_wsframe_reader_dispose -Dsig_wsframe_encode_header=other_wsframe_encode_header
 *   cc -O2 -Ihandler -DOTHER_READER tests/bench/wsframe-utf8.c /tmp/old.o handler/core/sig_wsframe.c \
 *      handler/common/sig_common.c -o /tmp/b && taskset -c 1 /tmp/b
 * (the other reader must fit in this tree's sig_wsframe_reader_t: it only ever gets one zeroed here)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/sig_wsframe.h"

static uint8_t frame_bytes[20000], input[20000], unmasked[20000];
static size_t frame_len, payload_len;
static volatile size_t sink;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* the message: JSON of `len` bytes, ASCII or with a third of CJK and emoji, valid UTF-8 */
static void make_message(size_t len, int mixed)
{
    static const char *const ascii[] = {"{\"type\":\"dialing\",", "\"receiverUserId\":\"2211\",", "\"field1\":\"v=0 o=- 4611 ",
                                        "IN IP4 127.0.0.1 s=- t=0 0 ", "a=group:BUNDLE 0 1 ", "m=audio 9 UDP/TLS/RTP/SAVPF 111 "};
    static const char *const wide[] = {"用户", "对方未建立链接", "😀", "é", "中文"};
    size_t n = 0, i = 0;
    while (n < len) {
        const char *s = mixed && i % 3 == 2 ? wide[i % 5] : ascii[i % 6];
        size_t k = strlen(s);
        if (n + k > len) { /* pad with ASCII to the exact length */
            memset(unmasked + n, 'x', len - n);
            n = len;
            break;
        }
        memcpy(unmasked + n, s, k);
        n += k;
        ++i;
    }
    payload_len = len;
    if (!sig_utf8_is_valid((const char *)unmasked, len))
        abort();
    /* the masked client frame */
    {
        static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
        uint8_t *p = frame_bytes;
        *p++ = 0x81;
        if (len < 126) {
            *p++ = 0x80 | (uint8_t)len;
        } else {
            *p++ = 0x80 | 126;
            *p++ = (uint8_t)(len >> 8);
            *p++ = (uint8_t)len;
        }
        memcpy(p, key, 4);
        p += 4;
        for (i = 0; i != len; ++i)
            p[i] = unmasked[i] ^ key[i & 3];
        frame_len = (size_t)(p - frame_bytes) + len;
    }
}

static size_t piece; /* for the piecewise runs */

typedef void (*read_fn_t)(sig_wsframe_reader_t *, char *, size_t, size_t *, sig_wsframe_event_t *);
static read_fn_t read_fn = sig_wsframe_read;
#ifdef OTHER_READER
void other_wsframe_read(sig_wsframe_reader_t *reader, char *input, size_t len, size_t *consumed, sig_wsframe_event_t *event);
#endif

static void bench_copy(void)
{
    memcpy(input, frame_bytes, frame_len);
    sink += input[frame_len - 1];
}

static void bench_check_whole(void)
{
    sink += (size_t)sig_utf8_is_valid((const char *)unmasked, payload_len);
}

static void bench_check_pieces(void)
{
    uint32_t state = SIG_UTF8_ACCEPT;
    size_t off;
    for (off = 0; off < payload_len; off += piece)
        state = sig_utf8_feed(state, unmasked + off, payload_len - off < piece ? payload_len - off : piece);
    sink += state;
}

static void bench_read_whole(void)
{
    sig_wsframe_reader_t reader;
    sig_wsframe_event_t ev;
    size_t consumed;
    memset(&reader, 0, sizeof(reader));
    reader.max_message_size = 1 << 20;
    memcpy(input, frame_bytes, frame_len);
    read_fn(&reader, (char *)input, frame_len, &consumed, &ev);
    if (ev.type != SIG_WSFRAME_MESSAGE || ev.len != payload_len)
        abort();
    sink += consumed;
}

/* reads of `piece` bytes appended to what is kept, as a connection does (h2o's input buffer) */
static void bench_read_pieces(void)
{
    sig_wsframe_reader_t reader;
    sig_wsframe_event_t ev;
    size_t consumed, have = 0, off = 0;
    memset(&reader, 0, sizeof(reader));
    reader.max_message_size = 1 << 20;
    while (off != frame_len) {
        size_t n = frame_len - off < piece ? frame_len - off : piece;
        memcpy(input + have, frame_bytes + off, n);
        have += n;
        off += n;
        read_fn(&reader, (char *)input, have, &consumed, &ev);
        if (ev.type == SIG_WSFRAME_ERROR)
            abort();
    }
    if (ev.type != SIG_WSFRAME_MESSAGE || ev.len != payload_len)
        abort();
    sink += consumed;
}

static double time_once(void (*fn)(void))
{
    size_t iters = 0, batch = 64, i;
    double start = now_ns(), t;
    do {
        for (i = 0; i != batch; ++i)
            fn();
        iters += batch;
    } while ((t = now_ns() - start) < 20e6);
    return t / iters;
}

/* the best of 7 runs; a "read" row with OTHER_READER: the best of 7 on each reader, in turn */
static void report(const char *what, void (*fn)(void))
{
    double best = 1e30, best_other = 1e30, t;
    int run, other = 0;
#ifdef OTHER_READER
    other = strncmp(what, "read", 4) == 0;
#endif
    for (run = 0; run != 7; ++run) {
        read_fn = sig_wsframe_read;
        if ((t = time_once(fn)) < best)
            best = t;
#ifdef OTHER_READER
        if (other) {
            read_fn = other_wsframe_read;
            if ((t = time_once(fn)) < best_other)
                best_other = t;
            read_fn = sig_wsframe_read;
        }
#endif
    }
    printf("  %-24s %9.1f ns %8.0f MB/s", what, best, payload_len / best * 1e3);
    if (other)
        printf("   other reader %9.1f ns (this one %+5.1f%%)", best_other, (best - best_other) / best_other * 100);
    printf("\n");
}

int main(void)
{
    static const size_t sizes[] = {1024, 16384};
    size_t s;
    int mixed;
    char what[64];

    for (s = 0; s != 2; ++s) {
        for (mixed = 0; mixed != 2; ++mixed) {
            make_message(sizes[s], mixed);
            printf("%zu-byte message, %s:\n", sizes[s], mixed ? "mixed (CJK, emoji)" : "ASCII");
            report("copy (in read, below)", bench_copy);
            report("check, whole", bench_check_whole);
            piece = 1460;
            report("check, 1460-byte pieces", bench_check_pieces);
            piece = 256;
            report("check, 256-byte pieces", bench_check_pieces);
            report("read, 1 read", bench_read_whole);
            piece = 1460;
            snprintf(what, sizeof(what), "read, %zu-byte reads", piece);
            report(what, bench_read_pieces);
            piece = 256;
            snprintf(what, sizeof(what), "read, %zu-byte reads", piece);
            report(what, bench_read_pieces);
        }
    }
    return 0;
}
