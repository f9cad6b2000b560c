// signaling.allowed-origins (issue 4): a browser handshake whose Origin is not listed gets
// HTTP 403 before any upgrade; a listed one opens; a handshake without Origin (apps,
// servers) opens; `*` allows any. Exact match only: near misses are refused. Also the
// directive's forms (list, scalar, `*`), inheritance, and its config errors.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { httpUpgrade } from '../lib/rawws.mjs';
import { atLevel, configErrors, how, runConfigTest, signalingConfig, startServer } from '../lib/server.mjs';
import { calledText, createConnectOkText, dial, dialingOkText, nextText, request } from '../lib/sigclient.mjs';
import { closeAll, connect } from '../lib/wsclient.mjs';

const DIRECTIVE = 'signaling.allowed-origins';
const A = 'https://a.example';
const B = 'https://b.example';

/** A config with `value` given to allowed-origins at `level` (path by default). */
const originsConfig =
    (value, level = 'path') =>
    (vars) =>
        signalingConfig(vars, atLevel(level, `${DIRECTIVE}: ${value}`));

/** A raw handshake with `origin` (undefined: no Origin header); returns the response, socket closed. */
async function handshake(port, origin) {
    const res = await httpUpgrade({ port, headers: origin === undefined ? {} : { Origin: origin } });
    res.socket.destroy();
    return res;
}

/** Asserts the handshake with `origin` is refused with 403 and no upgrade. */
async function assertForbidden(port, origin) {
    const res = await handshake(port, origin);
    assert.equal(res.status, 403, `Origin ${JSON.stringify(origin)}: expected 403, got ${res.status}`);
    assert.equal(res.headers.upgrade, undefined, 'no Upgrade header on a refusal');
    assert.equal(res.headers['sec-websocket-accept'], undefined, 'no Sec-WebSocket-Accept on a refusal');
}

/** Asserts the handshake with `origin` is upgraded (101). */
async function assertOpens(port, origin) {
    const res = await handshake(port, origin);
    assert.equal(res.status, 101, `Origin ${JSON.stringify(origin)}: expected 101, got ${res.status} ${res.body ?? ''}`);
}

/** A ws client with an Origin header (as a browser sends it), registered as `userId`. */
async function registerWithOrigin(url, origin, userId) {
    const ws = await connect(url, origin === undefined ? {} : { origin });
    try {
        const reply = await request(ws, { type: 'create_connect', sponsorUserId: userId, id: 'reg' });
        assert.equal(reply, createConnectOkText('reg', userId));
        return ws;
    } catch (err) {
        ws.terminate();
        throw err;
    }
}

describe(`${DIRECTIVE}: [${A}, ${B}]`, { timeout: 30000 }, () => {
    let srv;
    before(async () => {
        srv = await startServer({ threads: 1, config: originsConfig(`[${A}, ${B}]`) });
    });
    after(() => srv?.stop());

    test('listed origins open, and the connections speak the protocol', async (t) => {
        const a = await registerWithOrigin(srv.wsUrl, A, 'org-a');
        const b = await registerWithOrigin(srv.wsUrl, B, 'org-b');
        t.after(() => closeAll([a, b]));
        assert.equal(await dial(a, { receiverUserId: 'org-b', field1: 'hi', id: 1 }), dialingOkText(1, 'org-b', 1));
        assert.equal(await nextText(b), calledText({ sponsorUserId: 'org-a', field1: 'hi' }));
    });

    test('a handshake without Origin (an app, a server) opens', async (t) => {
        await assertOpens(srv.port, undefined);
        const ws = await registerWithOrigin(srv.wsUrl, undefined, 'org-none');
        closeAll([ws]);
    });

    test('an unlisted Origin gets 403 with no upgrade (raw handshake)', async () => {
        await assertForbidden(srv.port, 'https://evil.example');
    });

    test('an unlisted Origin: the ws client sees the 403 and no connection', async () => {
        await assert.rejects(connect(srv.wsUrl, { origin: 'https://evil.example' }), (err) => {
            assert.equal(err.status, 403, err.message);
            return true;
        });
    });

    for (const near of [
        'https://a.example.evil.example', // prefix
        'https://a.exampl', // truncated
        'https://xa.example', // suffix
        'http://a.example', // other scheme
        'https://a.example:443', // explicit port
        'https://a.example/', // trailing slash
        'HTTPS://A.EXAMPLE', // exact match is case-sensitive
        'null', // opaque origin (file://, sandboxed iframe)
        `${A}, ${B}`, // a list in one header
    ]) {
        test(`exact match only: Origin ${JSON.stringify(near)} gets 403`, async () => {
            await assertForbidden(srv.port, near);
        });
    }

    test('refusals take no resources: after 50 of them, listed and unlisted handshakes behave the same', async () => {
        for (let i = 0; i < 50; i++) await assertForbidden(srv.port, `https://evil${i}.example`);
        await assertOpens(srv.port, A);
        await assertForbidden(srv.port, 'https://evil.example');
    });
});

