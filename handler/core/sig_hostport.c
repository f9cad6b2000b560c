/*
 * sig_hostport.c: the parser of sig_hostport.h, by hand: getaddrinfo would resolve (and block), and
 * inet_pton knows no names and no ports.
 */
#include <string.h>
#include "core/sig_hostport.h"

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int is_v6_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' || c == '.';
}

static int parse_port(const char *s, uint16_t *port)
{
    unsigned long value = 0;
    if (*s == '\0' || *s == '0')
        return -1; /* empty, 0, or a leading zero */
    for (; *s != '\0'; ++s) {
        if (*s < '0' || *s > '9' || (value = value * 10 + (unsigned long)(*s - '0')) > 65535)
            return -1;
    }
    *port = (uint16_t)value;
    return 0;
}

int sig_hostport_parse(const char *text, uint16_t default_port, char *host, uint16_t *port, const char **why)
{
    const char *host_start = text, *host_end, *rest;
    size_t i, len;

    if (text == NULL || *text == '\0') {
        *why = "the address is empty";
        return -1;
    }
    if (*text == '[') {
        host_start = text + 1;
        if ((host_end = strchr(host_start, ']')) == NULL) {
            *why = "an IPv6 address in brackets lacks its `]`";
            return -1;
        }
        rest = host_end + 1;
        for (i = 0; host_start + i != host_end; ++i)
            if (!is_v6_char(host_start[i]))
                break;
        if (host_start + i != host_end || host_end - host_start < 2) {
            *why = "not an IPv6 address inside the brackets";
            return -1;
        }
    } else {
        host_end = strrchr(text, ':');
        if (host_end != NULL && strchr(text, ':') != host_end) {
            *why = "an IPv6 address must be in brackets, as in `[::1]:6379`";
            return -1;
        }
        if (host_end == NULL)
            host_end = text + strlen(text);
        rest = host_end;
        for (i = 0; host_start + i != host_end; ++i)
            if (!is_name_char(host_start[i])) {
                *why = "the host may hold only letters, digits, `.`, `-` and `_`";
                return -1;
            }
    }
    len = (size_t)(host_end - host_start);
    if (len == 0 || len > SIG_HOSTPORT_HOST_MAX) {
        *why = len == 0 ? "the host is empty" : "the host is longer than 255 bytes";
        return -1;
    }
    if (*rest == '\0') {
        if (default_port == 0) {
            *why = "the port is missing: write HOST:PORT";
            return -1;
        }
        *port = default_port;
    } else if (*rest != ':' || parse_port(rest + 1, port) != 0) {
        *why = "the port must be a number from 1 to 65535";
        return -1;
    }
    memcpy(host, host_start, len);
    host[len] = '\0';
    return 0;
}
