/*
 * deflate-bench.c: a micro-benchmark of permessage-deflate on the server (issue 14, item 5). It prints figures and
 * asserts nothing. The message is a dialing whose field1 is a WebRTC offer as Chrome writes it (audio + video, BUNDLE,
 * host and srflx candidates, fresh ICE credentials, fingerprint, SSRCs and msid UUIDs), 6 KB of JSON in all; `-n N`
 * makes it N bytes instead, `-m` only prints it (for an end-to-end run with the same bytes).
 *
 * Rows, in ns per message (best of 7 runs of at least 20 ms) and bytes on the wire:
 *   OFF receive   sig_wsframe_read() on the masked text frame: unmask + UTF-8, the message handed out in place
 *   OFF send      the frame appended to an output buffer: header + memcpy (what sig_ws_send_text does)
 *   ON receive    sig_wsframe_read() on the masked compressed frame (unmask of fewer bytes), sig_inflate_message() into
 *                 the thread's buffer, sig_utf8_is_valid() on the result: what sig_ws.c does with a compressed message
 *   ON send       sig_deflate_message() into the output buffer (deflateReset + deflate + sync flush), per zlib level
 *                 and memLevel; the server uses SIG_DEFLATE_LEVEL / SIG_DEFLATE_MEM_LEVEL (core/sig_deflate.h)
 * A routed message costs one receive (the sender's dialing) and one send (the receiver's `called`, which carries the
 * same field1): ON - OFF of both is what compression adds to the server's CPU per routed message.
 *
 * Build and run it on the tree's sources:
 *   cc -O2 -Ihandler tests/bench/deflate-bench.c handler/core/sig_deflate.c handler/core/sig_wsframe.c \
 *      handler/common/sig_common.c -lz -o /tmp/deflate-bench && taskset -c 1 /tmp/deflate-bench
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/sig_deflate.h"
#include "core/sig_wsframe.h"

static char msg[1 << 20];
static size_t msg_len;
static uint8_t frame_bytes[1 << 21], input[1 << 21], out[1 << 21];
static size_t frame_len;
static volatile size_t sink;
static uint32_t rng = 2463534242u;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ---- the message ---- */

static size_t put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

static void rand_chars(char *dst, size_t n, const char *alphabet)
{
    size_t k = strlen(alphabet), i;
    for (i = 0; i != n; ++i)
        dst[i] = alphabet[next_rand() % k];
    dst[n] = '\0';
}

static void uuid(char *dst)
{
    static const char *hex = "0123456789abcdef";
    int i;
    for (i = 0; i != 36; ++i)
        dst[i] = i == 8 || i == 13 || i == 18 || i == 23 ? '-' : hex[next_rand() % 16];
    dst[36] = '\0';
}

