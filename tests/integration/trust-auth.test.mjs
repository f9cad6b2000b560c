// Token authentication (issue 4): `signaling.auth.hmac-key-file` turns on HS256 JWTs at
// create_connect. Every token source (the `auth` field, `?access_token=`, a
// `Sec-WebSocket-Protocol` list `access_token, <jwt>`) and their order, every refusal code
// (auth_required, auth_invalid, auth_expired, identity_mismatch), the `name` claim, the close
// at `exp` with and without a refresh, tokens kept out of the logs, the level-1 behaviour
// with auth off, and the key file's config errors.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import { b64url, nowSec, signJwt, testKey, userToken } from '../lib/jwt.mjs';
import { connectRaw } from '../lib/rawws.mjs';
import { atLevel, configErrors, how, runConfigTest, signalingConfig, startServer } from '../lib/server.mjs';
import {
    calledText,
    createConnectOkText,
    dial,
    dialingFailText,
    dialingOkText,
    nextText,
    rawNextText,
    register,
    request,
    waitPeerOffline,
} from '../lib/sigclient.mjs';
import { closeAll, connect, ping, waitClose } from '../lib/wsclient.mjs';

const KEY = testKey(48);
const OTHER_KEY = testKey(48);
const DIRECTIVE = 'signaling.auth.hmac-key-file';

/** The key at path level; the file ends with a newline that is not part of the key. */
const authConfig = (vars) => signalingConfig(vars, { settings: [`${DIRECTIVE}: key.txt`] });

// every token handed to the server, for the log check at the end
const tokensUsed = new Set();

/** Records `token` as used and returns it. */
function used(token) {
    tokensUsed.add(token);
    return token;
}

/** An HS256 token for `sub` under KEY (recorded). */
function tok(sub, opts) {
    return used(userToken(KEY, sub, opts));
}

/** Asserts `reply` is the create_connect refusal `code` (with `id`, or none), and names no token. */
function assertRefused(reply, code, id, token) {
    const m = JSON.parse(reply);
    const want = { type: 'create_connect_response', ok: false, code };
    if (id !== undefined) want.id = id;
    assert.deepEqual(
        { type: m.type, ok: m.ok, code: m.code, ...(m.id !== undefined ? { id: m.id } : {}) },
        want,
        `expected a ${code} refusal, got ${reply}`,
    );
    assert.equal(typeof m.msg, 'string', `msg is a string: ${reply}`);
    assert.ok(m.msg.length > 0, `msg says why: ${reply}`);
    assert.equal(m.data, undefined, `a refusal carries no data: ${reply}`);
    if (token) assert.ok(!reply.includes(token), 'the refusal does not echo the token');
}

/** A ws client registered as `userId` with a token in `auth` (reply checked byte for byte). */
async function authRegister(url, userId, { token, ttl, name, sponsorUserName, id = 'reg', connectOpts } = {}) {
    const t = token ?? tok(typeof userId === 'number' ? userId : String(userId), { ttl, name });
    const ws = await connect(url, connectOpts);
    try {
        const msg = { type: 'create_connect', sponsorUserId: userId, sponsorUserName, auth: t, id };
        const reply = await request(ws, msg);
        assert.equal(reply, createConnectOkText(id, String(userId)), `create_connect ${userId} with a valid token`);
        return ws;
    } catch (err) {
        ws.terminate();
        throw err;
    }
}

/** Sends a create_connect (without `auth` unless given) on an open client and returns the reply text. */
function createConnect(ws, userId, { auth, id = 'cc', sponsorUserName } = {}) {
    return request(ws, { type: 'create_connect', sponsorUserId: userId, sponsorUserName, auth, id });
}

/** Asserts that `from` can reach `userId`, whose connection `to` receives the `called`. */
async function assertReachable(from, fromId, to, userId, field1 = 'ping') {
    assert.equal(await dial(from, { receiverUserId: userId, field1, id: 'reach' }), dialingOkText('reach', userId, 1));
    assert.equal(await nextText(to), calledText({ sponsorUserId: fromId, field1 }));
}

