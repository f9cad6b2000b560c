/*
 * test_protocol.c: unit tests of handler/core/sig_protocol.c and the error table of sig_common.c (TAP).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "core/sig_protocol.h"
#include "tap.h"

static sig_buf_t scratch = SIG_BUF_INIT; /* shared by every decode, as a connection would */
static sig_msg_t msg;

static int decode_n(const char *json, size_t len)
{
    return sig_msg_decode(json, len, &msg, &scratch);
}

static int decode(const char *json)
{
    return decode_n(json, strlen(json));
}

/* a NUL-terminated view of a buffer's content (the NUL is not counted in len) */
static const char *cstr(sig_buf_t *buf)
{
    sig_buf_append_char(buf, '\0');
    --buf->len;
    return buf->base;
}

/* compares a decoded string with the expected bytes (length included, so embedded NULs count) */
#define is_field(got, want, ...)                                                                                           \
    do {                                                                                                                   \
        sig_str_t g2_ = (got);                                                                                             \
        const char *w2_ = (want);                                                                                          \
        if (!ok(g2_.base != NULL && g2_.len == strlen(w2_) && memcmp(g2_.base, w2_, g2_.len) == 0, __VA_ARGS__))           \
            printf("#   got: '%.*s' (%zu bytes)\n#   expected: '%s'\n", (int)g2_.len, g2_.base ? g2_.base : "(null)", g2_.len,     \
                   w2_);                                                                                                   \
    } while (0)

#define LIT_ARGS(lit) (lit), sizeof(lit) - 1

#define append_lit(buf, lit) sig_buf_append((buf), (lit), sizeof(lit) - 1)

#define is_absent(got, ...) ok((got).base == NULL && (got).len == 0, __VA_ARGS__)

/* ---------------------------------------------------------------------------------------------------------------------
 * decoding well-formed messages
 * -------------------------------------------------------------------------------------------------------------------*/

static void test_decode_protocol_examples(void)
{
    /* the two client messages of protocol.md, verbatim (the second one with its line break) */
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1122\",\"sponsorUserName\":\"张三\","
                  "\"auth\":\"<token, optional>\"}"),
           0, "create_connect example decodes");
    is_int(msg.type, SIG_MSG_CREATE_CONNECT, "type create_connect");
    is_field(msg.sponsor_user_id, "1122", "sponsorUserId");
    is_field(msg.sponsor_user_name, "张三", "sponsorUserName in UTF-8");
    is_field(msg.auth, "<token, optional>", "auth");
    is_int(msg.present, SIG_FIELD_SPONSOR_USER_ID | SIG_FIELD_SPONSOR_USER_NAME | SIG_FIELD_AUTH, "present bits");
    is_absent(msg.receiver_user_id, "no receiverUserId");
    is_absent(msg.field1, "no field1");
    is_int(msg.id.len, 0, "no id");

    is_int(decode("{\"type\":\"dialing\",\"sponsorUserId\":\"1122\",\"sponsorUserName\":\"张三\",\"receiverUserId\":\"2211\",\n"
                  " \"field1\":\"hello\",\"field2\":\"\",\"field3\":\"\"}"),
           0, "dialing example decodes");
    is_int(msg.type, SIG_MSG_DIALING, "type dialing");
    is_field(msg.sponsor_user_id, "1122", "sponsorUserId");
    is_field(msg.receiver_user_id, "2211", "receiverUserId");
    is_field(msg.field1, "hello", "field1");
    is_field(msg.field2, "", "field2 present and empty");
    is_field(msg.field3, "", "field3 present and empty");
    is_int(msg.present,
           SIG_FIELD_SPONSOR_USER_ID | SIG_FIELD_SPONSOR_USER_NAME | SIG_FIELD_RECEIVER_USER_ID | SIG_FIELD_FIELD1 |
               SIG_FIELD_FIELD2 | SIG_FIELD_FIELD3,
           "present bits");
    is_absent(msg.auth, "no auth");
}

static void test_decode_absent_empty_null(void)
{
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\"}"), 0, "minimal dialing");
    is_int(msg.present, SIG_FIELD_RECEIVER_USER_ID, "only receiverUserId present");
    is_absent(msg.sponsor_user_id, "sponsorUserId absent");
    is_absent(msg.field1, "field1 absent");
    is_absent(msg.field2, "field2 absent");
    is_absent(msg.field3, "field3 absent");

    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"field1\":\"\",\"field2\":null,\"sponsorUserName\":null,"
                  "\"auth\":null}"),
           0, "dialing with \"\" and nulls");
    ok((msg.present & SIG_FIELD_FIELD1) != 0, "\"\" is present");
    is_field(msg.field1, "", "\"\" is empty");
    ok((msg.present & SIG_FIELD_FIELD2) == 0, "null is absent");
    is_absent(msg.field2, "null field has no value");
    ok((msg.present & (SIG_FIELD_SPONSOR_USER_NAME | SIG_FIELD_AUTH)) == 0, "null name and auth are absent");

    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"field1\":\"x\",\"field1\":null}"), 0, "field then null");
    ok((msg.present & SIG_FIELD_FIELD1) == 0, "a later null wins over an earlier value");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":null,\"receiverUserId\":\"9\"}"), 0, "null then value");
    is_field(msg.receiver_user_id, "9", "a later value wins over an earlier null");
}

static void test_decode_numbers(void)
{
    is_int(decode("{\"type\":\"dialing\",\"sponsorUserId\":1122,\"receiverUserId\":2211}"), 0, "numeric user ids");
    is_field(msg.sponsor_user_id, "1122", "1122 means \"1122\"");
    is_field(msg.receiver_user_id, "2211", "2211 means \"2211\"");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":-5}"), 0, "negative user id");
    is_field(msg.receiver_user_id, "-5", "-5 means \"-5\"");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":0}"), 0, "zero user id");
    is_field(msg.receiver_user_id, "0", "0 means \"0\"");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":123456789012345678901234567890}"), 0, "user id beyond 64 bits");
    is_field(msg.receiver_user_id, "123456789012345678901234567890", "kept digit for digit, no overflow");

    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":1.5}"), SIG_ERR_BAD_FIELD, "1.5 is no user id");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":1e3}"), SIG_ERR_BAD_FIELD, "1e3 is no user id");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":1E3}"), SIG_ERR_BAD_FIELD, "1E3 is no user id");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":-0.0}"), SIG_ERR_BAD_FIELD, "-0.0 is no sponsorUserId");

    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"field1\":1.5e3,\"field2\":-0,\"sponsorUserName\":42,"
                  "\"auth\":7}"),
           0, "numbers in text fields");
    is_field(msg.field1, "1.5e3", "field1 keeps the number as written");
    is_field(msg.field2, "-0", "field2 keeps -0");
    is_field(msg.sponsor_user_name, "42", "sponsorUserName 42");
    is_field(msg.auth, "7", "auth 7");
}

