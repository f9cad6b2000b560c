// Three nodes on one Redis (two event-loop threads each), 30 users spread over them, and every
// user dials every other user once with an id: 870 dialings, two thirds of them across nodes.
// Every `called` must arrive exactly once, at the right receiver, from the right sender; every
// dialing_response must be ok with delivered 1.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { startCluster } from '../lib/redis.mjs';
import { dialAllPairs, register } from '../lib/sigclient.mjs';
import { closeAfter } from '../lib/wsclient.mjs';

const USERS = 30;
const WINDOW = 4; // dialings in flight per connection

describe('three nodes: every user dials every other user', { timeout: 60000 }, () => {
    test(`${USERS} users over 3 nodes, ${USERS * (USERS - 1)} dialings: each called exactly once, each answer delivered 1`, { timeout: 30000 }, async (t) => {
        const { nodes } = await startCluster(t, { n: 3, threads: 2 });

        const users = Array.from({ length: USERS }, (_, i) => `ap-${i}`);
        const home = (i) => nodes[i % nodes.length];
        const sockets = closeAfter(t);
        for (let i = 0; i < USERS; i += 10) {
            const batch = await Promise.all(users.slice(i, i + 10).map((u, k) => register(home(i + k).wsUrl, u, { name: `name of ${u}` })));
            sockets.push(...batch);
        }

        const { total, ms, answers, calledTotal, problems, wrong } = await dialAllPairs(users, sockets, {
            window: WINDOW,
            tag: 'tag:',
            id: (key) => key,
            nameOf: (u) => `name of ${u}`,
            where: (i) => home(i).nodeId,
            timeout: 20000,
            interval: 25,
            settle: 300, // duplicates would come after the last answer: give them a moment
        });
        assert.equal(problems.length, 0, `every message as expected; first problems:\n${problems.slice(0, 5).join('\n')}`);
        assert.equal(answers, total, 'one answer per dialing');
        assert.equal(calledTotal, total, `no duplicates: ${calledTotal} called for ${total} dialings`);
        assert.deepEqual(wrong, [], 'each (sender, receiver) pair exactly once');
        for (const n of nodes) assert.ok(n.alive(), `${n.nodeId} exited; stderr:\n${n.stderr()}`);
        t.diagnostic(`${total} dialings + ${total} called over 3 nodes in ${ms} ms`);
    });
});
