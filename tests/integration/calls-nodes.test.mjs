// Level 2 ("calls", /work/shared/design/calls.md) across nodes on one real redis-server (scale-out,
// docs/scaling.md "Calls (level 2)"): one node per route owns every call of the route (the lease
// `sig:o:default/WsService` in Redis), devices on the other nodes reach it through Redis, so every
// single-node rule holds across nodes:
//   - ringing: a `call` from either node rings the callee's level-2 devices (incoming_call) and
//     level-1 connections (called) on every node, and `delivered` counts them all; a level-2
//     create_connect on either node lists the user's live calls;
//   - races on num-threads 4, 100 rounds each (20 under valgrind): first accept wins between devices on two nodes, and
//     glare between a user on node-a and one on node-b;
//   - signals: the caller's early signals are buffered and flushed in order to the accepting device
//     on the other node; then both ways in order, seq from 1;
//   - reject / rejected_elsewhere, cancel, busy, hangup and its repeats, ring timeout (short timer);
//     a call, early signals and the cancel pipelined from the node that does not own the calls keep
//     their order; a client-chosen callId retried from the other node never rings twice;
//   - connection loss: an abrupt loss resumed on the other node within the grace, peer_gone without
//     it, a clean close is the hangup; a node holding parties SIGKILLed (resumed on a third node
//     with every signal sent after the death, also the one that found it; peer_gone); the same
//     with a quiet call (the owner's ping finds the dead node);
//   - the owner's own subscriber away while a party on another node drops: that node sends the loss
//     again until the owner takes it (peerConnected:false, peer_gone);
//   - the owner stopped (SIGTERM): its calls end with shutdown on every node, the lease moves at once;
//   - the owner SIGKILLed: a survivor takes the lease, new calls ring and are answered (the dead
//     owner's calls are lost: nobody lists them);
//   - Redis down: on the node that does not own the calls a level-2 request is answered
//     cluster_unavailable, a level-2 create_connect still succeeds (calls []); the owner, losing its
//     lease while alive, ends its calls with `shutdown`; with Redis back, calls work again.
//   - a level-2 device is reachable from the other node as soon as its create_connect is answered
//     (the answer waits for Redis to confirm the subscription); a `call` whose ask for the callee
//     Redis leaves unanswered (CLIENT PAUSE) is answered cluster_unavailable, not offline.
// Every wait is bounded; the nodes run with lib/redis.mjs FAST_REDIS_TIMINGS (probe interval 200 ms,
// so a lease lasts 600 ms). Under valgrind the shared clusters' result timeout is 8 times longer: a
// `call` waits that long for the nodes holding the callee, and a node under valgrind can stall past
// 500 ms. The shared clusters make node-a the owner (it starts alone and takes the lease before
// node-b starts), so each test knows which side is the owner's.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { acceptRace, clientsOf, closeRound, device, leftOver, quietAll, rounds, SLOW, stopClean, T, uid } from '../lib/callclient.mjs';
import { FAST_REDIS_TIMINGS, nodeChannel, nodeLogs, requireRedisSupport, startCluster, startNode, startRedis, waitCrossNode, waitNodesLinked } from '../lib/redis.mjs';
import { waitUntil } from '../lib/wait.mjs';

const J = JSON.stringify;
const LEASE = 'sig:o:default/WsService';
const RING = 20000 * SLOW; // no ring timeout during a test of the main cluster
const SHORT = 1500 * SLOW; // the ring-timeout cluster
const ROUNDS = SLOW > 1 ? 20 : 100; // per race loop (20 under valgrind)
const BUDGET_MS = 60000 * SLOW; // per race loop
const GRACE = 3000 * SLOW; // reconnect-grace of the main cluster

/** The exact answer to a level-2 request when no owner can be reached. */
const unavailable = (type, id) =>
    J({ type: `${type}_response`, ok: false, msg: 'the node that owns the calls cannot be reached', code: 'cluster_unavailable', id });

const isUnavailable = (text) => {
    try {
        return JSON.parse(text).code === 'cluster_unavailable';
    } catch {
        return false;
    }
};

/** Polls until the lease names `nodeId` (or, with nodeId undefined, any node); returns the holder. */
async function waitOwner(redis, nodeId, { timeout = 5000 * SLOW, nodes = [] } = {}) {
    let last;
    try {
        await waitUntil(
            async () => {
                last = await redis.command('GET', LEASE);
                return nodeId === undefined ? last !== null : last === nodeId;
            },
            { timeout, interval: 25, what: `the lease ${LEASE} to name ${nodeId ?? 'a node'}` },
        );
    } catch (err) {
        throw new Error(`${err.message}; last GET: ${J(last)}${nodeLogs(nodes)}`);
    }
    return last;
}

/**
 * Polls until a level-2 `call` from every node is decided by an owner (a call to a user nobody holds:
 * call_response ended, call_ended offline), not answered cluster_unavailable: every node knows the owner.
 */
async function waitCallsReady(nodes, list, { timeout = 5000 * SLOW } = {}) {
    const probes = [];
    for (const n of nodes) {
        const p = await device(n.wsUrl, uid(`probe-${n.nodeId}`), { device: 'probe' });
        list?.push(p);
        probes.push(p);
    }
    const last = {};
    try {
        await waitUntil(
            async () => {
                let all = true;
                for (const [i, p] of probes.entries()) {
                    if (last[i] === 'ok') continue;
                    const r = await p.call({ to: uid('nobody'), media: 'audio' }, { timeout: 2000 * SLOW });
                    if (r.msg.ok === true) {
                        assert.equal(r.text, T.callResponse({ id: r.id, callId: r.msg.data.callId, state: 'ended' }), `${nodes[i].nodeId}: a call to nobody`);
                        await p.expect(T.ended({ callId: r.msg.data.callId, reason: 'offline' }));
                        last[i] = 'ok';
                    } else {
                        last[i] = r.text;
                        all = false;
                    }
                }
                return all;
            },
            { timeout, interval: 50, what: 'every node to reach the owner of the calls' },
        );
    } catch (err) {
        throw new Error(`${err.message}; last answers: ${J(last)}${nodeLogs(nodes)}`);
    } finally {
        for (const p of probes) p.ws.terminate();
    }
}

/**
 * A redis-server and `n` nodes (node-a, node-b, ...) whose calls node-a owns: node-a starts alone and
 * takes the lease, then the others start; ready once they are linked, dialing crosses nodes, and a
 * call from each node reaches the owner. {redis, nodes, stop()}.
 */
async function ownedCluster({ n = 2, settings = [], threads = 4 } = {}) {
    const timings = FAST_REDIS_TIMINGS.map((line) => (line.startsWith('signaling.redis-result-timeout:') ? `signaling.redis-result-timeout: ${500 * SLOW}` : line));
    await requireRedisSupport();
    const redis = await startRedis();
    const nodes = [];
    const stop = async () => {
        const errors = [];
        for (const node of nodes) {
            if (node.killedOnPurpose) continue; // a test SIGKILLed it
            try {
                await stopClean(node);
            } catch (err) {
                errors.push(err);
            }
        }
        await redis.stop();
        if (errors.length) throw errors[0];
    };
    try {
        nodes.push(await startNode({ redis: redis.addr, nodeId: 'node-a', settings, threads, timings }));
        await waitOwner(redis, 'node-a', { nodes });
        for (const nodeId of ['node-b', 'node-c', 'node-d'].slice(0, n - 1)) {
            nodes.push(await startNode({ redis: redis.addr, nodeId, settings, threads, timings }));
        }
        await waitNodesLinked(redis, nodes);
        await waitCrossNode(nodes);
        await waitCallsReady(nodes);
        assert.equal(await redis.command('GET', LEASE), 'node-a', 'node-a still owns the calls');
    } catch (err) {
        for (const node of nodes) await node.stop('SIGKILL');
        await redis.stop();
        throw err;
    }
    return { redis, nodes, stop };
}

/** A redis-server and two nodes (num-threads 2, the main ring timeout) whichever owns the calls, ready for calls:
 * {redis, nodes, ownerId, owner, other}. */
async function ownerAndOther(t) {
    const { redis, nodes } = await startCluster(t, { n: 2, threads: 2, settings: [`signaling.call.ring-timeout: ${RING}`] });
    const ownerId = await waitOwner(redis, undefined, { nodes });
    await waitCallsReady(nodes);
    const owner = nodes.find((n) => n.nodeId === ownerId);
    return { redis, nodes, ownerId, owner, other: nodes.find((n) => n !== owner) };
}

