// Faults of a scale-out cluster (contract: /work/shared/design/scaleout.md): a node killed, Redis
// restarted on the same port, Redis absent at start, subscriber connections killed (CLIENT KILL,
// output buffer limit), Redis stalled (SIGSTOP), and one of two shards killed. Nothing is
// restarted but what the test breaks; every wait is bounded. Timings are small
// (lib/redis.mjs FAST_REDIS_TIMINGS: probe 200 ms, reconnect 50..500 ms, result 500 ms).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
    clusterUnavailableText,
    dialAnswer,
    drain,
    noMessageWithin,
    nodeChannel,
    requireRedisSupport,
    startCluster,
    startNodes,
    startRedis,
    userChannels,
    waitCrossNode,
    waitDelivered,
    waitNodesLinked,
} from '../lib/redis.mjs';
import { freeServicePort } from '../lib/server.mjs';
import { calledText, dialingOkText, nextText, register, waitPeerOffline } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAfter } from '../lib/wsclient.mjs';

let seq = 0;
const nextId = (tag = 'f') => `${tag}${++seq}`;

/** Dials once and asserts the exact answer. */
async function assertDial(ws, receiverUserId, expectedFor, what, timeout = 3000) {
    const id = nextId();
    const started = Date.now();
    const reply = await dialAnswer(ws, { receiverUserId, id }, timeout);
    const expected = expectedFor(id);
    assert.equal(reply, expected, `${what}: expected ${expected}\n   got ${reply}`);
    return Date.now() - started;
}
const delivered = (receiver, n) => (id) => dialingOkText(id, receiver, n);
const unavailable = (id) => clusterUnavailableText(id);

/** Polls until a dial from `ws` to `receiver` answers cluster_unavailable. */
async function waitUnavailable(ws, receiver, { timeout = 3000, what } = {}) {
    let last;
    await waitUntil(
        async () => {
            const id = nextId('u');
            last = await dialAnswer(ws, { receiverUserId: receiver, id }, 2000);
            return last === clusterUnavailableText(id);
        },
        { timeout, interval: 25, what: what ?? `a dial to ${receiver} to answer cluster_unavailable` },
    ).catch((err) => {
        throw new Error(`${err.message}; last answer: ${last}`);
    });
}

/** The node pids, to show that nothing was restarted. */
const pids = (nodes) => nodes.map((n) => n.pid);

