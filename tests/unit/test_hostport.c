/*
 * test_hostport.c: the HOST:PORT parser (handler/core/sig_hostport.c) (TAP).
 */
#include <string.h>
#include "core/sig_hostport.h"
#include "tap.h"

static void accepts(const char *text, uint16_t default_port, const char *host, uint16_t port)
{
    char got[SIG_HOSTPORT_HOST_MAX + 1] = "";
    uint16_t got_port = 0;
    const char *why = NULL;
    int ret = sig_hostport_parse(text, default_port, got, &got_port, &why);
    ok(ret == 0 && strcmp(got, host) == 0 && got_port == port, "`%s` -> %s port %u (got %d: %s port %u%s%s)", text, host, port, ret,
       got, got_port, why != NULL ? ", " : "", why != NULL ? why : "");
}

static void refuses(const char *text, uint16_t default_port, const char *reason_part)
{
    char got[SIG_HOSTPORT_HOST_MAX + 1];
    uint16_t got_port = 0;
    const char *why = "";
    int ret = sig_hostport_parse(text, default_port, got, &got_port, &why);
    ok(ret == -1 && strstr(why, reason_part) != NULL, "`%s` refused: %s (got %d, `%s`)", text, reason_part, ret, why);
}

int main(void)
{
    char long_host[300];

    accepts("127.0.0.1:6379", 0, "127.0.0.1", 6379);
    accepts("redis.internal:1", 0, "redis.internal", 1);
    accepts("my_host-2:65535", 0, "my_host-2", 65535);
    accepts("[::1]:6380", 0, "::1", 6380);
    accepts("[fe80::1:2]:26379", 0, "fe80::1:2", 26379);
    accepts("localhost", 6379, "localhost", 6379);
    accepts("[::1]", 26379, "::1", 26379);
    refuses("localhost", 0, "port is missing");
    refuses("", 6379, "empty");
    refuses(":6379", 0, "host is empty");
    refuses("host:", 0, "1 to 65535");
    refuses("host:0", 0, "1 to 65535");
    refuses("host:65536", 0, "1 to 65535");
    refuses("host:06379", 0, "1 to 65535");
    refuses("host:-1", 0, "1 to 65535");
    refuses("host:63 79", 0, "1 to 65535");
    refuses("host:99999999999999999999", 0, "1 to 65535");
    refuses("::1:6379", 0, "brackets");
    refuses("[::1:6379", 0, "`]`");
    refuses("[]:6379", 0, "IPv6");
    refuses("[::g]:6379", 0, "IPv6");
    refuses("[::1]6379", 0, "1 to 65535");
    refuses("ho st:6379", 0, "letters");
    refuses("host/x:6379", 0, "letters");
    memset(long_host, 'a', 256);
    strcpy(long_host + 256, ":1");
    refuses(long_host, 0, "longer than 255");
    long_host[255] = '\0';
    accepts(long_host, 7, long_host, 7);
    ok(sig_hostport_parse(NULL, 1, long_host, &(uint16_t){0}, &(const char *){NULL}) == -1, "NULL is refused");
    return done_testing();
}
