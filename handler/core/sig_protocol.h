/*
 * sig_protocol.h: the /WsService level-1 JSON codec (protocol.md). Decodes one client message into a sig_msg_t and
 * encodes the server's replies byte for byte. No sockets, no h2o: bytes in, structs out, and back.
 */
#ifndef SIG_PROTOCOL_H
#define SIG_PROTOCOL_H

#include <stddef.h>
#include "common/sig_common.h"

/**
 * The client messages this level knows, and the push API's two bodies (sig_push_decode).
 */
typedef enum en_sig_msg_type_t {
    SIG_MSG_CREATE_CONNECT = 1,
    SIG_MSG_DIALING,
    SIG_MSG_PUSH_CALL,      /* push body without "type": `called` to every connection of receiverUserId */
    SIG_MSG_PUSH_DISCONNECT /* push body {"type":"disconnect","userId":..} */
} sig_msg_type_t;

/**
 * Bits of sig_msg_t.present: set when the field was given a value (a string or a number); clear when it was absent or
 * null. So `"field1":""` (present, empty) differs from no field1 at all.
 */
#define SIG_FIELD_SPONSOR_USER_ID 0x01u
#define SIG_FIELD_SPONSOR_USER_NAME 0x02u
#define SIG_FIELD_RECEIVER_USER_ID 0x04u
#define SIG_FIELD_FIELD1 0x08u
#define SIG_FIELD_FIELD2 0x10u
#define SIG_FIELD_FIELD3 0x20u
#define SIG_FIELD_AUTH 0x40u
#define SIG_FIELD_USER_ID 0x80u /* push bodies only */
#define SIG_FIELD_DEVICE_ID 0x100u /* create_connect only */

/** Longest deviceId (level 2): 1..SIG_DEVICE_ID_MAX of [0-9A-Za-z._~-]. */
#define SIG_DEVICE_ID_MAX 64

/**
 * A decoded client message. Every string points into the scratch buffer given to sig_msg_decode() and stays valid
 * until that buffer is next used or freed. Strings are decoded text (escapes resolved, may contain NUL bytes) and are
 * followed by a NUL that len does not count. An absent field is {NULL, 0} with its `present` bit clear.
 */
typedef struct st_sig_msg_t {
    sig_msg_type_t type; /* 0 when the message has no known type */
    sig_str_t sponsor_user_id, sponsor_user_name, receiver_user_id, field1, field2, field3, auth;
    sig_str_t user_id;   /* push bodies only: a client message's "userId" is an unknown key */
    sig_str_t device_id; /* create_connect: "deviceId" (checked only with level 2) */
    unsigned present;    /* SIG_FIELD_* bits for the nine fields above */
    int level;           /* create_connect: "level", 0 when absent, else 1 or 2 */
    sig_str_t type_name; /* with SIG_ERR_UNKNOWN_TYPE: the type's text (a level-2 message is first seen here) */
    sig_str_t id;     /* the request's "id" as canonical JSON to echo verbatim (`7`, `"abc"`); len 0: no id */
} sig_msg_t;

/**
 * Decodes one client message (one JSON text of `len` bytes). `scratch` is caller-owned and meant to be reused across
 * messages: it is reset first, so strings of the previous message die, and once it is big enough decoding allocates
 * nothing on the heap (small messages parse within a stack arena).
 * Fields: "type" must be the string "create_connect" or "dialing". "sponsorUserId"/"receiverUserId" are strings or
 * integers (1122 means "1122"). "sponsorUserName", "field1".."field3", "auth" are strings or numbers (their text as
 * written). null means absent for all of these. "id" is a string or a number. Unknown keys are ignored whatever their
 * value; a repeated key: the last one wins, but a value of the wrong kind is an error wherever it appears.
 * Returns 0, or the first that applies of:
 *   SIG_ERR_BAD_JSON      not one complete JSON text (empty, truncated, trailing garbage, invalid UTF-8);
 *   SIG_ERR_NOT_OBJECT    the top-level value is not an object;
 *   SIG_ERR_BAD_FIELD     "type" is present but neither a string nor null;
 *   SIG_ERR_MISSING_TYPE  no "type" (or "type": null);
 *   SIG_ERR_UNKNOWN_TYPE  "type" is a string other than the known ones;
 *   SIG_ERR_BAD_FIELD     a known field holds the wrong kind (object, array, bool; a non-integer user id; "id" null);
 *   SIG_ERR_MISSING_FIELD create_connect without sponsorUserId, dialing without receiverUserId;
 *   SIG_ERR_BAD_ID        sponsorUserId or receiverUserId given but empty or longer than 256 bytes.
 * `*msg` is filled in every case: on error, msg->id holds the id if one was read (so the error reply can echo it) and
 * msg->type the type if it was known.
 */