static void test_decode_id(void)
{
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":7}"), 0, "numeric id");
    is_field(msg.id, "7", "id 7 echoed as 7");
    is_int(decode("{\"id\":-1.25e+2,\"type\":\"dialing\",\"receiverUserId\":\"2211\"}"), 0, "id as any number, first key");
    is_field(msg.id, "-1.25e+2", "number id echoed as written");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":\"abc\"}"), 0, "string id");
    is_field(msg.id, "\"abc\"", "string id echoed as a JSON string");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":\"\"}"), 0, "empty string id");
    is_field(msg.id, "\"\"", "empty string id is still an id");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":\"q\\\"b\\\\s\\/\\u0001\\n\\u00e9\\u5f20\"}"), 0,
           "string id with escapes");
    is_field(msg.id, "\"q\\\"b\\\\s/\\u0001\\né张\"", "re-encoded canonically");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":1,\"id\":\"two\"}"), 0, "id twice");
    is_field(msg.id, "\"two\"", "last id wins");

    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":null}"), SIG_ERR_BAD_FIELD, "id null");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":true}"), SIG_ERR_BAD_FIELD, "id bool");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":{}}"), SIG_ERR_BAD_FIELD, "id object");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":[1]}"), SIG_ERR_BAD_FIELD, "id array");
    is_int(msg.id.len, 0, "a bad id is not echoed");

    /* on errors the id is still there for the error reply, wherever it came in the object */
    is_int(decode("{\"id\":9,\"type\":\"dialing\"}"), SIG_ERR_MISSING_FIELD, "dialing without receiverUserId, id first");
    is_field(msg.id, "9", "id kept on MISSING_FIELD");
    is_int(msg.type, SIG_MSG_DIALING, "type kept on error");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":{},\"id\":\"x\"}"), SIG_ERR_BAD_FIELD, "bad field before id");
    is_field(msg.id, "\"x\"", "id after the bad field still kept");
    is_int(decode("{\"id\":4,\"type\":"), SIG_ERR_BAD_JSON, "truncated after id");
    is_field(msg.id, "4", "id read before the syntax error kept");
    is_int(decode("{\"id\":5,\"type\":\"ring\"}"), SIG_ERR_UNKNOWN_TYPE, "unknown type with id");
    is_field(msg.id, "5", "id kept on UNKNOWN_TYPE");
    is_int(msg.type, 0, "unknown type leaves type 0");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"\",\"id\":6}"), SIG_ERR_BAD_ID, "empty receiver with id");
    is_field(msg.id, "6", "id kept on BAD_ID");
}

static void test_decode_keys(void)
{
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"extra\":{\"a\":[1,{\"type\":\"x\"}],\"b\":null},"
                  "\"ok\":true,\"Type\":5,\"receiveruserid\":\"no\",\"nested\":{\"receiverUserId\":\"evil\","
                  "\"type\":\"create_connect\",\"id\":1}}"),
           0, "unknown keys and nested known names ignored");
    is_int(msg.type, SIG_MSG_DIALING, "type from the top level only");
    is_field(msg.receiver_user_id, "2", "receiverUserId from the top level only");
    is_int(msg.id.len, 0, "nested id ignored");
    is_int(decode("{\"ty\\u0070e\":\"dialing\",\"receiverUserId\":\"2\"}"), 0, "escaped key");
    is_int(msg.type, SIG_MSG_DIALING, "key compared after unescaping");
    is_int(decode("{\"type\":\"create_connect\",\"type\":\"dialing\",\"receiverUserId\":\"1\",\"receiverUserId\":\"2\"}"), 0,
           "duplicate keys");
    is_int(msg.type, SIG_MSG_DIALING, "last type wins");
    is_field(msg.receiver_user_id, "2", "last receiverUserId wins");
    is_int(decode(" \t\r\n{ \"type\" : \"create_connect\" , \"sponsorUserId\" : \"1\" } \n"), 0, "whitespace anywhere");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"field1\":\"a\\u0000b\"}"), 0, "escaped NUL in a field");
    is_int(msg.field1.len, 3, "NUL kept, length counts it");
    ok(memcmp(msg.field1.base, "a\0b", 3) == 0, "bytes a NUL b");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"sponsorUserName\":\"\\u5f20\\u4e09\",\"field1\":"
                  "\"\\ud83d\\ude00\"}"),
           0, "\\u escapes");
    is_field(msg.sponsor_user_name, "张三", "\\u5f20\\u4e09 is 张三");
    is_field(msg.field1, "\xf0\x9f\x98\x80", "surrogate pair is one 4-byte emoji");
}

/* ---------------------------------------------------------------------------------------------------------------------
 * decoding malformed messages
 * -------------------------------------------------------------------------------------------------------------------*/

