// A wss:// client whose TCP connection is reset (RST, no close_notify, no close frame) must not leave
// its socket behind: libh2o 2.2.5 closes a TLS socket by writing close_notify and frees it when that
// write completes, which after ECONNRESET never happens (handler/ws/sig_ws.c, dispose_conn).

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';

import WebSocket from 'ws';

import { signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil } from '../lib/wait.mjs';

const openFds = (pid) => readdirSync(`/proc/${pid}/fd`).length;

/** A registered wss:// connection whose raw TCP socket the test keeps, to reset it. */
async function registered(port, user) {
    const raw = net.connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    const ws = new WebSocket(`wss://127.0.0.1:${port}/WsService`, {
        createConnection: (opts) => tls.connect({ ...opts, socket: raw, rejectUnauthorized: false }),
        perMessageDeflate: false,
    });
    ws.on('error', () => {});
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ type: 'create_connect', sponsorUserId: user, id: 1 }));
    await new Promise((resolve) => ws.once('message', resolve));
    return { ws, raw };
}

test('wss:// connections reset by the client are closed and their fds freed', { timeout: 30000 }, async (t) => {
    const srv = await startServer({ tls: true, config: (vars) => signalingConfig(vars, { tls: true }) });
    t.after(() => srv.stop());
    const before = openFds(srv.pid);
    const conns = [];
    for (let i = 0; i < 20; i++) conns.push(await registered(srv.tlsPort, `reset-${i}`));
    assert.ok(openFds(srv.pid) >= before + 15, `the connections hold fds (${before} before, ${openFds(srv.pid)} now)`);
    for (const { raw } of conns) raw.resetAndDestroy(); // RST: the server's read fails with ECONNRESET
    await waitUntil(() => openFds(srv.pid) <= before, { timeout: 5000, what: `the fds back to ${before} (now ${openFds(srv.pid)})` });
    // the users are gone too, and the server still serves
    const probe = await registered(srv.tlsPort, 'probe');
    probe.ws.send(JSON.stringify({ type: 'dialing', receiverUserId: 'reset-0', id: 2 }));
    const answer = JSON.parse(await new Promise((resolve) => probe.ws.once('message', (d) => resolve(d.toString()))));
    assert.equal(answer.code, 'peer_offline');
    probe.ws.close(1000);
    const st = await srv.stop();
    assert.equal(st.code, 0, `exits 0 at once: no socket left to wait for; stderr:\n${srv.stderr().slice(-3000)}`);
});
