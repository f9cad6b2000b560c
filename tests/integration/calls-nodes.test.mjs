// Level 2 across nodes (docs/scaling.md, "Calls (level 2)"): one node owns every call of the route, by a lease in
// Redis (sig:o:default/WsService); devices on any node reach it, and its decisions reach them. Real redis-server,
// real nodes on num-threads 4, real `ws` clients. The single-node rules are proven in calls-*.test.mjs; here each
// rule is crossed over nodes: ringing and counts, first accept, glare, signals in order, hangup, owner loss, Redis down.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { clientsOf, device, quietAll, SLOW, T, uid } from '../lib/callclient.mjs';
import { nodeLogs, startCluster } from '../lib/redis.mjs';
import { waitUntil } from '../lib/wait.mjs';

const OWNER_KEY = 'sig:o:default/WsService';
const RING = 5000 * SLOW;
const ROUNDS = 100;
const GRACE = 3000 * SLOW;

/** A cluster of `n` nodes whose lease is taken; resolves with {redis, nodes, owner, others}. */
async function callCluster(t, n = 2) {
    const { redis, nodes } = await startCluster(t, { n, threads: 4, settings: [`signaling.call.ring-timeout: ${RING}`, `signaling.call.reconnect-grace: ${GRACE}`] });
    let ownerId = null;
    await waitUntil(async () => (ownerId = await redis.command('GET', OWNER_KEY)) !== null, { timeout: 5000 * SLOW, what: 'the lease' });
    const owner = nodes.find((x) => x.nodeId === ownerId);
    assert.ok(owner, `the lease names a node of the cluster: ${ownerId}`);
    const others = nodes.filter((x) => x !== owner);
    // every node knows the owner once a call from it is decided (a node learns the owner within a probe interval)
    for (const node of others) {
        await waitUntil(
            async () => {
                const c = await device(node.wsUrl, uid('probe'), { device: 'p' });
                const r = await c.call({ to: uid('nobody') });
                c.ws.close(1000);
                return r.msg.ok === true;
            },
            { timeout: 5000 * SLOW, what: `${node.nodeId} reaches the owner` },
        );
    }
    return { redis, nodes, owner, others };
}

