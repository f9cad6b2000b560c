// Rate and connection limits (issue 4): signaling.rate-limit / rate-limit-burst (a token
// bucket per connection: rate_limited replies, recovery, close 1008 for a client that keeps
// going), signaling.max-connections-per-ip (429 at the handshake, the slot freed when a
// connection ends), and stalled handshakes cut by h2o's own http1-request-timeout.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import { httpUpgrade } from '../lib/rawws.mjs';
import { how, runConfigTest, signalingConfig, startServer } from '../lib/server.mjs';
import {
    calledText,
    createConnectOkText,
    dial,
    dialingFailText,
    dialingOkText,
    nextText,
    register,
    waitPeerOffline,
} from '../lib/sigclient.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';
import { closeAll, connect, ping, waitClose } from '../lib/wsclient.mjs';

const RATE = 5;
const BURST = 5;
const RATE_LIMITED = JSON.stringify({ type: 'error', ok: false, msg: 'too many messages: slow down', code: 'rate_limited' });

/** Reads text messages until `n` arrived or the connection closed; returns {msgs, closed}. */
async function collect(ws, n, timeout = 5000) {
    const msgs = [];
    const deadline = Date.now() + timeout;
    while (msgs.length < n) {
        try {
            msgs.push(await nextText(ws, Math.max(1, deadline - Date.now())));
        } catch (err) {
            if (/connection closed/.test(err.message)) return { msgs, closed: await waitClose(ws, 1000) };
            throw err;
        }
    }
    return { msgs, closed: null };
}

/** `n` dialings to `receiverUserId` with ids `${prefix}0..`, sent in one go; field1 = the id. */
function sendDialings(ws, receiverUserId, n, prefix = '') {
    for (let i = 0; i < n; i++) {
        const id = `${prefix}${i}`;
        ws.send(JSON.stringify({ type: 'dialing', receiverUserId, field1: id, id }));
    }
}

