/*
 * fuzz_proxyline.c: libFuzzer target for the PROXY protocol v1 parser (handler/core/sig_proxyline.c), which reads the
 * first bytes of every connection on a `proxy-protocol: ON` listener.
 *
 * Each call parses buffers of exactly the bytes given, so ASan sees any read past `len`.
 * Checks (a failure abort()s, which libFuzzer reports as a crash):
 * - the result is a length in 1..SIG_PROXYLINE_MAX ending in CRLF, INCOMPLETE (only below SIG_PROXYLINE_MAX bytes) or
 *   INVALID;
 * - fed as growing prefixes (1 byte more each time, as a slow client sends it), the input gives INCOMPLETE up to some
 *   point and from there exactly the result (and address) of the whole input: a result never changes once given;
 * - on success the address agrees with the libc: the source and destination words of the line are accepted by
 *   inet_pton for the family, the source gives the same bytes, and those bytes round-trip through inet_ntop and
 *   inet_pton; the source port is the decimal number written; UNKNOWN leaves the address and port zero.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_proxyline.h"
#include "fuzz_check.h"

static ssize_t parse_copy(const uint8_t *data, size_t len, sig_proxyline_t *out)
{
    char *copy = malloc(len != 0 ? len : 1);
    ssize_t ret;
    if (copy == NULL)
        abort();
    if (len != 0)
        memcpy(copy, data, len);
    ret = sig_proxyline_parse(copy, len, out);
    free(copy);
    return ret;
}

/* the space-separated word number `index` (0: "PROXY") of the line, NUL-terminated into `word` */
static void word_of(const char *line, size_t len, int index, char *word, size_t size)
{
    size_t i = 0, n = 0;
    for (; index > 0 && i < len; ++i)
        if (line[i] == ' ')
            --index;
    while (i < len && line[i] != ' ' && line[i] != '\r' && n + 1 < size)
        word[n++] = line[i++];
    word[n] = '\0';
}

static void check_success(const uint8_t *data, ssize_t ret, const sig_proxyline_t *out)
{
    static const uint8_t zero[16];
    const char *line = (const char *)data;
    char src[128], dst[128], port[128], text[64];
    uint8_t bytes[16], again[16];
    int af;

    FUZZ_CHECK(ret >= 15 && ret <= SIG_PROXYLINE_MAX, "a line length out of bounds");
    FUZZ_CHECK(data[ret - 2] == '\r' && data[ret - 1] == '\n', "a line that does not end in CRLF");
    if (out->family == 0) {
        FUZZ_CHECK(memcmp(line, "PROXY UNKNOWN", 13) == 0, "UNKNOWN from another line");
        FUZZ_CHECK(memcmp(out->addr, zero, 16) == 0 && out->port == 0, "UNKNOWN with an address");
        return;
    }
    FUZZ_CHECK(out->family == 4 || out->family == 6, "an unknown family");
    FUZZ_CHECK(memcmp(line, out->family == 4 ? "PROXY TCP4 " : "PROXY TCP6 ", 11) == 0, "the family is not the line's");
    af = out->family == 4 ? AF_INET : AF_INET6;
    word_of(line, (size_t)ret, 2, src, sizeof(src));
    word_of(line, (size_t)ret, 3, dst, sizeof(dst));
    word_of(line, (size_t)ret, 4, port, sizeof(port));
    FUZZ_CHECK(inet_pton(af, src, bytes) == 1, "a source address inet_pton refuses");
    FUZZ_CHECK(memcmp(bytes, out->addr, out->family == 4 ? 4 : 16) == 0, "the source address is not inet_pton's");
    FUZZ_CHECK(out->family == 6 || memcmp(out->addr + 4, zero, 12) == 0, "IPv4 with bytes past the fourth");
    FUZZ_CHECK(inet_pton(af, dst, bytes) == 1, "a destination address inet_pton refuses");
    FUZZ_CHECK(inet_ntop(af, out->addr, text, sizeof(text)) != NULL, "inet_ntop refuses the address");
    FUZZ_CHECK(inet_pton(af, text, again) == 1 && memcmp(again, out->addr, out->family == 4 ? 4 : 16) == 0,
               "the address does not round-trip through inet_ntop and inet_pton");
    FUZZ_CHECK(strtoul(port, NULL, 10) == out->port && strlen(port) <= 5, "the port is not the number written");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sig_proxyline_t whole, part;
    ssize_t ret, got;
    size_t k;
    int decided = 0;

    memset(&whole, 0xa5, sizeof(whole));
    ret = parse_copy(data, size, &whole);
    FUZZ_CHECK(ret == SIG_PROXYLINE_INVALID || ret == SIG_PROXYLINE_INCOMPLETE || (ret > 0 && (size_t)ret <= size),
               "a result that is neither a length within the input nor INCOMPLETE nor INVALID");
    FUZZ_CHECK(ret != SIG_PROXYLINE_INCOMPLETE || size < SIG_PROXYLINE_MAX, "INCOMPLETE at the limit");
    if (ret > 0)
        check_success(data, ret, &whole);

    /* growing prefixes: only the first SIG_PROXYLINE_MAX + 1 can differ from the whole, the rest are skipped */
    for (k = 0; k <= size && k <= SIG_PROXYLINE_MAX + 1; ++k) {
        memset(&part, 0x5a, sizeof(part));
        got = parse_copy(data, k, &part);
        if (got == SIG_PROXYLINE_INCOMPLETE) {
            FUZZ_CHECK(!decided, "INCOMPLETE after a prefix had a result");
            FUZZ_CHECK(k < SIG_PROXYLINE_MAX, "INCOMPLETE at the limit (prefix)");
            continue;
        }
        decided = 1;
        FUZZ_CHECK(got == ret, "a prefix's result differs from the whole input's");
        if (got > 0)
            FUZZ_CHECK(memcmp(&part, &whole, sizeof(part)) == 0, "a prefix's address differs from the whole input's");
    }
    FUZZ_CHECK(decided || ret == SIG_PROXYLINE_INCOMPLETE, "every prefix INCOMPLETE but the whole input decided");
    return 0;
}