static void test_decode_errors(void)
{
    static const struct {
        const char *json;
        int err;
        const char *what;
    } cases[] = {
        {"", SIG_ERR_BAD_JSON, "empty"},
        {"   \n", SIG_ERR_BAD_JSON, "only whitespace"},
        {"hello", SIG_ERR_BAD_JSON, "not JSON"},
        {"{type:\"dialing\"}", SIG_ERR_BAD_JSON, "unquoted key"},
        {"{'type':'dialing'}", SIG_ERR_BAD_JSON, "single quotes"},
        {"{\"type\":\"dialing\",}", SIG_ERR_BAD_JSON, "trailing comma"},
        {"{\"type\":\"dialing\"", SIG_ERR_BAD_JSON, "truncated object"},
        {"{\"type\":\"dial", SIG_ERR_BAD_JSON, "truncated string"},
        {"{\"type\":\"dialing\",\"receiverUserId\":12", SIG_ERR_BAD_JSON, "truncated number"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"2\"} x", SIG_ERR_BAD_JSON, "trailing garbage"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"2\"}{}", SIG_ERR_BAD_JSON, "two objects"},
        {"{/*c*/\"type\":\"dialing\",\"receiverUserId\":\"2\"}", SIG_ERR_BAD_JSON, "comments"},
        {"{\"type\":\"dialing\",\"receiverUserId\":02}", SIG_ERR_BAD_JSON, "leading zero"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"a\x01\"}", SIG_ERR_BAD_JSON, "raw control character in a string"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"\xff\"}", SIG_ERR_BAD_JSON, "invalid UTF-8"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"\\x\"}", SIG_ERR_BAD_JSON, "bad escape"},
        {"[]", SIG_ERR_NOT_OBJECT, "empty array"},
        {"[{\"type\":\"dialing\",\"receiverUserId\":\"2\"}]", SIG_ERR_NOT_OBJECT, "message inside an array"},
        {"\"dialing\"", SIG_ERR_NOT_OBJECT, "string top level"},
        {"42", SIG_ERR_NOT_OBJECT, "number top level"},
        {"null", SIG_ERR_NOT_OBJECT, "null top level"},
        {"true", SIG_ERR_NOT_OBJECT, "bool top level"},
        {"[1,", SIG_ERR_BAD_JSON, "truncated array: not JSON comes first"},
        {"{}", SIG_ERR_MISSING_TYPE, "empty object"},
        {"{\"sponsorUserId\":\"1\"}", SIG_ERR_MISSING_TYPE, "no type"},
        {"{\"type\":null,\"sponsorUserId\":\"1\"}", SIG_ERR_MISSING_TYPE, "type null"},
        {"{\"type\":\"dialing\",\"type\":null}", SIG_ERR_MISSING_TYPE, "type taken back by null"},
        {"{\"type\":1}", SIG_ERR_BAD_FIELD, "type number"},
        {"{\"type\":true}", SIG_ERR_BAD_FIELD, "type bool"},
        {"{\"type\":{\"x\":1}}", SIG_ERR_BAD_FIELD, "type object"},
        {"{\"type\":[\"dialing\"]}", SIG_ERR_BAD_FIELD, "type array"},
        {"{\"type\":\"ring\"}", SIG_ERR_UNKNOWN_TYPE, "unknown type"},
        {"{\"type\":\"\"}", SIG_ERR_UNKNOWN_TYPE, "empty type"},
        {"{\"type\":\"Dialing\"}", SIG_ERR_UNKNOWN_TYPE, "type is case-sensitive"},
        {"{\"type\":\"dialing \"}", SIG_ERR_UNKNOWN_TYPE, "type with a trailing space"},
        {"{\"type\":\"ring\",\"field1\":{}}", SIG_ERR_UNKNOWN_TYPE, "unknown type wins over its fields"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"field1\":{}}", SIG_ERR_BAD_FIELD, "field1 object"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"field2\":[]}", SIG_ERR_BAD_FIELD, "field2 array"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"field3\":false}", SIG_ERR_BAD_FIELD, "field3 bool"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"auth\":{\"t\":1}}", SIG_ERR_BAD_FIELD, "auth object"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"sponsorUserName\":true}", SIG_ERR_BAD_FIELD, "name bool"},
        {"{\"type\":\"dialing\",\"receiverUserId\":{\"id\":\"2\"}}", SIG_ERR_BAD_FIELD, "receiverUserId object"},
        {"{\"type\":\"dialing\",\"receiverUserId\":[\"2\"]}", SIG_ERR_BAD_FIELD, "receiverUserId array"},
        {"{\"type\":\"dialing\",\"receiverUserId\":true}", SIG_ERR_BAD_FIELD, "receiverUserId bool"},
        {"{\"type\":\"create_connect\",\"sponsorUserId\":[]}", SIG_ERR_BAD_FIELD, "sponsorUserId array"},
        {"{\"type\":\"dialing\",\"receiverUserId\":2.5}", SIG_ERR_BAD_FIELD, "float receiverUserId"},
        {"{\"type\":\"dialing\",\"field1\":{},\"field1\":\"ok\",\"receiverUserId\":\"2\"}", SIG_ERR_BAD_FIELD,
         "a bad value is an error even when a later one is fine"},
        {"{\"type\":\"dialing\"}", SIG_ERR_MISSING_FIELD, "dialing without receiverUserId"},
        {"{\"type\":\"dialing\",\"sponsorUserId\":\"1\",\"field1\":\"x\"}", SIG_ERR_MISSING_FIELD, "dialing, no receiver"},
        {"{\"type\":\"dialing\",\"receiverUserId\":null}", SIG_ERR_MISSING_FIELD, "receiverUserId null"},
        {"{\"type\":\"create_connect\"}", SIG_ERR_MISSING_FIELD, "create_connect without sponsorUserId"},
        {"{\"type\":\"create_connect\",\"sponsorUserName\":\"张三\"}", SIG_ERR_MISSING_FIELD, "create_connect, name only"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"\"}", SIG_ERR_BAD_ID, "empty receiverUserId"},
        {"{\"type\":\"create_connect\",\"sponsorUserId\":\"\"}", SIG_ERR_BAD_ID, "empty sponsorUserId"},
        {"{\"type\":\"dialing\",\"sponsorUserId\":\"\",\"receiverUserId\":\"2\"}", SIG_ERR_BAD_ID, "empty sponsor in dialing"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"\",\"field1\":{}}", SIG_ERR_BAD_FIELD, "bad field before bad id"},
    };
    size_t i;

    for (i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        int ret = decode(cases[i].json);
        is_int(ret, cases[i].err, "%s -> %s", cases[i].what, sig_err_code(cases[i].err));
    }

    {
        static const char with_nul[] = "{\"type\":\"dialing\",\"receiverUserId\":\"2\"}\0";
        is_int(decode_n(with_nul, sizeof(with_nul) - 1), SIG_ERR_BAD_JSON, "a NUL after the object");
        is_int(decode_n(with_nul, sizeof(with_nul) - 2), 0, "the same without the NUL is fine");
        is_int(decode_n(with_nul, 20), SIG_ERR_BAD_JSON, "len cuts the text short");
    }
    is_int(decode_n(NULL, 0), SIG_ERR_BAD_JSON, "NULL with length 0");
}

static void test_decode_id_lengths(void)
{
    char json[1024], id[300];
    int n;

    memset(id, '7', sizeof(id));
    n = snprintf(json, sizeof(json), "{\"type\":\"dialing\",\"receiverUserId\":\"%.*s\"}", 256, id);
    is_int(decode_n(json, (size_t)n), 0, "256-byte receiverUserId accepted");
    is_int(msg.receiver_user_id.len, 256, "and kept whole");
    n = snprintf(json, sizeof(json), "{\"type\":\"dialing\",\"receiverUserId\":\"%.*s\"}", 257, id);
    is_int(decode_n(json, (size_t)n), SIG_ERR_BAD_ID, "257-byte receiverUserId refused");
    n = snprintf(json, sizeof(json), "{\"type\":\"create_connect\",\"sponsorUserId\":%.*s}", 257, id);
    is_int(decode_n(json, (size_t)n), SIG_ERR_BAD_ID, "257-digit numeric sponsorUserId refused");
    n = snprintf(json, sizeof(json), "{\"type\":\"create_connect\",\"sponsorUserId\":%.*s}", 256, id);
    is_int(decode_n(json, (size_t)n), 0, "256-digit numeric sponsorUserId accepted");
    /* 86 Chinese characters are 258 bytes: the limit is in bytes */
    {
        char s[86 * 3 + 1] = "";
        int i;
        for (i = 0; i != 86; ++i)
            strcat(s, "张");
        n = snprintf(json, sizeof(json), "{\"type\":\"create_connect\",\"sponsorUserId\":\"%s\"}", s);
        is_int(decode_n(json, (size_t)n), SIG_ERR_BAD_ID, "the id limit counts bytes, not characters");
    }
}

