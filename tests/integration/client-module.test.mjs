// The browser client module (h2o-conf/www/signaling.js) imported in Node, `ws` injected as its
// WebSocket, against the real server: level-2 registration, a call between two module instances
// (ring, accept, signals both ways, hangup), errors as rejected promises with .code, a reconnect
// after the TCP connection dies (same deviceId: the server re-attaches the call), close() as a clean
// hangup, backoff, reply timeouts, tokens, and the level-1 fallback of a server with
// `signaling.call: OFF`.
//
// There is no localStorage in Node: every client gets its deviceId explicitly.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import WebSocket, { WebSocketServer } from 'ws';

import { SignalingClient, SignalingError } from '../../h2o-conf/www/signaling.js';
import { testKey, userToken } from '../lib/jwt.mjs';
import { freePorts, signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil } from '../lib/wait.mjs';

const WAIT = process.env.VALGRIND_LOG_DIR ? 30000 : 5000; // every wait is bounded by this

/** `ws` as the module's WebSocket, each socket it opens remembered (to kill the last one's TCP). */
function trackedWebSocket() {
    const sockets = [];
    class Tracked extends WebSocket {
        constructor(...args) {
            super(...args);
            sockets.push(this);
        }
    }
    return { Tracked, sockets };
}

let uniq = 0;

/**
 * A module client for a fresh user id `${name}${n}`, recording every event from the start so that a
 * wait cannot miss one that came first. rec.next(type, pred) -> the first recorded event of `type`
 * (detail matching pred) not taken yet, waiting for it (bounded).
 */
function makeClient(url, name, opts = {}) {
    const { Tracked, sockets } = trackedWebSocket();
    const userId = `${name}${++uniq}`;
    const sig = new SignalingClient({
        url, userId, userName: name, deviceId: `dev-${userId}`, WebSocket: Tracked,
        backoff: { min: 50, max: 200, jitter: 0 }, timeout: WAIT, ...opts,
    });
    const events = [];
    for (const type of ['open', 'registered', 'close', 'called', 'incoming', 'accepted', 'signal', 'state', 'ended', 'error', 'wire']) {
        sig.addEventListener(type, (ev) => events.push({ type, detail: ev.detail, taken: false }));
    }
    const next = (type, pred = () => true, what = '') =>
        waitUntil(() => {
            const e = events.find((x) => !x.taken && x.type === type && pred(x.detail));
            if (!e) return null;
            e.taken = true;
            return e.detail;
        }, { timeout: WAIT, interval: 5, what: `${userId}: event ${type} ${what}` });
    const wire = (direction) => events.filter((e) => e.type === 'wire' && e.detail.direction === direction).map((e) => e.detail.text);
    return { sig, userId, deviceId: `dev-${userId}`, sockets, events, next, wire };
}

/** A rings B, B accepts: both registered level-2 clients; returns the callId. */
async function activeCall(a, b) {
    const r = await a.sig.call(b.userId, { media: 'video' });
    await b.next('incoming', (d) => d.callId === r.callId);
    await b.sig.accept(r.callId);
    await a.next('accepted', (d) => d.callId === r.callId);
    await b.next('accepted', (d) => d.callId === r.callId);
    return r.callId;
}

