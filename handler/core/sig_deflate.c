/*
 * permessage-deflate through zlib (see sig_deflate.h): raw deflate streams, reset before every message.
 */
#include <limits.h>
#include <string.h>
#include <zlib.h>
#include "core/sig_deflate.h"

struct st_sig_deflate_t {
    z_stream z;
};

struct st_sig_inflate_t {
    z_stream z;
};

static voidpf zalloc_cb(voidpf opaque, uInt items, uInt size)
{
    return sig_mem_alloc((size_t)items * size); /* uInt * uInt fits in a 64-bit size_t */
}

static void zfree_cb(voidpf opaque, voidpf p)
{
    free(p);
}

/* ---- sending ---- */

sig_deflate_t *sig_deflate_create(int window_bits, int level, int mem_level)
{
    sig_deflate_t *d = sig_mem_alloc(sizeof(*d));

    memset(d, 0, sizeof(*d));
    d->z.zalloc = zalloc_cb;
    d->z.zfree = zfree_cb;
    /* a negative windowBits: raw deflate, no zlib header or trailer (RFC 7692 7.2.1 sends bare DEFLATE) */
    if (deflateInit2(&d->z, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(d);
        return NULL;
    }
    return d;
}

void sig_deflate_destroy(sig_deflate_t *d)
{
    if (d == NULL)
        return;
    deflateEnd(&d->z);
    free(d);
}

size_t sig_deflate_message(sig_deflate_t *d, const void *src, size_t len, void *dst, size_t cap)
{
    static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
    size_t n;

    if (len > UINT_MAX || cap > UINT_MAX)
        return SIZE_MAX; /* zlib counts in uInt; no message of ours is that long */
    /* no context takeover: the message is compressed alone (this also forgets a previous message that did not fit) */
    deflateReset(&d->z);
    d->z.next_in = (Bytef *)src;
    d->z.avail_in = (uInt)len;
    d->z.next_out = dst;
    d->z.avail_out = (uInt)cap;
    /* Z_SYNC_FLUSH: all the input, then an empty stored block (BFINAL 0), byte-aligned: ... 00 00 ff ff.
     * No room left means zlib may hold more: the result does not fit. */
    if (deflate(&d->z, Z_SYNC_FLUSH) != Z_OK || d->z.avail_in != 0 || d->z.avail_out == 0)
        return SIZE_MAX;
    n = cap - d->z.avail_out;
    if (n < sizeof(tail) || memcmp((unsigned char *)dst + n - sizeof(tail), tail, sizeof(tail)) != 0)
        return SIZE_MAX; /* zlib always ends a sync flush so; never seen otherwise */
    return n - sizeof(tail);
}

/* ---- receiving ---- */

sig_inflate_t *sig_inflate_create(void)
{
    sig_inflate_t *inf = sig_mem_alloc(sizeof(*inf));

    memset(inf, 0, sizeof(*inf));
    inf->z.zalloc = zalloc_cb;
    inf->z.zfree = zfree_cb;
    /* the largest window reads data made with any smaller one, so the client's client_max_window_bits does not matter */
    if (inflateInit2(&inf->z, -15) != Z_OK) {
        free(inf);
        return NULL;
    }
    return inf;
}

void sig_inflate_destroy(sig_inflate_t *inf)
{
    if (inf == NULL)
        return;
    inflateEnd(&inf->z);
    free(inf);
}

int sig_inflate_message(sig_inflate_t *inf, const void *src, size_t len, size_t max, sig_buf_t *out)
{
    z_stream *z = &inf->z;
    const Bytef *in = src;
    size_t in_left = len, limit = max == SIZE_MAX ? SIZE_MAX : max + 1; /* output past max is one byte too many */

    out->len = 0;
    if (len == 0)
        return 0; /* RSV1 on an empty payload: the empty message (there is no data to hold anything else) */
    inflateReset(z);
    z->avail_in = 0;
    for (;;) {
        size_t room, before;
        int ret;

        if (z->avail_in == 0 && in_left != 0) {
            size_t take = in_left < UINT_MAX ? in_left : UINT_MAX;
            z->next_in = (Bytef *)in;
            z->avail_in = (uInt)take;
            in += take;
            in_left -= take;
        }
        if (out->cap == out->len) {
            /* grow by what is there already (at least 4x the input, at least 256 bytes), but never past `limit` */
            size_t step = len > SIZE_MAX / 4 ? SIZE_MAX : 4 * len;
            if (step < out->len)
                step = out->len;
            if (step < 256)
                step = 256;
            if (step > limit - out->len)
                step = limit - out->len;
            sig_buf_reserve(out, step);
        }
        room = out->cap - out->len;
        if (room > limit - out->len)
            room = limit - out->len;
        if (room > UINT_MAX)
            room = UINT_MAX;
        z->next_out = (Bytef *)out->base + out->len;
        z->avail_out = (uInt)room;
        before = room;
        ret = inflate(z, Z_SYNC_FLUSH);
        out->len += before - z->avail_out;
        if (out->len > max)
            return SIG_ERR_MESSAGE_TOO_LARGE; /* stop here: not one more byte is inflated */
        switch (ret) {
        case Z_STREAM_END:
            return 0; /* a final block (7.2.3.4): what follows it in the message is not data */
        case Z_OK:
        case Z_BUF_ERROR: /* Z_BUF_ERROR: no progress was possible */
            if (z->avail_out == 0)
                continue; /* the output is full and more may be pending: more room */
            if (z->avail_in != 0) {
                if (ret == Z_BUF_ERROR)
                    return SIG_ERR_BAD_DEFLATE; /* stuck with input and room: never seen, but never loop */
                continue;
            }
            if (in_left != 0)
                continue; /* the next piece of a message longer than 4 GB */
            /* all the input is read and zlib stopped for want of more: the message must end where the stripped
             * 00 00 ff ff would begin (zlib waits for the length of an empty stored block: inflateSyncPoint), or
             * between two blocks (data_type has 128 then: the sender kept the tail, or ended on a block boundary).
             * Anything else is data cut inside a block. */
            return inflateSyncPoint(z) == 1 || (z->data_type & 128) != 0 ? 0 : SIG_ERR_BAD_DEFLATE;
        default: /* Z_DATA_ERROR; Z_NEED_DICT cannot happen in raw mode; Z_MEM_ERROR neither (sig_mem_alloc aborts) */
            return SIG_ERR_BAD_DEFLATE;
        }
    }
}
