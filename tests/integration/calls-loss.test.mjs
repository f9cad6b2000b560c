// Level-2 connection loss (calls.md "Connection loss"), num-threads 4, reconnect-grace 800 ms:
// a clean close (close frame 1000/1001) of a party ends the call at once (its hangup; the cancel
// while ringing); an abrupt loss (no close frame: ws.terminate(), or the client process killed with
// SIGKILL) detaches the party: the other side gets call_state peerConnected:false, the party may
// come back within the grace (same deviceId at create_connect, or call_resume from a connection
// without one: call_state to both sides, buffered signals flushed in order), else the call ends
// with peer_gone. Also: ringing devices that leave and come back, an accept while the caller is
// detached, and a new call that replaces the one of a detached party.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { activeCall, callServer, clientsOf, device, quietAll, ringCall, SLOW, stopClean, T, uid } from '../lib/callclient.mjs';
import { REPO_ROOT, spawnChild } from '../lib/server.mjs';
import { waitUntil } from '../lib/wait.mjs';

const GRACE = 800 * SLOW;
const RING = 8000 * SLOW;

describe('level-2 connection loss on num-threads 4', { timeout: 120000 * SLOW }, () => {
    let srv;
    before(async () => {
        srv = await callServer([`signaling.call.ring-timeout: ${RING}`, `signaling.call.reconnect-grace: ${GRACE}`]);
    });
    after(() => stopClean(srv));

    for (const [who, code] of [['caller', 1000], ['callee', 1001]]) {
        test(`a clean close (${code}) of the ${who} of an active call ends it at once: hangup to the other`, async (t) => {
            const list = clientsOf(t);
            const { a, b, callId, A, B } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
            const [leaving, staying] = who === 'caller' ? [a, b] : [b, a];
            const started = Date.now();
            const closed = await leaving.close(code);
            assert.equal(closed.code, code, 'the server answered the close with the same code');
            await staying.expect(T.ended({ callId, reason: 'hangup' }), { timeout: GRACE });
            const took = Date.now() - started;
            assert.ok(took < GRACE, `call_ended ${took} ms after the close: at once, not after the grace`);
            // the ended call is gone for both users
            const again = await device(srv.wsUrl, who === 'caller' ? A : B, { calls: [] });
            list.push(again);
            await quietAll([staying, again], GRACE + 200); // and no peer_gone after the grace
        });
    }

    test('a clean close of the caller while it rings is the cancel: every ringing device gets cancelled', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'] });
        await a.close(1000);
        for (const b of bs) await b.expect(T.ended({ callId, reason: 'cancelled' }), { timeout: GRACE });
        await quietAll(bs, GRACE + 200);
    });

    test('ringing devices that close leave the ring set (call_state to the caller); one that registers joins it', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId, A, B } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'] });
        const [bp, bw] = bs;
        let id = bp.post({ type: 'call_ringing', callId });
        await bp.expectReply(id, T.response('call_ringing', { id, callId, state: 'ringing' }));
        await a.expect(T.state({ callId, state: 'ringing', alerting: 1, peerConnected: true }));
        // the alerting device goes: alerting 0, a device still rings
        await bp.close(1000);
        await a.expect(T.state({ callId, state: 'ringing', alerting: 0, peerConnected: true }));
        // the last one goes (abruptly): nobody rings now, the call keeps ringing
        await bw.kill();
        await a.expect(T.state({ callId, state: 'ringing', alerting: 0, peerConnected: false }));
        // a device that registers while it rings is rung, and the caller sees a device again
        const bt = await device(srv.wsUrl, B, { device: 'b-tab', calls: [{ callId, state: 'ringing', role: 'callee', peerUserId: A, media: 'audio' }] });
        list.push(bt);
        const inc = JSON.parse(await bt.take('incoming_call', callId));
        assert.ok(inc.data.expiresIn > 0 && inc.data.expiresIn < RING, `expiresIn ${inc.data.expiresIn}`);
        assert.equal(JSON.stringify(inc), T.incoming({ callId, from: A, name: 'Caller', media: 'audio', expiresIn: inc.data.expiresIn }));
        await a.expect(T.state({ callId, state: 'ringing', alerting: 0, peerConnected: true }));
        id = bt.post({ type: 'call_accept', callId });
        await bt.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-tab', polite: false }));
        await bt.expect(T.accepted({ callId, byUser: B, byDevice: 'b-tab', polite: true }));
        await quietAll([a, bt]);
    });

    test('a ringing device lost abruptly that comes back with its deviceId is rung again', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId, A, B } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'] });
        const [bp, bw] = bs;
        await bp.kill();
        const back = await device(srv.wsUrl, B, { device: 'b-phone', calls: [{ callId, state: 'ringing', role: 'callee', peerUserId: A, media: 'audio' }] });
        list.push(back);
        const inc = JSON.parse(await back.take('incoming_call', callId));
        assert.ok(inc.data.expiresIn > 0 && inc.data.expiresIn < RING, `expiresIn ${inc.data.expiresIn}`);
        assert.equal(JSON.stringify(inc), T.incoming({ callId, from: A, name: 'Caller', media: 'audio', expiresIn: inc.data.expiresIn }));
        const id = back.post({ type: 'call_accept', callId });
        await back.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-phone', polite: false }));
        await back.expect(T.accepted({ callId, byUser: B, byDevice: 'b-phone', polite: true }));
        await bw.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
        await quietAll([a, back, bw]);
    });

    test('abrupt loss of a party: call_state peerConnected:false to the other, peer_gone after the grace', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        const started = Date.now();
        await a.kill();
        await b.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        // while detached, the other side's signals are buffered (answered with the state)
        const id = b.post({ type: 'call_signal', callId, kind: 'candidate', data: {} });
        await b.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await b.expect(T.ended({ callId, reason: 'peer_gone' }), { timeout: GRACE + 3000 });
        const took = Date.now() - started;
        assert.ok(took >= GRACE - 50, `peer_gone after ${took} ms (grace ${GRACE})`);
        // a repeat: the same call_ended
        const h = b.post({ type: 'call_hangup', callId });
        await b.expectReply(h, T.response('call_hangup', { id: h, callId, state: 'ended' }));
        await b.expect(T.ended({ callId, reason: 'peer_gone', repeat: true }));
        await quietAll([b]);
    });

    test('resume with the same deviceId within the grace: call_state to both, buffered signals flushed in order, numbering goes on', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId, A, B } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-phone'], media: 'video' });
        // one signal each way before the loss
        let id = a.post({ type: 'call_signal', callId, kind: 'offer', data: { n: 1 } });
        await a.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await b.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: 1, kind: 'offer', data: '{"n":1}' }));
        id = b.post({ type: 'call_signal', callId, kind: 'answer', data: { n: 1 } });
        await b.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await a.expect(T.signal({ callId, fromUser: B, fromDevice: 'b-phone', seq: 1, kind: 'answer', data: '{"n":1}' }));

        await b.kill();
        await a.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        for (let n = 2; n <= 4; n++) {
            id = a.post({ type: 'call_signal', callId, kind: 'candidate', data: { n } });
            await a.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        }
        // back with its deviceId: listed, re-attached, told, flushed
        const back = await device(srv.wsUrl, B, {
            device: 'b-phone',
            calls: [{ callId, state: 'active', role: 'callee', peerUserId: A, media: 'video' }],
        });
        list.push(back);
        await back.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        await a.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        for (let n = 2; n <= 4; n++) {
            assert.equal(
                await back.take('call_signal', callId),
                T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: n, kind: 'candidate', data: `{"n":${n}}` }),
                `flushed signal ${n}`,
            );
        }
        // the call goes on, both ways, numbering on
        id = back.post({ type: 'call_signal', callId, kind: 'offer', data: { restart: true } });
        await back.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await a.expect(T.signal({ callId, fromUser: B, fromDevice: 'b-phone', seq: 2, kind: 'offer', data: '{"restart":true}' }));
        // and no peer_gone when the grace would have run out
        await quietAll([a, back], GRACE + 200);
        id = a.post({ type: 'call_hangup', callId });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await back.expect(T.ended({ callId, reason: 'hangup' }));
        await quietAll([a, back]);
    });

    test('call_resume {callId} from a new connection without deviceId re-attaches the party', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId, A, B } = await activeCall(srv.wsUrl, list, { callerDevice: null, calleeDevices: ['b-1'] });
        await a.kill();
        await b.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        let id = b.post({ type: 'call_signal', callId, kind: 'candidate', data: [1] });
        await b.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        // a new connection of A, no deviceId: the call is listed, nothing is re-attached yet
        const a2 = await device(srv.wsUrl, A, { calls: [{ callId, state: 'active', role: 'caller', peerUserId: B, media: 'audio' }] });
        list.push(a2);
        await quietAll([a2, b], 100);
        // another user cannot resume it
        const c = await device(srv.wsUrl, uid('intruder'), { device: 'c' });
        list.push(c);
        id = c.post({ type: 'call_resume', callId });
        await c.expectReply(id, T.error('call_resume', 'not_a_party', id));
        id = a2.post({ type: 'call_resume', callId });
        await a2.expectReply(id, T.response('call_resume', { id, callId, state: 'active' }));
        await a2.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        await b.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        assert.equal(await a2.take('call_signal', callId), T.signal({ callId, fromUser: B, fromDevice: 'b-1', seq: 1, kind: 'candidate', data: '[1]' }));
        // the resumed device is the party now
        id = a2.post({ type: 'call_signal', callId, kind: 'offer', data: {} });
        await a2.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await b.expect(T.signal({ callId, fromUser: A, fromDevice: null, seq: 1, kind: 'offer', data: '{}' }));
        // a second resume by a third connection of A while the party is attached: bad_state
        const a3 = await device(srv.wsUrl, A, { calls: [{ callId, state: 'active', role: 'caller', peerUserId: B, media: 'audio' }] });
        list.push(a3);
        id = a3.post({ type: 'call_resume', callId });
        await a3.expectReply(id, T.error('call_resume', 'bad_state', id));
        await quietAll([a2, a3, b, c], GRACE + 200);
    });

    test('the caller lost while it rings: the devices see peerConnected:false; an accept then reaches it when it comes back', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId, A, B } = await ringCall(srv.wsUrl, list, { callerDevice: 'a-phone', calleeDevices: ['b-phone', 'b-web'] });
        const [bp, bw] = bs;
        await a.kill();
        for (const d of bs) await d.expect(T.state({ callId, state: 'ringing', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        let id = bp.post({ type: 'call_accept', callId });
        await bp.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await bp.expect(T.accepted({ callId, byUser: B, byDevice: 'b-phone', polite: true }));
        await bw.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
        id = bp.post({ type: 'call_signal', callId, kind: 'answer', data: { sdp: 'x' } });
        await bp.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        const back = await device(srv.wsUrl, A, {
            device: 'a-phone',
            name: 'Caller',
            calls: [{ callId, state: 'active', role: 'caller', peerUserId: B, media: 'audio' }],
        });
        list.push(back);
        // the accept it missed, then the state, then the signal (one owner: in this order)
        const got = [];
        for (let k = 0; k < 3; k++) got.push((await back.takeWhere(() => true, `message ${k + 1} after the resume`)).text);
        assert.deepEqual(got, [
            T.accepted({ callId, byUser: B, byDevice: 'b-phone', polite: false }),
            T.state({ callId, state: 'active', alerting: 0, peerConnected: true }),
            T.signal({ callId, fromUser: B, fromDevice: 'b-phone', seq: 1, kind: 'answer', data: '{"sdp":"x"}' }),
        ]);
        await bp.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        await quietAll([back, bp, bw]);
    });

    test('the caller lost while it rings and not back within the grace: peer_gone to the ringing devices', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'] });
        await a.kill();
        for (const d of bs) await d.expect(T.state({ callId, state: 'ringing', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        for (const d of bs) await d.expect(T.ended({ callId, reason: 'peer_gone' }), { timeout: GRACE + 3000 });
        await quietAll(bs);
    });

    test('a new call from the detached party\'s user replaces the old call (replaced; incoming_call with replaces)', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId: old, A, B } = await activeCall(srv.wsUrl, list, { callerDevice: 'a-old', calleeDevices: ['b-1'] });
        await a.kill();
        await b.expect(T.state({ callId: old, state: 'active', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        const a2 = await device(srv.wsUrl, A, { device: 'a-new', name: 'Caller', calls: [{ callId: old, state: 'active', role: 'caller', peerUserId: B, media: 'audio' }] });
        list.push(a2);
        const r = await a2.call({ to: B, media: 'audio', sponsorUserName: 'Caller' });
        const callId = r.msg.data?.callId;
        assert.notEqual(callId, old);
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 1, legacy: 0 }));
        await b.expect(T.ended({ callId: old, reason: 'replaced' }));
        await b.expect(T.incoming({ callId, from: A, name: 'Caller', media: 'audio', expiresIn: RING, replaces: old }));
        const id = b.post({ type: 'call_accept', callId });
        await b.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a2.expect(T.accepted({ callId, byUser: B, byDevice: 'b-1', polite: false }));
        await b.expect(T.accepted({ callId, byUser: B, byDevice: 'b-1', polite: true }));
        await quietAll([a2, b], GRACE + 200);
    });

    test('a create_connect with the deviceId of a party takes the party over before the old connection is seen to die', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId, A, B } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-phone'] });
        // the phone changed networks: a new connection with the same deviceId while the old one is still open
        const fresh = await device(srv.wsUrl, B, { device: 'b-phone', calls: [{ callId, state: 'active', role: 'callee', peerUserId: A, media: 'audio' }] });
        list.push(fresh);
        await fresh.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: true }));
        // the caller learns the party is (still) there: its last call_state says peerConnected true
        const states = [];
        for (;;) {
            const m = JSON.parse(await a.take('call_state', callId));
            states.push(m);
            assert.equal(JSON.stringify(m), T.state({ callId, state: 'active', alerting: 0, peerConnected: m.data.peerConnected }));
            if (m.data.peerConnected) break;
            assert.ok(states.length < 3, `call_states to the caller: ${JSON.stringify(states)}`);
        }
        // signals from now on go to the new connection, not the old one
        let id = a.post({ type: 'call_signal', callId, kind: 'offer', data: { to: 'new' } });
        await a.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await fresh.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: 1, kind: 'offer', data: '{"to":"new"}' }));
        id = fresh.post({ type: 'call_signal', callId, kind: 'answer', data: 1 });
        await fresh.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await a.expect(T.signal({ callId, fromUser: B, fromDevice: 'b-phone', seq: 1, kind: 'answer', data: '1' }));
        // the old connection gets nothing more, and its clean close no longer hangs up the call
        await b.close(1000);
        assert.deepEqual(b.left(), [], 'the old connection got nothing after the takeover');
        await quietAll([a, fresh], 300);
        id = fresh.post({ type: 'call_hangup', callId });
        await fresh.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await a.expect(T.ended({ callId, reason: 'hangup' }));
        await quietAll([a, fresh]);
    });

    test('a new create_connect on a party\'s connection (another user) is a clean close for its calls: hangup', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        const other = uid('moved');
        assert.equal(await a.request({ type: 'create_connect', id: 'move', sponsorUserId: other, level: 2 }), T.registered({ id: 'move', user: other, device: null, calls: [] }));
        await b.expect(T.ended({ callId, reason: 'hangup' }), { timeout: GRACE });
        await quietAll([a, b], GRACE + 200);
    });

    test('a lost hangup can be sent again: while the party is detached, a hangup from another connection of its user ends the call', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId, A, B } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        await a.kill();
        await b.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        const restarted = await device(srv.wsUrl, A, { device: 'a-reinstalled', calls: [{ callId, state: 'active', role: 'caller', peerUserId: B, media: 'audio' }] });
        list.push(restarted);
        const id = restarted.post({ type: 'call_hangup', callId, reason: 'app_restart' });
        await restarted.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await b.expect(T.ended({ callId, reason: 'hangup', detail: 'app_restart' }));
        await quietAll([restarted, b], GRACE + 200);
    });

    test('kill -9 of a party\'s process: detached (peerConnected:false), then peer_gone after the grace', async (t) => {
        const list = clientsOf(t);
        const [A, B] = [uid('killed'), uid('survivor')];
        const b = await device(srv.wsUrl, B, { device: 'b-1' });
        list.push(b);
        // a separate node process: registers as A (deviceId kid), calls B, reports, then waits to be killed
        const script = `
            const WebSocket = require('ws');
            const ws = new WebSocket(${JSON.stringify(srv.wsUrl)}, { perMessageDeflate: false });
            ws.on('open', () => ws.send(JSON.stringify({ type: 'create_connect', id: 'reg', sponsorUserId: ${JSON.stringify(A)}, level: 2, deviceId: 'kid' })));
            ws.on('message', (d) => {
                const m = JSON.parse(d.toString());
                if (m.id === 'reg') ws.send(JSON.stringify({ type: 'call', id: 'c', receiverUserId: ${JSON.stringify(B)}, media: 'video' }));
                process.stdout.write(d.toString() + '\\n');
            });
            setInterval(() => {}, 1000);
        `;
        const child = spawnChild(process.execPath, ['-e', script], { cwd: join(REPO_ROOT, 'tests') });
        t.after(() => child.proc.kill('SIGKILL'));
        const inc = JSON.parse(await b.take('incoming_call', undefined, { timeout: 10000 * SLOW }));
        const callId = inc.data.callId;
        assert.equal(JSON.stringify(inc), T.incoming({ callId, from: A, name: '', media: 'video', expiresIn: RING }));
        const id = b.post({ type: 'call_accept', callId });
        await b.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await b.expect(T.accepted({ callId, byUser: B, byDevice: 'b-1', polite: true }));
        // the child saw its call_response and the accept
        const want = T.accepted({ callId, byUser: B, byDevice: 'b-1', polite: false });
        await waitUntil(() => child.stdout().includes(want), { timeout: 5000 * SLOW, what: "the child's call_accepted" }).catch((err) => {
            throw new Error(`${err.message}\n--- child stdout\n${child.stdout()}\n--- child stderr\n${child.stderr()}`);
        });
        assert.ok(child.stdout().includes(T.callResponse({ id: 'c', callId, state: 'ringing', level2: 1, legacy: 0 })), child.stdout());
        const killedAt = Date.now();
        child.proc.kill('SIGKILL');
        await child.exited;
        await b.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 2000 * SLOW });
        await b.expect(T.ended({ callId, reason: 'peer_gone' }), { timeout: GRACE + 3000 });
        const took = Date.now() - killedAt;
        assert.ok(took >= GRACE - 50, `peer_gone ${took} ms after the kill (grace ${GRACE})`);
        await quietAll([b]);
    });
});