describe('signaling.js against the server (level 2)', { timeout: 120000 }, () => {
    let srv;
    const clients = [];
    const client = (name, opts) => {
        const c = makeClient(srv.wsUrl, name, opts);
        clients.push(c);
        return c;
    };

    before(async () => {
        srv = await startServer({
            config: (vars) => signalingConfig(vars, {
                settings: ['signaling.call.reconnect-grace: 10000'],
                // one message per second after a burst of two: the third request in a row is dropped unanswered
                morePaths: '      /Slow:\n        signaling: ON\n        signaling.rate-limit: 1\n        signaling.rate-limit-burst: 2\n',
            }),
        });
    });
    after(async () => {
        for (const c of clients) c.sig.close();
        await srv.stop();
    });

    test('connect() registers at level 2 with its deviceId; the reply is the documented one', async () => {
        const a = client('a');
        const reg = await a.sig.connect();
        assert.deepEqual(reg, { level: 2, calls: [], deviceId: a.deviceId, sponsorUserId: a.userId });
        assert.equal(a.sig.state, 'registered');
        assert.equal(a.sig.level, 2);
        assert.deepEqual(JSON.parse(a.wire('sent')[0]),
            { type: 'create_connect', sponsorUserId: a.userId, sponsorUserName: 'a', level: 2, deviceId: a.deviceId, id: 1 });
        assert.equal(a.wire('received')[0], JSON.stringify({
            type: 'create_connect_response', ok: true, msg: '', id: 1,
            data: { sponsorUserId: a.userId, level: 2, deviceId: a.deviceId, calls: [] },
        }));
        assert.deepEqual(await a.next('registered'), reg);
    });

    test('a call: ring, signals buffered before the accept, accept, signals both ways, hangup', async () => {
        const a = client('a');
        const b = client('b');
        await Promise.all([a.sig.connect(), b.sig.connect()]);

        const r = await a.sig.call(b.userId, { media: 'video' });
        assert.equal(r.state, 'ringing');
        assert.deepEqual(r.delivered, { level2: 1, legacy: 0 });
        assert.equal(typeof r.callId, 'string');
        const inc = await b.next('incoming', (d) => d.callId === r.callId);
        assert.equal(inc.sponsorUserId, a.userId);
        assert.equal(inc.sponsorUserName, 'a');
        assert.equal(inc.media, 'video');
        assert.ok(inc.expiresIn > 0 && inc.expiresIn <= 60000, `expiresIn ${inc.expiresIn}`);

        // the caller's offer before anyone accepted: kept by the server for the device that accepts
        const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
        await a.sig.signal(r.callId, 'offer', offer);
        await b.sig.ringing(r.callId);
        const alerting = await a.next('state', (d) => d.callId === r.callId);
        assert.equal(alerting.alerting, 1);

        const acc = await b.sig.accept(r.callId);
        assert.equal(acc.state, 'active');
        const accA = await a.next('accepted', (d) => d.callId === r.callId);
        const accB = await b.next('accepted', (d) => d.callId === r.callId);
        assert.deepEqual(accA.by, { userId: b.userId, deviceId: b.deviceId });
        assert.equal(accA.polite, false, 'the caller is impolite');
        assert.equal(accB.polite, true, 'the callee is polite');

        const got = await b.next('signal', (d) => d.callId === r.callId);
        assert.deepEqual(got, { callId: r.callId, from: { userId: a.userId, deviceId: a.deviceId }, seq: 1, kind: 'offer', data: offer });
        await b.sig.signal(r.callId, 'answer', { type: 'answer', sdp: 'v=0\r\n' });
        const cand = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 54400 typ host', sdpMid: '0', sdpMLineIndex: 0 };
        await b.sig.signal(r.callId, 'candidate', cand);
        const ans = await a.next('signal', (d) => d.callId === r.callId);
        assert.equal(ans.kind, 'answer');
        assert.equal(ans.seq, 1);
        const c2 = await a.next('signal', (d) => d.callId === r.callId);
        assert.deepEqual([c2.kind, c2.seq, c2.data], ['candidate', 2, cand]);

        const hung = await a.sig.hangup(r.callId);
        assert.equal(hung.state, 'ended');
        const ended = await b.next('ended', (d) => d.callId === r.callId);
        assert.equal(ended.reason, 'hangup');
    });

    test('errors reject with a SignalingError carrying the server\'s code and msg', async () => {
        const a = client('a');
        await assert.rejects(a.sig.call('x'), (err) => err instanceof SignalingError && err.code === 'disconnected',
            'a request before connect()');
        await a.sig.connect();
        await assert.rejects(a.sig.call(a.userId, { media: 'audio' }), (err) => {
            assert.ok(err instanceof SignalingError && err instanceof Error);
            assert.equal(err.code, 'self_call');
            assert.equal(err.msg, 'a user cannot call itself');
            return true;
        });
        await assert.rejects(a.sig.accept('no-such-call'), { code: 'no_such_call' });
        const last = JSON.parse(a.wire('received').at(-1));
        assert.equal(last.type, 'call_accept_response');
        assert.equal(last.id, JSON.parse(a.wire('sent').at(-1)).id, 'the reply echoes the request id');
        // the connection is still fine
        const b = client('b');
        await b.sig.connect();
        const r = await a.sig.call(b.userId);
        await b.next('incoming', (d) => d.callId === r.callId);
        await a.sig.hangup(r.callId);
        assert.equal((await b.next('ended', (d) => d.callId === r.callId)).reason, 'cancelled');
    });

    test('a refused create_connect (a bad deviceId) rejects connect() with the code and stops', async () => {
        const a = client('a', { deviceId: 'no spaces allowed' });
        await assert.rejects(a.sig.connect(), { code: 'bad_field' });
        assert.equal(a.sig.state, 'closed');
        assert.equal((await a.next('error')).code, 'bad_field');
        assert.equal((await a.next('close')).reconnectIn, null, 'final: the same request would be refused again');
        assert.equal(a.sockets.length, 1, 'no retry');
    });

    test('a reply that never comes rejects with "timeout"; an error for no request is an `error` event', async () => {
        const a = client('a', { timeout: WAIT / 10 });
        a.sig.url = srv.wsUrl.replace('/WsService', '/Slow');
        await a.sig.connect();
        await assert.rejects(a.sig.dial('nobody'), { code: 'peer_offline' }); // the burst's second message
        await assert.rejects(a.sig.dial('nobody'), { code: 'timeout' }); // dropped by the rate limit: no id to answer
        assert.equal((await a.next('error')).code, 'rate_limited');
        assert.equal(a.sig.state, 'registered', 'the connection stays');
    });

    test('no answer to create_connect: it drops that socket with 4001 (not a clean close) and tries a new one', async (t) => {
        const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 }); // takes create_connect, never answers
        t.after(() => wss.close());
        await new Promise((res) => wss.once('listening', res));
        const closes = [];
        wss.on('connection', (sock) => sock.on('close', (code) => closes.push(code)));
        const a = client('a', { timeout: 200 });
        a.sig.url = `ws://127.0.0.1:${wss.address().port}/WsService`;
        a.sig.connect().catch(() => {});
        const first = await a.next('close');
        assert.equal(first.code, 4001);
        assert.equal(first.reconnectIn, 50);
        await waitUntil(() => a.sockets.length >= 2 && closes.length >= 1, { timeout: WAIT, what: 'a second socket' });
        assert.equal(closes[0], 4001, 'the server saw close code 4001');
        a.sig.close();
    });

    test('nothing listening: it retries with exponential backoff up to backoff.max', async () => {
        const [port] = await freePorts(1);
        const a = client('a');
        a.sig.url = `ws://127.0.0.1:${port}/WsService`;
        const registered = a.sig.connect();
        const delays = [];
        for (let i = 0; i < 4; i++) delays.push((await a.next('close')).reconnectIn);
        assert.deepEqual(delays, [50, 100, 200, 200], 'min 50, doubling, max 200, no jitter');
        a.sig.close();
        await assert.rejects(registered, { code: 'disconnected' });
        assert.equal(a.sig.state, 'closed');
    });

    test('the TCP connection dies mid-call: the module reconnects, re-registers with its deviceId, the call goes on', async () => {
        const a = client('a');
        const b = client('b');
        await Promise.all([a.sig.connect(), b.sig.connect()]);
        const callId = await activeCall(a, b);
        await a.next('registered');

        // a request in flight when the socket dies rejects with "disconnected"
        const inFlight = a.sig.ringing(callId);
        a.sockets.at(-1).terminate(); // no close frame: an abnormal loss to the server
        await assert.rejects(inFlight, { code: 'disconnected' });
        const closed = await a.next('close');
        assert.equal(closed.code, 1006);
        assert.equal(typeof closed.reconnectIn, 'number');
        assert.equal((await b.next('state', (d) => d.callId === callId && d.peerConnected === false)).state, 'active');

        const again = await a.next('registered');
        assert.equal(again.level, 2);
        assert.equal(again.deviceId, a.deviceId);
        assert.deepEqual(again.calls, [{ callId, state: 'active', role: 'caller', peerUserId: b.userId, media: 'video' }]);
        assert.equal(a.sockets.length, 2, 'a second socket');
        const reRegister = a.wire('sent').map((t) => JSON.parse(t)).filter((m) => m.type === 'create_connect');
        assert.equal(reRegister.length, 2);
        assert.equal(reRegister[1].deviceId, a.deviceId, 'the same deviceId');
        assert.ok(reRegister[1].id > reRegister[0].id, 'a fresh request id');
        await b.next('state', (d) => d.callId === callId && d.peerConnected === true);

        // signals flow again, both ways
        await b.sig.signal(callId, 'candidate', { candidate: 'after' });
        assert.deepEqual((await a.next('signal', (d) => d.callId === callId)).data, { candidate: 'after' });
        await a.sig.signal(callId, 'candidate', { candidate: 'back' });
        assert.deepEqual((await b.next('signal', (d) => d.callId === callId)).data, { candidate: 'back' });
        await b.sig.hangup(callId);
        assert.equal((await a.next('ended', (d) => d.callId === callId)).reason, 'hangup');
    });

    test('close() is a clean close (1000): the server hangs up the call at once', async () => {
        const a = client('a');
        const b = client('b');
        await Promise.all([a.sig.connect(), b.sig.connect()]);
        const callId = await activeCall(a, b);
        a.sig.close();
        assert.equal(a.sig.state, 'closed');
        assert.deepEqual(await a.next('close'), { code: 1000, reason: 'closed by the client', reconnectIn: null });
        assert.equal((await b.next('ended', (d) => d.callId === callId)).reason, 'hangup');
        assert.equal(a.sockets.length, 1, 'no reconnect after close()');
    });
});

