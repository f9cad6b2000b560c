// The push API (signaling.push-key-file; docs/operations.md "Push API"): the app's backend POSTs
// to a `signaling: ON` path with `Authorization: Bearer KEY`. On num-threads 4: a user with two
// connections that the server holds on two different threads (found through /proc: which event
// loop's epoll watches each socket) gets the exact `called` on both, answered delivered 2; an
// offline user 404; every 401, 400, 413 and 405; a disconnect closes both with 4000 and the user
// is offline after it; answers keep the HTTP connection; a path without the directive answers a
// POST as before. Across nodes on a real redis-server: a push and a disconnect through node A
// reach the user's connections on node B, counted; a backend that hangs up while its push waits
// for B does not hurt A; with Redis stopped a push for a user only on B answers 503
// cluster_unavailable. Loopback only; every wait is bounded; each test stops what it started.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { httpRequest } from '../lib/http.mjs';
import { drain, noMessageWithin, startCluster } from '../lib/redis.mjs';
import { calledText, createConnectOkText, MSG, nextText, register, request } from '../lib/sigclient.mjs';
import { makeTempDir, signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAfter, connect, waitClose } from '../lib/wsclient.mjs';

const THREADS = 4;
const MAX_MESSAGE = 1024; // signaling.max-message-size of the single-node server: the 413 bound
const KEY = randomBytes(33).toString('base64url'); // 44 bytes
const JSON_TYPE = 'application/json; charset=utf-8';
const GONE_REASON = 'disconnected by the server';
// the codec's texts (handler/common/sig_common.h), which the push API answers with as the WebSocket protocol does
const TEXT = Object.freeze({
    bad_json: 'message is not valid JSON',
    not_object: 'message is not a JSON object',
    unknown_type: 'message type is not known',
    bad_field: 'a field has a value of the wrong kind',
    missing_field: 'a required field is missing',
    bad_id: 'user id must be 1 to 256 bytes',
    message_too_large: 'message is too large',
    cluster_unavailable: 'the cluster cannot be reached: only users on this server are reachable',
    ...MSG,
});
const UNAUTHORIZED = JSON.stringify({ ok: false, code: 'unauthorized', msg: 'a valid Authorization: Bearer key is required' });
const NON_UPGRADE = 'this path accepts WebSocket handshakes only\n'; // what the WebSocket glue answers a non-upgrade

const failText = (code) => JSON.stringify({ ok: false, code, msg: TEXT[code] });
const deliveredText = (n) => JSON.stringify({ ok: true, delivered: n });
const disconnectedText = (n) => JSON.stringify({ ok: true, disconnected: n });

/** POST `body` (an object is JSON-encoded) to `url` with the push key, unless `headers` say otherwise. */
function push(url, body, { key = KEY, headers, method = 'POST', timeout = 5000 } = {}) {
    return httpRequest(url, {
        method,
        timeout,
        headers: headers ?? { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });
}

/** Asserts a JSON answer: status, Content-Type, Content-Length (what lets a client keep the connection), the exact body. */
function assertAnswer(res, status, text, what) {
    const detail = `${what}: got ${res.status} ${JSON.stringify(res.headers)} ${res.text}`;
    assert.equal(res.status, status, detail);
    assert.equal(res.headers['content-type'], JSON_TYPE, detail);
    assert.equal(res.text, text, detail);
    assert.equal(res.headers['content-length'], String(res.body.length), `${what}: Content-Length (${detail})`);
}

/** Asserts the exact 401. */
function assertUnauthorized(res, what) {
    assertAnswer(res, 401, UNAUTHORIZED, what);
    assert.equal(res.headers['www-authenticate'], 'Bearer', `${what}: WWW-Authenticate`);
}

// ---- which thread holds a connection ----
// Each thread of the server runs its own event loop, and each loop has one epoll instance. The
// server's end of a client's TCP connection is found in /proc/net/tcp by the client's port, its
// inode names the server's descriptor, and the epoll instance whose fdinfo lists that descriptor
// is the loop (thread) that owns the connection.

/** The inode of the established TCP socket 127.0.0.1:serverPort <- 127.0.0.1:clientPort, or undefined. */
function serverSocketInode(serverPort, clientPort) {
    const hex = (p) => p.toString(16).toUpperCase().padStart(4, '0');
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 10) continue;
        if (f[1] === `0100007F:${hex(serverPort)}` && f[2] === `0100007F:${hex(clientPort)}` && f[3] === '01') return f[9];
    }
    return undefined;
}

