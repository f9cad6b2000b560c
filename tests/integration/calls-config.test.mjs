// Level 2 and the config: `signaling.call: OFF` answers "level":2 as level 1 and call messages with
// level 1's unknown_type; a route with signaling.redis offers level 2 (a lone node owns the calls);
// the directives' bounds (-t); a reload (SIGHUP) keeps a live call working and applies a changed
// ring-timeout to new calls; a shutdown ends live calls with `shutdown`.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { activeCall, CallClient, callServer, clientsOf, device, quietAll, ringCall, SLOW, stopClean, T, uid } from '../lib/callclient.mjs';
import { requireRedisSupport, startNode, startRedis } from '../lib/redis.mjs';
import { expectReloaded, requireReload } from '../lib/reload.mjs';
import { configErrors, runConfigTest, signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';

const ALL_TYPES = ['call', 'call_ringing', 'call_accept', 'call_reject', 'call_hangup', 'call_signal', 'call_resume'];
const anyCallMessage = (type, id) => ({ type, id, callId: 'c-1', receiverUserId: 'someone', media: 'audio', kind: 'offer', data: {} });

/** The level-1 answer to a level-2 create_connect: exactly level 1's bytes. */
async function expectLevel1Answer(url, user) {
    const c = await CallClient.open(url, { label: `${user} (level 2 asked)` });
    const reply = await c.request({ type: 'create_connect', id: 1, sponsorUserId: user, sponsorUserName: 'A', level: 2, deviceId: 'phone-1' });
    assert.equal(reply, `{"type":"create_connect_response","ok":true,"msg":"","id":1,"data":{"sponsorUserId":"${user}"}}`);
    return c;
}

describe('signaling.call: OFF', { timeout: 30000 * SLOW }, () => {
    let srv;
    before(async () => {
        srv = await callServer(['signaling.call: OFF']);
    });
    after(() => stopClean(srv));

    test('"level":2 is answered with level 1\'s bytes; every call message gets level 1\'s unknown_type', async (t) => {
        const list = clientsOf(t);
        const A = uid('off-a');
        const B = uid('off-b');
        const a = await expectLevel1Answer(srv.wsUrl, A);
        const b = await expectLevel1Answer(srv.wsUrl, B);
        list.push(a, b);
        for (const [i, type] of ALL_TYPES.entries()) {
            const reply = await a.request({ ...anyCallMessage(type, 100 + i), receiverUserId: B });
            assert.equal(reply, `{"type":"error","ok":false,"msg":"message type is not known","code":"unknown_type","id":${100 + i}}`, type);
        }
        // level 1 works as ever: dialing between them
        assert.equal(
            await a.request({ type: 'dialing', receiverUserId: B, field1: 'hi', id: 7 }),
            `{"type":"dialing_response","ok":true,"msg":"","id":7,"data":{"receiverUserId":"${B}","delivered":1}}`,
        );
        assert.equal(
            await b.take('called'),
            `{"type":"called","ok":true,"msg":"","data":{"sponsorUserId":"${A}","sponsorUserName":"A","field1":"hi","field2":"","field3":""}}`,
        );
        await quietAll([a, b]);
    });
});

describe('a route with signaling.redis offers level 2 (a lone node owns the calls; calls-nodes.test.mjs has two)', { timeout: 60000 * SLOW }, () => {
    let redis;
    let node;
    before(async () => {
        await requireRedisSupport();
        redis = await startRedis();
        node = await startNode({ redis: redis.addr, nodeId: 'calls-a', threads: 2 });
        // the node owns the calls once it holds the lease in Redis
        await waitUntil(async () => (await redis.command('GET', 'sig:o:default/WsService')) === 'calls-a', { timeout: 5000 * SLOW, what: 'the lease' });
    });
    after(async () => {
        await stopClean(node);
        await redis?.stop();
    });

    test('"level":2 registers as a device; a call rings, is accepted and hung up; dialing still works', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId, A, B } = await activeCall(node.wsUrl, list);
        const id = a.post({ type: 'call_hangup', callId });
        assert.equal(await a.reply(id), T.response('call_hangup', { id, callId, state: 'ended' }));
        await bs[0].take('call_ended', callId);
        assert.equal(
            await a.request({ type: 'dialing', receiverUserId: B, id: 8 }),
            `{"type":"dialing_response","ok":true,"msg":"","id":8,"data":{"receiverUserId":"${B}","delivered":1}}`,
        );
        assert.match(await bs[0].take('called'), new RegExp(`"sponsorUserId":"${A}"`));
        await quietAll([a, ...bs]);
    });
});

describe('the signaling.call directives (-t)', { timeout: 60000 * SLOW }, () => {
    const check = (line) => runConfigTest((vars) => signalingConfig(vars, { settings: [line] }));
    const good = [
        'signaling.call: ON',
        'signaling.call: OFF',
        'signaling.call.ring-timeout: 100',
        'signaling.call.ring-timeout: 600000',
        'signaling.call.reconnect-grace: 0',
        'signaling.call.reconnect-grace: 300000',
        'signaling.call.when-busy: busy',
        'signaling.call.when-busy: ring',
        'signaling.call.max-per-user: 0',
        'signaling.call.max-signal-size: 65536',
        'signaling.call.signal-rate: 0',
        'signaling.call.signal-burst: 64',
        'signaling.call.signal-buffer: 64',
        'signaling.call.max-duration: 0',
    ];
    const bad = [
        'signaling.call: maybe',
        'signaling.call.ring-timeout: 99',
        'signaling.call.ring-timeout: 600001',
        'signaling.call.ring-timeout: soon',
        'signaling.call.reconnect-grace: 300001',
        'signaling.call.when-busy: waiting',
        'signaling.call.max-per-user: -1',
    ];
    for (const line of good) {
        test(`accepted: ${line}`, async () => {
            const r = await check(line);
            assert.equal(r.code, 0, `${line}: ${r.stderr}`);
        });
    }
    for (const line of bad) {
        test(`refused with FILE:LINE: ${line}`, async () => {
            const r = await check(line);
            assert.notEqual(r.code, 0, `${line} was accepted`);
            const errors = configErrors(r.stderr, r.file);
            assert.ok(errors.length >= 1, `${line}: a FILE:LINE error; stderr:\n${r.stderr}`);
            const lineNo = r.config.split('\n').findIndex((l) => l.trim() === line) + 1;
            assert.ok(errors.some((e) => e.line === lineNo), `${line}: the error names line ${lineNo}: ${JSON.stringify(errors)}`);
        });
    }
});