describe('calls across two nodes', { timeout: 300000 * SLOW }, () => {
    test('a call rings every connection of the callee on every node and counts them all', async (t) => {
        const { owner, others, nodes } = await callCluster(t);
        const list = clientsOf(t);
        const [A, B] = [uid('x-a'), uid('x-b')];
        // the caller on the node that does not own the calls, the callee on both
        const a = await device(others[0].wsUrl, A, { device: 'a-1', name: 'Ann' });
        const b1 = await device(owner.wsUrl, B, { device: 'b-1' });
        const b2 = await device(others[0].wsUrl, B, { device: 'b-2' });
        const bl = await device(owner.wsUrl, B, { level: 1 });
        const bl2 = await device(others[0].wsUrl, B, { level: 1 });
        list.push(a, b1, b2, bl, bl2);
        const r = await a.call({ to: B, media: 'video' });
        const callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 2, legacy: 2 }), `call_response${nodeLogs(nodes)}`);
        for (const b of [b1, b2]) {
            const m = JSON.parse(await b.take('incoming_call', callId));
            assert.equal(JSON.stringify(m), T.incoming({ callId, from: A, name: 'Ann', media: 'video', expiresIn: m.data.expiresIn }));
        }
        for (const b of [bl, bl2]) assert.equal(await b.take('called'), T.called({ from: A, name: 'Ann', field1: callId, field2: 'video', callId }));

        // the device on the other node accepts: the one on the owner's node hears answered_elsewhere
        const id = b2.post({ type: 'call_accept', callId });
        await b2.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-2', polite: false }));
        await b2.expect(T.accepted({ callId, byUser: B, byDevice: 'b-2', polite: true }));
        await b1.expect(T.ended({ callId, reason: 'answered_elsewhere' }));

        // hangup from the caller's node ends it on the callee's; a repeat gets the same call_ended
        const h = a.post({ type: 'call_hangup', callId });
        await a.expectReply(h, T.response('call_hangup', { id: h, callId, state: 'ended' }));
        await b2.expect(T.ended({ callId, reason: 'hangup' }));
        const h2 = b2.post({ type: 'call_hangup', callId });
        await b2.expectReply(h2, T.response('call_hangup', { id: h2, callId, state: 'ended' }));
        await b2.expect(T.ended({ callId, reason: 'hangup', repeat: true }));
        await quietAll([a, b1, b2]);
    });

    test(`first accept wins across nodes: two devices on two nodes accept at once, ${ROUNDS} times`, async (t) => {
        const { owner, others } = await callCluster(t);
        const list = clientsOf(t);
        const wins = { owner: 0, other: 0 };
        for (let i = 0; i < ROUNDS; i++) {
            const [A, B] = [uid('fa-a'), uid('fa-b')];
            const a = await device((i % 2 ? owner : others[0]).wsUrl, A, { device: 'a' });
            const bo = await device(owner.wsUrl, B, { device: 'b-owner' });
            const bx = await device(others[0].wsUrl, B, { device: 'b-other' });
            list.push(a, bo, bx);
            const r = await a.call({ to: B });
            const callId = r.msg.data.callId;
            await bo.take('incoming_call', callId);
            await bx.take('incoming_call', callId);
            const ids = new Map([[bo, bo.post({ type: 'call_accept', callId })], [bx, bx.post({ type: 'call_accept', callId })]]);
            const replies = new Map();
            for (const d of [bo, bx]) replies.set(d, await d.reply(ids.get(d)));
            const winners = [bo, bx].filter((d) => replies.get(d) === T.response('call_accept', { id: ids.get(d), callId, state: 'active' }));
            assert.equal(winners.length, 1, `round ${i}: exactly one accept wins: ${[...replies.values()].join(' | ')}`);
            const [w] = winners;
            const l = w === bo ? bx : bo;
            const wDevice = w === bo ? 'b-owner' : 'b-other';
            assert.equal(replies.get(l), T.error('call_accept', 'answered_elsewhere', ids.get(l)), `round ${i}: the late accept`);
            await a.expect(T.accepted({ callId, byUser: B, byDevice: wDevice, polite: false }));
            await w.expect(T.accepted({ callId, byUser: B, byDevice: wDevice, polite: true }));
            await l.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
            await quietAll([a, bo, bx], 20);
            wins[w === bo ? 'owner' : 'other']++;
            for (const c of [a, bo, bx]) c.ws.close(1000);
        }
        assert.equal(wins.owner + wins.other, ROUNDS);
    });

    test(`glare across nodes: A and B call each other at once from two nodes, ${ROUNDS} times: one active call, no error`, async (t) => {
        const { owner, others } = await callCluster(t);
        const list = clientsOf(t);
        for (let i = 0; i < ROUNDS; i++) {
            const [A, B] = [uid('gl-a'), uid('gl-b')];
            const a = await device(owner.wsUrl, A, { device: 'a-dev' });
            const b = await device(others[0].wsUrl, B, { device: 'b-dev' });
            list.push(a, b);
            const idA = a.post({ type: 'call', receiverUserId: B, media: 'audio' });
            const idB = b.post({ type: 'call', receiverUserId: A, media: 'audio' });
            const ra = JSON.parse(await a.reply(idA));
            const rb = JSON.parse(await b.reply(idB));
            assert.equal(ra.ok && rb.ok, true, `round ${i}: no error: ${JSON.stringify([ra, rb])}`);
            const glared = [ra, rb].filter((r) => r.data?.glare === true);
            assert.equal(glared.length, 1, `round ${i}: one glare answer: ${JSON.stringify([ra, rb])}`);
            const other = glared[0] === ra ? rb : ra;
            assert.equal(glared[0].data.state, 'active');
            // the glare answer joined the ringing call, or (both made at once) the lower id replaced it
            const W = glared[0].data.callId;
            const O = other.data.callId;
            assert.ok(W === O || W < O, `round ${i}: ${W} won over ${O}`);
            // both sides hear call_accepted for that one call, and signals pass on it
            for (const c of [a, b]) assert.match(await c.take('call_accepted', W), /"glare":true/);
            const s = a.post({ type: 'call_signal', callId: W, kind: 'offer', data: { from: 'a' } });
            await a.expectReply(s, T.response('call_signal', { id: s, callId: W, state: 'active' }));
            await b.expect(T.signal({ callId: W, fromUser: A, fromDevice: 'a-dev', seq: 1, kind: 'offer', data: '{"from":"a"}' }));
            const h = a.post({ type: 'call_hangup', callId: W });
            await a.expectReply(h, T.response('call_hangup', { id: h, callId: W, state: 'ended' }));
            await b.take('call_ended', W);
            for (const c of [a, b]) c.ws.close(1000);
        }
    });

    test('signals: early ones wait for the accept on the other node, then flow both ways in order', async (t) => {
        const { owner, others } = await callCluster(t);
        const list = clientsOf(t);
        const [A, B] = [uid('sg-a'), uid('sg-b')];
        const a = await device(owner.wsUrl, A, { device: 'a-1' });
        const b = await device(others[0].wsUrl, B, { device: 'b-1' });
        list.push(a, b);
        const callId = (await a.call({ to: B })).msg.data.callId;
        await b.take('incoming_call', callId);
        const early = ['{"sdp":"offer"}', '{"c":1}', '{"c":2}'];
        for (const [k, data] of early.entries()) {
            const id = a.post({ type: 'call_signal', callId, kind: k === 0 ? 'offer' : 'candidate', data: JSON.parse(data) });
            assert.match(await a.reply(id), /"ok":true/);
        }
        const id = b.post({ type: 'call_accept', callId });
        await b.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await b.expect(T.accepted({ callId, byUser: B, byDevice: 'b-1', polite: true }));
        for (const [k, data] of early.entries()) {
            await b.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: k + 1, kind: k === 0 ? 'offer' : 'candidate', data }));
        }
        await a.take('call_accepted', callId);
        for (let k = 1; k <= 20; k++) b.post({ type: 'call_signal', callId, kind: 'candidate', data: { n: k } });
        for (let k = 1; k <= 20; k++) {
            await a.expect(T.signal({ callId, fromUser: B, fromDevice: 'b-1', seq: k, kind: 'candidate', data: `{"n":${k}}` }));
        }
    });

    test('reject and rejected_elsewhere, busy, and an abrupt loss resumed on the other node', async (t) => {
        const { owner, others } = await callCluster(t);
        const list = clientsOf(t);
        const [A, B, C] = [uid('rj-a'), uid('rj-b'), uid('rj-c')];
        const a = await device(owner.wsUrl, A, { device: 'a-1' });
        const b1 = await device(owner.wsUrl, B, { device: 'b-1' });
        const b2 = await device(others[0].wsUrl, B, { device: 'b-2' });
        const c = await device(others[0].wsUrl, C, { device: 'c-1' });
        list.push(a, b1, b2, c);

        let callId = (await a.call({ to: B })).msg.data.callId;
        await b1.take('incoming_call', callId);
        await b2.take('incoming_call', callId);
        let id = b2.post({ type: 'call_reject', callId });
        assert.match(await b2.reply(id), /"ok":true/);
        await a.expect(T.ended({ callId, reason: 'rejected' }));
        await b1.expect(T.ended({ callId, reason: 'rejected_elsewhere' }));

        // B in an active call (on the owner's node): C, on the other node, gets busy
        callId = (await a.call({ to: B, media: 'video' })).msg.data.callId;
        await b2.take('incoming_call', callId);
        id = b1.post({ type: 'call_accept', callId });
        await b1.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.take('call_accepted', callId);
        await b2.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
        const busy = (await c.call({ to: B })).msg.data.callId;
        await c.expect(T.ended({ callId: busy, reason: 'busy' }));

        // b-1 is lost without a close frame; it comes back on the other node with its deviceId within the grace
        await b1.kill();
        await a.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        id = a.post({ type: 'call_signal', callId, kind: 'candidate', data: { n: 1 } });
        await a.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        const back = await device(others[0].wsUrl, B, {
            device: 'b-1',
            calls: [{ callId, state: 'active', role: 'callee', peerUserId: A, media: 'video' }],
        });
        list.push(back);
        await back.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        await a.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        await back.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: 1, kind: 'candidate', data: '{"n":1}' }));
        await quietAll([a, back], GRACE + 200); // no peer_gone
        id = back.post({ type: 'call_hangup', callId });
        await back.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await a.expect(T.ended({ callId, reason: 'hangup' }));
    });

    test('the owner dies: another node takes the lease and calls work again', async (t) => {
        const { redis, owner, others, nodes } = await callCluster(t, 3);
        const list = clientsOf(t);
        await owner.stop('SIGKILL');
        let next = null;
        await waitUntil(async () => (next = await redis.command('GET', OWNER_KEY)) !== null && next !== owner.nodeId, {
            timeout: 8000 * SLOW,
            what: `a new owner${nodeLogs(nodes)}`,
        });
        assert.ok(others.some((x) => x.nodeId === next), `a survivor holds the lease: ${next}`);
        const [A, B] = [uid('fo-a'), uid('fo-b')];
        let a;
        let b;
        await waitUntil(
            async () => {
                a?.ws.close(1000);
                b?.ws.close(1000);
                a = await device(others[0].wsUrl, A, { device: 'a' });
                b = await device(others[1].wsUrl, B, { device: 'b' });
                list.push(a, b);
                const r = await a.call({ to: B });
                return r.msg.ok === true;
            },
            { timeout: 8000 * SLOW, what: 'a call after the failover' },
        );
        const callId = (await b.take('incoming_call')).match(/"callId":"([^"]+)"/)[1];
        const id = b.post({ type: 'call_accept', callId });
        await b.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.take('call_accepted', callId);
    });

    test('Redis down: a node that does not own the calls answers cluster_unavailable; create_connect still works', async (t) => {
        const { redis, others } = await callCluster(t);
        const list = clientsOf(t);
        await redis.stop();
        const A = uid('rd-a');
        const want = (id) =>
            JSON.stringify({ type: 'call_response', ok: false, msg: 'the node that owns the calls cannot be reached', code: 'cluster_unavailable', id });
        let last = '';
        await waitUntil(
            async () => {
                const a = await device(others[0].wsUrl, A, { device: 'a' });
                list.push(a);
                const id = a.post({ type: 'call', receiverUserId: uid('rd-b'), media: 'audio' });
                last = await a.reply(id);
                a.ws.close(1000);
                return last === want(id);
            },
            { timeout: 10000 * SLOW, what: () => `cluster_unavailable; last: ${last}` },
        );
    });
});
