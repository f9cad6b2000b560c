// Level 2 ("calls", /work/shared/design/calls.md) against the real server with real `ws` clients,
// num-threads 4 (the kernel spreads the connections over the threads, so a call's devices are on
// several threads): opting in, the errors of connections that did not, ringing on several devices,
// call_ringing, accept (answered elsewhere), reject, cancel, ring timeout, offline, busy and
// when-busy ring, the per-user limit, client-chosen callIds, level-1 callees, signals with their
// limits, max-duration. Every server message is compared byte for byte with what
// handler/core/sig_callmsg.c writes (tests/lib/callclient.mjs builds the expected texts).
//
// Messages from different sources may interleave on one connection when the parties are on
// different threads, so the tests match replies by id and take messages by type and callId; the
// order is asserted where the contract fixes it (one owner to one device: FIFO).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { activeCall, CallClient, callServer, clientsOf, device, quietAll, ringCall, SLOW, stopClean, T, uid } from '../lib/callclient.mjs';

const RING = 3000 * SLOW;
const ALL_TYPES = ['call', 'call_ringing', 'call_accept', 'call_reject', 'call_hangup', 'call_signal', 'call_resume'];

/** A message of `type` that decodes (every field any type needs). */
const anyCallMessage = (type, extra = {}) => ({
    type,
    callId: 'some-call',
    receiverUserId: 'someone-else',
    media: 'audio',
    kind: 'offer',
    data: { sdp: 'v=0' },
    ...extra,
});

