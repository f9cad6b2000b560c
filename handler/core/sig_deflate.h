/*
 * permessage-deflate's compression (RFC 7692 section 7.2) with no sockets: one message in, its bytes out, through zlib
 * (raw deflate, no zlib or gzip wrapper). zlib is the reference implementation of DEFLATE, well kept and already on
 * every system we run on; nothing here re-implements any of it.
 *
 * Both directions work without context takeover (sig_wsext.h negotiates it): every message is compressed and
 * decompressed alone, so one compressor and one decompressor can serve every connection of a thread, reset before
 * each message, and a connection keeps nothing between messages.
 *
 * Sending (7.2.1): the message is compressed and flushed with Z_SYNC_FLUSH, which ends the data with an empty stored
 * block, whose last 4 bytes (00 00 ff ff) are removed.
 * Receiving (7.2.2): RFC 7692 appends those 4 bytes again and inflates. We inflate the message as it came and then ask
 * zlib whether it stopped exactly where those bytes would start (inflateSyncPoint(), made for PPP, which strips the
 * same bytes) or between two blocks (a sender that kept the tail): the same data is accepted, and a message cut
 * inside a block, which appending the tail would hide, is refused. A message whose data ends with a final block
 * (BFINAL set, 7.2.3.4) is accepted there, whatever follows that block. An empty payload is the empty message.
 *
 * Memory comes from sig_mem_alloc (aborts when there is none, like the rest of the server), so zlib never fails for it.
 */
#ifndef SIG_DEFLATE_H
#define SIG_DEFLATE_H

#include <stddef.h>
#include "common/sig_common.h" /* sig_buf_t, SIG_ERR_* */

/**
 * The compressor's zlib settings: level 1 (Z_BEST_SPEED) and memLevel 8 (zlib's default), chosen by
 * tests/bench/deflate-bench.c on signaling messages (docs/performance.md#compression): the higher levels cost
 * several times the CPU for a few percent fewer bytes.
 */
#define SIG_DEFLATE_LEVEL 1
#define SIG_DEFLATE_MEM_LEVEL 8

typedef struct st_sig_deflate_t sig_deflate_t;
typedef struct st_sig_inflate_t sig_inflate_t;

/** A compressor with an LZ77 window of 2^`window_bits` bytes (9..15), zlib `level` (0..9) and `mem_level` (1..9). */
sig_deflate_t *sig_deflate_create(int window_bits, int level, int mem_level);

/** Frees a compressor (NULL is fine). */
void sig_deflate_destroy(sig_deflate_t *d);

/**
 * Compresses one message of `len` bytes into `dst`, which has room for `cap` bytes, as the payload of a
 * permessage-deflate message (the 00 00 ff ff tail removed). Returns the payload's length, or SIZE_MAX when the
 * compressed data, tail included, does not fit in `cap` bytes (give `cap` = len + 4 to learn whether compression makes
 * the message shorter than `len`: a longer result is not worth sending).
 */
size_t sig_deflate_message(sig_deflate_t *d, const void *src, size_t len, void *dst, size_t cap);

/** A decompressor that reads any window size (2^15 bytes). */
sig_inflate_t *sig_inflate_create(void);

/** Frees a decompressor (NULL is fine). */
void sig_inflate_destroy(sig_inflate_t *inf);

/**
 * Decompresses the `len` bytes of one permessage-deflate message's payload into `out`, whose content it replaces.
 * Returns 0 with the message in `out`; SIG_ERR_MESSAGE_TOO_LARGE as soon as the output passes `max` bytes (nothing more
 * is inflated: a small message that would inflate to gigabytes costs max + 1 bytes of output and the time to make
 * them); SIG_ERR_BAD_DEFLATE when the bytes are not deflate data, or do not end where a message ends (see the top of
 * this file). `out` grows to at most about max + 1 bytes (sig_buf_reserve's rounding).
 */
int sig_inflate_message(sig_inflate_t *inf, const void *src, size_t len, size_t max, sig_buf_t *out);

#endif