/* A Chrome-like offer, its line ends written \r\n as JSON escapes, in a dialing of at least `want` bytes (cut to it). */
static void make_message(size_t want)
{
    char *p = msg, ufrag[5], pwd[25], stream[37], track_a[37], track_v[37], cname[17], fp[96], line[512];
    static const char *const video[][2] = {
        {"96", "VP8/90000"},    {"97", "rtx/90000"},   {"98", "VP9/90000"},   {"99", "rtx/90000"},   {"100", "VP9/90000"},
        {"101", "rtx/90000"},   {"102", "H264/90000"}, {"103", "rtx/90000"},  {"104", "H264/90000"}, {"105", "rtx/90000"},
        {"106", "H264/90000"},  {"107", "rtx/90000"},  {"108", "H264/90000"}, {"109", "rtx/90000"},  {"127", "H264/90000"},
        {"125", "rtx/90000"},   {"39", "AV1/90000"},   {"40", "rtx/90000"},   {"114", "red/90000"},  {"115", "rtx/90000"},
        {"116", "ulpfec/90000"}};
    static const char *const extmap_a[] = {
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", "urn:ietf:params:rtp-hdrext:sdes:mid"};
    static const char *const extmap_v[] = {"urn:ietf:params:rtp-hdrext:toffset",
                                           "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                                           "urn:3gpp:video-orientation",
                                           "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
                                           "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
                                           "http://www.webrtc.org/experiments/rtp-hdrext/video-content-type",
                                           "http://www.webrtc.org/experiments/rtp-hdrext/video-timing",
                                           "http://www.webrtc.org/experiments/rtp-hdrext/color-space",
                                           "urn:ietf:params:rtp-hdrext:sdes:mid",
                                           "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
                                           "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"};
    uint32_t ssrc_a = next_rand(), ssrc_v = next_rand(), ssrc_r = next_rand();
    size_t i, m;
    int k;

    rand_chars(ufrag, 4, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/");
    rand_chars(pwd, 24, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/");
    rand_chars(cname, 16, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/");
    uuid(stream);
    uuid(track_a);
    uuid(track_v);
    for (i = 0; i != 32; ++i)
        sprintf(fp + 3 * i, "%02X%s", (unsigned)(next_rand() & 0xff), i == 31 ? "" : ":");

    p += put(p, "{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":17,\"field2\":\"offer\",\"field1\":\"");
    p += sprintf(p,
                 "v=0\\r\\no=- %u%u 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0 1\\r\\na=extmap-allow-mixed\\r\\n"
                 "a=msid-semantic: WMS %s\\r\\n",
                 next_rand(), next_rand(), stream);
    for (m = 0; m != 2; ++m) {
        int is_video = m == 1;
        if (!is_video)
            p += put(p, "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\\r\\n");
        else {
            p += put(p, "m=video 9 UDP/TLS/RTP/SAVPF");
            for (i = 0; i != sizeof(video) / sizeof(video[0]); ++i)
                p += sprintf(p, " %s", video[i][0]);
            p += put(p, "\\r\\n");
        }
        p += put(p, "c=IN IP4 0.0.0.0\\r\\na=rtcp:9 IN IP4 0.0.0.0\\r\\n");
        for (k = 0; k != 2; ++k) { /* host and srflx candidates, udp */
            p += sprintf(p, "a=candidate:%u 1 udp %u 192.168.%u.%u %u typ host generation 0 network-id 1\\r\\n", next_rand(),
                         2122260223u - (unsigned)k, next_rand() % 256, next_rand() % 256, 40000 + next_rand() % 20000);
            p += sprintf(
                p, "a=candidate:%u 1 udp %u 203.0.%u.%u %u typ srflx raddr 192.168.1.23 rport %u generation 0 network-id 1\\r\\n",
                next_rand(), 1686052607u - (unsigned)k, next_rand() % 256, next_rand() % 256, 40000 + next_rand() % 20000,
                40000 + next_rand() % 20000);
        }
        p += sprintf(p,
                     "a=ice-ufrag:%s\\r\\na=ice-pwd:%s\\r\\na=ice-options:trickle\\r\\na=fingerprint:sha-256 %s\\r\\n"
                     "a=setup:actpass\\r\\na=mid:%zu\\r\\n",
                     ufrag, pwd, fp, m);
        for (i = 0; i != (is_video ? sizeof(extmap_v) : sizeof(extmap_a)) / sizeof(extmap_a[0]); ++i)
            p += sprintf(p, "a=extmap:%zu %s\\r\\n", i + 1, is_video ? extmap_v[i] : extmap_a[i]);
        p += sprintf(p, "a=sendrecv\\r\\na=msid:%s %s\\r\\na=rtcp-mux\\r\\n", stream, is_video ? track_v : track_a);
        if (!is_video) {
            p += put(p, "a=rtpmap:111 opus/48000/2\\r\\na=rtcp-fb:111 transport-cc\\r\\na=fmtp:111 minptime=10;useinbandfec=1\\r\\n"
                        "a=rtpmap:63 red/48000/2\\r\\na=fmtp:63 111/111\\r\\na=rtpmap:9 G722/8000\\r\\na=rtpmap:0 PCMU/8000\\r\\n"
                        "a=rtpmap:8 PCMA/8000\\r\\na=rtpmap:13 CN/8000\\r\\na=rtpmap:110 telephone-event/48000\\r\\n"
                        "a=rtpmap:126 telephone-event/8000\\r\\n");
            p += sprintf(p, "a=ssrc:%u cname:%s\\r\\na=ssrc:%u msid:%s %s\\r\\n", ssrc_a, cname, ssrc_a, stream, track_a);
            continue;
        }
        p += put(p, "a=rtcp-rsize\\r\\n");
        for (i = 0; i != sizeof(video) / sizeof(video[0]); ++i) {
            p += sprintf(p, "a=rtpmap:%s %s\\r\\n", video[i][0], video[i][1]);
            if (strncmp(video[i][1], "rtx", 3) == 0) {
                p += sprintf(p, "a=fmtp:%s apt=%s\\r\\n", video[i][0], video[i - 1][0]);
            } else if (strncmp(video[i][1], "red", 3) != 0 && strncmp(video[i][1], "ulp", 3) != 0) {
                p += sprintf(p,
                             "a=rtcp-fb:%s goog-remb\\r\\na=rtcp-fb:%s transport-cc\\r\\na=rtcp-fb:%s ccm fir\\r\\n"
                             "a=rtcp-fb:%s nack\\r\\na=rtcp-fb:%s nack pli\\r\\n",
                             video[i][0], video[i][0], video[i][0], video[i][0], video[i][0]);
                if (strncmp(video[i][1], "H264", 4) == 0) {
                    snprintf(line, sizeof(line),
                             "a=fmtp:%s level-asymmetry-allowed=1;packetization-mode=%d;profile-level-id=%s\\r\\n", video[i][0],
                             (int)(i / 2) % 2,
                             (i / 2) % 3 == 0   ? "42001f"
                             : (i / 2) % 3 == 1 ? "42e01f"
                                                : "4d001f");
                    p += put(p, line);
                } else if (strncmp(video[i][1], "VP9", 3) == 0) {
                    p += sprintf(p, "a=fmtp:%s profile-id=%d\\r\\n", video[i][0], strcmp(video[i][0], "98") == 0 ? 0 : 2);
                }
            }
        }
        p += sprintf(p,
                     "a=ssrc-group:FID %u %u\\r\\na=ssrc:%u cname:%s\\r\\na=ssrc:%u msid:%s %s\\r\\na=ssrc:%u cname:%s\\r\\n"
                     "a=ssrc:%u msid:%s %s\\r\\n",
                     ssrc_v, ssrc_r, ssrc_v, cname, ssrc_v, stream, track_v, ssrc_r, cname, ssrc_r, stream, track_v);
    }
    /* to the size asked: cut (not inside an escape) or padded with more candidates */
    while ((size_t)(p - msg) + 2 < want)
        p += sprintf(p, "a=candidate:%u 1 tcp %u 192.168.%u.%u 9 typ host tcptype active generation 0\\r\\n", next_rand(),
                     1518280447u, next_rand() % 256, next_rand() % 256);
    msg_len = want - 2;
    while (msg[msg_len - 1] == '\\')
        --msg_len;
    memcpy(msg + msg_len, "\"}", 2);
    msg_len += 2;
}

/* ---- timing ---- */

typedef void (*run_fn)(void);

/* Best of 7 runs of at least 20 ms, in ns per call. */
static double time_it(run_fn fn)
{
    double best = 1e30;
    int r;
    for (r = 0; r != 7; ++r) {
        size_t n = 0;
        double t0 = now_ns(), t1;
        do {
            int i;
            for (i = 0; i != 64; ++i)
                fn();
            n += 64;
            t1 = now_ns();
        } while (t1 - t0 < 20e6);
        if ((t1 - t0) / n < best)
            best = (t1 - t0) / n;
    }
    return best;
}

static size_t mask_frame(uint8_t *dst, uint8_t b0, const void *payload, size_t len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0, i;
    dst[n++] = b0;
    if (len < 126) {
        dst[n++] = 0x80 | (uint8_t)len;
    } else if (len < 65536) {
        dst[n++] = 0x80 | 126;
        dst[n++] = (uint8_t)(len >> 8);
        dst[n++] = (uint8_t)len;
    } else {
        dst[n++] = 0x80 | 127;
        for (i = 0; i != 8; ++i)
            dst[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(dst + n, key, 4);
    n += 4;
    for (i = 0; i != len; ++i)
        dst[n + i] = ((const uint8_t *)payload)[i] ^ key[i & 3];
    return n + len;
}

static sig_wsframe_reader_t reader;
static sig_inflate_t *inflater;
static sig_deflate_t *deflater;
static sig_buf_t inflated = SIG_BUF_INIT;
static int compressed_frame;

/* a connection's read: the frame is copied into the input first (the copy is part of both rows alike) */
static void run_receive(void)
{
    sig_wsframe_event_t ev;
    size_t consumed;
    memcpy(input, frame_bytes, frame_len);
    sig_wsframe_read(&reader, (char *)input, frame_len, &consumed, &ev);
    if (ev.type != SIG_WSFRAME_MESSAGE)
        abort();
    if (compressed_frame) {
        if (sig_inflate_message(inflater, ev.payload, ev.len, 1 << 20, &inflated) != 0 ||
            !sig_utf8_is_valid(inflated.base, inflated.len))
            abort();
        sink += inflated.len;
    } else {
        sink += ev.len;
    }
}

static void run_send_plain(void)
{
    size_t hl = sig_wsframe_encode_header(out, SIG_WSFRAME_TEXT, msg_len);
    memcpy(out + hl, msg, msg_len);
    sink += hl + msg_len;
}

static size_t last_compressed;
static void run_send_deflate(void)
{
    size_t n = sig_deflate_message(deflater, msg, msg_len, out + 4, msg_len + 4);
    if (n == SIZE_MAX)
        abort();
    sig_wsframe_encode_header(out, SIG_WSFRAME_TEXT, n);
    out[0] |= SIG_WSFRAME_RSV1;
    last_compressed = n;
    sink += n;
}

static size_t header_len(size_t n)
{
    return n < 126 ? 2 : n <= 0xffff ? 4 : 10;
}

int main(int argc, char **argv)
{
    static const int levels[][2] = {{1, 8}, {1, 4}, {3, 8}, {6, 8}, {9, 8}};
    size_t want = 6000, i, zlen;
    double off_rx, off_tx, on_rx, on_tx_default = 0;
    int print_only = 0, a;
    uint8_t *z;

    for (a = 1; a < argc; ++a) {
        if (strcmp(argv[a], "-m") == 0)
            print_only = 1;
        else if (strcmp(argv[a], "-n") == 0 && a + 1 < argc)
            want = (size_t)atol(argv[++a]);
    }
    if (want < 200 || want > sizeof(msg) / 2) {
        fprintf(stderr, "deflate-bench: -n must be 200 to %zu\n", sizeof(msg) / 2);
        return 2;
    }
    make_message(want);
    if (print_only) {
        fwrite(msg, 1, msg_len, stdout);
        return 0;
    }
    inflater = sig_inflate_create();
    reader.max_message_size = 1 << 20;
    reader.deflate_ok = 1;

    printf("message: a dialing with a Chrome-like offer, %zu bytes of JSON\n\n", msg_len);
    printf("%-34s %10s %12s %12s\n", "", "ns/msg", "wire bytes", "payload");

    frame_len = mask_frame(frame_bytes, 0x80 | SIG_WSFRAME_TEXT, msg, msg_len);
    compressed_frame = 0;
    off_rx = time_it(run_receive);
    printf("%-34s %10.0f %12zu %12zu\n", "OFF receive (client frame, masked)", off_rx, frame_len, msg_len);
    off_tx = time_it(run_send_plain);
    printf("%-34s %10.0f %12zu %12zu\n", "OFF send (server frame)", off_tx, header_len(msg_len) + msg_len, msg_len);

    for (i = 0; i != sizeof(levels) / sizeof(levels[0]); ++i) {
        char name[64];
        double t;
        deflater = sig_deflate_create(15, levels[i][0], levels[i][1]);
        t = time_it(run_send_deflate);
        snprintf(name, sizeof(name), "ON send, level %d memLevel %d%s", levels[i][0], levels[i][1],
                 levels[i][0] == SIG_DEFLATE_LEVEL && levels[i][1] == SIG_DEFLATE_MEM_LEVEL ? " *" : "");
        printf("%-34s %10.0f %12zu %12zu\n", name, t, header_len(last_compressed) + last_compressed, last_compressed);
        if (levels[i][0] == SIG_DEFLATE_LEVEL && levels[i][1] == SIG_DEFLATE_MEM_LEVEL)
            on_tx_default = t;
        sig_deflate_destroy(deflater);
    }

    /* what a client sends: compressed as browsers and ws do (zlib's default level), received by the server */
    deflater = sig_deflate_create(15, 6, 8);
    z = malloc(msg_len + 4);
    zlen = sig_deflate_message(deflater, msg, msg_len, z, msg_len + 4);
    sig_deflate_destroy(deflater);
    frame_len = mask_frame(frame_bytes, 0x80 | SIG_WSFRAME_RSV1 | SIG_WSFRAME_TEXT, z, zlen);
    compressed_frame = 1;
    on_rx = time_it(run_receive);
    printf("%-34s %10.0f %12zu %12zu\n", "ON receive (level 6, as clients)", on_rx, frame_len, zlen);
    free(z);

    printf("\n* the server's setting (SIG_DEFLATE_LEVEL %d, SIG_DEFLATE_MEM_LEVEL %d)\n", SIG_DEFLATE_LEVEL, SIG_DEFLATE_MEM_LEVEL);
    printf("a routed message (one receive + one send): OFF %.0f ns, ON %.0f ns: compression adds %.1f us of server CPU\n",
           off_rx + off_tx, on_rx + on_tx_default, (on_rx + on_tx_default - off_rx - off_tx) / 1000);
    sig_inflate_destroy(inflater);
    sig_buf_dispose(&inflated);
    sig_wsframe_reader_dispose(&reader);
    return (int)(sink & 0);
}