static void test_decode_deep_nesting(void)
{
    enum { DEPTH = 10000 };
    sig_buf_t j = SIG_BUF_INIT;
    size_t i;

    /* closed nesting under an unknown key is skipped */
    append_lit(&j, "{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"x\":");
    for (i = 0; i != DEPTH; ++i)
        sig_buf_append_char(&j, '[');
    for (i = 0; i != DEPTH; ++i)
        sig_buf_append_char(&j, ']');
    append_lit(&j, ",\"field1\":\"after\"}");
    is_int(decode_n(j.base, j.len), 0, "10000 nested arrays under an unknown key are skipped");
    is_field(msg.field1, "after", "and the field after them is read");

    /* the same, never closed */
    sig_buf_reset(&j);
    append_lit(&j, "{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"x\":");
    for (i = 0; i != DEPTH; ++i)
        sig_buf_append_char(&j, '[');
    is_int(decode_n(j.base, j.len), SIG_ERR_BAD_JSON, "10000 unclosed arrays: bad JSON, no crash");

    /* nested objects with known key names inside */
    sig_buf_reset(&j);
    append_lit(&j, "{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"x\":");
    for (i = 0; i != DEPTH; ++i)
        append_lit(&j, "{\"type\":");
    sig_buf_append_char(&j, '1');
    for (i = 0; i != DEPTH; ++i)
        sig_buf_append_char(&j, '}');
    sig_buf_append_char(&j, '}');
    is_int(decode_n(j.base, j.len), 0, "10000 nested objects under an unknown key are skipped");
    is_int(msg.type, SIG_MSG_DIALING, "nested type keys do not count");

    /* deep nesting as a known field's value, and at the top level */
    sig_buf_reset(&j);
    append_lit(&j, "{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"field1\":");
    for (i = 0; i != DEPTH; ++i)
        sig_buf_append_char(&j, '[');
    for (i = 0; i != DEPTH; ++i)
        sig_buf_append_char(&j, ']');
    sig_buf_append_char(&j, '}');
    is_int(decode_n(j.base, j.len), SIG_ERR_BAD_FIELD, "deep array as field1 is a bad field");
    sig_buf_reset(&j);
    for (i = 0; i != DEPTH; ++i)
        sig_buf_append_char(&j, '[');
    for (i = 0; i != DEPTH; ++i)
        sig_buf_append_char(&j, ']');
    is_int(decode_n(j.base, j.len), SIG_ERR_NOT_OBJECT, "deep array at the top level is not an object");

    sig_buf_dispose(&j);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * decoding push API bodies (sig_push_decode)
 * -------------------------------------------------------------------------------------------------------------------*/

static int push_n(const char *json, size_t len)
{
    return sig_push_decode(json, len, &msg, &scratch);
}

static int push(const char *json)
{
    return push_n(json, strlen(json));
}

static void test_push_decode_call(void)
{
    is_int(push("{\"receiverUserId\":\"2211\",\"sponsorUserId\":\"system\",\"sponsorUserName\":\"客服\",\"field1\":\"hello\","
                "\"field2\":\"\",\"field3\":\"房间 3\"}"),
           0, "push body of operations.md decodes");
    is_int(msg.type, SIG_MSG_PUSH_CALL, "no type: a call");
    is_field(msg.receiver_user_id, "2211", "receiverUserId");
    is_field(msg.sponsor_user_id, "system", "sponsorUserId taken as given");
    is_field(msg.sponsor_user_name, "客服", "sponsorUserName in UTF-8");
    is_field(msg.field1, "hello", "field1");
    is_field(msg.field2, "", "field2 present and empty");
    is_field(msg.field3, "房间 3", "field3");
    is_int(msg.present,
           SIG_FIELD_RECEIVER_USER_ID | SIG_FIELD_SPONSOR_USER_ID | SIG_FIELD_SPONSOR_USER_NAME | SIG_FIELD_FIELD1 |
               SIG_FIELD_FIELD2 | SIG_FIELD_FIELD3,
           "present bits");
    is_absent(msg.user_id, "no userId");

    is_int(push("{\"receiverUserId\":\"2211\"}"), 0, "only receiverUserId");
    is_int(msg.type, SIG_MSG_PUSH_CALL, "a call");
    is_int(msg.present, SIG_FIELD_RECEIVER_USER_ID, "nothing else present");
    is_absent(msg.sponsor_user_id, "sponsorUserId absent");
    is_absent(msg.sponsor_user_name, "sponsorUserName absent");
    is_absent(msg.field1, "field1 absent");
    is_int(push("{\"type\":null,\"receiverUserId\":\"2211\",\"field1\":null}"), 0, "type null");
    is_int(msg.type, SIG_MSG_PUSH_CALL, "type null is no type: a call");
    ok((msg.present & SIG_FIELD_FIELD1) == 0, "field1 null is absent");
    is_int(push("{\"receiverUserId\":2211,\"sponsorUserId\":-7,\"field1\":1.5e3}"), 0, "numbers");
    is_field(msg.receiver_user_id, "2211", "receiverUserId 2211 means \"2211\"");
    is_field(msg.sponsor_user_id, "-7", "sponsorUserId -7 means \"-7\"");
    is_field(msg.field1, "1.5e3", "a number field keeps its text");
    is_int(push("{\"receiverUserId\":\"2\",\"extra\":{\"type\":\"disconnect\",\"userId\":\"9\"},\"ok\":true}"), 0,
           "unknown keys, nested known names ignored");
    is_int(msg.type, SIG_MSG_PUSH_CALL, "a nested type does not count");
    is_absent(msg.user_id, "a nested userId does not count");
    is_int(push("{\"receiverUserId\":\"2\",\"id\":7}"), 0, "an id is read as in a dialing");
    is_field(msg.id, "7", "... and kept");
}

static void test_push_decode_disconnect(void)
{
    is_int(push("{\"type\":\"disconnect\",\"userId\":\"2211\"}"), 0, "disconnect of operations.md decodes");
    is_int(msg.type, SIG_MSG_PUSH_DISCONNECT, "type disconnect");
    is_field(msg.user_id, "2211", "userId");
    is_int(msg.present, SIG_FIELD_USER_ID, "only userId present");
    is_absent(msg.receiver_user_id, "no receiverUserId");
    is_int(push("{\"userId\":2211,\"type\":\"disconnect\"}"), 0, "numeric userId, type last");
    is_field(msg.user_id, "2211", "2211 means \"2211\"");
    is_int(push("{\"type\":\"disconnect\",\"userId\":123456789012345678901234567890}"), 0, "userId beyond 64 bits");
    is_field(msg.user_id, "123456789012345678901234567890", "kept digit for digit");
    is_int(push("{\"type\":\"disconnect\",\"userId\":\"1\",\"field1\":\"x\",\"receiverUserId\":\"3\"}"), 0,
           "other fields are allowed");
    is_field(msg.user_id, "1", "userId is the one that counts");
    is_int(push("{\"type\":\"disconnect\",\"userId\":null,\"userId\":\"5\"}"), 0, "null then a value");
    is_field(msg.user_id, "5", "the last userId wins");
    is_int(push("{\"type\":\"x\",\"type\":\"disconnect\",\"userId\":\"5\"}"), 0, "the last type wins");
    is_int(msg.type, SIG_MSG_PUSH_DISCONNECT, "... disconnect");
    is_int(push("{\"type\":\"disconnect\",\"type\":null,\"userId\":\"1\"}"), SIG_ERR_MISSING_FIELD,
           "a later \"type\":null makes it a call again (last wins, null is absent): receiverUserId is missing");
    is_int(msg.type, SIG_MSG_PUSH_CALL, "... a call");
}

static void test_push_decode_errors(void)
{
    static const struct {
        const char *json;
        int err;
        const char *what;
    } cases[] = {
        {"", SIG_ERR_BAD_JSON, "empty body"},
        {"receiverUserId=2211", SIG_ERR_BAD_JSON, "a form, not JSON"},
        {"{\"receiverUserId\":\"2211\"", SIG_ERR_BAD_JSON, "truncated"},
        {"{\"receiverUserId\":\"2211\"} x", SIG_ERR_BAD_JSON, "trailing garbage"},
        {"{\"receiverUserId\":\"\xff\"}", SIG_ERR_BAD_JSON, "invalid UTF-8"},
        {"{\"receiverUserId\":\"1\",\"field1\":\"\\udc00\"}", SIG_ERR_BAD_JSON, "half a surrogate pair"},
        {"[{\"receiverUserId\":\"2211\"}]", SIG_ERR_NOT_OBJECT, "an array of bodies"},
        {"\"2211\"", SIG_ERR_NOT_OBJECT, "a string"},
        {"null", SIG_ERR_NOT_OBJECT, "null"},
        {"{}", SIG_ERR_MISSING_FIELD, "empty object: a call without receiverUserId"},
        {"{\"sponsorUserId\":\"system\",\"field1\":\"x\"}", SIG_ERR_MISSING_FIELD, "call without receiverUserId"},
        {"{\"userId\":\"2211\"}", SIG_ERR_MISSING_FIELD, "userId without type: a call, which needs receiverUserId"},
        {"{\"receiverUserId\":null}", SIG_ERR_MISSING_FIELD, "receiverUserId null"},
        {"{\"type\":\"disconnect\"}", SIG_ERR_MISSING_FIELD, "disconnect without userId"},
        {"{\"type\":\"disconnect\",\"receiverUserId\":\"2211\"}", SIG_ERR_MISSING_FIELD, "disconnect names userId, not receiverUserId"},
        {"{\"type\":\"disconnect\",\"userId\":null}", SIG_ERR_MISSING_FIELD, "userId null"},
        {"{\"receiverUserId\":\"\"}", SIG_ERR_BAD_ID, "empty receiverUserId"},
        {"{\"type\":\"disconnect\",\"userId\":\"\"}", SIG_ERR_BAD_ID, "empty userId"},
        {"{\"receiverUserId\":\"2\",\"sponsorUserId\":\"\"}", SIG_ERR_BAD_ID, "empty sponsorUserId"},
        {"{\"receiverUserId\":1.5}", SIG_ERR_BAD_FIELD, "1.5 is no receiverUserId"},
        {"{\"type\":\"disconnect\",\"userId\":1.5}", SIG_ERR_BAD_FIELD, "1.5 is no userId"},
        {"{\"type\":\"disconnect\",\"userId\":1e3}", SIG_ERR_BAD_FIELD, "1e3 is no userId"},
        {"{\"type\":\"disconnect\",\"userId\":[\"2211\"]}", SIG_ERR_BAD_FIELD, "userId array"},
        {"{\"type\":\"disconnect\",\"userId\":{\"id\":1}}", SIG_ERR_BAD_FIELD, "userId object"},
        {"{\"type\":\"disconnect\",\"userId\":true}", SIG_ERR_BAD_FIELD, "userId bool"},
        {"{\"receiverUserId\":\"2\",\"field1\":{}}", SIG_ERR_BAD_FIELD, "field1 object"},
        {"{\"receiverUserId\":\"2\",\"id\":null}", SIG_ERR_BAD_FIELD, "id null, as in a dialing"},
        {"{\"type\":1,\"receiverUserId\":\"2\"}", SIG_ERR_BAD_FIELD, "type number"},
        {"{\"type\":\"dialing\",\"receiverUserId\":\"2\"}", SIG_ERR_UNKNOWN_TYPE, "dialing is a client message, not a push"},
        {"{\"type\":\"create_connect\",\"sponsorUserId\":\"2\"}", SIG_ERR_UNKNOWN_TYPE, "create_connect neither"},
        {"{\"type\":\"called\",\"receiverUserId\":\"2\"}", SIG_ERR_UNKNOWN_TYPE, "called neither"},
        {"{\"type\":\"Disconnect\",\"userId\":\"2\"}", SIG_ERR_UNKNOWN_TYPE, "type is case-sensitive"},
        {"{\"type\":\"\",\"receiverUserId\":\"2\"}", SIG_ERR_UNKNOWN_TYPE, "empty type is not absent"},
        {"{\"type\":\"kick\",\"field1\":{}}", SIG_ERR_UNKNOWN_TYPE, "unknown type wins over its fields"},
        {"{\"type\":\"disconnect\",\"userId\":\"\",\"field1\":[]}", SIG_ERR_BAD_FIELD, "bad field before bad id"},
    };
    char json[1024], id[300];
    size_t i;
    int n;

    for (i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i)
        is_int(push(cases[i].json), cases[i].err, "push %s -> %s", cases[i].what, sig_err_code(cases[i].err));
    is_int(push_n(NULL, 0), SIG_ERR_BAD_JSON, "push NULL with length 0");
    is_int(push("{\"type\":\"ring\",\"userId\":\"1\"}"), SIG_ERR_UNKNOWN_TYPE, "an unknown type");
    is_int(msg.type, 0, "... leaves type 0");

    memset(id, '7', sizeof(id));
    n = snprintf(json, sizeof(json), "{\"type\":\"disconnect\",\"userId\":\"%.*s\"}", 256, id);
    is_int(push_n(json, (size_t)n), 0, "256-byte userId accepted");
    is_int(msg.user_id.len, 256, "and kept whole");
    n = snprintf(json, sizeof(json), "{\"type\":\"disconnect\",\"userId\":\"%.*s\"}", 257, id);
    is_int(push_n(json, (size_t)n), SIG_ERR_BAD_ID, "257-byte userId refused");
    n = snprintf(json, sizeof(json), "{\"type\":\"disconnect\",\"userId\":%.*s}", 257, id);
    is_int(push_n(json, (size_t)n), SIG_ERR_BAD_ID, "257-digit numeric userId refused");
    n = snprintf(json, sizeof(json), "{\"receiverUserId\":\"%.*s\"}", 257, id);
    is_int(push_n(json, (size_t)n), SIG_ERR_BAD_ID, "257-byte receiverUserId refused");
}

/* the push API's keys and absent type do not leak into the client protocol */
static void test_push_decode_client_messages_unchanged(void)
{
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"userId\":\"9\"}"), 0, "a dialing with a userId");
    is_absent(msg.user_id, "userId is an unknown key of a client message");
    is_int(msg.present, SIG_FIELD_RECEIVER_USER_ID, "... and sets no present bit");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"userId\":{\"x\":[true]}}"), 0,
           "a userId of any kind is ignored");
    is_absent(msg.user_id, "... and not read");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2\",\"userId\":\"\"}"), 0, "an empty userId is no bad id");
    is_int(decode("{\"receiverUserId\":\"2211\"}"), SIG_ERR_MISSING_TYPE, "a client message still needs a type");
    is_int(decode("{\"type\":null,\"receiverUserId\":\"2211\"}"), SIG_ERR_MISSING_TYPE, "... and null is still no type");
    is_int(msg.type, 0, "... and no push type comes back");
    is_int(decode("{\"type\":\"disconnect\",\"userId\":\"2211\"}"), SIG_ERR_UNKNOWN_TYPE, "a client cannot send a disconnect");
    is_int(msg.type, 0, "... type 0");

    /* one scratch serves both decoders, as one thread's would */
    is_int(push("{\"type\":\"disconnect\",\"userId\":\"p\"}"), 0, "a push");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"c\"}"), 0, "then a client message on the same scratch");
    is_field(msg.receiver_user_id, "c", "... reads its own fields");
    is_absent(msg.user_id, "... and none of the push's");
}