/**
 * A ringing call across nodes: the caller `caller` registers on `callerUrl` (deviceId `callerDevice`),
 * the callee's level-2 devices on `callees` ([url, deviceId] pairs) and level-1 connections on
 * `legacyUrls`; then the call. Asserts the exact call_response (ringing, delivered {level2, legacy}),
 * each device's incoming_call (expiresIn exactly `ringTimeout`) and each level-1 connection's called.
 * Every client goes into `list`. Returns {A, B, a, bs, legacies, callId, media, name}.
 */
async function ringAcross(list, {
    callerUrl,
    callees,
    legacyUrls = [],
    caller = uid('caller'),
    callee = uid('callee'),
    callerDevice = 'a-1',
    media = 'audio',
    name = 'Caller',
    ringTimeout = RING,
    callId: chosen,
} = {}) {
    const a = await device(callerUrl, caller, { device: callerDevice, name });
    list.push(a);
    const bs = [];
    for (const [url, d] of callees) {
        const b = await device(url, callee, { device: d });
        list.push(b);
        bs.push(b);
    }
    const legacies = [];
    for (const url of legacyUrls) {
        const l = await device(url, callee, { level: 1, label: `${callee}/level-1@${legacies.length}` });
        list.push(l);
        legacies.push(l);
    }
    const extra = chosen === undefined ? {} : { callId: chosen };
    const r = await a.call({ to: callee, media, sponsorUserName: name, ...extra });
    const callId = r.msg.data?.callId;
    assert.equal(typeof callId, 'string', `call_response carries a callId: ${r.text}`);
    assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: bs.length, legacy: legacies.length }), 'call_response');
    for (const b of bs) await b.expect(T.incoming({ callId, from: caller, name, media, expiresIn: ringTimeout }));
    for (const l of legacies) assert.equal(await l.take('called'), T.called({ from: caller, name, field1: callId, field2: media, callId }), `${l.label}: called`);
    return { A: caller, B: callee, a, bs, legacies, callId, media, name };
}

/** bs[winner] (deviceId `byDevice`) accepts the ringing call: asserts the reply, both call_accepted, answered_elsewhere to the rest. */
async function accept({ a, bs, B, callId }, winner, byDevice) {
    const b = bs[winner];
    const id = b.post({ type: 'call_accept', callId });
    await b.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
    await a.expect(T.accepted({ callId, byUser: B, byDevice, polite: false }));
    await b.expect(T.accepted({ callId, byUser: B, byDevice, polite: true }));
    for (const [i, other] of bs.entries()) if (i !== winner) await other.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
    return b;
}

/**
 * Two nodes whose calls node-a owns (num-threads 2, reconnect-grace 2 s, x SLOW), stopped after `t`, and an active
 * call from a caller on node-a to device b-1 on node-b: {grace, cluster, nodes, call, b (the callee's client)}.
 */
async function activeAcrossTwo(t, list) {
    const grace = 2000 * SLOW;
    const cluster = await ownedCluster({ n: 2, threads: 2, settings: [`signaling.call.ring-timeout: ${RING}`, `signaling.call.reconnect-grace: ${grace}`] });
    t.after(() => cluster.stop());
    const [A, B] = cluster.nodes;
    const call = await ringAcross(list, { callerUrl: A.wsUrl, callees: [[B.wsUrl, 'b-1']] });
    const b = await accept(call, 0, 'b-1');
    return { grace, cluster, nodes: cluster.nodes, call, b };
}

/** Denies SUBSCRIBE to every Redis client (ACL) until the returned restore() (idempotent; also run after `t`). */
async function denySubscribe(t, redis) {
    await redis.command('ACL', 'SETUSER', 'default', '-subscribe');
    let restored = false;
    const restore = async () => {
        if (!restored) await redis.command('ACL', 'SETUSER', 'default', '+subscribe');
        restored = true;
    };
    t.after(restore);
    return restore;
}

/** Polls until Redis has no subscriber on node `nodeId`'s channel (it died, or its subscriber was cut). */
const waitChannelGone = (redis, nodeId) =>
    waitUntil(async () => (await redis.numsub(nodeChannel(nodeId))) === 0, { timeout: 5000 * SLOW, what: `${nodeId}'s channel unsubscribed` });