/** The descriptor number of the epoll instance (event loop) of process `pid` that watches the connection. */
function loopOf(pid, serverPort, clientPort) {
    const inode = serverSocketInode(serverPort, clientPort);
    if (inode === undefined) return undefined;
    const dir = `/proc/${pid}/fd`;
    const links = new Map();
    for (const fd of readdirSync(dir)) {
        try {
            links.set(fd, readlinkSync(join(dir, fd)));
        } catch {
            /* closed meanwhile */
        }
    }
    const sockFd = [...links].find(([, l]) => l === `socket:[${inode}]`)?.[0];
    if (sockFd === undefined) return undefined;
    for (const [fd, link] of links) {
        if (link !== 'anon_inode:[eventpoll]') continue;
        let info;
        try {
            info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
        } catch {
            continue;
        }
        if (new RegExp(`^tfd:\\s+${sockFd}\\s`, 'm').test(info)) return fd;
    }
    return undefined;
}

/** The event loop holding `ws` (bounded wait: the server watches a socket once it has read the handshake). */
function waitLoopOf(srv, ws) {
    const clientPort = ws._socket.localPort;
    return waitUntil(() => loopOf(srv.pid, srv.port, clientPort), {
        timeout: 3000,
        interval: 20,
        what: `the event loop of the connection from port ${clientPort}`,
    });
}

/**
 * `userId` registered on two connections that the server holds on two different threads; the
 * connections tried on the way (same thread as the first) are closed. Returns [ws1, ws2, loops].
 */
async function registerOnTwoThreads(srv, userId, open) {
    const first = await register(srv.wsUrl, userId, { id: 'd1' });
    open.push(first);
    const loop1 = await waitLoopOf(srv, first);
    for (let attempt = 1; attempt <= 60; attempt++) {
        const ws = await connect(srv.wsUrl);
        open.push(ws);
        const loop = await waitLoopOf(srv, ws);
        if (loop === loop1) {
            ws.terminate();
            continue;
        }
        const reply = await request(ws, { type: 'create_connect', sponsorUserId: userId, id: 'd2' });
        assert.equal(reply, createConnectOkText('d2', userId));
        return [first, ws, [loop1, loop]];
    }
    throw new Error(`60 connections all landed on the thread of the first one (epoll fd ${loop1})`);
}

/** Asserts that `ws` gets exactly `expected` next and nothing more within 200 ms. */
async function assertCalledOnce(ws, expected, what) {
    const got = await nextText(ws, 3000).catch((err) => `(nothing: ${err.message})`);
    assert.equal(got, expected, `${what}: expected ${expected}\n   got ${got}`);
    const more = await noMessageWithin(ws, 200);
    assert.equal(more, true, `${what}: a second message within 200 ms: ${more}`);
}

/** Pushes to `userId` until the answer is 404 peer_offline (a closing connection answers peer_gone meanwhile). */
async function waitPushOffline(url, userId, { timeout = 3000 } = {}) {
    let last;
    await waitUntil(
        async () => {
            last = await push(url, { receiverUserId: userId });
            if (last.status === 200 || (last.status === 404 && last.text === failText('peer_gone'))) return false;
            assertAnswer(last, 404, failText('peer_offline'), `push to ${userId} once it left`);
            return true;
        },
        { timeout, interval: 25, what: `a push to ${userId} to answer 404 peer_offline` },
    ).catch((err) => {
        throw new Error(`${err.message}; last answer: ${last?.status} ${last?.text}`);
    });
}