describe('scale-out faults', { timeout: 180000 }, () => {
    test('a node killed (SIGKILL): its users read peer_offline from the others within a second; other users untouched', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes: [A, B, C] } = await startCluster(t, { n: 3 });
        const onB = await register(B.wsUrl, 'k-b');
        const bothA = await register(A.wsUrl, 'k-both');
        const bothB = await register(B.wsUrl, 'k-both');
        const onA = await register(A.wsUrl, 'k-a');
        const dA = await register(A.wsUrl, 'k-dial-a');
        const dC = await register(C.wsUrl, 'k-dial-c');
        open.push(onB, bothA, bothB, onA, dA, dC);
        const [chanB] = await userChannels(redis, 'k-b');
        const [chanBoth] = await userChannels(redis, 'k-both');
        assert.equal(await redis.numsub(chanBoth), 2, 'k-both is held by A and B');
        await assertDial(dC, 'k-b', delivered('k-b', 1), 'before the kill');

        await B.stop('SIGKILL');
        const killed = Date.now();
        await Promise.all([
            waitPeerOffline(dA, 'k-b', { timeout: 1000, id: 'pa' }),
            waitPeerOffline(dC, 'k-b', { timeout: 1000, id: 'pc' }),
        ]);
        t.diagnostic(`k-b offline from A and C ${Date.now() - killed} ms after the kill`);
        assert.equal(await redis.numsub(chanB), 0, `PUBSUB NUMSUB ${chanB} after B died`);
        assert.equal(await redis.numsub(chanBoth), 1, `PUBSUB NUMSUB ${chanBoth}: only A's subscription is left`);
        assert.equal(await redis.numsub(nodeChannel('node-b')), 0, "B's node channel is gone");

        await drain(bothA);
        await drain(onA);
        await assertDial(dC, 'k-both', delivered('k-both', 1), 'k-both keeps its device on A');
        assert.equal(await nextText(bothA), calledText({ sponsorUserId: 'k-dial-c' }));
        await assertDial(dC, 'k-a', delivered('k-a', 1), 'a user of A, dialed from C');
        assert.equal(await nextText(onA), calledText({ sponsorUserId: 'k-dial-c' }));
        await assertDial(dA, 'k-a', delivered('k-a', 1), 'a user of A, dialed from A');
        for (const n of [A, C]) assert.ok(n.alive(), `${n.nodeId} exited: ${n.stderr()}`);
    });

    test('Redis restarted on the same port: cluster_unavailable for remote users during the outage, local dials work, then everything is back without restarting a node', { timeout: 25000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes } = await startCluster(t, { n: 2 });
        const [A, B] = nodes;
        const before = pids(nodes);
        const onA = await register(A.wsUrl, 'rs-a');
        const onB = await register(B.wsUrl, 'rs-b');
        const bothA = await register(A.wsUrl, 'rs-both');
        const bothB = await register(B.wsUrl, 'rs-both');
        const dA = await register(A.wsUrl, 'rs-dial-a');
        const dB = await register(B.wsUrl, 'rs-dial-b');
        open.push(onA, onB, bothA, bothB, dA, dB);

        const down = Date.now();
        await redis.stop();
        await waitUnavailable(dA, 'rs-b', { what: 'A to notice the outage (rs-b is only on B)' });
        t.diagnostic(`A answers cluster_unavailable ${Date.now() - down} ms after Redis stopped`);
        await waitUnavailable(dB, 'rs-a', { what: 'B to notice the outage (rs-a is only on A)' });

        // during the outage: users of this node are reachable, others are unknown
        const ms = await assertDial(dA, 'rs-a', delivered('rs-a', 1), 'a user on A dialed from A during the outage');
        assert.ok(ms < 500, `a local dial during the outage answers at once: took ${ms} ms`);
        assert.equal(await nextText(onA), calledText({ sponsorUserId: 'rs-dial-a' }));
        await assertDial(dA, 'rs-both', delivered('rs-both', 1), "rs-both during the outage: A's device only");
        assert.equal(await nextText(bothA), calledText({ sponsorUserId: 'rs-dial-a' }));
        await assertDial(dA, 'rs-nobody', unavailable, 'a user nobody holds: unknown during the outage');
        await assertDial(dB, 'rs-a', unavailable, 'rs-a from B during the outage');
        // registering during the outage is acknowledged at once (the local registration)
        const regStart = Date.now();
        const late = await register(A.wsUrl, 'rs-late');
        open.push(late);
        assert.ok(Date.now() - regStart < 1000, `create_connect during the outage took ${Date.now() - regStart} ms`);

        await redis.start(); // same port
        const up = Date.now();
        await waitNodesLinked(redis, nodes, { timeout: 5000, what: 'the nodes to reconnect to the restarted Redis' });
        await waitCrossNode(nodes, { timeout: 5000, what: 'cross-node delivery after the restart' });
        // users registered before the outage (and during it) are subscribed again
        await waitDelivered(dA, 'rs-b', 1, { timeout: 5000 });
        await waitDelivered(dB, 'rs-a', 1, { timeout: 5000 });
        await waitDelivered(dB, 'rs-late', 1, { timeout: 5000, what: 'rs-late (registered during the outage) reachable from B' });
        await waitDelivered(dB, 'rs-both', 2, { timeout: 5000 });
        t.diagnostic(`cross-node delivery back ${Date.now() - up} ms after Redis came back`);
        const [chanBoth] = await userChannels(redis, 'rs-both');
        assert.equal(await redis.numsub(chanBoth), 2, `PUBSUB NUMSUB ${chanBoth} after the restart`);

        for (const ws of [onA, onB, bothA, bothB, late]) await drain(ws, 100);
        await assertDial(dA, 'rs-b', delivered('rs-b', 1), 'rs-b from A after the restart');
        assert.equal(await nextText(onB), calledText({ sponsorUserId: 'rs-dial-a' }));
        assert.equal(await noMessageWithin(onB, 300), true, 'exactly once');
        assert.deepEqual(pids(nodes), before, 'no node was restarted');
        for (const n of nodes) assert.ok(n.alive(), `${n.nodeId} exited: ${n.stderr()}`);
    });

    test('Redis absent when the nodes start: they serve locally, and connect once Redis appears on that port', { timeout: 20000 }, async (t) => {
        await requireRedisSupport();
        const open = closeAfter(t);
        const port = await freeServicePort();
        const nodes = await startNodes(
            t,
            ['node-a', 'node-b'].map((nodeId) => ({ redis: `127.0.0.1:${port}`, nodeId })),
        );
        const [A, B] = nodes;
        const regStart = Date.now();
        const onA = await register(A.wsUrl, 'ab-a');
        const onB = await register(B.wsUrl, 'ab-b');
        const dA = await register(A.wsUrl, 'ab-dial-a');
        open.push(onA, onB, dA);
        assert.ok(Date.now() - regStart < 1500, `three create_connect without Redis took ${Date.now() - regStart} ms`);
        await assertDial(dA, 'ab-a', delivered('ab-a', 1), 'a local dial without Redis');
        assert.equal(await nextText(onA), calledText({ sponsorUserId: 'ab-dial-a' }));
        await assertDial(dA, 'ab-b', unavailable, 'a user on B, dialed from A, without Redis');

        const redis = await startRedis({ port });
        t.after(() => redis.stop());
        const up = Date.now();
        await waitNodesLinked(redis, nodes, { timeout: 5000, what: 'the nodes to connect once Redis is there' });
        await waitDelivered(dA, 'ab-b', 1, { timeout: 5000, what: 'ab-b (registered before Redis existed) reachable from A' });
        t.diagnostic(`cross-node delivery ${Date.now() - up} ms after Redis started`);
        const dB = await register(B.wsUrl, 'ab-dial-b');
        open.push(dB);
        await waitDelivered(dB, 'ab-a', 1, { timeout: 3000 });
        for (const n of nodes) assert.ok(n.alive(), `${n.nodeId} exited: ${n.stderr()}`);
    });

    test('CLIENT KILL TYPE pubsub (twice): the nodes resubscribe their users and node channels', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes } = await startCluster(t, { n: 2 });
        const [A, B] = nodes;
        const users = [];
        for (let i = 0; i < 10; i++) users.push({ id: `ck-${i}`, node: nodes[i % 2], ws: await register(nodes[i % 2].wsUrl, `ck-${i}`) });
        const dA = await register(A.wsUrl, 'ck-dial-a');
        const dB = await register(B.wsUrl, 'ck-dial-b');
        open.push(...users.map((u) => u.ws), dA, dB);
        const channels = new Map();
        for (const u of users) channels.set(u.id, (await userChannels(redis, u.id))[0]);

        const killed = await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
        assert.ok(killed >= 2, `CLIENT KILL TYPE pubsub killed ${killed} connections (expected at least one per node)`);
        await new Promise((r) => setTimeout(r, 30)); // a second kill, in the middle of the resubscription
        await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
        const at = Date.now();
        await waitNodesLinked(redis, nodes, { timeout: 5000, what: 'the node channels to be subscribed again' });
        await waitUntil(
            async () => {
                for (const [, ch] of channels) if ((await redis.numsub(ch)) !== 1) return false;
                return true;
            },
            { timeout: 5000, interval: 25, what: 'every user channel to be subscribed again' },
        );
        t.diagnostic(`resubscribed ${Date.now() - at} ms after the kill`);
        for (const u of users) {
            const from = u.node === A ? dB : dA;
            await waitDelivered(from, u.id, 1, { timeout: 3000 });
        }
        for (const u of users) await drain(u.ws, 20);
        await assertDial(dA, 'ck-1', delivered('ck-1', 1), 'a user of B after the kills');
        assert.equal(await nextText(users[1].ws), calledText({ sponsorUserId: 'ck-dial-a' }));
    });

    test('a subscriber killed for its output buffer limit recovers', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes } = await startCluster(t, { n: 2 });
        const [A, B] = nodes;
        const onB = await register(B.wsUrl, 'ob-b');
        const dA = await register(A.wsUrl, 'ob-dial');
        open.push(onB, dA);
        assert.equal(await redis.command('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 1024 512 1'), 'OK');
        // one message bigger than the hard limit: Redis drops B's subscriber connection (the limit
        // counts the reply list only, past the 16 KiB static buffer, so the message is 40 KB)
        const big = 'x'.repeat(40000);
        const reply = await dialAnswer(dA, { receiverUserId: 'ob-b', field1: big, id: 'big' }, 4000);
        t.diagnostic(`the big dialing answered ${reply.slice(0, 160)}`);
        assert.equal(JSON.parse(reply).type, 'dialing_response', 'the sender is told something');
        await waitUntil(() => /output buffer limits/.test(redis.log()), {
            timeout: 3000,
            what: 'Redis to log that it closed a client for its output buffer',
        });
        assert.equal(await redis.command('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 32mb 8mb 60'), 'OK');
        await waitNodesLinked(redis, nodes, { timeout: 5000 });
        await waitDelivered(dA, 'ob-b', 1, { timeout: 5000, what: 'ob-b reachable again after the subscriber was dropped' });
        await drain(onB, 100);
        const again = await dialAnswer(dA, { receiverUserId: 'ob-b', field1: big, id: 'big2' });
        assert.equal(again, dialingOkText('big2', 'ob-b', 1), 'a big message goes through with the default limit');
        assert.equal(await nextText(onB), calledText({ sponsorUserId: 'ob-dial', field1: big }));
    });

    test('Redis stalled (SIGSTOP 2.5 s, past the probe interval): the node keeps serving, remote dials are answered, and after SIGCONT cross-node works again', { timeout: 25000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes } = await startCluster(t, { n: 2 });
        const [A, B] = nodes;
        const onA = await register(A.wsUrl, 'st-a');
        const onB = await register(B.wsUrl, 'st-b');
        const dA = await register(A.wsUrl, 'st-dial-a');
        const dA2 = await register(A.wsUrl, 'st-dial-a2');
        open.push(onA, onB, dA, dA2);

        redis.pause();
        t.after(() => redis.resume());
        const paused = Date.now();
        // a remote dial first (it may have to wait for the link to be declared dead) ...
        const remote = dialAnswer(dA, { receiverUserId: 'st-b', id: 'remote1' }, 5000).then((text) => ({ text, ms: Date.now() - paused }));
        // ... and meanwhile the same node answers a local dial from another connection
        let ms = await assertDial(dA2, 'st-a', delivered('st-a', 1), 'a same-node dial while Redis is stalled');
        assert.ok(ms < 1000, `a same-node dial while Redis is stalled answered after ${ms} ms (the node must not block)`);
        assert.equal(await nextText(onA), calledText({ sponsorUserId: 'st-dial-a2' }));
        const first = await remote;
        const p = JSON.parse(first.text);
        assert.ok(
            p.type === 'dialing_response' && p.ok === false && ['cluster_unavailable', 'peer_gone'].includes(p.code),
            `a remote dial when the stall began: expected cluster_unavailable or peer_gone, got ${first.text}`,
        );
        assert.ok(first.ms < 2000, `the remote dial was answered while Redis was still stopped: took ${first.ms} ms`);

        // past three probe intervals the link is known dead: remote dials fail fast, local ones are at once
        await new Promise((r) => setTimeout(r, Math.max(0, paused + 1200 - Date.now())));
        ms = await assertDial(dA, 'st-b', unavailable, 'a remote dial 1.2 s into the stall');
        assert.ok(ms < 500, `cluster_unavailable during the stall took ${ms} ms`);
        ms = await assertDial(dA2, 'st-a', delivered('st-a', 1), 'a same-node dial 1.2 s into the stall');
        assert.ok(ms < 300, `a same-node dial during the stall took ${ms} ms`);
        assert.equal(await nextText(onA), calledText({ sponsorUserId: 'st-dial-a2' }));

        await new Promise((r) => setTimeout(r, Math.max(0, paused + 2500 - Date.now())));
        redis.resume();
        const resumed = Date.now();
        await waitNodesLinked(redis, nodes, { timeout: 5000, what: 'the node channels after SIGCONT' });
        await waitDelivered(dA, 'st-b', 1, { timeout: 5000, what: 'st-b reachable from A after SIGCONT' });
        t.diagnostic(`cross-node delivery back ${Date.now() - resumed} ms after SIGCONT`);
        const dB = await register(B.wsUrl, 'st-dial-b');
        open.push(dB);
        await waitDelivered(dB, 'st-a', 1, { timeout: 3000 });
        for (const n of nodes) assert.ok(n.alive(), `${n.nodeId} exited: ${n.stderr()}`);
    });

    test('two shards, one killed: users of the surviving shard stay reachable across nodes; users of the dead one get cluster_unavailable from nodes that do not hold them', { timeout: 25000 }, async (t) => {
        await requireRedisSupport();
        const open = closeAfter(t);
        const r1 = await startRedis();
        t.after(() => r1.stop());
        const r2 = await startRedis();
        t.after(() => r2.stop());
        const nodes = await startNodes(
            t,
            ['node-a', 'node-b'].map((nodeId) => ({ redis: [r1.addr, r2.addr], nodeId })),
        );
        const [A, B] = nodes;
        await waitNodesLinked(r1, nodes, { what: 'the node channels on shard 1' });
        await waitNodesLinked(r2, nodes, { what: 'the node channels on shard 2' });
        await waitCrossNode(nodes);

        // which shard holds which user: ask each Redis which one has the user's channel
        const shardOf = new Map();
        const onB = new Map();
        for (let i = 0; i < 24; i++) {
            const user = `sh-${i}`;
            const ws = await register(B.wsUrl, user);
            open.push(ws);
            onB.set(user, ws);
            const [c1, c2] = [await userChannels(r1, user), await userChannels(r2, user)];
            assert.equal(c1.length + c2.length, 1, `${user} is subscribed on exactly one shard: ${JSON.stringify({ r1: c1, r2: c2 })}`);
            shardOf.set(user, c1.length ? 1 : 2);
        }
        const of1 = [...shardOf].filter(([, s]) => s === 1).map(([u]) => u);
        const of2 = [...shardOf].filter(([, s]) => s === 2).map(([u]) => u);
        t.diagnostic(`shard 1: ${of1.length} users, shard 2: ${of2.length} users`);
        assert.ok(of1.length > 0 && of2.length > 0, `24 users are spread over both shards: ${JSON.stringify({ of1, of2 })}`);
        // every node maps a user to the same shard
        const witness = of1[0];
        const wsA = await register(A.wsUrl, witness, { id: 'w' });
        open.push(wsA);
        const [wc] = await userChannels(r1, witness);
        assert.equal(await r1.numsub(wc), 2, `${witness}: A subscribes it on the same shard as B`);
        wsA.terminate();
        await waitUntil(async () => (await r1.numsub(wc)) === 1, { timeout: 2000, what: `${witness}: back to B's subscription only` });

        const dA = await register(A.wsUrl, 'sh-dial-a');
        const dB = await register(B.wsUrl, 'sh-dial-b');
        open.push(dA, dB);
        await r1.kill('SIGKILL');
        await waitUnavailable(dA, of1[0], { what: `A to notice that shard 1 (${of1[0]}) is gone` });
        for (const user of of2) {
            await assertDial(dA, user, delivered(user, 1), `${user} (shard 2, alive) from A`);
            assert.equal(await nextText(onB.get(user)), calledText({ sponsorUserId: 'sh-dial-a' }));
        }
        for (const user of of1) {
            await assertDial(dA, user, unavailable, `${user} (shard 1, dead) from A, which does not hold it`);
            await assertDial(dB, user, delivered(user, 1), `${user} (shard 1, dead) from B, which holds it`);
            assert.equal(await nextText(onB.get(user)), calledText({ sponsorUserId: 'sh-dial-b' }));
        }
        for (const n of nodes) assert.ok(n.alive(), `${n.nodeId} exited: ${n.stderr()}`);
    });
});