/* ---------------------------------------------------------------------------------------------------------------------
 * scratch reuse
 * -------------------------------------------------------------------------------------------------------------------*/

static void test_scratch(void)
{
    sig_buf_t s = SIG_BUF_INIT, j = SIG_BUF_INIT;
    char big[2000];
    const char *small = "{\"type\":\"create_connect\",\"sponsorUserId\":\"1\"}";
    char *base;
    size_t cap, i, stable = 0, correct = 0;

    /* fields long enough that scratch reallocates several times while the message is parsed */
    memset(big, 'b', sizeof(big));
    append_lit(&j, "{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"field1\":\"");
    sig_buf_append(&j, big, sizeof(big));
    append_lit(&j, "\",\"field2\":\"");
    sig_buf_append(&j, big, sizeof(big));
    append_lit(&j, "\",\"field3\":\"short\",\"id\":\"");
    sig_buf_append(&j, big, 100);
    append_lit(&j, "\"}");
    is_int(sig_msg_decode(j.base, j.len, &msg, &s), 0, "big message into an empty scratch");
    ok(s.cap >= 4000, "scratch grew while parsing");
    is_field(msg.receiver_user_id, "2211", "field stored before the growth is still right");
    ok(msg.field1.len == 2000 && msg.field1.base[0] == 'b' && msg.field1.base[1999] == 'b', "field1 intact");
    ok(msg.field2.len == 2000 && msg.field2.base[1999] == 'b', "field2 intact");
    is_field(msg.field3, "short", "field3 intact");
    is_int(msg.id.len, 102, "id intact");
    ok(msg.field1.base >= s.base && msg.field3.base + msg.field3.len < s.base + s.len, "strings point into scratch");

    /* a smaller message reuses the memory and does not see the old one */
    base = s.base;
    cap = s.cap;
    is_int(sig_msg_decode(small, strlen(small), &msg, &s), 0, "small message");
    ok(s.base == base && s.cap == cap, "scratch reused, not reallocated");
    is_field(msg.sponsor_user_id, "1", "new message's field");
    is_absent(msg.field1, "old message's field1 is gone");
    is_int(msg.id.len, 0, "old message's id is gone");

    for (i = 0; i != 1000; ++i) {
        int ret = sig_msg_decode(j.base, j.len, &msg, &s);
        if (s.base == base && s.cap == cap)
            ++stable;
        if (ret == 0 && msg.field2.len == 2000 && sig_str_eq(msg.field3, SIG_STRLIT("short")))
            ++correct;
    }
    is_int(stable, 1000, "warm scratch never reallocates");
    is_int(correct, 1000, "and every decode is right");

    sig_buf_dispose(&s);
    sig_buf_dispose(&j);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * encoding
 * -------------------------------------------------------------------------------------------------------------------*/

static void test_encode_examples(void)
{
    sig_buf_t b = SIG_BUF_INIT;

    sig_encode_called(&b, SIG_STRLIT("1122"), SIG_STRLIT("张三"), SIG_STRLIT("hello"), SIG_STRLIT(""), sig_str(NULL, 0));
    is_str(cstr(&b),
           "{\"type\":\"called\",\"ok\":true,\"msg\":\"\",\"data\":{\"sponsorUserId\":\"1122\",\"sponsorUserName\":\"张三\","
           "\"field1\":\"hello\",\"field2\":\"\",\"field3\":\"\"}}",
           "called, as in protocol.md (absent field3 sent as \"\")");

    sig_buf_reset(&b);
    sig_encode_called(&b, SIG_STRLIT("1"), sig_str(NULL, 0), sig_str(NULL, 0), sig_str(NULL, 0), sig_str(NULL, 0));
    is_str(cstr(&b),
           "{\"type\":\"called\",\"ok\":true,\"msg\":\"\",\"data\":{\"sponsorUserId\":\"1\",\"sponsorUserName\":\"\","
           "\"field1\":\"\",\"field2\":\"\",\"field3\":\"\"}}",
           "called with everything absent");

    sig_buf_reset(&b);
    sig_encode_dialing_ok(&b, SIG_STRLIT("7"), SIG_STRLIT("2211"), 2);
    is_str(cstr(&b),
           "{\"type\":\"dialing_response\",\"ok\":true,\"msg\":\"\",\"id\":7,\"data\":{\"receiverUserId\":\"2211\","
           "\"delivered\":2}}",
           "dialing_response ok, as in protocol.md");
    sig_buf_reset(&b);
    sig_encode_dialing_ok(&b, SIG_STRLIT("\"a\\\"b\""), SIG_STRLIT("2211"), SIZE_MAX);
    is_str(cstr(&b),
           "{\"type\":\"dialing_response\",\"ok\":true,\"msg\":\"\",\"id\":\"a\\\"b\",\"data\":{\"receiverUserId\":"
           "\"2211\",\"delivered\":18446744073709551615}}",
           "string id verbatim, delivered up to SIZE_MAX");
    sig_buf_reset(&b);
    sig_encode_dialing_ok(&b, sig_str(NULL, 0), SIG_STRLIT("2211"), 0);
    is_str(cstr(&b),
           "{\"type\":\"dialing_response\",\"ok\":true,\"msg\":\"\",\"data\":{\"receiverUserId\":\"2211\","
           "\"delivered\":0}}",
           "no id, no id key");

    sig_buf_reset(&b);
    sig_encode_create_connect_ok(&b, SIG_STRLIT("1"), SIG_STRLIT("1122"));
    is_str(cstr(&b),
           "{\"type\":\"create_connect_response\",\"ok\":true,\"msg\":\"\",\"id\":1,\"data\":{\"sponsorUserId\":"
           "\"1122\"}}",
           "create_connect_response ok, as in protocol.md");

    /* the two failures of protocol.md, plus the code, byte for byte */
    sig_buf_reset(&b);
    sig_encode_error(&b, "dialing_response", SIG_ERR_PEER_OFFLINE, sig_str(NULL, 0));
    is_str(cstr(&b),
           "{\"type\":\"dialing_response\",\"ok\":false,\"msg\":\"\xe5\xaf\xb9\xe6\x96\xb9\xe6\x9c\xaa\xe5\xbb\xba\xe7\xab\x8b"
           "\xe9\x93\xbe\xe6\x8e\xa5\",\"code\":\"peer_offline\",\"data\":{\"sponsorUserId\":null}}",
           "peer offline: 对方未建立链接");
    sig_buf_reset(&b);
    sig_encode_error(&b, "dialing_response", SIG_ERR_PEER_GONE, sig_str(NULL, 0));
    is_str(cstr(&b),
           "{\"type\":\"dialing_response\",\"ok\":false,\"msg\":\"\xe5\xaf\xb9\xe6\x96\xb9\xe6\x84\x8f\xe5\xa4\x96\xe6\x96\xad"
           "\xe5\xbc\x80\xe8\xbf\x9e\xe6\x8e\xa5\",\"code\":\"peer_gone\",\"data\":{\"sponsorUserId\":null}}",
           "peer gone: 对方意外断开连接");
    sig_buf_reset(&b);
    sig_encode_error(&b, "dialing_response", SIG_ERR_PEER_OFFLINE, SIG_STRLIT("7"));
    is_str(cstr(&b),
           "{\"type\":\"dialing_response\",\"ok\":false,\"msg\":\"对方未建立链接\",\"code\":\"peer_offline\",\"id\":7,"
           "\"data\":{\"sponsorUserId\":null}}",
           "failure echoes the id before data");
    sig_buf_reset(&b);
    sig_encode_error(&b, "dialing_response", SIG_ERR_NOT_REGISTERED, SIG_STRLIT("\"r1\""));
    is_str(cstr(&b),
           "{\"type\":\"dialing_response\",\"ok\":false,\"msg\":\"send create_connect before dialing\","
           "\"code\":\"not_registered\",\"id\":\"r1\",\"data\":{\"sponsorUserId\":null}}",
           "not_registered");
    sig_buf_reset(&b);
    sig_encode_error(&b, "dialing_response", SIG_ERR_IDENTITY_MISMATCH, sig_str(NULL, 0));
    is_str(cstr(&b),
           "{\"type\":\"dialing_response\",\"ok\":false,\"msg\":\"sponsorUserId does not match this connection's identity\","
           "\"code\":\"identity_mismatch\",\"data\":{\"sponsorUserId\":null}}",
           "identity_mismatch");

    sig_buf_reset(&b);
    sig_encode_error(&b, "error", SIG_ERR_BAD_JSON, sig_str(NULL, 0));
    is_str(cstr(&b), "{\"type\":\"error\",\"ok\":false,\"msg\":\"message is not valid JSON\",\"code\":\"bad_json\"}",
           "type error has no data");
    sig_buf_reset(&b);
    sig_encode_error(&b, "error", SIG_ERR_UNKNOWN_TYPE, SIG_STRLIT("\"abc\""));
    is_str(cstr(&b),
           "{\"type\":\"error\",\"ok\":false,\"msg\":\"message type is not known\",\"code\":\"unknown_type\",\"id\":\"abc\"}",
           "type error with id");
    sig_buf_reset(&b);
    sig_encode_error(&b, "create_connect_response", SIG_ERR_TOO_MANY_CONNECTIONS, SIG_STRLIT("1"));
    is_str(cstr(&b),
           "{\"type\":\"create_connect_response\",\"ok\":false,\"msg\":\"this user has too many connections\","
           "\"code\":\"too_many_connections\",\"id\":1}",
           "create_connect_response failure has no data");
    sig_buf_reset(&b);
    sig_encode_error(&b, "error", 12345, sig_str(NULL, 0));
    is_str(cstr(&b), "{\"type\":\"error\",\"ok\":false,\"msg\":\"internal server error\",\"code\":\"internal\"}",
           "an unknown error value is reported as internal");

    /* encoders append */
    sig_buf_reset(&b);
    append_lit(&b, "X");
    sig_encode_create_connect_ok(&b, sig_str(NULL, 0), SIG_STRLIT("1"));
    is_str(cstr(&b), "X{\"type\":\"create_connect_response\",\"ok\":true,\"msg\":\"\",\"data\":{\"sponsorUserId\":\"1\"}}",
           "encoders append to what is there");

    sig_buf_dispose(&b);
}

static void test_escaping(void)
{
    sig_buf_t b = SIG_BUF_INIT;
    char raw[32];
    size_t i;
    int good = 0;

    sig_json_append_string(&b, SIG_STRLIT("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f张三\xf0\x9f\x98\x80"));
    is_str(cstr(&b), "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f张三\xf0\x9f\x98\x80\"",
           "quote, backslash, short escapes, \\u00xx; slash, DEL, UTF-8 and emoji as is");

    /* every control character: the short form where JSON has one, else \u00xx in lowercase hex */
    for (i = 0; i != 32; ++i) {
        char want[16];
        const char *shorts = "btn?fr"; /* 0x08..0x0d; 0x0b has no short form */
        if (i >= 8 && i <= 13 && i != 11)
            snprintf(want, sizeof(want), "\"\\%c\"", shorts[i - 8]);
        else
            snprintf(want, sizeof(want), "\"\\u%04zx\"", i);
        raw[0] = (char)i;
        sig_buf_reset(&b);
        sig_json_append_string(&b, sig_str(raw, 1));
        good += strcmp(cstr(&b), want) == 0;
    }
    is_int(good, 32, "each of the 32 control characters escaped");
    sig_buf_reset(&b);
    sig_json_append_string(&b, sig_str(NULL, 0));
    is_str(cstr(&b), "\"\"", "empty string");
    sig_buf_reset(&b);
    sig_json_append_string(&b, sig_str("a\0b", 3));
    is_str(cstr(&b), "\"a\\u0000b\"", "NUL byte");

    /* plain text is skipped 8 bytes at a time: one special byte at every position of strings 1..24 bytes long,
     * around those 8-byte words, with the bytes next to the limits of the word test (0x1f/0x20, 0x21..0x23, 0x5b..0x5d,
     * 0x7f, 0x80, 0xff) around it */
    {
        static const unsigned char specials[] = {'"', '\\', 0x00, 0x01, 0x1f, 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xff};
        size_t len, pos, k, wrong = 0, cases = 0;
        for (len = 1; len <= 24; ++len) {
            for (pos = 0; pos != len; ++pos) {
                for (k = 0; k != sizeof(specials); ++k) {
                    char want[64], *w = want;
                    size_t j;
                    for (j = 0; j != len; ++j)
                        raw[j] = j == pos ? (char)specials[k] : 'a' + (char)(j % 26);
                    *w++ = '"';
                    for (j = 0; j != len; ++j) {
                        unsigned char c = (unsigned char)raw[j];
                        if (c == '"' || c == '\\')
                            *w++ = '\\', *w++ = (char)c;
                        else if (c < 0x20)
                            w += sprintf(w, c == 0x1f ? "\\u001f" : c == 0x01 ? "\\u0001" : "\\u0000");
                        else
                            *w++ = (char)c;
                    }
                    *w++ = '"';
                    *w = '\0';
                    sig_buf_reset(&b);
                    sig_json_append_string(&b, sig_str(raw, len));
                    wrong += b.len != (size_t)(w - want) || memcmp(b.base, want, b.len) != 0;
                    ++cases;
                }
            }
        }
        is_int((int)wrong, 0, "one special byte at each position of 1..24-byte strings: %zu cases escaped exactly", cases);
    }

    sig_buf_dispose(&b);
}

/* encode a client message with sig_json_append_string, decode it: every field must come back byte for byte */
static void test_round_trip(void)
{
    static const sig_str_t samples[] = {
        SIG_STRLIT("plain"),
        SIG_STRLIT("quote\" backslash\\ slash/ \\u0041 not an escape"),
        SIG_STRLIT("controls \x01\x02\b\t\n\x0b\f\r\x0e\x1f end"),
        SIG_STRLIT("DEL \x7f and tilde ~"),
        SIG_STRLIT("张三 对方未建立链接"),
        SIG_STRLIT("emoji \xf0\x9f\x98\x80\xf0\x9f\x91\x8d"),
        {"nul \0 inside", 13},
        SIG_STRLIT(""),
    };
    sig_buf_t j = SIG_BUF_INIT, out = SIG_BUF_INIT;
    size_t i, c;
    char all[128];

    for (i = 0; i != sizeof(samples) / sizeof(samples[0]); ++i) {
        sig_buf_reset(&j);
        append_lit(&j, "{\"type\":\"dialing\",\"receiverUserId\":\"r\",\"field1\":");
        sig_json_append_string(&j, samples[i]);
        append_lit(&j, ",\"id\":");
        sig_json_append_string(&j, samples[i]);
        sig_buf_append_char(&j, '}');
        is_int(decode_n(j.base, j.len), 0, "sample %zu decodes", i);
        ok(sig_str_eq(msg.field1, samples[i]), "sample %zu comes back byte for byte", i);
        /* the id echo is the canonical encoding, i.e. exactly what our encoder makes of it */
        sig_buf_reset(&out);
        sig_json_append_string(&out, samples[i]);
        ok(sig_str_eq(msg.id, sig_str(out.base, out.len)), "sample %zu id echoed canonically", i);
    }

    /* all of ASCII in one field */
    for (c = 0; c != 128; ++c)
        all[c] = (char)c;
    sig_buf_reset(&j);
    append_lit(&j, "{\"type\":\"create_connect\",\"sponsorUserId\":");
    sig_json_append_string(&j, sig_str(all, 128));
    sig_buf_append_char(&j, '}');
    is_int(decode_n(j.base, j.len), 0, "all 128 ASCII bytes as an id");
    ok(sig_str_eq(msg.sponsor_user_id, sig_str(all, 128)), "all 128 ASCII bytes round-trip");

    /* what the server sends is JSON: the decoder parses it (and rejects its type, which is not a client message) */
    sig_buf_reset(&out);
    sig_encode_called(&out, samples[1], samples[2], samples[4], samples[5], samples[6]);
    is_int(decode_n(out.base, out.len), SIG_ERR_UNKNOWN_TYPE, "called with nasty strings is valid JSON");
    sig_buf_reset(&out);
    sig_encode_error(&out, "dialing_response", SIG_ERR_PEER_GONE, SIG_STRLIT("\"x\""));
    is_int(decode_n(out.base, out.len), SIG_ERR_UNKNOWN_TYPE, "an error reply is valid JSON");
    is_field(msg.id, "\"x\"", "and its id is the one echoed");

    /* a decoded id echoed in a reply */
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"2211\",\"id\":\"a\\\"b\\u00e9\"}"), 0, "decode id with escapes");
    sig_buf_reset(&out);
    sig_encode_dialing_ok(&out, msg.id, msg.receiver_user_id, 1);
    is_str(cstr(&out),
           "{\"type\":\"dialing_response\",\"ok\":true,\"msg\":\"\",\"id\":\"a\\\"bé\",\"data\":"
           "{\"receiverUserId\":\"2211\",\"delivered\":1}}",
           "decoded id echoed in the reply");

    sig_buf_dispose(&j);
    sig_buf_dispose(&out);
}

