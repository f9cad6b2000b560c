/*
 * sig_proxyline.c: the parser of sig_proxyline.h, by hand. inet_pton would do the addresses, but it lives in
 * <arpa/inet.h>, a socket header core/ may not include (tools/check-layers), and it cannot say "this could still become
 * an address" about a prefix, which INCOMPLETE needs: the scanners below stop at the end of the bytes received and
 * tell a viable prefix from a wrong one.
 *
 * Every scanner takes a cursor *pp and the end of the bytes and returns OK (the cursor moved past what it read, at the
 * byte that ended the token, which the caller checks), INCOMPLETE (it reached `end` and every byte so far fits) or
 * INVALID. `end` is capped at SIG_PROXYLINE_MAX bytes, so a line running past the limit meets the end "too early" and
 * is refused there: INCOMPLETE becomes INVALID once len reaches the limit.
 */
#include <string.h>
#include "core/sig_proxyline.h"

#define OK 0
#define INCOMPLETE SIG_PROXYLINE_INCOMPLETE
#define INVALID SIG_PROXYLINE_INVALID

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* the literal `word` */
static int expect(const char **pp, const char *end, const char *word)
{
    for (; *word != '\0'; ++word, ++*pp) {
        if (*pp == end)
            return INCOMPLETE;
        if (**pp != *word)
            return INVALID;
    }
    return OK;
}

/* a decimal number 0..max of at most `max`'s digits, without leading zeros; stops at the first non-digit */
static int scan_decimal(const char **pp, const char *end, unsigned max, unsigned *value)
{
    const char *p = *pp;
    unsigned v = 0;
    size_t n = 0;

    for (; p != end && is_digit(*p); ++p, ++n) {
        if (n == 1 && v == 0)
            return INVALID; /* a leading zero */
        if ((v = v * 10 + (unsigned)(*p - '0')) > max)
            return INVALID;
    }
    if (p == end)
        return INCOMPLETE; /* more digits may come, or the byte that ends the number */
    if (n == 0)
        return INVALID;
    *pp = p;
    *value = v;
    return OK;
}

/* "d.d.d.d"; stops at the byte after the fourth number */
static int scan_ipv4(const char **pp, const char *end, uint8_t out[4])
{
    const char *p = *pp;
    unsigned v;
    int i, ret;

    for (i = 0; i != 4; ++i) {
        if (i != 0 && (ret = expect(&p, end, ".")) != OK)
            return ret;
        if ((ret = scan_decimal(&p, end, 255, &v)) != OK)
            return ret;
        out[i] = (uint8_t)v;
    }
    *pp = p;
    return OK;
}

/*
 * RFC 4291 text, as glibc's inet_pton reads it; stops at the first byte that cannot continue the address. `explicit`
 * counts the 16-bit groups written out (an IPv4 tail counts 2); `gap` is where "::" stood (-1: none), which needs at
 * least one zero group, so with a gap at most 7 are written, without one exactly 8. Each check is made as soon as
 * the byte that breaks it arrives, so whatever reaches `end` unrefused can still be completed.
 */
