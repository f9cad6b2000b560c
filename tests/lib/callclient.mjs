// Level-2 ("calls") clients and the exact bytes of every server message, for the calls-*.test.mjs
// integration tests. The contract: /work/shared/design/calls.md; the bytes: handler/core/sig_callmsg.c
// (tests/unit/test_callmsg.c).
//
// Expected texts (JSON.stringify with the codec's key order; ids as the client wrote them):
//   T.callResponse({id, callId, state, level2, legacy, glare})  call_response (ok)
//   T.response(type, {id, callId, state})       <type>_response (ok) of call_ringing/accept/reject/hangup/signal/resume
//   T.error(type, code, id)                     <type>_response ok:false (the codec's English text for `code`)
//   T.level1Error(code, id)                     level 1's {"type":"error",...} (unknown_type, ...)
//   T.incoming({callId, from, name, media, expiresIn, replaces})   incoming_call
//   T.called({from, name, field1, field2, field3, callId})        level 1's called plus callId last
//   T.state({callId, state, alerting, peerConnected})             call_state
//   T.accepted({callId, byUser, byDevice, polite, glare})         call_accepted
//   T.signal({callId, fromUser, fromDevice, seq, kind, data})     call_signal (`data`: the JSON TEXT sent)
//   T.ended({callId, reason, detail, repeat})                     call_ended
//   T.registered({id, user, device, calls})   create_connect_response of a level-2 device; calls:
//                                             [{callId, state, role, peerUserId, media}]
//   T.level1Registered(id, user)              create_connect_response of level 1
//
// Clients (every wait bounded; default 5000 ms, times SLOW):
//   CallClient.open(url, {label, wsOptions}) -> a connected, unregistered client; it records every
//       message from the start (an inbox: nothing is lost between waits); `wsOptions` go to `ws`
//       (e.g. {autoPong: false}: a client that stops answering pings).
//   device(url, user, {device, name, level = 2, calls = [], label, wsOptions}) -> a client registered with
//       create_connect ("level":2 and `device` as deviceId; `level: 1`: level 1's create_connect, with
//       no level field), its create_connect_response checked byte for byte (level 1's bytes for
//       level 1; for level 2 the `calls` may come in any order).
//   c.send(value)                 sends an object as JSON (a string as is)
//   c.request(value, {timeout})   gives the message a fresh numeric `id` unless it has one, sends it and
//                                 returns the text of the reply carrying that id (skipping others, which
//                                 stay in the inbox): replies may overtake other messages across threads
//   c.call({to, media, ...})      -> {text, msg, id}: request({type: 'call', receiverUserId: to, ...})
//   c.take(type, callId, {timeout}) -> the text of the first message in the inbox of that type (and
//                                 data.callId when given), removed from the inbox
//   c.takeWhere(pred, what, {timeout}) -> the first {text, msg} with pred(msg, text), removed
//   c.expect(text, {timeout})     takes the first message of the same type and callId and asserts it is
//                                 exactly `text` (the message names the client)
//   c.expectReply(id, text)       the reply carrying `id`, asserted exactly
//   c.left()                      texts still in the inbox
//   c.quiet(ms)                   waits ms, then asserts the inbox is empty (what came is shown)
//   c.close(code = 1000)          clean close (a close frame): resolves on the server's close
//   c.kill()                      abrupt loss: the socket is destroyed, no close frame
//   c.closed                      a promise of {code, reason}
//   quietAll(clients, ms)         one wait, then each client's inbox must be empty
//   leftovers(clients, ms)        one wait, then {label: [texts]} of the clients whose inbox is not empty
//   clientsOf(t)                  a list whose clients are terminated after test t
//   stopClean(srv)                SIGTERM, then asserts exit code 0 (valgrind's 99 fails the suite)
//   ringCall(url, list, opts)     a ringing call, checked (see below); activeCall(url, list, opts): answered
//   acceptRace(call, deviceIds, first, round)  call.bs (two ringing devices) accept in the same tick,
//                                 bs[first] sending first: one wins, checked -> {w, l, wDevice, firstWon}
//   uid(tag)                      a user id no other test of the process uses
//   ERR_TEXT                      the codec's text per level-2 code
//   SLOW                          8 under valgrind (VALGRIND_LOG_DIR), else 1: scale timers and waits by it

