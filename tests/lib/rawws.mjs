// A WebSocket client on a raw socket, for conformance tests: it does the opening
// handshake by hand and writes any frame, including the malformed ones a normal
// client refuses to produce, and it parses every server frame as it arrives.
//
//   httpUpgrade({port, host, path, headers, rawHeaders, tls, timeout})
//       Sends an upgrade request (a header set to null is left out, so a test can
//       drop Sec-WebSocket-Key & co.; rawHeaders, [[name, value], ...], are sent
//       after them as they are, so a name may repeat) and reads the response head ->
//       {status, reason, headers (lower-case names), head, body, socket, rest, key}.
//   connectRaw(opts) -> RawWebSocket: httpUpgrade, then checks 101 and
//       Sec-WebSocket-Accept (throws otherwise, with the status in err.status).
//   encodeFrame({opcode, payload, fin, rsv1, rsv2, rsv3, mask, maskKey, declaredLength})
//       -> Buffer. Clients mask by default (mask: false sends unmasked);
//       declaredLength announces a length different from the payload's.
//   FrameParser: push(Buffer) -> frames [{fin, rsv1, rsv2, rsv3, opcode, masked,
//       payload, code?, reason?}] (code/reason for close frames).
//   OP: the opcodes by name; closeCodes: the RFC 6455 close codes by name.
//
// RawWebSocket: send(frameOpts), sendText(str, opts), sendBinary(buf, opts),
//   sendPing(buf), sendPong(buf), sendClose(code, reason, opts),
//   sendFragmented(opcode, payload, nParts, opts), sendRaw(buf),
//   nextFrame(timeout) -> frame, waitClose(timeout) -> {code, reason, frames,
//   closeFrame, tcpClosed}, tcpClosed (Promise), end(), destroy().

import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';

import { waitForHandoff, withTimeout } from './wait.mjs';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const OP = Object.freeze({ CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa });

export const closeCodes = Object.freeze({
    NORMAL: 1000,
    GOING_AWAY: 1001,
    PROTOCOL_ERROR: 1002,
    UNSUPPORTED_DATA: 1003,
    NO_STATUS: 1005,
    ABNORMAL: 1006,
    INVALID_PAYLOAD: 1007,
    POLICY_VIOLATION: 1008,
    MESSAGE_TOO_BIG: 1009,
    INTERNAL_ERROR: 1011,
});

/** The Sec-WebSocket-Accept value for `key`. */
export function acceptFor(key) {
    return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

/** One frame as bytes; see the top of this file. */
export function encodeFrame({
    opcode = OP.TEXT,
    payload = Buffer.alloc(0),
    fin = true,
    rsv1 = false,
    rsv2 = false,
    rsv3 = false,
    mask = true,
    maskKey,
    declaredLength,
} = {}) {
    const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
    const len = declaredLength ?? data.length;
    let header;
    if (len < 126) {
        header = Buffer.alloc(2);
        header[1] = len;
    } else if (len < 0x10000) {
        header = Buffer.alloc(4);
        header[1] = 126;
        header.writeUInt16BE(len, 2);
    } else {
        header = Buffer.alloc(10);
        header[1] = 127;
        header.writeBigUInt64BE(BigInt(len), 2);
    }
    header[0] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (rsv2 ? 0x20 : 0) | (rsv3 ? 0x10 : 0) | (opcode & 0x0f);
    if (!mask) return Buffer.concat([header, data]);
    header[1] |= 0x80;
    const key = maskKey ?? crypto.randomBytes(4);
    const masked = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ key[i & 3];
    return Buffer.concat([header, key, masked]);
}

/** Incremental parser of the frames a server sends. */
export class FrameParser {
    constructor() {
        this.buf = Buffer.alloc(0);
    }

    /** Appends bytes; returns every frame now complete. */
    push(chunk) {
        this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
        const frames = [];
        for (;;) {
            const f = this.#parseOne();
            if (!f) return frames;
            frames.push(f);
        }
    }

    #parseOne() {
        const b = this.buf;
        if (b.length < 2) return null;
        const masked = (b[1] & 0x80) !== 0;
        let len = b[1] & 0x7f;
        let off = 2;
        if (len === 126) {
            if (b.length < 4) return null;
            len = b.readUInt16BE(2);
            off = 4;
        } else if (len === 127) {
            if (b.length < 10) return null;
            const big = b.readBigUInt64BE(2);
            if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`server frame too large: ${big}`);
            len = Number(big);
            off = 10;
        }
        const maskKey = masked ? b.subarray(off, off + 4) : null;
        if (masked) off += 4;
        if (b.length < off + len) return null;
        let payload = Buffer.from(b.subarray(off, off + len));
        if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= maskKey[i & 3];
        this.buf = b.subarray(off + len);
        const frame = {
            fin: (b[0] & 0x80) !== 0,
            rsv1: (b[0] & 0x40) !== 0,
            rsv2: (b[0] & 0x20) !== 0,
            rsv3: (b[0] & 0x10) !== 0,
            opcode: b[0] & 0x0f,
            masked,
            payload,
        };
        if (frame.opcode === OP.CLOSE) {
            frame.code = payload.length >= 2 ? payload.readUInt16BE(0) : closeCodes.NO_STATUS;
            frame.reason = payload.subarray(2).toString('utf8');
        }
        return frame;
    }
}

