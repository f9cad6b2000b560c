// TLS session resumption (`ssl-session-resumption`, docs/configuration.md; issue 16, issue 14 item 4):
// a second TLS connection that offers the first one's session resumes, by ticket by default, with
// TLS 1.3 and with TLS 1.2, and the server says so in its access log (`%{ssl.session-reused}x`);
// a resumed TLS 1.3 connection gets a new ticket (each ticket used once still resumes every time);
// `mode: off` never resumes; `mode: cache` resumes by session id with no ticket sent; a secrets file
// (`ticket-store: file`, stock h2o's format) lets two servers resume each other's tickets; a ticket
// issued before a SIGHUP reload resumes after it; bad values fail `-t` with FILE:LINE.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import tls from 'node:tls';

import { expectReloaded, requireReload, SLOW } from '../lib/reload.mjs';
import { configErrors, how, runConfigTest, signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';

const INDEX = '<!doctype html><title>resumption</title>\n';
const T12 = { maxVersion: 'TLSv1.2' };
const T13 = { minVersion: 'TLSv1.3' };

/**
 * One TLS connection to 127.0.0.1:port offering `session` (a Buffer from an earlier one, or none) that
 * sends one HTTP/1.1 request for / and reads the response. Resolves with {reused, session (the last one
 * the server gave, after the response), ticket (TLS 1.2: the ticket the server sent, if any), version, text}.
 */
function tlsGet(port, { session, timeout = 5000 * SLOW, ...opts } = {}) {
    return withTimeout(
        new Promise((resolve, reject) => {
            let last;
            let text = '';
            const sock = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], session, ...opts });
            sock.on('session', (s) => {
                last = s;
            });
            sock.once('secureConnect', () => {
                sock.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
            });
            sock.setEncoding('utf8');
            sock.on('data', (d) => {
                text += d;
            });
            sock.once('error', reject);
            sock.once('end', () => {
                const result = { reused: sock.isSessionReused(), session: last, ticket: sock.getTLSTicket(), version: sock.getProtocol(), text };
                sock.destroy();
                resolve(result);
            });
        }),
        timeout,
        `TLS request to port ${port}`,
    );
}

/** The usual config plus a TLS listener, a page at / and `global` lines (e.g. ssl-session-resumption). */
const config = (global = [], more = {}) => (vars) =>
    signalingConfig(vars, { tls: true, fileDir: `${vars.dir}/www`, global, ...more });

const start = (global, more, opts = {}) =>
    startServer({ tls: true, config: config(global, more), files: { 'www/index.html': INDEX }, ...opts });

/** A first connection, then a second one offering its session: [first, second]. */
async function twice(port, opts) {
    const first = await tlsGet(port, opts);
    assert.match(first.text, /^HTTP\/1\.1 200/, 'the page is served over TLS');
    assert.equal(first.reused, false, 'a first connection is a full handshake');
    assert.ok(first.session, 'the server gave the client a session (or a ticket) to resume');
    const second = await tlsGet(port, { ...opts, session: first.session });
    assert.match(second.text, /^HTTP\/1\.1 200/);
    return [first, second];
}

const resumption = (lines) => ['ssl-session-resumption:', ...lines.map((l) => `  ${l}`)];

/** A stock-format secrets file (h2o 2.2.5 src/ssl.c): one aes-256-cbc + sha256 key valid now. */
function secrets({ now = Math.floor(Date.now() / 1000), keys = 1 } = {}) {
    let text = '';
    for (let i = 0; i < keys; i++) {
        text +=
            `- name: ${randomBytes(16).toString('hex')}\n` +
            '  cipher: aes-256-cbc\n' +
            '  hash: sha256\n' +
            `  key: ${randomBytes(32 + 64).toString('hex')}\n` +
            `  not_before: ${now - 60 - i}\n` +
            `  not_after: ${now + 3600}\n`;
    }
    return text;
}

test('default config: the second connection resumes with a ticket, TLS 1.3 and TLS 1.2; the access log says 0 then 1', { timeout: 30000 * SLOW }, async (t) => {
    const srv = await start([], { host: ['access-log:', '  path: access.log', '  format: "%{ssl.session-reused}x %s"'] });
    t.after(() => srv.stop('SIGKILL'));

    const [a13, b13] = await twice(srv.tlsPort, T13);
    assert.equal(a13.version, 'TLSv1.3');
    assert.equal(b13.reused, true, 'TLS 1.3: the second connection resumed');
    const [a12, b12] = await twice(srv.tlsPort, T12);
    assert.equal(a12.version, 'TLSv1.2');
    assert.ok(a12.ticket && a12.ticket.length > 0, 'TLS 1.2: the server sent a session ticket');
    assert.equal(b12.reused, true, 'TLS 1.2: the second connection resumed');

    const log = join(srv.dir, 'access.log');
    await waitUntil(() => readFileSync(log, 'utf8').split('\n').filter(Boolean).length >= 4, { what: 'four access-log lines' });
    assert.deepEqual(readFileSync(log, 'utf8').split('\n').filter(Boolean), ['0 200', '1 200', '0 200', '1 200']);
});

