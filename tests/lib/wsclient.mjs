// Promise helpers around the `ws` client, for tests that speak well-formed WebSocket.
//
//   connect(url, {headers, protocols, timeout, ...wsOptions}) -> Promise<WebSocket>
//       Resolves on 'open'. Rejects with an Error carrying `.status` (and
//       `.headers`, `.body`) when the server answers the handshake with anything
//       but 101, or with the socket error. wss:// certificates are not verified.
//       Every message and the close are recorded from the start, so nothing that
//       arrives before nextMessage()/waitClose() is called is lost.
//   nextMessage(ws, timeout = 5000)       -> the next text message, JSON-parsed
//   nextRaw(ws, timeout = 5000)           -> {data: Buffer, isBinary}
//   sendJson(ws, value)                   -> sends JSON.stringify(value) as text
//   waitClose(ws, timeout = 5000)         -> {code, reason} of the close (1006 when
//                                            the TCP connection ended without one)
//   ping(ws, timeout = 5000)              -> resolves when the pong arrives
//   closeAll(sockets)                     -> terminates every socket still open
//   closeAfter(t)                         -> a list whose sockets are closeAll()ed in t.after

import WebSocket from 'ws';

import { waitForHandoff, withTimeout } from './wait.mjs';

const inboxes = new WeakMap(); // ws -> {queue: [], waiters: [], closed: {code, reason} | null}

function track(ws) {
    const box = { queue: [], waiters: [], closed: null, closeWaiters: [] };
    inboxes.set(ws, box);
    ws.on('message', (data, isBinary) => {
        const msg = { data: Buffer.isBuffer(data) ? data : Buffer.concat([].concat(data)), isBinary };
        const w = box.waiters.shift();
        if (w) w.resolve(msg);
        else box.queue.push(msg);
    });
    ws.on('close', (code, reason) => {
        box.closed = { code, reason: reason.toString('utf8') };
        for (const w of box.waiters.splice(0)) {
            w.reject(new Error(`connection closed (${code} ${box.closed.reason}) while waiting for a message`));
        }
        for (const resolve of box.closeWaiters.splice(0)) resolve(box.closed);
    });
    return box;
}

function inbox(ws) {
    const box = inboxes.get(ws);
    if (!box) throw new Error('socket was not opened with wsclient.connect()');
    return box;
}

/** Opens a WebSocket; see the top of this file. */
export function connect(url, { headers, protocols, timeout = 5000, ...options } = {}) {
    const done = new Promise((resolve, reject) => {
        const ws = new WebSocket(url, protocols, {
            headers,
            handshakeTimeout: timeout,
            rejectUnauthorized: false,
            perMessageDeflate: false,
            ...options,
        });
        track(ws);
        // stays installed: after 'open', errors show up as a close (1006) instead
        ws.on('error', (err) => reject(err));
        ws.once('unexpected-response', (req, res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const err = new Error(`unexpected response ${res.statusCode} to the WebSocket handshake on ${url}`);
                err.status = res.statusCode;
                err.headers = res.headers;
                err.body = Buffer.concat(chunks).toString('utf8');
                req.destroy();
                reject(err);
            });
            res.on('error', () => {}); // destroyed below if the body never ends
            setTimeout(() => req.destroy(), timeout).unref();
        });
        ws.once('open', () => resolve(ws));
    });
    return withTimeout(done, timeout + 1000, `WebSocket open ${url}`);
}

/** The next message as {data: Buffer, isBinary}. */
export function nextRaw(ws, timeout = 5000) {
    const box = inbox(ws);
    if (box.queue.length) return Promise.resolve(box.queue.shift());
    if (box.closed) {
        const { code, reason } = box.closed;
        return Promise.reject(new Error(`connection closed (${code} ${reason}), no message left`));
    }
    return waitForHandoff(box.waiters, timeout, 'WebSocket message');
}

/** The next message, which must be a text frame holding JSON; returns the parsed value. */
export async function nextMessage(ws, timeout = 5000) {
    const { data, isBinary } = await nextRaw(ws, timeout);
    if (isBinary) throw new Error(`expected a text message, got a binary one of ${data.length} bytes`);
    const text = data.toString('utf8');
    try {
        return JSON.parse(text);
    } catch {
        throw new Error(`message is not JSON: ${text}`);
    }
}

/** Sends `value` as one JSON text message. */
export function sendJson(ws, value) {
    ws.send(JSON.stringify(value));
}

/** Resolves with {code, reason} once the connection is closed. */
export function waitClose(ws, timeout = 5000) {
    const box = inbox(ws);
    if (box.closed) return Promise.resolve(box.closed);
    return withTimeout(new Promise((resolve) => box.closeWaiters.push(resolve)), timeout, 'WebSocket close');
}

/** Sends a ping and resolves when a pong arrives. */
export function ping(ws, timeout = 5000) {
    const p = new Promise((resolve, reject) => {
        ws.once('pong', () => resolve());
        ws.ping(Buffer.from('p'), undefined, (err) => err && reject(err));
    });
    return withTimeout(p, timeout, 'pong');
}

/** Terminates every socket in `sockets` that is not closed yet. */
export function closeAll(sockets) {
    for (const ws of sockets) {
        if (ws && ws.readyState !== WebSocket.CLOSED) ws.terminate();
    }
}

/** A list for the sockets of test `t`: every one still open is terminated in t.after. */
export function closeAfter(t) {
    const list = [];
    t.after(() => closeAll(list));
    return list;
}