/** Sends an HTTP/1.1 upgrade request and reads the response head; see the top of this file. */
export function httpUpgrade({
    port,
    host = '127.0.0.1',
    path = '/WsService',
    headers = {},
    rawHeaders = [],
    tls: useTls = false,
    timeout = 5000,
} = {}) {
    const key = crypto.randomBytes(16).toString('base64');
    const all = {
        Host: `${host}:${port}`,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
    };
    for (const [k, v] of Object.entries(headers)) {
        const existing = Object.keys(all).find((n) => n.toLowerCase() === k.toLowerCase());
        if (existing) delete all[existing];
        if (v !== null && v !== undefined) all[k] = v;
    }
    const request =
        `GET ${path} HTTP/1.1\r\n` +
        Object.entries(all)
            .map(([k, v]) => `${k}: ${v}\r\n`)
            .join('') +
        rawHeaders.map(([k, v]) => `${k}: ${v}\r\n`).join('') +
        '\r\n';

    const done = new Promise((resolve, reject) => {
        const socket = useTls
            ? tls.connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
            : net.connect({ host, port });
        let buf = Buffer.alloc(0);
        let head = null;
        let parsed = null;
        const cleanup = () => {
            socket.off('data', onData);
            socket.off('error', onError);
            socket.off('end', onEnd);
        };
        const finish = () => {
            cleanup();
            socket.pause(); // the next owner resumes it; no byte is lost meanwhile
            resolve({ ...parsed, socket, key });
        };
        const onError = (err) => {
            cleanup();
            socket.destroy();
            reject(err);
        };
        const onEnd = () => {
            if (parsed) return finish(); // body ended with the connection
            cleanup();
            reject(new Error(`connection closed before a complete response head: ${JSON.stringify(buf.toString())}`));
        };
        const onData = (chunk) => {
            buf = Buffer.concat([buf, chunk]);
            if (!parsed) {
                const end = buf.indexOf('\r\n\r\n');
                if (end < 0) return;
                head = buf.subarray(0, end).toString('latin1');
                const [statusLine, ...lines] = head.split('\r\n');
                const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine);
                if (!m) return onError(new Error(`bad status line: ${statusLine}`));
                const hdrs = {};
                for (const line of lines) {
                    const i = line.indexOf(':');
                    if (i < 0) continue;
                    const name = line.slice(0, i).trim().toLowerCase();
                    const value = line.slice(i + 1).trim();
                    hdrs[name] = name in hdrs ? `${hdrs[name]}, ${value}` : value;
                }
                parsed = { status: Number(m[1]), reason: m[2], headers: hdrs, head, rest: buf.subarray(end + 4) };
            }
            parsed.rest = buf.subarray(buf.indexOf('\r\n\r\n') + 4);
            if (parsed.status === 101) return finish();
            // A refusal: collect the body when its length is known, else return the head now.
            const cl = Number(parsed.headers['content-length']);
            if (!Number.isFinite(cl) || parsed.rest.length >= cl) {
                parsed.body = parsed.rest.toString('utf8');
                finish();
            }
        };
        socket.on('data', onData);
        socket.on('error', onError);
        socket.on('end', onEnd);
        socket.once(useTls ? 'secureConnect' : 'connect', () => socket.write(request));
    });
    return withTimeout(done, timeout, `upgrade response from ${host}:${port}${path}`);
}

/** Handshakes and returns a RawWebSocket; rejects (err.status) on anything but a valid 101. */
export async function connectRaw(opts = {}) {
    const res = await httpUpgrade(opts);
    if (res.status !== 101) {
        res.socket.destroy();
        const err = new Error(`handshake answered ${res.status} ${res.reason}`);
        err.status = res.status;
        err.headers = res.headers;
        err.body = res.body;
        throw err;
    }
    if (res.headers['sec-websocket-accept'] !== acceptFor(res.key)) {
        res.socket.destroy();
        throw new Error(`bad Sec-WebSocket-Accept: ${res.headers['sec-websocket-accept']}`);
    }
    return new RawWebSocket(res.socket, res.rest, res);
}

