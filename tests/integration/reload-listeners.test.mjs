// `listen` entries added or removed by a reload open or close those listeners, on every thread;
// sockets accepted on a removed listener stay (reload.md, the contract; test plan 6). Also a
// host-level `listen` added with its host.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { httpRequest } from '../lib/http.mjs';
import { expectReloaded, requireReload, SLOW } from '../lib/reload.mjs';
import { freePorts, isListening, startServer } from '../lib/server.mjs';
import { calledText, dial, dialingOkText, nextText, register } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAll, ping } from '../lib/wsclient.mjs';

const THREADS = 2;
const TRIES = 20; // connection attempts per check: with SO_REUSEPORT each may land on any thread's socket
const SETTLE_MS = 2000 * SLOW; // how long after the reload line a listener may take to open or close

before(requireReload);

/** A config listening on each port of `ports`, with /WsService and a static root; `extra` more YAML (hosts). */
const listening =
    (ports, extra = '') =>
    (vars) =>
        `${ports.map((p) => `listen: {host: 127.0.0.1, port: ${p}}\n`).join('')}hosts:
  default:
    paths:
      /WsService:
        signaling: ON
      /:
        file.dir: ${vars.dir}/www
${extra}`;

/** True when every one of TRIES connections to `port` is answered 200 by the server (own connection each). */
async function allServe(port) {
    const res = await Promise.all(
        Array.from({ length: TRIES }, () => httpRequest(`http://127.0.0.1:${port}/`, { timeout: 2000 }).catch(() => null)),
    );
    return res.every((r) => r && r.status === 200);
}

/** True when none of TRIES connection attempts to `port` is accepted. */
async function noneAccepted(port) {
    const res = await Promise.all(Array.from({ length: TRIES }, () => isListening(port, 1000)));
    return res.every((up) => !up);
}

/** `a` (user aId) and `b` (bId) reach each other both ways. */
async function exchange(a, aId, b, bId, tag) {
    assert.equal(await dial(a, { receiverUserId: bId, id: tag }), dialingOkText(tag, bId, 1), `${aId} -> ${bId}`);
    assert.equal(await nextText(b), calledText({ sponsorUserId: aId }));
    assert.equal(await dial(b, { receiverUserId: aId, id: tag }), dialingOkText(tag, aId, 1), `${bId} -> ${aId}`);
    assert.equal(await nextText(a), calledText({ sponsorUserId: bId }));
}

test(`num-threads ${THREADS}: listeners added and removed by reloads; sockets of a removed one stay`, { timeout: 60000 * SLOW }, async (t) => {
    const srv = await startServer({
        threads: THREADS,
        config: (vars) => listening([vars.port])(vars),
        files: { 'www/index.html': 'default\n', 'www-b/index.html': 'host b\n' },
    });
    t.after(() => srv.stop('SIGKILL'));
    const p0 = srv.port;
    const [p1, p2] = await freePorts(2);
    const ws = (port) => `ws://127.0.0.1:${port}/WsService`;
    const sockets = [];
    t.after(() => closeAll(sockets));
    const a = await register(ws(p0), 'ln-a');
    sockets.push(a);
    assert.equal(await isListening(p1), false);

    // added: p1 opens on every thread; a user on it and one on p0 share the route
    await expectReloaded(srv, listening([p0, p1]), { generation: 2, what: 'p1 added' });
    await waitUntil(() => allServe(p1), { timeout: SETTLE_MS, what: `${TRIES} requests on the added port ${p1}` });
    const b = await register(ws(p1), 'ln-b');
    sockets.push(b);
    await exchange(a, 'ln-a', b, 'ln-b', 'added');

    // removed: p0 closes on every thread (no thread's socket left accepting); a, accepted on it, stays
    await expectReloaded(srv, listening([p1]), { generation: 3, what: 'p0 removed' });
    await waitUntil(() => noneAccepted(p0), { timeout: SETTLE_MS, what: `the removed port ${p0} to refuse every connection` });
    await ping(a);
    await exchange(a, 'ln-a', b, 'ln-b', 'removed');
    assert.ok(await allServe(p1), 'the port that stayed still serves');

    // back: p0 listens again; a host-level listen comes with its host
    const hostB = (vars) => `  "b.example":\n    listen: {host: 127.0.0.1, port: ${p2}}\n    paths:\n      /:\n        file.dir: ${vars.dir}/www-b\n`;
    await expectReloaded(srv, (vars) => listening([p0, p1], hostB(vars))(vars), { generation: 4, what: 'p0 back, host b on p2' });
    await waitUntil(() => allServe(p0), { timeout: SETTLE_MS, what: `${TRIES} requests on ${p0} again` });
    await waitUntil(async () => (await httpRequest(`http://127.0.0.1:${p2}/`, { timeout: 2000 })).text === 'host b\n', {
        timeout: SETTLE_MS,
        what: `host b on its own listener ${p2}`,
    });
    const c = await register(ws(p0), 'ln-c');
    sockets.push(c);
    await exchange(c, 'ln-c', a, 'ln-a', 'back');
    await exchange(c, 'ln-c', b, 'ln-b', 'back');

    // the host and its listener removed together
    await expectReloaded(srv, listening([p0, p1]), { generation: 5, what: 'host b removed' });
    await waitUntil(() => noneAccepted(p2), { timeout: SETTLE_MS, what: `${p2} to close with its host` });
    assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);
});
