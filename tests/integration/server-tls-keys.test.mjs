// Every `ssl:` key of stock h2o 2.2.5's `listen` (docs/configuration.md, `listen: {ssl: ...}`), and
// `num-ocsp-updaters`: each passes -t; a bad value fails with FILE:LINE naming the key; max-version
// really caps the handshake; cipher-preference: server picks the server's order; dh-file gives DHE;
// OCSP stapling end to end (a CA, a leaf naming a loopback OCSP responder that this test runs, the
// shipped share/fetch-ocsp-response as the default command, the staple seen by a client), the
// temporary-failure and permanent-failure paths with their log lines, and `-t` saying whether
// stapling works.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';

import { REPO_ROOT, configErrors, how, makeTempDir, runConfigTest, startServer } from '../lib/server.mjs';
import { getTestCert } from '../lib/tls.mjs';
import { expectReloaded, requireReload } from '../lib/reload.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';

const run = promisify(execFile);
const openssl = (args, opts = {}) => run('openssl', args, { timeout: 20000, ...opts });

/** A config with one TLS listener on tlsPort whose `ssl:` mapping has `lines` (after the files, unless `files: false`). */
const tlsConfig =
    (lines, { cert, key, global = [], files = true } = {}) =>
    (vars) => {
        const ssl = [
            ...(files ? [`certificate-file: ${cert ?? vars.cert}`, `key-file: ${key ?? vars.key}`] : []),
            ...lines,
        ];
        return `${global.map((l) => `${l}\n`).join('')}listen:
  host: 127.0.0.1
  port: ${vars.tlsPort}
  ssl:
${ssl.map((l) => `    ${l}\n`).join('')}hosts:
  default:
    paths:
      /:
        file.dir: ${vars.dir}
`;
    };

/** The 1-based line of the first line of `text` containing `needle`. */
const lineOf = (text, needle) => {
    const i = text.split('\n').findIndex((l) => l.includes(needle));
    assert.ok(i >= 0, `the config has a line with ${needle}`);
    return i + 1;
};

/**
 * One TLS handshake to 127.0.0.1:port: {protocol, cipher, ephemeral, ocsp} where `ocsp` is the stapled response
 * (a Buffer), null when the server stapled nothing, undefined when not asked; rejects on a failed handshake.
 */
async function handshake(port, opts = {}) {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ...opts });
    let ocsp;
    sock.on('OCSPResponse', (resp) => {
        ocsp = resp ?? null;
    });
    try {
        await withTimeout(
            new Promise((res, rej) => {
                sock.once('secureConnect', res);
                sock.once('error', rej);
            }),
            5000,
            `TLS handshake with 127.0.0.1:${port}`,
        );
        if (opts.requestOCSP && ocsp === undefined) ocsp = null;
        return { protocol: sock.getProtocol(), cipher: sock.getCipher().name, ephemeral: sock.getEphemeralKeyInfo(), ocsp };
    } finally {
        sock.destroy();
    }
}

// ---- the PKI and the OCSP responder of the stapling tests ----

let pki; // {dir, caCert, caKey, leaf (leaf + CA chain), leafOnly, leafKey, index, responder, requests()}