describe(`rate limit (rate ${RATE}/s, burst ${BURST})`, { timeout: 60000 }, () => {
    let srv;
    before(async () => {
        srv = await startServer({
            threads: 1,
            config: (vars) =>
                signalingConfig(vars, {
                    settings: [`signaling.rate-limit: ${RATE}`, `signaling.rate-limit-burst: ${BURST}`],
                }),
        });
    });
    after(() => srv?.stop());

    /** A connection that registers as `userId` inside its first burst (the create_connect takes a token). */
    async function freshSender(userId) {
        const ws = await connect(srv.wsUrl);
        ws.send(JSON.stringify({ type: 'create_connect', sponsorUserId: userId, id: 'reg' }));
        return ws;
    }

    test('a burst past the bucket: the first 5 messages are processed, the rest get rate_limited; then it recovers', async (t) => {
        const rcv = await register(srv.wsUrl, 'rl-rcv');
        t.after(() => closeAll([rcv]));
        const ws = await freshSender('rl-a');
        t.after(() => closeAll([ws]));
        // create_connect + 8 dialings at once: 5 pass, 4 refused (under the burst of refusals that closes)
        sendDialings(ws, 'rl-rcv', 8, 'a');
        const { msgs, closed } = await collect(ws, 9);
        assert.equal(closed, null, `the connection stays open after ${BURST - 1} refusals`);
        assert.deepEqual(msgs, [
            createConnectOkText('reg', 'rl-a'),
            ...[0, 1, 2, 3].map((i) => dialingOkText(`a${i}`, 'rl-rcv', 1)),
            ...[4, 5, 6, 7].map(() => RATE_LIMITED),
        ]);
        for (let i = 0; i < 4; i++) assert.equal(await nextText(rcv), calledText({ sponsorUserId: 'rl-a', field1: `a${i}` }));

        // recovery: at 5 messages/s the bucket is full again after 1 s; 1.2 s leaves a margin
        await delay(1200);
        sendDialings(ws, 'rl-rcv', BURST + 1, 'b');
        const again = await collect(ws, BURST + 1);
        assert.equal(again.closed, null);
        assert.deepEqual(again.msgs, [
            ...[0, 1, 2, 3, 4].map((i) => dialingOkText(`b${i}`, 'rl-rcv', 1)),
            RATE_LIMITED,
        ], 'after the pause a full burst passes again, and only a full burst');
        // the dropped dialings were never delivered: the next push is b0
        for (let i = 0; i < BURST; i++) {
            assert.equal(await nextText(rcv), calledText({ sponsorUserId: 'rl-a', field1: `b${i}` }));
        }
    });

    test('a paced client (one message every 250 ms, under 5/s) is never refused', async (t) => {
        const rcv = await register(srv.wsUrl, 'rl-paced-r');
        const ws = await register(srv.wsUrl, 'rl-paced');
        t.after(() => closeAll([ws, rcv]));
        for (let i = 0; i < 12; i++) {
            assert.equal(await dial(ws, { receiverUserId: 'rl-paced-r', id: i, field1: 'x' }), dialingOkText(i, 'rl-paced-r', 1));
            assert.equal(await nextText(rcv), calledText({ sponsorUserId: 'rl-paced', field1: 'x' }));
            await delay(250); // the pace under test
        }
    });

    test('20 messages at once: 5 processed, then rate_limited, then close 1008; the user goes offline', async (t) => {
        const rcv = await register(srv.wsUrl, 'rl-rcv2');
        t.after(() => closeAll([rcv]));
        const ws = await freshSender('rl-abuse');
        t.after(() => closeAll([ws]));
        sendDialings(ws, 'rl-rcv2', 19);
        const { msgs, closed } = await collect(ws, 20);
        assert.ok(closed, `expected a close, got ${msgs.length} messages and no close`);
        assert.equal(closed.code, 1008, `close code (reason "${closed.reason}")`);
        assert.deepEqual(msgs.slice(0, 5), [
            createConnectOkText('reg', 'rl-abuse'),
            ...[0, 1, 2, 3].map((i) => dialingOkText(String(i), 'rl-rcv2', 1)),
        ]);
        const refused = msgs.slice(5);
        assert.ok(refused.length >= BURST - 1 && refused.length <= BURST, `${refused.length} rate_limited replies`);
        for (const m of refused) assert.equal(m, RATE_LIMITED);
        for (let i = 0; i < 4; i++) {
            assert.equal(await nextText(rcv), calledText({ sponsorUserId: 'rl-abuse', field1: String(i) }));
        }
        await waitPeerOffline(rcv, 'rl-abuse');
    });

    test('a client that keeps sending past the limit a little at a time is closed with 1008', async (t) => {
        const ws = await freshSender('rl-steady');
        t.after(() => closeAll([ws]));
        sendDialings(ws, 'nobody', 4); // the rest of the first burst
        const first = await collect(ws, 5);
        assert.equal(first.closed, null);
        // now 4 messages every 50 ms (80/s, 16x the rate): refusals pile up, a few per write
        let closed = null;
        const deadline = Date.now() + 5000;
        for (let round = 0; !closed && Date.now() < deadline; round++) {
            if (ws.readyState !== ws.OPEN) break;
            sendDialings(ws, 'nobody', 4, `s${round}-`);
            try {
                closed = await waitClose(ws, 50);
            } catch {
                /* still open: next round */
            }
        }
        closed ??= await waitClose(ws, 2000);
        assert.equal(closed.code, 1008);
    });

    test('limits are per connection: another connection is served while one is being refused', async (t) => {
        const rcv = await register(srv.wsUrl, 'rl-rcv3');
        const noisy = await freshSender('rl-noisy');
        t.after(() => closeAll([rcv, noisy]));
        sendDialings(noisy, 'nobody', 8);
        const { msgs } = await collect(noisy, 9);
        assert.equal(msgs.at(-1), RATE_LIMITED, 'the noisy connection is being refused');
        const quiet = await freshSender('rl-quiet');
        t.after(() => closeAll([quiet]));
        sendDialings(quiet, 'rl-rcv3', 4, 'q');
        const q = await collect(quiet, 5);
        assert.deepEqual(q.msgs, [
            createConnectOkText('reg', 'rl-quiet'),
            ...[0, 1, 2, 3].map((i) => dialingOkText(`q${i}`, 'rl-rcv3', 1)),
        ]);
    });

    test('malformed messages count too (refused before they are decoded)', async (t) => {
        const ws = await connect(srv.wsUrl);
        t.after(() => closeAll([ws]));
        for (let i = 0; i < 9; i++) ws.send('{not json');
        const { msgs, closed } = await collect(ws, 9);
        assert.equal(closed, null);
        for (const m of msgs.slice(0, 5)) assert.equal(JSON.parse(m).code, 'bad_json');
        for (const m of msgs.slice(5)) assert.equal(m, RATE_LIMITED);
    });
});