/** A connected WebSocket on a raw socket; see the top of this file. */
export class RawWebSocket {
    constructor(socket, rest = Buffer.alloc(0), handshake = null) {
        this.socket = socket;
        this.handshake = handshake;
        this.parser = new FrameParser();
        this.frames = [];
        this.waiters = [];
        this.error = null;
        this.isTcpClosed = false;
        this.tcpClosed = new Promise((resolve) => {
            socket.once('close', () => {
                this.isTcpClosed = true;
                for (const w of this.waiters.splice(0)) w.reject(new Error('TCP connection closed, no frame left'));
                resolve();
            });
        });
        socket.on('error', (err) => (this.error = err)); // shows up as the TCP close
        socket.on('data', (chunk) => this.#onData(chunk));
        if (rest.length) this.#onData(rest);
        socket.resume();
    }

    #onData(chunk) {
        let frames;
        try {
            frames = this.parser.push(chunk);
        } catch (err) {
            this.error = err;
            this.socket.destroy();
            return;
        }
        for (const f of frames) {
            const w = this.waiters.shift();
            if (w) w.resolve(f);
            else this.frames.push(f);
        }
    }

    /** Writes one frame built by encodeFrame(opts). */
    send(opts) {
        this.sendRaw(encodeFrame(opts));
    }

    /** Writes bytes as they are. */
    sendRaw(buf) {
        if (!this.socket.destroyed) this.socket.write(buf);
    }

    sendText(text, opts = {}) {
        this.send({ ...opts, opcode: OP.TEXT, payload: Buffer.from(text, 'utf8') });
    }

    sendBinary(buf, opts = {}) {
        this.send({ ...opts, opcode: OP.BINARY, payload: buf });
    }

    sendPing(payload = Buffer.alloc(0), opts = {}) {
        this.send({ ...opts, opcode: OP.PING, payload });
    }

    sendPong(payload = Buffer.alloc(0), opts = {}) {
        this.send({ ...opts, opcode: OP.PONG, payload });
    }

    /** A close frame; code null sends an empty close payload. */
    sendClose(code = closeCodes.NORMAL, reason = '', opts = {}) {
        let payload = Buffer.alloc(0);
        if (code !== null) {
            const r = Buffer.isBuffer(reason) ? reason : Buffer.from(reason, 'utf8');
            payload = Buffer.alloc(2 + r.length);
            payload.writeUInt16BE(code, 0);
            r.copy(payload, 2);
        }
        this.send({ ...opts, opcode: OP.CLOSE, payload });
    }

    /** One message split into `parts` frames (first with `opcode`, the rest continuation). */
    sendFragmented(opcode, payload, parts = 2, opts = {}) {
        const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
        const size = Math.ceil(data.length / parts) || 0;
        for (let i = 0; i < parts; i++) {
            this.send({
                ...opts,
                opcode: i === 0 ? opcode : OP.CONT,
                fin: i === parts - 1,
                payload: data.subarray(i * size, Math.min(data.length, (i + 1) * size)),
            });
        }
    }

    /** The next frame from the server (in order), or rejects on timeout / TCP close. */
    nextFrame(timeout = 5000) {
        if (this.frames.length) return Promise.resolve(this.frames.shift());
        if (this.isTcpClosed) return Promise.reject(new Error('TCP connection closed, no frame left'));
        return waitForHandoff(this.waiters, timeout, 'WebSocket frame');
    }

    /**
     * Reads frames until a close frame or the end of the TCP connection. Returns
     * {code, reason, frames (those before the close), closeFrame, tcpClosed}; code
     * is 1006 when the connection ended without a close frame. With `reply` (the
     * default) a received close is echoed, as RFC 6455 asks of a client.
     */
    async waitClose(timeout = 5000, { reply = true } = {}) {
        const deadline = Date.now() + timeout;
        const frames = [];
        for (;;) {
            let f;
            try {
                f = await this.nextFrame(Math.max(1, deadline - Date.now()));
            } catch (err) {
                if (!this.isTcpClosed) throw err;
                return { code: closeCodes.ABNORMAL, reason: '', frames, closeFrame: false, tcpClosed: true };
            }
            if (f.opcode === OP.CLOSE) {
                if (reply) this.sendClose(f.code === closeCodes.NO_STATUS ? null : f.code);
                return { code: f.code, reason: f.reason, frames, closeFrame: true, tcpClosed: this.isTcpClosed };
            }
            frames.push(f);
        }
    }

    /** Half-closes the TCP connection. */
    end() {
        this.socket.end();
    }

    destroy() {
        this.socket.destroy();
    }
}
