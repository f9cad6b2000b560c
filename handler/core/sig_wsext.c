/*
 * permessage-deflate negotiation (see sig_wsext.h): a small recursive-descent reader of the extension list grammar of
 * RFC 6455 section 9.1 (with RFC 7230's tokens, quoted strings, optional whitespace and empty list elements), judging
 * each permessage-deflate offer by RFC 7692 section 7.1 as its parameters go by.
 */
#include <stdio.h>
#include <string.h>
#include "core/sig_wsext.h"

#define VALUE_MAX 16 /* longer values are never valid for permessage-deflate; they are still parsed through */

typedef struct st_cursor_t {
    const char *p, *end;
} cursor_t;

/* RFC 7230 3.2.6 tchar */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(cursor_t *c)
{
    while (c->p != c->end && (*c->p == ' ' || *c->p == '\t'))
        ++c->p;
}

/* Reads 1*tchar; returns its length (0: none there). */
static size_t read_token(cursor_t *c, const char **start)
{
    *start = c->p;
    while (c->p != c->end && is_tchar((unsigned char)*c->p))
        ++c->p;
    return (size_t)(c->p - *start);
}

/* Reads a quoted-string at the cursor (on its opening quote), unescaped into `buf` as far as VALUE_MAX; `*len` is the
 * full unescaped length. Returns 0 when it is not closed or holds a character a quoted-string may not. */
static int read_quoted(cursor_t *c, char *buf, size_t *len)
{
    *len = 0;
    ++c->p; /* the opening DQUOTE */
    while (c->p != c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            return 1;
        if (ch == '\\') {
            if (c->p == c->end)
                return 0;
            ch = (unsigned char)*c->p++;
            if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
                return 0; /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
        } else if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
            return 0; /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
        }
        if (*len < VALUE_MAX)
            buf[*len] = (char)ch;
        ++*len;
    }
    return 0;
}

/* After a list element that does not parse: on to the next top-level comma (or the end), quotes respected. */
static void skip_element(cursor_t *c)
{
    while (c->p != c->end && *c->p != ',') {
        if (*c->p == '"') {
            char ignored[VALUE_MAX];
            size_t n;
            if (!read_quoted(c, ignored, &n)) {
                c->p = c->end;
                return;
            }
        } else {
            ++c->p;
        }
    }
}

/* The value of a *_max_window_bits parameter: 8..15, decimal, no leading zero (RFC 7692 7.1.2.1). -1 otherwise. */
static int window_bits(const char *v, size_t len)
{
    if (len == 1 && v[0] == '8')
        return 8;
    if (len == 1 && v[0] == '9')
        return 9;
    if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + (v[1] - '0');
    return -1;
}

enum { P_SERVER_NO_CONTEXT = 1, P_CLIENT_NO_CONTEXT = 2, P_SERVER_BITS = 4, P_CLIENT_BITS = 8 };

/* Judges one parameter of a permessage-deflate offer; returns 0 when it makes us decline the offer. */
static int accept_param(const char *name, size_t name_len, int has_value, const char *value, size_t value_len, unsigned *seen,
                        sig_wsext_deflate_t *offer)
{
    static const struct {
        const char *name;
        unsigned bit;
    } known[] = {{"server_no_context_takeover", P_SERVER_NO_CONTEXT},
                 {"client_no_context_takeover", P_CLIENT_NO_CONTEXT},
                 {"server_max_window_bits", P_SERVER_BITS},
                 {"client_max_window_bits", P_CLIENT_BITS}};
    unsigned bit = 0;
    size_t i;
    int bits;

    for (i = 0; i != sizeof(known) / sizeof(known[0]); ++i)
        if (strlen(known[i].name) == name_len && memcmp(known[i].name, name, name_len) == 0)
            bit = known[i].bit;
    if (bit == 0 || (*seen & bit) != 0)
        return 0; /* not defined for an offer, or twice */
    *seen |= bit;
    switch (bit) {
    case P_SERVER_NO_CONTEXT:
    case P_CLIENT_NO_CONTEXT:
        return !has_value; /* these have no value */
    case P_SERVER_BITS:
        if (!has_value || (bits = window_bits(value, value_len)) < 0)
            return 0;
        if (bits == 8)
            return 0; /* zlib: deflateInit2(windowBits -8) fails; a 512-byte window would break the client's 256 */
        offer->server_window_bits = bits;
        offer->answer_window_bits = 1;
        return 1;
    default: /* P_CLIENT_BITS: no value ("I support it") or a hint 8..15; we inflate with 15 whatever it is */
        return !has_value || window_bits(value, value_len) >= 0;
    }
}

