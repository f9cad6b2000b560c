// Cross-thread delivery: num-threads 4, 200 users with one connection each (the kernel
// spreads the connections over the threads), and every user dials every other user once
// with an id: 200 * 199 = 39,800 dialings. Every `called` must arrive exactly once, at the
// right receiver, from the right sender; every dialing_response must be ok, delivered 1.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { signalingConfig, startServer } from '../lib/server.mjs';
import { calledText, dialAllPairs, dialingFailText, dialingOkText, register, waitPeerOffline } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAll } from '../lib/wsclient.mjs';

const USERS = 200;
const WINDOW = 16; // dialings in flight per connection (pacing)

/** CPU time (ms) of every thread of process `pid`, by thread id. */
function threadCpuMs(pid) {
    const out = new Map();
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
        try {
            out.set(tid, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6);
        } catch {
            /* thread gone */
        }
    }
    return out;
}

const config = (vars) => signalingConfig(vars);

describe('num-threads 4: every user dials every other user', { timeout: 90000 }, () => {
    let srv;
    before(async () => {
        srv = await startServer({ threads: 4, config });
    });
    after(() => srv?.stop());

    test(
        `${USERS} users, ${USERS * (USERS - 1)} dialings: each called exactly once, each answer ok/delivered 1`,
        { timeout: 60000 },
        async (t) => {
            const users = Array.from({ length: USERS }, (_, i) => `th-${i}`);
            const sockets = [];
            t.after(() => closeAll(sockets));
            // register in batches (bounded concurrency on connect)
            for (let i = 0; i < USERS; i += 50) {
                const batch = await Promise.all(
                    users.slice(i, i + 50).map((u) => register(srv.wsUrl, u, { timeout: 10000 })),
                );
                sockets.push(...batch);
            }

            const cpuBefore = threadCpuMs(srv.pid);
            const { total, ms: took, answers, calledTotal, called, problems, wrong } = await dialAllPairs(users, sockets, {
                window: WINDOW,
                tag: 'tag:',
                timeout: 50000,
                interval: 50,
            });
            assert.deepEqual(problems, []);
            assert.equal(answers, total);
            assert.equal(calledTotal, total, 'no duplicates');
            assert.deepEqual(wrong, [], 'each (sender, receiver) pair exactly once');
            assert.equal(called.size, total);
            assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);
            t.diagnostic(`${total} dialings + ${total} called in ${took} ms`);
            // evidence that the work was spread: several event-loop threads were busy during the run
            const cpuAfter = threadCpuMs(srv.pid);
            const busy = [...cpuAfter].map(([tid, ms]) => [tid, Math.round(ms - (cpuBefore.get(tid) ?? 0))]);
            t.diagnostic(`CPU ms per thread during the run: ${busy.map(([tid, ms]) => `${tid}:${ms}`).join(' ')}`);
            assert.ok(
                busy.filter(([, ms]) => ms >= 2).length >= 2,
                `only one thread did the work: ${JSON.stringify(busy)}`,
            );
        },
    );
    test(
        'devices of one user spread over threads: delivered counts them all, each gets every called once',
        { timeout: 30000 },
        async (t) => {
            const N = 10;
            const DEVICES = 4;
            const ids = Array.from({ length: N }, (_, i) => `md-${i}`);
            const conns = []; // [{user, ws}]
            t.after(() => closeAll(conns.map((c) => c.ws)));
            for (const user of ids) {
                for (let k = 0; k < DEVICES; k++)
                    conns.push({ user, ws: await register(srv.wsUrl, user, { id: `d${k}` }) });
            }
            const got = new Map(); // "sender>device index" -> count
            const problems = [];
            let answers = 0;
            let calls = 0;
            conns.forEach(({ user, ws }, index) => {
                ws.on('message', (data) => {
                    const text = data.toString();
                    const m = JSON.parse(text);
                    if (m.type === 'called') {
                        if (text !== calledText({ sponsorUserId: m.data.sponsorUserId, field1: `to:${user}` }))
                            problems.push(`device ${index}: ${text}`);
                        const key = `${m.data.sponsorUserId}>${index}`;
                        got.set(key, (got.get(key) ?? 0) + 1);
                        calls++;
                    } else if (m.type === 'dialing_response') {
                        if (text !== dialingOkText(m.id, m.id.split('>')[1], DEVICES))
                            problems.push(`${user}: ${text}`);
                        answers++;
                    } else problems.push(`${user}: ${text}`);
                });
            });
            // the first device of each user dials every other user
            for (const { user, ws } of conns.filter((_, i) => i % DEVICES === 0)) {
                for (const other of ids) {
                    if (other !== user)
                        ws.send(
                            JSON.stringify({
                                type: 'dialing',
                                receiverUserId: other,
                                field1: `to:${other}`,
                                id: `${user}>${other}`,
                            }),
                        );
                }
            }
            const dials = N * (N - 1);
            await waitUntil(() => problems.length > 0 || (answers === dials && calls >= dials * DEVICES), {
                timeout: 20000,
                what: `answers ${dials} and called ${dials * DEVICES}`,
            }).catch((err) => {
                throw new Error(
                    `${err.message}: ${answers} answers, ${calls} called; ${problems.slice(0, 5).join(' | ')}`,
                );
            });
            assert.deepEqual(problems, []);
            assert.equal(calls, dials * DEVICES, 'no duplicates');
            for (const [index, { user }] of conns.entries()) {
                for (const sender of ids) {
                    if (sender !== user)
                        assert.equal(got.get(`${sender}>${index}`), 1, `${sender} -> device ${index} of ${user}`);
                }
            }
        },
    );

    test(
        'every dialing with an id gets exactly one answer while its receivers disconnect',
        { timeout: 30000 },
        async (t) => {
            const RECEIVERS = 60;
            const DIALERS = 8;
            const receivers = [];
            const dialers = [];
            t.after(() => closeAll([...receivers, ...dialers]));
            for (let i = 0; i < RECEIVERS; i++) receivers.push(await register(srv.wsUrl, `churn-r${i}`));
            for (let i = 0; i < DIALERS; i++) dialers.push(await register(srv.wsUrl, `churn-d${i}`));
            const problems = [];
            const counts = { ok: 0, peer_gone: 0, peer_offline: 0 };
            const answered = new Map(); // id -> count
            let sent = 0;
            for (const [di, ws] of dialers.entries()) {
                ws.on('message', (data) => {
                    const text = data.toString();
                    const m = JSON.parse(text);
                    if (m.type !== 'dialing_response') return problems.push(`dialer ${di}: ${text}`);
                    answered.set(m.id, (answered.get(m.id) ?? 0) + 1);
                    const receiver = m.id.split('|')[0];
                    if (m.ok) {
                        counts.ok++;
                        if (text !== dialingOkText(m.id, receiver, 1)) problems.push(text);
                    } else if (m.code in counts) {
                        counts[m.code]++;
                        if (text !== dialingFailText(m.code, m.id)) problems.push(text);
                    } else problems.push(text);
                });
            }
            // rounds: every dialer dials every receiver, and between rounds some receivers drop
            // (terminate: no close frame), while the dialings of the round are in flight
            const ROUNDS = 6;
            for (let round = 0; round < ROUNDS; round++) {
                for (const ws of dialers) {
                    for (let r = 0; r < RECEIVERS; r++)
                        ws.send(
                            JSON.stringify({
                                type: 'dialing',
                                receiverUserId: `churn-r${r}`,
                                id: `churn-r${r}|${sent++}`,
                            }),
                        );
                }
                for (let r = round * 10; r < (round + 1) * 10; r++) receivers[r].terminate();
                await waitUntil(() => answered.size === sent || problems.length > 0, {
                    timeout: 10000,
                    what: `answers to ${sent} dialings (round ${round})`,
                });
            }
            assert.deepEqual(problems, []);
            assert.equal(answered.size, sent);
            const dup = [...answered].filter(([, n]) => n !== 1);
            assert.deepEqual(dup, [], 'exactly one answer per dialing');
            t.diagnostic(`answers: ${JSON.stringify(counts)}`);
            // every receiver is gone now: all of them end up offline
            const probe = await register(srv.wsUrl, 'churn-probe');
            receivers.push(probe);
            for (let r = 0; r < RECEIVERS; r++) await waitPeerOffline(probe, `churn-r${r}`, { timeout: 5000 });
            assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);
        },
    );
});