describe('level 2 on num-threads 4', { timeout: 120000 * SLOW }, () => {
    let srv;
    before(async () => {
        srv = await callServer([`signaling.call.ring-timeout: ${RING}`, 'signaling.call.reconnect-grace: 1000']);
    });
    after(() => stopClean(srv));

    test('create_connect with "level":2: the exact response, with and without deviceId; level absent, null or 1 is level 1', async (t) => {
        const list = clientsOf(t);
        const u = uid('reg');
        const c = await CallClient.open(srv.wsUrl, { label: 'phone' });
        list.push(c);
        const msg = { type: 'create_connect', id: 1, sponsorUserId: u, sponsorUserName: 'A', level: 2, deviceId: 'phone-1' };
        assert.equal(await c.request(msg), T.registered({ id: 1, user: u, device: 'phone-1', calls: [] }));

        const n = await CallClient.open(srv.wsUrl, { label: 'no deviceId' });
        list.push(n);
        assert.equal(
            await n.request({ type: 'create_connect', id: 'x', sponsorUserId: u, level: 2 }),
            T.registered({ id: 'x', user: u, device: null, calls: [] }),
        );
        // the longest deviceId and every character class
        const long = `${'a'.repeat(60)}._~-`;
        const l = await CallClient.open(srv.wsUrl, { label: 'long deviceId' });
        list.push(l);
        assert.equal(
            await l.request({ type: 'create_connect', id: 2, sponsorUserId: u, level: 2, deviceId: long }),
            T.registered({ id: 2, user: u, device: long, calls: [] }),
        );
        // an integer user id is its decimal text, as in level 1
        const num = await CallClient.open(srv.wsUrl, { label: 'numeric' });
        list.push(num);
        const numId = 900000 + (process.pid % 10000);
        assert.equal(
            await num.request({ type: 'create_connect', id: 3, sponsorUserId: numId, level: 2 }),
            T.registered({ id: 3, user: String(numId), device: null, calls: [] }),
        );

        // a number as deviceId counts as its text (docs/protocol.md)
        const nd = await CallClient.open(srv.wsUrl, { label: 'numeric deviceId' });
        list.push(nd);
        assert.equal(
            await nd.request({ type: 'create_connect', id: 4, sponsorUserId: u, level: 2, deviceId: 42 }),
            T.registered({ id: 4, user: u, device: '42', calls: [] }),
        );
        // "level" absent, null or 1: level 1's bytes
        for (const level of [undefined, null, 1]) {
            const c1 = await CallClient.open(srv.wsUrl, { label: `level ${level}` });
            list.push(c1);
            assert.equal(
                await c1.request({ type: 'create_connect', id: 5, sponsorUserId: u, level, deviceId: 'ignored-1' }),
                T.level1Registered(5, u),
                `level ${level}`,
            );
        }
    });

    /** The refusal of a create_connect with a bad level-2 field (the lead's brief: create_connect_response, ok:false, bad_field). */
    function assertBadField(text, id, what) {
        const reply = JSON.parse(text);
        assert.deepEqual(
            [reply.type, reply.ok, reply.code, reply.id],
            ['error', false, 'bad_field', id], // a field of the wrong kind is a decoding error, as in level 1
            `${what}: ${text}`,
        );
        assert.deepEqual(Object.keys(reply), ['type', 'ok', 'msg', 'code', 'id'], `${what}: ${text}`);
        assert.ok(typeof reply.msg === 'string' && reply.msg.length > 0, 'a text for people');
    }

    test('create_connect with a bad deviceId or level is refused with bad_field and registers nothing', async (t) => {
        const list = clientsOf(t);
        const u = uid('badreg');
        const cases = [
            ...['has space', 'a'.repeat(65), '', 'é', 'a/b', 'a"b', true, {}].map((deviceId) => ({ level: 2, deviceId })),
            ...[3, 0, '2', true, 2.5, -1].map((level) => ({ level })),
        ];
        for (const extra of cases) {
            const what = JSON.stringify(extra);
            const b = await CallClient.open(srv.wsUrl, { label: what });
            list.push(b);
            assertBadField(await b.request({ type: 'create_connect', id: 7, sponsorUserId: u, ...extra }), 7, what);
            // nothing registered: a call is not_registered
            const id = b.post({ type: 'call', receiverUserId: 'anyone', media: 'audio' });
            assert.equal(await b.reply(id), T.error('call', 'not_registered', id), `${what}: then a call`);
        }
    });

    test('level 1 is unchanged on a path with level 2 on: create_connect and dialing byte for byte', async (t) => {
        const list = clientsOf(t);
        const [u1, u2, u3] = [uid('l1a'), uid('l1b'), uid('l2c')];
        const a = await CallClient.open(srv.wsUrl, { label: 'level 1 a' });
        list.push(a);
        assert.equal(
            await a.request({ type: 'create_connect', sponsorUserId: u1, sponsorUserName: '张三', id: 1 }),
            `{"type":"create_connect_response","ok":true,"msg":"","id":1,"data":{"sponsorUserId":"${u1}"}}`,
        );
        const b = await device(srv.wsUrl, u2, { level: 1 });
        const c = await device(srv.wsUrl, u3, { level: 2, device: 'c-1', name: 'C' });
        list.push(b, c);
        assert.equal(
            await a.request({ type: 'dialing', receiverUserId: u2, field1: 'hello', id: 7 }),
            `{"type":"dialing_response","ok":true,"msg":"","id":7,"data":{"receiverUserId":"${u2}","delivered":1}}`,
        );
        assert.equal(
            await b.take('called'),
            `{"type":"called","ok":true,"msg":"","data":{"sponsorUserId":"${u1}","sponsorUserName":"张三","field1":"hello","field2":"","field3":""}}`,
        );
        // a level-2 device dials and is dialed the level-1 way: the same bytes (no callId)
        assert.equal(
            await c.request({ type: 'dialing', receiverUserId: u1, field1: 'x', id: 8 }),
            `{"type":"dialing_response","ok":true,"msg":"","id":8,"data":{"receiverUserId":"${u1}","delivered":1}}`,
        );
        assert.equal(
            await a.take('called'),
            `{"type":"called","ok":true,"msg":"","data":{"sponsorUserId":"${u3}","sponsorUserName":"C","field1":"x","field2":"","field3":""}}`,
        );
        assert.equal(
            await a.request({ type: 'dialing', receiverUserId: u3, field2: 'y', id: 9 }),
            `{"type":"dialing_response","ok":true,"msg":"","id":9,"data":{"receiverUserId":"${u3}","delivered":1}}`,
        );
        assert.equal(
            await c.take('called'),
            `{"type":"called","ok":true,"msg":"","data":{"sponsorUserId":"${u1}","sponsorUserName":"张三","field1":"","field2":"y","field3":""}}`,
        );
        await quietAll([a, b, c]);
    });

    test('call messages before create_connect get not_registered, from a level-1 connection not_level2', async (t) => {
        const list = clientsOf(t);
        const fresh = await CallClient.open(srv.wsUrl, { label: 'unregistered' });
        const l1 = await device(srv.wsUrl, uid('legacy'), { level: 1 });
        const P = uid('peer');
        const peer = await device(srv.wsUrl, P, { device: 'p' });
        list.push(fresh, l1, peer);
        for (const type of ALL_TYPES) {
            const extra = { receiverUserId: P };
            let id = fresh.post(anyCallMessage(type, extra));
            assert.equal(await fresh.reply(id), T.error(type, 'not_registered', id), `${type} before create_connect`);
            id = l1.post(anyCallMessage(type, extra));
            assert.equal(await l1.reply(id), T.error(type, 'not_level2', id), `${type} from level 1`);
        }
        // no ring reached the peer, and nothing else came
        await quietAll([fresh, l1, peer]);
    });

    test('two devices ring; call_ringing -> alerting; first accept wins; the listing; hangup and its repeats', async (t) => {
        const list = clientsOf(t);
        const [A, B] = [uid('ann'), uid('bob')];
        const a = await device(srv.wsUrl, A, { device: 'a-1', name: 'Ann' });
        const bp = await device(srv.wsUrl, B, { device: 'b-phone' });
        const bw = await device(srv.wsUrl, B, { device: 'b-web' });
        list.push(a, bp, bw);

        const r = await a.call({ to: B, media: 'video', sponsorUserName: 'Ann' });
        const callId = r.msg.data?.callId;
        assert.match(String(callId), /^[0-9A-Za-z._~-]{1,64}$/, `a server-chosen callId: ${r.text}`);
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 2, legacy: 0 }));
        for (const b of [bp, bw]) await b.expect(T.incoming({ callId, from: A, name: 'Ann', media: 'video', expiresIn: RING }));

        let id = bp.post({ type: 'call_ringing', callId });
        await bp.expectReply(id, T.response('call_ringing', { id, callId, state: 'ringing' }));
        await a.expect(T.state({ callId, state: 'ringing', alerting: 1, peerConnected: true }));
        id = bw.post({ type: 'call_ringing', callId });
        await bw.expectReply(id, T.response('call_ringing', { id, callId, state: 'ringing' }));
        await a.expect(T.state({ callId, state: 'ringing', alerting: 2, peerConnected: true }));
        // a repeated call_ringing changes nothing
        id = bw.post({ type: 'call_ringing', callId });
        await bw.expectReply(id, T.response('call_ringing', { id, callId, state: 'ringing' }));

        // a new device of the callee registering while it rings: listed, and rung
        const bt = await device(srv.wsUrl, B, {
            device: 'b-tab',
            calls: [{ callId, state: 'ringing', role: 'callee', peerUserId: A, media: 'video' }],
        });
        list.push(bt);
        const inc = JSON.parse(await bt.take('incoming_call', callId));
        assert.ok(inc.data.expiresIn > 0 && inc.data.expiresIn <= RING, `expiresIn left: ${inc.data.expiresIn}`);
        assert.equal(JSON.stringify(inc), T.incoming({ callId, from: A, name: 'Ann', media: 'video', expiresIn: inc.data.expiresIn }));

        id = bp.post({ type: 'call_accept', callId });
        await bp.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-phone', polite: false }));
        await bp.expect(T.accepted({ callId, byUser: B, byDevice: 'b-phone', polite: true }));
        await bw.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
        await bt.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
        // a late accept, and a late reject, get the error answered_elsewhere (the call goes on)
        id = bw.post({ type: 'call_accept', callId });
        await bw.expectReply(id, T.error('call_accept', 'answered_elsewhere', id));
        id = bt.post({ type: 'call_reject', callId });
        await bt.expectReply(id, T.error('call_reject', 'answered_elsewhere', id));
        // the winner's repeated accept is fine
        id = bp.post({ type: 'call_accept', callId });
        await bp.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));

        // new devices of either user see the live call in their create_connect_response, and nothing else
        const a2 = await device(srv.wsUrl, A, { calls: [{ callId, state: 'active', role: 'caller', peerUserId: B, media: 'video' }] });
        const b4 = await device(srv.wsUrl, B, {
            device: 'b-4',
            calls: [{ callId, state: 'active', role: 'callee', peerUserId: A, media: 'video' }],
        });
        list.push(a2, b4);

        id = a.post({ type: 'call_hangup', callId, reason: 'ice_failed' });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await bp.expect(T.ended({ callId, reason: 'hangup', detail: 'ice_failed' }));
        // idempotent: a repeat is answered with the same call_ended, marked repeat
        id = a.post({ type: 'call_hangup', callId });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await a.expect(T.ended({ callId, reason: 'hangup', detail: 'ice_failed', repeat: true }));
        id = bp.post({ type: 'call_hangup', callId });
        await bp.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await bp.expect(T.ended({ callId, reason: 'hangup', detail: 'ice_failed', repeat: true }));
        // other messages about the ended call: bad_state, then the same call_ended
        id = bp.post({ type: 'call_signal', callId, kind: 'offer', data: {} });
        await bp.expectReply(id, T.error('call_signal', 'bad_state', id));
        await bp.expect(T.ended({ callId, reason: 'hangup', detail: 'ice_failed', repeat: true }));
        // the ended call is no longer listed
        const a3 = await device(srv.wsUrl, A, { calls: [] });
        list.push(a3);
        await quietAll([a, bp, bw, bt, a2, b4, a3]);
    });

    test('hangup of an active call by the callee, without a reason: hangup, no detail', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        const id = b.post({ type: 'call_hangup', callId });
        await b.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await a.expect(T.ended({ callId, reason: 'hangup' }));
        await quietAll([a, b]);
    });

    test('reject: the caller gets rejected, the other device rejected_elsewhere; reason busy -> busy', async (t) => {
        const list = clientsOf(t);
        for (const [reason, toCaller] of [['declined', 'rejected'], [undefined, 'rejected'], ['busy', 'busy']]) {
            const { a, bs, callId } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'], ringTimeout: RING });
            const [bp, bw] = bs;
            const msg = { type: 'call_reject', callId };
            if (reason) msg.reason = reason;
            let id = bp.post(msg);
            await bp.expectReply(id, T.response('call_reject', { id, callId, state: 'ended' }));
            await a.expect(T.ended({ callId, reason: toCaller }));
            await bw.expect(T.ended({ callId, reason: 'rejected_elsewhere' }));
            // a repeat by the rejecting device: what its counterpart was told, marked repeat
            id = bp.post(msg);
            await bp.expectReply(id, T.response('call_reject', { id, callId, state: 'ended' }));
            await bp.expect(T.ended({ callId, reason: toCaller, repeat: true }));
            // the caller's hangup after it: the same call_ended again
            id = a.post({ type: 'call_hangup', callId });
            await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
            await a.expect(T.ended({ callId, reason: toCaller, repeat: true }));
            await quietAll(bs.concat(a));
        }
    });

    test('cancel: the caller hangs up while it rings -> every callee device gets cancelled; a level-1 device only its called', async (t) => {
        const list = clientsOf(t);
        const [A, B] = [uid('can-a'), uid('can-b')];
        const a = await device(srv.wsUrl, A, { device: 'a', name: 'Ann' });
        const bp = await device(srv.wsUrl, B, { device: 'b-phone' });
        const bw = await device(srv.wsUrl, B, { device: 'b-web' });
        const legacy = await device(srv.wsUrl, B, { level: 1 });
        list.push(a, bp, bw, legacy);
        const r = await a.call({ to: B, media: 'audio', sponsorUserName: 'Ann' });
        const callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 2, legacy: 1 }));
        for (const b of [bp, bw]) await b.expect(T.incoming({ callId, from: A, name: 'Ann', media: 'audio', expiresIn: RING }));
        assert.equal(await legacy.take('called'), T.called({ from: A, name: 'Ann', field1: callId, field2: 'audio', callId }));
        const id = a.post({ type: 'call_hangup', callId });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        for (const b of [bp, bw]) await b.expect(T.ended({ callId, reason: 'cancelled' }));
        // a ringing device that declines after the cancel: the same call_ended again
        const late = bw.post({ type: 'call_reject', callId });
        await bw.expectReply(late, T.response('call_reject', { id: late, callId, state: 'ended' }));
        await bw.expect(T.ended({ callId, reason: 'cancelled', repeat: true }));
        await quietAll([a, bp, bw, legacy]);
    });

    test('offline: a call to a user with no connection ends at once (response ended, call_ended offline)', async (t) => {
        const list = clientsOf(t);
        const A = uid('off-a');
        const a = await device(srv.wsUrl, A, { device: 'a' });
        list.push(a);
        const r = await a.call({ to: uid('nobody'), media: 'video' });
        const callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ended', level2: 0, legacy: 0 }));
        await a.expect(T.ended({ callId, reason: 'offline' }));
        const chosen = `off-${uid('c')}`;
        const r2 = await a.call({ to: uid('nobody'), media: 'audio', callId: chosen });
        assert.equal(r2.text, T.callResponse({ id: r2.id, callId: chosen, state: 'ended', level2: 0, legacy: 0 }));
        await a.expect(T.ended({ callId: chosen, reason: 'offline' }));
        // nothing is kept: the caller has no live call
        const again = await device(srv.wsUrl, A, { calls: [] });
        list.push(again);
        await quietAll([a, again]);
    });

    test('busy: a call to a user in an active call ends at once with busy; after the hangup it rings', async (t) => {
        const list = clientsOf(t);
        const { a: c, b, B, callId: first } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'] });
        const bw = list.find((x) => x.label === `${B}/b-web`);
        const A = uid('busy-a');
        const a = await device(srv.wsUrl, A, { device: 'a' });
        list.push(a);
        const r = await a.call({ to: B, media: 'audio' });
        const callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ended', level2: 0, legacy: 0 }));
        await a.expect(T.ended({ callId, reason: 'busy' }));
        await quietAll([a, b, bw, c]);
        // the busy call left nothing: B's call goes on, and once it ends B can be called again
        const id = c.post({ type: 'call_hangup', callId: first });
        await c.expectReply(id, T.response('call_hangup', { id, callId: first, state: 'ended' }));
        await b.expect(T.ended({ callId: first, reason: 'hangup' }));
        const r2 = await a.call({ to: B, media: 'audio' });
        const second = r2.msg.data?.callId;
        assert.equal(r2.text, T.callResponse({ id: r2.id, callId: second, state: 'ringing', level2: 2, legacy: 0 }));
        for (const d of [b, bw]) await d.expect(T.incoming({ callId: second, from: A, name: '', media: 'audio', expiresIn: RING }));
        await quietAll([a, b, bw, c]);
    });

    test('refused calls: self_call, bad_request (media, callId, reasons, kind), missing receiver; nothing rings', async (t) => {
        const list = clientsOf(t);
        const [A, B] = [uid('err-a'), uid('err-b')];
        const a = await device(srv.wsUrl, A, { device: 'a' });
        const b = await device(srv.wsUrl, B, { device: 'b' });
        list.push(a, b);
        let r = await a.call({ to: A, media: 'audio' });
        assert.equal(r.text, T.error('call', 'self_call', r.id));
        for (const media of ['fax', 'VIDEO', '']) {
            r = await a.call({ to: B, media });
            assert.equal(r.text, T.error('call', 'bad_request', r.id), `media ${JSON.stringify(media)}`);
        }
        const noMedia = a.post({ type: 'call', receiverUserId: B });
        assert.equal(await a.reply(noMedia), T.error('call', 'bad_request', noMedia), 'no media');
        for (const callId of ['has space', 'x'.repeat(65), 'é', 'a/b']) {
            r = await a.call({ to: B, media: 'audio', callId });
            assert.equal(r.text, T.error('call', 'bad_request', r.id), `callId ${JSON.stringify(callId)}`);
        }
        // required fields missing or of the wrong kind: bad_request (docs/protocol.md "Call errors"), always answered
        const malformed = [
            { type: 'call', media: 'audio' },
            { type: 'call', receiverUserId: '', media: 'audio' },
            { type: 'call', receiverUserId: 'x'.repeat(257), media: 'audio' },
            { type: 'call', receiverUserId: B, media: 1 },
            { type: 'call', receiverUserId: B, media: 'audio', callId: 12 },
            { type: 'call_accept' },
            { type: 'call_accept', callId: 7 },
            { type: 'call_hangup', callId: null },
            { type: 'call_signal', callId: 'k', kind: 'offer' },
            { type: 'call_signal', callId: 'k', data: null },
            { type: 'call_signal', data: {} },
            { type: 'call_resume', callId: ['k'] },
        ];
        for (const msg of malformed) {
            const id = a.post(msg);
            assert.equal(await a.reply(id), T.error(msg.type, 'bad_request', id), JSON.stringify(msg));
        }
        // not JSON / not an object: level 1's error, whatever the type
        a.send('{"type":"call","receiverUserId":"x"');
        assert.equal(await a.take('error'), T.level1Error('bad_json'));
        await quietAll([a, b]);

        // on a ringing call: a reject reason that is not declined/busy, a hangup reason over 64 bytes, a kind over 64 bytes
        const ring = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        const [rb] = ring.bs;
        let id = rb.post({ type: 'call_reject', callId: ring.callId, reason: 'maybe' });
        await rb.expectReply(id, T.error('call_reject', 'bad_request', id));
        id = ring.a.post({ type: 'call_hangup', callId: ring.callId, reason: 'r'.repeat(65) });
        await ring.a.expectReply(id, T.error('call_hangup', 'bad_request', id));
        id = ring.a.post({ type: 'call_signal', callId: ring.callId, kind: 'k'.repeat(65), data: {} });
        await ring.a.expectReply(id, T.error('call_signal', 'bad_request', id));
        for (const callId of ['bad id', '']) {
            id = rb.post({ type: 'call_accept', callId });
            await rb.expectReply(id, T.error('call_accept', 'bad_request', id), `callId ${JSON.stringify(callId)}`);
        }
        // none of them changed the call: it still rings and can be accepted
        id = rb.post({ type: 'call_accept', callId: ring.callId });
        await rb.expectReply(id, T.response('call_accept', { id, callId: ring.callId, state: 'active' }));
        await ring.a.expect(T.accepted({ callId: ring.callId, byUser: ring.B, byDevice: 'b-1', polite: false }));
        await rb.expect(T.accepted({ callId: ring.callId, byUser: ring.B, byDevice: 'b-1', polite: true }));
        await quietAll([ring.a, rb]);
    });

    test('no_such_call, not_a_party, bad_state (each role at each state); an error never changes the call', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId, A, B } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'] });
        const [bp, bw] = bs;
        const c = await device(srv.wsUrl, uid('stranger'), { device: 'c' });
        list.push(c);
        const a2 = await device(srv.wsUrl, A, { device: 'a-2', calls: [{ callId, state: 'ringing', role: 'caller', peerUserId: B, media: 'audio' }] });
        list.push(a2);
        const err = async (client, msg, code) => {
            const id = client.post(msg);
            await client.expectReply(id, T.error(msg.type, code, id), `${client.label}: ${msg.type} -> ${code}`);
        };
        await err(a, { type: 'call_accept', callId: `no-such-${uid('x')}` }, 'no_such_call');
        await err(bp, { type: 'call_hangup', callId: 'never-was-a-call' }, 'no_such_call');
        for (const type of ['call_accept', 'call_reject', 'call_ringing', 'call_hangup', 'call_resume'])
            await err(c, { type, callId }, 'not_a_party');
        await err(c, { type: 'call_signal', callId, kind: 'offer', data: {} }, 'not_a_party');
        // ringing: the caller cannot ring/accept/reject its own call; the callee cannot signal yet
        for (const type of ['call_accept', 'call_reject', 'call_ringing']) await err(a, { type, callId }, 'bad_state');
        await err(bp, { type: 'call_signal', callId, kind: 'answer', data: {} }, 'bad_state');
        // another device of the caller's user is not the calling device
        await err(a2, { type: 'call_signal', callId, kind: 'offer', data: {} }, 'not_a_party');
        await err(a2, { type: 'call_hangup', callId }, 'not_a_party');

        let id = bw.post({ type: 'call_accept', callId });
        await bw.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-web', polite: false }));
        await bw.expect(T.accepted({ callId, byUser: B, byDevice: 'b-web', polite: true }));
        await bp.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
        // active: the caller cannot accept/reject/ring; the winner cannot reject; the others are answered_elsewhere / not_a_party
        for (const type of ['call_accept', 'call_reject', 'call_ringing']) await err(a, { type, callId }, 'bad_state');
        await err(bw, { type: 'call_reject', callId }, 'bad_state');
        await err(bp, { type: 'call_accept', callId }, 'answered_elsewhere');
        await err(bp, { type: 'call_signal', callId, kind: 'x', data: 1 }, 'not_a_party');
        await err(bp, { type: 'call_hangup', callId }, 'not_a_party');
        await err(a2, { type: 'call_hangup', callId }, 'not_a_party');
        await err(c, { type: 'call_hangup', callId }, 'not_a_party');
        // the call is untouched: a signal still goes through
        id = a.post({ type: 'call_signal', callId, kind: 'offer', data: { sdp: 'v=0' } });
        await a.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await bw.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: 1, kind: 'offer', data: '{"sdp":"v=0"}' }));
        id = bw.post({ type: 'call_hangup', callId });
        await bw.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await a.expect(T.ended({ callId, reason: 'hangup' }));
        await quietAll([a, a2, bp, bw, c]);
    });

    test('call_resume from a ringing callee device rings it again (incoming_call); from the caller\'s device: call_state', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId, A } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-1'], name: 'Ann' });
        const [b] = bs;
        let id = b.post({ type: 'call_resume', callId });
        await b.expectReply(id, T.response('call_resume', { id, callId, state: 'ringing' }));
        const inc = JSON.parse(await b.take('incoming_call', callId));
        assert.ok(inc.data.expiresIn > 0 && inc.data.expiresIn <= RING, `expiresIn ${inc.data.expiresIn}`);
        assert.equal(JSON.stringify(inc), T.incoming({ callId, from: A, name: 'Ann', media: 'audio', expiresIn: inc.data.expiresIn }));
        id = a.post({ type: 'call_resume', callId });
        await a.expectReply(id, T.response('call_resume', { id, callId, state: 'ringing' }));
        await a.expect(T.state({ callId, state: 'ringing', alerting: 0, peerConnected: true }));
        await quietAll([a, b]);
    });

    test('max-per-user 4: the fifth live call of a user gets too_many_calls; after one ends it goes', async (t) => {
        const list = clientsOf(t);
        const A = uid('many');
        const a = await device(srv.wsUrl, A, { device: 'a' });
        list.push(a);
        const callees = [];
        for (let i = 0; i < 5; i++) {
            const u = uid(`many-callee${i}`);
            const d = await device(srv.wsUrl, u, { device: 'd' });
            list.push(d);
            callees.push({ u, d });
        }
        const ids = [];
        for (let i = 0; i < 4; i++) {
            const r = await a.call({ to: callees[i].u, media: 'audio' });
            ids.push(r.msg.data?.callId);
            assert.equal(r.text, T.callResponse({ id: r.id, callId: ids[i], state: 'ringing', level2: 1, legacy: 0 }));
            await callees[i].d.expect(T.incoming({ callId: ids[i], from: A, name: '', media: 'audio', expiresIn: RING }));
        }
        let r = await a.call({ to: callees[4].u, media: 'audio' });
        assert.equal(r.text, T.error('call', 'too_many_calls', r.id));
        const id = a.post({ type: 'call_hangup', callId: ids[0] });
        await a.expectReply(id, T.response('call_hangup', { id, callId: ids[0], state: 'ended' }));
        await callees[0].d.expect(T.ended({ callId: ids[0], reason: 'cancelled' }));
        r = await a.call({ to: callees[4].u, media: 'audio' });
        const fifth = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId: fifth, state: 'ringing', level2: 1, legacy: 0 }));
        await callees[4].d.expect(T.incoming({ callId: fifth, from: A, name: '', media: 'audio', expiresIn: RING }));
        await quietAll(list);
    });

    test('client-chosen callId: a retry never rings twice, another caller gets call_id_taken, ids are never reused', async (t) => {
        const list = clientsOf(t);
        const callId = `cid-${uid('k')}`;
        const { a, bs, A, B } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-1', 'b-2'], callId, ringTimeout: RING, media: 'video' });
        // the retry: the current state, the same delivered counts, no new incoming_call
        let r = await a.call({ to: B, media: 'video', callId });
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 2, legacy: 0 }));
        // also from another device of the caller's user (an app that restarted), even with more callee devices now
        const a2 = await device(srv.wsUrl, A, { device: 'a-2', calls: [{ callId, state: 'ringing', role: 'caller', peerUserId: B, media: 'video' }] });
        list.push(a2);
        r = await a2.call({ to: B, media: 'video', callId });
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 2, legacy: 0 }), 'a retry from another device of the caller');
        // other pairs (on other owners, with 4 threads) cannot take the id
        const takers = [];
        for (let i = 0; i < 6; i++) {
            const [C, D] = [uid('taker'), uid('taken')];
            const c = await device(srv.wsUrl, C, { device: 'c' });
            const d = await device(srv.wsUrl, D, { device: 'd' });
            list.push(c, d);
            r = await c.call({ to: D, media: 'audio', callId });
            assert.equal(r.text, T.error('call', 'call_id_taken', r.id), `pair ${i}: another pair's call with the id`);
            r = await c.call({ to: B, media: 'audio', callId });
            assert.equal(r.text, T.error('call', 'call_id_taken', r.id), `pair ${i}: another caller to the same callee`);
            takers.push(c, d);
        }
        await quietAll(bs.concat(a), 100);
        // the caller cancels; its retry now is answered as ended, with the same call_ended, and rings nobody
        let id = a.post({ type: 'call_hangup', callId });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        for (const b of bs) await b.expect(T.ended({ callId, reason: 'cancelled' }));
        r = await a.call({ to: B, media: 'video', callId });
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ended', level2: 0, legacy: 0 }));
        await a.expect(T.ended({ callId, reason: 'cancelled', repeat: true }));
        // ...and nobody else can use it
        const [E, F] = [uid('reuse'), uid('reuse-b')];
        const e = await device(srv.wsUrl, E, { device: 'e' });
        const f = await device(srv.wsUrl, F, { device: 'f' });
        list.push(e, f);
        r = await e.call({ to: F, media: 'audio', callId });
        assert.equal(r.text, T.error('call', 'call_id_taken', r.id), 'an ended call id is not reused');
        // the other direction of the same pair is another caller too
        const b0 = bs[0];
        id = b0.post({ type: 'call', receiverUserId: A, media: 'audio', callId });
        await b0.expectReply(id, T.error('call', 'call_id_taken', id));
        await quietAll([a, a2, e, f, ...bs, ...takers]);
    });

    test('a level-1 callee gets called with callId (field1..3 the call\'s when given); sponsorUserName falls back to create_connect\'s', async (t) => {
        const list = clientsOf(t);
        const [A, B] = [uid('l1call-a'), uid('l1call-b')];
        const a = await device(srv.wsUrl, A, { device: 'a', name: '张三' });
        const legacy = await device(srv.wsUrl, B, { level: 1 });
        const legacy2 = await device(srv.wsUrl, B, { level: 1 });
        list.push(a, legacy, legacy2);
        let r = await a.call({ to: B, media: 'video', sponsorUserName: 'Ann "A"' });
        let callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 0, legacy: 2 }));
        for (const l of [legacy, legacy2]) {
            assert.equal(await l.take('called'), T.called({ from: A, name: 'Ann "A"', field1: callId, field2: 'video', callId }));
        }
        let id = a.post({ type: 'call_hangup', callId });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));

        r = await a.call({ to: B, media: 'audio', field1: 'room 7', field3: 'x' });
        callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 0, legacy: 2 }));
        for (const l of [legacy, legacy2]) {
            assert.equal(await l.take('called'), T.called({ from: A, name: '张三', field1: 'room 7', field2: '', field3: 'x', callId }));
        }
        id = a.post({ type: 'call_hangup', callId });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));

        // mixed: a level-2 device and a level-1 one; the level-2 device's incoming_call has the registered name too
        const b2 = await device(srv.wsUrl, B, { device: 'b2' });
        list.push(b2);
        r = await a.call({ to: B, media: 'audio' });
        callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 1, legacy: 2 }));
        await b2.expect(T.incoming({ callId, from: A, name: '张三', media: 'audio', expiresIn: RING }));
        for (const l of [legacy, legacy2]) assert.equal(await l.take('called'), T.called({ from: A, name: '张三', field1: callId, field2: 'audio', callId }));
        id = b2.post({ type: 'call_accept', callId });
        await b2.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b2', polite: false }));
        await b2.expect(T.accepted({ callId, byUser: B, byDevice: 'b2', polite: true }));
        id = a.post({ type: 'call_hangup', callId });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await b2.expect(T.ended({ callId, reason: 'hangup' }));
        // the level-1 connections never got a level-2 message
        await quietAll([a, legacy, legacy2, b2]);
    });

    test('signals: early caller signals buffered and flushed to the accepting device in order; seq per direction; data byte for byte', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId, A, B } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'], media: 'video' });
        const [bp, bw] = bs;
        // the sender's JSON text of `data`, relayed as is (blanks, escapes, key order, numbers as written)
        const datas = [
            '{"type":"offer", "sdp" : "v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\n"}',
            '{"candidate":"candidate:1 1 udp 2122260223 192.168.1.2 54400 typ host","sdpMid":"0","sdpMLineIndex":0}',
            '[1, 2.50, {"a": [true, null, "\\u00e9"]}]',
            '"a string"',
            '12.5e3',
        ];
        const kinds = ['offer', 'candidate', 'other', 'x', ''];
        for (const [i, data] of datas.entries()) {
            const id = `early-${i}`;
            a.send(`{"type":"call_signal","id":"${id}","callId":"${callId}","kind":"${kinds[i]}","data":  ${data} }`);
            await a.expectReply(id, T.response('call_signal', { id, callId, state: 'ringing' }));
        }
        // the callee cannot signal while it rings
        let id = bp.post({ type: 'call_signal', callId, kind: 'answer', data: {} });
        await bp.expectReply(id, T.error('call_signal', 'bad_state', id));
        // nothing reached the callee's devices before the accept
        await quietAll([bp, bw], 100);

        id = bw.post({ type: 'call_accept', callId });
        await bw.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-web', polite: false }));
        // to the accepting device: call_accepted, then the buffered signals in order (one owner -> FIFO)
        const accepted = await bw.takeWhere(() => true, 'the first message after the accept reply');
        assert.equal(accepted.text, T.accepted({ callId, byUser: B, byDevice: 'b-web', polite: true }));
        for (const [i, data] of datas.entries()) {
            const next = await bw.takeWhere(() => true, `buffered signal ${i + 1}`);
            assert.equal(next.text, T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: i + 1, kind: kinds[i], data }), `signal ${i + 1}`);
        }
        await bp.expect(T.ended({ callId, reason: 'answered_elsewhere' }));

        // the callee's direction starts at 1; the caller's goes on at 6
        bw.send(`{"type":"call_signal","callId":"${callId}","kind":"answer","data":{"type":"answer","sdp":"v=0\\r\\n"},"id":"ans"}`);
        await bw.expectReply('ans', T.response('call_signal', { id: 'ans', callId, state: 'active' }));
        await a.expect(T.signal({ callId, fromUser: B, fromDevice: 'b-web', seq: 1, kind: 'answer', data: '{"type":"answer","sdp":"v=0\\r\\n"}' }));
        // a burst each way at once: each side gets the other's in order, numbered on
        const N = 20;
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
                T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: datas.length + 1 + i, kind: 'candidate', data: `{"n":${i}}` }),
            );
            assert.equal(
                await a.take('call_signal', callId),
                T.signal({ callId, fromUser: B, fromDevice: 'b-web', seq: 2 + i, kind: 'candidate', data: `{"n":${i}}` }),
            );
        }
        // signals without a kind: kind ""
        id = a.post({ type: 'call_signal', callId, data: { k: 1 } });
        await a.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        await bw.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: datas.length + N + 1, kind: '', data: '{"k":1}' }));
        id = a.post({ type: 'call_hangup', callId });
        await a.expectReply(id, T.response('call_hangup', { id, callId, state: 'ended' }));
        await bw.expect(T.ended({ callId, reason: 'hangup' }));
        await quietAll([a, bp, bw]);
    });
});

