// Level-2 races the call's owner decides (calls.md "Rules the server keeps"), on num-threads 4 with
// fresh users (so fresh connections, spread by the kernel over the threads) in every round:
//   - two devices accept in the same millisecond, 100 times: exactly one call_accepted to a callee
//     device; the other gets call_ended answered_elsewhere and its accept the error answered_elsewhere;
//   - glare, both `call`s sent together, 100 times: one active call, no error, both sides get
//     call_accepted (glare), the other attempt is answered with that callId (the lower callId wins
//     when both were created at the same moment);
//   - accept vs cancel and accept vs reject: whichever the owner sees first wins, the loser is
//     answered as if it came after;
//   - a client-chosen callId sent twice at once rings once.
// Every loop is bounded in rounds and in time.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { acceptRace, callServer, clientsOf, closeRound, device, leftOver, ringCall, rounds, SLOW, stopClean, T, uid } from '../lib/callclient.mjs';

const RING = 20000 * SLOW; // no ring timeout during a round
const BUDGET_MS = 60000 * SLOW; // per loop

describe('level-2 races on num-threads 4', { timeout: 400000 * SLOW }, () => {
    let srv;
    before(async () => {
        srv = await callServer([`signaling.call.ring-timeout: ${RING}`]);
    });
    after(() => stopClean(srv));

    test('first accept wins: two devices accept in the same millisecond, 100 times', { timeout: BUDGET_MS + 10000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        const outcomes = await rounds(t, 100, BUDGET_MS, async (i) => {
            const mine = [];
            const call = await ringCall(srv.wsUrl, mine, { calleeDevices: ['b-phone', 'b-web'], ringTimeout: RING });
            list.push(...mine);
            // both in the same tick, in an order that alternates
            const { firstWon } = await acceptRace(call, ['b-phone', 'b-web'], i % 2, i);
            closeRound(mine);
            return firstWon ? 'first sent won' : 'second sent won';
        });
        assert.equal([...outcomes.values()].reduce((x, y) => x + y, 0), 100);
    });

    test('glare: A calls B and B calls A at the same moment, 100 times: one active call, no error', { timeout: BUDGET_MS + 10000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        await rounds(t, 100, BUDGET_MS, async (i) => {
            const [A, B] = [uid('glare-a'), uid('glare-b')];
            const a = await device(srv.wsUrl, A, { device: 'a-dev' });
            const b = await device(srv.wsUrl, B, { device: 'b-dev' });
            list.push(a, b);
            // odd rounds: client-chosen callIds (either may be the lower one); even rounds: the server's
            const chosen = i % 2 ? { a: `g${i}-${i % 4 === 1 ? 'x' : 'y'}`, b: `g${i}-${i % 4 === 1 ? 'y' : 'x'}` } : null;
            const msgA = { type: 'call', receiverUserId: B, media: 'video', ...(chosen ? { callId: chosen.a } : {}) };
            const msgB = { type: 'call', receiverUserId: A, media: 'video', ...(chosen ? { callId: chosen.b } : {}) };
            const idA = a.post(msgA);
            const idB = b.post(msgB);
            const ra = JSON.parse(await a.reply(idA));
            const rb = JSON.parse(await b.reply(idB));
            assert.equal(ra.ok, true, `round ${i}: A's call: ${JSON.stringify(ra)}`);
            assert.equal(rb.ok, true, `round ${i}: B's call: ${JSON.stringify(rb)}`);
            // exactly one answer is the glare one: active, carrying the winning call's id
            const glared = [ra, rb].filter((r) => r.data?.glare === true);
            assert.equal(glared.length, 1, `round ${i}: one glare answer: ${JSON.stringify([ra, rb])}`);
            const g = glared[0];
            const other = g === ra ? rb : ra;
            const gSide = g === ra ? { me: a, U: A, peer: b, P: B, id: g.id } : { me: b, U: B, peer: a, P: A, id: g.id };
            const W = g.data.callId;
            assert.equal(JSON.stringify(g), T.callResponse({ id: gSide.id, callId: W, state: 'active', level2: 0, legacy: 0, glare: true }));
            // the other answer is the ringing call it met
            const O = other.data?.callId;
            assert.equal(JSON.stringify(other), T.callResponse({ id: other.id, callId: O, state: 'ringing', level2: 1, legacy: 0 }));
            if (chosen) {
                const own = gSide.me === a ? chosen.a : chosen.b;
                const theirs = gSide.me === a ? chosen.b : chosen.a;
                assert.equal(O, theirs, `round ${i}: the ringing call is the peer's`);
                assert.ok(W === theirs || (W === own && own < theirs), `round ${i}: the winner ${W} is the ringing call, or the lower id of two at once`);
            }
            let outcome;
            let caller; // the winning call's caller and callee
            let callee;
            if (W === O) {
                // the glare answer joined the ringing call: its sender is that call's callee
                outcome = 'joined the ringing call';
                callee = gSide;
                caller = { me: gSide.peer, U: gSide.P };
                await gSide.me.expect(T.incoming({ callId: O, from: gSide.P, name: '', media: 'video', expiresIn: RING }));
            } else {
                // both created at the same moment and the new one had the lower id: it replaced the ringing one
                outcome = 'lower id won (replaced)';
                caller = gSide;
                callee = { me: gSide.peer, U: gSide.P };
                assert.ok(W < O, `round ${i}: ${W} won over ${O} although it is not lower`);
                await gSide.me.expect(T.incoming({ callId: O, from: gSide.P, name: '', media: 'video', expiresIn: RING }));
                await gSide.peer.expect(T.ended({ callId: O, reason: 'replaced' }));
                await gSide.me.expect(T.ended({ callId: O, reason: 'answered_elsewhere' }));
            }
            const calleeDevice = callee.me === a ? 'a-dev' : 'b-dev';
            await caller.me.expect(T.accepted({ callId: W, byUser: callee.U, byDevice: calleeDevice, polite: false, glare: true }));
            await callee.me.expect(T.accepted({ callId: W, byUser: callee.U, byDevice: calleeDevice, polite: true, glare: true }));
            // one active call between them: signals pass both ways on W, numbered from 1
            let id = a.post({ type: 'call_signal', callId: W, kind: 'offer', data: { from: 'a' } });
            await a.expectReply(id, T.response('call_signal', { id, callId: W, state: 'active' }));
            id = b.post({ type: 'call_signal', callId: W, kind: 'offer', data: { from: 'b' } });
            await b.expectReply(id, T.response('call_signal', { id, callId: W, state: 'active' }));
            await b.expect(T.signal({ callId: W, fromUser: A, fromDevice: 'a-dev', seq: 1, kind: 'offer', data: '{"from":"a"}' }));
            await a.expect(T.signal({ callId: W, fromUser: B, fromDevice: 'b-dev', seq: 1, kind: 'offer', data: '{"from":"b"}' }));
            const rest = await leftOver([a, b], 20);
            assert.deepEqual(rest, {}, `round ${i} (${outcome}): nothing more`);
            // and it is the only live call of either: a new device of each lists just W
            if (i % 10 === 0) {
                const a2 = await device(srv.wsUrl, A, { calls: [{ callId: W, state: 'active', role: caller.U === A ? 'caller' : 'callee', peerUserId: B, media: 'video' }] });
                list.push(a2);
                a2.ws.close(1000);
            }
            id = a.post({ type: 'call_hangup', callId: W });
            await a.expectReply(id, T.response('call_hangup', { id, callId: W, state: 'ended' }));
            await b.expect(T.ended({ callId: W, reason: 'hangup' }));
            closeRound([a, b]);
            return outcome;
        });
    });

    test('accept vs cancel at the same moment, 50 times: the first the owner sees wins, the other is answered as after it', { timeout: BUDGET_MS + 10000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        await rounds(t, 50, BUDGET_MS, async (i) => {
            const mine = [];
            const { a, bs, callId, B } = await ringCall(srv.wsUrl, mine, { calleeDevices: ['b-1'], ringTimeout: RING });
            list.push(...mine);
            const [b] = bs;
            let idAcc;
            let idHang;
            if (i % 2) {
                idAcc = b.post({ type: 'call_accept', callId });
                idHang = a.post({ type: 'call_hangup', callId });
            } else {
                idHang = a.post({ type: 'call_hangup', callId });
                idAcc = b.post({ type: 'call_accept', callId });
            }
            const acc = await b.reply(idAcc);
            const hang = await a.reply(idHang);
            assert.equal(hang, T.response('call_hangup', { id: idHang, callId, state: 'ended' }), `round ${i}: the hangup`);
            let outcome;
            if (acc === T.response('call_accept', { id: idAcc, callId, state: 'active' })) {
                outcome = 'accept first';
                await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-1', polite: false }));
                await b.expect(T.accepted({ callId, byUser: B, byDevice: 'b-1', polite: true }));
                await b.expect(T.ended({ callId, reason: 'hangup' }));
            } else {
                outcome = 'cancel first';
                assert.equal(acc, T.error('call_accept', 'bad_state', idAcc), `round ${i}: an accept after the cancel`);
                await b.expect(T.ended({ callId, reason: 'cancelled' }));
                await b.expect(T.ended({ callId, reason: 'cancelled', repeat: true }));
            }
            const rest = await leftOver([a, b], 20);
            assert.deepEqual(rest, {}, `round ${i} (${outcome}): nothing more`);
            closeRound(mine);
            return outcome;
        });
    });

    test('accept vs reject from two devices at the same moment, 50 times: one wins, the other is answered as after it', { timeout: BUDGET_MS + 10000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        await rounds(t, 50, BUDGET_MS, async (i) => {
            const mine = [];
            const { a, bs, callId, B } = await ringCall(srv.wsUrl, mine, { calleeDevices: ['b-acc', 'b-rej'], ringTimeout: RING });
            list.push(...mine);
            const [acc, rej] = bs;
            let idAcc;
            let idRej;
            if (i % 2) {
                idAcc = acc.post({ type: 'call_accept', callId });
                idRej = rej.post({ type: 'call_reject', callId, reason: 'declined' });
            } else {
                idRej = rej.post({ type: 'call_reject', callId, reason: 'declined' });
                idAcc = acc.post({ type: 'call_accept', callId });
            }
            const ra = await acc.reply(idAcc);
            const rr = await rej.reply(idRej);
            let outcome;
            if (ra === T.response('call_accept', { id: idAcc, callId, state: 'active' })) {
                outcome = 'accept first';
                assert.equal(rr, T.error('call_reject', 'answered_elsewhere', idRej), `round ${i}: a reject after the accept`);
                await a.expect(T.accepted({ callId, byUser: B, byDevice: 'b-acc', polite: false }));
                await acc.expect(T.accepted({ callId, byUser: B, byDevice: 'b-acc', polite: true }));
                await rej.expect(T.ended({ callId, reason: 'answered_elsewhere' }));
            } else {
                outcome = 'reject first';
                assert.equal(rr, T.response('call_reject', { id: idRej, callId, state: 'ended' }), `round ${i}: the reject`);
                assert.equal(ra, T.error('call_accept', 'bad_state', idAcc), `round ${i}: an accept after the reject`);
                await a.expect(T.ended({ callId, reason: 'rejected' }));
                await acc.expect(T.ended({ callId, reason: 'rejected_elsewhere' }));
                await acc.expect(T.ended({ callId, reason: 'rejected_elsewhere', repeat: true }));
            }
            const rest = await leftOver([a, acc, rej], 20);
            assert.deepEqual(rest, {}, `round ${i} (${outcome}): nothing more`);
            closeRound(mine);
            return outcome;
        });
    });

    test('the same client-chosen callId sent twice at once, 50 times: one ring, two identical answers', { timeout: BUDGET_MS + 10000 * SLOW }, async (t) => {
        const list = clientsOf(t);
        await rounds(t, 50, BUDGET_MS, async (i) => {
            const [A, B] = [uid('retry-a'), uid('retry-b')];
            const a = await device(srv.wsUrl, A, { device: 'a' });
            const b1 = await device(srv.wsUrl, B, { device: 'b1' });
            const b2 = await device(srv.wsUrl, B, { device: 'b2' });
            list.push(a, b1, b2);
            const callId = `retry-${i}-${uid('c')}`;
            const ids = [0, 1].map(() => a.post({ type: 'call', receiverUserId: B, media: 'audio', callId }));
            for (const id of ids) {
                await a.expectReply(id, T.callResponse({ id, callId, state: 'ringing', level2: 2, legacy: 0 }), `round ${i}`);
            }
            for (const d of [b1, b2]) await d.expect(T.incoming({ callId, from: A, name: '', media: 'audio', expiresIn: RING }));
            const rest = await leftOver([a, b1, b2], 20);
            assert.deepEqual(rest, {}, `round ${i}: one incoming_call per device`);
            closeRound([a, b1, b2]);
            return 'rang once';
        });
    });
});