test('TLS 1.3: every resumed connection gets a new ticket, so a client that uses each ticket once (as browsers do) resumes every time', { timeout: 30000 * SLOW }, async (t) => {
    const srv = await start([]);
    t.after(() => srv.stop('SIGKILL'));
    let [prev, next] = await twice(srv.tlsPort, T13);
    for (let i = 0; i !== 4; ++i) {
        assert.equal(next.reused, true, `connection ${i + 2} resumed`);
        assert.ok(next.session, `connection ${i + 2}: the server sent a new ticket after resuming`);
        assert.notDeepEqual(next.session, prev.session, `connection ${i + 2}: the ticket is a new one`);
        [prev, next] = [next, await tlsGet(srv.tlsPort, { ...T13, session: next.session })];
    }
});

test('mode: off never resumes', { timeout: 30000 * SLOW }, async (t) => {
    const srv = await start(resumption(['mode: off']));
    t.after(() => srv.stop('SIGKILL'));
    for (const [name, opts] of [['TLS 1.3', T13], ['TLS 1.2', T12]]) {
        const first = await tlsGet(srv.tlsPort, opts);
        assert.match(first.text, /^HTTP\/1\.1 200/);
        assert.equal(first.ticket, undefined, `${name}: no ticket`);
        if (first.session === undefined) continue; // TLS 1.3 with no ticket at all: nothing to offer
        const second = await tlsGet(srv.tlsPort, { ...opts, session: first.session });
        assert.equal(second.reused, false, `${name}: a full handshake again`);
    }
});

test('mode: cache resumes by session id (TLS 1.2, no ticket sent), and TLS 1.3 resumes', { timeout: 30000 * SLOW }, async (t) => {
    const srv = await start(resumption(['mode: cache', 'lifetime: 600']));
    t.after(() => srv.stop('SIGKILL'));
    const [first, second] = await twice(srv.tlsPort, T12);
    assert.equal(first.ticket, undefined, 'the server sent no session ticket');
    assert.equal(second.reused, true, 'resumed from the session cache');
    const [, again13] = await twice(srv.tlsPort, T13);
    assert.equal(again13.reused, true, 'TLS 1.3 (a ticket that names a cache entry)');
});

test('mode: ticket resumes with a ticket', { timeout: 30000 * SLOW }, async (t) => {
    const srv = await start(resumption(['mode: ticket', 'ticket-cipher: aes-128-cbc', 'ticket-hash: sha384']));
    t.after(() => srv.stop('SIGKILL'));
    const [first, second] = await twice(srv.tlsPort, T12);
    assert.ok(first.ticket, 'a ticket was sent');
    assert.equal(second.reused, true);
    const [, b13] = await twice(srv.tlsPort, T13);
    assert.equal(b13.reused, true);
});

test('ticket-store: file: two servers given the same secrets resume each other\'s tickets; another key does not', { timeout: 40000 * SLOW }, async (t) => {
    const shared = secrets({ keys: 2 });
    const lines = resumption(['mode: ticket', 'ticket-store: file', 'ticket-file: secrets.yaml']);
    const a = await start(lines, {}, { files: { 'www/index.html': INDEX, 'secrets.yaml': shared } });
    t.after(() => a.stop('SIGKILL'));
    const b = await start(lines, {}, { files: { 'www/index.html': INDEX, 'secrets.yaml': shared } });
    t.after(() => b.stop('SIGKILL'));
    const other = await start(lines, {}, { files: { 'www/index.html': INDEX, 'secrets.yaml': secrets() } });
    t.after(() => other.stop('SIGKILL'));

    for (const [name, opts] of [['TLS 1.3', T13], ['TLS 1.2', T12]]) {
        const fromA = await tlsGet(a.tlsPort, opts);
        assert.ok(fromA.session, `${name}: a session from A`);
        assert.equal((await tlsGet(b.tlsPort, { ...opts, session: fromA.session })).reused, true, `${name}: A's ticket resumes on B`);
        const fromB = await tlsGet(b.tlsPort, opts);
        assert.equal((await tlsGet(a.tlsPort, { ...opts, session: fromB.session })).reused, true, `${name}: B's ticket resumes on A`);
        assert.equal((await tlsGet(other.tlsPort, { ...opts, session: fromA.session })).reused, false, `${name}: other secrets: a full handshake`);
    }
});

