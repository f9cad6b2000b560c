// A bad new file is rejected (reload.md, the contract; test plan 4): a YAML error, an unknown
// directive, a bad value, a certificate that does not load (garbage, missing, key of another
// certificate), a new `listen` port another process holds, a changed `num-threads` or `user`.
// Each gives its `FILE:LINE: ...` lines, then exactly one line
//     h2o-signaling: reload of FILE rejected; still serving generation N
// and nothing else changes: every bad file here is the next good file plus one defect, and the
// next good file changes a lot (a path's file.dir, a path added, a signaling route removed with
// drain-timeout 0, allowed-origins set on /WsService, a listener removed and one added, a new
// certificate), so a reload half applied shows. A later good SIGHUP applies all of it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { httpRequest } from '../lib/http.mjs';
import { httpUpgrade } from '../lib/rawws.mjs';
import {
    certFingerprint,
    expectReloaded,
    expectRejected,
    makeCert,
    outcomes,
    renderConfig,
    requireReload,
    SLOW,
    tlsPeer,
} from '../lib/reload.mjs';
import { freePorts, isListening, serverBinary, startServer } from '../lib/server.mjs';
import { calledText, dial, dialingOkText, nextText, register } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAll, ping, waitClose } from '../lib/wsclient.mjs';

const THREADS = 2;
const ME = userInfo().username;
const OTHER_USER = ME === 'root' ? 'nobody' : 'root';
const ORIGIN_A = 'https://a.example';
const ORIGIN_B = 'https://b.example';

before(requireReload);

/** The running file (generation 1). */
const oldConfig = (vars) => `user: ${ME}
listen: {host: 127.0.0.1, port: ${vars.port}}
listen: {host: 127.0.0.1, port: ${vars.ports[2]}}
listen:
  host: 127.0.0.1
  port: ${vars.tlsPort}
  ssl:
    certificate-file: ${vars.cert}
    key-file: ${vars.key}
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
      /Other:
        signaling: ON
        signaling.drain-timeout: 0
      /static:
        file.dir: ${vars.dir}/www1
`;

/**
 * The next good file, or it with one defect: `user`, `cert`/`key` (paths), `listens` (more
 * listen lines), `wsLines` (more /WsService lines), `tail` (text appended).
 */
const newConfig =
    (ports, cert2, { user = ME, cert = cert2.cert, key = cert2.key, listens = [], wsLines = [], tail = '' } = {}) =>
    (vars) =>
        `user: ${user}
listen: {host: 127.0.0.1, port: ${vars.port}}
listen: {host: 127.0.0.1, port: ${ports.added}}
${listens.map((l) => `${l}\n`).join('')}listen:
  host: 127.0.0.1
  port: ${vars.tlsPort}
  ssl:
    certificate-file: ${cert}
    key-file: ${key}
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
        signaling.allowed-origins: ${ORIGIN_A}
${wsLines.map((l) => `        ${l}\n`).join('')}      /static:
        file.dir: ${vars.dir}/www2
      /added:
        file.dir: ${vars.dir}/www2
${tail}`;

/** 1-based number of the first line of `text` that starts with `prefix` (after indentation). */
function lineOf(text, prefix) {
    const i = text.split('\n').findIndex((l) => l.trimStart().startsWith(prefix));
    assert.ok(i >= 0, `no line starting with ${prefix}`);
    return i + 1;
}

/** Status of a fresh handshake on `path` with `headers`. */
async function upgradeStatus(port, path, headers = {}) {
    const res = await httpUpgrade({ port, path, headers });
    res.socket.destroy();
    return res.status;
}

