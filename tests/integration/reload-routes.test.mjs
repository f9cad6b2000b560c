// What a reload changes in the routes (reload.md, the contract; test plan 2 and 3).
//   - paths added, removed and changed (file.dir, header.add) and a host added: a new connection
//     answers per the new file; a keep-alive connection opened before answers per the old one
//     (and is closed after that answer: test plan 2);
//   - directives: a socket accepted before keeps its settings (max-message-size), a new one gets
//     the new file's;
//   - a `signaling: ON` route the new file no longer has is retired: new upgrades on it get 404
//     (also on an HTTP connection kept alive from before), its sockets keep working until
//     `signaling.drain-timeout` (the retired route's own value, not the new file's; default 10000,
//     0 = at once) and then get close 1001, the other routes are untouched; turned back on it is a
//     fresh route (its old users offline there);
//   - a change of `signaling.auth.hmac-key-file` or `signaling.allowed-origins` closes that route's
//     sessions with 1008; any other change, or another route's, closes nothing.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { testKey, userToken } from '../lib/jwt.mjs';
import { httpRequest } from '../lib/http.mjs';
import { httpUpgrade } from '../lib/rawws.mjs';
import { expectReloaded, httpConn, logMark, requireReload, sighup, SLOW, waitOutcome, writeConfig } from '../lib/reload.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import {
    calledText,
    createConnectOkText,
    dial,
    dialingFailText,
    dialingOkText,
    nextText,
    register,
    request,
} from '../lib/sigclient.mjs';
import { closeAll, connect, ping, waitClose } from '../lib/wsclient.mjs';

const MARGIN = 3000 * SLOW; // how late a close may come after its deadline on a loaded machine
const CLOCK_SLACK = 50; // ms: Date.now() against the server's monotonic clock

before(requireReload);

const UPGRADE_HEADERS = {
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
};

/** Status of a fresh WebSocket handshake on `path` (socket closed afterwards). */
async function upgradeStatus(port, path, headers = {}) {
    const res = await httpUpgrade({ port, path, headers });
    res.socket.destroy();
    return res.status;
}

/** The ws:// URL of `path` on srv's plain listener. */
const on = (srv, path) => `ws://127.0.0.1:${srv.port}${path}`;

// ---------------------------------------------------------------- paths, hosts, headers

const www = {
    'www1/index.html': 'one\n',
    'www2/index.html': 'two\n',
    'www-new/index.html': 'new host\n',
};

/** Version 1 or 2 of a site: /static and / change, /old goes, /new and the host new.example come. */
const site = (version) => (vars) => {
    const v1 = version === 1;
    return `listen: {host: 127.0.0.1, port: ${vars.port}}
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
      /static:
        file.dir: ${vars.dir}/${v1 ? 'www1' : 'www2'}
${v1 ? `      /old:\n        file.dir: ${vars.dir}/www1\n` : `      /new:\n        file.dir: ${vars.dir}/www2\n`}      /:
        file.dir: ${vars.dir}/www1
        header.add: "X-Config: ${v1 ? 'one' : 'two'}"
${v1 ? '' : `  "new.example":\n    paths:\n      /:\n        file.dir: ${vars.dir}/www-new\n`}`;
};

test('paths added, removed and changed, a header and a host: new connections see the new file', { timeout: 30000 * SLOW }, async (t) => {
    const srv = await startServer({ config: site(1), files: www });
    t.after(() => srv.stop('SIGKILL'));
    const get = (path, headers) => httpRequest(`${srv.url}${path}`, { headers });
    assert.deepEqual([(await get('/static/')).text, (await get('/old/')).status, (await get('/new/')).status], ['one\n', 200, 404]);
    assert.equal((await get('/', { host: 'new.example' })).text, 'one\n', 'before: new.example falls back to the first host');
    const a = await register(srv.wsUrl, 'paths-a');
    t.after(() => closeAll([a]));

    await expectReloaded(srv, site(2), { generation: 2 });

    const st = await get('/static/');
    assert.deepEqual([st.status, st.text], [200, 'two\n'], 'file.dir changed');
    assert.equal((await get('/old/')).status, 404, 'a removed path');
    const added = await get('/new/');
    assert.deepEqual([added.status, added.text], [200, 'two\n'], 'an added path');
    assert.equal((await get('/')).headers['x-config'], 'two', 'header.add changed');
    const host = await get('/', { host: 'new.example' });
    assert.deepEqual([host.status, host.text], [200, 'new host\n'], 'an added host');
    // the signaling route is the same host + path: it kept its user
    const b = await register(srv.wsUrl, 'paths-b');
    t.after(() => closeAll([b]));
    assert.equal(await dial(b, { receiverUserId: 'paths-a', id: 1 }), dialingOkText(1, 'paths-a', 1));
    assert.equal(await nextText(a), calledText({ sponsorUserId: 'paths-b' }));
});

