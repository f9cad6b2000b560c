/*
 * WebSocket extension negotiation, with no sockets: the permessage-deflate offers (RFC 7692 section 5 and 7.1) in a
 * client's Sec-WebSocket-Extensions header, and the server's answer.
 *
 * The header is a list of offers in the client's order of preference (RFC 6455 section 9.1):
 *     permessage-deflate; client_max_window_bits, permessage-deflate, x-webkit-deflate-frame
 * each an extension name and `; name[=value]` parameters, a value a token or a quoted string. The first
 * permessage-deflate offer we can accept wins. An offer is declined, and the next one tried, when it has a parameter
 * RFC 7692 does not define for an offer, a parameter twice, a value where none may be, no value where one must be, or
 * a value out of range (RFC 7692 section 5 lists these as the server's reasons to decline); or when it asks what zlib
 * cannot do: server_max_window_bits=8 (zlib's raw deflate has no 256-byte window: deflateInit2 refuses it). A list
 * element that does not parse is skipped the same way. Declining every offer is not an error: the connection is then
 * uncompressed.
 *
 * The answer always carries server_no_context_takeover and client_no_context_takeover: each message is compressed
 * alone, both ways, so nothing is kept per connection between messages. RFC 7692 7.1.1.1 lets the server answer
 * server_no_context_takeover whether or not it was offered, and 7.1.1.2 client_no_context_takeover ("A server MAY
 * include the client_no_context_takeover extension parameter in an extension negotiation response"); a client must
 * then reset its compressor after each message. client_max_window_bits is never answered: we inflate with the largest
 * window, which reads any smaller one, so the client's choice does not matter to us. server_max_window_bits is
 * answered with the offered value when the offer had one (7.1.2.1: the server accepts it by answering the same or a
 * smaller value) and our compressor then uses that window.
 */
#ifndef SIG_WSEXT_H
#define SIG_WSEXT_H

#include <stddef.h>

/** The longest answer sig_wsext_deflate_answer() writes, NUL included. */
#define SIG_WSEXT_MAX_ANSWER 128

/** An accepted permessage-deflate offer. */
typedef struct st_sig_wsext_deflate_t {
    int server_window_bits; /* the window our compressor may use: 9..15 (15 unless the client asked for less) */
    int answer_window_bits; /* 1: the offer had server_max_window_bits, the answer repeats it */
} sig_wsext_deflate_t;

/**
 * Looks for an acceptable permessage-deflate offer in one Sec-WebSocket-Extensions value (`len` bytes, not
 * NUL-terminated). Returns 1 and fills `out` for the first acceptable offer, 0 when there is none (none offered, all
 * declined, or the value does not parse). A request with several such header lines is one list: call this for each
 * line in order until it returns 1.
 */
int sig_wsext_parse_deflate(const char *value, size_t len, sig_wsext_deflate_t *out);

/**
 * Writes the Sec-WebSocket-Extensions value that accepts `offer` to `dst` (room for SIG_WSEXT_MAX_ANSWER bytes), NUL
 * terminated: `permessage-deflate; server_no_context_takeover; client_no_context_takeover` and, when the offer asked,
 * `; server_max_window_bits=N`. Returns its length.
 */
size_t sig_wsext_deflate_answer(const sig_wsext_deflate_t *offer, char *dst);

#endif