describe(`${DIRECTIVE}: forms and levels`, { timeout: 30000 }, () => {
    test('`*` allows any Origin', async (t) => {
        const srv = await startServer({ threads: 1, config: originsConfig("'*'") });
        t.after(() => srv.stop());
        for (const origin of [A, 'https://anything.example', 'null', undefined]) await assertOpens(srv.port, origin);
    });

    test('`*` inside a list allows any Origin', async (t) => {
        const srv = await startServer({ threads: 1, config: originsConfig(`[${A}, '*']`) });
        t.after(() => srv.stop());
        await assertOpens(srv.port, 'https://anything.example');
    });

    test('a scalar at host level is inherited by the path: that origin opens, another gets 403', async (t) => {
        const srv = await startServer({ threads: 1, config: originsConfig(A, 'host') });
        t.after(() => srv.stop());
        await assertOpens(srv.port, A);
        await assertForbidden(srv.port, B);
        await assertOpens(srv.port, undefined);
    });

    test('a list at global level is inherited by the path', async (t) => {
        const srv = await startServer({ threads: 1, config: originsConfig(`[${B}]`, 'global') });
        t.after(() => srv.stop());
        await assertOpens(srv.port, B);
        await assertForbidden(srv.port, A);
    });

    test('without the directive any Origin opens (level-1 behaviour)', async (t) => {
        const srv = await startServer({
            threads: 1,
            config: (vars) => signalingConfig(vars),
        });
        t.after(() => srv.stop());
        await assertOpens(srv.port, 'https://evil.example');
    });
});

describe(`${DIRECTIVE}: config checks`, { timeout: 30000 }, () => {
    /** Asserts -t failed with a FILE:LINE: error on the directive's line naming it. */
    function assertOriginsError(r) {
        assert.equal(r.timedOut, false);
        assert.equal(r.signal, null, how(r));
        assert.equal(r.code, 1, how(r));
        const line = r.config.split('\n').findIndex((l) => l.includes(DIRECTIVE)) + 1;
        const errors = configErrors(r.stderr, r.file);
        assert.ok(errors.length > 0, `expected a "${r.file}:LINE: " error:\n${r.stderr}`);
        assert.ok(
            errors.some((e) => e.line >= line && e.text.includes(DIRECTIVE)),
            `expected an error at or after line ${line} naming ${DIRECTIVE}:\n${r.stderr}`,
        );
    }

    test('a mapping is a config error (FILE:LINE: naming the directive)', async () => {
        assertOriginsError(await runConfigTest(originsConfig(`{${A}: yes}`)));
    });

    test('a list holding a mapping is a config error', async () => {
        assertOriginsError(await runConfigTest(originsConfig(`[${A}, {b: c}]`)));
    });

    test('-t on a good list prints "configuration OK" and exits 0', async () => {
        const r = await runConfigTest(originsConfig(`[${A}, ${B}]`));
        assert.equal(r.signal, null, `-t must not crash: ${how(r)}`);
        assert.equal(r.code, 0, how(r));
        assert.match(r.stdout + r.stderr, /configuration OK/);
    });
});