static void test_error_table(void)
{
    static const struct {
        int err;
        const char *code;
    } codes[] = {
        {SIG_ERR_BAD_JSON, "bad_json"},
        {SIG_ERR_NOT_OBJECT, "not_object"},
        {SIG_ERR_MISSING_TYPE, "missing_type"},
        {SIG_ERR_UNKNOWN_TYPE, "unknown_type"},
        {SIG_ERR_BAD_FIELD, "bad_field"},
        {SIG_ERR_MISSING_FIELD, "missing_field"},
        {SIG_ERR_BAD_ID, "bad_id"},
        {SIG_ERR_NOT_REGISTERED, "not_registered"},
        {SIG_ERR_IDENTITY_MISMATCH, "identity_mismatch"},
        {SIG_ERR_PEER_OFFLINE, "peer_offline"},
        {SIG_ERR_PEER_GONE, "peer_gone"},
        {SIG_ERR_TOO_MANY_CONNECTIONS, "too_many_connections"},
        {SIG_ERR_UNSUPPORTED_DATA, "unsupported_data"},
        {SIG_ERR_MESSAGE_TOO_LARGE, "message_too_large"},
        {SIG_ERR_BAD_UTF8, "bad_utf8"},
        {SIG_ERR_INTERNAL, "internal"},
    };
    size_t i, j;
    int distinct = 1, negative = 1, texts = 1;

    for (i = 0; i != sizeof(codes) / sizeof(codes[0]); ++i) {
        is_str(sig_err_code(codes[i].err), codes[i].code, "code of %d", codes[i].err);
        negative &= codes[i].err < 0;
        texts &= sig_err_message(codes[i].err)[0] != '\0';
        for (j = 0; j != i; ++j)
            distinct &= codes[i].err != codes[j].err;
    }
    ok(negative, "every error is negative");
    ok(distinct, "every error is distinct");
    ok(texts, "every error has a text");
    is_str(sig_err_message(SIG_ERR_PEER_OFFLINE), "对方未建立链接", "peer_offline text");
    is_str(sig_err_message(SIG_ERR_PEER_GONE), "对方意外断开连接", "peer_gone text");
    is_str(sig_err_code(0), "internal", "0 is no error code");
    is_str(sig_err_code(-1), "internal", "unknown values map to internal");
}

