// The level-1 /WsService JSON protocol (protocol.md) against one single-threaded
// server: create_connect / dialing / called, the replies byte for byte, ids, several
// devices per user, identity moves and checks, unregistering on close, the per-user
// connection cap, every malformed-message error, and UTF-8 content.
//
// Single-threaded, delivery is synchronous, so replies on one connection come in the
// order of the requests: "no reply" is checked by sending a probe request right after
// and asserting that the next message is the probe's answer.

import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { after, before, describe, test } from 'node:test';

import { OP } from '../lib/rawws.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import {
    calledText,
    createConnectOkText,
    dial,
    dialingFailText,
    dialingOkText,
    nextText,
    rawRegister,
    register,
    request,
    waitPeerOffline,
} from '../lib/sigclient.mjs';
import { closeAll, connect, waitClose } from '../lib/wsclient.mjs';

const config = (vars) =>
    signalingConfig(vars, {
        morePaths: `      /Capped:
        signaling: ON
        signaling.max-connections-per-user: 2
`,
    });

let srv;
let uniq = 0;
/** A user id no other test uses. */
const uid = (tag) => `${tag}-${++uniq}`;

const PROBE_TARGET = 'nobody-ever-registers-this-id';
/** Asserts the next message on `ws` is the answer to a probe sent now (so nothing else came before it). */
async function assertNothingPending(ws, { registered = true, what = 'no message' } = {}) {
    const reply = await request(ws, { type: 'dialing', receiverUserId: PROBE_TARGET, id: 'probe' });
    if (registered) {
        assert.equal(
            reply,
            dialingFailText('peer_offline', 'probe'),
            `${what}: the next message must be the probe's answer`,
        );
    } else {
        const p = JSON.parse(reply);
        assert.deepEqual(
            [p.type, p.code, p.id],
            ['dialing_response', 'not_registered', 'probe'],
            `${what}: got ${reply}`,
        );
    }
}

/** Tracks sockets to terminate after the test. */
function sockets(t) {
    const list = [];
    t.after(() => closeAll(list));
    return list;
}

