/*
 * RFC 6455 framing, with no sockets: the header of a server frame, and a reader that turns the
 * bytes a client sent into messages and control frames.
 *
 * The reader works in place on the caller's input buffer: it unmasks each complete frame where it
 * lies and hands out a pointer to it, so a message in one frame (nearly all of them) is never
 * copied. Only a fragmented message is gathered, in a buffer the reader owns while the message
 * lasts. An incomplete frame stays in the input until more bytes arrive, so an idle reader holds
 * no memory.
 *
 * With permessage-deflate negotiated (`deflate_ok`, RFC 7692 section 6) RSV1 on the first frame of a data message marks
 * it compressed: the reader hands out its compressed bytes as they came (gathered if fragmented), flagged `compressed`,
 * and the caller inflates them (core/sig_deflate.h) and checks the text it gets. Their UTF-8 is not checked here (it is
 * not text yet); their size on the wire may pass `max_message_size` by an eighth plus 64 bytes (what DEFLATE's worst
 * case, fixed Huffman codes on data that does not compress, adds), the inflated size may not. RSV1 on a control frame
 * or a continuation frame, or without the extension, is 1002 (RFC 7692 6.1).
 *
 * It is strict where RFC 6455 is (section 5, 7.4, 8.1) and reports each violation as the close
 * code to send: 1002 (reserved bits or opcode, unmasked frame, fragmented or long control frame,
 * stray or missing continuation, non-minimal or 64-bit-negative length, bad close body),
 * 1007 (text or close reason that is not UTF-8; text is checked as its bytes arrive, so bad bytes
 * fail at once, in a fragment before the message ends or in a frame before the rest of it), 1009 (message past `max_message_size`, known from the frame header
 * before its payload arrives), 1003 (binary message when `binary_ok` is 0).
 */
#ifndef SIG_WSFRAME_H
#define SIG_WSFRAME_H

#include <stddef.h>
#include <stdint.h>
#include "common/sig_common.h" /* sig_buf_t, sig_utf8_feed */

enum {
    SIG_WSFRAME_CONTINUATION = 0x0,
    SIG_WSFRAME_TEXT = 0x1,
    SIG_WSFRAME_BINARY = 0x2,
    SIG_WSFRAME_CLOSE = 0x8,
    SIG_WSFRAME_PING = 0x9,
    SIG_WSFRAME_PONG = 0xa,
};

/** Close codes (RFC 6455 section 7.4.1). */
enum {
    SIG_WS_CLOSE_NORMAL = 1000,
    SIG_WS_CLOSE_GOING_AWAY = 1001,
    SIG_WS_CLOSE_PROTOCOL_ERROR = 1002,
    SIG_WS_CLOSE_UNSUPPORTED_DATA = 1003,
    SIG_WS_CLOSE_NO_STATUS = 1005, /* never sent: stands for "the close frame had no code" */
    SIG_WS_CLOSE_INVALID_PAYLOAD = 1007,
    SIG_WS_CLOSE_POLICY_VIOLATION = 1008,
    SIG_WS_CLOSE_MESSAGE_TOO_BIG = 1009,
};

/** RSV1 in a frame's first byte: "compressed" with permessage-deflate (RFC 7692 6). */
#define SIG_WSFRAME_RSV1 0x40

/** The longest header of a frame the server sends (no mask): 2 + 8 bytes. */
#define SIG_WSFRAME_MAX_SERVER_HEADER 10

/** Writes the header of a final, unmasked frame; `dst` has room for SIG_WSFRAME_MAX_SERVER_HEADER. Returns its length. */
size_t sig_wsframe_encode_header(uint8_t *dst, uint8_t opcode, uint64_t payload_len);

/** What sig_wsframe_read found. */
typedef enum en_sig_wsframe_event_type_t {
    SIG_WSFRAME_NEED_MORE, /* no complete frame left: keep the unconsumed bytes, call again when more arrive */
    SIG_WSFRAME_MESSAGE,   /* a complete text (valid UTF-8 unless `compressed`) or binary message: `opcode`, `payload`, `len` */
    SIG_WSFRAME_PING_RECEIVED, /* answer with a pong carrying `payload`, `len` */
    SIG_WSFRAME_PONG_RECEIVED,
    SIG_WSFRAME_CLOSE_RECEIVED, /* the peer's close: `code` (1005 when it gave none), reason in `payload`, `len` */
    SIG_WSFRAME_ERROR           /* bad input: close with `code`, `reason` (a static string); read nothing more */
} sig_wsframe_event_type_t;

typedef struct st_sig_wsframe_event_t {
    sig_wsframe_event_type_t type;
    uint8_t opcode;     /* SIG_WSFRAME_MESSAGE: SIG_WSFRAME_TEXT or SIG_WSFRAME_BINARY */
    uint8_t compressed; /* SIG_WSFRAME_MESSAGE: 1 when `payload` is permessage-deflate data (RSV1), to inflate */
    uint16_t code;      /* CLOSE_RECEIVED, ERROR */
    const char *reason; /* ERROR */
    char *payload;      /* into the input, or the reader's buffer; valid until the next call */
    size_t len;
} sig_wsframe_event_t;

/** State kept between reads: a fragmented message in progress. Zero-fill, then set the limits. */
typedef struct st_sig_wsframe_reader_t {
    size_t max_message_size; /* larger messages fail with 1009 */
    unsigned binary_ok : 1;  /* 0: a binary message fails with 1003 */
    unsigned deflate_ok : 1; /* permessage-deflate was negotiated: RSV1 marks a compressed message */
    unsigned failed : 1;     /* an ERROR was returned: every later call returns it again */
    unsigned msg_compressed : 1; /* the fragmented message in progress is compressed */
    uint16_t error_code;
    const char *error_reason;
    uint8_t msg_opcode;      /* opcode of the fragmented message in progress, 0 when none */
    uint32_t utf8_state;     /* UTF-8 decoder state after the text checked so far: fragments and frame_checked */
    size_t frame_checked;    /* payload bytes of the incomplete text frame at the front of the input unmasked and checked */
    sig_buf_t msg;           /* the fragments gathered so far (base NULL when none) */
    char *delivered;         /* a gathered message handed out last call: freed on the next */
} sig_wsframe_reader_t;

/**
 * Reads the next event from `input` (`len` bytes not yet consumed), unmasking frames in place.
 * `*consumed` is set to the bytes the caller must drop from the front of its input after handling
 * the event (fragments absorbed on the way included); with NEED_MORE the rest must be kept as the
 * reader left it and be the front of the next call's input, with what arrived since after it. What
 * has arrived of an incomplete text frame is unmasked in place and checked then: bad UTF-8 gives
 * ERROR 1007 without waiting for the rest of the frame, and no byte is unmasked or checked twice.
 * After CLOSE_RECEIVED or ERROR the caller stops reading (more bytes are not frames to trust).
 */
void sig_wsframe_read(sig_wsframe_reader_t *reader, char *input, size_t len, size_t *consumed, sig_wsframe_event_t *event);

/** Frees what the reader holds; it may be used again after (it starts between messages). */
void sig_wsframe_reader_dispose(sig_wsframe_reader_t *reader);

#endif
