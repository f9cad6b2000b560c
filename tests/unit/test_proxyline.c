/*
 * test_proxyline.c: the PROXY protocol v1 parser (handler/core/sig_proxyline.c) (TAP).
 *
 * Every line is checked whole and cut at every byte (each prefix INCOMPLETE, or for a bad line INVALID from the first
 * wrong byte on), from a heap buffer of exactly the bytes given so ASan sees a read past them; IPv6 addresses are
 * checked against glibc's inet_pton, which the tests may use (core/ may not).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_proxyline.h"
#include "tap.h"

static ssize_t parse_n(const char *text, size_t len, sig_proxyline_t *out)
{
    char *copy = malloc(len != 0 ? len : 1);
    ssize_t ret;
    memcpy(copy, text, len);
    ret = sig_proxyline_parse(copy, len, out);
    free(copy);
    return ret;
}

/* every proper prefix INCOMPLETE, the whole line (and the line followed by the client's bytes) `len` with *out */
static int parses_n(const char *line, size_t len, sig_proxyline_t *out)
{
    sig_proxyline_t got;
    char *more;
    size_t k;
    ssize_t ret;

    for (k = 0; k != len; ++k) {
        if ((ret = parse_n(line, k, &got)) != SIG_PROXYLINE_INCOMPLETE) {
            printf("#   the first %zu bytes gave %zd, not INCOMPLETE\n", k, ret);
            return 0;
        }
    }
    memset(out, 0xa5, sizeof(*out));
    if ((ret = parse_n(line, len, out)) != (ssize_t)len) {
        printf("#   the whole line gave %zd, not %zu\n", ret, len);
        return 0;
    }
    more = malloc(len + 40);
    memcpy(more, line, len);
    memcpy(more + len, "GET / HTTP/1.1\r\n\r\nPROXY UNKNOWN\r\n", 34);
    memset(&got, 0, sizeof(got));
    ret = parse_n(more, len + 34, &got);
    free(more);
    if (ret != (ssize_t)len || memcmp(&got, out, sizeof(got)) != 0) {
        printf("#   with bytes after it the line gave %zd\n", ret);
        return 0;
    }
    return 1;
}

static void accepts(const char *line, int family, const char *addr, uint16_t port)
{
    sig_proxyline_t got;
    uint8_t want[16] = {0};
    int good = parses_n(line, strlen(line), &got);
    if (family == 4)
        inet_pton(AF_INET, addr, want);
    else if (family == 6)
        inet_pton(AF_INET6, addr, want);
    ok(good && got.family == family && memcmp(got.addr, want, 16) == 0 && got.port == port, "accepts `%.*s` as %d %s %u",
       (int)strcspn(line, "\r\n"), line, family, addr, port);
}

/* INCOMPLETE for the prefixes before the first wrong byte, INVALID from there on, whole included */
static void refuses(const char *line, const char *what)
{
    sig_proxyline_t got;
    size_t len = strlen(line), k;
    int seen_invalid = 0, good = 1;
    for (k = 0; k <= len && good; ++k) {
        ssize_t ret = parse_n(line, k, &got);
        if (ret == SIG_PROXYLINE_INVALID)
            seen_invalid = 1;
        else if (ret != SIG_PROXYLINE_INCOMPLETE || seen_invalid || k == len)
            good = 0;
    }
    ok(good, "refuses %s: `%.*s`", what, (int)strcspn(line, "\r\n"), line);
}

/* the IPv6 address `text` in a TCP6 line: accepted exactly when inet_pton accepts it, with the same bytes */
static void agrees_with_inet_pton(const char *text)
{
    char line[300];
    uint8_t want[16];
    sig_proxyline_t got;
    int pton = inet_pton(AF_INET6, text, want) == 1;
    size_t len = (size_t)snprintf(line, sizeof(line), "PROXY TCP6 %s ::1 1 2\r\n", text);
    ssize_t ret = parse_n(line, len, &got);
    ok(pton ? ret == (ssize_t)len && got.family == 6 && memcmp(got.addr, want, 16) == 0 : ret == SIG_PROXYLINE_INVALID,
       "IPv6 `%s`: %s as inet_pton (got %zd)", text, pton ? "accepted" : "refused", ret);
    /* the same address as the destination */
    len = (size_t)snprintf(line, sizeof(line), "PROXY TCP6 ::1 %s 1 2\r\n", text);
    ret = parse_n(line, len, &got);
    ok(pton ? ret == (ssize_t)len : ret == SIG_PROXYLINE_INVALID, "IPv6 `%s` as the destination: %s", text,
       pton ? "accepted" : "refused");
}

static const char *const tricky_v6[] = {
    "::", "::1", "1::", "::0", "1:2:3:4:5:6:7:8", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "FFFF:abcd:EF01::",
    "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::8", "1:2::7:8", "0000:0000:0000:0000:0000:0000:0000:0001", "2001:db8::1",
    "fe80::", "::ffff:1.2.3.4", "::1.2.3.4", "::0.0.0.0", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5::1.2.3.4",
    "1::255.255.255.255", "::ffff:0.0.0.1",
    /* refused */
    "", ":", ":::", "::::", ":1", "1:", ":1::", "1::2::3", "::1::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::",
    "::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7", "12345::", "00000::", "g::", "::g", "1:2:3:4:5:6:7:1.2.3.4",
    "1:2:3:4:5:6:7::1.2.3.4", "1:2:1.2.3.4", "1.2.3.4", "::01.2.3.4", "::1.2.3.04", "::1.2.3.256", "::1.2.3",
    "::1.2.3.4.5", "::1.2.3.", "::.1.2.3", "::1..2.3", "::ffff:1.2.3.4:1", "::ffff:1.2.3.4::", "::1a.2.3.4",
    "::1234.2.3.4", "fe80::1%eth0", "[::1]", ":: 1", "1:::2", "1::2:", "::ffff:1.2.3.4%",
};

