// WebSocket transport of /WsService: the handshake over ws:// and wss://, the
// connection being serviced afterwards (ping -> pong, close -> close), and a
// four-thread server taking many concurrent WebSocket connections and HTTP requests.
// The level-1 JSON protocol itself is tested elsewhere.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { httpRequest } from '../lib/http.mjs';
import { OP, acceptFor, connectRaw, httpUpgrade } from '../lib/rawws.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAll, connect, ping, waitClose } from '../lib/wsclient.mjs';

const INDEX_HTML = '<!doctype html><title>ws</title>\n';

/** Plain + TLS listener, /WsService and a static root; `global` are top-level directive lines. */
const config =
    (global = []) =>
    (vars) =>
        signalingConfig(vars, { tls: true, fileDir: `${vars.dir}/www`, global });

describe('WebSocket handshake on /WsService', { timeout: 60000 }, () => {
    let srv;
    before(async () => {
        srv = await startServer({ tls: true, config: config(), files: { 'www/index.html': INDEX_HTML } });
    });
    after(() => srv?.stop());

    test('ws:// handshake opens (101) and the connection answers a ping', async (t) => {
        const ws = await connect(srv.wsUrl);
        t.after(() => closeAll([ws]));
        await ping(ws);
    });

    test('wss:// handshake opens (101) and the connection answers a ping', async (t) => {
        const ws = await connect(srv.wssUrl);
        t.after(() => closeAll([ws]));
        await ping(ws);
    });

    test('the 101 carries Upgrade, Connection and the right Sec-WebSocket-Accept', async (t) => {
        const res = await httpUpgrade({ port: srv.port });
        t.after(() => res.socket.destroy());
        assert.equal(res.status, 101);
        assert.equal(res.headers.upgrade?.toLowerCase(), 'websocket');
        assert.match(res.headers.connection ?? '', /upgrade/i);
        assert.equal(res.headers['sec-websocket-accept'], acceptFor(res.key));
    });

    test('raw client over TLS: ping gets a pong with the same payload', async (t) => {
        const raw = await connectRaw({ port: srv.tlsPort, tls: true });
        t.after(() => raw.destroy());
        raw.sendPing(Buffer.from('hello'));
        const f = await raw.nextFrame();
        assert.equal(f.opcode, OP.PONG);
        assert.equal(f.payload.toString(), 'hello');
        assert.equal(f.masked, false, 'server frames must not be masked');
    });

    test('a client close 1000 is answered with a close 1000 and the TCP connection ends', async (t) => {
        const raw = await connectRaw({ port: srv.port });
        t.after(() => raw.destroy());
        raw.sendClose(1000, 'bye');
        const closed = await raw.waitClose(5000, { reply: false });
        assert.equal(closed.closeFrame, true, 'expected a close frame back');
        assert.equal(closed.code, 1000);
        await raw.tcpClosed; // bounded by the test timeout
    });

    test('the ws client sees a clean 1000 when it closes', async () => {
        const ws = await connect(srv.wsUrl);
        ws.close(1000, 'done');
        const { code } = await waitClose(ws);
        assert.equal(code, 1000);
    });

    test('static files keep working next to open WebSockets', async (t) => {
        const ws = await connect(srv.wsUrl);
        t.after(() => closeAll([ws]));
        const res = await httpRequest(`${srv.url}/`);
        assert.equal(res.status, 200);
        assert.equal(res.text, INDEX_HTML);
        await ping(ws);
    });
});