describe('rate limit: default and off', { timeout: 60000 }, () => {
    test('default (200/s, burst 400): 400 messages at once pass, a further 100 are partly refused', async (t) => {
        const srv = await startServer({
            threads: 1,
            config: (vars) => signalingConfig(vars, { settings: ['signaling.max-message-size: 1024'] }),
        });
        t.after(() => srv.stop());
        const ws = await connect(srv.wsUrl);
        t.after(() => closeAll([ws]));
        for (let i = 0; i < 400; i++) ws.send(JSON.stringify({ type: 'dialing', receiverUserId: 'x', id: i }));
        const first = await collect(ws, 400, 10000);
        assert.equal(first.closed, null);
        assert.equal(first.msgs.filter((m) => m === RATE_LIMITED).length, 0, 'no refusal within the default burst');
        for (let i = 0; i < 100; i++) ws.send(JSON.stringify({ type: 'dialing', receiverUserId: 'x', id: i }));
        const more = await collect(ws, 100, 10000);
        assert.equal(more.closed, null, 'fewer than 400 refusals in a row: still open');
        assert.ok(more.msgs.filter((m) => m === RATE_LIMITED).length > 50, 'the default limit is on');
    });

    test('rate-limit 0 turns it off: 1000 messages at once are all processed', async (t) => {
        const srv = await startServer({
            threads: 1,
            config: (vars) =>
                signalingConfig(vars, { settings: ['signaling.rate-limit: 0', 'signaling.rate-limit-burst: 1'] }),
        });
        t.after(() => srv.stop());
        const ws = await connect(srv.wsUrl);
        t.after(() => closeAll([ws]));
        for (let i = 0; i < 1000; i++) ws.send(JSON.stringify({ type: 'dialing', receiverUserId: 'x', id: i }));
        const { msgs, closed } = await collect(ws, 1000, 15000);
        assert.equal(closed, null);
        assert.equal(msgs.length, 1000);
        assert.equal(msgs.filter((m) => m === RATE_LIMITED).length, 0);
    });
});