/** Resolves once the wall clock reaches `ms` (epoch milliseconds): a point in a token's lifetime. */
async function untilTime(ms) {
    const left = ms - Date.now();
    if (left > 0) await delay(left);
}

describe('authentication on: token sources, refusals, name, expiry, logs', { timeout: 120000 }, () => {
    let srv;
    let watcher; // an authenticated user that dials the others
    before(async () => {
        srv = await startServer({ threads: 1, config: authConfig, files: { 'key.txt': `${KEY}\n` } });
        watcher = await authRegister(srv.wsUrl, 'watcher');
    });
    after(async () => {
        closeAll([watcher]);
        await srv?.stop();
    });

    describe('token sources', () => {
        test('the auth field of create_connect: registered, reachable by others', async (t) => {
            const ws = await authRegister(srv.wsUrl, 'src-auth');
            t.after(() => closeAll([ws]));
            await assertReachable(watcher, 'watcher', ws, 'src-auth');
        });

        test('?access_token=<jwt> in the handshake URL: a create_connect without auth is accepted', async (t) => {
            const ws = await connect(`${srv.wsUrl}?access_token=${tok('src-query')}`);
            t.after(() => closeAll([ws]));
            assert.equal(await createConnect(ws, 'src-query'), createConnectOkText('cc', 'src-query'));
            await assertReachable(watcher, 'watcher', ws, 'src-query');
        });

        test('?access_token= among other query parameters', async (t) => {
            const ws = await connect(`${srv.wsUrl}?v=2&access_token=${tok('src-query2')}&lang=zh`);
            t.after(() => closeAll([ws]));
            assert.equal(await createConnect(ws, 'src-query2'), createConnectOkText('cc', 'src-query2'));
        });

        test("Sec-WebSocket-Protocol: a ws client made with protocols ['access_token', jwt] opens and authenticates", async (t) => {
            const ws = await connect(srv.wsUrl, { protocols: ['access_token', tok('src-proto')] });
            t.after(() => closeAll([ws]));
            assert.equal(ws.protocol, 'access_token', 'the subprotocol the 101 selected');
            assert.equal(await createConnect(ws, 'src-proto'), createConnectOkText('cc', 'src-proto'));
            await assertReachable(watcher, 'watcher', ws, 'src-proto');
        });

        test('Sec-WebSocket-Protocol: the 101 answers exactly `access_token`, never the token', async (t) => {
            const token = tok('src-proto-raw');
            const raw = await connectRaw({
                port: srv.port,
                headers: { 'Sec-WebSocket-Protocol': `access_token, ${token}` },
            });
            t.after(() => raw.destroy());
            assert.equal(raw.handshake.headers['sec-websocket-protocol'], 'access_token');
            assert.ok(!raw.handshake.head.includes(token), 'the response head does not carry the token');
            raw.sendText(JSON.stringify({ type: 'create_connect', sponsorUserId: 'src-proto-raw', id: 1 }));
            assert.equal(await rawNextText(raw), createConnectOkText(1, 'src-proto-raw'));
        });

        test('order: the auth field wins over ?access_token (a bad auth is refused even with a good query token)', async (t) => {
            const forged = used(signJwt({ sub: 'ord-a', exp: nowSec() + 300 }, OTHER_KEY));
            const ws = await connect(`${srv.wsUrl}?access_token=${tok('ord-a')}`);
            t.after(() => closeAll([ws]));
            assertRefused(await createConnect(ws, 'ord-a', { auth: forged }), 'auth_invalid', 'cc', forged);
            // and a good auth for another user than the query's token is what counts
            assert.equal(
                await createConnect(ws, 'ord-b', { auth: tok('ord-b'), id: 2 }),
                createConnectOkText(2, 'ord-b'),
            );
        });

        test('order: ?access_token wins over Sec-WebSocket-Protocol', async (t) => {
            const raw = await connectRaw({
                port: srv.port,
                path: `/WsService?access_token=${tok('ord-q')}`,
                headers: { 'Sec-WebSocket-Protocol': `access_token, ${tok('ord-p')}` },
            });
            t.after(() => raw.destroy());
            raw.sendText(JSON.stringify({ type: 'create_connect', sponsorUserId: 'ord-p', id: 1 }));
            assertRefused(await rawNextText(raw), 'identity_mismatch', 1);
            raw.sendText(JSON.stringify({ type: 'create_connect', sponsorUserId: 'ord-q', id: 2 }));
            assert.equal(await rawNextText(raw), createConnectOkText(2, 'ord-q'));
        });

        test('sub may be a JSON integer: it means its decimal text, as user ids do', async (t) => {
            const token = used(signJwt({ sub: 1122, exp: nowSec() + 300 }, KEY));
            const a = await authRegister(srv.wsUrl, 1122, { token });
            const b = await authRegister(srv.wsUrl, '1122', { token, id: 'reg2' });
            t.after(() => closeAll([a, b]));
            assert.equal(await dial(watcher, { receiverUserId: '1122', id: 'n' }), dialingOkText('n', '1122', 2));
        });

        test('an nbf in the past is accepted', async (t) => {
            const token = used(signJwt({ sub: 'nbf-past', exp: nowSec() + 300, nbf: nowSec() - 60 }, KEY));
            const ws = await authRegister(srv.wsUrl, 'nbf-past', { token });
            closeAll([ws]);
        });
    });

    describe('refusals', () => {
        test('auth_required: no token anywhere; the connection stays open without an identity', async (t) => {
            const ws = await connect(srv.wsUrl);
            t.after(() => closeAll([ws]));
            assertRefused(await createConnect(ws, 'req-a'), 'auth_required', 'cc');
            // it cannot dial, and nobody is registered under the id it claimed
            const r = JSON.parse(await dial(ws, { receiverUserId: 'watcher', id: 'd' }));
            assert.equal(r.type, 'dialing_response');
            assert.equal(r.code, 'not_registered');
            assert.equal(r.id, 'd');
            assert.equal(await dial(watcher, { receiverUserId: 'req-a', id: 'p' }), dialingFailText('peer_offline', 'p'));
            await ping(ws);
        });

        test('auth_required is answered also when the create_connect has no id', async (t) => {
            const ws = await connect(srv.wsUrl);
            t.after(() => closeAll([ws]));
            ws.send(JSON.stringify({ type: 'create_connect', sponsorUserId: 'req-noid' }));
            assertRefused(await nextText(ws), 'auth_required', undefined);
        });

        test('auth_required: a null auth counts as absent', async (t) => {
            const ws = await connect(srv.wsUrl);
            t.after(() => closeAll([ws]));
            assertRefused(await createConnect(ws, 'req-null', { auth: null }), 'auth_required', 'cc');
        });

        const now = nowSec();
        const invalid = [
            ['signed with another key', () => signJwt({ sub: 'inv', exp: now + 300 }, OTHER_KEY)],
            ['signed with the key plus its trailing newline', () => signJwt({ sub: 'inv', exp: now + 300 }, `${KEY}\n`)],
            ['alg none, empty signature', () => signJwt({ sub: 'inv', exp: now + 300 }, KEY, { alg: 'none' })],
            [
                'alg none with a valid HS256 signature',
                () => signJwt({ sub: 'inv', exp: now + 300 }, KEY, { alg: 'none', hmac: 'HS256' }),
            ],
            ['alg HS256 in lower case', () => signJwt({ sub: 'inv', exp: now + 300 }, KEY, { alg: 'hs256', hmac: 'HS256' })],
            ['alg HS512', () => signJwt({ sub: 'inv', exp: now + 300 }, KEY, { alg: 'HS512' })],
            ['no alg in the header', () => signJwt({ sub: 'inv', exp: now + 300 }, KEY, { header: { alg: undefined }, hmac: 'HS256' })],
            ['a crit header', () => signJwt({ sub: 'inv', exp: now + 300 }, KEY, { header: { crit: ['exp'] } })],
            ['payload altered after signing', () => {
                const good = signJwt({ sub: 'watcher', exp: now + 300 }, KEY);
                const [h, , s] = good.split('.');
                return `${h}.${b64url(JSON.stringify({ sub: 'inv', exp: now + 300 }))}.${s}`;
            }],
            ['signature truncated', () => signJwt({ sub: 'inv', exp: now + 300 }, KEY).slice(0, -2)],
            ['not a JWT at all', () => 'not-a-token'],
            ['two parts', () => signJwt({ sub: 'inv', exp: now + 300 }, KEY).split('.').slice(0, 2).join('.')],
            ['four parts', () => `${signJwt({ sub: 'inv', exp: now + 300 }, KEY)}.x`],
            ['base64 with padding and + /', () => signJwt({ sub: 'inv', exp: now + 300 }, KEY).replace(/-/g, '+') + '=='],
            ['nbf in the future', () => signJwt({ sub: 'inv', exp: now + 600, nbf: now + 300 }, KEY)],
            ['no sub', () => signJwt({ exp: now + 300 }, KEY)],
            ['no exp', () => signJwt({ sub: 'inv' }, KEY)],
            ['an empty sub', () => signJwt({ sub: '', exp: now + 300 }, KEY)],
            ['sub an object', () => signJwt({ sub: { id: 'inv' }, exp: now + 300 }, KEY)],
            ['exp a string', () => signJwt({ sub: 'inv', exp: String(now + 300) }, KEY)],
            ['name a number', () => signJwt({ sub: 'inv', exp: now + 300, name: 7 }, KEY)],
            ['the payload not JSON', () => signJwt(null, KEY, { payloadText: '{"sub":"inv",' })],
            ['the payload a JSON array', () => signJwt(null, KEY, { payloadText: '["inv"]' })],
        ];
        for (const [what, make] of invalid) {
            test(`auth_invalid: ${what}`, async (t) => {
                const token = used(make());
                const ws = await connect(srv.wsUrl);
                t.after(() => closeAll([ws]));
                assertRefused(await createConnect(ws, 'inv', { auth: token }), 'auth_invalid', 'cc', token);
                const r = JSON.parse(await dial(ws, { receiverUserId: 'watcher' }));
                assert.equal(r.code, 'not_registered', 'the refused connection has no identity');
            });
        }

        test('auth_invalid from the handshake sources too (?access_token, Sec-WebSocket-Protocol)', async (t) => {
            const forged = used(signJwt({ sub: 'inv-hs', exp: nowSec() + 300 }, OTHER_KEY));
            const q = await connect(`${srv.wsUrl}?access_token=${forged}`);
            const p = await connect(srv.wsUrl, { protocols: ['access_token', forged] });
            t.after(() => closeAll([q, p]));
            assertRefused(await createConnect(q, 'inv-hs'), 'auth_invalid', 'cc', forged);
            assertRefused(await createConnect(p, 'inv-hs'), 'auth_invalid', 'cc', forged);
        });

        test('auth_expired: exp in the past, and exp equal to now', async (t) => {
            const old = used(signJwt({ sub: 'exp-old', exp: nowSec() - 60 }, KEY));
            const edge = used(signJwt({ sub: 'exp-old', exp: nowSec() }, KEY));
            const ws = await connect(srv.wsUrl);
            t.after(() => closeAll([ws]));
            assertRefused(await createConnect(ws, 'exp-old', { auth: old }), 'auth_expired', 'cc', old);
            assertRefused(await createConnect(ws, 'exp-old', { auth: edge, id: 2 }), 'auth_expired', 2, edge);
            assert.equal(await dial(watcher, { receiverUserId: 'exp-old', id: 'p' }), dialingFailText('peer_offline', 'p'));
        });

        test('auth_expired from ?access_token', async (t) => {
            const old = used(signJwt({ sub: 'exp-q', exp: nowSec() - 60 }, KEY));
            const ws = await connect(`${srv.wsUrl}?access_token=${old}`);
            t.after(() => closeAll([ws]));
            assertRefused(await createConnect(ws, 'exp-q'), 'auth_expired', 'cc', old);
        });

        test('identity_mismatch: sponsorUserId other than the token sub; the claimed id stays unregistered', async (t) => {
            const token = tok('alice');
            const ws = await connect(srv.wsUrl);
            t.after(() => closeAll([ws]));
            assertRefused(await createConnect(ws, 'mallory', { auth: token }), 'identity_mismatch', 'cc', token);
            assert.equal(await dial(watcher, { receiverUserId: 'mallory', id: 'p' }), dialingFailText('peer_offline', 'p'));
            const r = JSON.parse(await dial(ws, { receiverUserId: 'watcher' }));
            assert.equal(r.code, 'not_registered');
        });

        test('identity_mismatch also for a handshake token (?access_token of another user)', async (t) => {
            const ws = await connect(`${srv.wsUrl}?access_token=${tok('alice2')}`);
            t.after(() => closeAll([ws]));
            assertRefused(await createConnect(ws, 'mallory2'), 'identity_mismatch', 'cc');
        });

        test('after a refusal the same connection can authenticate with a valid token', async (t) => {
            const ws = await connect(srv.wsUrl);
            t.after(() => closeAll([ws]));
            assertRefused(await createConnect(ws, 'retry'), 'auth_required', 'cc');
            assert.equal(await createConnect(ws, 'retry', { auth: tok('retry'), id: 2 }), createConnectOkText(2, 'retry'));
            await assertReachable(watcher, 'watcher', ws, 'retry');
        });
    });

    describe('the name claim', () => {
        test('without a name claim, sponsorUserName comes from create_connect as at level 1', async (t) => {
            const ws = await authRegister(srv.wsUrl, 'nm-none', { sponsorUserName: 'Typed' });
            t.after(() => closeAll([ws]));
            assert.equal(await dial(ws, { receiverUserId: 'watcher', id: 'd' }), dialingOkText('d', 'watcher', 1));
            assert.equal(await nextText(watcher), calledText({ sponsorUserId: 'nm-none', sponsorUserName: 'Typed' }));
        });

        test("name replaces create_connect's sponsorUserName in called", async (t) => {
            const ws = await authRegister(srv.wsUrl, 'nm-cc', { name: '张三 (verified)', sponsorUserName: 'Mallory' });
            t.after(() => closeAll([ws]));
            assert.equal(await dial(ws, { receiverUserId: 'watcher', id: 'd' }), dialingOkText('d', 'watcher', 1));
            assert.equal(
                await nextText(watcher),
                calledText({ sponsorUserId: 'nm-cc', sponsorUserName: '张三 (verified)' }),
            );
        });

        test("name also wins over a dialing's sponsorUserName (old clients send one on every dialing)", async (t) => {
            const ws = await authRegister(srv.wsUrl, 'nm-dial', { name: 'Verified Name' });
            t.after(() => closeAll([ws]));
            assert.equal(
                await dial(ws, { receiverUserId: 'watcher', sponsorUserName: 'Spoofed Name', field1: 'x', id: 'd' }),
                dialingOkText('d', 'watcher', 1),
            );
            assert.equal(
                await nextText(watcher),
                calledText({ sponsorUserId: 'nm-dial', sponsorUserName: 'Verified Name', field1: 'x' }),
                'the called push must carry the token name, not what the client typed in the dialing',
            );
        });
    });

    describe('expiry', () => {
        test('without a refresh the server closes at exp with 1008 "token expired", and the user goes offline', async (t) => {
            const exp = nowSec() + 2;
            const ws = await authRegister(srv.wsUrl, 'exp-nor', { token: used(signJwt({ sub: 'exp-nor', exp }, KEY)) });
            t.after(() => closeAll([ws]));
            const closed = await waitClose(ws, exp * 1000 - Date.now() + 2500);
            const at = Date.now();
            assert.equal(closed.code, 1008);
            assert.equal(closed.reason, 'token expired');
            assert.ok(at >= exp * 1000 - 200, `closed ${exp * 1000 - at} ms before exp`);
            assert.ok(at <= exp * 1000 + 1500, `closed ${at - exp * 1000} ms after exp (expected within ~1 s)`);
            await waitPeerOffline(watcher, 'exp-nor');
        });

        test('a fresh token on the same socket before exp keeps the connection and its registration alive', async (t) => {
            const exp1 = nowSec() + 2;
            const first = (sub) => used(signJwt({ sub, exp: exp1 }, KEY));
            const ws = await authRegister(srv.wsUrl, 'exp-ref', { token: first('exp-ref') });
            const control = await authRegister(srv.wsUrl, 'exp-ctl', { token: first('exp-ctl') });
            t.after(() => closeAll([ws, control]));

            await untilTime(exp1 * 1000 - 1000); // about 1 s into a 2 s token: refresh now
            assert.ok(Date.now() < exp1 * 1000 - 200, 'the refresh goes out well before exp');
            assert.equal(
                await createConnect(ws, 'exp-ref', { auth: tok('exp-ref', { ttl: 30 }), id: 'refresh' }),
                createConnectOkText('refresh', 'exp-ref'),
            );

            // the control, never refreshed, is closed at exp1: the clock really went past it
            const ctl = await waitClose(control, exp1 * 1000 - Date.now() + 2500);
            assert.equal(ctl.code, 1008, 'the unrefreshed control connection is closed at exp');

            // past the latest moment an unrefreshed close can come (exp1 + 1 s): still open and reachable
            await untilTime(exp1 * 1000 + 1200);
            assert.equal(ws.readyState, ws.OPEN, 'the refreshed connection is still open past the first exp');
            await ping(ws);
            await assertReachable(watcher, 'watcher', ws, 'exp-ref', 'after the first exp');
        });

        test('a token valid for a very long time does not close the connection early (no overflow of exp - now)', async (t) => {
            // exp - now = ceil(2^64 / 1000) s: in milliseconds that is 2^64 + 384
            const exp = BigInt(nowSec()) + 18446744073709552n;
            const token = used(signJwt(null, KEY, { payloadText: `{"sub":"exp-far","exp":${exp}}` }));
            const ws = await authRegister(srv.wsUrl, 'exp-far', { token });
            t.after(() => closeAll([ws]));
            await assert.rejects(
                waitClose(ws, 1500),
                /timed out/,
                'the connection was closed although its token expires millions of years from now',
            );
        });
    });

    test('no token used in these tests appears in the server output (stderr = the error log)', () => {
        const out = srv.stdout() + srv.stderr();
        assert.ok(tokensUsed.size > 30, `${tokensUsed.size} tokens checked`);
        for (const token of tokensUsed) {
            assert.ok(!out.includes(token), `token found in the server output: ${token}`);
            // the signature alone is as secret as the whole token
            const sig = token.slice(token.lastIndexOf('.') + 1);
            if (sig.length >= 16) assert.ok(!out.includes(sig), `token signature found in the server output: ${sig}`);
        }
    });
});