test('an HTTP/1.1 connection kept alive from before answers per the old file, then is closed', { timeout: 30000 * SLOW }, async (t) => {
    const srv = await startServer({ config: site(1), files: www });
    t.after(() => srv.stop('SIGKILL'));
    const conn = await httpConn(srv.port);
    t.after(() => conn.destroy());
    const first = await conn.request('/static/');
    assert.deepEqual([first.status, first.text, first.headers['x-config']], [200, 'one\n', undefined]);
    assert.equal((await conn.request('/')).headers['x-config'], 'one');

    await expectReloaded(srv, site(2), { generation: 2 });

    assert.equal(conn.isClosed(), false, 'an idle keep-alive connection is not cut by the reload');
    const after = await conn.request('/static/');
    assert.deepEqual([after.status, after.text], [200, 'one\n'], 'the connection keeps the settings it was accepted with');
    // test plan 2: "an old keep-alive connection is closed after at most one more response"
    await Promise.race([
        conn.closed,
        new Promise((_, reject) =>
            setTimeout(() => reject(new Error('the old keep-alive connection was not closed after its response')), 3000 * SLOW),
        ),
    ]);
    assert.equal((await httpRequest(`${srv.url}/static/`)).text, 'two\n', 'a new connection gets the new file');
});

// ---------------------------------------------------------------- directives

test('a socket accepted before a reload keeps its max-message-size; a new one gets the new value', { timeout: 30000 * SLOW }, async (t) => {
    const cfg = (settings) => (vars) => signalingConfig(vars, { settings });
    const srv = await startServer({ config: cfg([]) });
    t.after(() => srv.stop('SIGKILL'));
    const receiver = await register(srv.wsUrl, 'mm-receiver');
    const oldSock = await register(srv.wsUrl, 'mm-old');
    t.after(() => closeAll([receiver, oldSock]));

    await expectReloaded(srv, cfg(['signaling.max-message-size: 1024']), { generation: 2 });

    const big = 'x'.repeat(3000); // above the new 1024, far below the default 65536
    assert.equal(await dial(oldSock, { receiverUserId: 'mm-receiver', field1: big, id: 1 }), dialingOkText(1, 'mm-receiver', 1));
    assert.equal(await nextText(receiver), calledText({ sponsorUserId: 'mm-old', field1: big }));
    const newSock = await register(srv.wsUrl, 'mm-new');
    t.after(() => closeAll([newSock]));
    newSock.send(JSON.stringify({ type: 'dialing', receiverUserId: 'mm-receiver', field1: big, id: 2 }));
    assert.equal((await waitClose(newSock, 5000 * SLOW)).code, 1009, 'the new socket is closed for a message over 1024 bytes');
    await ping(oldSock);
});

// ---------------------------------------------------------------- retiring a route

const DRAIN = 1000 * SLOW;

/**
 * /WsService, /Other (signaling, `otherDrain` when given: its drain-timeout; absent: no line) and a
 * static root; `other: false` leaves /Other out, `otherPath` renames it; `global` are top-level lines.
 */
const routes =
    ({ other = true, otherPath = '/Other', otherDrain, global = [] } = {}) =>
    (vars) =>
        signalingConfig(vars, {
            global,
            morePaths: other
                ? `      ${otherPath}:\n        signaling: ON\n` +
                  (otherDrain === undefined ? '' : `        signaling.drain-timeout: ${otherDrain}\n`)
                : '',
            fileDir: `${vars.dir}/www`,
        });
const files = { 'www/index.html': 'root\n' };