describe('max-connections-per-ip: 3', { timeout: 60000 }, () => {
    // Each test opens its connections from its own loopback address (127.0.0.1 for the first,
    // then 127.0.0.N), so a slot a previous test is still freeing cannot disturb it.
    const CAP = 3;
    let srv;
    before(async () => {
        srv = await startServer({
            threads: 2,
            config: (vars) => signalingConfig(vars, { settings: [`signaling.max-connections-per-ip: ${CAP}`] }),
        });
    });
    after(() => srv?.stop());

    /** Opens WebSockets from `addr` until the server answers something else than 101; bounded. */
    async function openTo429(addr, max = 10) {
        const open = [];
        for (let i = 0; i < max; i++) {
            try {
                open.push(await connect(srv.wsUrl, { localAddress: addr }));
            } catch (err) {
                if (err.status === 429) return { open, refused: err };
                closeAll(open);
                throw err;
            }
        }
        closeAll(open);
        throw new Error(`${max} connections opened from ${addr} without a 429`);
    }

    /** Polls until a new WebSocket from `addr` opens (the server frees a slot when it sees the end); bounded. */
    function openWhenFree(addr, what) {
        return waitUntil(
            async () => {
                try {
                    return await connect(srv.wsUrl, { localAddress: addr });
                } catch (err) {
                    if (err.status === 429) return null;
                    throw err;
                }
            },
            { timeout: 3000, interval: 25, what },
        );
    }

    /** Asserts a WebSocket from `addr` is refused with 429. */
    const assert429 = (addr) => assert.rejects(connect(srv.wsUrl, { localAddress: addr }), (err) => err.status === 429);

    test('3 concurrent WebSockets from 127.0.0.1 open, the 4th gets HTTP 429 and no upgrade', async (t) => {
        const { open, refused } = await openTo429('127.0.0.1');
        t.after(() => closeAll(open));
        assert.equal(open.length, CAP);
        assert.equal(refused.status, 429);
        const raw = await httpUpgrade({ port: srv.port });
        raw.socket.destroy();
        assert.equal(raw.status, 429, 'a raw handshake is refused too');
        assert.equal(raw.headers.upgrade, undefined);
        assert.equal(raw.headers['sec-websocket-accept'], undefined);
        for (const ws of open) await ping(ws); // the three keep working
    });

    test('after one closes (close handshake), a new one succeeds, and the cap still holds', async (t) => {
        const addr = '127.0.0.12';
        const { open } = await openTo429(addr);
        t.after(() => closeAll(open));
        assert.equal(open.length, CAP);
        open[0].close(1000);
        await waitClose(open[0]);
        const ws = await openWhenFree(addr, 'a slot freed by a close');
        t.after(() => closeAll([ws]));
        await assert429(addr);
    });

    test('after one drops abruptly (no close frame), a new one succeeds', async (t) => {
        const addr = '127.0.0.13';
        const { open } = await openTo429(addr);
        t.after(() => closeAll(open));
        assert.equal(open.length, CAP);
        open[1].terminate();
        const ws = await openWhenFree(addr, 'a slot freed by a dropped connection');
        closeAll([ws]);
    });

    test('registered signaling connections count, and routing works within the cap', async (t) => {
        const addr = '127.0.0.14';
        const clients = [];
        t.after(() => closeAll(clients));
        for (const id of ['ip-a', 'ip-b', 'ip-c']) {
            const ws = await connect(srv.wsUrl, { localAddress: addr });
            clients.push(ws);
            const msg = { type: 'create_connect', sponsorUserId: id, id: 'reg' };
            assert.equal(await nextTextAfter(ws, msg), createConnectOkText('reg', id));
        }
        await assert429(addr);
        assert.equal(await dial(clients[0], { receiverUserId: 'ip-c', id: 1 }), dialingOkText(1, 'ip-c', 1));
        assert.equal(await nextText(clients[2]), calledText({ sponsorUserId: 'ip-a' }));
    });

    test('the cap is per address: 127.0.0.16 opens while 127.0.0.15 is at the cap', async (t) => {
        const { open } = await openTo429('127.0.0.15');
        t.after(() => closeAll(open));
        assert.equal(open.length, CAP);
        const other = [];
        t.after(() => closeAll(other));
        for (let i = 0; i < CAP; i++) other.push(await connect(srv.wsUrl, { localAddress: '127.0.0.16' }));
        await assert429('127.0.0.16');
    });

    test('requests that are not handshakes (400) and refused handshakes (429) take no slot', async (t) => {
        const addr = '127.0.0.17';
        for (let i = 0; i < 10; i++) {
            const res = await httpStatusFrom(addr);
            assert.equal(res, 400);
        }
        const { open } = await openTo429(addr);
        t.after(() => closeAll(open));
        assert.equal(open.length, CAP, 'the 400s left every slot free');
        for (let i = 0; i < 10; i++) await assert429(addr);
        open[2].close(1000);
        const ws = await openWhenFree(addr, 'a slot after many refusals');
        closeAll([ws]);
    });

    /** Status of a plain GET /WsService (not a handshake) from `addr`. */
    function httpStatusFrom(addr) {
        const done = new Promise((resolve, reject) => {
            const req = http.get(
                { host: '127.0.0.1', port: srv.port, path: '/WsService', localAddress: addr, agent: false },
                (res) => {
                    res.resume();
                    res.on('end', () => resolve(res.statusCode));
                },
            );
            req.on('error', reject);
        });
        return withTimeout(done, 5000, `GET /WsService from ${addr}`);
    }
});