describe('level 2 across two nodes (node-a owns the calls), num-threads 4', { timeout: 600000 * SLOW }, () => {
    let cluster;
    let A; // node-a: the owner
    let B; // node-b
    before(async () => {
        cluster = await ownedCluster({ n: 2, threads: 4, settings: [`signaling.call.ring-timeout: ${RING}`, `signaling.call.reconnect-grace: ${GRACE}`] });
        [A, B] = cluster.nodes;
    });
    after(() => cluster?.stop());

    test('ringing across nodes: devices and a level-1 connection on both nodes, from either node; create_connect lists the call on both', async (t) => {
        const list = clientsOf(t);
        // caller on the owner's node, then on the other one
        for (const [callerNode, otherNode] of [[A, B], [B, A]]) {
            const call = await ringAcross(list, {
                callerUrl: callerNode.wsUrl,
                callees: [[A.wsUrl, 'b-on-a'], [B.wsUrl, 'b-on-b']],
                legacyUrls: [B.wsUrl],
                media: 'video',
                name: `Ann of ${callerNode.nodeId}`,
            });
            const { a, bs, legacies, callId, A: caller, B: callee } = call;
            // a new device of either user on either node lists the live call; the callee's is rung too
            for (const node of [A, B]) {
                const c2 = await device(node.wsUrl, caller, {
                    device: `a-2-${node.nodeId}`,
                    calls: [{ callId, state: 'ringing', role: 'caller', peerUserId: callee, media: 'video' }],
                });
                const b3 = await device(node.wsUrl, callee, {
                    device: `b-3-${node.nodeId}`,
                    calls: [{ callId, state: 'ringing', role: 'callee', peerUserId: caller, media: 'video' }],
                });
                list.push(c2, b3);
                const inc = JSON.parse(await b3.take('incoming_call', callId));
                assert.ok(inc.data.expiresIn > 0 && inc.data.expiresIn <= RING, `expiresIn left: ${inc.data.expiresIn}`);
                assert.equal(J(inc), T.incoming({ callId, from: caller, name: call.name, media: 'video', expiresIn: inc.data.expiresIn }), `${b3.label}: incoming_call`);
                bs.push(b3);
                c2.ws.close(1000); // not a party: its close changes nothing
            }
            // the device on the node that is not the caller's answers
            const winner = callerNode === A ? 1 : 0;
            const byDevice = winner === 1 ? 'b-on-b' : 'b-on-a';
            const b = await accept(call, winner, byDevice);
            const id = a.post({ type: 'call_hangup', callId });
            await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
            await b.expect(T.ended({ callId, reason: 'hangup' }));
            // level-1 connections never get a level-2 message; nothing else anywhere
            await quietAll([a, ...bs, ...legacies]);
            t.diagnostic(`caller on ${callerNode.nodeId}, answered on ${otherNode.nodeId}: ok`);
        }
    });

    test(`first accept wins: devices on node-a and node-b accept in the same tick, ${ROUNDS} times`, { timeout: BUDGET_MS + 20000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        const outcomes = await rounds(t, ROUNDS, BUDGET_MS, async (i) => {
            const mine = [];
            // the caller's node alternates every two rounds, the accept order every round
            const callerNode = Math.floor(i / 2) % 2 ? B : A;
            const call = await ringAcross(mine, { callerUrl: callerNode.wsUrl, callees: [[A.wsUrl, 'b-on-a'], [B.wsUrl, 'b-on-b']] });
            list.push(...mine);
            // both in the same tick, in an order that alternates
            const { firstWon, wDevice } = await acceptRace(call, ['b-on-a', 'b-on-b'], i % 2, i);
            closeRound(mine);
            return `${firstWon ? 'first' : 'second'} sent won (${wDevice})`;
        });
        assert.equal([...outcomes.values()].reduce((x, y) => x + y, 0), ROUNDS);
    });

    test(`glare: A on node-a calls B on node-b while B calls A, at the same moment, ${ROUNDS} times: one active call, no error`, { timeout: BUDGET_MS + 20000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        await rounds(t, ROUNDS, BUDGET_MS, async (i) => {
            const [UA, UB] = [uid('glare-a'), uid('glare-b')];
            const a = await device(A.wsUrl, UA, { device: 'a-dev' });
            const b = await device(B.wsUrl, UB, { device: 'b-dev' });
            list.push(a, b);
            // odd rounds: client-chosen callIds (either may be the lower one); even rounds: the server's
            const chosen = i % 2 ? { a: `g${i}-${i % 4 === 1 ? 'x' : 'y'}-${uid('n')}`, b: `g${i}-${i % 4 === 1 ? 'y' : 'x'}-${uid('n')}` } : null;
            const msgA = { type: 'call', receiverUserId: UB, media: 'video', ...(chosen ? { callId: chosen.a } : {}) };
            const msgB = { type: 'call', receiverUserId: UA, media: 'video', ...(chosen ? { callId: chosen.b } : {}) };
            // the order of the two sends alternates every two rounds
            let idA;
            let idB;
            if (Math.floor(i / 2) % 2) {
                idB = b.post(msgB);
                idA = a.post(msgA);
            } else {
                idA = a.post(msgA);
                idB = b.post(msgB);
            }
            const ra = JSON.parse(await a.reply(idA));
            const rb = JSON.parse(await b.reply(idB));
            assert.equal(ra.ok, true, `round ${i}: A's call: ${J(ra)}`);
            assert.equal(rb.ok, true, `round ${i}: B's call: ${J(rb)}`);
            const glared = [ra, rb].filter((r) => r.data?.glare === true);
            assert.equal(glared.length, 1, `round ${i}: one glare answer: ${J([ra, rb])}`);
            const g = glared[0];
            const other = g === ra ? rb : ra;
            const gSide = g === ra ? { me: a, U: UA, peer: b, P: UB } : { me: b, U: UB, peer: a, P: UA };
            const W = g.data.callId;
            assert.equal(J(g), T.callResponse({ id: g.id, callId: W, state: 'active', level2: 0, legacy: 0, glare: true }), `round ${i}: the glare answer`);
            const O = other.data?.callId;
            assert.equal(J(other), T.callResponse({ id: other.id, callId: O, state: 'ringing', level2: 1, legacy: 0 }), `round ${i}: the ringing answer`);
            if (chosen) {
                const own = gSide.me === a ? chosen.a : chosen.b;
                const theirs = gSide.me === a ? chosen.b : chosen.a;
                assert.equal(O, theirs, `round ${i}: the ringing call is the peer's`);
                assert.ok(W === theirs || (W === own && own < theirs), `round ${i}: the winner ${W} is the ringing call, or the lower id of two at once`);
            }
            let outcome;
            let caller;
            let callee;
            if (W === O) {
                outcome = 'joined the ringing call';
                callee = gSide;
                caller = { me: gSide.peer, U: gSide.P };
                await gSide.me.expect(T.incoming({ callId: O, from: gSide.P, name: '', media: 'video', expiresIn: RING }));
            } else {
                outcome = 'lower id won (replaced)';
                caller = gSide;
                callee = { me: gSide.peer, U: gSide.P };
                assert.ok(W < O, `round ${i}: ${W} won over ${O} although it is not lower`);
                await gSide.me.expect(T.incoming({ callId: O, from: gSide.P, name: '', media: 'video', expiresIn: RING }));
                await gSide.peer.expect(T.ended({ callId: O, reason: 'replaced' }));
                await gSide.me.expect(T.ended({ callId: O, reason: 'answered_elsewhere' }));
            }
            outcome += `, glare answer on ${gSide.me === a ? 'node-a' : 'node-b'}`;
            const calleeDevice = callee.me === a ? 'a-dev' : 'b-dev';
            await caller.me.expect(T.accepted({ callId: W, byUser: callee.U, byDevice: calleeDevice, polite: false, glare: true }));
            await callee.me.expect(T.accepted({ callId: W, byUser: callee.U, byDevice: calleeDevice, polite: true, glare: true }));
            // one active call between them: signals pass both ways on W, numbered from 1
            let id = a.post({ type: 'call_signal', callId: W, kind: 'offer', data: { from: 'a' } });
            await a.expectReply(id, T.response('call_signal', { id, callId: W, state: 'active' }));
            id = b.post({ type: 'call_signal', callId: W, kind: 'offer', data: { from: 'b' } });
            await b.expectReply(id, T.response('call_signal', { id, callId: W, state: 'active' }));
            await b.expect(T.signal({ callId: W, fromUser: UA, fromDevice: 'a-dev', seq: 1, kind: 'offer', data: '{"from":"a"}' }));
            await a.expect(T.signal({ callId: W, fromUser: UB, fromDevice: 'b-dev', seq: 1, kind: 'offer', data: '{"from":"b"}' }));
            const rest = await leftOver([a, b], 20);
            assert.deepEqual(rest, {}, `round ${i} (${outcome}): nothing more`);
            // the only live call of either: a new device of each, on the other node, lists just W
            if (i % 10 === 0) {
                const a2 = await device(B.wsUrl, UA, { calls: [{ callId: W, state: 'active', role: caller.U === UA ? 'caller' : 'callee', peerUserId: UB, media: 'video' }] });
                const b2 = await device(A.wsUrl, UB, { calls: [{ callId: W, state: 'active', role: caller.U === UB ? 'caller' : 'callee', peerUserId: UA, media: 'video' }] });
                list.push(a2, b2);
                a2.ws.close(1000);
                b2.ws.close(1000);
            }
            id = a.post({ type: 'call_hangup', callId: W });
            await a.expectReply(id, T.response('call_hangup', { id, callId: W, state: 'ended' }));
            await b.expect(T.ended({ callId: W, reason: 'hangup' }));
            closeRound([a, b]);
            return outcome;
        });
    });

    test('a level-2 device is reachable from the other node as soon as its create_connect is answered: fresh users registering on node-b while others leave, each called from node-a at its answer', async (t) => {
        // the answer waits for Redis to confirm node-b's subscription to the user (as level 1's does), so a call right
        // after it finds the device, also when that SUBSCRIBE queues behind the UNSUBSCRIBEs of users leaving meanwhile
        const list = clientsOf(t);
        const CHAINS = 4;
        const PER_CHAIN = SLOW > 1 ? 8 : 25;
        await Promise.all(
            Array.from({ length: CHAINS }, async (_, c) => {
                for (let i = 0; i !== PER_CHAIN; ++i) {
                    const user = uid(`fresh-${c}-${i}`);
                    const a = await device(A.wsUrl, uid(`fresh-caller-${c}-${i}`), { device: 'a' });
                    const b = await device(B.wsUrl, user, { device: 'b' });
                    list.push(a, b);
                    const r = await a.call({ to: user, media: 'audio' });
                    assert.equal(r.text, T.callResponse({ id: r.id, callId: r.msg.data?.callId, state: 'ringing', level2: 1, legacy: 0 }), `chain ${c}, call ${i}`);
                    await b.take('incoming_call', r.msg.data.callId);
                    closeRound([a, b]);
                }
            }),
        );
    });

    test('signals across nodes: early caller signals flushed in order to the accepting device on the other node; then both ways, seq from 1', async (t) => {
        const list = clientsOf(t);
        // [caller's node, accepting device's node]: the caller on the owner's node, then on the other
        for (const [callerNode, acceptNode] of [[A, B], [B, A]]) {
            const otherNode = acceptNode === A ? B : A;
            const call = await ringAcross(list, {
                callerUrl: callerNode.wsUrl,
                callees: [[otherNode.wsUrl, 'b-other'], [acceptNode.wsUrl, 'b-acc']],
                media: 'video',
            });
            const { a, bs, callId, A: caller, B: callee } = call;
            const [bo, bw] = bs;
            const datas = [
                '{"type":"offer", "sdp" : "v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\n"}',
                '{"candidate":"candidate:1 1 udp 2122260223 192.168.1.2 54400 typ host","sdpMid":"0","sdpMLineIndex":0}',
                '[1, 2.50, {"a": [true, null, "\\u00e9"]}]',
                '"a string"',
                '12.5e3',
                '{"candidate":"","sdpMid":"0"}',
            ];
            const kinds = ['offer', 'candidate', 'other', 'x', '', 'candidate'];
            // sent at once, without waiting for the replies: the owner keeps them in order
            for (const [i, data] of datas.entries()) a.send(`{"type":"call_signal","id":"early-${i}","callId":"${callId}","kind":"${kinds[i]}","data":  ${data} }`);
            for (const i of datas.keys()) await a.expectReply(`early-${i}`, T.response('call_signal', { id: `early-${i}`, callId, state: 'ringing' }));
            let id = bo.post({ type: 'call_signal', callId, kind: 'answer', data: {} });
            await bo.expectReply(id, T.error('call_signal', 'bad_state', id));
            await quietAll([bo, bw], 150 * SLOW);

            id = bw.post({ type: 'call_accept', callId });
            await bw.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
            await a.expect(T.accepted({ callId, byUser: callee, byDevice: 'b-acc', polite: false }));
            // to the accepting device: call_accepted, then the buffered signals in order
            const accepted = await bw.takeWhere(() => true, 'the first message after the accept reply');
            assert.equal(accepted.text, T.accepted({ callId, byUser: callee, byDevice: 'b-acc', polite: true }), `${bw.label}: call_accepted first`);
            for (const [i, data] of datas.entries()) {
                const next = await bw.takeWhere(() => true, `buffered signal ${i + 1}`);
                assert.equal(next.text, T.signal({ callId, fromUser: caller, fromDevice: 'a-1', seq: i + 1, kind: kinds[i], data }), `buffered signal ${i + 1}`);
            }
            await bo.expect(T.ended({ callId, reason: 'answered_elsewhere' }));

            // the callee's direction starts at 1; a burst each way at once, each side in order
            bw.send(`{"type":"call_signal","callId":"${callId}","kind":"answer","data":{"type":"answer","sdp":"v=0\\r\\n"},"id":"ans"}`);
            await bw.expectReply('ans', T.response('call_signal', { id: 'ans', callId, state: 'active' }));
            await a.expect(T.signal({ callId, fromUser: callee, fromDevice: 'b-acc', seq: 1, kind: 'answer', data: '{"type":"answer","sdp":"v=0\\r\\n"}' }));
            const N = 30;
            for (let i = 0; i < N; i++) {
                a.send(`{"type":"call_signal","callId":"${callId}","kind":"candidate","data":{"n":${i}},"id":"ca${i}"}`);
                bw.send(`{"type":"call_signal","callId":"${callId}","kind":"candidate","data":{"n":${i}},"id":"cb${i}"}`);
            }
            for (let i = 0; i < N; i++) {
                await a.expectReply(`ca${i}`, T.response('call_signal', { id: `ca${i}`, callId, state: 'active' }));
                await bw.expectReply(`cb${i}`, T.response('call_signal', { id: `cb${i}`, callId, state: 'active' }));
            }
            for (let i = 0; i < N; i++) {
                assert.equal(
                    await bw.take('call_signal', callId),
                    T.signal({ callId, fromUser: caller, fromDevice: 'a-1', seq: datas.length + 1 + i, kind: 'candidate', data: `{"n":${i}}` }),
                    `caller -> callee signal ${i}`,
                );
                assert.equal(
                    await a.take('call_signal', callId),
                    T.signal({ callId, fromUser: callee, fromDevice: 'b-acc', seq: 2 + i, kind: 'candidate', data: `{"n":${i}}` }),
                    `callee -> caller signal ${i}`,
                );
            }
            // the device that lost cannot signal
            id = bo.post({ type: 'call_signal', callId, kind: 'x', data: 1 });
            await bo.expectReply(id, T.error('call_signal', 'not_a_party', id));
            id = bw.post({ type: 'call_hangup', callId });
            await bw.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
            await a.expect(T.ended({ callId, reason: 'hangup' }));
            await quietAll([a, bo, bw]);
            t.diagnostic(`caller on ${callerNode.nodeId}, accepted on ${acceptNode.nodeId}: ok`);
        }
    });

    test('reject across nodes: rejected to the caller, rejected_elsewhere to the callee device on the other node; reason busy -> busy; repeats', async (t) => {
        const list = clientsOf(t);
        const cases = [
            ['declined', 'rejected', A, 'b-on-b'],
            [undefined, 'rejected', B, 'b-on-a'],
            ['busy', 'busy', A, 'b-on-a'],
            ['declined', 'rejected', B, 'b-on-b'],
        ];
        for (const [reason, toCaller, callerNode, rejecter] of cases) {
            const { a, bs, callId } = await ringAcross(list, { callerUrl: callerNode.wsUrl, callees: [[A.wsUrl, 'b-on-a'], [B.wsUrl, 'b-on-b']] });
            const [rj, other] = rejecter === 'b-on-a' ? bs : [bs[1], bs[0]];
            const msg = { type: 'call_reject', callId };
            if (reason) msg.reason = reason;
            const what = `reason ${reason}, caller on ${callerNode.nodeId}, ${rejecter} rejects`;
            let id = rj.post(msg);
            await rj.expectReply(id, T.response('call_reject', { id, callId, state: 'ended' }), what);
            await a.expect(T.ended({ callId, reason: toCaller }));
            await other.expect(T.ended({ callId, reason: 'rejected_elsewhere' }));
            id = rj.post(msg);
            await rj.expectReply(id, T.response('call_reject', { id, callId, state: 'ended' }));
            await rj.expect(T.ended({ callId, reason: toCaller, repeat: true }));
            id = a.post({ type: 'call_hangup', callId });
            await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
            await a.expect(T.ended({ callId, reason: toCaller, repeat: true }));
            // an accept after the reject, from the other node's device: bad_state and the same call_ended
            id = other.post({ type: 'call_accept', callId });
            await other.expectReply(id, T.error('call_accept', 'bad_state', id));
            await other.expect(T.ended({ callId, reason: 'rejected_elsewhere', repeat: true }));
            await quietAll([a, ...bs]);
        }
    });

    test('cancel across nodes: every callee device on both nodes gets cancelled, a level-1 connection only its called', async (t) => {
        const list = clientsOf(t);
        for (const callerNode of [B, A]) {
            const { a, bs, legacies, callId } = await ringAcross(list, {
                callerUrl: callerNode.wsUrl,
                callees: [[A.wsUrl, 'b-on-a'], [B.wsUrl, 'b-on-b']],
                legacyUrls: [A.wsUrl, B.wsUrl],
                name: 'Ann',
            });
            const id = a.post({ type: 'call_hangup', callId });
            await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
            for (const b of bs) await b.expect(T.ended({ callId, reason: 'cancelled' }));
            for (const b of bs) {
                const late = b.post({ type: 'call_reject', callId });
                await b.expectReply(late, T.response('call_reject', { id: late, callId, state: 'ended' }));
                await b.expect(T.ended({ callId, reason: 'cancelled', repeat: true }));
            }
            await quietAll([a, ...bs, ...legacies]);
        }
    });

    test('busy across nodes: a user in an active call is busy to callers on both nodes; after the hangup it rings on both nodes', async (t) => {
        const list = clientsOf(t);
        // B's devices on both nodes; the active call is from a caller on node-b, answered on node-a
        const first = await ringAcross(list, { callerUrl: B.wsUrl, callees: [[A.wsUrl, 'b-on-a'], [B.wsUrl, 'b-on-b']] });
        const bActive = await accept(first, 0, 'b-on-a');
        const bIdle = first.bs[1];
        const callers = [];
        for (const node of [A, B]) {
            const U = uid(`busy-${node.nodeId}`);
            const c = await device(node.wsUrl, U, { device: 'c' });
            list.push(c);
            callers.push({ U, c });
            const r = await c.call({ to: first.B, media: 'audio' });
            const callId = r.msg.data?.callId;
            assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ended', level2: 0, legacy: 0 }), `a caller on ${node.nodeId}`);
            await c.expect(T.ended({ callId, reason: 'busy' }));
        }
        await quietAll([first.a, bActive, bIdle, ...callers.map((x) => x.c)]);
        const id = bActive.post({ type: 'call_hangup', callId: first.callId });
        await bActive.expectReply(id, T.response('call_hangup', { id, callId: first.callId, state: 'ended' }));
        await first.a.expect(T.ended({ callId: first.callId, reason: 'hangup' }));
        const { U, c } = callers[1];
        const r = await c.call({ to: first.B, media: 'audio' });
        const second = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId: second, state: 'ringing', level2: 2, legacy: 0 }), 'after the hangup');
        for (const d of [bActive, bIdle]) await d.expect(T.incoming({ callId: second, from: U, name: '', media: 'audio', expiresIn: RING }));
        await quietAll([first.a, bActive, bIdle, ...callers.map((x) => x.c)]);
    });

    test('hangup across nodes ends the call on both sides; repeats get the same call_ended; the ended call is listed nowhere', async (t) => {
        const list = clientsOf(t);
        for (const [callerNode, calleeNode, byCallee] of [[A, B, true], [B, A, false], [B, A, true], [A, B, false]]) {
            const call = await ringAcross(list, { callerUrl: callerNode.wsUrl, callees: [[calleeNode.wsUrl, 'b-1']], media: 'video' });
            const { a, callId, A: caller, B: callee } = call;
            const b = await accept(call, 0, 'b-1');
            const [hanger, other] = byCallee ? [b, a] : [a, b];
            let id = hanger.post({ type: 'call_hangup', callId, reason: 'ice_failed' });
            await hanger.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
            await other.expect(T.ended({ callId, reason: 'hangup', detail: 'ice_failed' }));
            for (const d of [hanger, other]) {
                id = d.post({ type: 'call_hangup', callId });
                await d.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
                await d.expect(T.ended({ callId, reason: 'hangup', detail: 'ice_failed', repeat: true }));
            }
            id = other.post({ type: 'call_signal', callId, kind: 'offer', data: {} });
            await other.expectReply(id, T.error('call_signal', 'bad_state', id));
            await other.expect(T.ended({ callId, reason: 'hangup', detail: 'ice_failed', repeat: true }));
            for (const node of [A, B]) {
                const x = await device(node.wsUrl, caller, { calls: [] });
                const y = await device(node.wsUrl, callee, { calls: [] });
                list.push(x, y);
                await quietAll([x, y], 20);
            }
            await quietAll([a, b]);
            t.diagnostic(`caller on ${callerNode.nodeId}, hangup by the ${byCallee ? 'callee' : 'caller'}: ok`);
        }
    });

    test('an abrupt loss of the callee on node-a, resumed on node-b with its deviceId within the grace: buffered signals flushed, no peer_gone', async (t) => {
        const list = clientsOf(t);
        const call = await ringAcross(list, { callerUrl: B.wsUrl, callees: [[A.wsUrl, 'b-1']], media: 'video' });
        const { a, callId, A: caller, B: callee } = call;
        const b = await accept(call, 0, 'b-1');
        await b.kill();
        await a.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        let id = a.post({ type: 'call_signal', callId, kind: 'candidate', data: { n: 1 } });
        await a.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        const back = await device(B.wsUrl, callee, { device: 'b-1', calls: [{ callId, state: 'active', role: 'callee', peerUserId: caller, media: 'video' }] });
        list.push(back);
        await back.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        await a.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        await back.expect(T.signal({ callId, fromUser: caller, fromDevice: 'a-1', seq: 1, kind: 'candidate', data: '{"n":1}' }));
        await quietAll([a, back], GRACE + 300 * SLOW); // no peer_gone after the grace
        id = back.post({ type: 'call_hangup', callId });
        await back.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await a.expect(T.ended({ callId, reason: 'hangup' }));
        await quietAll([a, back]);
    });

    test('an abrupt loss of a party on node-b that does not come back: peer_gone after the grace', async (t) => {
        const list = clientsOf(t);
        const call = await ringAcross(list, { callerUrl: A.wsUrl, callees: [[B.wsUrl, 'b-1']] });
        const b = await accept(call, 0, 'b-1');
        const lost = Date.now();
        await b.kill();
        await call.a.expect(T.state({ callId: call.callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        await call.a.expect(T.ended({ callId: call.callId, reason: 'peer_gone' }), { timeout: GRACE + 5000 * SLOW });
        const took = Date.now() - lost;
        assert.ok(took >= GRACE - 100, `peer_gone after ${took} ms (reconnect-grace ${GRACE})`);
        await quietAll([call.a]);
    });

    test('pipelined from the node that does not own the calls: call, early signals and the cancel sent at once keep their order', async (t) => {
        const list = clientsOf(t);
        for (let i = 0; i < 10; i++) {
            const [UA, UB] = [uid('pipe-a'), uid('pipe-b')];
            const a = await device(B.wsUrl, UA, { device: 'a' });
            const b1 = await device(A.wsUrl, UB, { device: 'b1' });
            const b2 = await device(B.wsUrl, UB, { device: 'b2' });
            list.push(a, b1, b2);
            const callId = `pipe-${i}-${uid('c')}`;
            a.send({ type: 'call', id: 'c', receiverUserId: UB, media: 'audio', callId });
            a.send({ type: 'call_signal', id: 's1', callId, kind: 'offer', data: { n: 1 } });
            a.send({ type: 'call_signal', id: 's2', callId, kind: 'candidate', data: { n: 2 } });
            a.send({ type: 'call_hangup', id: 'h', callId });
            // the replies come in the order sent, each as after the one before
            const replies = [];
            for (let k = 0; k < 4; k++) replies.push((await a.takeWhere((m) => typeof m.id === 'string', `reply ${k + 1}`)).text);
            assert.deepEqual(
                replies,
                [
                    T.callResponse({ id: 'c', callId, state: 'ringing', level2: 2, legacy: 0 }),
                    T.response('call_signal', { id: 's1', callId, state: 'ringing' }),
                    T.response('call_signal', { id: 's2', callId, state: 'ringing' }),
                    T.response('call_hangup', { id: 'h', callId, state: 'ended' }),
                ],
                `round ${i}: the replies in order`,
            );
            // each callee device: incoming_call, then cancelled (one owner to one device: FIFO); no signal
            for (const b of [b1, b2]) {
                assert.equal((await b.takeWhere(() => true, 'incoming_call')).text, T.incoming({ callId, from: UA, name: '', media: 'audio', expiresIn: RING }), `round ${i}: ${b.label} first`);
                assert.equal((await b.takeWhere(() => true, 'call_ended')).text, T.ended({ callId, reason: 'cancelled' }), `round ${i}: ${b.label} then`);
            }
            await quietAll([a, b1, b2], 20);
            closeRound([a, b1, b2]);
        }
    });

    test('a client-chosen callId across nodes: a retry from the other node never rings twice; another pair gets call_id_taken on either node', async (t) => {
        const list = clientsOf(t);
        const callId = `xid-${uid('k')}`;
        const call = await ringAcross(list, { callerUrl: A.wsUrl, callees: [[A.wsUrl, 'b-on-a'], [B.wsUrl, 'b-on-b']], callId, media: 'video' });
        const { a, bs, A: caller, B: callee } = call;
        const a2 = await device(B.wsUrl, caller, { device: 'a-2', calls: [{ callId, state: 'ringing', role: 'caller', peerUserId: callee, media: 'video' }] });
        list.push(a2);
        let r = await a2.call({ to: callee, media: 'video', callId });
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 2, legacy: 0 }), 'a retry from the caller on the other node');
        for (const node of [A, B]) {
            const [C, D] = [uid('taker'), uid('taken')];
            const c = await device(node.wsUrl, C, { device: 'c' });
            const d = await device(node === A ? B.wsUrl : A.wsUrl, D, { device: 'd' });
            list.push(c, d);
            r = await c.call({ to: D, media: 'audio', callId });
            assert.equal(r.text, T.error('call', 'call_id_taken', r.id), `another pair, caller on ${node.nodeId}`);
            await quietAll([c, d], 20);
        }
        await quietAll([a, a2, ...bs]);
        const b = await accept(call, 1, 'b-on-b');
        const id = b.post({ type: 'call_hangup', callId });
        await b.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await a.expect(T.ended({ callId, reason: 'hangup' }));
        await quietAll([a, a2, ...bs]);
    });

    test('a clean close of a party on the other node is its hangup', async (t) => {
        const list = clientsOf(t);
        const call = await ringAcross(list, { callerUrl: A.wsUrl, callees: [[B.wsUrl, 'b-1']] });
        const b = await accept(call, 0, 'b-1');
        await b.close(1000);
        await call.a.expect(T.ended({ callId: call.callId, reason: 'hangup' }));
        await quietAll([call.a]);
    });
});

