/*
 * sig_proxyline.h: the PROXY protocol version 1 line (haproxy's proxy-protocol.txt, section 2.1) that a TCP load
 * balancer sends before the client's bytes, telling the client's real address. Pure: bytes in, an address out.
 *
 *     "PROXY TCP4 " SRC " " DST " " SPORT " " DPORT "\r\n"    SRC, DST: IPv4 dotted quads
 *     "PROXY TCP6 " SRC " " DST " " SPORT " " DPORT "\r\n"    SRC, DST: IPv6 (RFC 4291 text: "::", embedded IPv4)
 *     "PROXY UNKNOWN" [" " anything but "\r"] "\r\n"          the balancer does not know: keep the socket's address
 *
 * Strict, as the spec asks of a receiver (stock h2o 2.2.5 is laxer: it checks neither the destination nor the spacing):
 * - exactly one space between the words, upper-case keywords, no space before the CRLF;
 * - an IPv4 address is four decimal numbers 0..255 of 1 to 3 digits, without leading zeros ("01.2.3.4" is refused:
 *   some parsers read it as octal, so it cannot mean one thing to everyone; glibc's inet_pton refuses it too);
 * - an IPv6 address is what glibc's inet_pton accepts: up to 8 groups of 1 to 4 hex digits (either case), one "::"
 *   standing for one or more zero groups, the last 32 bits optionally as an IPv4 address as above; no zone ("%eth0"),
 *   no brackets;
 * - both addresses parse and are of the line's family (only the source is reported);
 * - a port is a decimal number 0..65535 without leading zeros ("0" itself is fine);
 * - after "UNKNOWN", anything up to the CRLF is ignored (the spec's rule), except a "\r" that is not followed by "\n";
 * - the whole line, CRLF included, is at most SIG_PROXYLINE_MAX bytes.
 */
#ifndef SIG_PROXYLINE_H
#define SIG_PROXYLINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct st_sig_proxyline_t {
    int family;       /* 4, 6, or 0 for "PROXY UNKNOWN" (the connection's own address stays) */
    uint8_t addr[16]; /* source address, network order (4 bytes used for IPv4; all zero for UNKNOWN) */
    uint16_t port;    /* source port, host order (0 for UNKNOWN) */
} sig_proxyline_t;

#define SIG_PROXYLINE_MAX 107 /* the spec's longest v1 line, CRLF included */
#define SIG_PROXYLINE_INCOMPLETE (-2)
#define SIG_PROXYLINE_INVALID (-1)

/**
 * Parses the PROXY v1 line at the start of buf[0..len). Returns its length including CRLF (> 0) and fills *out;
 * INCOMPLETE when the bytes so far could still begin a valid line and len < SIG_PROXYLINE_MAX; INVALID otherwise (not
 * a PROXY line, a bad address or port, a line longer than 107 bytes, bytes after "\r" that are not "\n"...).
 * Only the bytes up to the first wrong one (or the CRLF) are looked at: the bytes after the line are the client's.
 * "Could still begin" is judged on the grammar alone: a prefix that no completion could keep within 107 bytes (a long
 * UNKNOWN line, two long IPv6 addresses) stays INCOMPLETE until len reaches SIG_PROXYLINE_MAX, then is INVALID. So a
 * caller reads until the result is not INCOMPLETE, which is at the latest at SIG_PROXYLINE_MAX bytes, and a result once
 * given never changes as more bytes arrive. *out is written only on success (zeroed first).
 */
ssize_t sig_proxyline_parse(const char *buf, size_t len, sig_proxyline_t *out);

#endif
