// TLS across a reload (reload.md, the contract; test plan 5): after SIGHUP a new TLS connection
// presents the new certificate (its SHA-256 fingerprint), HTTP/2 is still offered through ALPN and
// answers, and a wss:// socket opened before keeps exchanging messages both ways. Three ways to get
// there: the file points at another certificate; the same file, its certificate files replaced in
// place (a renewal); a TLS listener added by the reload.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, test } from 'node:test';

import { h2Request, httpRequest } from '../lib/http.mjs';
import { certFingerprint, expectReloaded, makeCert, requireReload, SLOW, tlsPeer } from '../lib/reload.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import { calledText, dial, dialingOkText, nextText, register } from '../lib/sigclient.mjs';
import { getTestCert } from '../lib/tls.mjs';
import { closeAll, ping } from '../lib/wsclient.mjs';

const INDEX = '<!doctype html><title>tls reload</title>\n';

before(requireReload);

/** The usual config with a TLS listener on tlsPort using `cert`/`key` (default: the server's). */
const withCert = (paths) => (vars) =>
    signalingConfig({ ...vars, ...paths }, { tls: true, fileDir: `${vars.dir}/www` });

/** Asserts a new TLS connection presents `fingerprint`, offers h2, and serves / over HTTP/2 and HTTP/1.1. */
async function assertServes(srv, fingerprint, what) {
    const peer = await tlsPeer(srv.tlsPort);
    assert.equal(peer.fingerprint256, fingerprint, `${what}: the certificate of a new TLS connection`);
    assert.equal(peer.alpn, 'h2', `${what}: ALPN still picks h2`);
    const h2 = await h2Request(srv.httpsUrl, { path: '/' });
    assert.deepEqual([h2.alpn, h2.status, h2.text], ['h2', 200, INDEX], `${what}: a request over HTTP/2`);
    const h1 = await httpRequest(`${srv.httpsUrl}/`);
    assert.deepEqual([h1.httpVersion, h1.status], ['1.1', 200], `${what}: HTTP/1.1 over TLS`);
}

/** `a` and `b` reach each other (a dials b, b dials a), `tag` in field1. */
async function exchange(a, aId, b, bId, tag) {
    assert.equal(await dial(a, { receiverUserId: bId, field1: tag, id: tag }), dialingOkText(tag, bId, 1));
    assert.equal(await nextText(b), calledText({ sponsorUserId: aId, field1: tag }));
    assert.equal(await dial(b, { receiverUserId: aId, field1: `${tag}'`, id: tag }), dialingOkText(tag, aId, 1));
    assert.equal(await nextText(a), calledText({ sponsorUserId: bId, field1: `${tag}'` }));
}

/** The fingerprint of the certificate the server showed a ws client when it connected. */
const shown = (ws) => ws._socket.getPeerCertificate().fingerprint256;

test('a reload to another certificate: new connections get it, h2 still offered, an old wss socket keeps talking', { timeout: 60000 * SLOW }, async (t) => {
    const srv = await startServer({ tls: true, config: withCert({}), files: { 'www/index.html': INDEX } });
    t.after(() => srv.stop('SIGKILL'));
    const fp1 = certFingerprint(srv.cert);
    const cert2 = await makeCert();
    assert.notEqual(cert2.fingerprint256, fp1);
    await assertServes(srv, fp1, 'before');
    const old = await register(srv.wssUrl, 'tls-old');
    const plainOld = await register(srv.wsUrl, 'plain-old');
    t.after(() => closeAll([old, plainOld]));
    assert.equal(shown(old), fp1);

    await expectReloaded(srv, withCert({ cert: cert2.cert, key: cert2.key }), { generation: 2 });
    await assertServes(srv, cert2.fingerprint256, 'after the reload');
    const fresh = await register(srv.wssUrl, 'tls-new');
    t.after(() => closeAll([fresh]));
    assert.equal(shown(fresh), cert2.fingerprint256, 'a wss client connecting now sees the new certificate');
    for (let i = 0; i < 5; i++) await exchange(old, 'tls-old', fresh, 'tls-new', `m${i}`);
    await exchange(old, 'tls-old', plainOld, 'plain-old', 'plain');

    // and back: the first certificate again, the old socket still talking
    await expectReloaded(srv, withCert({}), { generation: 3 });
    await assertServes(srv, fp1, 'after the second reload');
    await exchange(old, 'tls-old', fresh, 'tls-new', 'again');
    await ping(old);
});

test('renewal in place: the same file, new certificate files, SIGHUP', { timeout: 60000 * SLOW }, async (t) => {
    const first = await getTestCert();
    const cert2 = await makeCert();
    const pem = (p) => readFileSync(p, 'utf8');
    const srv = await startServer({
        // tls.cert/key are files in the server's dir that the test overwrites
        config: (vars) => withCert({ cert: `${vars.dir}/tls/cert.pem`, key: `${vars.dir}/tls/key.pem` })(vars),
        files: { 'www/index.html': INDEX, 'tls/cert.pem': pem(first.cert), 'tls/key.pem': pem(first.key) },
    });
    t.after(() => srv.stop('SIGKILL'));
    const fp1 = certFingerprint(first.cert);
    await assertServes(srv, fp1, 'before');
    const old = await register(srv.wssUrl, 'renew-old');
    t.after(() => closeAll([old]));

    const sameFile = (vars) => withCert({ cert: `${vars.dir}/tls/cert.pem`, key: `${vars.dir}/tls/key.pem` })(vars);
    await expectReloaded(srv, sameFile, {
        generation: 2,
        files: { 'tls/cert.pem': pem(cert2.cert), 'tls/key.pem': pem(cert2.key) },
    });
    await assertServes(srv, cert2.fingerprint256, 'after the renewal');
    const fresh = await register(srv.wssUrl, 'renew-new');
    t.after(() => closeAll([fresh]));
    await exchange(old, 'renew-old', fresh, 'renew-new', 'renewed');
});

test('a TLS listener added by a reload serves wss and h2; plain sockets from before reach its users', { timeout: 60000 * SLOW }, async (t) => {
    const { cert, key } = await getTestCert();
    const srv = await startServer({
        config: (vars) => signalingConfig(vars, { fileDir: `${vars.dir}/www` }),
        files: { 'www/index.html': INDEX },
    });
    t.after(() => srv.stop('SIGKILL'));
    const plain = await register(srv.wsUrl, 'add-plain');
    t.after(() => closeAll([plain]));
    await assert.rejects(tlsPeer(srv.tlsPort, { timeout: 1000 }), 'nothing on the TLS port yet');

    await expectReloaded(srv, withCert({ cert, key }), { generation: 2 });
    await assertServes(srv, certFingerprint(cert), 'the added TLS listener');
    const secure = await register(srv.wssUrl, 'add-secure');
    t.after(() => closeAll([secure]));
    await exchange(plain, 'add-plain', secure, 'add-secure', 'added');
});