int sig_msg_decode(const char *json, size_t len, sig_msg_t *msg, sig_buf_t *scratch);

/* create_connect's level 2 additions, checked for create_connect only (other types ignore these keys as level 1 does):
 * "level" 1 or 2 (a number; null is absent), "deviceId" a string or number whose text is 1..SIG_DEVICE_ID_MAX of
 * [0-9A-Za-z._~-] when level is 2; anything else is SIG_ERR_BAD_FIELD. */

/** 1 if `id` is a valid deviceId (1..SIG_DEVICE_ID_MAX of [0-9A-Za-z._~-]). */
int sig_device_id_is_valid(sig_str_t id);

/**
 * Decodes a push API body (docs/operations.md) with the same rules and errors as sig_msg_decode, except for "type":
 * absent (or null) means SIG_MSG_PUSH_CALL, which requires receiverUserId; "disconnect" means SIG_MSG_PUSH_DISCONNECT,
 * which requires "userId" (a string or an integer, like the other user ids); any other string is
 * SIG_ERR_UNKNOWN_TYPE. Other fields are read as in a `dialing`.
 */
int sig_push_decode(const char *json, size_t len, sig_msg_t *msg, sig_buf_t *scratch);

/**
 * A dial payload that is no message: the connections it reaches are closed with 4000 (the push API's disconnect).
 * Every message is a JSON object, and no JSON text starts with a control character, so it cannot be one.
 */
#define SIG_PAYLOAD_DISCONNECT "\x01" "disconnect"
/** The close the disconnect payload asks for. */
#define SIG_CLOSE_DISCONNECTED 4000

/**
 * Appends `s` as a JSON string: quoted, with `"` `\` escaped, control characters below 0x20 as \b \f \n \r \t or
 * \u00xx (lowercase hex), and everything else (`/`, DEL, UTF-8) copied as is.
 */
void sig_json_append_string(sig_buf_t *buf, sig_str_t s);

/**
 * Appends the `called` push for every connection of the receiver:
 * {"type":"called","ok":true,"msg":"","data":{"sponsorUserId":..,"sponsorUserName":..,"field1":..,"field2":..,
 * "field3":..}}. An absent ({NULL, 0}) field is sent as "".
 */
void sig_encode_called(sig_buf_t *buf, sig_str_t sponsor_user_id, sig_str_t sponsor_user_name, sig_str_t field1,
                       sig_str_t field2, sig_str_t field3);

/**
 * Appends {"type":"dialing_response","ok":true,"msg":"","id":<id>,"data":{"receiverUserId":..,"delivered":<n>}}.
 * `id` is canonical JSON (sig_msg_t.id) copied verbatim, and left out when id.len is 0.
 */
void sig_encode_dialing_ok(sig_buf_t *buf, sig_str_t id, sig_str_t receiver_user_id, size_t delivered);

/**
 * Appends {"type":"create_connect_response","ok":true,"msg":"","id":<id>,"data":{"sponsorUserId":..}}; `id` as in
 * sig_encode_dialing_ok().
 */
void sig_encode_create_connect_ok(sig_buf_t *buf, sig_str_t id, sig_str_t sponsor_user_id);

/**
 * Appends a failure reply of the given type ("dialing_response", "error", ...):
 * {"type":<type>,"ok":false,"msg":<sig_err_message(err)>,"code":<sig_err_code(err)>[,"id":<id>]} followed, for
 * "dialing_response" only, by ,"data":{"sponsorUserId":null} as the old server sent. `id` is omitted when id.len is 0.
 */
void sig_encode_error(sig_buf_t *buf, const char *type, int err, sig_str_t id);

#endif
