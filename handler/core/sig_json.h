/*
 * sig_json.h: checks on JSON text that yajl does not make, shared by the parsers of core/ (the level-1 codec and the
 * token parser). Pure: no I/O, no allocation.
 */
#ifndef SIG_JSON_H
#define SIG_JSON_H

#include <stddef.h>

/**
 * Checks the \u escapes of a JSON text (scanned as text; only meaningful for well-formed JSON, and
 * errs on the side of refusing otherwise): returns 0 when every UTF-16 surrogate escape is a proper
 * high+low pair and, unless `allow_nul`, none is \u0000; -1 otherwise. yajl decodes a lone low half
 * to invalid UTF-8 and pairs a high half with whatever escape follows, inventing a character.
 */
int sig_json_check_escapes(const char *json, size_t len, int allow_nul);

#endif