/** Starts a loopback OCSP responder (each request answered by `openssl ocsp -index`), then makes a CA and a leaf naming it. */
async function makePki() {
    const dir = makeTempDir('h2o-signaling-ocsp-');
    const p = (name) => join(dir, name);
    let requests = 0;
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (d) => chunks.push(d));
        req.on('end', async () => {
            const n = ++requests;
            try {
                writeFileSync(p(`req${n}.der`), Buffer.concat(chunks));
                // prettier-ignore
                await openssl(['ocsp', '-index', p('index.txt'), '-rsigner', p('ca.crt'), '-rkey', p('ca.key'), '-CA', p('ca.crt'),
                               '-reqin', p(`req${n}.der`), '-respout', p(`resp${n}.der`)]);
                res.writeHead(200, { 'content-type': 'application/ocsp-response' });
                res.end(readFileSync(p(`resp${n}.der`)));
            } catch (err) {
                res.writeHead(500);
                res.end(String(err));
            }
        });
    });
    await new Promise((res) => server.listen(0, '127.0.0.1', res));
    const { port } = server.address();
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    // prettier-ignore
    await openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-subj', '/CN=h2o-signaling test OCSP CA',
                   '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE',
                   '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
    await openssl(['req', '-new', ...ec, '-keyout', p('leaf.key'), '-out', p('leaf.csr'), '-subj', '/CN=localhost']);
    writeFileSync(p('ext.cnf'), `subjectAltName=DNS:localhost,IP:127.0.0.1\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:${port}/\n`);
    // prettier-ignore
    await openssl(['x509', '-req', '-in', p('leaf.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-set_serial', '0x5106',
                   '-days', '2', '-extfile', p('ext.cnf'), '-out', p('leaf-only.crt')]);
    // the responder's database: the leaf (serial 5106) is valid
    writeFileSync(p('index.txt'), 'V\t391231235959Z\t\t5106\tunknown\t/CN=localhost\n');
    writeFileSync(p('leaf.crt'), readFileSync(p('leaf-only.crt'), 'utf8') + readFileSync(p('ca.crt'), 'utf8'));
    return {
        dir,
        caCert: p('ca.crt'),
        leaf: p('leaf.crt'),
        leafOnly: p('leaf-only.crt'),
        leafKey: p('leaf.key'),
        server,
        requests: () => requests,
    };
}

/** What `openssl ocsp` says of a DER response for the test leaf: {good, verified, text}. */
async function checkResponse(der) {
    const file = join(pki.dir, `seen-${Date.now()}-${Math.random().toString(16).slice(2)}.der`);
    writeFileSync(file, der);
    // prettier-ignore
    const r = await openssl(['ocsp', '-respin', file, '-issuer', pki.caCert, '-cert', pki.leafOnly, '-no_nonce', '-CAfile', pki.caCert])
        .catch((e) => e);
    const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    return { good: /leaf-only\.crt: good/.test(text), verified: /Response verify OK/.test(text), text };
}

/** A command script in `dir` with `body` (POSIX sh), made executable. */
function script(dir, name, body) {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
}

const waitLog = (srv, re, what, timeout = 20000) =>
    waitUntil(() => re.test(srv.stderr()), { timeout, what: `${what} (stderr so far:\n${srv.stderr()})` });

// ---- -t ----