describe('a bad file is rejected and changes nothing; a good one then applies', { timeout: 120000 * SLOW }, () => {
    let srv;
    let cert2;
    let fp1;
    let ports; // {added: a port the good file adds, busy: one another process holds}
    let busy; // that process: a node listener (no SO_REUSEPORT)
    const sockets = [];
    let w; // registered on /WsService before anything (no Origin)
    let dialer; // the same
    let o; // registered on /Other
    const closedEarly = new Map(); // socket name -> close code, for sockets that must stay
    let generation = 1;
    let sent = 0; // SIGHUPs

    before(async () => {
        cert2 = await makeCert();
        srv = await startServer({
            tls: true,
            threads: THREADS,
            ports: 3,
            config: oldConfig,
            files: { 'www1/index.html': 'one\n', 'www2/index.html': 'two\n', 'garbage.pem': 'not a certificate\n' },
        });
        fp1 = certFingerprint(srv.cert);
        const [added, busyPort] = await freePorts(2);
        ports = { added, busy: busyPort };
        busy = net.createServer((s) => s.destroy());
        await new Promise((res, rej) => busy.once('error', rej).listen(busyPort, '127.0.0.1', res));
        w = await register(srv.wsUrl, 'rj-w');
        dialer = await register(srv.wsUrl, 'rj-dialer');
        o = await register(`ws://127.0.0.1:${srv.port}/Other`, 'rj-o');
        sockets.push(w, dialer, o);
        for (const [name, ws] of Object.entries({ w, dialer, o })) ws.on('close', (code) => closedEarly.set(name, code));
    });
    after(async () => {
        closeAll(sockets);
        await srv?.stop('SIGKILL');
        await new Promise((res) => (busy ? busy.close(() => res()) : res()));
    });

    /** The running generation still serves what it served: paths, the old sockets, /WsService. */
    async function assertUnchanged(what) {
        const st = await httpRequest(`${srv.url}/static/`);
        assert.deepEqual([st.status, st.text], [200, generation === 1 ? 'one\n' : 'two\n'], `${what}: /static`);
        assert.equal((await httpRequest(`${srv.url}/added/`)).status, generation === 1 ? 404 : 200, `${what}: /added`);
        if (generation === 1) {
            assert.deepEqual([...closedEarly], [], `${what}: no old socket was closed`);
            assert.equal(await dial(dialer, { receiverUserId: 'rj-w', id: sent }), dialingOkText(sent, 'rj-w', 1), what);
            assert.equal(await nextText(w), calledText({ sponsorUserId: 'rj-dialer' }), what);
        }
        assert.ok(srv.alive(), `${what}: the server exited; stderr:\n${srv.stderr()}`);
    }

    /**
     * SIGHUP with `config` (rendered with `threads`), expecting a rejection; for each prefix in
     * `lines`, an error line must point at the line of the file that starts with it and name it.
     */
    async function reject(what, config, { threads, lines = [] } = {}) {
        sent++;
        const text = renderConfig(srv, config, { threads });
        const out = await expectRejected(srv, text, { generation, what, threads: null });
        for (const prefix of lines) {
            const line = lineOf(text, prefix);
            assert.ok(
                out.errors.some((e) => e.line === line && e.text.includes(prefix)),
                `${what}: an error line ${srv.file}:${line}: ... naming ${prefix}; got:\n${out.errors.map((e) => e.text).join('\n')}`,
            );
        }
        await assertUnchanged(what);
        return out;
    }

    const good = () => newConfig(ports, cert2);

    test('a YAML syntax error', () => reject('YAML syntax error', newConfig(ports, cert2, { tail: '      /broken: [unclosed\n' })));

    test('an unknown directive', () =>
        reject('unknown directive', newConfig(ports, cert2, { wsLines: ['signaling.no-such-directive: 1'] }), {
            lines: ['signaling.no-such-directive'],
        }));

    test('a bad value', () =>
        reject('bad value', newConfig(ports, cert2, { wsLines: ['signaling.ping-interval: soon'] }), {
            lines: ['signaling.ping-interval'],
        }));

    test('a bad signaling.drain-timeout', () =>
        reject('bad drain-timeout', newConfig(ports, cert2, { wsLines: ['signaling.drain-timeout: -1'] }), {
            lines: ['signaling.drain-timeout'],
        }));

    test('a certificate that does not load: not PEM, missing, or the key of another certificate', async () => {
        await reject('garbage certificate', newConfig(ports, cert2, { cert: `${srv.dir}/garbage.pem` }));
        await reject('missing certificate', newConfig(ports, cert2, { cert: `${srv.dir}/missing.pem` }));
        await reject('key of another certificate', newConfig(ports, cert2, { key: srv.key }));
        const peer = await tlsPeer(srv.tlsPort);
        assert.equal(peer.fingerprint256, fp1, 'TLS still presents the running certificate');
    });

    test('a new listen port another process listens on (without SO_REUSEPORT)', async () => {
        await reject(
            'port in use',
            newConfig(ports, cert2, { listens: [`listen: {host: 127.0.0.1, port: ${ports.busy}}`] }),
        );
        assert.equal(await isListening(ports.added), false, 'the other new listener of that file was not opened');
        assert.equal(await isListening(srv.ports[2]), true, 'the listener that file drops still listens');
    });

    test('num-threads changed: "num-threads: cannot be changed by a reload; restart the server"', async () => {
        const out = await reject('num-threads changed', good(), { threads: THREADS + 1 });
        assert.ok(
            out.errors.some((e) => e.text === `${srv.file}:1: num-threads: cannot be changed by a reload; restart the server`),
            `the num-threads line; got:\n${out.errors.map((e) => e.text).join('\n')}`,
        );
    });

    test('user changed: "user: cannot be changed by a reload; restart the server"', async () => {
        const config = newConfig(ports, cert2, { user: OTHER_USER });
        const line = lineOf(renderConfig(srv, config), 'user:');
        const out = await reject('user changed', config);
        assert.ok(
            out.errors.some((e) => e.text === `${srv.file}:${line}: user: cannot be changed by a reload; restart the server`),
            `the user line (${line}); got:\n${out.errors.map((e) => e.text).join('\n')}`,
        );
    });

    test('after every rejection: routes, sockets, listeners, certificate and origins as they were', async () => {
        assert.deepEqual([...closedEarly], [], 'no socket of the running generation was closed');
        await ping(o);
        const o2 = await register(`ws://127.0.0.1:${srv.port}/Other`, 'rj-o2');
        sockets.push(o2);
        assert.equal(await dial(o2, { receiverUserId: 'rj-o', id: 'o' }), dialingOkText('o', 'rj-o', 1), '/Other still routes');
        assert.equal(await nextText(o), calledText({ sponsorUserId: 'rj-o2' }));
        assert.equal(await upgradeStatus(srv.port, '/WsService', { Origin: ORIGIN_B }), 101, 'allowed-origins not applied');
        assert.equal((await tlsPeer(srv.tlsPort)).fingerprint256, fp1);
        assert.equal(await isListening(srv.ports[2]), true);
        assert.equal(await isListening(ports.added), false);
        const rejected = outcomes(srv);
        assert.equal(rejected.length, sent, 'one outcome line per SIGHUP');
        assert.ok(rejected.every((x) => !x.ok && x.generation === 1), 'every one a rejection, generation 1');
    });

    test('a later good file applies, all of it (generation 2)', async () => {
        const watched = [w, dialer, o].map((ws) => waitClose(ws, 5000 * SLOW));
        sent++;
        await expectReloaded(srv, good(), { generation: 2, what: 'the good file' });
        generation = 2;
        const [cw, cd, co] = await Promise.all(watched);
        assert.deepEqual([cw.code, cd.code], [1008, 1008], '/WsService got allowed-origins: its sessions are closed');
        assert.equal(co.code, 1001, '/Other is retired with drain-timeout 0');
        assert.equal(await upgradeStatus(srv.port, '/Other'), 404);
        assert.equal(await upgradeStatus(srv.port, '/WsService', { Origin: ORIGIN_B }), 403);
        assert.equal(await upgradeStatus(srv.port, '/WsService', { Origin: ORIGIN_A }), 101);
        assert.equal((await tlsPeer(srv.tlsPort)).fingerprint256, cert2.fingerprint256, 'the new certificate');
        await waitUntil(async () => (await isListening(ports.added)) && !(await isListening(srv.ports[2], 300)), {
            timeout: 3000 * SLOW,
            what: 'the added listener to open and the dropped one to close',
        });
        await assertUnchanged('after the good file');
    });

    test('a bad file after that: "still serving generation 2"', async () => {
        await reject('YAML error in generation 2', newConfig(ports, cert2, { tail: '      /broken: [unclosed\n' }));
        assert.equal((await tlsPeer(srv.tlsPort)).fingerprint256, cert2.fingerprint256);
        assert.deepEqual(
            outcomes(srv).map((x) => [x.ok, x.generation]),
            [...Array(sent - 2).fill([false, 1]), [true, 2], [false, 2]],
            'one outcome line per SIGHUP, in order',
        );
    });
});

