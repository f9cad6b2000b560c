// Process lifecycle: graceful shutdown on SIGTERM/SIGINT (every WebSocket client gets
// close 1001, the process exits 0), the pid file, and SIGHUP (reopens the error log,
// does not stop the server).

import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { httpRequest, startUpstream } from '../lib/http.mjs';
import { connectRaw } from '../lib/rawws.mjs';
import { freePorts, signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAll, connect, ping, waitClose } from '../lib/wsclient.mjs';

const SHUTDOWN_MS = 5000; // "exits within a few seconds"
const INDEX_HTML = '<!doctype html><title>signals</title>\n';

/** A server with a plain and a TLS listener, /WsService and a static root; `global` are top-level directive lines. */
const config =
    (global = []) =>
    (vars) =>
        signalingConfig(vars, { tls: true, fileDir: `${vars.dir}/www`, global });

const files = { 'www/index.html': INDEX_HTML };

/** Asserts `st` (from srv.stop) is a clean exit: in time, code 0, no signal. */
function assertCleanExit(st, srv, what) {
    const stderr = `server stderr:\n${srv.stderr()}`;
    assert.equal(st.timedOut, false, `the server did not exit within ${SHUTDOWN_MS} ms of ${what}; ${stderr}`);
    assert.deepEqual(
        { code: st.code, signal: st.signal },
        { code: 0, signal: null },
        `exit status after ${what}; ${stderr}`,
    );
}

/**
 * Opens `n` ws clients (every fourth over wss) and one raw client, sends `signal`,
 * and checks every client gets close 1001 and the process exits 0 in time.
 */
async function shutdownWithClients(t, { signal, threads, n }) {
    const srv = await startServer({ tls: true, threads, config: config(), files });
    t.after(() => srv.stop('SIGKILL'));
    const sockets = [];
    t.after(() => closeAll(sockets));
    for (const ws of await Promise.all(
        Array.from({ length: n }, (_, i) => connect(i % 4 === 3 ? srv.wssUrl : srv.wsUrl)),
    )) {
        sockets.push(ws);
    }
    const raw = await connectRaw({ port: srv.port });
    t.after(() => raw.destroy());
    // every connection is established server-side before the signal
    await Promise.all(sockets.map((ws) => ping(ws)));

    const closes = Promise.all(sockets.map((ws) => waitClose(ws, SHUTDOWN_MS)));
    const rawClose = raw.waitClose(SHUTDOWN_MS);
    const exit = srv.stop(signal, { timeout: SHUTDOWN_MS });

    const codes = (await closes).map((c) => c.code);
    assert.deepEqual(codes, Array(n).fill(1001), 'every ws client gets close code 1001');
    const rc = await rawClose;
    assert.equal(rc.closeFrame, true, 'the raw client gets a close frame, not just a TCP close');
    assert.equal(rc.code, 1001);
    assertCleanExit(await exit, srv, signal);
}

test('SIGTERM: every WebSocket client gets 1001 and the process exits 0 (1 thread)', { timeout: 30000 }, (t) =>
    shutdownWithClients(t, { signal: 'SIGTERM', threads: 1, n: 8 }),
);

test('SIGTERM: every WebSocket client gets 1001 and the process exits 0 (4 threads)', { timeout: 30000 }, (t) =>
    shutdownWithClients(t, { signal: 'SIGTERM', threads: 4, n: 24 }),
);

test('SIGINT shuts down the same way as SIGTERM', { timeout: 30000 }, (t) =>
    shutdownWithClients(t, { signal: 'SIGINT', threads: 2, n: 4 }),
);

test('SIGTERM on an idle server exits 0 and stops listening', { timeout: 30000 }, async (t) => {
    const srv = await startServer({ config: config(), tls: true, files });
    t.after(() => srv.stop('SIGKILL'));
    assertCleanExit(await srv.stop('SIGTERM', { timeout: SHUTDOWN_MS }), srv, 'SIGTERM');
    await assert.rejects(httpRequest(`${srv.url}/`, { timeout: 1000 }), 'nothing answers after the exit');
});