import assert from 'node:assert/strict';

import WebSocket from 'ws';

import { signalingConfig, startServer } from './server.mjs';
import { withTimeout } from './wait.mjs';

const J = JSON.stringify;

/** 8 under `make check-valgrind` (VALGRIND_LOG_DIR), else 1: tests scale their timers and waits by it. */
export const SLOW = process.env.VALGRIND_LOG_DIR ? 8 : 1;
const WAIT = 5000 * SLOW; // default bound of every wait

export const ERR_TEXT = Object.freeze({
    bad_request: 'the request is not valid for a call',
    not_registered: 'send create_connect before calling',
    not_level2: 'this connection did not opt in to calls (create_connect with "level":2)',
    self_call: 'a user cannot call itself',
    too_many_calls: 'too many live calls',
    call_id_taken: 'this callId is in use',
    no_such_call: 'no such call',
    not_a_party: 'this device is not a party of the call',
    bad_state: "not possible in the call's state",
    answered_elsewhere: 'another device answered the call',
    signal_too_large: 'the signal is too large',
    rate_limited: 'too many signals: slow down',
    buffer_full: 'too many signals waiting for the other party',
});

/** Level 1's texts (handler/common/sig_common.h) for the codes these tests meet. */
export const LEVEL1_TEXT = Object.freeze({
    bad_json: 'message is not valid JSON',
    unknown_type: 'message type is not known',
    bad_field: 'a field has a value of the wrong kind',
    missing_field: 'a required field is missing',
    bad_id: 'user id must be 1 to 256 bytes',
});

export const T = Object.freeze({
    callResponse({ id, callId, state, level2 = 0, legacy = 0, glare = false }) {
        const data = { callId, state, delivered: { level2, legacy } };
        if (glare) data.glare = true;
        return J({ type: 'call_response', ok: true, msg: '', id, data });
    },
    response(type, { id, callId, state }) {
        return J({ type: `${type}_response`, ok: true, msg: '', id, data: { callId, state } });
    },
    error(type, code, id) {
        if (!(code in ERR_TEXT)) throw new Error(`T.error: no text for ${code}`);
        return J({ type: `${type}_response`, ok: false, msg: ERR_TEXT[code], code, id });
    },
    level1Error(code, id) {
        return J({ type: 'error', ok: false, msg: LEVEL1_TEXT[code], code, id });
    },
    incoming({ callId, from, name = '', media, expiresIn, replaces }) {
        const data = { callId, sponsorUserId: from, sponsorUserName: name, media, expiresIn };
        if (replaces) data.replaces = replaces;
        return J({ type: 'incoming_call', ok: true, msg: '', data });
    },
    called({ from, name = '', field1 = '', field2 = '', field3 = '', callId }) {
        return J({
            type: 'called',
            ok: true,
            msg: '',
            data: { sponsorUserId: from, sponsorUserName: name, field1, field2, field3, callId },
        });
    },
    state({ callId, state, alerting = 0, peerConnected }) {
        return J({ type: 'call_state', ok: true, msg: '', data: { callId, state, alerting, peerConnected } });
    },
    accepted({ callId, byUser, byDevice = null, polite, glare = false }) {
        const data = { callId, by: { userId: byUser, deviceId: byDevice ?? null }, polite };
        if (glare) data.glare = true;
        return J({ type: 'call_accepted', ok: true, msg: '', data });
    },
    signal({ callId, fromUser, fromDevice = null, seq, kind, data }) {
        if (typeof data !== 'string') throw new Error('T.signal: data is the JSON text as sent');
        return (
            `{"type":"call_signal","ok":true,"msg":"","data":{"callId":${J(callId)},"from":{"userId":${J(fromUser)},` +
            `"deviceId":${fromDevice == null ? 'null' : J(fromDevice)}},"seq":${seq},"kind":${J(kind)},"data":${data}}}`
        );
    },
    ended({ callId, reason, detail, repeat = false }) {
        const data = { callId, reason };
        if (detail) data.detail = detail;
        if (repeat) data.repeat = true;
        return J({ type: 'call_ended', ok: true, msg: '', data });
    },
    registered({ id, user, device = null, calls = [] }) {
        return J({
            type: 'create_connect_response',
            ok: true,
            msg: '',
            id,
            data: { sponsorUserId: user, level: 2, deviceId: device ?? null, calls: calls.map(callInfo) },
        });
    },
    level1Registered(id, user) {
        return J({ type: 'create_connect_response', ok: true, msg: '', id, data: { sponsorUserId: user } });
    },
});