describe('ring timeout across nodes (ring-timeout 1500)', { timeout: 60000 * SLOW }, () => {
    let cluster;
    let A;
    let B;
    before(async () => {
        cluster = await ownedCluster({ n: 2, threads: 2, settings: [`signaling.call.ring-timeout: ${SHORT}`] });
        [A, B] = cluster.nodes;
    });
    after(() => cluster?.stop());

    test('no_answer to the caller and every device that rang on both nodes (also one that registered late); a level-1 connection only its called', async (t) => {
        const list = clientsOf(t);
        for (const callerNode of [B, A]) {
            const started = Date.now();
            const { a, bs, legacies, callId, A: caller, B: callee } = await ringAcross(list, {
                callerUrl: callerNode.wsUrl,
                callees: [[A.wsUrl, 'b-on-a'], [B.wsUrl, 'b-on-b']],
                legacyUrls: [B.wsUrl],
                ringTimeout: SHORT,
            });
            const lateNode = callerNode === A ? B : A;
            const late = await device(lateNode.wsUrl, callee, { device: 'b-late', calls: [{ callId, state: 'ringing', role: 'callee', peerUserId: caller, media: 'audio' }] });
            list.push(late);
            const inc = JSON.parse(await late.take('incoming_call', callId));
            // what is left of the ring, by the owner's loop clock (milliseconds, cached per loop turn): all of it when the
            // late device came within the same millisecond
            assert.ok(inc.data.expiresIn > 0 && inc.data.expiresIn <= SHORT, `expiresIn ${inc.data.expiresIn} of ${SHORT}`);
            assert.equal(J(inc), T.incoming({ callId, from: caller, name: 'Caller', media: 'audio', expiresIn: inc.data.expiresIn }));
            await a.expect(T.ended({ callId, reason: 'no_answer' }), { timeout: SHORT + 5000 * SLOW });
            const took = Date.now() - started;
            assert.ok(took >= SHORT - 50, `no_answer after ${took} ms (ring-timeout ${SHORT})`);
            for (const b of [...bs, late]) await b.expect(T.ended({ callId, reason: 'no_answer' }));
            const id = bs[1].post({ type: 'call_accept', callId });
            await bs[1].expectReply(id, T.error('call_accept', 'bad_state', id));
            await bs[1].expect(T.ended({ callId, reason: 'no_answer', repeat: true }));
            await quietAll([a, ...bs, late, ...legacies]);
            t.diagnostic(`caller on ${callerNode.nodeId}: no_answer after ${took} ms`);
        }
    });
});