test('SIGTERM exits 0 in time with proxy.reverse.url configured and used', { timeout: 30000 }, async (t) => {
    const upstream = await startUpstream((req, res) => res.end('from upstream'));
    t.after(() => upstream.close());
    const srv = await startServer({
        config: ({ port, dir }) => `
listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /api:
        proxy.reverse.url: http://127.0.0.1:${upstream.port}/
      /:
        file.dir: ${dir}/www
`,
        files,
    });
    t.after(() => srv.stop('SIGKILL'));
    const res = await httpRequest(`${srv.url}/api/x`);
    assert.deepEqual([res.status, res.text], [200, 'from upstream']);
    assertCleanExit(await srv.stop('SIGTERM', { timeout: SHUTDOWN_MS }), srv, 'SIGTERM');
});

test('pid-file holds the server pid', { timeout: 30000 }, async (t) => {
    const srv = await startServer({
        config: (vars) => config([`pid-file: ${vars.dir}/run/h2o.pid`])(vars),
        tls: true,
        files: { ...files, 'run/.keep': '' },
    });
    t.after(() => srv.stop('SIGKILL'));
    const pidFile = join(srv.dir, 'run', 'h2o.pid');
    const text = await waitUntil(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8'), {
        timeout: 5000,
        what: `pid file ${pidFile}`,
    });
    assert.equal(text.trim(), String(srv.pid));
    assert.match(text, /^\d+\n?$/, 'the file holds just the pid');

    assertCleanExit(await srv.stop('SIGTERM', { timeout: SHUTDOWN_MS }), srv, 'SIGTERM');
    assert.equal(existsSync(pidFile), false, 'a clean exit removes the pid file');
});

test('SIGHUP does not stop the server: HTTP and open WebSockets keep working', { timeout: 30000 }, async (t) => {
    const srv = await startServer({ config: config(), tls: true, files });
    t.after(() => srv.stop('SIGKILL'));
    const ws = await connect(srv.wsUrl);
    t.after(() => closeAll([ws]));
    await ping(ws);

    for (let i = 0; i < 3; i++) {
        srv.proc.kill('SIGHUP');
        // a request after the signal can only succeed if the process survived it
        const res = await httpRequest(`${srv.url}/`);
        assert.equal(res.status, 200);
    }
    await ping(ws);
    const fresh = await connect(srv.wssUrl);
    t.after(() => closeAll([fresh]));
    await ping(fresh);
    assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);

    assertCleanExit(await srv.stop('SIGTERM', { timeout: SHUTDOWN_MS }), srv, 'SIGHUP x3, then SIGTERM');
    assert.equal((await waitClose(ws)).code, 1001);
});

test('SIGHUP reopens error-log: later errors go to a new file after rotation', { timeout: 30000 }, async (t) => {
    // a proxy to a port nobody listens on: each request makes h2o log an error line
    const [deadPort] = await freePorts(1);
    const srv = await startServer({
        config: ({ port, dir }) => `
error-log: ${dir}/error.log
listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /api:
        proxy.reverse.url: http://127.0.0.1:${deadPort}/
      /:
        file.dir: ${dir}/www
`,
        files,
    });
    t.after(() => srv.stop('SIGKILL'));
    const log = join(srv.dir, 'error.log');
    const rotated = `${log}.1`;
    await waitUntil(() => existsSync(log), { timeout: 5000, what: `${log} to be created` });

    renameSync(log, rotated); // what logrotate does before it sends SIGHUP
    srv.proc.kill('SIGHUP');
    await waitUntil(() => existsSync(log), { timeout: 5000, what: `${log} to be reopened after SIGHUP` });
    const rotatedSize = statSync(rotated).size;

    const res = await httpRequest(`${srv.url}/api/x`);
    assert.equal(res.status, 502, 'the dead upstream gives a 502');
    await waitUntil(() => statSync(log).size > 0, { timeout: 5000, what: 'the proxy error in the new error.log' });
    assert.equal(statSync(rotated).size, rotatedSize, 'nothing more is written to the rotated file');
    assert.ok(srv.alive(), 'the server survives SIGHUP');

    // a clean exit is the business of the SIGTERM tests; t.after stops this one
});
