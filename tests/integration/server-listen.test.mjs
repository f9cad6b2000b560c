// Listeners as stock h2o 2.2.5 has them (issue 16): SNI (several hosts with their own certificate on one TLS
// address, h2o's examples/h2o/h2o.conf), `type: unix` with owner and permission, `proxy-protocol: ON` (the PROXY v1
// line's source is the client's address: access log, per-address cap), reload of new listeners and certificates, and
// the server directives tcp-fastopen, num-name-resolution-threads and temp-buffer-path.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import tls from 'node:tls';

import { httpRequest, startUpstream } from '../lib/http.mjs';
import { expectReloaded, requireReload, SLOW } from '../lib/reload.mjs';
import { configErrors, how, makeTempDir, runConfigTest, startServer } from '../lib/server.mjs';
import { createConnectOkText, request } from '../lib/sigclient.mjs';
import { makeHostCert } from '../lib/tls.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';
import { closeAfter, connect, ping } from '../lib/wsclient.mjs';

const HOST = '127.0.0.1';
const T = { timeout: 60000 * SLOW };

// ---------------------------------------------------------------- clients

/** {fingerprint256, cn, alpn} of a fresh TLS connection to port; `servername` undefined: no SNI (an IP as host). */
function peerCert(port, servername, { alpn = ['h2', 'http/1.1'], timeout = 5000 } = {}) {
    let sock;
    const done = new Promise((resolve, reject) => {
        sock = tls.connect({ host: HOST, port, servername, rejectUnauthorized: false, ALPNProtocols: alpn });
        sock.once('secureConnect', () => {
            const cert = sock.getPeerCertificate();
            resolve({ fingerprint256: cert.fingerprint256, cn: cert.subject?.CN, alpn: sock.alpnProtocol });
        });
        sock.once('error', reject);
    });
    return withTimeout(done, timeout, `TLS handshake with ${HOST}:${port} (SNI ${servername ?? 'none'})`).finally(() =>
        sock.destroy(),
    );
}

