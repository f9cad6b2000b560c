// Heartbeat of /WsService (signaling.ping-interval / signaling.ping-timeout): a client
// that answers pings stays connected and registered; one that never answers is dropped
// and unregistered within ping-interval + ping-timeout (plus a margin for scheduling).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { OP } from '../lib/rawws.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import {
    calledText,
    dial,
    dialingFailText,
    dialingOkText,
    nextText,
    rawNextText,
    rawRegister,
    register,
    waitPeerOffline,
} from '../lib/sigclient.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';
import { closeAll } from '../lib/wsclient.mjs';

const PING_INTERVAL = 200;
const PING_TIMEOUT = 300;
const MARGIN = 1500; // scheduling slack on a loaded machine; far below "never"

const config = (vars) =>
    signalingConfig(vars, {
        settings: [`signaling.ping-interval: ${PING_INTERVAL}`, `signaling.ping-timeout: ${PING_TIMEOUT}`],
    });

describe(`heartbeat (ping-interval ${PING_INTERVAL} ms, ping-timeout ${PING_TIMEOUT} ms)`, { timeout: 30000 }, () => {
    let srv;
    before(async () => {
        srv = await startServer({ threads: 1, config });
    });
    after(() => srv?.stop());

    test('a ws client that answers pings (auto-pong) stays connected and registered for > 1.5 s', async (t) => {
        const dialer = await register(srv.wsUrl, 'hb-dialer-1');
        const good = await register(srv.wsUrl, 'hb-good');
        t.after(() => closeAll([dialer, good]));
        let pings = 0;
        let closed = null;
        good.on('ping', () => pings++);
        good.on('close', (code) => (closed = code));
        const start = Date.now();
        // wait for time to pass AND for the server to have pinged it several times meanwhile
        await waitUntil(() => closed !== null || (Date.now() - start >= 1600 && pings >= 4), {
            timeout: 5000,
            what: `1.6 s and >= 4 server pings (got ${pings})`,
        });
        assert.equal(closed, null, `the well-behaved client was closed (code ${closed})`);
        assert.ok(pings >= 4, `the server pinged ${pings} times in ${Date.now() - start} ms`);
        assert.equal(
            await dial(dialer, { receiverUserId: 'hb-good', field1: 'alive?', id: 1 }),
            dialingOkText(1, 'hb-good', 1),
        );
        assert.equal(await nextText(good), calledText({ sponsorUserId: 'hb-dialer-1', field1: 'alive?' }));
    });

    test('a raw client that answers pings by hand also stays (control for the next test)', async (t) => {
        const dialer = await register(srv.wsUrl, 'hb-dialer-2');
        const raw = await rawRegister(srv.port, 'hb-manual');
        t.after(() => {
            closeAll([dialer]);
            raw.destroy();
        });
        const start = Date.now();
        let pings = 0;
        while (Date.now() - start < 1600) {
            const f = await raw.nextFrame(PING_INTERVAL + PING_TIMEOUT + MARGIN);
            assert.equal(f.opcode, OP.PING, `only pings are expected, got opcode ${f.opcode}`);
            pings++;
            raw.sendPong(f.payload);
        }
        assert.ok(pings >= 4, `pinged ${pings} times`);
        assert.equal(raw.isTcpClosed, false);
        assert.equal(await dial(dialer, { receiverUserId: 'hb-manual', id: 1 }), dialingOkText(1, 'hb-manual', 1));
        assert.equal(await rawNextText(raw), calledText({ sponsorUserId: 'hb-dialer-2' }));
    });

    test('a raw client that never answers pings is dropped and unregistered', async (t) => {
        const dialer = await register(srv.wsUrl, 'hb-dialer-3');
        const raw = await rawRegister(srv.port, 'hb-silent');
        const registeredAt = Date.now();
        t.after(() => {
            closeAll([dialer]);
            raw.destroy();
        });
        // reachable right after registering
        assert.equal(await dial(dialer, { receiverUserId: 'hb-silent', id: 0 }), dialingOkText(0, 'hb-silent', 1));
        const bound = PING_INTERVAL + PING_TIMEOUT + MARGIN;
        const answer = await waitPeerOffline(dialer, 'hb-silent', { timeout: bound });
        const offlineAfter = Date.now() - registeredAt;
        assert.equal(answer, dialingFailText('peer_offline', 'probe'));
        assert.ok(offlineAfter <= bound, `unregistered after ${offlineAfter} ms, bound ${bound} ms`);

        // the server closed its socket too (a close frame first is fine, TCP must end)
        await withTimeout(raw.tcpClosed, bound, "the server to close the silent client's TCP connection");
        const frames = raw.frames.map((f) => f.opcode);
        assert.ok(frames.includes(OP.PING), `the client was pinged before being dropped (frames: ${frames})`);
        const other = frames.filter((op) => op !== OP.PING && op !== OP.CLOSE && op !== OP.TEXT);
        assert.deepEqual(other, [], 'nothing but pings, called pushes and a close');
    });
});