int main(void)
{
    char line[300], *p;
    size_t i, len;
    sig_proxyline_t got;

    /* valid lines */
    accepts("PROXY TCP4 203.0.113.7 127.0.0.1 5555 8080\r\n", 4, "203.0.113.7", 5555);
    accepts("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", 4, "0.0.0.0", 0);
    accepts("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 4, "255.255.255.255", 65535);
    accepts("PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n", 4, "10.0.0.1", 1);
    accepts("PROXY TCP6 2001:db8::1 ::1 40000 443\r\n", 6, "2001:db8::1", 40000);
    accepts("PROXY TCP6 ::ffff:192.0.2.1 ::ffff:192.0.2.2 1000 2000\r\n", 6, "::ffff:192.0.2.1", 1000);
    accepts("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", 6,
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    accepts("PROXY UNKNOWN\r\n", 0, "", 0);
    accepts("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", 0, "", 0);
    accepts("PROXY UNKNOWN anything\n at\tall \x01\xff\r\n", 0, "", 0);
    accepts("PROXY UNKNOWN \r\n", 0, "", 0);

    /* the 107-byte limit: the spec's longest TCP6 line is 104; UNKNOWN lines padded to exactly 107 and 108 */
    p = line + sprintf(line, "PROXY UNKNOWN ");
    memset(p, 'x', 107 - 2 - (size_t)(p - line));
    strcpy(line + 105, "\r\n");
    is_int(strlen(line), 107, "the padded UNKNOWN line is 107 bytes");
    accepts(line, 0, "", 0);
    memset(p, 'x', 108 - 2 - (size_t)(p - line));
    strcpy(line + 106, "\r\n");
    refuses(line, "a 108-byte line");
    is_int(parse_n(line, 106, &got), SIG_PROXYLINE_INCOMPLETE, "106 bytes of a too long line are still INCOMPLETE");
    is_int(parse_n(line, 107, &got), SIG_PROXYLINE_INVALID, "107 bytes without the CRLF are INVALID");
    is_int(parse_n(line, 200, &(sig_proxyline_t){0}) == SIG_PROXYLINE_INVALID, 1, "and so is more");
    /* a grammatical TCP6 line longer than 107 (two IPv6 addresses with IPv4 tails): INVALID at 107 bytes */
    len = (size_t)sprintf(line, "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                                "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n");
    ok(len > 107, "the longest TCP6 line with IPv4 tails is %zu bytes", len);
    refuses(line, "a grammatical TCP6 line over 107 bytes");
    memset(line, 'x', sizeof(line));
    is_int(parse_n(line, 0, &got), SIG_PROXYLINE_INCOMPLETE, "no bytes yet: INCOMPLETE");

    /* malformations */
    refuses("GET / HTTP/1.1\r\n\r\n", "an HTTP request");
    refuses("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "a TLS ClientHello");
    refuses("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "lower-case PROXY");
    refuses("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "lower-case tcp4");
    refuses("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "two spaces after PROXY");
    refuses("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "two spaces after TCP4");
    refuses("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "two spaces between the addresses");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", "two spaces between the ports");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "a space before the CRLF");
    refuses("PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "a tab for a space");
    refuses("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "TCP5");
    refuses("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "UDP4");
    refuses("PROXY UNKNOWNX\r\n", "UNKNOWN glued to a word");
    refuses("PROXY UNKNOWN\n", "a bare LF");
    refuses("PROXY UNKNOWN\rx\n", "a CR not followed by LF (UNKNOWN)");
    refuses("PROXY UNKNOWN foo\rbar\r\n", "a CR inside the ignored part");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "CR CR LF");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "a CR followed by a client byte");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "a missing port");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8\r\n", "missing ports");
    refuses("PROXY TCP4 1.2.3.4\r\n", "a missing destination");
    refuses("PROXY TCP4\r\n", "no addresses");
    refuses("PROXY \r\n", "no protocol");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "source port 65536");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "destination port 99999");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "a port with a leading zero");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n", "port 00");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "a negative port");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "a port with a sign");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n", "a hex port");
    refuses("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "octet 256");
    refuses("PROXY TCP4 1.2.3.1000 5.6.7.8 1 2\r\n", "a four-digit octet");
    refuses("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "an octet with a leading zero");
    refuses("PROXY TCP4 1.2.3.00 5.6.7.8 1 2\r\n", "octet 00");
    refuses("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "three octets");
    refuses("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "five octets");
    refuses("PROXY TCP4 1.2..4 5.6.7.8 1 2\r\n", "an empty octet");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.8. 1 2\r\n", "a trailing dot");
    refuses("PROXY TCP4 localhost 5.6.7.8 1 2\r\n", "a name");
    refuses("PROXY TCP4 1.2.3.4 5.6.7.x 1 2\r\n", "a bad destination");
    refuses("PROXY TCP4 ::1 ::1 1 2\r\n", "IPv6 addresses in a TCP4 line");
    refuses("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "IPv4 addresses in a TCP6 line");
    refuses("PROXY TCP6 ::1 1.2.3.4 1 2\r\n", "an IPv4 destination in a TCP6 line");
    refuses("PROXY TCP6 [::1] ::1 1 2\r\n", "an IPv6 address in brackets");
    refuses("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "an IPv6 zone");
    refuses("PROXY TCP6 1::2::3 ::1 1 2\r\n", "two ::");

    /* IPv6 against inet_pton */
    for (i = 0; i != sizeof(tricky_v6) / sizeof(tricky_v6[0]); ++i)
        agrees_with_inet_pton(tricky_v6[i]);

    return done_testing();
}