/** {callId, state, role, peerUserId, media} in the codec's order. */
function callInfo({ callId, state, role, peerUserId, media }) {
    return { callId, state, role, peerUserId, media };
}

let uniq = 0;
/** A user id no other test of this process uses. */
export const uid = (tag) => `${tag}-${process.pid % 1000}-${++uniq}`;

let nextId = 1;
const freshId = () => nextId++;

export class CallClient {
    constructor(ws, label) {
        this.ws = ws;
        this.label = label;
        this.inbox = []; // {text, msg, at}
        this.seen = []; // every text, in order (for failure messages)
        this.waiters = [];
        this.closeInfo = null;
        this.closed = new Promise((resolve) => {
            this._onClosed = resolve;
        });
        ws.on('message', (data, isBinary) => {
            const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat([].concat(data)).toString('utf8');
            let msg;
            try {
                msg = JSON.parse(text);
            } catch {
                msg = { type: '(not JSON)' };
            }
            if (isBinary) msg = { type: '(binary)' };
            const entry = { text, msg, at: Date.now() };
            this.seen.push(text);
            this.inbox.push(entry);
            this._pump();
        });
        ws.on('close', (code, reason) => {
            this.closeInfo = { code, reason: reason.toString('utf8') };
            for (const w of this.waiters.splice(0)) {
                w.reject(new Error(`${this.label}: connection closed (${code}) while waiting for ${w.what}; inbox: ${this.dump()}`));
            }
            this._onClosed(this.closeInfo);
        });
        ws.on('error', () => {}); // shows up as the close
    }