test(
    `a retired route: new upgrades get 404, its sockets work until drain-timeout (${DRAIN} ms) then get 1001; others untouched`,
    { timeout: 30000 * SLOW },
    async (t) => {
        const srv = await startServer({ config: routes({ otherDrain: DRAIN }), files });
        t.after(() => srv.stop('SIGKILL'));
        const w1 = await register(srv.wsUrl, 'w1');
        const w2 = await register(srv.wsUrl, 'w2');
        const o1 = await register(on(srv, '/Other'), 'o1');
        const o2 = await register(on(srv, '/Other'), 'o2');
        t.after(() => closeAll([w1, w2, o1, o2]));
        const closes = [o1, o2].map((ws) => waitClose(ws, DRAIN + MARGIN + 10000 * SLOW).then((c) => ({ ...c, at: Date.now() })));
        let wClosed = null;
        for (const ws of [w1, w2]) ws.on('close', (code) => (wClosed ??= code));
        const kept = await httpConn(srv.port); // an HTTP connection from before the reload
        t.after(() => kept.destroy());
        assert.equal((await kept.request('/')).text, 'root\n');

        // the new file has no /Other; its own drain-timeout (0, global) is not the retired route's
        const mark = logMark(srv);
        const hupAt = Date.now();
        writeConfig(srv, routes({ other: false, global: ['signaling.drain-timeout: 0'] }));
        sighup(srv);
        const o = await waitOutcome(srv, { since: mark });
        assert.equal(o.ok, true, `reload: ${o.line}\n${o.output}`);
        assert.equal(o.generation, 2);

        assert.equal(await upgradeStatus(srv.port, '/Other'), 404, 'a new upgrade on the retired route');
        const viaKept = await kept.request('/Other', { headers: UPGRADE_HEADERS });
        assert.equal(viaKept.status, 404, 'an upgrade on the retired route over a connection kept from before');
        // during the drain its sockets still work
        assert.equal(await dial(o1, { receiverUserId: 'o2', id: 'drain' }), dialingOkText('drain', 'o2', 1));
        assert.equal(await nextText(o2), calledText({ sponsorUserId: 'o1' }));
        const inDrain = Date.now() - hupAt;

        const got = await Promise.all(closes);
        assert.deepEqual(got.map((c) => c.code), [1001, 1001], 'each socket of the retired route gets 1001');
        for (const c of got) {
            const after = c.at - hupAt;
            assert.ok(after >= DRAIN - CLOCK_SLACK, `closed ${after} ms after SIGHUP, before the route's drain-timeout ${DRAIN}`);
            assert.ok(after <= DRAIN + MARGIN, `closed ${after} ms after SIGHUP: drain-timeout is ${DRAIN}`);
        }
        t.diagnostic(`the retired route worked ${inDrain} ms after SIGHUP; closed at ${got.map((c) => c.at - hupAt).join(', ')} ms`);

        // the other route is untouched
        assert.equal(wClosed, null, 'the sockets of /WsService stay');
        assert.equal(await dial(w1, { receiverUserId: 'w2', id: 1 }), dialingOkText(1, 'w2', 1));
        assert.equal(await nextText(w2), calledText({ sponsorUserId: 'w1' }));
        assert.equal(await upgradeStatus(srv.port, '/WsService'), 101);
    },
);