describe('reload (SIGHUP) with live calls', { timeout: 60000 * SLOW }, () => {
    const FIRST = 5000 * SLOW;
    const SECOND = 600 * SLOW;
    let srv;
    const config = (ring) => (vars) => signalingConfig(vars, { settings: [`signaling.call.ring-timeout: ${ring}`, 'signaling.call.reconnect-grace: 1000'] });
    before(async () => {
        await requireReload();
        srv = await startServer({ threads: 4, config: config(FIRST) });
    });
    after(() => stopClean(srv));

    test('a live call keeps working across a reload; the new ring-timeout applies to new calls, a ringing one keeps its own', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId, A, B } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'], ringTimeout: FIRST });
        const ringing = await ringCall(srv.wsUrl, list, { calleeDevices: ['r-1'], ringTimeout: FIRST });
        await expectReloaded(srv, config(SECOND));
        // the live call: signals still relayed both ways, numbered on, and its hangup works
        let id = a.post({ type: 'call_signal', callId, kind: 'offer', data: { after: 'reload' } });
        await a.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await b.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: 1, kind: 'offer', data: '{"after":"reload"}' }));
        id = b.post({ type: 'call_signal', callId, kind: 'answer', data: 1 });
        await b.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await a.expect(T.signal({ callId, fromUser: B, fromDevice: 'b-1', seq: 1, kind: 'answer', data: '1' }));
        // a device registering after the reload still sees the live call and is of level 2
        const b2 = await device(srv.wsUrl, B, { device: 'b-2', calls: [{ callId, state: 'active', role: 'callee', peerUserId: A, media: 'audio' }] });
        list.push(b2);
        // a new call rings for the new ring-timeout
        const fresh = await ringCall(srv.wsUrl, list, { calleeDevices: ['n-1'], ringTimeout: SECOND });
        const started = Date.now();
        await fresh.a.expect(T.ended({ callId: fresh.callId, reason: 'no_answer' }), { timeout: 5000 * SLOW });
        await fresh.bs[0].expect(T.ended({ callId: fresh.callId, reason: 'no_answer' }));
        const took = Date.now() - started;
        assert.ok(took < FIRST - 1000, `the new call ended after ${took} ms: the new ring-timeout ${SECOND}, not ${FIRST}`);
        // the call that rang before the reload still rings and can be accepted
        id = ringing.bs[0].post({ type: 'call_accept', callId: ringing.callId });
        await ringing.bs[0].expectReply(id, T.response('call_accept', { id, callId: ringing.callId, state: 'active' }));
        await ringing.a.expect(T.accepted({ callId: ringing.callId, byUser: ringing.B, byDevice: 'r-1', polite: false }));
        await ringing.bs[0].expect(T.accepted({ callId: ringing.callId, byUser: ringing.B, byDevice: 'r-1', polite: true }));
        id = a.post({ type: 'call_hangup', callId });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await b.expect(T.ended({ callId, reason: 'hangup' }));
        await quietAll([a, b, b2, fresh.a, ...fresh.bs, ringing.a, ...ringing.bs]);
    });
});

describe('shutdown (SIGTERM) with live calls', { timeout: 30000 * SLOW }, () => {
    test('every device of a live call gets call_ended shutdown, then close 1001', async (t) => {
        const srv = await callServer(['signaling.call.ring-timeout: 10000']);
        t.after(() => srv.stop('SIGKILL'));
        const list = clientsOf(t);
        // several calls, so that their devices are on several threads
        const active = [];
        const ringing = [];
        for (let i = 0; i < 4; i++) active.push(await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] }));
        for (let i = 0; i < 2; i++) ringing.push(await ringCall(srv.wsUrl, list, { calleeDevices: ['r-1', 'r-2'] }));
        const expected = [
            ...active.flatMap((c) => [[c.a, c.callId], [c.b, c.callId]]),
            ...ringing.flatMap((c) => [[c.a, c.callId], ...c.bs.map((d) => [d, c.callId])]),
        ];
        const st = await srv.stop('SIGTERM');
        const problems = [];
        for (const [c, callId] of expected) {
            const closed = await withTimeout(c.closed, 5000 * SLOW, `${c.label}: the close`);
            const want = [T.ended({ callId, reason: 'shutdown' })];
            if (closed.code !== 1001 || JSON.stringify(c.left()) !== JSON.stringify(want))
                problems.push(`${c.label}: close ${closed.code}, got ${JSON.stringify(c.left())}`);
        }
        assert.deepEqual(problems, [], `each device: exactly call_ended{shutdown} before close 1001 (${problems.length} of ${expected.length} wrong)`);
        assert.equal(st.code, 0, `exit: ${JSON.stringify(st)}`);
    });
});
