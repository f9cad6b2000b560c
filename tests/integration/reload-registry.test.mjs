// Live reload keeps every WebSocket and every registration (reload.md, the contract; test plan 1).
// num-threads 4: users registered before a SIGHUP and users registered after it reach each other
// both ways, every pair (the kernel spreads both sides over the four threads); a user with one
// device from each side is counted twice; an unregistration after the reload is seen from both
// sides. The old sockets keep the heartbeat they were accepted with (pings every 200 ms) while the
// new ones get the new file's (5 s: no ping yet). And the good-reload line: "reloaded FILE
// (generation N, M alive)", N counting up from 2, M the generations with connections or current.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { expectReloaded, fdCount, outcomes, requireReload, SLOW } from '../lib/reload.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import { calledText, dial, dialAllPairs, dialingOkText, nextText, register, waitPeerOffline } from '../lib/sigclient.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';
import { closeAll, ping, waitClose } from '../lib/wsclient.mjs';

const THREADS = 4;
const PER_SIDE = 32; // users registered before the reload, and as many after it
const WINDOW = 8; // dialings in flight per connection
const OLD_PING = 200; // ms: the heartbeat the first generation's sockets were accepted with
const NEW_PING = 5000; // the reloaded file's: a socket accepted after the reload is not pinged for 5 s

before(requireReload);

/** /WsService with heartbeat `pingMs`; `health` adds a static path (the "edited file"). */
const config =
    (pingMs, { health = false } = {}) =>
    (vars) =>
        signalingConfig(vars, {
            settings: [`signaling.ping-interval: ${pingMs}`, 'signaling.ping-timeout: 2000', 'signaling.rate-limit: 0'],
            morePaths: health ? `      /health:\n        file.dir: ${vars.dir}/www\n` : '',
        });

/** Registers `n` users `${prefix}-0..n-1`, 16 connections at a time; returns their sockets in order. */
async function registerMany(url, prefix, n) {
    const out = [];
    for (let i = 0; i < n; i += 16) {
        const batch = Array.from({ length: Math.min(16, n - i) }, (_, k) => register(url, `${prefix}-${i + k}`));
        out.push(...(await Promise.all(batch)));
    }
    return out;
}

/** The next message on `ws` through a listener of its own (the inbox of wsclient may hold older ones). */
function nextPush(ws, timeout = 5000) {
    return withTimeout(
        new Promise((resolve) => ws.once('message', (data) => resolve(data.toString('utf8')))),
        timeout,
        'a push on an all-pairs socket',
    );
}

/**
 * Every user dials every other user once (ids, WINDOW in flight per socket): each answer must be
 * ok/delivered 1 and each (sender, receiver) pair must get exactly one `called`.
 */
async function allPairs(users, sockets) {
    const { total, calledTotal, problems, wrong } = await dialAllPairs(users, sockets, { window: WINDOW, timeout: 30000 * SLOW, interval: 50 });
    assert.deepEqual(problems, []);
    assert.equal(calledTotal, total, 'no duplicate called');
    assert.deepEqual(wrong, [], 'each (sender, receiver) pair exactly once');
    return total;
}