describe('tokens stay out of the error-log and access-log files', { timeout: 30000 }, () => {
    test('every source used, then error-log and access-log hold no token', async (t) => {
        const config = (vars) =>
            signalingConfig(vars, {
                global: ['error-log: error.log', 'access-log: access.log'],
                settings: [`${DIRECTIVE}: key.txt`],
            });
        const srv = await startServer({ threads: 1, config, files: { 'key.txt': KEY } });
        t.after(() => srv.stop());
        const viaAuth = userToken(KEY, 'log-a');
        const viaQuery = userToken(KEY, 'log-q');
        const viaProto = userToken(KEY, 'log-p');
        const bad = signJwt({ sub: 'log-b', exp: nowSec() + 300 }, OTHER_KEY);
        const a = await authRegister(srv.wsUrl, 'log-a', { token: viaAuth });
        const q = await connect(`${srv.wsUrl}?access_token=${viaQuery}`);
        const p = await connect(srv.wsUrl, { protocols: ['access_token', viaProto] });
        const b = await connect(srv.wsUrl);
        assert.equal(await createConnect(q, 'log-q'), createConnectOkText('cc', 'log-q'));
        assert.equal(await createConnect(p, 'log-p'), createConnectOkText('cc', 'log-p'));
        assertRefused(await createConnect(b, 'log-b', { auth: bad }), 'auth_invalid', 'cc');
        closeAll([a, q, p, b]);
        const stopped = await srv.stop();
        assert.equal(stopped.code, 0, 'clean exit');
        const errorLog = readFileSync(join(srv.dir, 'error.log'), 'utf8');
        const accessLog = readFileSync(join(srv.dir, 'access.log'), 'utf8');
        assert.match(accessLog, /GET \/WsService/, 'the access log is written');
        for (const [name, token] of Object.entries({ viaAuth, viaQuery, viaProto, bad })) {
            assert.ok(!errorLog.includes(token), `${name} token in error.log`);
            assert.ok(!srv.stderr().includes(token), `${name} token on stderr`);
            const sig = token.slice(token.lastIndexOf('.') + 1);
            assert.ok(!accessLog.includes(sig), `${name} token in access.log:\n${accessLog}`);
        }
    });
});