test('drain-timeout 0 closes at once; back on, the route is fresh (its old users offline); a renamed one too', { timeout: 30000 * SLOW }, async (t) => {
    const srv = await startServer({ config: routes({ otherDrain: 0 }), files });
    t.after(() => srv.stop('SIGKILL'));
    const w = await register(srv.wsUrl, 'keep-w');
    const o1 = await register(on(srv, '/Other'), 'old-o1');
    const o2 = await register(on(srv, '/Other'), 'old-o2');
    t.after(() => closeAll([w, o1, o2]));

    const hupAt = Date.now();
    await expectReloaded(srv, routes({ other: false }), { generation: 2 });
    const got = await Promise.all([o1, o2].map((ws) => waitClose(ws, 2000 * SLOW)));
    assert.deepEqual(got.map((c) => c.code), [1001, 1001]);
    t.diagnostic(`drain-timeout 0: closed within ${Date.now() - hupAt} ms of SIGHUP`);
    assert.equal(await upgradeStatus(srv.port, '/Other'), 404);

    // back on: a fresh route (old users offline there), working both ways
    await expectReloaded(srv, routes({ otherDrain: 0 }), { generation: 3 });
    const p = await register(on(srv, '/Other'), 'new-p');
    const q = await register(on(srv, '/Other'), 'new-q');
    t.after(() => closeAll([p, q]));
    assert.equal(await dial(p, { receiverUserId: 'old-o1', id: 'x' }), dialingFailText('peer_offline', 'x'));
    assert.equal(await dial(p, { receiverUserId: 'new-q', id: 1 }), dialingOkText(1, 'new-q', 1));
    assert.equal(await nextText(q), calledText({ sponsorUserId: 'new-p' }));
    assert.equal(await dial(q, { receiverUserId: 'new-p', id: 2 }), dialingOkText(2, 'new-p', 1));
    assert.equal(await nextText(p), calledText({ sponsorUserId: 'new-q' }));

    // renamed: /Other retires (p and q get 1001 at once), /Renamed is a fresh route
    await expectReloaded(srv, routes({ otherPath: '/Renamed', otherDrain: 0 }), { generation: 4 });
    assert.deepEqual((await Promise.all([p, q].map((ws) => waitClose(ws, 2000 * SLOW)))).map((c) => c.code), [1001, 1001]);
    const r = await register(on(srv, '/Renamed'), 'ren-r');
    t.after(() => closeAll([r]));
    assert.equal(await dial(r, { receiverUserId: 'new-p', id: 'y' }), dialingFailText('peer_offline', 'y'));
    assert.equal(await upgradeStatus(srv.port, '/Other'), 404);

    // /WsService was there all along: same socket, same user
    const w2 = await register(srv.wsUrl, 'keep-w2');
    t.after(() => closeAll([w2]));
    assert.equal(await dial(w2, { receiverUserId: 'keep-w', id: 3 }), dialingOkText(3, 'keep-w', 1));
    assert.equal(await nextText(w), calledText({ sponsorUserId: 'keep-w2' }));
});

test('drain-timeout defaults to 10000 ms', { timeout: 40000 * SLOW }, async (t) => {
    const srv = await startServer({ config: routes(), files });
    t.after(() => srv.stop('SIGKILL'));
    const o = await register(on(srv, '/Other'), 'default-drain');
    t.after(() => closeAll([o]));
    const closed = waitClose(o, 10000 + MARGIN + 5000 * SLOW).then((c) => ({ ...c, at: Date.now() }));
    const hupAt = Date.now();
    await expectReloaded(srv, routes({ other: false }), { generation: 2 });
    await ping(o); // still open and answering after the reload
    const c = await closed;
    const after = c.at - hupAt;
    t.diagnostic(`closed ${after} ms after SIGHUP`);
    assert.equal(c.code, 1001);
    assert.ok(after >= 10000 - CLOCK_SLACK && after <= 10000 + MARGIN, `closed ${after} ms after SIGHUP, default drain-timeout is 10000`);
});

// ---------------------------------------------------------------- auth and origins

const KEY_A = testKey(48);
const KEY_B = testKey(48);
const ORIGIN_A = 'https://a.example';
const ORIGIN_B = 'https://b.example';

/** /WsService with `ws` lines (auth, origins, ...) and /Other plain. */
const trust = (wsLines = []) => (vars) =>
    signalingConfig(vars, { settings: wsLines, morePaths: '      /Other:\n        signaling: ON\n' });

/** A ws client on srv's /WsService registered as `userId` with `token` (if any) and `origin` (if any). */
async function join(srv, userId, { token, origin } = {}) {
    const ws = await connect(srv.wsUrl, origin ? { origin } : {});
    const reply = await request(ws, { type: 'create_connect', sponsorUserId: userId, auth: token, id: 'reg' });
    assert.equal(reply, createConnectOkText('reg', userId), `create_connect ${userId}`);
    return ws;
}

/** Asserts every socket in `sockets` gets close `code` within a few seconds. */
async function assertClosed(sockets, code, what) {
    const got = await Promise.all(sockets.map((ws) => waitClose(ws, 3000 * SLOW).catch((err) => ({ code: err.message }))));
    assert.deepEqual(got.map((c) => c.code), sockets.map(() => code), what);
}

