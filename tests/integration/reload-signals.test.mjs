// Signals around reloads (reload.md, the contract; test plan 8): SIGTERM after several reloads
// closes every WebSocket of every generation with 1001 (a socket of a route retired with a long
// drain-timeout too, a wss one, a raw one) and exits 0 within 6 s; SIGHUP still reopens
// `error-log` when the new file is broken, and the rejection lines land in the reopened file.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';

import { httpRequest } from '../lib/http.mjs';
import { connectRaw } from '../lib/rawws.mjs';
import { expectReloaded, fileLog, reload, requireReload, SLOW, writeConfig, sighup, waitOutcome } from '../lib/reload.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import { register } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAll, connect, ping, waitClose } from '../lib/wsclient.mjs';

const EXIT_MS = 6000; // "exit code 0 within 6 s"

before(requireReload);

/** TLS + plain, /WsService, /Other (drain-timeout 60 s: a retired /Other still holds its sockets) unless `other` is false. */
const config =
    ({ other = true, header = 'one' } = {}) =>
    (vars) =>
        signalingConfig(vars, {
            tls: true,
            fileDir: `${vars.dir}/www`,
            host: [`header.add: "X-Gen: ${header}"`],
            morePaths: other ? '      /Other:\n        signaling: ON\n        signaling.drain-timeout: 60000\n' : '',
        });

test('SIGTERM after several reloads: every WebSocket of every generation gets 1001, exit 0 within 6 s', { timeout: 60000 * SLOW }, async (t) => {
    const srv = await startServer({ tls: true, threads: 2, config: config(), files: { 'www/index.html': 'x\n' } });
    t.after(() => srv.stop('SIGKILL'));
    const sockets = [];
    const raws = [];
    t.after(() => {
        closeAll(sockets);
        for (const r of raws) r.destroy();
    });
    const other = `ws://127.0.0.1:${srv.port}/Other`;
    /** Opens a generation's clients: plain and wss on /WsService (registered), one raw; `withOther`: /Other too. */
    const open = async (gen, withOther) => {
        const made = await Promise.all([
            register(srv.wsUrl, `g${gen}-a`),
            register(srv.wsUrl, `g${gen}-b`),
            register(srv.wssUrl, `g${gen}-s`),
            connect(srv.wsUrl),
            ...(withOther ? [register(other, `g${gen}-o1`), register(other, `g${gen}-o2`)] : []),
        ]);
        sockets.push(...made);
        raws.push(await connectRaw({ port: srv.port }));
    };

    await open(1, true);
    await expectReloaded(srv, config({ header: 'two' }), { generation: 2 });
    await open(2, true);
    // /Other retired: its sockets wait out a 60 s drain
    await expectReloaded(srv, config({ other: false, header: 'three' }), { generation: 3 });
    await open(3, false);
    await expectReloaded(srv, config({ other: false, header: 'four' }), { generation: 4 });
    await open(4, false);
    await Promise.all(sockets.map((ws) => ping(ws))); // all established server-side, none closed yet
    assert.equal((await httpRequest(`${srv.url}/`)).headers['x-gen'], 'four');

    const closes = Promise.all(sockets.map((ws) => waitClose(ws, EXIT_MS)));
    const rawCloses = Promise.all(raws.map((r) => r.waitClose(EXIT_MS)));
    const termAt = Date.now();
    const exit = srv.stop('SIGTERM', { timeout: EXIT_MS });
    const codes = (await closes).map((c) => c.code);
    assert.deepEqual(codes, Array(sockets.length).fill(1001), 'every ws client, of every generation, gets 1001');
    for (const rc of await rawCloses) assert.deepEqual([rc.closeFrame, rc.code], [true, 1001], 'raw clients get a close frame 1001');
    const st = await exit;
    const took = Date.now() - termAt;
    t.diagnostic(`${sockets.length + raws.length} WebSockets of 4 generations; exit ${took} ms after SIGTERM`);
    assert.equal(st.timedOut, false, `no exit within ${EXIT_MS} ms of SIGTERM; stderr:\n${srv.stderr()}`);
    assert.deepEqual({ code: st.code, signal: st.signal }, { code: 0, signal: null }, `exit status; stderr:\n${srv.stderr()}`);
});