test('FILE in both lines is the path as given with -c (a relative one here)', { timeout: 30000 * SLOW }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'h2o-signaling-test-'));
    const [port] = await freePorts(1);
    const good = `listen: {host: 127.0.0.1, port: ${port}}\nhosts:\n  default:\n    paths:\n      /WsService:\n        signaling: ON\n`;
    writeFileSync(join(dir, 'h2o.conf'), good);
    const proc = spawn(serverBinary(), ['-c', 'h2o.conf'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    let status;
    const exited = new Promise((res) => proc.once('close', (code, signal) => res((status = { code, signal }))));
    t.after(async () => {
        if (!status) proc.kill('SIGKILL');
        await exited;
        if (process.env.KEEP_TEST_TMP !== '1') rmSync(dir, { recursive: true, force: true });
    });
    await waitUntil(async () => status || (await isListening(port, 300)), { timeout: 10000 * SLOW, what: `the server on ${port}` });
    assert.equal(status, undefined, `the server exited: ${stderr}`);
    // what waitOutcome needs of a server; the file is written here, not through writeConfig (cwd differs)
    const srv = { file: 'h2o.conf', dir, proc, stderr: () => stderr, alive: () => status === undefined };

    writeFileSync(join(dir, 'h2o.conf'), `${good}        signaling.no-such-directive: 1\n`);
    const bad = await expectRejected(srv, undefined, { generation: 1, what: 'relative -c, bad file' });
    assert.deepEqual(bad.errors.map((e) => e.line), [7], `h2o.conf:7: ...; got ${bad.output}`);
    writeFileSync(join(dir, 'h2o.conf'), good);
    await expectReloaded(srv, undefined, { generation: 2, what: 'relative -c, good file' });
});
