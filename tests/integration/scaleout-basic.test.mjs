// Several nodes on one Redis (signaling.redis; contract: /work/shared/design/scaleout.md): a
// user's devices on different nodes, dialed from a third; same-node dials; peer_offline and
// peer_gone (through the RESULT deadline of a SIGSTOPped node); create_connect acknowledged only
// once the subscription exists; the channel layout; identity rules across nodes;
// max-connections-per-user per node; routes and prefixes that do not share users; password-file
// and unix sockets. Each test starts its own redis-server and nodes on 127.0.0.1.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
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
import {
    calledText,
    createConnectOkText,
    dialingFailText,
    dialingOkText,
    nextText,
    register,
    request,
    waitPeerOffline,
} from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAfter, connect, waitClose } from '../lib/wsclient.mjs';

/** Asserts `ws` gets exactly `expected` next and nothing more within 300 ms. */
async function assertCalledOnce(ws, expected, what) {
    const got = await nextText(ws, 3000).catch((err) => `(nothing: ${err.message})`);
    assert.equal(got, expected, `${what}: expected ${expected}\n   got ${got}`);
    const more = await noMessageWithin(ws, 300);
    assert.equal(more, true, `${what}: a second message within 300 ms: ${more}`);
}

describe('scale-out on one Redis', { timeout: 120000 }, () => {
    test('a user with a device on A and one on B, dialed from C: delivered 2, each device called exactly once', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { nodes: [A, B, C] } = await startCluster(t);
        const onA = await register(A.wsUrl, 'two-dev', { name: '接收者' });
        const onB = await register(B.wsUrl, 'two-dev', { name: '接收者' });
        const caller = await register(C.wsUrl, 'two-caller', { name: '呼叫者 "C"' });
        open.push(onA, onB, caller);

        const fields = { field1: 'hello', field2: 'line\nbreak', field3: '房间 3' };
        const reply = await dialAnswer(caller, { receiverUserId: 'two-dev', ...fields, id: 1 });
        assert.equal(reply, dialingOkText(1, 'two-dev', 2), `expected delivered 2 (one device on A, one on B), got ${reply}`);
        // the name is the one the caller registered with (the dialing carries none)
        const expected = calledText({ sponsorUserId: 'two-caller', sponsorUserName: '呼叫者 "C"', ...fields });
        await Promise.all([assertCalledOnce(onA, expected, 'device on A'), assertCalledOnce(onB, expected, 'device on B')]);

        // a dialing's own sponsorUserName wins, across nodes too; no id: no success reply
        caller.send(JSON.stringify({ type: 'dialing', receiverUserId: 'two-dev', sponsorUserName: 'Other', field1: 'x' }));
        const other = calledText({ sponsorUserId: 'two-caller', sponsorUserName: 'Other', field1: 'x' });
        await Promise.all([assertCalledOnce(onA, other, 'device on A'), assertCalledOnce(onB, other, 'device on B')]);
        const stray = await noMessageWithin(caller, 300);
        assert.equal(stray, true, `a dialing without id gets no success reply, got ${stray}`);
    });

    test('same-node dials still work: local only (delivered 1) and local plus remote (delivered 2)', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { nodes: [A, B] } = await startCluster(t, { n: 2 });
        const local = await register(A.wsUrl, 'sn-local');
        const bothA = await register(A.wsUrl, 'sn-both');
        const bothB = await register(B.wsUrl, 'sn-both');
        const caller = await register(A.wsUrl, 'sn-caller');
        open.push(local, bothA, bothB, caller);

        let reply = await dialAnswer(caller, { receiverUserId: 'sn-local', field1: 'l', id: 'l' });
        assert.equal(reply, dialingOkText('l', 'sn-local', 1), `same-node dial: got ${reply}`);
        await assertCalledOnce(local, calledText({ sponsorUserId: 'sn-caller', field1: 'l' }), 'same-node receiver');

        reply = await dialAnswer(caller, { receiverUserId: 'sn-both', field1: 'b', id: 'b' });
        assert.equal(reply, dialingOkText('b', 'sn-both', 2), `local + remote device: got ${reply}`);
        const expected = calledText({ sponsorUserId: 'sn-caller', field1: 'b' });
        await Promise.all([assertCalledOnce(bothA, expected, 'local device'), assertCalledOnce(bothB, expected, 'remote device')]);

        // a user may dial itself: its other device on the other node gets it, and so does this one
        reply = await dialAnswer(bothA, { receiverUserId: 'sn-both', field1: 'self', id: 's' });
        assert.equal(reply, dialingOkText('s', 'sn-both', 2), `self dial over two nodes: got ${reply}`);
        await assertCalledOnce(bothB, calledText({ sponsorUserId: 'sn-both', field1: 'self' }), 'the other device');
    });

    test('nobody holds the user: peer_offline at once, byte for byte (with and without id)', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes: [A, B, C] } = await startCluster(t);
        const caller = await register(C.wsUrl, 'off-caller');
        open.push(caller);
        const started = Date.now();
        const reply = await dialAnswer(caller, { receiverUserId: 'off-nobody', id: 'x' });
        const ms = Date.now() - started;
        assert.equal(reply, dialingFailText('peer_offline', 'x'), `expected peer_offline, got ${reply}`);
        assert.ok(ms < 400, `peer_offline must not wait for a RESULT deadline (PUBLISH said 0): took ${ms} ms`);
        caller.send(JSON.stringify({ type: 'dialing', receiverUserId: 'off-nobody' }));
        const noId = await nextText(caller);
        assert.equal(noId, dialingFailText('peer_offline'), `without id: got ${noId}`);

        // a user that was on B and closed: offline from A and C, and its channel is gone
        const leaver = await register(B.wsUrl, 'off-leaver');
        open.push(leaver);
        const [channel] = await userChannels(redis, 'off-leaver');
        assert.ok(channel, 'the leaver has a channel while registered');
        leaver.close(1000);
        await waitClose(leaver);
        const fromA = await register(A.wsUrl, 'off-from-a');
        open.push(fromA);
        await waitPeerOffline(fromA, 'off-leaver', { timeout: 2000 });
        await waitPeerOffline(caller, 'off-leaver', { timeout: 2000 });
        assert.equal(await redis.numsub(channel), 0, `PUBSUB NUMSUB ${channel} after the last connection closed`);
    });

    test('a holder that does not answer (SIGSTOP) counts 0 after the RESULT deadline: peer_gone, or only the others', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { nodes: [A, B] } = await startCluster(t, { n: 2 });
        const onlyB = await register(B.wsUrl, 'gone-b');
        const bothA = await register(A.wsUrl, 'gone-both');
        const bothB = await register(B.wsUrl, 'gone-both');
        const caller = await register(A.wsUrl, 'gone-caller');
        open.push(onlyB, bothA, bothB, caller);
        assert.equal(await dialAnswer(caller, { receiverUserId: 'gone-b', id: 'warm' }), dialingOkText('warm', 'gone-b', 1));
        await drain(onlyB);

        process.kill(B.pid, 'SIGSTOP');
        let stopped = true;
        const resume = () => {
            if (stopped) process.kill(B.pid, 'SIGCONT');
            stopped = false;
        };
        t.after(resume);
        try {
            // Redis still counts B's subscription (its socket is open), so A waits for B's RESULT
            let started = Date.now();
            let reply = await dialAnswer(caller, { receiverUserId: 'gone-b', id: 'g1' }, 4000);
            let ms = Date.now() - started;
            assert.equal(reply, dialingFailText('peer_gone', 'g1'), `the only holder is stopped: expected peer_gone, got ${reply}`);
            assert.ok(ms >= 400 && ms < 2500, `answered at the RESULT deadline (result-timeout 500 ms): took ${ms} ms`);

            started = Date.now();
            reply = await dialAnswer(caller, { receiverUserId: 'gone-both', id: 'g2' }, 4000);
            ms = Date.now() - started;
            assert.equal(reply, dialingOkText('g2', 'gone-both', 1), `A's device counts, B's missing RESULT counts 0: got ${reply}`);
            assert.ok(ms < 2500, `answered by the deadline: took ${ms} ms`);
            await assertCalledOnce(bothA, calledText({ sponsorUserId: 'gone-caller' }), 'the device on A');
        } finally {
            resume();
        }
        // B is back: after its (possibly late) deliveries, it answers again
        await waitDelivered(caller, 'gone-b', 1, { timeout: 5000, what: 'B to answer again after SIGCONT' });
        await drain(onlyB, 200);
        assert.equal(await dialAnswer(caller, { receiverUserId: 'gone-b', field1: 'after', id: 'g3' }), dialingOkText('g3', 'gone-b', 1));
        await assertCalledOnce(onlyB, calledText({ sponsorUserId: 'gone-caller', field1: 'after' }), 'gone-b after SIGCONT');
        assert.ok(B.alive(), `B exited: ${B.stderr()}`);
    });

    // The race (an ack sent before Redis has the SUBSCRIBE) only shows when the node delays its
    // SUBSCRIBE, e.g. hands it to another thread's Redis link or batches it: 4 threads, and
    // registrations one by one and in a burst.
    test('create_connect is acknowledged only after the subscription exists: NUMSUB 1 and a dial from another node right after the ack is delivered', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes: [A, B] } = await startCluster(t, { n: 2, threads: 4 });
        const caller = await register(A.wsUrl, 'ack-caller');
        open.push(caller);
        const check = async (user, ws, id, from = caller) => {
            // both at once, right after the ack: the Redis view and a dial from A
            const [channels, reply] = await Promise.all([
                userChannels(redis, user).then(async (chs) => ({ chs, counts: await Promise.all(chs.map((c) => redis.numsub(c))) })),
                dialAnswer(from, { receiverUserId: user, id }),
            ]);
            assert.equal(channels.chs.length, 1, `right after the ack of ${user}: expected 1 user channel in PUBSUB CHANNELS, got ${JSON.stringify(channels.chs)}`);
            assert.deepEqual(channels.counts, [1], `right after the ack: PUBSUB NUMSUB ${channels.chs[0]}`);
            assert.equal(reply, dialingOkText(id, user, 1), `dial from A right after the ack of ${user} on B: got ${reply}`);
            assert.equal(await nextText(ws), calledText({ sponsorUserId: from === caller ? 'ack-caller' : `${user}-caller` }));
        };
        for (let i = 0; i < 15; i++) {
            const user = `ack-${i}`;
            const ws = await register(B.wsUrl, user); // resolves on the ack
            open.push(ws);
            await check(user, ws, i);
        }
        // a burst: 20 connections register at once, each checked as soon as its own ack is in
        // (one caller each: answers on one socket are read in order)
        const callers = [];
        for (let k = 0; k < 20; k++) callers.push(await register(A.wsUrl, `ack-burst-${k}-caller`));
        open.push(...callers);
        await Promise.all(
            callers.map(async (from, k) => {
                const user = `ack-burst-${k}`;
                const ws = await register(B.wsUrl, user);
                open.push(ws);
                await check(user, ws, `b${k}`, from);
            }),
        );
    });

    test("channel layout: sig:u:default/WsService:<user> per (user, node) holding it, sig:n:<node-id>:default/WsService per node", { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes: [A, B] } = await startCluster(t, { n: 2 });
        for (const n of [A, B]) assert.equal(await redis.numsub(nodeChannel(n.nodeId)), 1, `PUBSUB NUMSUB ${nodeChannel(n.nodeId)}`);
        const chan = 'sig:u:default/WsService:lay-u';
        const b1 = await register(B.wsUrl, 'lay-u', { id: 'b1' });
        const b2 = await register(B.wsUrl, 'lay-u', { id: 'b2' });
        open.push(b1, b2);
        assert.deepEqual(await userChannels(redis, 'lay-u'), [chan], 'the user channel name');
        assert.equal(await redis.numsub(chan), 1, 'two devices on one node: one subscription');
        const a1 = await register(A.wsUrl, 'lay-u', { id: 'a1' });
        open.push(a1);
        assert.equal(await redis.numsub(chan), 2, 'a device on a second node: a second subscription');
        // ref-counted: the node unsubscribes after its last connection of the user only
        b1.close(1000);
        await waitClose(b1);
        const caller = await register(A.wsUrl, 'lay-caller');
        open.push(caller);
        assert.equal(await dialAnswer(caller, { receiverUserId: 'lay-u', id: 1 }), dialingOkText(1, 'lay-u', 2), 'b2 and a1');
        assert.equal(await redis.numsub(chan), 2, 'B still holds the user through b2');
        b2.close(1000);
        await waitClose(b2);
        await waitUntil(async () => (await redis.numsub(chan)) === 1, { timeout: 2000, what: `NUMSUB ${chan} back to 1 after B's last connection closed` });
        a1.terminate();
        await waitUntil(async () => (await redis.numsub(chan)) === 0, { timeout: 2000, what: `NUMSUB ${chan} 0 after A's connection dropped` });
        assert.deepEqual(await userChannels(redis, 'lay-u'), [], 'no channel left');
    });

    test('identity across nodes: the pushed sponsorUserId is the sender\'s registered identity; a spoofed one is refused', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { nodes: [A, B] } = await startCluster(t, { n: 2 });
        const alice = await register(A.wsUrl, 'id-alice', { name: 'Alice' });
        const bob = await register(B.wsUrl, 'id-bob');
        const probeB = await register(B.wsUrl, 'id-probe');
        open.push(alice, bob, probeB);

        const spoof = await dialAnswer(alice, { sponsorUserId: 'id-mallory', receiverUserId: 'id-bob', field1: 'fake', id: 'sp' });
        const p = JSON.parse(spoof);
        assert.deepEqual(
            [p.type, p.ok, p.code, p.id],
            ['dialing_response', false, 'identity_mismatch', 'sp'],
            `a spoofed sponsorUserId: expected identity_mismatch, got ${spoof}`,
        );
        const leaked = await noMessageWithin(bob, 300);
        assert.equal(leaked, true, `nothing reaches B for a refused dialing, got ${leaked}`);

        let reply = await dialAnswer(alice, { sponsorUserId: 'id-alice', receiverUserId: 'id-bob', id: 'ok' });
        assert.equal(reply, dialingOkText('ok', 'id-bob', 1));
        await assertCalledOnce(bob, calledText({ sponsorUserId: 'id-alice', sponsorUserName: 'Alice' }), 'bob');

        // the connection moves to another identity: calls carry the new one, the old id is offline everywhere
        assert.equal(await request(alice, { type: 'create_connect', sponsorUserId: 'id-alice2', id: 'mv' }), createConnectOkText('mv', 'id-alice2'));
        reply = await dialAnswer(alice, { receiverUserId: 'id-bob', id: 'mv2' });
        assert.equal(reply, dialingOkText('mv2', 'id-bob', 1));
        const moved = await nextText(bob);
        assert.equal(JSON.parse(moved).data.sponsorUserId, 'id-alice2', `after the move: got ${moved}`);
        await waitPeerOffline(probeB, 'id-alice', { timeout: 2000 });
        assert.equal(await dialAnswer(probeB, { receiverUserId: 'id-alice2', id: 'n' }), dialingOkText('n', 'id-alice2', 1));
    });

    test('max-connections-per-user is enforced per node: each node caps its own connections of a user, so a user may have the cap on each node', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { nodes: [A, B, C] } = await startCluster(t, { settings: ['signaling.max-connections-per-user: 2'] });
        const devices = [];
        const refused = [];
        for (const [node, tag] of [[A, 'a'], [B, 'b']]) {
            for (const k of [1, 2]) devices.push(await register(node.wsUrl, 'cap-u', { id: `${tag}${k}` }));
            open.push(...devices.slice(-2));
            const third = await connect(node.wsUrl);
            open.push(third);
            const reply = await request(third, { type: 'create_connect', sponsorUserId: 'cap-u', id: `${tag}3` });
            const p = JSON.parse(reply);
            assert.deepEqual(
                [p.type, p.ok, p.code, p.id],
                ['create_connect_response', false, 'too_many_connections', `${tag}3`],
                `a third connection of cap-u on ${node.nodeId}: expected too_many_connections, got ${reply}`,
            );
            refused.push(third);
        }
        const caller = await register(C.wsUrl, 'cap-caller');
        open.push(caller);
        const reply = await dialAnswer(caller, { receiverUserId: 'cap-u', id: 1 });
        assert.equal(reply, dialingOkText(1, 'cap-u', 4), `2 devices on A + 2 on B: got ${reply}`);
        const expected = calledText({ sponsorUserId: 'cap-caller' });
        await Promise.all(devices.map((ws, i) => assertCalledOnce(ws, expected, `device ${i}`)));
        for (const ws of refused) {
            const got = await noMessageWithin(ws, 100);
            assert.equal(got, true, `a refused connection gets no called, got ${got}`);
        }
    });

    test('only the same route shares users: a dial from another signaling path does not reach /WsService users', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const morePaths = '      /Other:\n        signaling: ON\n';
        const { nodes: [A, B] } = await startCluster(t, { n: 2, morePaths });
        const user = await register(A.wsUrl, 'rt-u');
        const otherPath = await register(`ws://127.0.0.1:${B.port}/Other`, 'rt-caller');
        const samePath = await register(B.wsUrl, 'rt-caller');
        open.push(user, otherPath, samePath);
        assert.equal(await dialAnswer(otherPath, { receiverUserId: 'rt-u', id: 1 }), dialingFailText('peer_offline', 1), '/Other on B does not see /WsService users');
        assert.equal(await dialAnswer(samePath, { receiverUserId: 'rt-u', id: 2 }), dialingOkText(2, 'rt-u', 1), '/WsService on B does');
        await assertCalledOnce(user, calledText({ sponsorUserId: 'rt-caller' }), 'rt-u');
    });

    test('nodes with another prefix on the same Redis do not share users', { timeout: 20000 }, async (t) => {
        await requireRedisSupport();
        const open = closeAfter(t);
        const redis = await startRedis();
        t.after(() => redis.stop());
        const one = { host: '127.0.0.1', port: redis.port, prefix: 'one' };
        const two = { host: '127.0.0.1', port: redis.port, prefix: 'two' };
        const [A, B, C] = await startNodes(t, [
            { redis: one, nodeId: 'node-a' },
            { redis: one, nodeId: 'node-b' },
            { redis: two, nodeId: 'node-c' },
        ]);
        await waitCrossNode([A, B]);
        const user = await register(A.wsUrl, 'px-u');
        const fromB = await register(B.wsUrl, 'px-b');
        const fromC = await register(C.wsUrl, 'px-c');
        open.push(user, fromB, fromC);
        assert.equal(await dialAnswer(fromB, { receiverUserId: 'px-u', id: 1 }), dialingOkText(1, 'px-u', 1), 'same prefix');
        // C is alone under its prefix; wait until it is linked to Redis (no cluster_unavailable)
        let seq = 0;
        const fromCReply = await waitUntil(
            async () => {
                const id = `c${++seq}`;
                const reply = await dialAnswer(fromC, { receiverUserId: 'px-u', id });
                return JSON.parse(reply).code === 'cluster_unavailable' ? false : { id, reply };
            },
            { timeout: 5000, interval: 50, what: 'node-c (prefix two) to link to Redis' },
        );
        assert.equal(fromCReply.reply, dialingFailText('peer_offline', fromCReply.id), 'another prefix does not see px-u');
        assert.equal(await dialAnswer(user, { receiverUserId: 'px-c', id: 3 }), dialingFailText('peer_offline', 3), 'other prefix, the other way');
        assert.equal(await noMessageWithin(user, 100), true, 'nothing reached px-u from node-c');
    });

    test('password-file: nodes authenticate to a Redis with requirepass', { timeout: 20000 }, async (t) => {
        await requireRedisSupport();
        const open = closeAfter(t);
        const redis = await startRedis({ password: 's3cret pass' });
        t.after(() => redis.stop());
        const file = join(redis.dir, 'password');
        writeFileSync(file, 's3cret pass\n');
        const value = { host: '127.0.0.1', port: redis.port, 'password-file': file };
        const nodes = await startNodes(t, [
            { redis: value, nodeId: 'node-a' },
            { redis: value, nodeId: 'node-b' },
        ]);
        await waitNodesLinked(redis, nodes);
        await waitCrossNode(nodes);
        const user = await register(nodes[1].wsUrl, 'pw-u');
        const caller = await register(nodes[0].wsUrl, 'pw-c');
        open.push(user, caller);
        assert.equal(await dialAnswer(caller, { receiverUserId: 'pw-u', id: 1 }), dialingOkText(1, 'pw-u', 1));
        await assertCalledOnce(user, calledText({ sponsorUserId: 'pw-c' }), 'pw-u');
    });

    test('unix:/path.sock: nodes reach Redis over a unix socket', { timeout: 20000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes: [A, B] } = await startCluster(t, { n: 2, unixsocket: true, redisValue: (r) => `unix:${r.socket}` });
        const user = await register(B.wsUrl, 'ux-u');
        const caller = await register(A.wsUrl, 'ux-c');
        open.push(user, caller);
        assert.equal(await dialAnswer(caller, { receiverUserId: 'ux-u', id: 1 }), dialingOkText(1, 'ux-u', 1));
        await assertCalledOnce(user, calledText({ sponsorUserId: 'ux-c' }), 'ux-u');
        const clients = await redis.command('CLIENT', 'LIST');
        assert.match(clients, /addr=\/|addr=.*redis\.sock|flags=\S*U/, `the nodes' connections are unix ones:\n${clients}`);
    });
});
