/*
 * test_wsext.c: unit tests of handler/core/sig_wsext.c (TAP): which permessage-deflate offer of a
 * Sec-WebSocket-Extensions value is accepted (RFC 7692 section 5 and 7.1, the list grammar of RFC 6455 section 9.1),
 * and the answer's exact bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_wsext.h"
#include "tap.h"

/* The value parsed from a buffer of exactly its size (ASan sees a read past it). Returns the result; `*bits` gets
 * the window, or -1 when declined; `*answer` the answer (static), or NULL. */
static int parse(const char *value, int *bits, const char **answer)
{
    static char buf[SIG_WSEXT_MAX_ANSWER];
    size_t len = strlen(value);
    char *copy = malloc(len + 1);
    sig_wsext_deflate_t offer = {-1, -1};
    int ret;

    memcpy(copy, value, len); /* no NUL read: only `len` bytes are given */
    ret = sig_wsext_parse_deflate(copy, len, &offer);
    free(copy);
    *bits = ret ? offer.server_window_bits : -1;
    *answer = NULL;
    if (ret) {
        size_t n = sig_wsext_deflate_answer(&offer, buf);
        ok(n == strlen(buf) && n < SIG_WSEXT_MAX_ANSWER, "answer length for [%s]", value);
        *answer = buf;
    }
    return ret;
}

#define PLAIN "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

static void accepted(const char *value, int want_bits, const char *want_answer)
{
    int bits;
    const char *answer;
    ok(parse(value, &bits, &answer) == 1, "accepted: [%s]", value);
    is_int(bits, want_bits, "window of [%s]", value);
    is_str(answer, want_answer, "answer to [%s]", value);
}

static void declined(const char *value)
{
    int bits;
    const char *answer;
    ok(parse(value, &bits, &answer) == 0, "declined: [%s]", value);
}