describe('signaling.js against a server with signaling.call: OFF (level 1 only)', { timeout: 60000 }, () => {
    let srv;
    const clients = [];

    before(async () => {
        srv = await startServer({ config: (vars) => signalingConfig(vars, { settings: ['signaling.call: OFF'] }) });
    });
    after(async () => {
        for (const c of clients) c.sig.close();
        await srv.stop();
    });

    test('registers at level 1, the call API rejects with not_level2, dial() works', async () => {
        const a = makeClient(srv.wsUrl, 'a');
        const b = makeClient(srv.wsUrl, 'b');
        clients.push(a, b);
        const reg = await a.sig.connect();
        await b.sig.connect();
        assert.deepEqual(reg, { level: 1, calls: [], deviceId: null, sponsorUserId: a.userId });
        assert.equal(a.wire('received')[0], JSON.stringify({
            type: 'create_connect_response', ok: true, msg: '', id: 1, data: { sponsorUserId: a.userId },
        }), 'level 1\'s reply, byte for byte');
        const sentBefore = a.wire('sent').length;
        await assert.rejects(a.sig.call(b.userId), (err) => {
            assert.equal(err.code, 'not_level2');
            assert.match(err.message, /level 1/);
            return true;
        });
        await assert.rejects(a.sig.hangup('x'), { code: 'not_level2' });
        assert.equal(a.wire('sent').length, sentBefore, 'nothing sent for a call at level 1');

        const d = await a.sig.dial(b.userId, { field1: 'hello', field2: '', field3: '' });
        assert.deepEqual(d, { receiverUserId: b.userId, delivered: 1 });
        assert.deepEqual(await b.next('called'), { sponsorUserId: a.userId, sponsorUserName: 'a', field1: 'hello', field2: '', field3: '' });
    });

    test('asking for level 1 sends level 1\'s create_connect', async () => {
        const a = makeClient(srv.wsUrl, 'a', { level: 1 });
        clients.push(a);
        assert.equal((await a.sig.connect()).level, 1);
        assert.deepEqual(JSON.parse(a.wire('sent')[0]), { type: 'create_connect', sponsorUserId: a.userId, sponsorUserName: 'a', id: 1 });
    });
});