describe('the owner of the calls fails', { timeout: 120000 * SLOW }, () => {
    test('owner SIGKILLed: a survivor takes the lease within ~6 s; its calls are lost; new calls ring and are answered, on one node and across the survivors', { timeout: 60000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        const { redis, nodes } = await startCluster(t, { n: 3, threads: 2, settings: [`signaling.call.ring-timeout: ${RING}`] });
        const ownerId = await waitOwner(redis, undefined, { nodes });
        await waitCallsReady(nodes);
        const owner = nodes.find((n) => n.nodeId === ownerId);
        assert.ok(owner, `the lease names a node of the cluster: ${ownerId}`);
        const [s1, s2] = nodes.filter((n) => n !== owner);
        t.diagnostic(`owner ${ownerId}; survivors ${s1.nodeId}, ${s2.nodeId}`);

        // a call the owner holds, between devices on the two future survivors
        const old = await ringAcross(list, { callerUrl: s1.wsUrl, callees: [[s2.wsUrl, 'y-1']] });
        await accept(old, 0, 'y-1');
        const X = old.A;
        const Y = old.B;
        const x = old.a;
        const y = old.bs[0];

        await owner.stop('SIGKILL');
        const killed = Date.now();
        const newOwner = await waitUntil(
            async () => {
                const v = await redis.command('GET', LEASE);
                return v !== null && v !== ownerId ? v : false;
            },
            { timeout: 6000 * SLOW, interval: 25, what: `the lease to leave ${ownerId}` },
        ).catch((err) => {
            throw new Error(`${err.message}${nodeLogs(nodes)}`);
        });
        t.diagnostic(`${newOwner} holds the lease ${Date.now() - killed} ms after the kill`);
        assert.ok([s1.nodeId, s2.nodeId].includes(newOwner), `the new owner is a survivor: ${newOwner}`);
        const survivor = newOwner === s1.nodeId ? s1 : s2;
        const otherSurvivor = survivor === s1 ? s2 : s1;

        // two devices on the new owner's node: rings and is answered (a retry with the same callId while
        // the node may still be learning the owner never rings twice)
        const [P, Q] = [uid('fo-p'), uid('fo-q')];
        const p = await device(survivor.wsUrl, P, { device: 'p' });
        const q = await device(survivor.wsUrl, Q, { device: 'q' });
        list.push(p, q);
        const callOnce = async (from, to, callId, level2) => {
            const answers = [];
            const r = await waitUntil(
                async () => {
                    const got = await from.call({ to, media: 'audio', callId });
                    if (isUnavailable(got.text)) {
                        answers.push(got.text);
                        return false;
                    }
                    return got;
                },
                { timeout: 5000 * SLOW, interval: 50, what: `a call ${callId} not answered cluster_unavailable` },
            );
            if (answers.length) t.diagnostic(`${callId}: ${answers.length} cluster_unavailable answers first`);
            assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2 }), `the call ${callId}`);
            return r;
        };
        const c1 = `fo-local-${uid('c')}`;
        await callOnce(p, Q, c1, 1);
        await q.expect(T.incoming({ callId: c1, from: P, name: '', media: 'audio', expiresIn: RING }));
        let id = q.post({ type: 'call_accept', callId: c1 });
        await q.expectReply(id, T.response('call_accept', { id, callId: c1, state: 'active' }));
        await p.expect(T.accepted({ callId: c1, byUser: Q, byDevice: 'q', polite: false }));
        await q.expect(T.accepted({ callId: c1, byUser: Q, byDevice: 'q', polite: true }));
        id = p.post({ type: 'call_signal', callId: c1, kind: 'offer', data: { n: 1 } });
        await p.expectReply(id, T.response('call_signal', { id, callId: c1, state: 'active' }));
        await q.expect(T.signal({ callId: c1, fromUser: P, fromDevice: 'p', seq: 1, kind: 'offer', data: '{"n":1}' }));

        // the dead owner's call is lost: nobody lists it, and its parties can call each other again
        // (not busy), across the two survivors
        const y2 = await device(otherSurvivor.wsUrl, Y, { device: 'y-2' });
        list.push(y2);
        const x2 = await device(survivor.wsUrl, X, { device: 'x-2' });
        list.push(x2);
        t.diagnostic(`after the failover, the old parties got: ${J({ x: x.left(), y: y.left() })}`);
        // the old call is not known to the new owner: a party's hangup of it is answered as for any unknown call
        id = x.post({ type: 'call_hangup', callId: old.callId });
        const oldHangup = await x.reply(id);
        t.diagnostic(`the old call's hangup after the failover: ${oldHangup}`);
        assert.equal(JSON.parse(oldHangup).ok, false, `the dead owner's call is lost: ${oldHangup}`);
        x.inbox.length = 0;
        y.inbox.length = 0;
        const c2 = `fo-cross-${uid('c')}`;
        const from = y2; // on the survivor that is not the owner
        await callOnce(from, X, c2, 2);
        for (const d of [x, x2]) await d.expect(T.incoming({ callId: c2, from: Y, name: '', media: 'audio', expiresIn: RING }));
        id = x2.post({ type: 'call_accept', callId: c2 });
        await x2.expectReply(id, T.response('call_accept', { id, callId: c2, state: 'active' }));
        await y2.expect(T.accepted({ callId: c2, byUser: X, byDevice: 'x-2', polite: false }));
        await x2.expect(T.accepted({ callId: c2, byUser: X, byDevice: 'x-2', polite: true }));
        await x.expect(T.ended({ callId: c2, reason: 'answered_elsewhere' }));
        id = x2.post({ type: 'call_signal', callId: c2, kind: 'answer', data: {} });
        await x2.expectReply(id, T.response('call_signal', { id, callId: c2, state: 'active' }));
        await y2.expect(T.signal({ callId: c2, fromUser: X, fromDevice: 'x-2', seq: 1, kind: 'answer', data: '{}' }));
        id = y2.post({ type: 'call_hangup', callId: c2 });
        await y2.expectReply(id, T.response('call_hangup', { id, callId: c2, state: 'ended' }));
        await x2.expect(T.ended({ callId: c2, reason: 'hangup' }));
        // nobody lists the old call (nor the ended one); the local call is listed on both survivors
        for (const node of [survivor, otherSurvivor]) {
            const lx = await device(node.wsUrl, X, { calls: [] });
            const lp = await device(node.wsUrl, P, { calls: [{ callId: c1, state: 'active', role: 'caller', peerUserId: Q, media: 'audio' }] });
            list.push(lx, lp);
        }
        for (const n of [s1, s2]) assert.ok(n.alive(), `${n.nodeId} exited: ${n.stderr().slice(-2000)}`);
        await quietAll([p, q, x2, y2]);
    });

    test('the owner stops (SIGTERM): its calls end with shutdown on the other nodes too, and it hands the lease over at once', { timeout: 60000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        const cluster = await ownedCluster({ n: 3, threads: 2, settings: [`signaling.call.ring-timeout: ${RING}`] });
        t.after(() => cluster.stop());
        const [A, B, C] = cluster.nodes;
        const active = await ringAcross(list, { callerUrl: B.wsUrl, callees: [[C.wsUrl, 'c-1']] });
        const cb = await accept(active, 0, 'c-1');
        const ringing = await ringAcross(list, { callerUrl: C.wsUrl, callees: [[B.wsUrl, 'b-1'], [A.wsUrl, 'a-1']] });
        const stopped = Date.now();
        await stopClean(A);
        t.diagnostic(`node-a stopped in ${Date.now() - stopped} ms`);
        for (const [d, callId] of [[active.a, active.callId], [cb, active.callId], [ringing.a, ringing.callId], [ringing.bs[0], ringing.callId]]) {
            await d.expect(T.ended({ callId, reason: 'shutdown' }), { timeout: 3000 * SLOW });
        }
        const next = await waitUntil(
            async () => {
                const v = await cluster.redis.command('GET', LEASE);
                return v !== null && v !== 'node-a' ? v : false;
            },
            { timeout: 2000 * SLOW, interval: 10, what: 'the lease to leave node-a' },
        );
        const took = Date.now() - stopped;
        t.diagnostic(`${next} holds the lease ${took} ms after the SIGTERM`);
        const holder = cluster.nodes.find((n) => n.nodeId === next);
        await waitUntil(() => /^h2o-signaling: calls of default\/WsService: this node holds the lease and owns them now$/m.test(holder.stderr()), {
            timeout: 2000 * SLOW,
            what: `${next} to log that it owns the calls`,
        });
        await waitCallsReady([B, C], list);
        // the parties are free: a new call between them rings and is answered
        const r = await active.a.call({ to: active.B, media: 'audio' });
        const callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 1 }), 'a new call after the handover');
        await cb.expect(T.incoming({ callId, from: active.A, name: 'Caller', media: 'audio', expiresIn: RING }));
        await accept({ a: active.a, bs: [cb], B: active.B, callId }, 0, 'c-1');
        await quietAll([active.a, cb, ringing.a, ringing.bs[0]]);
    });

    test('a node holding a party dies (SIGKILL): the other party sees peerConnected:false, the party resumes on a third node and gets every signal sent since, in order; another call ends with peer_gone', { timeout: 60000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        const grace = 2000 * SLOW;
        const cluster = await ownedCluster({ n: 3, threads: 2, settings: [`signaling.call.ring-timeout: ${RING}`, `signaling.call.reconnect-grace: ${grace}`] });
        t.after(() => cluster.stop());
        const [A, B, C] = cluster.nodes;
        const one = await ringAcross(list, { callerUrl: A.wsUrl, callees: [[B.wsUrl, 'b-1']], media: 'video' });
        const b1 = await accept(one, 0, 'b-1');
        const two = await ringAcross(list, { callerUrl: C.wsUrl, callees: [[B.wsUrl, 'b-2']] });
        await accept(two, 0, 'b-2');
        const killed = Date.now();
        B.killedOnPurpose = true;
        await B.stop('SIGKILL');
        b1.ws.terminate();
        // once Redis has seen node-b's subscriber go, the owner learns it when a message for a device of node-b reaches
        // nobody (or sooner, from its ping every probe interval)
        await waitChannelGone(cluster.redis, 'node-b');
        for (const call of [one, two]) {
            const id = call.a.post({ type: 'call_signal', callId: call.callId, kind: 'candidate', data: { n: 1 } });
            await call.a.expectReply(id, T.response('call_signal', { id, callId: call.callId, state: 'active' }));
            await call.a.expect(T.state({ callId: call.callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 3000 * SLOW });
        }
        t.diagnostic(`peerConnected:false on both calls ${Date.now() - killed} ms after the kill`);
        // a signal sent once the party is known detached is buffered for it
        let id = one.a.post({ type: 'call_signal', callId: one.callId, kind: 'candidate', data: { n: 2 } });
        await one.a.expectReply(id, T.response('call_signal', { id, callId: one.callId, state: 'active' }));
        // b-1 comes back on node-c with its deviceId: re-attached, the signal kept meanwhile flushed
        const back = await device(C.wsUrl, one.B, { device: 'b-1', calls: [{ callId: one.callId, state: 'active', role: 'callee', peerUserId: one.A, media: 'video' }] });
        list.push(back);
        await back.expect(T.state({ callId: one.callId, state: 'active', alerting: 0, peerConnected: true }));
        await one.a.expect(T.state({ callId: one.callId, state: 'active', alerting: 0, peerConnected: true }));
        // both signals flushed, in order: the one the owner found node-b gone with (its PUBLISH reached nobody) as well
        await back.expect(T.signal({ callId: one.callId, fromUser: one.A, fromDevice: 'a-1', seq: 1, kind: 'candidate', data: '{"n":1}' }));
        await back.expect(T.signal({ callId: one.callId, fromUser: one.A, fromDevice: 'a-1', seq: 2, kind: 'candidate', data: '{"n":2}' }));
        // b-2 does not come back: peer_gone after the grace
        await two.a.expect(T.ended({ callId: two.callId, reason: 'peer_gone' }), { timeout: grace + 5000 * SLOW });
        const took = Date.now() - killed;
        assert.ok(took >= grace - 100, `peer_gone ${took} ms after the kill (reconnect-grace ${grace})`);
        await quietAll([one.a, back, two.a]);
        id = back.post({ type: 'call_hangup', callId: one.callId });
        await back.expectReply(id, T.response('call_hangup', { id, callId: one.callId, state: 'ended' }));
        await one.a.expect(T.ended({ callId: one.callId, reason: 'hangup' }));
    });

    // The single-node rule (an abrupt loss detaches the party; peer_gone after the grace) across nodes when
    // nothing is sent to the lost device: the owner pings every node it knows each probe interval.
    test('a node holding a party dies while the call is quiet: peerConnected:false, then peer_gone after the grace, without any message sent', {
        timeout: 60000 * SLOW,
    }, async (t) => {
        const list = clientsOf(t);
        const { grace, cluster, nodes: [A, B], call } = await activeAcrossTwo(t, list);
        const killed = Date.now();
        B.killedOnPurpose = true;
        await B.stop('SIGKILL');
        await call.a.expect(T.state({ callId: call.callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 5000 * SLOW });
        t.diagnostic(`peerConnected:false ${Date.now() - killed} ms after the kill`);
        await call.a.expect(T.ended({ callId: call.callId, reason: 'peer_gone' }), { timeout: grace + 5000 * SLOW });
        // the caller is free again: a new call to it rings
        const c = await device(A.wsUrl, uid('after'), { device: 'c' });
        list.push(c);
        const r = await c.call({ to: call.A, media: 'audio' });
        assert.equal(r.text, T.callResponse({ id: r.id, callId: r.msg.data?.callId, state: 'ringing', level2: 1 }), 'the caller is not busy');
    });

    test("a node's subscriber away until the owner counts its party lost (SUBSCRIBE denied, CLIENT KILL TYPE pubsub): once it is back the node registers its devices again, the party is attached on both sides, no peer_gone after the grace", {
        timeout: 60000 * SLOW,
    }, async (t) => {
        const list = clientsOf(t);
        const { grace, cluster, nodes: [A, B], call, b } = await activeAcrossTwo(t, list);
        const { redis } = cluster;

        // no node can subscribe meanwhile: the owner's output to node-b reaches nobody, with no flapping
        const restore = await denySubscribe(t, redis);
        const cut = Date.now();
        await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
        await call.a.expect(T.state({ callId: call.callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 5000 * SLOW });
        t.diagnostic(`peerConnected:false ${Date.now() - cut} ms after the subscribers were cut`);
        // a signal for the detached party waits for it
        let id = call.a.post({ type: 'call_signal', callId: call.callId, kind: 'candidate', data: { n: 1 } });
        await call.a.expectReply(id, T.response('call_signal', { id, callId: call.callId, state: 'active' }));

        await restore();
        const back = Date.now();
        await call.a.expect(T.state({ callId: call.callId, state: 'active', alerting: 0, peerConnected: true }), { timeout: 5000 * SLOW });
        await b.expect(T.state({ callId: call.callId, state: 'active', alerting: 0, peerConnected: true }));
        await b.expect(T.signal({ callId: call.callId, fromUser: call.A, fromDevice: 'a-1', seq: 1, kind: 'candidate', data: '{"n":1}' }));
        t.diagnostic(`attached again ${Date.now() - back} ms after SUBSCRIBE was allowed again`);

        // past the grace the call still runs, both ways
        await quietAll([call.a, b], grace + 500 * SLOW);
        id = b.post({ type: 'call_signal', callId: call.callId, kind: 'candidate', data: { n: 2 } });
        await b.expectReply(id, T.response('call_signal', { id, callId: call.callId, state: 'active' }));
        await call.a.expect(T.signal({ callId: call.callId, fromUser: call.B, fromDevice: 'b-1', seq: 1, kind: 'candidate', data: '{"n":2}' }));
        id = call.a.post({ type: 'call_signal', callId: call.callId, kind: 'candidate', data: { n: 3 } });
        await call.a.expectReply(id, T.response('call_signal', { id, callId: call.callId, state: 'active' }));
        await b.expect(T.signal({ callId: call.callId, fromUser: call.A, fromDevice: 'a-1', seq: 2, kind: 'candidate', data: '{"n":3}' }));
    });

    test("the owner's own subscriber away while a party on the other node drops (node-a's subscriber killed by id, SUBSCRIBE denied): node-b sends the loss again until the owner takes it; peerConnected:false, then peer_gone after the grace", {
        timeout: 60000 * SLOW,
    }, async (t) => {
        const list = clientsOf(t);
        const { grace, cluster, nodes: [A], call, b } = await activeAcrossTwo(t, list);
        const { redis } = cluster;

        const restore = await denySubscribe(t, redis);
        const subscribers = (await redis.clientsOf(A.pid)).filter((c) => Number(c.sub) > 0);
        assert.ok(subscribers.length > 0, `node-a has a subscriber connection: ${J(await redis.clientsOf(A.pid))}`);
        for (const c of subscribers) await redis.command('CLIENT', 'KILL', 'ID', c.id);
        await waitChannelGone(redis, 'node-a');
        // the callee's connection on node-b drops: node-b's loss event reaches nobody on the owner's channel
        b.ws.terminate();
        await quietAll([call.a], 500 * SLOW); // the owner cannot know yet

        await restore();
        const back = Date.now();
        await call.a.expect(T.state({ callId: call.callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 5000 * SLOW });
        t.diagnostic(`peerConnected:false ${Date.now() - back} ms after SUBSCRIBE was allowed again`);
        await call.a.expect(T.ended({ callId: call.callId, reason: 'peer_gone' }), { timeout: grace + 5000 * SLOW });
    });

    test('Redis stalls while a call asks the nodes for the callee (CLIENT PAUSE): the call is answered cluster_unavailable, not offline; after the stall it rings', { timeout: 60000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        const { redis, nodes, ownerId, owner, other } = await ownerAndOther(t);
        const [UA, UB] = [uid('stall-a'), uid('stall-b')];
        const a = await device(owner.wsUrl, UA, { device: 'a' });
        const b = await device(other.wsUrl, UB, { device: 'b' });
        list.push(a, b);

        // longer than signaling.redis-result-timeout (500 ms here): Redis says nothing of who got the ask
        await redis.command('CLIENT', 'PAUSE', String(900 * SLOW), 'ALL');
        const r = await a.call({ to: UB, media: 'audio' }, { timeout: 3000 * SLOW });
        assert.equal(r.text, unavailable('call', r.id), 'the call during the stall');
        await waitCallsReady(nodes, list, { timeout: 10000 * SLOW });
        const again = await a.call({ to: UB, media: 'audio' });
        assert.equal(again.text, T.callResponse({ id: again.id, callId: again.msg.data?.callId, state: 'ringing', level2: 1, legacy: 0 }), 'the call after it');
        await b.take('incoming_call', again.msg.data.callId);
        // what the paused Redis delivered late (the first ask's answer) changed nothing
        await quietAll([a, b], 100);
    });

    test('Redis down: the other node answers cluster_unavailable and still registers level 2 (calls []); the owner, losing its lease, ends its calls with shutdown; Redis back: calls work again', { timeout: 60000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        const { redis, nodes, ownerId, owner, other } = await ownerAndOther(t);
        t.diagnostic(`owner ${ownerId}, the other ${other.nodeId}`);

        // an active call between two devices on the owner's node, and users on the other node
        const local = await ringAcross(list, { callerUrl: owner.wsUrl, callees: [[owner.wsUrl, 'l-1']] });
        const lb = await accept(local, 0, 'l-1');
        const U = uid('down-u');
        const V = uid('down-v');
        const u = await device(other.wsUrl, U, { device: 'u' });
        const v = await device(owner.wsUrl, V, { device: 'v' });
        list.push(u, v);

        const down = Date.now();
        await redis.stop();
        // the other node: a call is answered cluster_unavailable (wait until it is, bounded)
        const seen = [];
        const r = await waitUntil(
            async () => {
                const got = await u.call({ to: V, media: 'audio', callId: `down-${uid('c')}` });
                if (isUnavailable(got.text)) return got;
                seen.push(got.text);
                return false;
            },
            { timeout: 5000 * SLOW, interval: 50, what: `${other.nodeId} to answer a call cluster_unavailable` },
        ).catch((err) => {
            throw new Error(`${err.message}; answers: ${seen.slice(-3).join(' | ')}${nodeLogs(nodes)}`);
        });
        t.diagnostic(`${other.nodeId} answers cluster_unavailable ${Date.now() - down} ms after Redis stopped (${seen.length} other answers first)`);
        assert.equal(r.text, unavailable('call', r.id), 'the call');
        // every other level-2 request too, at once; the answers are exact
        for (const msg of [
            { type: 'call', receiverUserId: V, media: 'video' },
            { type: 'call_accept', callId: local.callId },
            { type: 'call_hangup', callId: local.callId },
            { type: 'call_signal', callId: local.callId, kind: 'offer', data: {} },
            { type: 'call_ringing', callId: 'any-call' },
            { type: 'call_reject', callId: 'any-call' },
            { type: 'call_resume', callId: 'any-call' },
        ]) {
            const started = Date.now();
            const id = u.post(msg);
            await u.expectReply(id, unavailable(msg.type, id), { timeout: 2000 * SLOW });
            const ms = Date.now() - started;
            assert.ok(ms < 1000 * SLOW, `${msg.type}: cluster_unavailable at once (took ${ms} ms)`);
        }
        // a level-2 create_connect on the other node succeeds, calls [] (also for a user with a live call)
        const u2 = await device(other.wsUrl, U, { device: 'u-2', calls: [] });
        const l2 = await device(other.wsUrl, local.A, { device: 'a-2', calls: [] });
        list.push(u2, l2);

        // the owner loses its lease while alive: its calls end with shutdown (both parties on its node)
        await local.a.expect(T.ended({ callId: local.callId, reason: 'shutdown' }), { timeout: 6000 * SLOW });
        await lb.expect(T.ended({ callId: local.callId, reason: 'shutdown' }), { timeout: 2000 * SLOW });
        t.diagnostic(`the owner ended its call with shutdown ${Date.now() - down} ms after Redis stopped`);
        assert.match(owner.stderr(), /^h2o-signaling: calls of default\/WsService: this node's lease ran out with Redis out of reach; the 1 call\(s\) here end with shutdown$/m, 'the owner logs why its calls ended');
        // now no node owns the calls: the former owner answers cluster_unavailable too
        const seen2 = [];
        await waitUntil(
            async () => {
                const got = await v.call({ to: local.A, media: 'audio', callId: `down2-${uid('c')}` });
                if (got.text === unavailable('call', got.id)) return true;
                seen2.push(got.text);
                return false;
            },
            { timeout: 5000 * SLOW, interval: 50, what: `the former owner ${ownerId} to answer cluster_unavailable` },
        ).catch((err) => {
            throw new Error(`${err.message}; answers: ${seen2.slice(-3).join(' | ')}${nodeLogs(nodes)}`);
        });
        await quietAll([u, u2, l2, lb, local.a], 50);
        v.inbox.length = 0; // the calls the former owner may have placed before it lost the lease (reported above)
        if (seen2.length) t.diagnostic(`the former owner's answers before cluster_unavailable: ${seen2.slice(0, 3).join(' | ')}`);

        // Redis back: a node takes the lease again and a call from the other node rings across nodes
        await redis.start();
        const back = await waitOwner(redis, undefined, { timeout: 10000 * SLOW, nodes });
        t.diagnostic(`${back} owns the calls again ${Date.now() - down} ms after Redis stopped`);
        // a node whose link came back later than the owner's answers cluster_unavailable until it has asked Redis
        // who owns the calls (within its reconnect backoff and one probe interval): every node knows it first
        await waitCallsReady(nodes, list, { timeout: 10000 * SLOW });
        const callId = `back-${uid('c')}`;
        const seen3 = [];
        const r3 = await waitUntil(
            async () => {
                const got = await u.call({ to: V, media: 'audio', callId });
                if (got.msg.ok === true && got.msg.data?.state === 'ringing') return got;
                seen3.push(got.text);
                return false;
            },
            { timeout: 10000 * SLOW, interval: 100, what: 'a call across nodes to ring after Redis is back' },
        ).catch((err) => {
            throw new Error(`${err.message}; answers: ${seen3.slice(-3).join(' | ')}${nodeLogs(nodes)}`);
        });
        assert.equal(r3.text, T.callResponse({ id: r3.id, callId, state: 'ringing', level2: 1 }));
        await v.expect(T.incoming({ callId, from: U, name: '', media: 'audio', expiresIn: RING }));
        const id = v.post({ type: 'call_accept', callId });
        await v.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await u.expect(T.accepted({ callId, byUser: V, byDevice: 'v', polite: false }));
        await v.expect(T.accepted({ callId, byUser: V, byDevice: 'v', polite: true }));
        for (const n of nodes) assert.ok(n.alive(), `${n.nodeId} exited: ${n.stderr().slice(-2000)}`);
    });
});
