// Level-1 /WsService protocol helpers for tests (docs: /work/shared/design/protocol.md).
//
// Expected bytes (built with JSON.stringify, whose escaping of `"`, `\` and control
// characters is the server's, so non-ASCII text stays raw UTF-8 on both sides):
//   calledText({sponsorUserId, sponsorUserName, field1, field2, field3})  absent -> ""
//   dialingOkText(id, receiverUserId, delivered)
//   createConnectOkText(id, sponsorUserId)
//   dialingFailText(code, id)     peer_offline / peer_gone (the Chinese texts byte for byte)
//   MSG: the two Chinese failure texts by code
//
// Clients:
//   nextText(ws, timeout)       -> the next message of a `ws` client as a string (must be text)
//   request(ws, value, timeout) -> sends value (object -> JSON, string as is), returns nextText
//   register(url, userId, {name, id, timeout}) -> a `ws` client registered as userId; the
//       create_connect carries `id` (default "reg") and its reply is checked byte for byte
//   dial(ws, fields, timeout)   -> sends {"type":"dialing", ...fields}, returns the next text
//   waitPeerOffline(ws, receiverUserId, {timeout, id}) -> polls with dialings (each with an
//       id) until the answer is peer_offline; returns that answer's text. A success or a
//       peer_gone (entry still there, connection closing) is retried until `timeout` ms
//       (unregistering is asynchronous to the dialer); any other answer rejects at once.
//   rawNextText(raw, timeout)   -> the next text frame of a RawWebSocket as a string; ping
//       frames are skipped (and NOT answered), any other frame rejects
//   rawRegister(port, userId, {name, id}) -> a RawWebSocket registered as userId
//
// All waits are bounded (default 5000 ms).

import { connectRaw, OP } from './rawws.mjs';
import { connect, nextRaw } from './wsclient.mjs';

export const MSG = Object.freeze({
    peer_offline: '对方未建立链接',
    peer_gone: '对方意外断开连接',
});

/** The exact `called` push. */
export function calledText({ sponsorUserId, sponsorUserName = '', field1 = '', field2 = '', field3 = '' }) {
    return JSON.stringify({
        type: 'called',
        ok: true,
        msg: '',
        data: { sponsorUserId, sponsorUserName, field1, field2, field3 },
    });
}

/** The exact success answer to a dialing that carried `id`. */
export function dialingOkText(id, receiverUserId, delivered) {
    return JSON.stringify({ type: 'dialing_response', ok: true, msg: '', id, data: { receiverUserId, delivered } });
}

/** The exact success answer to a create_connect that carried `id`. */
export function createConnectOkText(id, sponsorUserId) {
    return JSON.stringify({ type: 'create_connect_response', ok: true, msg: '', id, data: { sponsorUserId } });
}

/** The exact failure answer to a dialing (peer_offline / peer_gone); `id` undefined: none. */
export function dialingFailText(code, id) {
    if (!(code in MSG)) throw new Error(`no fixed text for ${code}; compare fields instead`);
    return JSON.stringify({
        type: 'dialing_response',
        ok: false,
        msg: MSG[code],
        code,
        id,
        data: { sponsorUserId: null },
    });
}

/** The next message of a `ws` client, as text. */
export async function nextText(ws, timeout = 5000) {
    const { data, isBinary } = await nextRaw(ws, timeout);
    if (isBinary) throw new Error(`expected a text message, got a binary one of ${data.length} bytes`);
    return data.toString('utf8');
}

/** Sends `value` (an object is JSON-encoded, a string sent as is) and returns the next text message. */
export async function request(ws, value, timeout = 5000) {
    ws.send(typeof value === 'string' ? value : JSON.stringify(value));
    return nextText(ws, timeout);
}

/** Opens a `ws` client and registers it as `userId`; the reply is checked byte for byte. */
export async function register(url, userId, { name, id = 'reg', timeout = 5000 } = {}) {
    const ws = await connect(url, { timeout });
    try {
        const msg = { type: 'create_connect', sponsorUserId: userId, sponsorUserName: name, id };
        const reply = await request(ws, msg, timeout);
        const expected = createConnectOkText(id, String(userId));
        if (reply !== expected) throw new Error(`create_connect ${userId}: expected ${expected}\n   got ${reply}`);
        return ws;
    } catch (err) {
        ws.terminate();
        throw err;
    }
}

/** Sends a dialing made of `fields` and returns the next text message on that connection. */
export function dial(ws, fields, timeout = 5000) {
    return request(ws, { type: 'dialing', ...fields }, timeout);
}

/** Dials `receiverUserId` until the answer is peer_offline (bounded); returns that answer. */
export async function waitPeerOffline(ws, receiverUserId, { timeout = 2000, id = 'probe' } = {}) {
    const deadline = Date.now() + timeout;
    const offline = dialingFailText('peer_offline', id);
    let last;
    for (let attempt = 1; ; attempt++) {
        last = await dial(ws, { receiverUserId, id }, Math.max(1000, deadline - Date.now()));
        if (last === offline) return last;
        const parsed = JSON.parse(last);
        const transient = parsed.type === 'dialing_response' && (parsed.ok === true || parsed.code === 'peer_gone');
        if (!transient) {
            throw new Error(`dialing ${receiverUserId}: expected ${offline}\n   got ${last}`);
        }
        if (Date.now() >= deadline) {
            throw new Error(
                `${receiverUserId} still reachable after ${timeout} ms (${attempt} dialings); last answer: ${last}`,
            );
        }
        await new Promise((r) => setTimeout(r, 20)); // poll interval of a bounded condition wait
    }
}

/** The next text frame of a RawWebSocket as a string; pings are skipped without an answer. */
export async function rawNextText(raw, timeout = 5000) {
    const deadline = Date.now() + timeout;
    for (;;) {
        const f = await raw.nextFrame(Math.max(1, deadline - Date.now()));
        if (f.opcode === OP.PING) continue;
        if (f.opcode !== OP.TEXT || !f.fin) {
            const extra = f.opcode === OP.CLOSE ? ` (close ${f.code} ${f.reason})` : '';
            throw new Error(`expected a text frame, got opcode ${f.opcode} fin ${f.fin}${extra}`);
        }
        return f.payload.toString('utf8');
    }
}

/** A RawWebSocket registered as `userId` (reply checked byte for byte). */
export async function rawRegister(port, userId, { name, id = 'reg', timeout = 5000 } = {}) {
    const raw = await connectRaw({ port, timeout });
    try {
        raw.sendText(JSON.stringify({ type: 'create_connect', sponsorUserId: userId, sponsorUserName: name, id }));
        const reply = await rawNextText(raw, timeout);
        const expected = createConnectOkText(id, String(userId));
        if (reply !== expected) throw new Error(`create_connect ${userId}: expected ${expected}\n   got ${reply}`);
        return raw;
    } catch (err) {
        raw.destroy();
        throw err;
    }
}