test('SIGHUP reopens error-log even when the new file is broken; the rejection goes to the reopened file', { timeout: 30000 * SLOW }, async (t) => {
    const logged = (broken) => (vars) =>
        `error-log: ${vars.dir}/error.log
listen: {host: 127.0.0.1, port: ${vars.port}}
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
${broken ? '        signaling.ping-interval: [not, a, number]\n' : ''}      /:
        file.dir: ${vars.dir}/www
`;
    const srv = await startServer({ config: logged(false), files: { 'www/index.html': 'x\n' } });
    t.after(() => srv.stop('SIGKILL'));
    const log = join(srv.dir, 'error.log');
    await waitUntil(() => existsSync(log), { timeout: 5000, what: `${log} to be created` });
    const ws = await register(srv.wsUrl, 'log-user');
    t.after(() => closeAll([ws]));

    // logrotate moves the file, then the admin's broken edit, then SIGHUP
    renameSync(log, `${log}.1`);
    const rotatedSize = statSync(`${log}.1`).size;
    writeConfig(srv, logged(true));
    sighup(srv);
    await waitUntil(() => existsSync(log), { timeout: 5000 * SLOW, what: `${log} reopened after SIGHUP with a broken file` });
    const rejected = await waitOutcome(srv, { read: fileLog(log), since: 0, what: 'the rejection in the reopened error-log' });
    assert.equal(rejected.ok, false, rejected.line);
    assert.equal(rejected.generation, 1);
    assert.ok(rejected.errors.length >= 1, `the FILE:LINE lines are in the reopened error-log too:\n${rejected.output}`);
    assert.equal(statSync(`${log}.1`).size, rotatedSize, 'nothing more goes to the rotated file');
    await ping(ws);
    assert.equal((await httpRequest(`${srv.url}/`)).status, 200);

    // rotated again, and a good file: reopened again, and this one applies
    renameSync(log, `${log}.2`);
    const good = await reload(srv, logged(false), { read: fileLog(log), since: 0 });
    assert.ok(existsSync(log), 'reopened again');
    assert.deepEqual([good.ok, good.generation], [true, 2], good.line);
    await expectReloaded(srv, undefined, { read: fileLog(log), generation: 3, what: 'SIGHUP with the file unchanged' });
    await ping(ws);
});

test('error-log: "| COMMAND" pipes the messages to one logger process, which SIGHUP keeps', { timeout: 30000 * SLOW }, async (t) => {
    // each logger notes its pid once: a second logger spawned by a reload would show up
    const piped = (vars) =>
        `error-log: "| echo $$ >> ${vars.dir}/loggers; exec cat >> ${vars.dir}/piped.log"
listen: {host: 127.0.0.1, port: ${vars.port}}
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
`;
    const srv = await startServer({ config: piped });
    t.after(() => srv.stop('SIGKILL'));
    const log = join(srv.dir, 'piped.log');
    await waitUntil(() => existsSync(log) && /serving/.test(readFileSync(log, 'utf8')), { timeout: 5000 * SLOW, what: 'the start line in the piped log' });
    const good = await reload(srv, piped, { read: fileLog(log), since: 0 });
    assert.deepEqual([good.ok, good.generation], [true, 2], good.line);
    const loggers = readFileSync(join(srv.dir, 'loggers'), 'utf8').trim().split('\n');
    assert.equal(loggers.length, 1, `one logger for the whole run: ${loggers.join(', ')}`);
    assert.doesNotMatch(srv.stderr(), /serving|reloaded/, 'the messages went to the logger, not to stderr');
});
