// Level-2 calls across threads under load (num-threads 4): many calls at once, each between users
// whose connections the kernel put on various threads, each run through ringing on two devices,
// call_ringing, accept, a burst of signals each way and hangup, with every message of every device
// checked; and signal order under load (no rate limits): each side gets the other's signals in
// order, seq 1..N, nothing lost or doubled. Bounded in count and time.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { activeCall, callServer, clientsOf, device, leftovers, SLOW, stopClean, T, uid } from '../lib/callclient.mjs';

const RING = 20000 * SLOW;

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

describe('level-2 calls across 4 threads', { timeout: 180000 * SLOW }, () => {
    let srv;
    before(async () => {
        srv = await callServer([
                        `signaling.call.ring-timeout: ${RING}`,
                        'signaling.call.signal-rate: 0',
                        'signaling.call.signal-buffer: 1000',
                        'signaling.rate-limit: 0',
                    ]);
    });
    after(() => stopClean(srv));

    test('60 calls at once, each: two devices ring, call_ringing, accept, 10 signals each way, hangup; every message exact', { timeout: 90000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        const PAIRS = 60;
        const SIGNALS = 10;
        const cpuBefore = threadCpuMs(srv.pid);
        const started = Date.now();
        const one = async (i) => {
            const [A, B] = [uid(`th-a${i}`), uid(`th-b${i}`)];
            const a = await device(srv.wsUrl, A, { device: 'a', name: `caller ${i}` });
            const b1 = await device(srv.wsUrl, B, { device: 'b1' });
            const b2 = await device(srv.wsUrl, B, { device: 'b2' });
            list.push(a, b1, b2);
            const r = await a.call({ to: B, media: i % 2 ? 'video' : 'audio', sponsorUserName: `caller ${i}` });
            const callId = r.msg.data?.callId;
            const media = i % 2 ? 'video' : 'audio';
            assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 2, legacy: 0 }), `pair ${i}`);
            for (const d of [b1, b2]) await d.expect(T.incoming({ callId, from: A, name: `caller ${i}`, media, expiresIn: RING }));
            const [w, l, wd] = i % 2 ? [b2, b1, 'b2'] : [b1, b2, 'b1'];
            let id = w.post({ type: 'call_ringing', callId });
            await w.expectReply(id, T.response('call_ringing', { id, callId, state: 'ringing' }));
            await a.expect(T.state({ callId, state: 'ringing', alerting: 1, peerConnected: true }));
            // the caller's offer before the accept: buffered
            id = a.post({ type: 'call_signal', callId, kind: 'offer', data: { sdp: `offer ${i}` } });
            await a.expectReply(id, T.response('call_signal', { id, callId, state: 'ringing' }));
            id = w.post({ type: 'call_accept', callId });
            await w.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
            await a.expect(T.accepted({ callId, byUser: B, byDevice: wd, polite: false }));
            await w.expect(T.accepted({ callId, byUser: B, byDevice: wd, polite: true }));
            await l.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
            assert.equal(await w.take('call_signal', callId), T.signal({ callId, fromUser: A, fromDevice: 'a', seq: 1, kind: 'offer', data: `{"sdp":"offer ${i}"}` }));
            for (let k = 0; k < SIGNALS; k++) {
                a.post({ type: 'call_signal', callId, kind: 'candidate', data: { k } });
                w.post({ type: 'call_signal', callId, kind: 'candidate', data: { k } });
            }
            for (let k = 0; k < SIGNALS; k++) {
                assert.equal(await w.take('call_signal', callId), T.signal({ callId, fromUser: A, fromDevice: 'a', seq: 2 + k, kind: 'candidate', data: `{"k":${k}}` }));
                assert.equal(await a.take('call_signal', callId), T.signal({ callId, fromUser: B, fromDevice: wd, seq: 1 + k, kind: 'candidate', data: `{"k":${k}}` }));
            }
            for (let k = 0; k < SIGNALS; k++) {
                await a.takeWhere((m) => m.type === 'call_signal_response' && m.ok === true && m.data?.callId === callId, 'a signal reply');
                await w.takeWhere((m) => m.type === 'call_signal_response' && m.ok === true && m.data?.callId === callId, 'a signal reply');
            }
            id = (i % 3 ? a : w).post({ type: 'call_hangup', callId });
            await (i % 3 ? a : w).expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
            await (i % 3 ? w : a).expect(T.ended({ callId, reason: 'hangup' }));
            return [a, b1, b2];
        };
        const results = await Promise.allSettled(Array.from({ length: PAIRS }, (_, i) => one(i)));
        const failed = results.map((r, i) => [r, i]).filter(([r]) => r.status === 'rejected');
        assert.deepEqual(failed.slice(0, 5).map(([r, i]) => `pair ${i}: ${r.reason?.message}`), [], `${failed.length} of ${PAIRS} pairs failed`);
        const took = Date.now() - started;
        const rest = await leftovers(results.flatMap((r) => r.value), 200);
        assert.deepEqual(rest, {}, 'nothing more on any device');
        const cpuAfter = threadCpuMs(srv.pid);
        const busy = [...cpuAfter].map(([tid, ms]) => [tid, Math.round(ms - (cpuBefore.get(tid) ?? 0))]);
        t.diagnostic(`${PAIRS} calls in ${took} ms; CPU ms per thread: ${busy.map(([tid, ms]) => `${tid}:${ms}`).join(' ')}`);
        assert.ok(busy.filter(([, ms]) => ms >= 2).length >= 2, `only one thread did the work: ${JSON.stringify(busy)}`);
    });

    test('signal order under load: 20 calls, 200 signals each way each, all at once: seq 1..200 in order everywhere', { timeout: 90000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        const CALLS = 20;
        const N = 200;
        const calls = [];
        for (let i = 0; i < CALLS; i++) calls.push(await activeCall(srv.wsUrl, list, { calleeDevices: ['b'], ringTimeout: RING }));
        const started = Date.now();
        for (const { a, b, callId } of calls) {
            for (let k = 0; k < N; k++) {
                a.send(`{"type":"call_signal","callId":"${callId}","kind":"candidate","data":{"k":${k},"pad":"${'p'.repeat(k % 50)}"}}`);
                b.send(`{"type":"call_signal","callId":"${callId}","kind":"candidate","data":{"k":${k},"pad":"${'p'.repeat(k % 50)}"}}`);
            }
        }
        const check = async ({ a, b, callId, A, B }) => {
            for (const [to, fromUser, fromDevice] of [[b, A, 'a-1'], [a, B, 'b']]) {
                for (let k = 0; k < N; k++) {
                    const got = await to.take('call_signal', callId, { timeout: 30000 * SLOW });
                    assert.equal(got, T.signal({ callId, fromUser, fromDevice, seq: k + 1, kind: 'candidate', data: `{"k":${k},"pad":"${'p'.repeat(k % 50)}"}` }));
                }
            }
            for (const c of [a, b]) {
                for (let k = 0; k < N; k++) {
                    const e = await c.takeWhere((m) => m.type === 'call_signal_response', 'a signal reply', { timeout: 30000 * SLOW });
                    assert.equal(e.text, T.response('call_signal', { id: undefined, callId, state: 'active' }));
                }
            }
        };
        await Promise.all(calls.map(check));
        t.diagnostic(`${CALLS * N * 2} signals relayed in order in ${Date.now() - started} ms`);
        const rest = await leftovers(calls.flatMap(({ a, b }) => [a, b]), 100);
        assert.deepEqual(rest, {});
    });

    test('100 users each call the next one at once (a ring of calls): every call resolves, no device double-booked', { timeout: 60000 * SLOW }, async (t) => {
        // user i calls user i+1 (mod N) while being called by i-1: each user is a caller and a callee
        const list = clientsOf(t);
        const N = 100;
        const users = Array.from({ length: N }, (_, i) => uid(`ring${i}`));
        const devs = [];
        for (let i = 0; i < N; i += 25) devs.push(...(await Promise.all(users.slice(i, i + 25).map((u) => device(srv.wsUrl, u, { device: 'd' })))));
        list.push(...devs);
        const ids = devs.map((d, i) => d.post({ type: 'call', receiverUserId: users[(i + 1) % N], media: 'audio' }));
        const callIds = [];
        for (const [i, d] of devs.entries()) {
            const r = JSON.parse(await d.reply(ids[i], { timeout: 20000 * SLOW }));
            assert.equal(JSON.stringify(r), T.callResponse({ id: ids[i], callId: r.data?.callId, state: 'ringing', level2: 1, legacy: 0 }), `user ${i}`);
            callIds.push(r.data.callId);
        }
        // each device got the incoming_call of its caller; accept it
        for (const [i, d] of devs.entries()) {
            const from = (i + N - 1) % N;
            await d.expect(T.incoming({ callId: callIds[from], from: users[from], name: '', media: 'audio', expiresIn: RING }), { timeout: 20000 * SLOW });
        }
        const acc = devs.map((d, i) => d.post({ type: 'call_accept', callId: callIds[(i + N - 1) % N] }));
        for (const [i, d] of devs.entries()) {
            const callId = callIds[(i + N - 1) % N];
            await d.expectReply(acc[i], T.response('call_accept', { id: acc[i], callId, state: 'active' }), { timeout: 20000 * SLOW });
            await d.expect(T.accepted({ callId, byUser: users[i], byDevice: 'd', polite: true }), { timeout: 20000 * SLOW });
            const own = callIds[i];
            await d.expect(T.accepted({ callId: own, byUser: users[(i + 1) % N], byDevice: 'd', polite: false }), { timeout: 20000 * SLOW });
        }
        const rest = await leftovers(devs, 200);
        assert.deepEqual(rest, {});
    });
});