describe('level-1 protocol on one thread', { timeout: 60000 }, () => {
    before(async () => {
        srv = await startServer({ threads: 1, config });
    });
    after(() => srv?.stop());

    test('walk-through: 1122 and 2211 register the old way, dial each other, get the exact called bytes', async (t) => {
        const open = sockets(t);
        const a = await connect(srv.wsUrl);
        const b = await connect(srv.wsUrl);
        open.push(a, b);
        // old clients: no "id", so no reply to create_connect
        a.send('{"type":"create_connect","sponsorUserId":"1122","sponsorUserName":"张三"}');
        b.send('{"type":"create_connect","sponsorUserId":"2211","sponsorUserName":"李四"}');
        // the probe's answer is peer_offline (not not_registered): registered, and nothing was sent before it
        await assertNothingPending(a, { what: 'create_connect without id' });
        await assertNothingPending(b, { what: 'create_connect without id' });

        a.send(
            '{"type":"dialing","sponsorUserId":"1122","sponsorUserName":"张三","receiverUserId":"2211",' +
                '"field1":"hello","field2":"","field3":""}',
        );
        assert.equal(
            await nextText(b),
            '{"type":"called","ok":true,"msg":"","data":{"sponsorUserId":"1122","sponsorUserName":"张三",' +
                '"field1":"hello","field2":"","field3":""}}',
        );
        await assertNothingPending(a, { what: 'a successful dialing without id' });

        b.send(
            '{"type":"dialing","sponsorUserId":"2211","sponsorUserName":"李四","receiverUserId":"1122","field1":"在的"}',
        );
        assert.equal(
            await nextText(a),
            '{"type":"called","ok":true,"msg":"","data":{"sponsorUserId":"2211","sponsorUserName":"李四",' +
                '"field1":"在的","field2":"","field3":""}}',
        );
        await assertNothingPending(b, { what: 'a successful dialing without id' });
    });

    test('create_connect and dialing with an id get the exact success replies (number and string ids)', async (t) => {
        const open = sockets(t);
        const [u1, u2] = [uid('ida'), uid('idb')];
        const a = await connect(srv.wsUrl);
        open.push(a);
        assert.equal(
            await request(a, `{"type":"create_connect","sponsorUserId":"${u1}","sponsorUserName":"张三","id":1}`),
            `{"type":"create_connect_response","ok":true,"msg":"","id":1,"data":{"sponsorUserId":"${u1}"}}`,
        );
        const b = await connect(srv.wsUrl);
        open.push(b);
        assert.equal(
            await request(b, `{"type":"create_connect","sponsorUserId":"${u2}","id":"reg-b"}`),
            `{"type":"create_connect_response","ok":true,"msg":"","id":"reg-b","data":{"sponsorUserId":"${u2}"}}`,
        );

        assert.equal(
            await request(
                a,
                `{"type":"dialing","sponsorUserId":"${u1}","receiverUserId":"${u2}","field1":"hello","id":7}`,
            ),
            `{"type":"dialing_response","ok":true,"msg":"","id":7,"data":{"receiverUserId":"${u2}","delivered":1}}`,
        );
        assert.equal(await nextText(b), calledText({ sponsorUserId: u1, sponsorUserName: '张三', field1: 'hello' }));

        assert.equal(
            await request(a, `{"type":"dialing","receiverUserId":"${u2}","id":"abc-1"}`),
            `{"type":"dialing_response","ok":true,"msg":"","id":"abc-1","data":{"receiverUserId":"${u2}","delivered":1}}`,
        );
        assert.equal(await nextText(b), calledText({ sponsorUserId: u1, sponsorUserName: '张三' }));
    });

    test('ids are echoed exactly: 0, negative, big integers as written, "", escaped strings', async (t) => {
        const open = sockets(t);
        const [u1, u2] = [uid('echo-a'), uid('echo-b')];
        const a = await register(srv.wsUrl, u1);
        const b = await register(srv.wsUrl, u2);
        open.push(a, b);
        const cases = [
            ['0', '0'],
            ['-3', '-3'],
            ['12345678901234567890123', '12345678901234567890123'], // a JS number would round it
            ['""', '""'],
            ['"a\\"b\\\\c\\u00e9\\/"', '"a\\"b\\\\cé/"'], // canonical JSON of the same string
        ];
        for (const [sent, echoed] of cases) {
            const reply = await request(a, `{"type":"dialing","receiverUserId":"${u2}","id":${sent}}`);
            assert.equal(
                reply,
                `{"type":"dialing_response","ok":true,"msg":"","id":${echoed},"data":{"receiverUserId":"${u2}","delivered":1}}`,
                `id ${sent}`,
            );
            assert.equal(await nextText(b), calledText({ sponsorUserId: u1 }));
            const fail = await request(a, `{"type":"dialing","receiverUserId":"${PROBE_TARGET}","id":${sent}}`);
            assert.equal(
                fail,
                `{"type":"dialing_response","ok":false,"msg":"对方未建立链接","code":"peer_offline","id":${echoed},` +
                    '"data":{"sponsorUserId":null}}',
                `failure echo of id ${sent}`,
            );
        }
    });

    test('a request id longer than 256 bytes is echoed by dialing as by create_connect (protocol: any JSON string)', async (t) => {
        const open = sockets(t);
        const [u1, u2] = [uid('longid-a'), uid('longid-b')];
        const longId = `req-${'x'.repeat(296)}`; // 300 bytes
        const a = await connect(srv.wsUrl);
        open.push(a);
        assert.equal(
            await request(a, { type: 'create_connect', sponsorUserId: u1, id: longId }),
            createConnectOkText(longId, u1),
            'create_connect echoes a 300-byte id',
        );
        const b = await register(srv.wsUrl, u2);
        open.push(b);
        const reply = await request(a, { type: 'dialing', receiverUserId: u2, id: longId });
        assert.equal(reply, dialingOkText(longId, u2, 1), 'dialing with the same 300-byte id');
        assert.equal(await nextText(b), calledText({ sponsorUserId: u1 }));
    });

    test('peer_offline is answered byte for byte, with and without id', async (t) => {
        const open = sockets(t);
        const a = await register(srv.wsUrl, uid('off'));
        open.push(a);
        const never = uid('never-registered');
        assert.equal(
            await dial(a, { receiverUserId: never }),
            '{"type":"dialing_response","ok":false,"msg":"对方未建立链接","code":"peer_offline","data":{"sponsorUserId":null}}',
        );
        assert.equal(
            await dial(a, { receiverUserId: never, id: 9 }),
            '{"type":"dialing_response","ok":false,"msg":"对方未建立链接","code":"peer_offline","id":9,"data":{"sponsorUserId":null}}',
        );
        assert.equal(
            await dial(a, { receiverUserId: never, id: 'q' }),
            '{"type":"dialing_response","ok":false,"msg":"对方未建立链接","code":"peer_offline","id":"q","data":{"sponsorUserId":null}}',
        );
    });

    test('numeric user ids mean their decimal text (2211 == "2211")', async (t) => {
        const open = sockets(t);
        const n1 = 700000 + ++uniq;
        const n2 = 800000 + ++uniq;
        const a = await connect(srv.wsUrl);
        const b = await connect(srv.wsUrl);
        open.push(a, b);
        assert.equal(
            await request(a, `{"type":"create_connect","sponsorUserId":${n1},"id":1}`),
            createConnectOkText(1, String(n1)),
        );
        assert.equal(
            await request(b, `{"type":"create_connect","sponsorUserId":"${n2}","id":1}`),
            createConnectOkText(1, String(n2)),
        );
        // numeric receiver, numeric sponsor equal to the identity
        assert.equal(
            await request(a, `{"type":"dialing","sponsorUserId":${n1},"receiverUserId":${n2},"id":2}`),
            dialingOkText(2, String(n2), 1),
        );
        assert.equal(await nextText(b), calledText({ sponsorUserId: String(n1) }));
        // and the other way round: registered with a string, dialed with a number
        assert.equal(
            await request(b, `{"type":"dialing","sponsorUserId":"${n2}","receiverUserId":${n1},"id":3}`),
            dialingOkText(3, String(n1), 1),
        );
        assert.equal(await nextText(a), calledText({ sponsorUserId: String(n2) }));
    });

    test('multi-device: a user with 3 connections gets called on all 3, delivered:3', async (t) => {
        const open = sockets(t);
        const [sender, multi] = [uid('md-s'), uid('md-r')];
        const s = await register(srv.wsUrl, sender, { name: '王五' });
        open.push(s);
        const devices = [];
        for (let i = 0; i < 3; i++) {
            const ws = await register(srv.wsUrl, multi, { id: `dev${i}` });
            open.push(ws);
            devices.push(ws);
        }
        assert.equal(await dial(s, { receiverUserId: multi, field1: 'ring', id: 5 }), dialingOkText(5, multi, 3));
        const expected = calledText({ sponsorUserId: sender, sponsorUserName: '王五', field1: 'ring' });
        for (const [i, ws] of devices.entries()) assert.equal(await nextText(ws), expected, `device ${i}`);
        for (const ws of devices) await assertNothingPending(ws, { what: 'exactly one called per device' });
    });

    test('create_connect again with another id moves the connection', async (t) => {
        const open = sockets(t);
        const [oldId, newId, other] = [uid('mv-old'), uid('mv-new'), uid('mv-other')];
        const x = await register(srv.wsUrl, oldId, { name: 'X' });
        const o = await register(srv.wsUrl, other);
        open.push(x, o);
        assert.equal(await dial(o, { receiverUserId: oldId, id: 1 }), dialingOkText(1, oldId, 1));
        assert.equal(await nextText(x), calledText({ sponsorUserId: other }));

        assert.equal(
            await request(x, { type: 'create_connect', sponsorUserId: newId, sponsorUserName: 'X2', id: 'move' }),
            createConnectOkText('move', newId),
        );
        // the old id had only this connection: it is offline now, at once
        assert.equal(await dial(o, { receiverUserId: oldId, id: 2 }), dialingFailText('peer_offline', 2));
        assert.equal(await dial(o, { receiverUserId: newId, id: 3 }), dialingOkText(3, newId, 1));
        assert.equal(await nextText(x), calledText({ sponsorUserId: other }));

        // it now speaks as the new id, with the new name; the old id is someone else's
        assert.equal(await dial(x, { receiverUserId: other, id: 4 }), dialingOkText(4, other, 1));
        assert.equal(await nextText(o), calledText({ sponsorUserId: newId, sponsorUserName: 'X2' }));
        const spoof = JSON.parse(await dial(x, { sponsorUserId: oldId, receiverUserId: other, id: 5 }));
        assert.deepEqual(
            [spoof.type, spoof.ok, spoof.code, spoof.id],
            ['dialing_response', false, 'identity_mismatch', 5],
        );
        await assertNothingPending(o, { what: 'the refused dialing delivers nothing' });
    });

    test('create_connect again with the same id is a success that changes nothing (no double delivery)', async (t) => {
        const open = sockets(t);
        const [me, dialer] = [uid('same'), uid('same-d')];
        const x = await register(srv.wsUrl, me, { name: 'first' });
        const d = await register(srv.wsUrl, dialer);
        open.push(x, d);
        for (const id of [1, 2]) {
            assert.equal(
                await request(x, { type: 'create_connect', sponsorUserId: me, sponsorUserName: 'second', id }),
                createConnectOkText(id, me),
            );
        }
        assert.equal(await dial(d, { receiverUserId: me, id: 3 }), dialingOkText(3, me, 1));
        assert.equal(await nextText(x), calledText({ sponsorUserId: dialer }));
        await assertNothingPending(x, { what: 'one called only' });
        // the name given by the latest create_connect is the one used
        assert.equal(await dial(x, { receiverUserId: dialer, id: 4 }), dialingOkText(4, dialer, 1));
        assert.equal(await nextText(d), calledText({ sponsorUserId: me, sponsorUserName: 'second' }));
        // and on the capped path, re-registering does not take a second slot
        const url = `ws://127.0.0.1:${srv.port}/Capped`;
        const capped = uid('same-cap');
        const c1 = await register(url, capped, { id: 'a' });
        open.push(c1);
        for (const id of ['b', 'c', 'd']) {
            assert.equal(
                await request(c1, { type: 'create_connect', sponsorUserId: capped, id }),
                createConnectOkText(id, capped),
            );
        }
        const c2 = await register(url, capped, { id: 'e' });
        open.push(c2);
    });

    test('moving one of two connections leaves the old id reachable on the other', async (t) => {
        const open = sockets(t);
        const [shared, newId, dialer] = [uid('mv2-shared'), uid('mv2-new'), uid('mv2-dialer')];
        const x = await register(srv.wsUrl, shared);
        const y = await register(srv.wsUrl, shared, { id: 'y' });
        const d = await register(srv.wsUrl, dialer);
        open.push(x, y, d);
        assert.equal(
            await request(x, { type: 'create_connect', sponsorUserId: newId, id: 1 }),
            createConnectOkText(1, newId),
        );
        assert.equal(await dial(d, { receiverUserId: shared, id: 2 }), dialingOkText(2, shared, 1));
        assert.equal(await nextText(y), calledText({ sponsorUserId: dialer }));
        await assertNothingPending(x, { what: "the moved connection no longer gets the old id's calls" });
    });

    test('a spoofed sponsorUserId is refused (identity_mismatch) and nothing is delivered', async (t) => {
        const open = sockets(t);
        const [me, victim, target] = [uid('sp-me'), uid('sp-victim'), uid('sp-target')];
        const a = await register(srv.wsUrl, me);
        const v = await register(srv.wsUrl, victim);
        const r = await register(srv.wsUrl, target);
        open.push(a, v, r);
        for (const [sponsorUserId, id] of [
            [victim, 1],
            [`${me} `, 'two'],
        ]) {
            const reply = await dial(a, { sponsorUserId, receiverUserId: target, field1: 'fake', id });
            const p = JSON.parse(reply);
            assert.deepEqual(
                { type: p.type, ok: p.ok, code: p.code, id: p.id, data: p.data },
                { type: 'dialing_response', ok: false, code: 'identity_mismatch', id, data: { sponsorUserId: null } },
                reply,
            );
            assert.equal(typeof p.msg, 'string');
            assert.ok(p.msg.length > 0, 'a message text');
            // key order: type, ok, msg, code, id, data
            assert.deepEqual(Object.keys(p), ['type', 'ok', 'msg', 'code', 'id', 'data']);
        }
        // without an id the failure is still sent
        const noId = JSON.parse(await dial(a, { sponsorUserId: victim, receiverUserId: target }));
        assert.deepEqual(
            [noId.type, noId.ok, noId.code, 'id' in noId],
            ['dialing_response', false, 'identity_mismatch', false],
        );
        await assertNothingPending(r, { what: 'a spoofed dialing delivers nothing' });
        // the connection stays usable; without sponsorUserId the identity is implied
        assert.equal(await dial(a, { receiverUserId: target, id: 3 }), dialingOkText(3, target, 1));
        assert.equal(await nextText(r), calledText({ sponsorUserId: me }));
    });

    test('dialing before create_connect is refused (not_registered), and works after registering', async (t) => {
        const open = sockets(t);
        const [me, target] = [uid('nr-me'), uid('nr-target')];
        const r = await register(srv.wsUrl, target);
        const a = await connect(srv.wsUrl);
        open.push(r, a);
        for (const fields of [
            { receiverUserId: target, id: 1 },
            { sponsorUserId: me, receiverUserId: target, id: 'x' },
        ]) {
            const reply = await dial(a, fields);
            const p = JSON.parse(reply);
            assert.deepEqual(
                { type: p.type, ok: p.ok, code: p.code, id: p.id, data: p.data },
                {
                    type: 'dialing_response',
                    ok: false,
                    code: 'not_registered',
                    id: fields.id,
                    data: { sponsorUserId: null },
                },
                reply,
            );
            assert.deepEqual(Object.keys(p), ['type', 'ok', 'msg', 'code', 'id', 'data']);
        }
        const noId = JSON.parse(await dial(a, { receiverUserId: target }));
        assert.deepEqual([noId.type, noId.ok, noId.code], ['dialing_response', false, 'not_registered']);
        await assertNothingPending(r, { what: 'an unregistered dialing delivers nothing' });

        assert.equal(
            await request(a, { type: 'create_connect', sponsorUserId: me, id: 2 }),
            createConnectOkText(2, me),
        );
        assert.equal(await dial(a, { receiverUserId: target, id: 3 }), dialingOkText(3, target, 1));
        assert.equal(await nextText(r), calledText({ sponsorUserId: me }));
    });

    test('after a client closes (close 1000), dialing it gives peer_offline', async (t) => {
        const open = sockets(t);
        const [dialer, leaver] = [uid('cl-d'), uid('cl-l')];
        const d = await register(srv.wsUrl, dialer);
        const l = await register(srv.wsUrl, leaver);
        open.push(d, l);
        assert.equal(await dial(d, { receiverUserId: leaver, id: 1 }), dialingOkText(1, leaver, 1));
        l.close(1000, 'bye');
        assert.equal((await waitClose(l)).code, 1000);
        assert.equal(await waitPeerOffline(d, leaver), dialingFailText('peer_offline', 'probe'));
    });

    test('after a client drops its TCP connection without a close frame, dialing it gives peer_offline', async (t) => {
        const open = sockets(t);
        const [dialer, leaver] = [uid('drop-d'), uid('drop-l')];
        const d = await register(srv.wsUrl, dialer);
        const l = await register(srv.wsUrl, leaver);
        open.push(d, l);
        l.terminate(); // destroys the socket: FIN, no close frame
        await waitClose(l);
        assert.equal(await waitPeerOffline(d, leaver), dialingFailText('peer_offline', 'probe'));
    });

    test('max-connections-per-user 2: a third create_connect is refused, the first two are untouched', async (t) => {
        const open = sockets(t);
        const url = `ws://127.0.0.1:${srv.port}/Capped`;
        const [capped, dialer] = [uid('cap'), uid('cap-d')];
        const c1 = await register(url, capped, { id: 'c1' });
        const c2 = await register(url, capped, { id: 'c2' });
        const d = await register(url, dialer);
        const c3 = await connect(url);
        open.push(c1, c2, d, c3);

        const reply = await request(c3, { type: 'create_connect', sponsorUserId: capped, id: 'c3' });
        const p = JSON.parse(reply);
        assert.deepEqual(
            { type: p.type, ok: p.ok, code: p.code, id: p.id },
            { type: 'create_connect_response', ok: false, code: 'too_many_connections', id: 'c3' },
            reply,
        );
        assert.equal(typeof p.msg, 'string');
        // the refused connection stays open but unregistered
        await assertNothingPending(c3, { registered: false, what: 'the refused connection' });

        assert.equal(await dial(d, { receiverUserId: capped, field1: 'both', id: 1 }), dialingOkText(1, capped, 2));
        const expected = calledText({ sponsorUserId: dialer, field1: 'both' });
        assert.equal(await nextText(c1), expected);
        assert.equal(await nextText(c2), expected);
        await assertNothingPending(c3, { registered: false, what: 'the refused connection gets no called' });

        // once one of the two closes, a new connection may take its place
        c1.close(1000);
        await waitClose(c1);
        const c4 = await connect(url);
        open.push(c4);
        const deadline = Date.now() + 2000; // unregistering is asynchronous to this client
        let again;
        for (;;) {
            again = await request(c4, { type: 'create_connect', sponsorUserId: capped, id: 'c4' });
            if (again === createConnectOkText('c4', capped) || Date.now() >= deadline) break;
            await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(again, createConnectOkText('c4', capped), 'a freed slot can be taken');
        assert.equal(await dial(d, { receiverUserId: capped, id: 2 }), dialingOkText(2, capped, 2));
    });

    test('the cap is per path: the same user on /WsService is not limited by /Capped', async (t) => {
        const open = sockets(t);
        const user = uid('perpath');
        for (let i = 0; i < 3; i++) open.push(await register(srv.wsUrl, user, { id: `w${i}` }));
        const d = await register(srv.wsUrl, uid('perpath-d'));
        open.push(d);
        assert.equal(await dial(d, { receiverUserId: user, id: 1 }), dialingOkText(1, user, 3));
    });

    describe('malformed messages get an error reply and the connection stays usable', () => {
        let a;
        let r;
        let me;
        let target;
        before(async () => {
            [me, target] = [uid('mal-me'), uid('mal-target')];
            a = await register(srv.wsUrl, me, { name: '甲' });
            r = await register(srv.wsUrl, target);
        });
        after(() => closeAll([a, r]));

        const long257 = 'u'.repeat(257);
        const multibyte258 = '张'.repeat(86); // 86 chars, 258 bytes: the limit counts bytes
        // [name, message text, code, id echoed (JSON text) or undefined]
        const cases = [
            ['not JSON', 'nope', 'bad_json'],
            ['empty message', '', 'bad_json'],
            ['truncated JSON', '{"type":"dialing","receiverUserId":"x"', 'bad_json'],
            ['trailing garbage', '{"type":"dialing","receiverUserId":"x"} x', 'bad_json'],
            ['two objects', '{"type":"dialing","receiverUserId":"x"}{}', 'bad_json'],
            ['trailing comma', '{"type":"dialing","receiverUserId":"x",}', 'bad_json'],
            ['single quotes', "{'type':'dialing'}", 'bad_json'],
            ['bad escape', '{"type":"dialing","receiverUserId":"x","field1":"\\x"}', 'bad_json'],
            ['array top level', '[1,2]', 'not_object'],
            ['string top level', '"dialing"', 'not_object'],
            ['number top level', '5', 'not_object'],
            ['null top level', 'null', 'not_object'],
            ['no type', '{"receiverUserId":"x"}', 'missing_type'],
            ['empty object', '{}', 'missing_type'],
            ['type null', '{"type":null,"id":41}', 'missing_type', '41'],
            ['unknown type', '{"type":"zzz","id":3}', 'unknown_type', '3'],
            ['type is case-sensitive', '{"type":"Dialing","receiverUserId":"x"}', 'unknown_type'],
            ['type is a number', '{"type":5}', 'bad_field'],
            ['type is an object', '{"type":{},"id":"t"}', 'bad_field', '"t"'],
            ['receiverUserId object', '{"type":"dialing","receiverUserId":{}}', 'bad_field'],
            ['receiverUserId array', '{"type":"dialing","receiverUserId":["x"],"id":4}', 'bad_field', '4'],
            ['receiverUserId bool', '{"type":"dialing","receiverUserId":true}', 'bad_field'],
            ['receiverUserId float', '{"type":"dialing","receiverUserId":1.5}', 'bad_field'],
            [
                'sponsorUserId object in dialing',
                '{"type":"dialing","sponsorUserId":{},"receiverUserId":"x","id":5}',
                'bad_field',
                '5',
            ],
            ['field1 object', '{"type":"dialing","receiverUserId":"x","field1":{}}', 'bad_field'],
            ['field1 array', '{"type":"dialing","receiverUserId":"x","field1":[]}', 'bad_field'],
            ['field1 bool', '{"type":"dialing","receiverUserId":"x","field1":false,"id":"f"}', 'bad_field', '"f"'],
            ['sponsorUserName object', '{"type":"dialing","receiverUserId":"x","sponsorUserName":{}}', 'bad_field'],
            [
                'create_connect sponsorUserId float',
                '{"type":"create_connect","sponsorUserId":1.5,"id":6}',
                'bad_field',
                '6',
            ],
            ['create_connect sponsorUserId array', '{"type":"create_connect","sponsorUserId":["a"]}', 'bad_field'],
            ['dialing without receiverUserId', '{"type":"dialing","field1":"x","id":7}', 'missing_field', '7'],
            ['dialing with receiverUserId null', '{"type":"dialing","receiverUserId":null}', 'missing_field'],
            [
                'create_connect without sponsorUserId',
                '{"type":"create_connect","sponsorUserName":"a"}',
                'missing_field',
            ],
            ['empty receiverUserId', '{"type":"dialing","receiverUserId":"","id":8}', 'bad_id', '8'],
            ['receiverUserId of 257 bytes', `{"type":"dialing","receiverUserId":"${long257}"}`, 'bad_id'],
            [
                'receiverUserId of 86 CJK chars (258 bytes)',
                `{"type":"dialing","receiverUserId":"${multibyte258}"}`,
                'bad_id',
            ],
            ['empty sponsorUserId in dialing', '{"type":"dialing","sponsorUserId":"","receiverUserId":"x"}', 'bad_id'],
            [
                'create_connect with empty sponsorUserId',
                '{"type":"create_connect","sponsorUserId":"","id":9}',
                'bad_id',
                '9',
            ],
            [
                'create_connect with 257-byte sponsorUserId',
                `{"type":"create_connect","sponsorUserId":"${long257}"}`,
                'bad_id',
            ],
        ];

        for (const [name, text, code, idJson] of cases) {
            test(`${name} -> ${code}`, async () => {
                const reply = await request(a, text);
                let p;
                assert.doesNotThrow(() => (p = JSON.parse(reply)), `reply is JSON: ${reply}`);
                assert.equal(typeof p.msg, 'string', reply);
                assert.ok(p.msg.length > 0, `msg is a text: ${reply}`);
                const idPart = idJson === undefined ? '' : `,"id":${idJson}`;
                assert.equal(
                    reply,
                    `{"type":"error","ok":false,"msg":${JSON.stringify(p.msg)},"code":"${code}"${idPart}}`,
                    `message: ${text.slice(0, 120)}`,
                );
                // still open, still registered as before, still answering
                const ok = await dial(a, { receiverUserId: target, field1: name, id: 'after' });
                assert.equal(ok, dialingOkText('after', target, 1), `valid dialing after: ${name}`);
                assert.equal(await nextText(r), calledText({ sponsorUserId: me, sponsorUserName: '甲', field1: name }));
            });
        }

        test('user ids of exactly 256 bytes are fine (boundary)', async (t) => {
            const id256 = `${uid('b')}-`.padEnd(256, 'z');
            const peer = await register(srv.wsUrl, id256);
            t.after(() => closeAll([peer]));
            assert.equal(await dial(a, { receiverUserId: id256, id: 1 }), dialingOkText(1, id256, 1));
            assert.equal(await nextText(peer), calledText({ sponsorUserId: me, sponsorUserName: '甲' }));
        });

        test('unknown keys of any kind, "auth", and null fields are accepted', async () => {
            const text =
                `{"type":"dialing","auth":"tok","x":{"a":[1,{"b":null}],"c":true},"receiverUserId":"${target}",` +
                '"field1":null,"field2":"f2","y":[[[]]],"id":"u"}';
            assert.equal(await request(a, text), dialingOkText('u', target, 1));
            assert.equal(await nextText(r), calledText({ sponsorUserId: me, sponsorUserName: '甲', field2: 'f2' }));
        });

        test('a connection that sent a bad create_connect keeps its identity', async () => {
            const reply = JSON.parse(await request(a, '{"type":"create_connect","sponsorUserId":{},"id":1}'));
            assert.equal(reply.code, 'bad_field');
            assert.equal(await dial(a, { receiverUserId: target, id: 2 }), dialingOkText(2, target, 1));
            assert.equal(await nextText(r), calledText({ sponsorUserId: me, sponsorUserName: '甲' }));
        });

        test('deeply nested JSON (30000 levels) under an unknown key does not hurt', async () => {
            const deep = '['.repeat(30000) + ']'.repeat(30000);
            const reply = await request(
                a,
                `{"type":"dialing","receiverUserId":"${target}","deep":${deep},"id":"deep"}`,
            );
            const p = JSON.parse(reply);
            // accepting it or refusing it are both fine; crashing or closing is not
            if (p.ok) {
                assert.equal(reply, dialingOkText('deep', target, 1));
                assert.equal(await nextText(r), calledText({ sponsorUserId: me, sponsorUserName: '甲' }));
            } else {
                assert.equal(p.type, 'error', reply);
            }
            assert.equal(await dial(a, { receiverUserId: target, id: 3 }), dialingOkText(3, target, 1));
            assert.equal(await nextText(r), calledText({ sponsorUserId: me, sponsorUserName: '甲' }));
        });
    });

    test('UTF-8 content round-trips exactly (Chinese, emoji, quotes, backslash, newline, controls)', async (t) => {
        const open = sockets(t);
        const [u1, u2] = [uid('utf-a'), uid('utf-b')];
        const a = await register(srv.wsUrl, u1, { name: '张三' });
        const b = await register(srv.wsUrl, u2);
        open.push(a, b);
        const field1 =
            '你好，世界 😀👍🏽 "quoted" \\back\\slash\\ line1\nline2\r\ttab \u0001\u001f\u007f / \u2028\u2029 é';
        const sponsorUserName = '李"四"\\ 🐉\n';
        const field2 = 'Ω≈ç√ ∫˜µ≤ ﷽ 𝕏';
        const field3 = '\u0000nul';
        const sent = { type: 'dialing', sponsorUserName, receiverUserId: u2, field1, field2, field3, id: 'utf' };
        assert.equal(await request(a, sent), dialingOkText('utf', u2, 1));
        const got = await nextText(b);
        assert.equal(got, calledText({ sponsorUserId: u1, sponsorUserName, field1, field2, field3 }));

        // the same text sent with \u escapes (surrogate pairs included) arrives as raw UTF-8
        const escaped = (s) =>
            Array.from(s)
                .map((ch) =>
                    ch.codePointAt(0) > 0x7e
                        ? ch
                              .split('')
                              .map((u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, '0')}`)
                              .join('')
                        : JSON.stringify(ch).slice(1, -1),
                )
                .join('');
        const text = `{"type":"dialing","receiverUserId":"${u2}","field1":"${escaped(field1)}","id":"esc"}`;
        assert.equal(await request(a, text), dialingOkText('esc', u2, 1));
        assert.equal(await nextText(b), calledText({ sponsorUserId: u1, sponsorUserName: '张三', field1 }));
    });

    test('numbers in text fields arrive as their text, as written', async (t) => {
        const open = sockets(t);
        const [u1, u2] = [uid('num-a'), uid('num-b')];
        const a = await register(srv.wsUrl, u1);
        const b = await register(srv.wsUrl, u2);
        open.push(a, b);
        const text = `{"type":"dialing","receiverUserId":"${u2}","sponsorUserName":7,"field1":12.50,"field2":-0,"field3":1e3}`;
        a.send(text);
        assert.equal(
            await nextText(b),
            calledText({ sponsorUserId: u1, sponsorUserName: '7', field1: '12.50', field2: '-0', field3: '1e3' }),
        );
    });

    test('escaped lone surrogates never put invalid UTF-8 on the wire nor invent characters', async (t) => {
        const [u1, u2] = [uid('sur-a'), uid('sur-b')];
        // raw clients on both ends: they report the bytes as they are, where a ws client would
        // fail the connection on invalid UTF-8
        const a = await rawRegister(srv.port, u1);
        t.after(() => a.destroy());
        const raw = await rawRegister(srv.port, u2);
        t.after(() => raw.destroy());

        const problems = [];
        for (const esc of ['\\ude00x', '\\ud83dx', '\\ud83d\\u0041', '\\ud83d\\ud83d', 'end\\ud800']) {
            const js = JSON.parse(`"${esc}"`); // what the text means, with lone surrogates
            const allowed = ['\ufffd', '?'].map((rep) => js.replace(/[\ud800-\udfff]/g, rep));
            a.sendText(`{"type":"dialing","receiverUserId":"${u2}","field1":"${esc}","id":"${esc}"}`);
            const { payload: replyBuf } = await a.nextFrame();
            const reply = JSON.parse(replyBuf.toString()); // lossy if invalid: checked just below
            if (!isUtf8(replyBuf))
                problems.push(`${esc}: the reply to the sender is not valid UTF-8: ${replyBuf.toString('hex')}`);
            if (reply.ok === false) {
                if (reply.type !== 'error' || reply.code !== 'bad_json')
                    problems.push(`${esc}: refused oddly: ${replyBuf}`);
                continue;
            }
            if (isUtf8(replyBuf) && !allowed.includes(reply.id))
                problems.push(`${esc}: id echoed as ${JSON.stringify(reply.id)}`);
            const f = await raw.nextFrame();
            assert.equal(f.opcode, OP.TEXT);
            if (!isUtf8(f.payload)) {
                problems.push(`${esc}: called is not valid UTF-8 (bytes ${f.payload.toString('hex')})`);
                continue;
            }
            const field1 = JSON.parse(f.payload.toString()).data.field1;
            if (!allowed.includes(field1)) {
                problems.push(
                    `${esc}: field1 arrived as ${JSON.stringify(field1)} (${[...field1].map((c) => `U+${c.codePointAt(0).toString(16)}`).join(' ')}), expected ${allowed.map((s) => JSON.stringify(s)).join(' or ')}`,
                );
            }
        }
        assert.deepEqual(problems, []);
    });

    test('one user cannot knock a browser-like receiver offline with an escaped lone surrogate', async (t) => {
        const open = sockets(t);
        const [u1, u2] = [uid('kick-a'), uid('kick-b')];
        const a = await register(srv.wsUrl, u1);
        const b = await register(srv.wsUrl, u2); // `ws` validates UTF-8 like a browser does
        open.push(a, b);
        a.send(`{"type":"dialing","receiverUserId":"${u2}","field1":"\\udc00"}`); // no id: no echo to a
        let reply = await dial(a, { receiverUserId: u2, field1: 'still there?', id: 1 }).catch(
            (e) => `sender lost: ${e.message}`,
        );
        const refused = reply.startsWith('{"type":"error"');
        if (refused) {
            assert.equal(JSON.parse(reply).code, 'bad_json', reply);
            reply = await nextText(a);
        }
        assert.equal(reply, dialingOkText(1, u2, 1));
        if (!refused) {
            const first = await nextText(b).catch((err) => `receiver lost: ${err.message}`);
            assert.match(first, /^\{"type":"called"/, 'the receiver gets the first called');
        }
        assert.equal(
            await nextText(b).catch((err) => `receiver lost: ${err.message}`),
            calledText({ sponsorUserId: u1, field1: 'still there?' }),
        );
    });
});