describe('authentication off (no key file): level-1 behaviour unchanged', { timeout: 30000 }, () => {
    let srv;
    before(async () => {
        srv = await startServer({
            threads: 1,
            config: (vars) => signalingConfig(vars),
        });
    });
    after(() => srv?.stop());

    test('create_connect without auth registers; dialing delivers', async (t) => {
        const a = await register(srv.wsUrl, 'off-a', { name: '张三' });
        const b = await register(srv.wsUrl, 'off-b');
        t.after(() => closeAll([a, b]));
        assert.equal(await dial(a, { receiverUserId: 'off-b', field1: 'hi', id: 1 }), dialingOkText(1, 'off-b', 1));
        assert.equal(await nextText(b), calledText({ sponsorUserId: 'off-a', sponsorUserName: '张三', field1: 'hi' }));
    });

    test('an auth field (garbage, forged or expired) is ignored', async (t) => {
        const ws = await connect(srv.wsUrl);
        t.after(() => closeAll([ws]));
        for (const [i, auth] of [
            'garbage',
            signJwt({ sub: 'someone-else', exp: nowSec() + 300 }, OTHER_KEY),
            signJwt({ sub: 'off-c', exp: nowSec() - 60 }, KEY),
        ].entries()) {
            assert.equal(await createConnect(ws, 'off-c', { auth, id: i }), createConnectOkText(i, 'off-c'));
        }
    });

    test('?access_token= is ignored, and the query string does not disturb the handshake', async (t) => {
        const ws = await connect(`${srv.wsUrl}?access_token=garbage`);
        t.after(() => closeAll([ws]));
        assert.equal(await createConnect(ws, 'off-q'), createConnectOkText('cc', 'off-q'));
    });
});

