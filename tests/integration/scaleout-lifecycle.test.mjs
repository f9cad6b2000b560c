// A node's subscriptions follow its connections through their whole life: a connection that
// registers a second identity moves its subscription, the same identity twice counts once, and a
// node stopped with SIGTERM unsubscribes its users itself (UNSUBSCRIBE reaches Redis) before it
// exits, leaving the other nodes' users untouched. Real redis-server and real nodes on 127.0.0.1.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { dialAnswer, startCluster, userChannels } from '../lib/redis.mjs';
import { dialingOkText, nextText, register, request } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAfter, waitClose } from '../lib/wsclient.mjs';

/** How many UNSUBSCRIBE commands Redis has executed (INFO commandstats). */
async function unsubscribeCalls(redis) {
    const info = await redis.command('INFO', 'commandstats');
    const m = /cmdstat_unsubscribe:calls=(\d+)/.exec(info);
    return m ? Number(m[1]) : 0;
}

describe('scale-out: subscriptions over a connection life', { timeout: 60000 }, () => {
    test('a second create_connect with another id moves the subscription; the same id twice counts once', { timeout: 20000 }, async (t) => {
        const { redis, nodes: [A, B] } = await startCluster(t, { n: 2 });
        const open = closeAfter(t);
        const ws = await register(B.wsUrl, 'mv-first');
        const caller = await register(A.wsUrl, 'mv-caller');
        open.push(ws, caller);
        assert.equal((await userChannels(redis, 'mv-first')).length, 1, 'mv-first subscribed');

        const moved = await request(ws, { type: 'create_connect', sponsorUserId: 'mv-second', id: 'again' });
        assert.match(moved, /"ok":true/, `the move is acknowledged: ${moved}`);
        assert.deepEqual(await userChannels(redis, 'mv-second'), ['sig:u:default/WsService:mv-second'], 'the new id is subscribed when acknowledged');
        await waitUntil(async () => (await userChannels(redis, 'mv-first')).length === 0, { timeout: 3000, what: 'the old id unsubscribed' });
        assert.equal(await dialAnswer(caller, { receiverUserId: 'mv-second', id: 'd1' }), dialingOkText('d1', 'mv-second', 1));
        await nextText(ws);
        assert.match(await dialAnswer(caller, { receiverUserId: 'mv-first', id: 'd2' }), /"code":"peer_offline"/, 'the old id is offline everywhere');

        const same = await request(ws, { type: 'create_connect', sponsorUserId: 'mv-second', id: 'same' });
        assert.match(same, /"ok":true/, `the same id again is acknowledged: ${same}`);
        ws.close();
        await waitClose(ws);
        // counted twice, it would stay subscribed after its only connection left
        await waitUntil(async () => (await userChannels(redis, 'mv-second')).length === 0, {
            timeout: 3000,
            what: 'no channel left once the only connection closed',
        });
    });

    test('SIGTERM: the node unsubscribes its users itself before it exits; the others are untouched', { timeout: 30000 }, async (t) => {
        const { redis, nodes: [A, B] } = await startCluster(t, { n: 2 });
        const open = closeAfter(t);
        const users = [];
        for (let i = 0; i < 20; i++) users.push(await register(B.wsUrl, `term-${i}`));
        const a1 = await register(A.wsUrl, 'stay-1');
        const a2 = await register(A.wsUrl, 'stay-2');
        open.push(...users, a1, a2);
        assert.equal((await redis.channels('sig:u:*term-*')).length, 20, 'the 20 users of B are subscribed');
        const before = await unsubscribeCalls(redis);

        const st = await B.stop('SIGTERM');
        assert.equal(st.code, 0, `B exits 0 on SIGTERM (${JSON.stringify(st)}): ${B.stderr()}`);
        const after = await unsubscribeCalls(redis);
        assert.ok(after > before, `B sent UNSUBSCRIBE before closing (calls ${before} -> ${after})`);
        assert.deepEqual(await redis.channels('sig:u:*term-*'), [], 'no channel of B is left');
        assert.equal(await dialAnswer(a1, { receiverUserId: 'stay-2', id: 's1' }), dialingOkText('s1', 'stay-2', 1), 'A works on');
        assert.equal((await userChannels(redis, 'stay-2')).length, 1, "A's users are still subscribed");
        assert.match(await dialAnswer(a1, { receiverUserId: 'term-3', id: 's2' }), /"code":"peer_offline"/, "B's users read offline");
    });
});
