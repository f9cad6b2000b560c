// Abuse at the door (issue 15; docs/security.md): one address cannot take every connection
// (`max-connections-per-address`, counted at accept over every thread, before any HTTP is read),
// and a connection that does not send its first request in time is closed
// (`first-request-timeout`; trickling header bytes does not extend it). The connections a test holds
// get 60 s from both deadlines (ours and h2o's http1-request-timeout): under valgrind a test takes longer than 10 s.

import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';

import { expectReloaded, requireReload } from '../lib/reload.mjs';
import { configErrors, how, runConfigTest, signalingConfig, startServer } from '../lib/server.mjs';
import { createConnectOkText, request } from '../lib/sigclient.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';
import { closeAfter, connect, ping } from '../lib/wsclient.mjs';

const SLOW = process.env.VALGRIND_LOG_DIR ? 6 : 1;

/** A TCP connection from `localAddress` that sends `bytes` and then nothing; resolves once connected. */
function stalled(port, { localAddress = '127.0.0.1', bytes = 'GET /WsService HTTP/1.1\r\nHost: x\r\n' } = {}) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ port, host: '127.0.0.1', localAddress });
        sock.on('error', () => {});
        sock.once('connect', () => {
            if (bytes) sock.write(bytes);
            resolve(sock);
        });
        sock.once('close', () => reject(new Error('closed before it connected')));
        sock.closedAt = new Promise((res) => sock.once('close', () => res(Date.now())));
    });
}

/** A keep-alive connection whose first request has been answered: the server has accepted and counted it. */
async function answered(port, prefix = '') {
    const sock = await stalled(port, { bytes: `${prefix}GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n` });
    await withTimeout(new Promise((res) => sock.once('data', res)), 10000 * SLOW, 'the answer to a keep-alive request');
    return sock;
}

/** Whether the server closes `sock` within `ms` (resolves true) or keeps it (false). */
async function closedWithin(sock, ms) {
    return Promise.race([sock.closedAt.then(() => true), new Promise((res) => setTimeout(() => res(false), ms))]);
}

async function registerFrom(url, user, localAddress) {
    const ws = await connect(url, { localAddress });
    const reply = await request(ws, { type: 'create_connect', sponsorUserId: user, id: 1 });
    assert.equal(reply, createConnectOkText(1, user));
    return ws;
}

function stopAll(t, sockets) {
    t.after(() => sockets.forEach((s) => s.destroy()));
    return sockets;
}