describe('level 2: ring timeout, max-duration (short timers)', { timeout: 60000 * SLOW }, () => {
    const SHORT = 400 * SLOW;
    const MAXDUR = 600 * SLOW;
    let srv;
    before(async () => {
        srv = await callServer([`signaling.call.ring-timeout: ${SHORT}`, `signaling.call.max-duration: ${MAXDUR}`]);
    });
    after(() => stopClean(srv));

    test('ring timeout: no_answer to the caller and to every device that rang (also one that registered late)', async (t) => {
        const list = clientsOf(t);
        const started = Date.now();
        const { a, bs, callId, A, B } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'], ringTimeout: SHORT });
        const legacy = await device(srv.wsUrl, B, { level: 1 });
        list.push(legacy);
        const late = await device(srv.wsUrl, B, { device: 'b-late', calls: [{ callId, state: 'ringing', role: 'callee', peerUserId: A, media: 'audio' }] });
        list.push(late);
        const inc = JSON.parse(await late.take('incoming_call', callId));
        assert.ok(inc.data.expiresIn > 0 && inc.data.expiresIn < SHORT, `expiresIn ${inc.data.expiresIn} of ${SHORT}`);
        assert.equal(JSON.stringify(inc), T.incoming({ callId, from: A, name: 'Caller', media: 'audio', expiresIn: inc.data.expiresIn }));
        await a.expect(T.ended({ callId, reason: 'no_answer' }), { timeout: 5000 * SLOW });
        const took = Date.now() - started;
        assert.ok(took >= SHORT - 50, `no_answer after ${took} ms (ring-timeout ${SHORT})`);
        for (const b of [...bs, late]) await b.expect(T.ended({ callId, reason: 'no_answer' }));
        // an accept after the timeout: bad_state and the same call_ended
        const id = bs[0].post({ type: 'call_accept', callId });
        await bs[0].expectReply(id, T.error('call_accept', 'bad_state', id));
        await bs[0].expect(T.ended({ callId, reason: 'no_answer', repeat: true }));
        await quietAll([a, ...bs, late, legacy]);
    });

    test('a level-1-only callee cannot answer: the call rings to its timeout, the level-1 device gets only called', async (t) => {
        const list = clientsOf(t);
        const [A, B] = [uid('l1only-a'), uid('l1only-b')];
        const a = await device(srv.wsUrl, A, { device: 'a' });
        const legacy = await device(srv.wsUrl, B, { level: 1 });
        list.push(a, legacy);
        const r = await a.call({ to: B, media: 'video' });
        const callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 0, legacy: 1 }));
        assert.equal(await legacy.take('called'), T.called({ from: A, field1: callId, field2: 'video', callId }));
        await a.expect(T.ended({ callId, reason: 'no_answer' }), { timeout: 5000 * SLOW });
        await quietAll([a, legacy]);
    });

    test('max-duration: an answered call ends with max_duration on both sides', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        const acceptedAt = Date.now();
        await a.expect(T.ended({ callId, reason: 'max_duration' }), { timeout: 5000 * SLOW });
        await b.expect(T.ended({ callId, reason: 'max_duration' }), { timeout: 5000 * SLOW });
        const took = Date.now() - acceptedAt;
        assert.ok(took >= MAXDUR - 100, `max_duration after ${took} ms (max-duration ${MAXDUR})`);
        await quietAll([a, b]);
    });
});

