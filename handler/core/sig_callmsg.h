/*
 * sig_callmsg.h: the level-2 JSON codec (calls.md, the contract): the seven call messages a level-2
 * device sends, decoded into a sig_call_request_t for the call owner (core/sig_call.h), and every
 * message the owner emits encoded as the bytes its device gets. No sockets, no h2o: bytes in,
 * structs out, and back. Level 1 (core/sig_protocol.h) is untouched: a level-2 message is first
 * seen there as an unknown type.
 */
#ifndef SIG_CALLMSG_H
#define SIG_CALLMSG_H

#include <stddef.h>
#include "common/sig_common.h"
#include "core/sig_call.h"

/** 1 if `type` (a message's "type" value) names a level-2 request ("call", "call_accept", ...). */
int sig_callmsg_is_call_type(sig_str_t type);
/** The request `type` names (SIG_CALL_REQ_CALL for "call", ...), or 0 when it names none. */
sig_call_req_type_t sig_callmsg_request_type(sig_str_t type);

/**
 * Decodes one level-2 client message into `req` (type, req_id, call_id and the fields of its type, as
 * sig_call.h lists them; `from`, `callee_devices` and `callee_busy` are the glue's to fill). Strings
 * point into `scratch` (reset first) and live until it is next used; `data` of a call_signal is the
 * value's JSON text exactly as sent (relayed as is).
 * The envelope follows level 1: "id" a string or a number (echoed as canonical JSON); null means absent;
 * unknown keys are ignored; the last of a repeated key wins. receiverUserId is a string or an integer;
 * sponsorUserName and field1..3 strings or numbers (their text); callId, media, reason and kind strings.
 * Returns 0, or the first that applies of SIG_ERR_BAD_JSON, SIG_ERR_NOT_OBJECT, SIG_ERR_MISSING_TYPE,
 * SIG_ERR_UNKNOWN_TYPE (not one of the seven), SIG_ERR_BAD_FIELD (a field of the wrong kind),
 * SIG_ERR_MISSING_FIELD (call without receiverUserId, call_signal without data, the others without
 * callId), SIG_ERR_BAD_ID (receiverUserId empty or over 256 bytes). On error req->req_id holds the id
 * when one was read and req->type the type when it was known, so the reply can say both.
 */
int sig_callmsg_decode(const char *json, size_t len, sig_call_request_t *req, sig_buf_t *scratch);

/**
 * Appends the message `out` becomes for its device (every type but SIG_CALL_OUT_USER_ACTIVE, which
 * appends nothing), with the envelope of level 1: {"type":..,"ok":true,"msg":""[,"id":..],"data":{..}}
 * for successes and {"type":"<request>_response","ok":false,"msg":..,"code":..[,"id":..]} for errors.
 * Absent device ids are null. `called` is level 1's bytes with "callId" added last.
 */
void sig_callmsg_encode(sig_buf_t *buf, const sig_call_out_t *out);

/**
 * Appends a level-2 device's create_connect_response: {"type":"create_connect_response","ok":true,"msg":""[,"id":..],
 * "data":{"sponsorUserId":..,"level":2,"deviceId":..|null,"calls":[{"callId":..,"state":..,"role":"caller"|"callee",
 * "peerUserId":..,"media":..},..]}}, the user's live calls as sig_call_user_calls() lists them.
 */
void sig_callmsg_encode_connect_ok(sig_buf_t *buf, sig_str_t id, sig_str_t user_id, sig_str_t device_id, const sig_call_info_t *calls,
                                   size_t num_calls);

#endif