    static async open(url, { label = 'client', timeout = WAIT, wsOptions = {} } = {}) {
        const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeout, ...wsOptions });
        const client = new CallClient(ws, label);
        await withTimeout(
            new Promise((resolve, reject) => {
                ws.once('open', resolve);
                ws.once('error', reject);
                ws.once('unexpected-response', (req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
            }),
            timeout + 1000,
            `${label}: WebSocket open ${url}`,
        );
        return client;
    }

    _pump() {
        for (let i = 0; i < this.waiters.length; ) {
            const w = this.waiters[i];
            const k = this.inbox.findIndex((e) => w.pred(e.msg, e.text));
            if (k >= 0) {
                const [entry] = this.inbox.splice(k, 1);
                this.waiters.splice(i, 1);
                w.resolve(entry);
            } else i++;
        }
    }

    dump(max = 12) {
        const list = this.inbox.slice(0, max).map((e) => e.text);
        return list.length ? `\n    ${list.join('\n    ')}${this.inbox.length > max ? `\n    ... ${this.inbox.length - max} more` : ''}` : '(empty)';
    }

    /** The first message matching pred (now or later), removed from the inbox: {text, msg}. */
    takeWhere(pred, what = 'a message', { timeout = WAIT } = {}) {
        const k = this.inbox.findIndex((e) => pred(e.msg, e.text));
        if (k >= 0) return Promise.resolve(this.inbox.splice(k, 1)[0]);
        if (this.closeInfo) {
            return Promise.reject(new Error(`${this.label}: closed (${this.closeInfo.code}) before ${what}; inbox: ${this.dump()}`));
        }
        let waiter;
        const p = new Promise((resolve, reject) => {
            waiter = { pred, what, resolve, reject };
            this.waiters.push(waiter);
        });
        return withTimeout(p, timeout, `${this.label}: ${what}`).catch((err) => {
            const i = this.waiters.indexOf(waiter);
            if (i >= 0) this.waiters.splice(i, 1);
            if (/^timed out/.test(err.message)) err.message += `; inbox of ${this.label}: ${this.dump()}`;
            throw err;
        });
    }

    /** The text of the first message of `type` (and data.callId === callId when given). */
    async take(type, callId, opts) {
        const e = await this.takeWhere(
            (m) => m.type === type && (callId === undefined || m.data?.callId === callId),
            `${type}${callId === undefined ? '' : ` of ${callId}`}`,
            opts,
        );
        return e.text;
    }

    /** Takes the first message of the same type and callId as `text` and asserts it is `text`. */
    async expect(text, opts) {
        const want = JSON.parse(text);
        const got = await this.take(want.type, want.data?.callId, opts);
        assert.equal(got, text, `${this.label}: ${want.type}`);
        return got;
    }

    send(value) {
        this.ws.send(typeof value === 'string' ? value : J(value));
    }

    /** The reply carrying `id` (any type): its text. */
    async reply(id, opts) {
        const e = await this.takeWhere((m) => m.id === id, `the reply with id ${J(id)}`, opts);
        return e.text;
    }

    async expectReply(id, text, opts) {
        const got = await this.reply(id, opts);
        assert.equal(got, text, `${this.label}: reply ${J(id)}`);
        return got;
    }

    /** Sends `value` with a fresh id (unless it has one); returns the reply's text. */
    async request(value, { timeout = WAIT } = {}) {
        const msg = { ...value };
        if (msg.id === undefined) msg.id = freshId();
        this.send(msg);
        return this.reply(msg.id, { timeout });
    }

    /** Sends with a fresh id, without waiting; returns the id. */
    post(value) {
        const msg = { ...value };
        if (msg.id === undefined) msg.id = freshId();
        this.send(msg);
        return msg.id;
    }

    /** A `call`: {text, msg, id} of its call_response. */
    async call({ to, media = 'audio', ...rest }, opts) {
        const id = rest.id ?? freshId();
        const text = await this.request({ type: 'call', receiverUserId: to, media, ...rest, id }, opts);
        return { text, msg: JSON.parse(text), id };
    }

    left() {
        return this.inbox.map((e) => e.text);
    }

    async quiet(ms = 150 * SLOW) {
        await new Promise((r) => setTimeout(r, ms));
        assert.deepEqual(this.left(), [], `${this.label}: no more messages`);
    }

    /** Clean close with `code` (a close frame); resolves once closed (bounded). */
    close(code = 1000, timeout = WAIT) {
        if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
        return withTimeout(this.closed, timeout, `${this.label}: close`);
    }

    /** Abrupt loss: the TCP connection ends without a close frame. */
    kill() {
        this.ws.terminate();
        return withTimeout(this.closed, WAIT, `${this.label}: terminate`);
    }

    isOpen() {
        return this.ws.readyState === WebSocket.OPEN;
    }
}

/** Waits `ms` once, then asserts every client's inbox is empty. */
export async function quietAll(clients, ms = 150 * SLOW) {
    await new Promise((r) => setTimeout(r, ms));
    for (const c of clients) assert.deepEqual(c.left(), [], `${c.label}: no more messages`);
}

/** Sorts data.calls of a create_connect_response text by callId (their order is not part of the contract). */
function canonicalRegistered(text) {
    const m = JSON.parse(text);
    if (m?.data && Array.isArray(m.data.calls)) {
        m.data.calls.sort((a, b) => (a.callId < b.callId ? -1 : a.callId > b.callId ? 1 : 0));
        return J(m);
    }
    return text;
}