/* \u escapes that are half a surrogate pair: yajl would emit invalid UTF-8 or invent a character */
static void test_decode_surrogates(void)
{
    static const char *const refused[] = {
        "\"\\udc00\"",        /* lone low half */
        "\"\\ude00x\"",       /* lone low half, then text */
        "\"\\ud83dx\"",       /* high half, then text */
        "\"end\\ud800\"",     /* high half at the end */
        "\"\\ud83d\\u0041\"", /* high half, then a non-surrogate escape */
        "\"\\ud83d\\ud83d\"", /* two high halves */
        "\"\\ud83d\\n\"",    /* high half, then another kind of escape */
    };
    char json[256];
    size_t i;

    for (i = 0; i != sizeof(refused) / sizeof(refused[0]); ++i) {
        snprintf(json, sizeof(json), "{\"type\":\"dialing\",\"receiverUserId\":\"1\",\"field1\":%s,\"id\":3}", refused[i]);
        is_int(decode(json), SIG_ERR_BAD_JSON, "field1 %s is refused", refused[i]);
        is_int(msg.id.len, 0, "... and no id is echoed (it could be what holds the half pair)");
    }
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"1\",\"field1\":\"\\ud83d\\ude00\"}"), 0, "a paired surrogate is fine");
    is_field(msg.field1, "\xf0\x9f\x98\x80", "... and decodes to U+1F600");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"1\",\"field1\":\"\\\\udc00\"}"), 0,
           "an escaped backslash before `udc00` is plain text");
    is_field(msg.field1, "\\udc00", "... kept as written");
}