/** Sends `value` as JSON and returns the next text message. */
async function nextTextAfter(ws, value) {
    ws.send(JSON.stringify(value));
    return nextText(ws);
}

describe('stalled handshakes are cut by http1-request-timeout', { timeout: 60000 }, () => {
    // h2o 2.2.5 (libh2o) reads http1-request-timeout in SECONDS (`1000` would mean 1000 s)
    const TIMEOUT_S = 1;
    const config = (vars) => signalingConfig(vars, { global: [`http1-request-timeout: ${TIMEOUT_S}`] });
    let srv;
    before(async () => {
        srv = await startServer({ threads: 1, config });
    });
    after(() => srv?.stop());

    /** A TCP connection to the server; resolves once connected, with `closed` resolving at its end. */
    async function tcp() {
        const sock = net.connect({ port: srv.port, host: '127.0.0.1' });
        const closed = new Promise((resolve) => sock.once('close', () => resolve(Date.now())));
        sock.on('error', () => {}); // a reset shows up as the close
        sock.on('data', () => {});
        await withTimeout(new Promise((resolve) => sock.once('connect', resolve)), 3000, 'TCP connect');
        return { sock, closed };
    }

    test('-t accepts http1-request-timeout', async () => {
        const r = await runConfigTest(config);
        assert.equal(r.code, 0, how(r));
    });

    test('half a handshake, then silence: the server closes the socket within a few seconds; others unaffected', async (t) => {
        const a = await register(srv.wsUrl, 'st-a');
        const b = await register(srv.wsUrl, 'st-b');
        t.after(() => closeAll([a, b]));
        const { sock, closed } = await tcp();
        t.after(() => sock.destroy());
        const t0 = Date.now();
        sock.write('GET /WsService HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
        // meanwhile the others talk
        assert.equal(await dial(a, { receiverUserId: 'st-b', id: 1 }), dialingOkText(1, 'st-b', 1));
        assert.equal(await nextText(b), calledText({ sponsorUserId: 'st-a' }));
        const at = await withTimeout(closed, TIMEOUT_S * 1000 + 3000, 'the server to close a stalled handshake');
        assert.ok(at - t0 >= TIMEOUT_S * 1000 - 300, `cut after ${at - t0} ms, before the timeout`);
        // and after the cut
        assert.equal(await dial(b, { receiverUserId: 'st-a', id: 2 }), dialingOkText(2, 'st-a', 1));
        assert.equal(await nextText(a), calledText({ sponsorUserId: 'st-b' }));
    });

    test('a connection that sends nothing at all is closed too', async (t) => {
        const { sock, closed } = await tcp();
        t.after(() => sock.destroy());
        await withTimeout(closed, TIMEOUT_S * 1000 + 3000, 'the server to close a silent connection');
    });

    test('a handshake trickled one header line every 300 ms is cut (the timeout is not reset by each byte)', async (t) => {
        const { sock, closed } = await tcp();
        t.after(() => sock.destroy());
        const t0 = Date.now();
        sock.write('GET /WsService HTTP/1.1\r\n');
        let cut = null;
        closed.then((at) => (cut = at));
        for (let i = 0; cut === null && Date.now() - t0 < TIMEOUT_S * 1000 + 3000; i++) {
            if (!sock.destroyed && sock.writable) sock.write(`X-Slow-${i}: ${'a'.repeat(10)}\r\n`);
            await delay(300); // the pace of a slowloris client
        }
        assert.ok(cut !== null, `still open ${Date.now() - t0} ms after the first byte`);
    });

    test('an upgraded WebSocket is not subject to the request timeout: it stays open well past it', async (t) => {
        const ws = await register(srv.wsUrl, 'st-long');
        t.after(() => closeAll([ws]));
        await assert.rejects(waitClose(ws, TIMEOUT_S * 1000 * 2 + 500), /timed out/, 'the WebSocket was closed');
        await ping(ws);
        assert.equal(await dial(ws, { receiverUserId: 'st-nobody', id: 1 }), dialingFailText('peer_offline', 1));
    });
});