static int scan_ipv6(const char **pp, const char *end, uint8_t out[16])
{
    const char *p = *pp, *group_start;
    uint16_t groups[8];
    int explicit = 0, gap = -1, may_end = 0, i, ret, digit;
    unsigned v;

    if (p != end && *p == ':') { /* a leading colon only as "::" */
        ++p;
        if (p == end)
            return INCOMPLETE;
        if (*p != ':')
            return INVALID;
        ++p;
        gap = 0;
        may_end = 1;
    }
    for (;;) {
        /* at the place of a group: the start, after ":" or after "::" */
        if (p == end)
            return INCOMPLETE;
        if (hex_value(*p) < 0) {
            if (!may_end)
                return INVALID; /* nothing, or a single ":" with no group after it */
            break;
        }
        if (explicit == (gap >= 0 ? 7 : 8))
            return INVALID; /* no room for another group */
        group_start = p;
        for (v = 0; p != end && (digit = hex_value(*p)) >= 0; ++p) {
            if (p - group_start == 4)
                return INVALID; /* a fifth digit */
            v = v * 16 + (unsigned)digit;
        }
        if (p == end)
            return INCOMPLETE;
        if (*p == '.') { /* the group was the first number of an IPv4 tail: the last 32 bits */
            uint8_t v4[4];
            if (explicit + 2 > (gap >= 0 ? 7 : 8) || (gap < 0 && explicit != 6))
                return INVALID;
            p = group_start;
            if ((ret = scan_ipv4(&p, end, v4)) != OK)
                return ret;
            groups[explicit++] = (uint16_t)(v4[0] << 8 | v4[1]);
            groups[explicit++] = (uint16_t)(v4[2] << 8 | v4[3]);
            break;
        }
        groups[explicit++] = (uint16_t)v;
        if (*p != ':')
            break;
        ++p;
        if (explicit == 8 || (gap >= 0 && explicit == 7))
            return INVALID; /* a ":" after the last group there is room for */
        if (p == end)
            return INCOMPLETE;
        if (*p == ':') {
            if (gap >= 0)
                return INVALID; /* a second "::" */
            gap = explicit;
            ++p;
            may_end = 1;
        } else {
            may_end = 0;
        }
    }
    if (gap < 0 && explicit != 8)
        return INVALID;

    memset(out, 0, 16);
    for (i = 0; i != explicit; ++i) {
        /* the groups after the gap go to the end */
        int at = gap >= 0 && i >= gap ? 8 - (explicit - i) : i;
        out[2 * at] = (uint8_t)(groups[i] >> 8);
        out[2 * at + 1] = (uint8_t)groups[i];
    }
    *pp = p;
    return OK;
}

ssize_t sig_proxyline_parse(const char *buf, size_t len, sig_proxyline_t *out)
{
    const char *p = buf, *end = buf + (len < SIG_PROXYLINE_MAX ? len : SIG_PROXYLINE_MAX);
    uint8_t src[16], dst[16];
    unsigned sport, dport;
    int family, ret;

    if ((ret = expect(&p, end, "PROXY ")) != OK)
        goto Fail;
    if (p == end) {
        ret = INCOMPLETE;
        goto Fail;
    }
    if (*p == 'U') {
        if ((ret = expect(&p, end, "UNKNOWN")) != OK)
            goto Fail;
        if (p != end && *p == ' ') /* anything up to the CRLF is ignored */
            while (++p != end && *p != '\r')
                ;
        family = 0;
        memset(src, 0, sizeof(src));
        sport = 0;
    } else {
        if ((ret = expect(&p, end, "TCP")) != OK)
            goto Fail;
        if (p == end) {
            ret = INCOMPLETE;
            goto Fail;
        }
        if (*p != '4' && *p != '6') {
            ret = INVALID;
            goto Fail;
        }
        family = *p++ - '0';
        if ((ret = expect(&p, end, " ")) != OK ||
            (ret = family == 4 ? scan_ipv4(&p, end, src) : scan_ipv6(&p, end, src)) != OK ||
            (ret = expect(&p, end, " ")) != OK ||
            (ret = family == 4 ? scan_ipv4(&p, end, dst) : scan_ipv6(&p, end, dst)) != OK ||
            (ret = expect(&p, end, " ")) != OK || (ret = scan_decimal(&p, end, 65535, &sport)) != OK ||
            (ret = expect(&p, end, " ")) != OK || (ret = scan_decimal(&p, end, 65535, &dport)) != OK)
            goto Fail;
    }
    if ((ret = expect(&p, end, "\r\n")) != OK)
        goto Fail;

    memset(out, 0, sizeof(*out));
    out->family = family;
    memcpy(out->addr, src, family == 4 ? 4 : 16);
    out->port = (uint16_t)sport;
    return p - buf;

Fail:
    /* the end of the bytes, capped at the limit: once len reaches it, nothing more can help */
    return ret == INCOMPLETE && len < SIG_PROXYLINE_MAX ? INCOMPLETE : INVALID;
}