/* create_connect's level-2 keys: read for create_connect alone; other types ignore them as level 1 always did */
static void test_decode_level2_keys(void)
{
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":2,\"deviceId\":\"phone-1.a_b~\"}"), 0,
           "level 2 with a deviceId");
    is_int(msg.level, 2, "... level 2");
    is_field(msg.device_id, "phone-1.a_b~", "... the deviceId");
    ok((msg.present & SIG_FIELD_DEVICE_ID) != 0, "... marked present");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\"}"), 0, "no level");
    is_int(msg.level, 0, "... level 0 (absent)");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":null}"), 0, "level null");
    is_int(msg.level, 0, "... is absent");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":1,\"deviceId\":\"a b\"}"), 0,
           "level 1: the deviceId is not checked");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":3}"), SIG_ERR_BAD_FIELD, "level 3");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":\"2\"}"), SIG_ERR_BAD_FIELD,
           "level as a string");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":2.0}"), SIG_ERR_BAD_FIELD, "level 2.0");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":2,\"deviceId\":\"a b\"}"),
           SIG_ERR_BAD_FIELD, "a deviceId with a space");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":2,\"deviceId\":\"\"}"),
           SIG_ERR_BAD_FIELD, "an empty deviceId");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":2,\"deviceId\":"
                  "\"12345678901234567890123456789012345678901234567890123456789012345\"}"),
           SIG_ERR_BAD_FIELD, "a deviceId of 65 characters");
    is_int(decode("{\"type\":\"create_connect\",\"sponsorUserId\":\"1\",\"level\":2,\"deviceId\":{}}"), SIG_ERR_BAD_FIELD,
           "a deviceId object");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"1\",\"level\":\"x\",\"deviceId\":{}}"), 0,
           "dialing ignores both keys whatever they hold");
    is_int(decode("{\"type\":\"call_accept\",\"callId\":\"c1\"}"), SIG_ERR_UNKNOWN_TYPE, "a level-2 type is unknown here");
    is_field(msg.type_name, "call_accept", "... and its text is kept");
    is_int(decode("{\"type\":\"dialing\",\"receiverUserId\":\"1\"}"), 0, "a known type");
    is_absent(msg.type_name, "... has no type_name");
    is_int(sig_push_decode(LIT_ARGS("{\"receiverUserId\":\"1\",\"deviceId\":\"d\",\"level\":\"x\"}"), &msg, &scratch), 0,
           "a push body ignores level and deviceId (fuzz_protocol: the decoders agree on the rest)");
    ok((msg.present & SIG_FIELD_DEVICE_ID) == 0 && msg.device_id.base == NULL && msg.level == 0, "... nothing read from them");
}

int main(void)
{
    test_decode_protocol_examples();
    test_decode_absent_empty_null();
    test_decode_numbers();
    test_decode_id();
    test_decode_keys();
    test_decode_errors();
    test_decode_id_lengths();
    test_decode_deep_nesting();
    test_decode_surrogates();
    test_decode_level2_keys();
    test_push_decode_call();
    test_push_decode_disconnect();
    test_push_decode_errors();
    test_push_decode_client_messages_unchanged();
    test_scratch();
    test_encode_examples();
    test_escaping();
    test_round_trip();
    test_error_table();
    sig_buf_dispose(&scratch);
    return done_testing();
}