describe('-t accepts every ssl key', () => {
    test('all keys of stock h2o 2.2.5 and num-ocsp-updaters', async () => {
        const dh = join(makeTempDir('h2o-signaling-dh-'), 'dh.pem');
        await openssl(['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'dh_param:ffdhe2048', '-out', dh]);
        const dir = makeTempDir('h2o-signaling-cmd-');
        const ok = script(dir, 'ok-cmd', 'printf "not really DER"');
        for (const lines of [
            // prettier-ignore
            ['min-version: TLSv1.2', 'max-version: TLSv1.3', 'cipher-suite: ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305',
             'cipher-preference: server', `dh-file: ${dh}`, `ocsp-update-cmd: ${ok}`, 'ocsp-update-interval: 3600',
             'ocsp-max-failures: 5', 'neverbleed: OFF'],
            ['minimum-version: tlsv1.1', 'maximum-version: tlsv1.2', 'cipher-preference: CLIENT', 'ocsp-update-interval: 0', 'neverbleed: on'],
        ]) {
            const r = await runConfigTest(tlsConfig(lines, { global: ['num-ocsp-updaters: 2'] }), { tls: true });
            assert.equal(r.code, 0, how(r));
            assert.match(r.stdout, /configuration OK/);
        }
    });

    test('min-version: SSLv3 (OpenSSL 3 has none) is TLSv1 with a warning at its line', async () => {
        const r = await runConfigTest(tlsConfig(['min-version: SSLv3', 'ocsp-update-interval: 0']), { tls: true });
        assert.equal(r.code, 0, how(r));
        const line = lineOf(r.config, 'min-version');
        assert.ok(
            configErrors(r.stderr, r.file).some((e) => e.line === line && /warning: OpenSSL 3 has no SSLv3; `min-version` is TLSv1/.test(e.text)),
            r.stderr,
        );
    });

    test('neverbleed: ON is said once, not per listener', async () => {
        const r = await runConfigTest(
            ({ tlsPort, ports, cert, key, dir }) => `listen:
  host: 127.0.0.1
  port: ${tlsPort}
  ssl: {certificate-file: ${cert}, key-file: ${key}, neverbleed: ON, ocsp-update-interval: 0}
listen:
  host: 127.0.0.1
  port: ${ports[2]}
  ssl: {certificate-file: ${cert}, key-file: ${key}, neverbleed: ON, ocsp-update-interval: 0}
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
`,
            { tls: true, ports: 3 },
        );
        assert.equal(r.code, 0, how(r));
        assert.equal(r.stderr.match(/neverbleed: ON`: private keys stay in the server process/g)?.length, 1, r.stderr);
    });
});

describe('bad values fail with FILE:LINE, the key and the reason', () => {
    const BAD = [
        { lines: ['min-version: TLSv9'], at: 'min-version', says: /`min-version` must be one of SSLv2, SSLv3, TLSv1, .*not `TLSv9`/ },
        { lines: ['minimum-version: [TLSv1.2]'], at: 'minimum-version', says: /`minimum-version` must be a scalar/ },
        { lines: ['max-version: SSLv3'], at: 'max-version', says: /OpenSSL 3 has no SSLv2 or SSLv3/ },
        { lines: ['maximum-version: TLS1.2'], at: 'maximum-version', says: /`max-version` must be one of TLSv1, .*not `TLS1.2`/ },
        { lines: ['min-version: TLSv1.3', 'max-version: TLSv1.2'], at: 'max-version', says: /below the minimum version \(TLSv1.3\)/ },
        { lines: ['max-version: TLSv1.1'], at: 'max-version', says: /below the minimum version \(TLSv1.2 by default\)/ },
        { lines: ['cipher-preference: both'], at: 'cipher-preference', says: /`cipher-preference` must be `client` or `server`, not `both`/ },
        { lines: ['cipher-suite: NO-SUCH-CIPHER'], at: 'cipher-suite', says: /invalid cipher-suite `NO-SUCH-CIPHER`/ },
        { lines: ['dh-file: /no/such/dh.pem'], at: 'dh-file', says: /cannot open `\/no\/such\/dh.pem`: No such file/ },
        { lines: ['dh-file: CERT'], at: 'dh-file', says: /no PEM DH parameters \(`openssl dhparam`\) in dh-file/ },
        { lines: ['ocsp-update-interval: -1'], at: 'ocsp-update-interval', says: /`ocsp-update-interval` must be a number from 0 to \d+, not `-1`/ },
        { lines: ['ocsp-update-interval: 4h'], at: 'ocsp-update-interval', says: /must be a number .* not `4h`/ },
        { lines: ['ocsp-max-failures: many'], at: 'ocsp-max-failures', says: /`ocsp-max-failures` must be a number/ },
        { lines: ['ocsp-update-cmd: ""'], at: 'ocsp-update-cmd', says: /`ocsp-update-cmd` must be a command/ },
        { lines: ['neverbleed: maybe'], at: 'neverbleed', says: /`neverbleed` must be `ON` or `OFF`, not `maybe`/ },
        { lines: ['no-such-key: 1'], at: 'no-such-key', says: /unknown key in `ssl` \(supported: certificate-file, .*neverbleed\)/ },
    ];
    for (const { lines, at, says } of BAD) {
        test(lines.join(', '), async () => {
            const { cert } = await getTestCert();
            const r = await runConfigTest(tlsConfig(lines.map((l) => l.replace('CERT', cert))), { tls: true });
            assert.notEqual(r.code, 0, `-t must fail: ${how(r)}`);
            const line = lineOf(r.config, `${at}:`);
            const errors = configErrors(r.stderr, r.file);
            assert.ok(
                errors.some((e) => e.line === line && e.text.includes(': listen: ') && says.test(e.text)),
                `an error at line ${line} matching ${says}; stderr:\n${r.stderr}`,
            );
        });
    }

    test('num-ocsp-updaters: 0', async () => {
        const r = await runConfigTest(tlsConfig(['ocsp-update-interval: 0'], { global: ['num-ocsp-updaters: 0'] }), { tls: true });
        assert.notEqual(r.code, 0, how(r));
        assert.ok(
            configErrors(r.stderr, r.file).some((e) => e.line === 1 && /num-ocsp-updaters: must be at least 1/.test(e.text)),
            r.stderr,
        );
    });
});

// ---- what the keys do to a handshake ----

describe('handshakes', () => {
    test('max-version: TLSv1.2 caps the handshake (TLSv1.3 without it)', async (t) => {
        const capped = await startServer({ config: tlsConfig(['max-version: TLSv1.2', 'ocsp-update-interval: 0']), tls: true });
        t.after(() => capped.stop());
        assert.equal((await handshake(capped.tlsPort)).protocol, 'TLSv1.2');
        await assert.rejects(handshake(capped.tlsPort, { minVersion: 'TLSv1.3' }), 'a TLSv1.3-only client is refused');
        const open = await startServer({ config: tlsConfig(['ocsp-update-interval: 0']), tls: true });
        t.after(() => open.stop());
        assert.equal((await handshake(open.tlsPort)).protocol, 'TLSv1.3');
    });

    test('cipher-preference: server picks the server order; client (the default) the client order', async (t) => {
        const serverOrder = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305';
        const clientOrder = 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256';
        const common = ['max-version: TLSv1.2', `cipher-suite: ${serverOrder}`, 'ocsp-update-interval: 0'];
        for (const [pref, expected] of [
            ['server', 'ECDHE-ECDSA-AES128-GCM-SHA256'],
            ['client', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
            [null, 'ECDHE-ECDSA-CHACHA20-POLY1305'],
        ]) {
            const srv = await startServer({ config: tlsConfig([...common, ...(pref ? [`cipher-preference: ${pref}`] : [])]), tls: true });
            t.after(() => srv.stop());
            const hs = await handshake(srv.tlsPort, { ciphers: clientOrder });
            assert.equal(hs.cipher, expected, `cipher-preference: ${pref ?? '(default)'}`);
            await srv.stop();
        }
    });

    test('dh-file gives the DHE suites its parameters (without it, DHE is not offered)', async (t) => {
        const dir = makeTempDir('h2o-signaling-dh-');
        const [cert, key, dh] = ['rsa.crt', 'rsa.key', 'dh.pem'].map((f) => join(dir, f));
        // prettier-ignore
        await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-days', '2']);
        await openssl(['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'dh_param:ffdhe2048', '-out', dh]);
        const dhe = ['max-version: TLSv1.2', 'cipher-suite: DHE-RSA-AES128-GCM-SHA256', 'ocsp-update-interval: 0'];
        const client = { ciphers: 'DHE-RSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' };

        const srv = await startServer({ config: tlsConfig([...dhe, `dh-file: ${dh}`], { cert, key }) });
        t.after(() => srv.stop());
        const hs = await handshake(srv.tlsPort, client);
        assert.equal(hs.cipher, 'DHE-RSA-AES128-GCM-SHA256');
        assert.deepEqual([hs.ephemeral.type, hs.ephemeral.size], ['DH', 2048]);

        const without = await startServer({ config: tlsConfig(dhe, { cert, key }) });
        t.after(() => without.stop());
        await assert.rejects(handshake(without.tlsPort, client), 'no DH parameters: no DHE handshake');
    });
});

// ---- OCSP stapling ----

describe('OCSP stapling', () => {
    let good; // a response for the leaf, fetched once with the shipped script, for the scripted commands
    before(async () => {
        pki = await makePki();
        good = join(pki.dir, 'good.der');
        const fetched = await run(join(REPO_ROOT, 'share', 'fetch-ocsp-response'), [pki.leaf], { encoding: 'buffer', timeout: 20000 });
        writeFileSync(good, fetched.stdout);
    });
    after(() => new Promise((res) => pki?.server.close(() => res())));

    test('the shipped fetch-ocsp-response (the default command) gets a response that is stapled', async (t) => {
        const srv = await startServer({
            config: tlsConfig(['ocsp-update-interval: 3600'], { cert: pki.leaf, key: pki.leafKey }),
        });
        t.after(() => srv.stop());
        await waitLog(srv, /\[OCSP Stapling\] successfully updated the response for certificate file:.*leaf\.crt/, 'first update');
        assert.ok(pki.requests() >= 1, 'the responder was asked');
        const hs = await handshake(srv.tlsPort, { requestOCSP: true });
        assert.ok(Buffer.isBuffer(hs.ocsp) && hs.ocsp.length > 0, `a stapled response (got ${hs.ocsp})`);
        const check = await checkResponse(hs.ocsp);
        assert.ok(check.good && check.verified, `the staple says the leaf is good, signed by the CA:\n${check.text}`);
        const plain = await handshake(srv.tlsPort);
        assert.equal(plain.ocsp, undefined, 'nothing for a client that did not ask');
    });

    test('the issuer from the system CA store when the file has no chain (SSL_CERT_DIR)', async (t) => {
        const cadir = makeTempDir('h2o-signaling-cadir-');
        writeFileSync(join(cadir, 'ca.pem'), readFileSync(pki.caCert));
        await openssl(['rehash', cadir]);
        const srv = await startServer({
            config: tlsConfig(['ocsp-update-interval: 3600'], { cert: pki.leafOnly, key: pki.leafKey }),
            env: { SSL_CERT_DIR: cadir },
        });
        t.after(() => srv.stop());
        await waitLog(srv, /\[OCSP Stapling\] successfully updated the response for certificate file:.*leaf-only\.crt/, 'update');
        const hs = await handshake(srv.tlsPort, { requestOCSP: true });
        assert.ok((await checkResponse(hs.ocsp)).good, 'stapled');
    });

    test('-t runs the command once and says stapling works, or that it does not (still OK)', async () => {
        const works = await runConfigTest(tlsConfig([], { cert: pki.leaf, key: pki.leafKey }));
        assert.equal(works.code, 0, how(works));
        assert.match(works.stderr, /\[OCSP Stapling\] testing for certificate file:.*leaf\.crt/);
        assert.match(works.stderr, /\[OCSP Stapling\] stapling works for file:.*leaf\.crt/);

        const fails = await runConfigTest(tlsConfig([]), { tls: true }); // the self-signed test cert: no OCSP URI
        assert.equal(fails.code, 0, `a certificate without OCSP does not fail -t: ${how(fails)}`);
        assert.match(fails.stdout, /configuration OK/);
        assert.match(fails.stderr, /has no OCSP URI/);
        const line = lineOf(fails.config, 'certificate-file');
        assert.ok(
            configErrors(fails.stderr, fails.file).some(
                (e) => e.line === line && /\[OCSP Stapling\] does not work, will be disabled for file:.*\(`.*fetch-ocsp-response` exited 65\)/.test(e.text),
            ),
            fails.stderr,
        );
    });

    test('a command that fails permanently disables stapling for that certificate', async (t) => {
        const cmd = script(pki.dir, 'fail-cmd', 'echo "fail-cmd: refusing" >&2; exit 1');
        const srv = await startServer({
            config: tlsConfig(['ocsp-update-interval: 1', `ocsp-update-cmd: ${cmd}`], { cert: pki.leaf, key: pki.leafKey }),
        });
        t.after(() => srv.stop());
        await waitLog(srv, /\[OCSP Stapling\] disabled for certificate file:.*leaf\.crt/, 'disabled');
        const hs = await handshake(srv.tlsPort, { requestOCSP: true });
        assert.equal(hs.ocsp, null, 'nothing stapled');
        assert.equal(srv.stderr().match(/fail-cmd: refusing/g).length, 1, 'the updater ran once and ended');
    });

    test('a reload stops the replaced configuration\'s updater; the new one staples', async (t) => {
        await requireReload();
        const logA = join(pki.dir, 'runs-a');
        const logB = join(pki.dir, 'runs-b');
        writeFileSync(logA, '');
        writeFileSync(logB, '');
        const cmdA = script(pki.dir, 'cmd-a', `echo x >> '${logA}'; cat '${good}'`);
        const cmdB = script(pki.dir, 'cmd-b', `echo x >> '${logB}'; cat '${good}'`);
        const runs = (f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).length;
        const conf = (cmd) => tlsConfig(['ocsp-update-interval: 1', `ocsp-update-cmd: ${cmd}`], { cert: pki.leaf, key: pki.leafKey });
        const srv = await startServer({ config: conf(cmdA) });
        t.after(() => srv.stop());
        await waitUntil(() => runs(logA) >= 2, { timeout: 10000, what: 'two runs of the first command' });
        await expectReloaded(srv, conf(cmdB));
        const aAtReload = runs(logA);
        await waitUntil(() => runs(logB) >= 3, { timeout: 10000, what: 'three runs of the new command' });
        assert.ok(runs(logA) <= aAtReload + 1, `the old updater stopped (runs of A: ${aAtReload} at the reload, ${runs(logA)} now)`);
        assert.ok((await checkResponse((await handshake(srv.tlsPort, { requestOCSP: true })).ocsp)).good, 'stapled after the reload');
    });

    test('num-ocsp-updaters: 1 runs one command at a time', async (t) => {
        const lock = join(pki.dir, 'sem-lock');
        const overlap = join(pki.dir, 'sem-overlap');
        // prettier-ignore
        const cmd = script(pki.dir, 'sem-cmd',
            `if ! mkdir '${lock}' 2>/dev/null; then echo overlap >> '${overlap}'; exit 75; fi\n` +
            `sleep 0.3; rmdir '${lock}'; cat '${good}'`);
        const listen = (port) => `listen:
  host: 127.0.0.1
  port: ${port}
  ssl: {certificate-file: ${pki.leaf}, key-file: ${pki.leafKey}, ocsp-update-cmd: ${cmd}}
`;
        const srv = await startServer({
            config: ({ tlsPort, ports, dir }) => `num-ocsp-updaters: 1
${listen(tlsPort)}${listen(ports[2])}${listen(ports[3])}hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
`,
            ports: 4,
        });
        t.after(() => srv.stop());
        await waitUntil(() => (srv.stderr().match(/successfully updated the response/g) ?? []).length === 3, {
            timeout: 15000,
            what: `three updates (stderr:\n${srv.stderr()})`,
        });
        assert.throws(() => readFileSync(overlap), 'no two commands ran at once');
    });

    test('temporary failures keep the response until ocsp-max-failures, then stapling stops until a success', async (t) => {
        // run 1 prints a response made now; runs 2 and 3 exit 75; run 4 and later succeed again
        const counter = join(pki.dir, 'runs');
        writeFileSync(counter, '');
        // prettier-ignore
        const cmd = script(pki.dir, 'flaky-cmd',
            `echo x >> '${counter}'; n=$(wc -l < '${counter}')\n` +
            `if [ "$n" -eq 2 ] || [ "$n" -eq 3 ]; then exit 75; fi\n` +
            `if [ "$n" -ge 4 ] && [ -e '${counter}.hold' ]; then exit 75; fi\n` +
            `cat '${good}'`);
        writeFileSync(`${counter}.hold`, ''); // runs 4+ fail too until the test lets them succeed
        const srv = await startServer({
            config: tlsConfig(['ocsp-update-interval: 1', 'ocsp-max-failures: 1', `ocsp-update-cmd: ${cmd}`], {
                cert: pki.leaf,
                key: pki.leafKey,
            }),
        });
        t.after(() => srv.stop());
        await waitLog(srv, /successfully updated the response/, 'run 1');
        await waitLog(srv, /reusing old response due to a temporary error/, 'run 2: the old response stays');
        await waitLog(srv, /OCSP stapling is temporary disabled due to repeated errors for certificate file:.*leaf\.crt/, 'run 3');
        assert.equal((await handshake(srv.tlsPort, { requestOCSP: true })).ocsp, null, 'nothing stapled after max failures');
        rmSync(`${counter}.hold`);
        const before = srv.stderr().match(/successfully updated/g).length;
        await waitUntil(() => srv.stderr().match(/successfully updated/g).length > before, {
            timeout: 10000,
            what: `a later success (stderr:\n${srv.stderr()})`,
        });
        assert.ok((await checkResponse((await handshake(srv.tlsPort, { requestOCSP: true })).ocsp)).good, 'stapled again');
    });
});