test('a ticket issued before a SIGHUP reload resumes after it; a replaced secrets file is re-read by the reload', { timeout: 40000 * SLOW }, async (t) => {
    await requireReload();
    const srv = await start([]);
    t.after(() => srv.stop('SIGKILL'));
    const before13 = await tlsGet(srv.tlsPort, T13);
    const before12 = await tlsGet(srv.tlsPort, T12);
    await expectReloaded(srv, config([]), { generation: 2 });
    assert.equal((await tlsGet(srv.tlsPort, { ...T13, session: before13.session })).reused, true, 'TLS 1.3 ticket from generation 1');
    assert.equal((await tlsGet(srv.tlsPort, { ...T12, session: before12.session })).reused, true, 'TLS 1.2 ticket from generation 1');

    // to a secrets file, and then that file replaced: old tickets stop resuming, new ones do
    const lines = resumption(['mode: all', 'ticket-store: file', 'ticket-file: secrets.yaml']);
    await expectReloaded(srv, config(lines), { generation: 3, files: { 'secrets.yaml': secrets() } });
    const first = await tlsGet(srv.tlsPort, T13);
    assert.equal((await tlsGet(srv.tlsPort, { ...T13, session: first.session })).reused, true, 'a ticket from the file\'s key');
    writeFileSync(join(srv.dir, 'secrets.yaml'), secrets());
    await expectReloaded(srv, config(lines), { generation: 4 });
    assert.equal((await tlsGet(srv.tlsPort, { ...T13, session: first.session })).reused, false, 'the replaced key no longer decrypts');
    const fresh = await tlsGet(srv.tlsPort, T13);
    assert.equal((await tlsGet(srv.tlsPort, { ...T13, session: fresh.session })).reused, true, 'the new key does');
});

test('bad values fail -t with FILE:LINE; unsupported stores are named', { timeout: 60000 * SLOW }, async () => {
    // (an error about the whole mapping points at its first line, 2)
    const cases = [
        [['ssl-session-resumption:', '  lifetime: 10'], 2, /mandatory attribute `mode` is missing/],
        [resumption(['mode: sometimes']), 2, /`mode` must be one of: off \| all \| cache \| ticket/],
        [resumption(['mode: all', 'lifetime: 0']), 3, /`lifetime` must be a positive number/],
        [resumption(['mode: all', 'lifetime: 1h']), 3, /`lifetime` must be a positive number/],
        [resumption(['mode: all', 'cache-store: disk']), 3, /`cache-store` must be one of: internal \| memcached/],
        [resumption(['mode: all', 'cache-store: memcached', 'memcached: {host: 127.0.0.1}']), 3, /cache-store: memcached` is not supported/],
        [resumption(['mode: ticket', 'ticket-store: memcached', 'memcached: {host: 127.0.0.1}']), 3, /ticket-store: memcached` is not supported/],
        [resumption(['mode: ticket', 'ticket-store: vault']), 3, /`ticket-store` must be one of: internal \| file \| memcached/],
        [resumption(['mode: ticket', 'ticket-cipher: rot13']), 3, /unknown cipher algorithm/],
        [resumption(['mode: ticket', 'ticket-cipher: aes-128-gcm']), 3, /cannot encrypt tickets/],
        [resumption(['mode: ticket', 'ticket-hash: md99']), 3, /unknown hash algorithm/],
        [resumption(['mode: ticket', 'ticket-store: file']), 2, /mandatory attribute `ticket-file` is missing/],
        [resumption(['mode: ticket', 'ticket-store: file', 'ticket-file: nowhere.yaml']), 4, /cannot load session ticket secrets: .*nowhere\.yaml/],
        [resumption(['mode: ticket', 'ticket-store: file', 'ticket-file: bad.yaml']), 4, /bad\.yaml:4: `key` must be 192 hex digits/],
        [resumption(['mode: all', 'memcached: {port: 11211}']), 3, /mandatory attribute `host` is missing/],
        [resumption(['mode: all', 'ticket-lifetime: 5']), 3, /unknown attribute: ticket-lifetime/],
        [['ssl-session-resumption: all'], 1, /ssl-session-resumption/],
    ];
    const bad = '- name: 00112233445566778899aabbccddeeff\n  cipher: aes-256-cbc\n  hash: sha256\n  key: abcd\n  not_before: 0\n  not_after: 1\n';
    for (const [global, line, re] of cases) {
        const r = await runConfigTest((vars) => signalingConfig(vars, { tls: true, global }), { tls: true, files: { 'bad.yaml': bad } });
        assert.notEqual(r.code, 0, `${global.join(' / ')}: -t fails; ${how(r)}`);
        const errors = configErrors(r.stderr, r.file);
        assert.ok(errors.some((e) => e.line === line && re.test(e.text)), `${global.join(' / ')}: ${re} at line ${line}; ${how(r)}`);
    }
    // and good ones pass, stock's example among them
    const good = [
        resumption(['mode: all']),
        resumption(['mode: all', 'cache-store: internal', 'ticket-store: internal', 'ticket-cipher: aes-256-cbc', 'ticket-hash: sha256', 'lifetime: 7200']),
        resumption(['mode: ticket', 'ticket-store: file', 'ticket-file: good.yaml']),
        // stock's rule: the attributes of a method that is off are not looked at
        resumption(['mode: off', 'ticket-store: memcached', 'cache-store: memcached']),
    ];
    for (const global of good) {
        const r = await runConfigTest((vars) => signalingConfig(vars, { tls: true, global }), { tls: true, files: { 'good.yaml': secrets() } });
        assert.equal(r.code, 0, `${global.join(' / ')}: -t passes; ${how(r)}`);
    }
});