describe('num-threads: 4 under concurrent load', { timeout: 60000 }, () => {
    const N = 40;
    let srv;
    before(async () => {
        srv = await startServer({ threads: 4, tls: true, config: config(), files: { 'www/index.html': INDEX_HTML } });
    });
    after(() => srv?.stop());

    test('the process runs at least 4 threads', () => {
        const status = readFileSync(`/proc/${srv.pid}/status`, 'utf8');
        const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1]);
        assert.ok(threads >= 4, `expected >= 4 threads for num-threads: 4, /proc says ${threads}`);
    });

    test(`${N} WebSocket connections (ws and wss) and ${N} HTTP requests at once all succeed`, async (t) => {
        const sockets = [];
        t.after(() => closeAll(sockets));
        const opens = Array.from({ length: N }, (_, i) =>
            connect(i % 4 === 3 ? srv.wssUrl : srv.wsUrl).then((ws) => {
                sockets.push(ws);
                return ws;
            }),
        );
        const gets = Array.from({ length: N }, (_, i) =>
            httpRequest(i % 2 ? `${srv.url}/` : `${srv.httpsUrl}/`),
        );
        const [wsResults, httpResults] = await Promise.all([Promise.allSettled(opens), Promise.allSettled(gets)]);

        const wsFailed = wsResults.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
        assert.deepEqual(wsFailed, [], 'every WebSocket handshake succeeds');
        const httpFailed = httpResults
            .map((r) => (r.status === 'rejected' ? r.reason.message : r.value.status))
            .filter((s) => s !== 200);
        assert.deepEqual(httpFailed, [], 'every HTTP request gets 200');
        for (const r of httpResults) assert.equal(r.value.text, INDEX_HTML);

        // every connection is serviced (by whichever thread owns it), all at once
        await Promise.all(sockets.map((ws) => ping(ws)));
        assert.equal(sockets.length, N);
        assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);
    });

    test('connections can be opened and closed repeatedly across threads', async () => {
        for (let round = 0; round < 5; round++) {
            const sockets = await Promise.all(Array.from({ length: 8 }, () => connect(srv.wsUrl)));
            await Promise.all(sockets.map((ws) => ping(ws)));
            for (const ws of sockets) ws.close(1000);
            const codes = await Promise.all(sockets.map((ws) => waitClose(ws).then((c) => c.code)));
            assert.deepEqual(codes, Array(8).fill(1000));
        }
        assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);
    });
});

describe('server-level limits and privileges', { timeout: 30000 }, () => {
    test('max-connections: 3 refuses a 4th connection, and accepts again once one closes', async (t) => {
        const srv = await startServer({
            config: config(['max-connections: 3']),
            tls: true,
            files: { 'www/index.html': INDEX_HTML },
        });
        t.after(() => srv.stop());
        const sockets = [];
        t.after(() => closeAll(sockets));
        // the readiness probes may still hold a slot for a moment: retry each open
        const open = () => waitUntil(() => connect(srv.wsUrl), { timeout: 5000, what: 'a WebSocket open' });
        for (let i = 0; i < 3; i++) sockets.push(await open());
        await Promise.all(sockets.map((ws) => ping(ws)));

        await assert.rejects(connect(srv.wsUrl, { timeout: 2000 }), 'a 4th connection is refused');
        await Promise.all(sockets.map((ws) => ping(ws))); // the three are unaffected

        sockets[0].close(1000);
        assert.equal((await waitClose(sockets[0])).code, 1000);
        const again = await open();
        sockets.push(again);
        await ping(again);
    });

    test('user: nobody drops root privileges after binding', async (t) => {
        if (process.getuid() !== 0) return t.skip('needs root');
        const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
        const srv = await startServer({
            config: config(['user: nobody']),
            tls: true,
            files: { 'www/index.html': INDEX_HTML },
        });
        t.after(() => srv.stop());
        // the listeners are bound before the privileges go: wait for the switch
        const uids = () => {
            const status = readFileSync(`/proc/${srv.pid}/status`, 'utf8');
            const [real, effective, saved] = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status).slice(1).map(Number);
            return { real, effective, saved };
        };
        const what = 'the server to leave uid 0';
        await waitUntil(() => uids().effective !== 0, { timeout: 5000, what }).catch(() => {}); // asserted below
        assert.deepEqual(uids(), { real: nobody, effective: nobody, saved: nobody });
        const ws = await connect(srv.wssUrl);
        t.after(() => closeAll([ws]));
        await ping(ws);
    });
});