test('changing auth.hmac-key-file or allowed-origins closes that route\'s sessions with 1008, and nothing else', { timeout: 60000 * SLOW }, async (t) => {
    const srv = await startServer({ config: trust(), files: { 'key-a.txt': `${KEY_A}\n`, 'key-b.txt': `${KEY_B}\n` } });
    t.after(() => srv.stop('SIGKILL'));
    const all = [];
    t.after(() => closeAll(all));
    const keep = (ws) => (all.push(ws), ws);

    const a = keep(await join(srv, 'tr-a'));
    const b = keep(await join(srv, 'tr-b'));
    const unregistered = keep(await connect(srv.wsUrl));
    await ping(unregistered);
    const other = keep(await register(on(srv, '/Other'), 'tr-other'));
    let otherClosed = null;
    other.on('close', (code) => (otherClosed = code));

    // a change that is neither: nothing is closed
    await expectReloaded(srv, trust(['signaling.rate-limit: 500']), { generation: 2, what: 'rate-limit change' });
    assert.equal(await dial(a, { receiverUserId: 'tr-b', id: 1 }), dialingOkText(1, 'tr-b', 1));
    assert.equal(await nextText(b), calledText({ sponsorUserId: 'tr-a' }));
    await ping(unregistered);

    // auth turned on: every session of /WsService, registered or not, gets 1008
    const KEYFILE_A = 'signaling.auth.hmac-key-file: key-a.txt';
    await expectReloaded(srv, trust([KEYFILE_A]), { generation: 3, what: 'auth on' });
    await assertClosed([a, b, unregistered], 1008, 'auth turned on closes the route\'s sessions');
    const noToken = keep(await connect(srv.wsUrl));
    const refused = JSON.parse(await request(noToken, { type: 'create_connect', sponsorUserId: 'tr-c', id: 'r' }));
    assert.deepEqual([refused.ok, refused.code], [false, 'auth_required'], 'new connections follow the new file');
    const t1 = keep(await join(srv, 'tr-c', { token: userToken(KEY_A, 'tr-c') }));

    // another key file
    await expectReloaded(srv, trust(['signaling.auth.hmac-key-file: key-b.txt']), { generation: 4, what: 'key file changed' });
    await assertClosed([t1, noToken], 1008, 'a new hmac-key-file closes the route\'s sessions');
    const stale = keep(await connect(srv.wsUrl));
    const staleReply = JSON.parse(
        await request(stale, { type: 'create_connect', sponsorUserId: 'tr-c', auth: userToken(KEY_A, 'tr-c'), id: 'r' }),
    );
    assert.deepEqual([staleReply.ok, staleReply.code], [false, 'auth_invalid'], 'a token of the old key is refused');
    const t2 = keep(await join(srv, 'tr-c', { token: userToken(KEY_B, 'tr-c') }));

    // origins set
    const withOrigins = (o) => trust(['signaling.auth.hmac-key-file: key-b.txt', `signaling.allowed-origins: ${o}`]);
    await expectReloaded(srv, withOrigins(ORIGIN_A), { generation: 5, what: 'allowed-origins set' });
    await assertClosed([t2, stale], 1008, 'allowed-origins set closes the route\'s sessions');
    assert.equal(await upgradeStatus(srv.port, '/WsService', { Origin: ORIGIN_B }), 403);
    const t3 = keep(await join(srv, 'tr-c', { token: userToken(KEY_B, 'tr-c'), origin: ORIGIN_A }));

    // origins changed
    await expectReloaded(srv, withOrigins(ORIGIN_B), { generation: 6, what: 'allowed-origins changed' });
    await assertClosed([t3], 1008, 'allowed-origins changed closes the route\'s sessions');
    assert.equal(await upgradeStatus(srv.port, '/WsService', { Origin: ORIGIN_A }), 403);
    const t4 = keep(await join(srv, 'tr-c', { token: userToken(KEY_B, 'tr-c'), origin: ORIGIN_B }));

    // both removed: a change too
    await expectReloaded(srv, trust(), { generation: 7, what: 'auth and origins removed' });
    await assertClosed([t4], 1008, 'removing auth and origins closes the route\'s sessions');
    const plain = keep(await join(srv, 'tr-d'));

    // the other route saw none of it
    assert.equal(otherClosed, null, 'the sessions of /Other stay');
    const caller = keep(await register(on(srv, '/Other'), 'tr-caller'));
    assert.equal(await dial(caller, { receiverUserId: 'tr-other', id: 9 }), dialingOkText(9, 'tr-other', 1));
    assert.equal(await nextText(other), calledText({ sponsorUserId: 'tr-caller' }));
    await ping(plain);
});