static void test_offers(void)
{
    /* what browsers and ws send */
    accepted("permessage-deflate; client_max_window_bits", 15, PLAIN);
    accepted("permessage-deflate", 15, PLAIN);
    accepted("permessage-deflate; client_max_window_bits; server_max_window_bits=10", 10, PLAIN "; server_max_window_bits=10");
    /* each parameter */
    accepted("permessage-deflate; server_no_context_takeover", 15, PLAIN);
    accepted("permessage-deflate; client_no_context_takeover", 15, PLAIN);
    accepted("permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, PLAIN);
    accepted("permessage-deflate; client_max_window_bits=8", 15, PLAIN);
    accepted("permessage-deflate; client_max_window_bits=15", 15, PLAIN);
    accepted("permessage-deflate; server_max_window_bits=9", 9, PLAIN "; server_max_window_bits=9");
    accepted("permessage-deflate; server_max_window_bits=15", 15, PLAIN "; server_max_window_bits=15");
    accepted("permessage-deflate; server_max_window_bits=12; client_max_window_bits=9; server_no_context_takeover; "
             "client_no_context_takeover",
             12, PLAIN "; server_max_window_bits=12");
    /* quoted values (RFC 6455 9.1: a token once unquoted) and escapes inside them */
    accepted("permessage-deflate; server_max_window_bits=\"11\"", 11, PLAIN "; server_max_window_bits=11");
    accepted("permessage-deflate; client_max_window_bits=\"10\"", 15, PLAIN);
    accepted("permessage-deflate; server_max_window_bits=\"1\\3\"", 13, PLAIN "; server_max_window_bits=13");
    /* whitespace where the list grammar allows it, empty list elements */
    accepted("  permessage-deflate ;\tclient_max_window_bits = 12 ;server_no_context_takeover  ", 15, PLAIN);
    accepted(", ,permessage-deflate,", 15, PLAIN);
    accepted("permessage-deflate;server_max_window_bits=14", 14, PLAIN "; server_max_window_bits=14");

    /* declined: a parameter not defined for an offer, twice, a value where none may be, none where one must be, out
     * of range or not in its one form, or what zlib cannot do (a 256-byte window) */
    declined("permessage-deflate; foo");
    declined("permessage-deflate; foo=1");
    declined("permessage-deflate; server_no_context_takeover; server_no_context_takeover");
    declined("permessage-deflate; client_max_window_bits; client_max_window_bits=10");
    declined("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10");
    declined("permessage-deflate; server_no_context_takeover=1");
    declined("permessage-deflate; client_no_context_takeover=\"\"");
    declined("permessage-deflate; server_max_window_bits");
    declined("permessage-deflate; server_max_window_bits=8");
    declined("permessage-deflate; server_max_window_bits=\"8\"");
    declined("permessage-deflate; server_max_window_bits=7");
    declined("permessage-deflate; server_max_window_bits=16");
    declined("permessage-deflate; server_max_window_bits=010");
    declined("permessage-deflate; server_max_window_bits=1a");
    declined("permessage-deflate; server_max_window_bits=-9");
    declined("permessage-deflate; client_max_window_bits=16");
    declined("permessage-deflate; client_max_window_bits=0");
    declined("permessage-deflate; client_max_window_bits=\"1 0\""); /* not a token once unquoted */
    declined("permessage-deflate; client_max_window_bits=\"\"");
    declined("permessage-deflate; client_max_window_bits=\"0000000000000000000000000000000000000015\""); /* long, quoted */
    declined("permessage-deflate; client_max_window_bits=0000000000000000000000000000000000000015");
    declined("Permessage-Deflate"); /* names as RFC 7692 spells them */
    declined("permessage-deflate; Server_No_Context_Takeover");
    /* other extensions only, nothing, or what does not parse */
    declined("");
    declined("   ");
    declined(",,");
    declined("x-webkit-deflate-frame");
    declined("deflate-frame; no_context_takeover");
    declined("permessage-deflate;");
    declined("permessage-deflate; =3");
    declined("permessage-deflate; server_max_window_bits=");
    declined("permessage-deflate server_no_context_takeover");
    declined(";permessage-deflate");
    declined("permessage-deflate; client_max_window_bits=\"10");
    declined("permessage-deflate; client_max_window_bits=\"1\\");
    declined("permessage-deflate; a=\"unterminated, permessage-deflate");
    declined("permessage-deflate; client_max_window_bits=\"1\x01\"");
    declined("permessage-deflate\x7f");
}

static void test_lists(void)
{
    /* the first offer we can accept wins; a declined or broken one is skipped, not fatal */
    accepted("permessage-deflate; server_max_window_bits=8, permessage-deflate", 15, PLAIN);
    accepted("permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=11", 10,
             PLAIN "; server_max_window_bits=10");
    accepted("permessage-deflate; foo, permessage-deflate; server_max_window_bits=11", 11, PLAIN "; server_max_window_bits=11");
    accepted("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", 15, PLAIN);
    accepted("foo; bar=\"a,b;c\", permessage-deflate", 15, PLAIN); /* a comma inside quotes is no separator */
    accepted("permessage-deflate; x=\"a,b\", permessage-deflate; server_max_window_bits=13", 13,
             PLAIN "; server_max_window_bits=13");
    accepted("@@, permessage-deflate", 15, PLAIN); /* an element that does not parse */
    accepted("permessage-deflate; ;, permessage-deflate; server_max_window_bits=9", 9, PLAIN "; server_max_window_bits=9");
    accepted("foo; a=\"x\\\"y,z\", permessage-deflate", 15, PLAIN); /* an escaped quote stays inside */
    declined("permessage-deflate; server_max_window_bits=8, permessage-deflate; foo, x-webkit-deflate-frame");
}

static void test_many(void)
{
    /* a long header of declined offers, then one we take: linear, no limit of our own on its length */
    size_t n = 2000, i;
    char *value = malloc(n * 48 + 64), *p = value;
    for (i = 0; i != n; ++i)
        p += sprintf(p, "permessage-deflate; server_max_window_bits=8, ");
    strcpy(p, "permessage-deflate; server_max_window_bits=10");
    accepted(value, 10, PLAIN "; server_max_window_bits=10");
    free(value);
}

int main(void)
{
    test_offers();
    test_lists();
    test_many();
    return done_testing();
}
