// Nodes configured with the Sentinel form of signaling.redis ({sentinel: {master, addresses}})
// follow a failover without being restarted: a forced one (SENTINEL FAILOVER, the old master
// stays up and is demoted later) and a real one (the master is SIGKILLed). "Through the new
// master" is checked in Redis itself: the node and user channels must be subscribed there,
// since PUBLISH on a demoted master would still reach subscribers on that same instance.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
    dialAnswer,
    drain,
    requireRedisSupport,
    startNodes,
    startRedis,
    startSentinel,
    userChannels,
    waitCrossNode,
    waitDelivered,
    waitNodesLinked,
} from '../lib/redis.mjs';
import { calledText, dialingOkText, nextText, register } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAll } from '../lib/wsclient.mjs';

const MASTER = 'mymaster';

/** master + replica + one sentinel (quorum 1), the replica known to the sentinel. */
async function sentinelSet(t) {
    await requireRedisSupport();
    const master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
    t.after(() => master.stop());
    const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port), '--repl-diskless-sync-delay', '0'] });
    t.after(() => replica.stop());
    await waitUntil(async () => (await replica.command('ROLE'))[3] === 'connected', {
        timeout: 5000,
        what: 'the replica to sync with the master',
    });
    const sentinel = await startSentinel({ masterName: MASTER, masterPort: master.port, quorum: 1, down_after_ms: 1000, failover_timeout_ms: 5000 });
    t.after(() => sentinel.stop());
    await waitUntil(
        async () => {
            const replicas = await sentinel.command('SENTINEL', 'replicas', MASTER);
            return replicas.some((r) => {
                const f = Object.fromEntries(r.flatMap((v, i, a) => (i % 2 ? [] : [[v, a[i + 1]]])));
                return f.port === String(replica.port) && f.flags === 'slave' && f['master-link-status'] === 'ok';
            });
        },
        { timeout: 10000, interval: 100, what: 'the sentinel to list the replica' },
    );
    return { master, replica, sentinel };
}

/** Two nodes on the sentinel form, ready; users on each, dialers on each. */
async function nodesOn(t, sentinel, master) {
    const value = { sentinel: { master: MASTER, addresses: [sentinel.addr] } };
    const nodes = await startNodes(
        t,
        ['node-a', 'node-b'].map((nodeId) => ({ redis: value, nodeId })),
    );
    await waitNodesLinked(master, nodes, { what: 'the nodes to find the master through the sentinel' });
    await waitCrossNode(nodes);
    const [A, B] = nodes;
    const list = [];
    t.after(() => closeAll(list));
    const onA = await register(A.wsUrl, 'sn-a');
    const onB = await register(B.wsUrl, 'sn-b');
    const dA = await register(A.wsUrl, 'sn-dial-a');
    const dB = await register(B.wsUrl, 'sn-dial-b');
    list.push(onA, onB, dA, dB);
    assert.equal(await dialAnswer(dA, { receiverUserId: 'sn-b', id: 'pre' }), dialingOkText('pre', 'sn-b', 1), 'cross-node before the failover');
    assert.equal(await nextText(onB), calledText({ sponsorUserId: 'sn-dial-a' }));
    return { nodes, A, B, onA, onB, dA, dB, list };
}

/** Polls until the nodes' channels are on `newMaster` and dials work both ways again. */
async function assertFollowed(t, { newMaster, nodes, onA, onB, dA, dB, since, timeout }) {
    await waitNodesLinked(newMaster, nodes, { timeout, what: `the nodes' channels on the new master ${newMaster.addr}` });
    await waitUntil(
        async () => {
            for (const user of ['sn-a', 'sn-b']) {
                const chans = await userChannels(newMaster, user);
                if (chans.length !== 1 || (await newMaster.numsub(chans[0])) !== 1) return false;
            }
            return true;
        },
        { timeout: Math.max(2000, timeout - (Date.now() - since)), interval: 50, what: 'the users resubscribed on the new master' },
    );
    await waitDelivered(dA, 'sn-b', 1, { timeout: 5000, what: 'sn-b reachable from A through the new master' });
    await waitDelivered(dB, 'sn-a', 1, { timeout: 5000, what: 'sn-a reachable from B through the new master' });
    t.diagnostic(`the nodes followed ${Date.now() - since} ms after the failover began`);
    await drain(onB, 100);
    await drain(onA, 20);
    assert.equal(await dialAnswer(dA, { receiverUserId: 'sn-b', field1: 'post', id: 'post' }), dialingOkText('post', 'sn-b', 1));
    assert.equal(await nextText(onB), calledText({ sponsorUserId: 'sn-dial-a', field1: 'post' }));
    for (const n of nodes) assert.ok(n.alive(), `${n.nodeId} exited: ${n.stderr()}`);
}

describe('scale-out through Sentinel', { timeout: 120000 }, () => {
    test('SENTINEL FAILOVER: the nodes move to the new master (their channels are subscribed there) without a restart', { timeout: 40000 }, async (t) => {
        const { master, replica, sentinel } = await sentinelSet(t);
        const ctx = await nodesOn(t, sentinel, master);
        const pids = ctx.nodes.map((n) => n.pid);
        const since = Date.now();
        await waitUntil(
            async () => {
                try {
                    return (await sentinel.command('SENTINEL', 'FAILOVER', MASTER)) === 'OK';
                } catch (err) {
                    if (/INPROG/.test(err.message)) return true;
                    throw err; // NOGOODSLAVE and the like: retried until the deadline
                }
            },
            { timeout: 5000, interval: 200, what: 'SENTINEL FAILOVER to be accepted' },
        );
        await waitUntil(async () => (await sentinel.masterAddr()) === replica.addr, {
            timeout: 10000,
            interval: 50,
            what: `the sentinel to report ${replica.addr} as the master`,
        });
        t.diagnostic(`sentinel switched ${Date.now() - since} ms after SENTINEL FAILOVER`);
        // the old master stays up; Sentinel demotes it (and kills its clients) about 10 s later
        await assertFollowed(t, { ...ctx, newMaster: replica, since, timeout: 15000 });
        assert.deepEqual(ctx.nodes.map((n) => n.pid), pids, 'no node was restarted');
    });

    test('the master dies (SIGKILL): Sentinel promotes the replica and the nodes follow within ~10 s', { timeout: 40000 }, async (t) => {
        const { master, replica, sentinel } = await sentinelSet(t);
        const ctx = await nodesOn(t, sentinel, master);
        const pids = ctx.nodes.map((n) => n.pid);
        await master.kill('SIGKILL');
        const since = Date.now();
        await waitUntil(async () => (await sentinel.masterAddr()) === replica.addr, {
            timeout: 10000,
            interval: 50,
            what: `the sentinel to promote ${replica.addr}`,
        });
        t.diagnostic(`sentinel switched ${Date.now() - since} ms after the kill`);
        await assertFollowed(t, { ...ctx, newMaster: replica, since, timeout: 10000 });
        assert.deepEqual(ctx.nodes.map((n) => n.pid), pids, 'no node was restarted');
    });
});