describe('signaling.js with token authentication', { timeout: 60000 }, () => {
    const KEY = testKey(48);
    let srv;
    const clients = [];

    before(async () => {
        srv = await startServer({
            files: { 'key.txt': `${KEY}\n` },
            config: (vars) => signalingConfig(vars, { settings: ['signaling.auth.hmac-key-file: key.txt'] }),
        });
    });
    after(async () => {
        for (const c of clients) c.sig.close();
        await srv.stop();
    });

    test('`token` goes as create_connect\'s auth; a function is asked again at every registration', async () => {
        let asked = 0;
        const a = makeClient(srv.wsUrl, 'a', {
            token: async () => {
                asked++;
                return userToken(KEY, a.userId);
            },
        });
        clients.push(a);
        assert.equal((await a.sig.connect()).level, 2);
        assert.equal(asked, 1);
        assert.equal(JSON.parse(a.wire('sent')[0]).auth.split('.').length, 3, 'a JWT in auth');
        a.sockets.at(-1).terminate();
        await a.next('registered');
        await a.next('registered');
        assert.equal(asked, 2, 'a fresh token for the re-registration');
    });

    test('a token the server refuses rejects connect() with its code', async () => {
        const a = makeClient(srv.wsUrl, 'a', { token: userToken(testKey(48), 'someone') });
        clients.push(a);
        await assert.rejects(a.sig.connect(), { code: 'auth_invalid' });
        assert.equal(a.sig.state, 'closed');
    });
});