describe('max-connections-per-address', () => {
    test('stalled handshakes past the cap from one address are refused at once; another address connects and registers', { timeout: 60000 * SLOW }, async (t) => {
        const cap = 20;
        const srv = await startServer({
            threads: 4,
            config: (vars) => signalingConfig(vars, { global: [`max-connections-per-address: ${cap}`, 'first-request-timeout: 60', 'http1-request-timeout: 60'] }),
        });
        t.after(() => srv.stop('SIGKILL'));
        // 20 keep-alive connections from one address, each answered once (so the server has surely counted
        // it), spread over the four threads; then 10 stalled handshakes from the same address: each is closed
        // at once, whichever thread accepts it (the count is the process's)
        const held = stopAll(t, []);
        for (let i = 0; i < cap; i++) held.push(await answered(srv.port));
        const over = stopAll(t, []);
        for (let i = 0; i < 10; i++) over.push(await stalled(srv.port));
        const refused = await Promise.all(over.map((s) => closedWithin(s, 2000 * SLOW)));
        assert.deepEqual(refused, Array(10).fill(true), 'every connection past the cap is closed at once');
        assert.equal((await Promise.all(held.map((s) => closedWithin(s, 100)))).filter(Boolean).length, 0, 'the first ones stay');

        const sockets = closeAfter(t);
        for (let i = 0; i < 5; i++) sockets.push(await registerFrom(srv.wsUrl, `other-${i}`, '127.0.0.2'));
        await waitUntil(() => /refused \d+ connection\(s\) from 127\.0\.0\.1: the address holds max-connections-per-address \(20\)/.test(srv.stderr()), {
            timeout: 3000,
            what: `the refusal in the log:\n${srv.stderr()}`,
        });
        const lines = srv.stderr().split('\n').filter((l) => /refused \d+ connection/.test(l));
        assert.ok(lines.length <= 2, `at most a line a second, not one per refusal:\n${lines.join('\n')}`);

        // a connection that leaves makes room for one more from the same address
        held.pop().destroy();
        await waitUntil(async () => !(await closedWithin(await stalled(srv.port), 300)), { timeout: 5000, what: 'room after a close' });
    });

    test('a listener has its own cap; 0 turns it off; a reload changes it for new connections', { timeout: 60000 * SLOW }, async (t) => {
        await requireReload();
        const config = (globalCap) => (vars) =>
            `max-connections-per-address: ${globalCap}
first-request-timeout: 60
http1-request-timeout: 60
listen: {host: 127.0.0.1, port: ${vars.port}}
listen: {host: 127.0.0.1, port: ${vars.ports[1]}, max-connections-per-address: 0}
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
`;
        const srv = await startServer({ config: config(3), ports: 2 });
        t.after(() => srv.stop('SIGKILL'));
        // answered, so each is surely counted before the 4th arrives: two threads accept from one listener, and a
        // connection merely connected in the kernel may be counted after a later one
        const first = stopAll(t, []);
        for (let i = 0; i < 3; i++) first.push(await answered(srv.port));
        assert.equal(await closedWithin(await stalled(srv.port), 5000 * SLOW), true, 'the 4th on the capped listener is refused'); // a stalled one stays open 60 s: waiting longer cannot pass a wrong server
        const free = stopAll(t, []);
        for (let i = 0; i < 10; i++) free.push(await stalled(srv.ports[1]));
        assert.equal((await Promise.all(free.map((s) => closedWithin(s, 300)))).filter(Boolean).length, 0, 'the uncapped listener takes all');

        await expectReloaded(srv, config(30));
        assert.equal(await closedWithin(await stalled(srv.port), 500 * SLOW), false, 'after the reload the cap is 30');
    });

    test('behind proxy-protocol the PROXY address is counted; IPv6 clients by their /64', { timeout: 60000 * SLOW }, async (t) => {
        const srv = await startServer({
            config: (vars) => `max-connections-per-address: 2
first-request-timeout: 60
http1-request-timeout: 60
listen: {host: 127.0.0.1, port: ${vars.port}, proxy-protocol: ON}
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
`,
        });
        t.after(() => srv.stop('SIGKILL'));
        const line = (family, src) => `PROXY ${family} ${src} ${family === 'TCP4' ? '127.0.0.1' : '::1'} 5555 ${srv.port}\r\n`;
        const open = (family, src) => stalled(srv.port, { bytes: `${line(family, src)}GET / HTTP/1.1\r\nHost: x\r\n` });
        // the ones that fill a count are answered first, so they are surely counted before the one past it
        const counted = (family, src) => answered(srv.port, line(family, src));
        const a = stopAll(t, [await counted('TCP4', '203.0.113.7'), await counted('TCP4', '203.0.113.7')]);
        assert.equal(await closedWithin(await open('TCP4', '203.0.113.7'), 5000 * SLOW), true, 'a 3rd from 203.0.113.7 is refused');
        a.push(await open('TCP4', '203.0.113.8'));
        assert.equal(await closedWithin(a[2], 300), false, '203.0.113.8 has its own count (the balancer, 127.0.0.1, is not counted)');
        a.push(await counted('TCP6', '2001:db8:1:2::1'), await counted('TCP6', '2001:db8:1:2:ffff::9'));
        await new Promise((res) => setTimeout(res, 1100)); // the log says a refusal at most once a second
        assert.equal(await closedWithin(await open('TCP6', '2001:db8:1:2:abcd::5'), 5000 * SLOW), true, 'a 3rd from the same /64 is refused');
        a.push(await open('TCP6', '2001:db8:1:3::1'));
        assert.equal(await closedWithin(a[5], 300), false, 'the next /64 is another client');
        assert.match(srv.stderr(), /from 2001:db8:1:2:0:0:0:0\/64/, 'the log names the /64');
    });

    test('bad values fail -t at FILE:LINE', async () => {
        for (const [line, want] of [
            ['max-connections-per-address: many', /max-connections-per-address/],
            ['max-connections-per-address.ipv6-prefix: 0', /from 1 to 128/],
            ['first-request-timeout: -1', /first-request-timeout/],
            ['first-request-timeout: 99999', /0 \(off\) to 3600/],
        ]) {
            const r = await runConfigTest((vars) => signalingConfig(vars, { global: [line] }));
            assert.equal(r.code, 1, `${line}: ${how(r)}`);
            const errors = configErrors(r.stderr, r.file);
            assert.ok(errors.some((e) => e.line === 1 && want.test(e.text)), `${line}: ${r.file}:1 names it; got:\n${r.stderr}`);
        }
    });
});

describe('first-request-timeout', () => {
    test('a connection that trickles its headers is closed at the deadline; a finished request cancels it', { timeout: 30000 * SLOW }, async (t) => {
        const srv = await startServer({ config: (vars) => signalingConfig(vars, { global: ['first-request-timeout: 2'] }) });
        t.after(() => srv.stop('SIGKILL'));
        const started = Date.now();
        const trickler = await stalled(srv.port, { bytes: 'G' });
        t.after(() => trickler.destroy());
        const header = 'ET /WsService HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(100);
        let i = 0;
        const timer = setInterval(() => !trickler.destroyed && i < header.length && trickler.write(header[i++]), 250);
        t.after(() => clearInterval(timer));
        const closedAt = await withTimeout(trickler.closedAt, 8000 * SLOW, 'the trickler to be closed');
        const after = closedAt - started;
        assert.ok(after >= 1800 && after < 3500 * SLOW, `closed ${after} ms after it connected (deadline 2 s), while still sending`);
        assert.ok(i > 4, 'it was still trickling bytes when it was closed');

        // an upgraded WebSocket stays past the deadline
        const sockets = closeAfter(t);
        const ws = await registerFrom(srv.wsUrl, 'stays', '127.0.0.1');
        sockets.push(ws);
        await new Promise((res) => setTimeout(res, 2500));
        assert.equal(ws.readyState, ws.OPEN, 'a connection whose request came in time is not touched');
        await ping(ws);
    });

    test('0 turns it off: h2o\'s own http1-request-timeout still applies', { timeout: 30000 * SLOW }, async (t) => {
        const srv = await startServer({
            config: (vars) => signalingConfig(vars, { global: ['first-request-timeout: 0', 'http1-request-timeout: 3'] }),
        });
        t.after(() => srv.stop('SIGKILL'));
        const sock = await stalled(srv.port);
        t.after(() => sock.destroy());
        assert.equal(await closedWithin(sock, 2000), false, 'not closed at 2 s');
        assert.equal(await closedWithin(sock, 4000 * SLOW), true, 'closed by http1-request-timeout (3 s)');
    });
});