describe('level 2: when-busy ring, max-per-user 2', { timeout: 60000 * SLOW }, () => {
    let srv;
    before(async () => {
        srv = await callServer([`signaling.call.ring-timeout: ${5000 * SLOW}`, 'signaling.call.when-busy: ring', 'signaling.call.max-per-user: 2']);
    });
    after(() => stopClean(srv));

    test('when-busy ring: a call to a user in an active call rings all its devices (call waiting)', async (t) => {
        const list = clientsOf(t);
        const { a: c, b, B } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-phone', 'b-web'] });
        const bw = list.find((x) => x.label === `${B}/b-web`);
        const A = uid('waiting-a');
        const a = await device(srv.wsUrl, A, { device: 'a' });
        list.push(a);
        const r = await a.call({ to: B, media: 'audio' });
        const callId = r.msg.data?.callId;
        assert.equal(r.text, T.callResponse({ id: r.id, callId, state: 'ringing', level2: 2, legacy: 0 }));
        for (const d of [b, bw]) await d.expect(T.incoming({ callId, from: A, name: '', media: 'audio', expiresIn: 5000 * SLOW }));
        // the pair already in a call cannot start a second one
        const again = await c.call({ to: B, media: 'audio' });
        assert.equal(again.text, T.error('call', 'bad_state', again.id), 'a second call between an active pair');
        // max-per-user 2: B has two live calls now, so a third caller finds it busy; A (2 of 2 after one more) cannot call a third
        const D = uid('third');
        const d = await device(srv.wsUrl, D, { device: 'd' });
        list.push(d);
        const r3 = await d.call({ to: B, media: 'audio' });
        const third = r3.msg.data?.callId;
        assert.equal(r3.text, T.callResponse({ id: r3.id, callId: third, state: 'ended', level2: 0, legacy: 0 }));
        await d.expect(T.ended({ callId: third, reason: 'busy' }));
        const E = uid('fourth');
        const e = await device(srv.wsUrl, E, { device: 'e' });
        list.push(e);
        const r4 = await a.call({ to: E, media: 'audio' });
        const second = r4.msg.data?.callId;
        assert.equal(r4.text, T.callResponse({ id: r4.id, callId: second, state: 'ringing', level2: 1, legacy: 0 }));
        await e.expect(T.incoming({ callId: second, from: A, name: '', media: 'audio', expiresIn: 5000 * SLOW }));
        const r5 = await a.call({ to: D, media: 'audio' });
        assert.equal(r5.text, T.error('call', 'too_many_calls', r5.id));
        // B takes the waiting call on its web device while its phone stays in the first
        const id = bw.post({ type: 'call_accept', callId });
        await bw.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-web', polite: false }));
        await bw.expect(T.accepted({ callId, byUser: B, byDevice: 'b-web', polite: true }));
        await b.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
        await quietAll([a, b, bw, c, d, e]);
    });
});