test(
    `num-threads ${THREADS}: users registered before a reload and after it reach each other, every pair, both ways`,
    { timeout: 90000 * SLOW },
    async (t) => {
        const srv = await startServer({ threads: THREADS, config: config(OLD_PING), files: { 'www/index.html': 'ok\n' } });
        t.after(() => srv.stop('SIGKILL'));
        const sockets = [];
        t.after(() => closeAll(sockets));

        const old = await registerMany(srv.wsUrl, 'b', PER_SIDE);
        sockets.push(...old);
        const splitOld = await register(srv.wsUrl, 'split', { id: 'dev-old' });
        const dialerOld = await register(srv.wsUrl, 'dialer-old');
        sockets.push(splitOld, dialerOld);
        const pings = new Map();
        const countPings = (ws) => {
            pings.set(ws, 0);
            ws.on('ping', () => pings.set(ws, pings.get(ws) + 1));
        };
        for (const ws of [...old, splitOld, dialerOld]) countPings(ws);

        // the edited file: another path, and a slower heartbeat for connections accepted from now on;
        // the first generation still has connections, so two are alive
        await expectReloaded(srv, config(NEW_PING, { health: true }), { generation: 2, alive: 2 });
        for (const ws of pings.keys()) pings.set(ws, 0);

        const fresh = await registerMany(srv.wsUrl, 'a', PER_SIDE);
        sockets.push(...fresh);
        const splitNew = await register(srv.wsUrl, 'split', { id: 'dev-new' });
        const dialerNew = await register(srv.wsUrl, 'dialer-new');
        sockets.push(splitNew, dialerNew);
        for (const ws of [...fresh, splitNew, dialerNew]) countPings(ws);

        // old sockets keep being pinged every 200 ms; new ones follow the new file (first ping at 5 s)
        const oldOnes = [...old, splitOld, dialerOld];
        await waitUntil(() => oldOnes.every((ws) => pings.get(ws) >= 3), {
            timeout: 5000 * SLOW,
            what: `>= 3 pings on each of the ${oldOnes.length} sockets opened before the reload`,
        }).catch((err) => {
            throw new Error(`${err.message}; counts: ${oldOnes.map((ws) => pings.get(ws)).join(',')}`);
        });
        const newOnes = [...fresh, splitNew, dialerNew];
        assert.deepEqual(
            newOnes.map((ws) => pings.get(ws)).filter((n) => n !== 0),
            [],
            'sockets accepted after the reload use its ping-interval (5 s): no ping yet',
        );

        // one registry across the generations: everyone reaches everyone
        const users = [...Array.from({ length: PER_SIDE }, (_, i) => `b-${i}`), ...Array.from({ length: PER_SIDE }, (_, i) => `a-${i}`)];
        const total = await allPairs(users, [...old, ...fresh]);
        t.diagnostic(`${total} dialings between ${PER_SIDE} users registered before the reload and ${PER_SIDE} after it`);

        // a user with a device from each side: both counted, both called, from either side
        for (const [dialer, id] of [
            [dialerOld, 'from-old'],
            [dialerNew, 'from-new'],
        ]) {
            assert.equal(await dial(dialer, { receiverUserId: 'split', field1: id, id }), dialingOkText(id, 'split', 2));
            const sponsorUserId = dialer === dialerOld ? 'dialer-old' : 'dialer-new';
            assert.equal(await nextText(splitOld), calledText({ sponsorUserId, field1: id }), `old device, ${id}`);
            assert.equal(await nextText(splitNew), calledText({ sponsorUserId, field1: id }), `new device, ${id}`);
        }

        // unregistering is seen across generations: an old user leaves (seen from a new socket) and a
        // new one leaves (seen from an old socket)
        old[5].terminate();
        fresh[5].terminate();
        await waitPeerOffline(dialerNew, 'b-5', { timeout: 5000 * SLOW });
        await waitPeerOffline(dialerOld, 'a-5', { timeout: 5000 * SLOW });

        // a second reload: three generations with connections; the registry still spans them
        await expectReloaded(srv, config(NEW_PING), { generation: 3, alive: 3 });
        const third = await register(srv.wsUrl, 'c-0');
        sockets.push(third);
        for (const [dialer, receiver, ws, sponsor] of [
            [third, 'b-0', old[0], 'c-0'],
            [third, 'a-0', fresh[0], 'c-0'],
            [dialerOld, 'c-0', third, 'dialer-old'],
        ]) {
            const push = ws === third ? nextText(third) : nextPush(ws);
            assert.equal(await dial(dialer, { receiverUserId: receiver, field1: 'gen3', id: 'g3' }), dialingOkText('g3', receiver, 1));
            assert.equal(await push, calledText({ sponsorUserId: sponsor, field1: 'gen3' }), `called at ${receiver}`);
        }
        for (const k of [0, 1, 2]) pings.set(old[k], 0);
        await waitUntil(() => [0, 1, 2].every((k) => pings.get(old[k]) >= 2), {
            timeout: 5000 * SLOW,
            what: 'pings on first-generation sockets after the second reload',
        });
        await Promise.all(oldOnes.filter((ws) => ws !== old[5]).map((ws) => ping(ws)));
        assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);
    },
);

test('the reload line counts generations: N from 2 up, M = generations with connections, plus the current one', { timeout: 30000 * SLOW }, async (t) => {
    // one thread: a socket the server has closed (its fd gone) is off its generation's count
    // before the server can take the next SIGHUP
    const srv = await startServer({ threads: 1, config: config(OLD_PING) });
    t.after(() => srv.stop('SIGKILL'));
    const sockets = [];
    t.after(() => closeAll(sockets));
    /** Closes `ws` cleanly and waits until the server has closed its side (one fd fewer). */
    const closeAndWait = async (ws) => {
        const fds = fdCount(srv.pid);
        ws.close(1000);
        await waitClose(ws);
        await waitUntil(() => fdCount(srv.pid) <= fds - 1, { timeout: 5000 * SLOW, what: 'the server to close the socket' });
    };

    const a = await register(srv.wsUrl, 'gen-a'); // generation 1
    sockets.push(a);
    await expectReloaded(srv, config(OLD_PING), { generation: 2, alive: 2, what: 'reload 1 (generation 1 holds a socket)' });
    const b = await register(srv.wsUrl, 'gen-b'); // generation 2
    sockets.push(b);
    await expectReloaded(srv, config(OLD_PING), { generation: 3, alive: 3, what: 'reload 2 (generations 1 and 2 hold sockets)' });
    assert.equal(await dial(b, { receiverUserId: 'gen-a', id: 1 }), dialingOkText(1, 'gen-a', 1));
    await nextText(a);

    await closeAndWait(a);
    // 1: no socket left; 2: b; 3: none, and no longer current; 4: current
    await expectReloaded(srv, config(OLD_PING), { generation: 4, alive: 2, what: 'reload 3 (only generation 2 holds a socket)' });
    await closeAndWait(b);
    await expectReloaded(srv, config(OLD_PING), { generation: 5, alive: 1, what: 'reload 4 (no socket left)' });

    const lines = outcomes(srv);
    assert.deepEqual(
        lines.map((o) => [o.ok, o.generation]),
        [2, 3, 4, 5].map((n) => [true, n]),
        'one line per SIGHUP, no other outcome line',
    );
});