describe('reconnect-grace 0 and the ping timeout', { timeout: 60000 * SLOW }, () => {
    let srv;
    before(async () => {
        srv = await callServer([`signaling.call.ring-timeout: ${RING}`, 'signaling.call.reconnect-grace: 0']);
    });
    after(() => stopClean(srv));

    test('reconnect-grace 0: an abrupt loss ends the call at once with peer_gone', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        await a.kill();
        await b.expect(T.ended({ callId, reason: 'peer_gone' }), { timeout: 1000 * SLOW });
        await quietAll([b]);
    });
});

describe('a party that stops answering pings is lost abnormally, not hung up', { timeout: 60000 * SLOW }, () => {
    const PING = 300 * SLOW;
    let srv;
    before(async () => {
        srv = await callServer([
                        `signaling.ping-interval: ${PING}`,
                        `signaling.ping-timeout: ${PING}`,
                        `signaling.call.ring-timeout: ${RING}`,
                        `signaling.call.reconnect-grace: ${GRACE * 2}`,
                    ]);
    });
    after(() => stopClean(srv));

    test('no pong: dropped without a close frame -> call_state peerConnected:false, then peer_gone', async (t) => {
        const list = clientsOf(t);
        const [A, B] = [uid('deaf'), uid('listener')];
        const a = await device(srv.wsUrl, A, { device: 'deaf', wsOptions: { autoPong: false } });
        const b = await device(srv.wsUrl, B, { device: 'b' });
        list.push(a, b);
        const r = await a.call({ to: B, media: 'audio' });
        const callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 1, legacy: 0 }));
        await b.take('incoming_call', callId);
        const id = b.post({ type: 'call_accept', callId });
        await b.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await b.expect(T.accepted({ callId, byUser: B, byDevice: 'b', polite: true }));
        // `a` never answers a ping: the server drops it (no close frame) within ping-interval + ping-timeout
        await b.expect(T.state({ callId, state: 'active', alerting: 0, peerConnected: false }), { timeout: 4 * PING + 2000 * SLOW });
        await b.expect(T.ended({ callId, reason: 'peer_gone' }), { timeout: GRACE * 2 + 3000 });
        const closed = await a.closed;
        assert.equal(closed.code, 1006, 'dropped without a close frame');
        // b answers pings (ws does it by itself): it is still there
        assert.ok(b.isOpen());
    });
});
