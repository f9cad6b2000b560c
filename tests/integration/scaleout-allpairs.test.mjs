// Three nodes on one Redis (two event-loop threads each), 30 users spread over them, and every
// user dials every other user once with an id: 870 dialings, two thirds of them across nodes.
// Every `called` must arrive exactly once, at the right receiver, from the right sender; every
// dialing_response must be ok with delivered 1.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { requireRedisSupport, startNodes, startRedis, waitCrossNode, waitNodesLinked } from '../lib/redis.mjs';
import { calledText, dialingOkText, register } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAll } from '../lib/wsclient.mjs';

const USERS = 30;
const WINDOW = 4; // dialings in flight per connection

describe('three nodes: every user dials every other user', { timeout: 60000 }, () => {
    test(`${USERS} users over 3 nodes, ${USERS * (USERS - 1)} dialings: each called exactly once, each answer delivered 1`, { timeout: 30000 }, async (t) => {
        await requireRedisSupport();
        const redis = await startRedis();
        t.after(() => redis.stop());
        const nodes = await startNodes(
            t,
            ['node-a', 'node-b', 'node-c'].map((nodeId) => ({ redis: redis.addr, nodeId, threads: 2 })),
        );
        await waitNodesLinked(redis, nodes);
        await waitCrossNode(nodes);

        const users = Array.from({ length: USERS }, (_, i) => `ap-${i}`);
        const home = (i) => nodes[i % nodes.length];
        const sockets = [];
        t.after(() => closeAll(sockets));
        for (let i = 0; i < USERS; i += 10) {
            const batch = await Promise.all(users.slice(i, i + 10).map((u, k) => register(home(i + k).wsUrl, u, { name: `name of ${u}` })));
            sockets.push(...batch);
        }

        const called = new Map(); // "sender>receiver" -> count
        let calledTotal = 0;
        let answers = 0;
        const problems = [];
        const note = (msg) => {
            if (problems.length < 20) problems.push(msg);
        };
        const senders = users.map((me, i) => {
            const ws = sockets[i];
            const targets = users.filter((u) => u !== me);
            const pending = new Map(); // id -> receiver
            let next = 0;
            const sendMore = () => {
                while (pending.size < WINDOW && next < targets.length) {
                    const receiverUserId = targets[next];
                    const id = `${me}>${receiverUserId}`;
                    next++;
                    pending.set(id, receiverUserId);
                    ws.send(JSON.stringify({ type: 'dialing', receiverUserId, field1: `tag:${id}`, id }));
                }
            };
            ws.on('message', (data, isBinary) => {
                const text = data.toString('utf8');
                if (isBinary) return note(`${me}: binary message`);
                let m;
                try {
                    m = JSON.parse(text);
                } catch {
                    return note(`${me}: not JSON: ${text}`);
                }
                if (m.type === 'called') {
                    const from = m.data?.sponsorUserId;
                    const key = `${from}>${me}`;
                    const expected = calledText({ sponsorUserId: from, sponsorUserName: `name of ${from}`, field1: `tag:${key}` });
                    if (text !== expected) note(`${me} (${home(i).nodeId}): expected ${expected}, got ${text}`);
                    called.set(key, (called.get(key) ?? 0) + 1);
                    calledTotal++;
                } else if (m.type === 'dialing_response' && pending.has(m.id)) {
                    const receiver = pending.get(m.id);
                    pending.delete(m.id);
                    answers++;
                    const expected = dialingOkText(m.id, receiver, 1);
                    if (text !== expected) {
                        const r = users.indexOf(receiver);
                        note(`${me} (${home(i).nodeId}) -> ${receiver} (${home(r).nodeId}): expected ${expected}, got ${text}`);
                    }
                    sendMore();
                } else {
                    note(`${me}: unexpected ${text}`);
                }
            });
            ws.on('close', (code) => note(`${me}: connection closed (${code})`));
            return sendMore;
        });

        const total = USERS * (USERS - 1);
        const started = Date.now();
        for (const start of senders) start();
        await waitUntil(() => problems.length > 0 || (answers === total && calledTotal >= total), {
            timeout: 20000,
            interval: 25,
            what: 'every answer and every called',
        }).catch((err) => {
            throw new Error(
                `${err.message}: after ${Date.now() - started} ms ${answers}/${total} answers, ${calledTotal}/${total} called; ` +
                    `problems: ${problems.join(' | ')}`,
            );
        });
        const ms = Date.now() - started;
        // duplicates would come after the last answer: give them a moment
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(problems.length, 0, `every message as expected; first problems:\n${problems.slice(0, 5).join('\n')}`);
        assert.equal(answers, total, 'one answer per dialing');
        assert.equal(calledTotal, total, `no duplicates: ${calledTotal} called for ${total} dialings`);
        const wrong = [];
        for (const a of users) {
            for (const b of users) {
                if (a === b) continue;
                const n = called.get(`${a}>${b}`) ?? 0;
                if (n !== 1 && wrong.length < 20) wrong.push(`${a}>${b}: ${n}`);
            }
        }
        assert.deepEqual(wrong, [], 'each (sender, receiver) pair exactly once');
        for (const n of nodes) assert.ok(n.alive(), `${n.nodeId} exited; stderr:\n${n.stderr()}`);
        t.diagnostic(`${total} dialings + ${total} called over 3 nodes in ${ms} ms`);
    });
});