/** A client registered as `user`; see the top of this file. */
export async function device(url, user, { device: deviceId, name, level = 2, calls = [], label, timeout = WAIT, wsOptions } = {}) {
    const c = await CallClient.open(url, { label: label ?? `${user}${deviceId ? `/${deviceId}` : ''}`, timeout, wsOptions });
    try {
        const msg = { type: 'create_connect', id: 'reg', sponsorUserId: user };
        if (name !== undefined) msg.sponsorUserName = name;
        if (level === 2) msg.level = 2;
        if (level === 2 && deviceId !== undefined) msg.deviceId = deviceId;
        const reply = await c.request(msg, { timeout });
        const want = level === 2 ? T.registered({ id: 'reg', user, device: deviceId, calls }) : T.level1Registered('reg', user);
        if (level === 2 && calls.length > 1) assert.equal(canonicalRegistered(reply), canonicalRegistered(want), `${c.label}: create_connect_response`);
        else assert.equal(reply, want, `${c.label}: create_connect_response`);
        c.registeredText = reply;
        return c;
    } catch (err) {
        c.ws.terminate();
        throw err;
    }
}

/** A list of clients killed (terminated) after test `t`. */
export function clientsOf(t) {
    const list = [];
    t.after(() => {
        for (const c of list) if (c.ws.readyState !== WebSocket.CLOSED) c.ws.terminate();
    });
    return list;
}

/** Every listed client's inbox after `ms`: {label: [texts]} of the non-empty ones. */
export async function leftovers(clients, ms = 100 * SLOW) {
    await new Promise((r) => setTimeout(r, ms));
    const out = {};
    for (const c of clients) if (c.inbox.length) out[c.label] = c.left();
    return out;
}

/**
 * A ringing call: `caller` (one device, deviceId `callerDevice` or none when null) calls `callee`, whose
 * level-2 devices `calleeDevices` (deviceIds; null for none) are registered first. Asserts the exact
 * call_response (ringing, delivered {level2: N, legacy: 0}) and each device's incoming_call (expiresIn
 * exactly `ringTimeout` when given, else only > 0). Every client goes into `list`.
 * Returns {A, B, a, bs, callId, media, name}.
 */
export async function ringCall(url, list, {
    caller = uid('caller'),
    callee = uid('callee'),
    callerDevice = 'a-1',
    calleeDevices = ['b-1'],
    media = 'audio',
    name = 'Caller',
    ringTimeout,
    callId: chosen,
} = {}) {
    const a = await device(url, caller, { device: callerDevice ?? undefined, name });
    list.push(a);
    const bs = [];
    for (const d of calleeDevices) {
        const b = await device(url, callee, { device: d ?? undefined });
        list.push(b);
        bs.push(b);
    }
    const extra = chosen === undefined ? {} : { callId: chosen };
    const r = await a.call({ to: callee, media, sponsorUserName: name, ...extra });
    const callId = r.msg.data?.callId;
    assert.equal(typeof callId, 'string', `call_response carries a callId: ${r.text}`);
    if (chosen !== undefined) assert.equal(callId, chosen, 'the client-chosen callId');
    assert.match(callId, /^[0-9A-Za-z._~-]{1,64}$/, 'a callId is 1..64 of [0-9A-Za-z._~-]');
    assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: bs.length, legacy: 0 }), 'call_response');
    for (const b of bs) {
        const text = await b.take('incoming_call', callId);
        const m = JSON.parse(text);
        const expiresIn = ringTimeout ?? m.data?.expiresIn;
        assert.ok(Number.isInteger(expiresIn) && expiresIn > 0, `expiresIn: ${text}`);
        assert.equal(text, T.incoming({ callId, from: caller, name, media, expiresIn }), `${b.label}: incoming_call`);
    }
    return { A: caller, B: callee, a, bs, callId, media, name };
}

/**
 * ringCall() then `bs[winner]` accepts: asserts the accept's reply (active), call_accepted to the caller
 * (polite false) and to the device (polite true), call_ended answered_elsewhere to the other devices.
 */
