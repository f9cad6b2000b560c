/*
 * sig_hostport.h: "HOST:PORT" as admins write addresses in a config file. Pure: no resolving, no I/O.
 *
 * Accepted: `name:6379`, `127.0.0.1:6379`, `[::1]:6379`, and, when a default port is given, `name`,
 * `127.0.0.1` or `[::1]` alone. The host is 1 to 255 bytes of letters, digits, `.`, `-`, `_` (a name
 * or an IPv4 address), or an IPv6 address in brackets (hex digits, `:` and `.`); the port 1 to 65535.
 */
#ifndef SIG_HOSTPORT_H
#define SIG_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

#define SIG_HOSTPORT_HOST_MAX 255

/**
 * Parses `text`. On success returns 0 with the host (without brackets, NUL-terminated) in `host` (of
 * SIG_HOSTPORT_HOST_MAX + 1 bytes) and the port in `*port`; `default_port` 0 means the port is required.
 * On failure returns -1 and points `*why` at a static English reason ("the port must be 1 to 65535").
 */
int sig_hostport_parse(const char *text, uint16_t default_port, char *host, uint16_t *port, const char **why);

#endif
