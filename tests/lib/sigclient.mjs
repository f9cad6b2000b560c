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
//   dialAllPairs(users, sockets, opts) -> every user (its socket at the same index) dials every
//       other user once with an id, `window` dialings in flight per socket, and waits (bounded)
//       for every answer and every `called`; each answer must be ok/delivered 1 and each
//       `called` the exact push from its sender (field1 `${tag}${sender}>${receiver}`). Returns
//       {total, ms, answers, calledTotal, called, problems, wrong}: `called` counts the pushes per
//       "sender>receiver", `problems` the first 20 unexpected messages, `wrong` the first 20
//       pairs not called exactly once. The test asserts on them.
//
// All waits are bounded (default 5000 ms).

import { connectRaw, OP } from './rawws.mjs';
import { waitUntil } from './wait.mjs';
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

/**
 * Every user in `users` dials every other user once, from `sockets[i]` (user i's only socket),
 * at most `window` dialings in flight per socket; see the top of this file. Options:
 *   window      dialings in flight per socket (default 8)
 *   tag         field1 is `${tag}${sender}>${receiver}` (default '')
 *   id          (key, n) -> the id of the n-th dialing of a sender, key "sender>receiver"
 *               (default: n, a number)
 *   nameOf      (userId) -> the sponsorUserName its `called` pushes carry (default: none, "")
 *   where       (index) -> a label for user `index` in problem messages (e.g. its node)
 *   timeout, interval   of the wait for every answer and every `called`
 *   settle      ms to wait after that for late duplicates (default 0)
 * The listeners it adds are removed before it returns.
 */
export async function dialAllPairs(
    users,
    sockets,
    { window = 8, tag = '', id: idOf = (key, n) => n, nameOf, where, timeout = 30000, interval = 50, settle = 0 } = {},
) {
    const problems = [];
    const note = (msg) => {
        if (problems.length < 20) problems.push(msg);
    };
    const called = new Map(); // "sender>receiver" -> count
    let calledTotal = 0;
    let answers = 0;
    const detach = [];
    const senders = users.map((me, i) => {
        const ws = sockets[i];
        const who = where ? `${me} (${where(i)})` : me;
        const targets = users.filter((u) => u !== me);
        const pending = new Map(); // id -> receiver
        let next = 0;
        const sendMore = () => {
            while (pending.size < window && next < targets.length) {
                const receiverUserId = targets[next];
                const key = `${me}>${receiverUserId}`;
                const id = idOf(key, next++);
                pending.set(id, receiverUserId);
                ws.send(JSON.stringify({ type: 'dialing', receiverUserId, field1: `${tag}${key}`, id }));
            }
        };
        const onMessage = (data, isBinary) => {
            const text = data.toString('utf8');
            if (isBinary) return note(`${who}: binary message`);
            let m;
            try {
                m = JSON.parse(text);
            } catch {
                return note(`${who}: not JSON: ${text}`);
            }
            if (m.type === 'called') {
                const from = m.data?.sponsorUserId;
                const key = `${from}>${me}`;
                const expected = calledText({ sponsorUserId: from, sponsorUserName: nameOf?.(from), field1: `${tag}${key}` });
                if (text !== expected) note(`${who}: expected ${expected}, got ${text}`);
                called.set(key, (called.get(key) ?? 0) + 1);
                calledTotal++;
            } else if (m.type === 'dialing_response' && pending.has(m.id)) {
                const receiver = pending.get(m.id);
                pending.delete(m.id);
                answers++;
                const expected = dialingOkText(m.id, receiver, 1);
                if (text !== expected) {
                    const r = users.indexOf(receiver);
                    note(`${who} -> ${where ? `${receiver} (${where(r)})` : receiver}: expected ${expected}, got ${text}`);
                }
                sendMore();
            } else note(`${who}: unexpected ${text}`);
        };
        const onClose = (code) => note(`${who}: connection closed (${code})`);
        ws.on('message', onMessage);
        ws.on('close', onClose);
        detach.push(() => {
            ws.off('message', onMessage);
            ws.off('close', onClose);
        });
        return sendMore;
    });

    const total = users.length * (users.length - 1);
    const started = Date.now();
    let ms;
    try {
        for (const start of senders) start();
        await waitUntil(() => problems.length > 0 || (answers === total && calledTotal >= total), {
            timeout,
            interval,
            what: `${total} answers and ${total} called`,
        }).catch((err) => {
            throw new Error(
                `${err.message}: after ${Date.now() - started} ms ${answers}/${total} answers, ${calledTotal}/${total} called; ` +
                    `problems: ${problems.join(' | ')}`,
            );
        });
        ms = Date.now() - started;
        // duplicates would come after the last answer
        if (settle > 0) await new Promise((r) => setTimeout(r, settle));
    } finally {
        for (const off of detach) off();
    }
    const wrong = [];
    for (const a of users) {
        for (const b of users) {
            if (a === b) continue;
            const n = called.get(`${a}>${b}`) ?? 0;
            if (n !== 1 && wrong.length < 20) wrong.push(`${a}>${b}: ${n}`);
        }
    }
    return { total, ms, answers, calledTotal, called, problems, wrong };
}