export async function activeCall(url, list, opts = {}) {
    const call = await ringCall(url, list, opts);
    const { winner = 0 } = opts;
    const { a, bs, callId, B } = call;
    const b = bs[winner];
    const byDevice = (opts.calleeDevices ?? ['b-1'])[winner] ?? null;
    const id = b.post({ type: 'call_accept', callId });
    await b.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
    await a.expect(T.accepted({ callId, byUser: B, byDevice, polite: false }));
    await b.expect(T.accepted({ callId, byUser: B, byDevice, polite: true }));
    for (const [i, other] of bs.entries()) {
        if (i !== winner) await other.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
    }
    return { ...call, b, byDevice };
}

/** Starts the server on 4 threads with the default /WsService path and these `signaling.*` lines. */
export function callServer(settings = []) {
    return startServer({ threads: 4, config: (vars) => signalingConfig(vars, { settings }) });
}

/**
 * Stops `srv` (SIGTERM) and asserts a clean exit: code 0, no signal, in time. Under valgrind an invalid
 * access or a definite leak makes the server exit 99, so the suite that ran it fails here.
 */
export async function stopClean(srv) {
    if (!srv) return;
    const st = await srv.stop('SIGTERM', { timeout: 10000 * SLOW });
    assert.deepEqual(
        { code: st.code, signal: st.signal, timedOut: st.timedOut },
        { code: 0, signal: null, timedOut: false },
        `the server's exit; stderr:\n${srv.stderr().slice(-3000)}`,
    );
}

/** Runs `round(i)` `n` times, failing when the loop as a whole takes longer than `budget` ms. */
export async function rounds(t, n, budget, round) {
    const started = Date.now();
    const outcomes = new Map();
    for (let i = 0; i < n; i++) {
        if (Date.now() - started > budget) throw new Error(`only ${i} of ${n} rounds within ${budget} ms`);
        const outcome = await round(i);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    t.diagnostic(`${n} rounds in ${Date.now() - started} ms: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    return outcomes;
}

/** Closes the round's clients cleanly without waiting (a clean close of a party is its hangup). */
export function closeRound(clients) {
    for (const c of clients) if (c.isOpen()) c.ws.close(1000);
}

/** Waits `ms`, then returns the texts left in each client's inbox ({label: [texts]}, non-empty only). */
export async function leftOver(clients, ms) {
    await new Promise((r) => setTimeout(r, ms));
    const out = {};
    for (const c of clients) if (c.inbox.length) out[c.label] = c.left();
    return out;
}

/** The ringing `call`'s two devices (deviceIds `deviceIds`) accept in the same tick, bs[first] first: one wins, checked (`round` names the asserts). */
export async function acceptRace({ a, bs, callId, B }, deviceIds, first, round) {
    const [d0, d1] = bs;
    const [s1, s2] = first ? [d1, d0] : [d0, d1];
    const ids = new Map([[s1, s1.post({ type: 'call_accept', callId })], [s2, s2.post({ type: 'call_accept', callId })]]);
    const replies = new Map();
    for (const d of [d0, d1]) replies.set(d, await d.reply(ids.get(d)));
    const winners = [d0, d1].filter((d) => replies.get(d) === T.response('call_accept', { id: ids.get(d), callId, state: 'active' }));
    assert.equal(winners.length, 1, `round ${round}: exactly one accept wins: ${[...replies.values()].join(' | ')}`);
    const [w] = winners;
    const l = w === d0 ? d1 : d0;
    const wDevice = w === d0 ? deviceIds[0] : deviceIds[1];
    assert.equal(replies.get(l), T.error('call_accept', 'answered_elsewhere', ids.get(l)), `round ${round}: the late accept`);
    await a.expect(T.accepted({ callId, byUser: B, byDevice: wDevice, polite: false }));
    await w.expect(T.accepted({ callId, byUser: B, byDevice: wDevice, polite: true }));
    await l.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
    // nothing else: in particular no second call_accepted anywhere
    const rest = await leftOver([a, d0, d1], 20);
    assert.deepEqual(rest, {}, `round ${round}: nothing more`);
    return { w, l, wDevice, firstWon: w === s1 };
}