describe(`push API on num-threads ${THREADS}`, { timeout: 120000 }, () => {
    let srv;
    let url;
    before(async () => {
        srv = await startServer({
            threads: THREADS,
            files: { 'push.key': `${KEY}\n` },
            config: (vars) =>
                signalingConfig(vars, {
                    settings: ['signaling.push-key-file: push.key', `signaling.max-message-size: ${MAX_MESSAGE}`],
                    morePaths: '      /Plain:\n        signaling: ON\n',
                }),
        });
        url = `${srv.url}/WsService`;
    });
    after(() => srv?.stop());

    test('a user with two connections on different threads: delivered 2, each gets the exact called once', async (t) => {
        const open = closeAfter(t);
        const [a, b, loops] = await registerOnTwoThreads(srv, 'p-two', open);
        t.diagnostic(`the two connections are watched by epoll fds ${loops.join(' and ')}`);

        const body = {
            receiverUserId: 'p-two',
            sponsorUserId: 'system',
            sponsorUserName: '客服 "support"',
            field1: 'line\nbreak\ttab \\ back',
            field2: '',
            field3: '房间 3 😀',
        };
        assertAnswer(await push(url, body), 200, deliveredText(2), 'push to p-two');
        const expected = calledText(body);
        await Promise.all([assertCalledOnce(a, expected, 'connection 1'), assertCalledOnce(b, expected, 'connection 2')]);

        // only receiverUserId (a number): every other field of the called is ""
        const other = await register(srv.wsUrl, '2211');
        open.push(other);
        assertAnswer(await push(url, { receiverUserId: 2211 }), 200, deliveredText(1), 'push to 2211 given as a number');
        await assertCalledOnce(other, calledText({ sponsorUserId: '' }), 'called with every field absent');
        // nulls are absent too; unknown keys are ignored; the answer is the same on the second try
        assertAnswer(await push(url, { receiverUserId: 'p-two', field1: null, extra: { type: 'x' } }), 200, deliveredText(2), 'again');
        const bare = calledText({ sponsorUserId: '' });
        await Promise.all([assertCalledOnce(a, bare, 'connection 1, bare'), assertCalledOnce(b, bare, 'connection 2, bare')]);
        // a WebSocket client's dialing reaches both as before
        const dialer = await register(srv.wsUrl, 'p-dialer');
        open.push(dialer);
        dialer.send(JSON.stringify({ type: 'dialing', receiverUserId: 'p-two', field1: 'ws' }));
        const fromWs = calledText({ sponsorUserId: 'p-dialer', field1: 'ws' });
        await Promise.all([assertCalledOnce(a, fromWs, 'dialing, connection 1'), assertCalledOnce(b, fromWs, 'dialing, connection 2')]);
    });

    test('a user nobody holds: 404 peer_offline with the protocol text', async () => {
        assertAnswer(await push(url, { receiverUserId: 'p-nobody' }), 404, failText('peer_offline'), 'push to nobody');
        assert.equal(JSON.parse(failText('peer_offline')).msg, '对方未建立链接');
    });

    test('401: missing, wrong or malformed credentials, checked before the body', async () => {
        const other = randomBytes(33).toString('base64url'); // same length, other bytes
        const cases = [
            ['no Authorization header', {}],
            ['wrong key of the same length', { authorization: `Bearer ${other}` }],
            ['one byte changed', { authorization: `Bearer ${KEY.slice(0, -1)}${KEY.endsWith('A') ? 'B' : 'A'}` }],
            ['another scheme', { authorization: `Basic ${KEY}` }],
            ['the key alone', { authorization: KEY }],
            ['a shorter key (a prefix)', { authorization: `Bearer ${KEY.slice(0, 20)}` }],
            ['a longer key', { authorization: `Bearer ${KEY}${KEY}` }],
            ['the key with trailing garbage', { authorization: `Bearer ${KEY}x` }],
            ['the key, a space and garbage', { authorization: `Bearer ${KEY} x` }],
            ['Bearer and nothing', { authorization: 'Bearer' }],
            ['Bearer and a space', { authorization: 'Bearer ' }],
            ['the file with its newline, escaped', { authorization: `Bearer ${KEY}\\n` }],
        ];
        for (const [what, headers] of cases) {
            assertUnauthorized(await push(url, { receiverUserId: 'p-nobody' }, { headers }), what);
        }
        // unauthenticated requests learn nothing about the body: a bad or oversized one is still 401
        assertUnauthorized(await push(url, 'not json', { headers: {} }), 'bad JSON without a key');
        assertUnauthorized(await push(url, 'x'.repeat(MAX_MESSAGE + 1), { headers: { authorization: 'Bearer no' } }), 'too large, wrong key');
        // accepted forms: the scheme is case-insensitive (RFC 9110), spaces after it and trailing whitespace do not count
        for (const [what, authorization] of [
            ['scheme in lower case', `bearer ${KEY}`],
            ['scheme in upper case', `BEARER ${KEY}`],
            ['two spaces after the scheme', `Bearer  ${KEY}`],
            ['trailing whitespace', `Bearer ${KEY} \t`],
        ]) {
            const res = await push(url, { receiverUserId: 'p-nobody' }, { headers: { authorization } });
            assertAnswer(res, 404, failText('peer_offline'), what);
        }
    });

    test("400 with the codec's code for each kind of bad body", async () => {
        const longId = '7'.repeat(257);
        const cases = [
            ['bad_json', '', 'an empty body'],
            ['bad_json', 'receiverUserId=p-nobody', 'a form'],
            ['bad_json', '{"receiverUserId":"p-nobody"', 'truncated JSON'],
            ['bad_json', '{"receiverUserId":"p-nobody"} x', 'trailing garbage'],
            ['bad_json', Buffer.from('{"receiverUserId":"\xff"}', 'latin1'), 'invalid UTF-8'],
            ['bad_json', '{"receiverUserId":"p","field1":"\\udc00"}', 'half a surrogate pair'],
            ['not_object', '[{"receiverUserId":"p-nobody"}]', 'an array'],
            ['not_object', '"p-nobody"', 'a string'],
            ['bad_field', '{"receiverUserId":{"id":"p"}}', 'receiverUserId an object'],
            ['bad_field', '{"receiverUserId":"p","field1":["x"]}', 'field1 an array'],
            ['bad_field', '{"receiverUserId":1.5}', 'receiverUserId not an integer'],
            ['bad_field', '{"type":true,"receiverUserId":"p"}', 'type a boolean'],
            ['bad_field', '{"type":"disconnect","userId":false}', 'userId a boolean'],
            ['missing_field', '{}', 'an empty object'],
            ['missing_field', '{"sponsorUserId":"system","field1":"x"}', 'no receiverUserId'],
            ['missing_field', '{"userId":"p"}', 'userId without type (a call needs receiverUserId)'],
            ['missing_field', '{"type":"disconnect"}', 'disconnect without userId'],
            ['missing_field', '{"type":"disconnect","receiverUserId":"p"}', 'disconnect names userId'],
            ['bad_id', '{"receiverUserId":""}', 'an empty receiverUserId'],
            ['bad_id', `{"receiverUserId":"${longId}"}`, 'a 257-byte receiverUserId'],
            ['bad_id', '{"type":"disconnect","userId":""}', 'an empty userId'],
            ['bad_id', '{"receiverUserId":"p","sponsorUserId":""}', 'an empty sponsorUserId'],
            ['unknown_type', '{"type":"dialing","receiverUserId":"p"}', 'a client message type'],
            ['unknown_type', '{"type":"kick","userId":"p"}', 'an unknown type'],
            ['unknown_type', '{"type":"Disconnect","userId":"p"}', 'disconnect in another case'],
        ];
        for (const [code, body, what] of cases) assertAnswer(await push(url, body), 400, failText(code), `${what} -> ${code}`);
    });

    test(`413 past signaling.max-message-size (${MAX_MESSAGE}); a body of exactly that size is read`, async () => {
        const fill = (n) => {
            const head = '{"receiverUserId":"p-nobody","field1":"';
            return `${head}${'x'.repeat(n - head.length - 2)}"}`;
        };
        assert.equal(fill(MAX_MESSAGE).length, MAX_MESSAGE);
        assertAnswer(await push(url, fill(MAX_MESSAGE)), 404, failText('peer_offline'), 'a body of the limit');
        assertAnswer(await push(url, fill(MAX_MESSAGE + 1)), 413, failText('message_too_large'), 'one byte more');
        assertAnswer(await push(url, ' '.repeat(64 * 1024)), 413, failText('message_too_large'), '64 KiB of spaces');
    });

    test('405 with Allow: GET, POST for other methods; GET keeps the WebSocket answers', async () => {
        for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']) {
            const res = await push(url, { receiverUserId: 'p-nobody' }, { method });
            const detail = `${method}: ${res.status} ${JSON.stringify(res.headers)} ${res.text}`;
            assert.equal(res.status, 405, detail);
            assert.equal(res.headers.allow, 'GET, POST', detail);
            assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8', detail);
            // HEAD gets the headers of the 405 without its body
            assert.equal(res.text, method === 'HEAD' ? '' : 'use GET for a WebSocket, POST for the push API\n', detail);
        }
        // a GET that is no handshake gets what it got before the push API
        const get = await httpRequest(url, { headers: { authorization: `Bearer ${KEY}` } });
        assert.equal(get.status, 400, get.text);
        assert.equal(get.text, NON_UPGRADE);
    });

    test('disconnect: both connections close with 4000, the answer counts them, and the user is offline after', async (t) => {
        const open = closeAfter(t);
        const [a, b] = await registerOnTwoThreads(srv, 'p-kick', open);
        const bystander = await register(srv.wsUrl, 'p-stays');
        open.push(bystander);

        const closes = [waitClose(a, 5000), waitClose(b, 5000)];
        assertAnswer(await push(url, { type: 'disconnect', userId: 'p-kick' }), 200, disconnectedText(2), 'disconnect p-kick');
        for (const [i, c] of (await Promise.all(closes)).entries()) {
            assert.deepEqual(c, { code: 4000, reason: GONE_REASON }, `connection ${i + 1} of p-kick`);
        }
        await waitPushOffline(url, 'p-kick');
        assertAnswer(await push(url, { type: 'disconnect', userId: 'p-kick' }), 200, disconnectedText(0), 'disconnect again');
        assertAnswer(await push(url, { type: 'disconnect', userId: 'p-never' }), 200, disconnectedText(0), 'a user never seen');
        // userId as a number, and other users are untouched
        const numeric = await register(srv.wsUrl, '4242');
        open.push(numeric);
        const closed = waitClose(numeric, 5000);
        assertAnswer(await push(url, { type: 'disconnect', userId: 4242 }), 200, disconnectedText(1), 'disconnect 4242');
        assert.deepEqual(await closed, { code: 4000, reason: GONE_REASON });
        assertAnswer(await push(url, { receiverUserId: 'p-stays' }), 200, deliveredText(1), 'the bystander');
        await assertCalledOnce(bystander, calledText({ sponsorUserId: '' }), 'the bystander');
        // the disconnected user may come back
        const back = await register(srv.wsUrl, 'p-kick');
        open.push(back);
        assertAnswer(await push(url, { receiverUserId: 'p-kick', field1: 'back' }), 200, deliveredText(1), 'p-kick back');
        await assertCalledOnce(back, calledText({ sponsorUserId: '', field1: 'back' }), 'p-kick back');
    });

    test('pushes on one kept-alive HTTP connection, and concurrent pushes: each answered exactly', async (t) => {
        const open = closeAfter(t);
        const [a, b] = await registerOnTwoThreads(srv, 'p-many', open);
        const N = 40;
        const got = [[], []];
        a.on('message', (d) => got[0].push(d.toString()));
        b.on('message', (d) => got[1].push(d.toString()));
        // one connection for several pushes (answers that wait for other threads included)
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        t.after(() => agent.destroy());
        const reused = [];
        for (let i = 0; i < 5; i++) {
            const res = await new Promise((resolve, reject) => {
                const req = http.request(url, { method: 'POST', agent, headers: { authorization: `Bearer ${KEY}` } }, (r) => {
                    const chunks = [];
                    r.on('data', (c) => chunks.push(c));
                    r.on('end', () => resolve({ status: r.statusCode, text: Buffer.concat(chunks).toString(), reused: req.reusedSocket }));
                    r.on('error', reject);
                });
                req.on('error', reject);
                req.setTimeout(5000, () => req.destroy(new Error('no answer within 5000 ms')));
                req.end(JSON.stringify({ receiverUserId: i % 2 ? 'p-nobody' : 'p-many', field1: `k${i}` }));
            });
            assert.equal(res.text, i % 2 ? failText('peer_offline') : deliveredText(2), `kept-alive push ${i}`);
            reused.push(res.reused);
        }
        assert.deepEqual(reused, [false, true, true, true, true], 'the pushes after the first reuse its connection');
        const keptAlive = [0, 2, 4].map((i) => calledText({ sponsorUserId: '', field1: `k${i}` }));
        await waitUntil(() => got[0].length >= 3 && got[1].length >= 3, { timeout: 5000, what: '3 called on each connection' });
        for (const list of got) assert.deepEqual(list.splice(0), keptAlive);

        const answers = await Promise.all(
            Array.from({ length: N }, (_, i) => push(url, { receiverUserId: 'p-many', field1: `n${i}` })),
        );
        for (const [i, res] of answers.entries()) assertAnswer(res, 200, deliveredText(2), `push ${i}`);
        await waitUntil(() => got[0].length >= N && got[1].length >= N, { timeout: 5000, what: `${N} called on each connection` });
        for (const list of got) {
            assert.deepEqual(
                [...list].sort(),
                Array.from({ length: N }, (_, i) => calledText({ sponsorUserId: '', field1: `n${i}` })).sort(),
            );
        }
    });

    test('a path without signaling.push-key-file answers a POST as before: 400, the non-upgrade answer', async () => {
        const plain = `${srv.url}/Plain`;
        const get = await httpRequest(plain);
        for (const [what, res] of [
            ['POST with the key', await push(plain, { receiverUserId: 'p-nobody' })],
            ['POST without a key', await push(plain, { receiverUserId: 'p-nobody' }, { headers: {} })],
            ['PUT', await push(plain, { receiverUserId: 'p-nobody' }, { method: 'PUT' })],
        ]) {
            assert.equal(res.status, 400, `${what}: ${res.status} ${res.text}`);
            assert.equal(res.text, NON_UPGRADE, what);
            assert.equal(res.text, get.text, `${what}: the same as a GET without upgrade`);
            assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8', what);
            assert.equal(res.headers['www-authenticate'], undefined, what);
            assert.equal(res.headers.allow, undefined, what);
        }
        assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);
    });
});