describe('level 2: signal limits (max-signal-size 100, signal-buffer 4, signal-rate 5 with burst 10)', { timeout: 60000 * SLOW }, () => {
    let srv;
    before(async () => {
        srv = await callServer([
                        'signaling.call.ring-timeout: 10000',
                        'signaling.call.max-signal-size: 100',
                        'signaling.call.signal-buffer: 4',
                        'signaling.call.signal-rate: 5',
                        'signaling.call.signal-burst: 10',
                    ]);
    });
    after(() => stopClean(srv));

    /** `data` JSON text of exactly n bytes: a string. */
    const dataOf = (n) => JSON.stringify('x'.repeat(n - 2));

    test('signal_too_large: data over max-signal-size is refused, exactly the size passes', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId, A } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        let id = 'big';
        a.send(`{"type":"call_signal","id":"${id}","callId":"${callId}","kind":"offer","data":${dataOf(101)}}`);
        await a.expectReply(id, T.error('call_signal', 'signal_too_large', id));
        id = 'fits';
        a.send(`{"type":"call_signal","id":"${id}","callId":"${callId}","kind":"offer","data":${dataOf(100)}}`);
        await a.expectReply(id, T.response('call_signal', { id, callId, state: 'active' }));
        // the refused one took no seq
        await b.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: 1, kind: 'offer', data: dataOf(100) }));
        await quietAll([a, b]);
    });

    test('buffer_full: past signal-buffer early signals are refused; the kept ones are flushed in order at the accept', async (t) => {
        const list = clientsOf(t);
        const { a, bs, callId, A, B } = await ringCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        const [b] = bs;
        for (let i = 0; i < 6; i++) a.send(`{"type":"call_signal","id":"buf${i}","callId":"${callId}","kind":"candidate","data":{"i":${i}}}`);
        for (let i = 0; i < 6; i++) {
            const id = `buf${i}`;
            await a.expectReply(id, i < 4 ? T.response('call_signal', { id, callId, state: 'ringing' }) : T.error('call_signal', 'buffer_full', id));
        }
        const id = b.post({ type: 'call_accept', callId });
        await b.expectReply(id, T.response('call_accept', { id, callId, state: 'active' }));
        await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-1', polite: false }));
        await b.expect(T.accepted({ callId, byUser: B, byDevice: 'b-1', polite: true }));
        for (let i = 0; i < 4; i++) {
            assert.equal(await b.take('call_signal', callId), T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: i + 1, kind: 'candidate', data: `{"i":${i}}` }));
        }
        // after the flush the buffer is free again: the next one goes straight through, numbered on
        const next = a.post({ type: 'call_signal', callId, kind: 'candidate', data: { i: 9 } });
        await a.expectReply(next, T.response('call_signal', { id: next, callId, state: 'active' }));
        await b.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: 5, kind: 'candidate', data: '{"i":9}' }));
        await quietAll([a, b]);
    });

    test('rate_limited: past the burst signals are refused until the bucket refills; the passed ones arrive numbered 1..n', async (t) => {
        const list = clientsOf(t);
        const { a, b, callId, A } = await activeCall(srv.wsUrl, list, { calleeDevices: ['b-1'] });
        const SENT = 16;
        const sentAt = Date.now();
        for (let i = 0; i < SENT; i++) a.send(`{"type":"call_signal","id":"r${i}","callId":"${callId}","kind":"candidate","data":${i}}`);
        const passedAt = [];
        const refusedAt = [];
        for (let i = 0; i < SENT; i++) {
            const id = `r${i}`;
            const text = await a.reply(id);
            if (text === T.response('call_signal', { id, callId, state: 'active' })) passedAt.push(i);
            else {
                assert.equal(text, T.error('call_signal', 'rate_limited', id), `signal ${i}`);
                refusedAt.push(i);
            }
        }
        // a burst of 10 at once, plus what 5/s refills while they are read (none or one, unless this machine is slow)
        const elapsed = Date.now() - sentAt;
        const passed = passedAt.length;
        const most = 10 + Math.floor((elapsed * 5) / 1000) + 1;
        assert.ok(passed >= 10 && passed <= most, `passed ${passed} of ${SENT} in ${elapsed} ms (burst 10, 5/s): ${passedAt}`);
        assert.ok(refusedAt.length >= SENT - most, `refused: ${refusedAt}`);
        assert.deepEqual(passedAt.slice(0, 10), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'the first 10 pass');
        for (const [k, i] of passedAt.entries()) {
            assert.equal(await b.take('call_signal', callId), T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: k + 1, kind: 'candidate', data: String(i) }));
        }
        // the other direction has its own bucket
        const own = b.post({ type: 'call_signal', callId, kind: 'answer', data: {} });
        await b.expectReply(own, T.response('call_signal', { id: own, callId, state: 'active' }));
        await a.take('call_signal', callId);
        // refilled after 400 ms (5/s: 2 tokens)
        await new Promise((r) => setTimeout(r, 450));
        const later = a.post({ type: 'call_signal', callId, kind: 'candidate', data: 'late' });
        await a.expectReply(later, T.response('call_signal', { id: later, callId, state: 'active' }));
        await b.expect(T.signal({ callId, fromUser: A, fromDevice: 'a-1', seq: passed + 1, kind: 'candidate', data: '"late"' }));
        await quietAll([a, b]);
    });
});