describe(`${DIRECTIVE}: inheritance and config errors`, { timeout: 30000 }, () => {
    /** The key file set at `level`: 'global', 'host' or 'path'. */
    const keyAt = (level) => (vars) => signalingConfig(vars, atLevel(level, `${DIRECTIVE}: key.txt`));

    for (const level of ['global', 'host']) {
        test(`set at ${level} level, it applies to the path below`, async (t) => {
            const srv = await startServer({ threads: 1, config: keyAt(level), files: { 'key.txt': KEY } });
            t.after(() => srv.stop());
            const ws = await connect(srv.wsUrl);
            t.after(() => closeAll([ws]));
            assertRefused(await createConnect(ws, 'inh'), 'auth_required', 'cc');
            assert.equal(
                await createConnect(ws, 'inh', { auth: userToken(KEY, 'inh'), id: 2 }),
                createConnectOkText(2, 'inh'),
            );
        });
    }

    test('-t on a config with a good key file prints "configuration OK" and exits 0', async () => {
        const r = await runConfigTest(keyAt('path'), { files: { 'key.txt': `${KEY}\n` } });
        assert.equal(r.signal, null, `-t must not crash: ${how(r)}`);
        assert.equal(r.code, 0, how(r));
        assert.match(r.stdout + r.stderr, /configuration OK/);
    });

    test('a config error after a good key file: -t and a start exit 1 with the error (no crash)', async () => {
        const config = (vars) =>
            signalingConfig(vars, { settings: [`${DIRECTIVE}: key.txt`, 'signaling.rate-limit: lots'] });
        const files = { 'key.txt': KEY };
        const r = await runConfigTest(config, { files });
        assert.equal(r.signal, null, `-t must not crash: ${how(r)}`);
        assert.equal(r.code, 1, how(r));
        assert.ok(configErrors(r.stderr, r.file).some((e) => e.text.includes('signaling.rate-limit')), r.stderr);
        const st = await startServer({ config, files, expectFail: true });
        assert.equal(st.signal, null, `a start must not crash: code ${st.code}, signal ${st.signal}\n${st.stderr}`);
        assert.equal(st.code, 1);
        assert.equal(st.listening, false);
    });

    /** Asserts `-t` failed with a FILE:LINE: error on the directive's line naming it. */
    function assertKeyError(r) {
        assert.equal(r.timedOut, false);
        assert.equal(r.signal, null, how(r));
        assert.equal(r.code, 1, how(r));
        const line = r.config.split('\n').findIndex((l) => l.includes(DIRECTIVE)) + 1;
        const errors = configErrors(r.stderr, r.file);
        const onLine = errors.filter((e) => e.line === line);
        assert.ok(onLine.length > 0, `expected a "${r.file}:${line}: " error:\n${r.stderr}`);
        assert.ok(onLine.some((e) => e.text.includes(DIRECTIVE)), `the error names ${DIRECTIVE}:\n${r.stderr}`);
    }

    test('a key file that does not exist: -t exits 1 with FILE:LINE: naming the directive', async () => {
        assertKeyError(await runConfigTest(keyAt('path')));
    });

    test('a key of 10 bytes: -t exits 1 with FILE:LINE: naming the directive, and a start fails too', async () => {
        const files = { 'key.txt': '0123456789' };
        assertKeyError(await runConfigTest(keyAt('path'), { files }));
        const st = await startServer({ config: keyAt('path'), files, expectFail: true });
        assert.notEqual(st.code, 0, 'a start with a short key must fail');
        assert.equal(st.listening, false, 'nothing listens');
    });

    test('31 bytes plus a newline is refused; 32 bytes plus a newline is the key (the newline is not)', async (t) => {
        const key31 = KEY.slice(0, 31);
        const key32 = KEY.slice(0, 32);
        assertKeyError(await runConfigTest(keyAt('path'), { files: { 'key.txt': `${key31}\n` } }));
        const srv = await startServer({ threads: 1, config: keyAt('path'), files: { 'key.txt': `${key32}\n` } });
        t.after(() => srv.stop());
        const ws = await connect(srv.wsUrl);
        t.after(() => closeAll([ws]));
        const withNewline = signJwt({ sub: 'k32', exp: nowSec() + 300 }, `${key32}\n`);
        assertRefused(await createConnect(ws, 'k32', { auth: withNewline }), 'auth_invalid', 'cc');
        const good = signJwt({ sub: 'k32', exp: nowSec() + 300 }, key32);
        assert.equal(await createConnect(ws, 'k32', { auth: good, id: 2 }), createConnectOkText(2, 'k32'));
    });
});