/*
 * Parses one list element at the cursor (after its leading whitespace, at neither a comma nor the end). Returns 1 for an
 * acceptable permessage-deflate offer (into `out`), 0 for anything else; the cursor is left at the comma after it or
 * the end.
 */
static int parse_element(cursor_t *c, sig_wsext_deflate_t *out)
{
    sig_wsext_deflate_t offer = {15, 0};
    const char *name;
    size_t name_len = read_token(c, &name);
    int is_deflate = name_len == sizeof("permessage-deflate") - 1 && memcmp(name, "permessage-deflate", name_len) == 0;
    int acceptable = is_deflate;
    unsigned seen = 0;

    if (name_len == 0)
        goto Bad;
    for (;;) {
        const char *pname, *value = NULL;
        char buf[VALUE_MAX];
        size_t pname_len, value_len = 0;
        int has_value = 0;

        skip_ows(c);
        if (c->p == c->end || *c->p == ',')
            break;
        if (*c->p != ';')
            goto Bad;
        ++c->p;
        skip_ows(c);
        if ((pname_len = read_token(c, &pname)) == 0)
            goto Bad;
        skip_ows(c);
        if (c->p != c->end && *c->p == '=') {
            ++c->p;
            skip_ows(c);
            has_value = 1;
            if (c->p != c->end && *c->p == '"') {
                /* RFC 6455 9.1: a quoted value must be a token once unquoted */
                size_t i;
                if (!read_quoted(c, buf, &value_len) || value_len == 0)
                    goto Bad;
                for (i = 0; i != value_len && i != VALUE_MAX; ++i)
                    if (!is_tchar((unsigned char)buf[i]))
                        goto Bad;
                value = buf;
                if (value_len > VALUE_MAX)
                    value_len = VALUE_MAX + 1; /* too long for any value we accept (window_bits() reads 2 bytes at most) */
            } else if ((value_len = read_token(c, &value)) == 0) {
                goto Bad;
            }
        }
        if (acceptable && !accept_param(pname, pname_len, has_value, value, value_len, &seen, &offer))
            acceptable = 0;
    }
    if (!acceptable)
        return 0;
    *out = offer;
    return 1;

Bad:
    skip_element(c);
    return 0;
}

int sig_wsext_parse_deflate(const char *value, size_t len, sig_wsext_deflate_t *out)
{
    cursor_t c = {value, value + len};

    for (;;) {
        /* RFC 7230 7: empty list elements (", ,") are allowed */
        skip_ows(&c);
        while (c.p != c.end && *c.p == ',') {
            ++c.p;
            skip_ows(&c);
        }
        if (c.p == c.end)
            return 0;
        if (parse_element(&c, out))
            return 1;
    }
}

size_t sig_wsext_deflate_answer(const sig_wsext_deflate_t *offer, char *dst)
{
    int n = snprintf(dst, SIG_WSEXT_MAX_ANSWER, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    if (offer->answer_window_bits)
        n += snprintf(dst + n, SIG_WSEXT_MAX_ANSWER - (size_t)n, "; server_max_window_bits=%d", offer->server_window_bits);
    return (size_t)n;
}