/** One HTTP/2 GET over TLS with SNI `servername` and :authority `authority`: {status, text, alpn}. */
async function h2Get(port, servername, authority, path = '/', timeout = 5000) {
    const session = http2.connect(`https://${HOST}:${port}`, { servername, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    try {
        const done = new Promise((resolve, reject) => {
            session.once('error', reject);
            const req = session.request({ ':path': path, ':authority': authority });
            const chunks = [];
            let status;
            req.on('response', (h) => (status = h[':status']));
            req.on('data', (c) => chunks.push(c));
            req.on('error', reject);
            req.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8'), alpn: session.alpnProtocol }));
            req.end();
        });
        return await withTimeout(done, timeout, `h2 GET ${path} (SNI ${servername})`);
    } finally {
        session.destroy();
    }
}

/** A create_connect for `userId` on an open WebSocket; asserts the exact acknowledgement. */
async function assertRegisters(ws, userId, what) {
    const reply = await request(ws, { type: 'create_connect', sponsorUserId: userId, id: 'reg' });
    assert.equal(reply, createConnectOkText('reg', userId), `${what}: create_connect acknowledged`);
}

/** A wss:// WebSocket to /WsService with SNI and Host `name:port`. */
const wssTo = (port, name, opts = {}) =>
    connect(`wss://${HOST}:${port}/WsService`, { servername: name, headers: { Host: `${name}:${port}` }, ...opts });

/**
 * A TCP connection to port that first sends `line` (the PROXY line; '' sends nothing); with `servername` a TLS
 * session is then started on it. Resolves with the socket, connected (and with TLS, handshaken).
 */
function proxied(port, line, { servername, timeout = 5000 } = {}) {
    const raw = net.connect({ port, host: HOST });
    if (line) raw.write(line);
    if (servername === undefined) {
        return withTimeout(new Promise((res, rej) => raw.once('connect', () => res(raw)).once('error', rej)), timeout, 'connect');
    }
    const sock = tls.connect({ socket: raw, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    return withTimeout(
        new Promise((res, rej) => sock.once('secureConnect', () => res(sock)).once('error', rej)),
        timeout,
        'TLS after the PROXY line',
    );
}

/** Everything the server sends on `sock` until it closes: {data: Buffer, closed: true}; rejects after `timeout`. */
function untilClose(sock, timeout = 5000) {
    const chunks = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', () => {}); // a reset is a close too
    const done = new Promise((res) => sock.once('close', () => res({ data: Buffer.concat(chunks), closed: true })));
    return withTimeout(done, timeout, 'the server to close the connection').finally(() => sock.destroy());
}

/** GET `path` with Connection: close on `sock`; resolves with the response text. */
function rawGet(sock, host, path = '/', timeout = 5000) {
    const res = untilClose(sock, timeout);
    sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    return res.then(({ data }) => data.toString('latin1'));
}

/** The `ws` createConnection option for a connection that starts with the PROXY line `line`. */
const proxyConnection = (line) => (opts) => {
    const sock = net.connect({ port: opts.port, host: opts.host });
    sock.write(line);
    return sock;
};

/** Lines of the access log at `path` ('' while it does not exist). */
const logLines = (path) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : []);

// ---------------------------------------------------------------- 1. SNI

/**
 * h2o 2.2.5's examples/h2o/h2o.conf with our hosts: a plain port, and each host of `hosts` ([name, {cert, key}], the
 * first is the default) listening on the one TLS address with its own certificate.
 */
const sniConfig = (hosts) => (vars) => {
    const host = (name, c) => `  "${name}:${vars.tlsPort}":
    listen:
      host: ${HOST}
      port: ${vars.tlsPort}
      ssl:
        certificate-file: ${c.cert}
        key-file: ${c.key}
    paths:
      /WsService:
        signaling: ON
      /:
        file.dir: ${vars.dir}/${name.replace('*', '_')}
`;
    return `listen: {host: ${HOST}, port: ${vars.port}}
hosts:
${hosts.map(([name, c]) => host(name, c)).join('')}`;
};

describe('SNI: several hosts with their own certificate on one TLS address', () => {
    let certs;
    const files = {
        'alice.example.com/index.html': 'alice\n',
        'bob.example.com/index.html': 'bob\n',
        '_.wild.example/index.html': 'wild\n',
    };

    test('h2o 2.2.5 example config passes -t, and each name gets its own certificate, HTTP/2 and wss://', T, async (t) => {
        const dir = makeTempDir('h2o-signaling-sni-');
        certs = {
            alice: await makeHostCert('alice.example.com', { dir }),
            bob: await makeHostCert('bob.example.com', { dir }),
            wild: await makeHostCert('*.wild.example', { dir }),
        };
        const config = sniConfig([
            ['alice.example.com', certs.alice],
            ['bob.example.com', certs.bob],
            ['*.wild.example', certs.wild],
        ]);
        const check = await runConfigTest(config, { files });
        assert.equal(check.code, 0, how(check));

        const srv = await startServer({ config, files });
        t.after(() => srv.stop('SIGKILL'));
        const p = srv.tlsPort;
        const fp = (c) => c.fingerprint256;
        assert.equal((await peerCert(p, 'alice.example.com')).fingerprint256, fp(certs.alice), 'SNI alice');
        assert.equal((await peerCert(p, 'bob.example.com')).fingerprint256, fp(certs.bob), 'SNI bob');
        assert.equal((await peerCert(p, undefined)).fingerprint256, fp(certs.alice), 'no SNI: the first host');
        assert.equal((await peerCert(p, 'nobody.example.org')).fingerprint256, fp(certs.alice), 'unknown name: the first host');
        assert.equal((await peerCert(p, 'a.wild.example')).fingerprint256, fp(certs.wild), 'a.wild.example: *.wild.example');

        for (const [sni, name, body] of [
            ['alice.example.com', 'alice.example.com', 'alice\n'],
            ['bob.example.com', 'bob.example.com', 'bob\n'],
            ['a.wild.example', 'a.wild.example', 'wild\n'],
        ]) {
            const r = await h2Get(p, sni, `${name}:${p}`);
            assert.deepEqual([r.alpn, r.status, r.text], ['h2', 200, body], `HTTP/2 through ALPN on ${sni}`);
        }
        const plain = await httpRequest(`http://${HOST}:${srv.port}/`);
        assert.equal(plain.status, 200, 'the plain port serves (the first host)');

        const sockets = closeAfter(t);
        for (const name of ['alice.example.com', 'bob.example.com', 'a.wild.example']) {
            const ws = await wssTo(p, name);
            sockets.push(ws);
            await assertRegisters(ws, `sni-${name}`, `wss:// on ${name}`);
        }
    });

    for (const [first, second, message] of [
        ['ssl', 'plain', 'cannot accept HTTP; already defined to accept HTTPS'],
        ['plain', 'ssl', 'cannot accept HTTPS; already defined to accept HTTP'],
    ]) {
        test(`a ${second} listen on an address another host listens on with ${first === 'ssl' ? 'TLS' : 'plain HTTP'} fails -t`, T, async () => {
            const dir = makeTempDir('h2o-signaling-sni-');
            const c = await makeHostCert('alice.example.com', { dir });
            const listen = (kind, port) =>
                kind === 'ssl'
                    ? `listen: {host: ${HOST}, port: ${port}, ssl: {certificate-file: ${c.cert}, key-file: ${c.key}}}`
                    : `listen: {host: ${HOST}, port: ${port}}`;
            const config = (vars) => `hosts:
  "a.example":
    ${listen(first, vars.tlsPort)}
    paths:
      /:
        file.dir: ${vars.dir}
  "b.example":
    ${listen(second, vars.tlsPort)}
    paths:
      /:
        file.dir: ${vars.dir}
`;
            const r = await runConfigTest(config);
            assert.equal(r.code, 1, how(r));
            const errors = configErrors(r.stderr, r.file);
            assert.ok(
                errors.some((e) => e.line === 8 && e.text.includes(message)),
                `${r.file}:8: ... ${message}; got:\n${r.stderr}`,
            );
        });
    }
});

// ---------------------------------------------------------------- 2. unix sockets

/** The owner to set, and the uid it must give: ourselves, or `nobody` when running as root. */
function ownerToSet() {
    const me = userInfo();
    if (me.uid !== 0) return { user: me.username, uid: me.uid };
    return { user: 'nobody', uid: Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim()) };
}

const unixConfig = (sock, owner) => (vars) => `listen: {host: ${HOST}, port: ${vars.port}}
listen:
  type: unix
  port: ${sock(vars)}
  owner: ${owner}
  permission: 0660
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
      /:
        file.dir: ${vars.dir}/www
`;

/** GET / over the unix socket at `path`: {status, text}. */
function unixGet(path, timeout = 5000) {
    const done = new Promise((resolve, reject) => {
        const req = http.request({ socketPath: path, path: '/', headers: { Host: 'localhost' }, agent: false }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
            res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
    });
    return withTimeout(done, timeout, `GET / on ${path}`);
}

describe('listen: {type: unix}', () => {
    test('serves a page and a WebSocket upgrade; owner and mode as set; SIGHUP keeps it', T, async (t) => {
        await requireReload();
        const { user, uid } = ownerToSet();
        const sock = (vars) => join(vars.dir, 'h2o.sock');
        const config = unixConfig(sock, user);
        const check = await runConfigTest(config, { files: { 'www/index.html': 'unix\n' } });
        assert.equal(check.code, 0, how(check));
        const srv = await startServer({ config, files: { 'www/index.html': 'unix\n' } });
        t.after(() => srv.stop('SIGKILL'));
        const path = join(srv.dir, 'h2o.sock');
        await waitUntil(() => existsSync(path), { timeout: 5000, what: `${path} to exist` });
        const st = statSync(path);
        assert.ok(st.isSocket(), `${path} is a socket`);
        assert.equal((st.mode & 0o777).toString(8), '660', 'permission 0660');
        assert.equal(st.uid, uid, `owner ${user}`);

        assert.deepEqual(await unixGet(path).then((r) => [r.status, r.text]), [200, 'unix\n'], 'a page over the socket');
        const sockets = closeAfter(t);
        const before = await connect(`ws+unix://${path}:/WsService`);
        sockets.push(before);
        await assertRegisters(before, 'unix-a', 'ws+unix://');

        await expectReloaded(srv, config, { what: 'the same config again' });
        await ping(before);
        await assertRegisters(before, 'unix-a2', 'the connection opened before the reload');
        const after = await connect(`ws+unix://${path}:/WsService`);
        sockets.push(after);
        await assertRegisters(after, 'unix-b', 'a new connection after the reload');
        assert.equal((await unixGet(path)).status, 200, 'a page after the reload');
    });

    test('a stale socket file at the path is replaced', T, async (t) => {
        const dir = makeTempDir('h2o-signaling-unix-');
        const path = join(dir, 'stale.sock');
        // a process that binds the path and exits without unlinking it
        execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`], {
            timeout: 10000,
        });
        assert.ok(statSync(path).isSocket(), 'the stale socket file exists');
        const srv = await startServer({ config: unixConfig(() => path, ownerToSet().user), files: { 'www/index.html': 'fresh\n' } });
        t.after(() => srv.stop('SIGKILL'));
        await waitUntil(() => unixGet(path, 1000).then((r) => r.status === 200 && r.text === 'fresh\n'), {
            timeout: 5000,
            what: `the server to serve on ${path}`,
        });
    });

    test('an existing file that is not a socket fails with an error naming it, and is left alone', T, async () => {
        const r = await startServer({
            config: unixConfig((vars) => join(vars.dir, 'not-a-socket'), ownerToSet().user),
            files: { 'not-a-socket': 'data\n', 'www/index.html': 'x\n' },
            expectFail: true,
        });
        assert.notEqual(r.code, 0, how(r));
        assert.equal(r.timedOut, false, how(r));
        const path = join(r.dir, 'not-a-socket');
        assert.ok(r.stderr.includes(path), `the error names ${path}:\n${r.stderr}`);
        assert.equal(readFileSync(path, 'utf8'), 'data\n', 'the file is untouched');
    });
});

// ---------------------------------------------------------------- 3. proxy-protocol

const proxyConfig = (log, { cap = 2, tlsCert, upstream } = {}) => (vars) => {
    let listen = `listen: {host: ${HOST}, port: ${vars.port}, proxy-protocol: ON}\n`;
    if (tlsCert) {
        listen += `listen: {host: ${HOST}, port: ${vars.tlsPort}, proxy-protocol: ON, ssl: {certificate-file: ${tlsCert.cert}, key-file: ${tlsCert.key}}}\n`;
    }
    return `${listen}access-log:
  path: ${log(vars)}
  format: "%h %s %U"
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
        signaling.max-connections-per-ip: ${cap}
${upstream ? `      /api:\n        proxy.reverse.url: ${upstream}/api\n` : ''}      /:
        file.dir: ${vars.dir}/www
`;
};

describe('proxy-protocol: ON', () => {
    const files = { 'www/index.html': 'proxied\n', 'www/v4': '4\n', 'www/v6': '6\n', 'www/tls': 'tls\n' };
    const log = (vars) => join(vars.dir, 'access.log');

    test('the PROXY line is the client address: access log (TCP4, TCP6) and max-connections-per-ip', T, async (t) => {
        const srv = await startServer({ config: proxyConfig(log), files });
        t.after(() => srv.stop('SIGKILL'));
        const logPath = join(srv.dir, 'access.log');
        const line4 = (src) => `PROXY TCP4 ${src} 127.0.0.1 5555 ${srv.port}\r\n`;

        const r4 = await rawGet(await proxied(srv.port, line4('203.0.113.7')), `${HOST}:${srv.port}`, '/v4');
        assert.match(r4, /^HTTP\/1\.1 200/, `a request after the PROXY line is served:\n${r4}`);
        await waitUntil(() => logLines(logPath).includes('203.0.113.7 200 /v4'), { timeout: 5000, what: 'the TCP4 line in the access log' });

        const r6 = await rawGet(await proxied(srv.port, `PROXY TCP6 2001:db8::1 ::1 5555 ${srv.port}\r\n`), `${HOST}:${srv.port}`, '/v6');
        assert.match(r6, /^HTTP\/1\.1 200/, r6);
        await waitUntil(() => logLines(logPath).includes('2001:db8::1 200 /v6'), { timeout: 5000, what: 'the TCP6 line in the access log' });

        const sockets = closeAfter(t);
        const viaProxy = (src) => connect(srv.wsUrl, { createConnection: proxyConnection(line4(src)) });
        for (let i = 0; i < 2; i++) {
            const ws = await viaProxy('203.0.113.7');
            sockets.push(ws);
            await assertRegisters(ws, `pp-${i}`, `upgrade ${i + 1} from 203.0.113.7`);
        }
        await assert.rejects(viaProxy('203.0.113.7'), (err) => err.status === 429, 'the third from 203.0.113.7 gets 429');
        const other = await viaProxy('203.0.113.8');
        sockets.push(other);
        await assertRegisters(other, 'pp-other', 'one from 203.0.113.8');
    });

    test("a proxied API sees the PROXY line's address in X-Forwarded-For", T, async (t) => {
        const api = await startUpstream();
        t.after(() => api.close());
        const srv = await startServer({ config: proxyConfig(log, { upstream: api.url }), files });
        t.after(() => srv.stop('SIGKILL'));
        const line = `PROXY TCP4 203.0.113.7 127.0.0.1 5555 ${srv.port}\r\n`;
        const r = await rawGet(await proxied(srv.port, line), `${HOST}:${srv.port}`, '/api/me');
        assert.match(r, /^HTTP\/1\.1 200/, r);
        assert.equal(api.requests.length, 1, 'the API got the request');
        assert.equal(api.requests[0].headers['x-forwarded-for'], '203.0.113.7');
    });

    test('a connection without the PROXY line is closed without a response; a silent one within 15 s', { timeout: 40000 * SLOW }, async (t) => {
        const srv = await startServer({ config: proxyConfig(log), files });
        t.after(() => srv.stop('SIGKILL'));
        const plain = await proxied(srv.port, '');
        const got = await rawGet(plain, `${HOST}:${srv.port}`);
        assert.equal(got, '', 'no response to a request without the PROXY line');
        const silent = await proxied(srv.port, '');
        const closed = await untilClose(silent, 15000);
        assert.equal(closed.data.length, 0, 'nothing sent to a silent client');
        assert.ok(srv.alive(), 'the server is still up');
    });

    test('on a TLS listener: the line first, then the TLS handshake', T, async (t) => {
        const dir = makeTempDir('h2o-signaling-pp-');
        const tlsCert = await makeHostCert('localhost', { dir });
        const srv = await startServer({ config: proxyConfig(log, { tlsCert }), files });
        t.after(() => srv.stop('SIGKILL'));
        const line = `PROXY TCP4 198.51.100.9 127.0.0.1 4444 ${srv.tlsPort}\r\n`;
        const sock = await proxied(srv.tlsPort, line, { servername: 'localhost' });
        const r = await rawGet(sock, `localhost:${srv.tlsPort}`, '/tls');
        assert.match(r, /^HTTP\/1\.1 200/, r);
        await waitUntil(() => logLines(join(srv.dir, 'access.log')).includes('198.51.100.9 200 /tls'), {
            timeout: 5000,
            what: 'the TLS request in the access log under the PROXY address',
        });
    });

    test('proxy-protocol: maybe fails -t with FILE:LINE', T, async () => {
        const r = await runConfigTest((vars) => `listen: {host: ${HOST}, port: ${vars.port}, proxy-protocol: maybe}
hosts:
  default:
    paths:
      /:
        file.dir: ${vars.dir}
`);
        assert.equal(r.code, 1, how(r));
        const errors = configErrors(r.stderr, r.file);
        assert.ok(errors.some((e) => e.line === 1 && /proxy-protocol/.test(e.text)), `${r.file}:1: ... proxy-protocol; got:\n${r.stderr}`);
    });
});

// ---------------------------------------------------------------- 4. reload

describe('reload: new listeners and certificates', () => {
    test('a host added on the TLS address gets its certificate; a replaced certificate serves new connections', T, async (t) => {
        await requireReload();
        const dir = makeTempDir('h2o-signaling-sni-reload-');
        const alice = await makeHostCert('alice.example.com', { dir });
        const bob = await makeHostCert('bob.example.com', { dir: makeTempDir('h2o-signaling-sni-reload-') });
        const files = { 'alice.example.com/index.html': 'alice\n', 'bob.example.com/index.html': 'bob\n' };
        const one = sniConfig([['alice.example.com', alice]]);
        const both = sniConfig([
            ['alice.example.com', alice],
            ['bob.example.com', bob],
        ]);

        const srv = await startServer({ config: one, files });
        t.after(() => srv.stop('SIGKILL'));
        const p = srv.tlsPort;
        assert.equal((await peerCert(p, 'bob.example.com')).fingerprint256, alice.fingerprint256, 'before: bob gets the default');
        const sockets = closeAfter(t);
        const open = await wssTo(p, 'alice.example.com');
        sockets.push(open);
        await assertRegisters(open, 'rl-a', 'wss:// before the reloads');

        await expectReloaded(srv, both, { what: 'host bob added on the TLS address' });
        assert.equal((await peerCert(p, 'bob.example.com')).fingerprint256, bob.fingerprint256, 'the new name gets the new certificate');
        assert.equal((await peerCert(p, 'alice.example.com')).fingerprint256, alice.fingerprint256, 'the old name the old one');
        const b = await wssTo(p, 'bob.example.com');
        sockets.push(b);
        await assertRegisters(b, 'rl-b', 'wss:// on the added host');

        // a renewal: alice's files get new contents
        const renewed = await makeHostCert('alice.example.com', { dir: makeTempDir('h2o-signaling-sni-reload-') });
        assert.notEqual(renewed.fingerprint256, alice.fingerprint256);
        copyFileSync(renewed.key, alice.key);
        copyFileSync(renewed.cert, alice.cert);
        await expectReloaded(srv, both, { what: "alice's certificate replaced" });
        assert.equal((await peerCert(p, 'alice.example.com')).fingerprint256, renewed.fingerprint256, 'new connections: the renewed one');
        assert.equal((await peerCert(p, undefined)).fingerprint256, renewed.fingerprint256, 'no SNI: the renewed default');
        await ping(open);
        await assertRegisters(open, 'rl-a2', 'the wss:// connection opened before both reloads');
    });
});

// ---------------------------------------------------------------- 5. server directives

describe('server directives of stock h2o main', () => {
    for (const line of ['tcp-fastopen: 0', 'tcp-fastopen: 4096', 'num-name-resolution-threads: 2', 'temp-buffer-path: DIR']) {
        test(`${line} passes -t and serves`, T, async (t) => {
            const config = (vars) => `${line.replace('DIR', join(vars.dir, 'tmpbuf'))}
listen: {host: ${HOST}, port: ${vars.port}}
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
      /:
        file.dir: ${vars.dir}/www
`;
            const files = { 'www/index.html': 'ok\n', 'tmpbuf/.keep': '' };
            const r = await runConfigTest(config, { files });
            assert.equal(r.code, 0, how(r));
            const srv = await startServer({ config, files });
            t.after(() => srv.stop('SIGKILL'));
            const res = await httpRequest(`${srv.url}/`);
            assert.deepEqual([res.status, res.text], [200, 'ok\n']);
            const sockets = closeAfter(t);
            const ws = await connect(srv.wsUrl);
            sockets.push(ws);
            await assertRegisters(ws, 'dir-1', line);
        });
    }
});