describe('push API across nodes on Redis', { timeout: 120000 }, () => {
    let keyFile;
    before(() => {
        keyFile = join(makeTempDir('h2o-signaling-push-'), 'push.key');
        writeFileSync(keyFile, `${KEY}\n`);
    });

    test('through node A: a push reaches the user on B (counted), a disconnect closes it there with 4000', { timeout: 30000 }, async (t) => {
        const open = closeAfter(t);
        const { nodes: [A, B] } = await startCluster(t, { n: 2, threads: 2, settings: [`signaling.push-key-file: ${keyFile}`] });
        const urlA = `${A.url}/WsService`;
        const onB = await register(B.wsUrl, 'x-remote');
        const bothA = await register(A.wsUrl, 'x-both');
        const bothB = await register(B.wsUrl, 'x-both');
        open.push(onB, bothA, bothB);

        const body = { receiverUserId: 'x-remote', sponsorUserId: 'backend', sponsorUserName: '系统', field1: 'from A' };
        assertAnswer(await push(urlA, body), 200, deliveredText(1), 'push through A to a user on B');
        await assertCalledOnce(onB, calledText(body), 'x-remote on B');
        assertAnswer(await push(urlA, { receiverUserId: 'x-both', field2: 'two' }), 200, deliveredText(2), 'one on A, one on B');
        const both = calledText({ sponsorUserId: '', field2: 'two' });
        await Promise.all([assertCalledOnce(bothA, both, 'x-both on A'), assertCalledOnce(bothB, both, 'x-both on B')]);
        assertAnswer(await push(urlA, { receiverUserId: 'x-nobody' }), 404, failText('peer_offline'), 'nobody on any node');

        const closeB = waitClose(onB, 5000);
        assertAnswer(await push(urlA, { type: 'disconnect', userId: 'x-remote' }), 200, disconnectedText(1), 'disconnect x-remote via A');
        assert.deepEqual(await closeB, { code: 4000, reason: GONE_REASON }, 'x-remote on B');
        const closesBoth = [waitClose(bothA, 5000), waitClose(bothB, 5000)];
        assertAnswer(await push(urlA, { type: 'disconnect', userId: 'x-both' }), 200, disconnectedText(2), 'disconnect x-both via A');
        for (const [i, c] of (await Promise.all(closesBoth)).entries()) {
            assert.deepEqual(c, { code: 4000, reason: GONE_REASON }, `x-both on ${i === 0 ? 'A' : 'B'}`);
        }
        await waitPushOffline(urlA, 'x-remote');
        await waitPushOffline(urlA, 'x-both');
        // B's push API is its own (same key file): the same answers from there
        assertAnswer(await push(`${B.url}/WsService`, { receiverUserId: 'x-remote' }), 404, failText('peer_offline'), 'via B');
    });

    test('a backend that hangs up while its push waits for another node: the late answer goes nowhere, the node goes on', { timeout: 30000 }, async (t) => {
        const open = closeAfter(t);
        const { nodes: [A, B] } = await startCluster(t, { n: 2, settings: [`signaling.push-key-file: ${keyFile}`] });
        const urlA = `${A.url}/WsService`;
        const onB = await register(B.wsUrl, 'h-remote');
        open.push(onB);
        // B stopped: its subscription stays, so A waits for B's count until signaling.redis-result-timeout (500 ms)
        process.kill(B.pid, 'SIGSTOP');
        try {
            const abandoned = await Promise.allSettled(
                Array.from({ length: 5 }, () => push(urlA, { receiverUserId: 'h-remote' }, { timeout: 100 })),
            );
            for (const r of abandoned) assert.equal(r.status, 'rejected', `answered within 100 ms: ${JSON.stringify(r.value?.text)}`);
            // past the deadline the answers come, for requests that are gone
            await new Promise((r) => setTimeout(r, 1000));
            assert.ok(A.alive(), `A exited: ${A.stderr()}`);
        } finally {
            process.kill(B.pid, 'SIGCONT');
        }
        await drain(onB, 100);
        await waitUntil(
            async () => (await push(urlA, { receiverUserId: 'h-remote', field1: 'after' })).text === deliveredText(1),
            { timeout: 5000, interval: 50, what: 'a push through A to reach h-remote on B again' },
        );
        assert.ok((await drain(onB, 200)).includes(calledText({ sponsorUserId: '', field1: 'after' })), 'h-remote got the push');
        assertAnswer(await push(urlA, { receiverUserId: 'h-nobody' }), 404, failText('peer_offline'), 'A answers as before');
    });

    test('Redis stopped: a push for a user only on another node answers 503 cluster_unavailable; local users still get theirs', { timeout: 30000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes: [A, B] } = await startCluster(t, { n: 2, settings: [`signaling.push-key-file: ${keyFile}`] });
        const urlA = `${A.url}/WsService`;
        const onA = await register(A.wsUrl, 'u-local');
        const onB = await register(B.wsUrl, 'u-remote');
        open.push(onA, onB);
        assertAnswer(await push(urlA, { receiverUserId: 'u-remote' }), 200, deliveredText(1), 'before the outage');
        await assertCalledOnce(onB, calledText({ sponsorUserId: '' }), 'u-remote before the outage');

        await redis.stop();
        let last;
        await waitUntil(
            async () => {
                last = await push(urlA, { receiverUserId: 'u-remote' });
                return last.status === 503;
            },
            { timeout: 5000, interval: 25, what: 'A to answer 503 for a user only on B' },
        ).catch((err) => {
            throw new Error(`${err.message}; last answer: ${last?.status} ${last?.text}`);
        });
        assertAnswer(last, 503, failText('cluster_unavailable'), 'push for u-remote during the outage');
        assertAnswer(await push(urlA, { receiverUserId: 'u-nobody' }), 503, failText('cluster_unavailable'), 'a user nobody holds');
        assertAnswer(
            await push(urlA, { type: 'disconnect', userId: 'u-remote' }),
            503,
            failText('cluster_unavailable'),
            'a disconnect for u-remote during the outage',
        );
        assertAnswer(await push(urlA, { receiverUserId: 'u-local', field1: 'l' }), 200, deliveredText(1), 'a user on A');
        await assertCalledOnce(onA, calledText({ sponsorUserId: '', field1: 'l' }), 'u-local during the outage');
        assert.equal(await noMessageWithin(onB, 200), true, 'u-remote got nothing during the outage');
        for (const n of [A, B]) assert.ok(n.alive(), `${n.nodeId} exited: ${n.stderr()}`);
    });
});
