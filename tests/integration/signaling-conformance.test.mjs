// RFC 6455 conformance of /WsService, from a raw socket: invalid UTF-8 (1007), protocol
// violations (1002), oversized messages (1009), fragmentation, ping/pong and the closing
// handshake. Every close test reads the server's close frame, checks its code, and checks
// that the server then ends the TCP connection.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import { connectRaw, encodeFrame, OP } from '../lib/rawws.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import { createConnectOkText, dialingFailText, rawNextText } from '../lib/sigclient.mjs';
import { withTimeout } from '../lib/wait.mjs';

const MAX_MESSAGE = 4096;

const config = (vars) => signalingConfig(vars, { settings: [`signaling.max-message-size: ${MAX_MESSAGE}`] });

/** A request whose answer proves the connection still works (unregistered: not_registered). */
const PROBE = '{"type":"dialing","receiverUserId":"nobody","id":"probe"}';
const PROBE_ANSWER_PREFIX = '{"type":"dialing_response","ok":false,"msg":';

let srv;
/** A fresh raw connection, destroyed after the test. */
async function open(t) {
    const raw = await connectRaw({ port: srv.port });
    t.after(() => raw.destroy());
    return raw;
}

/** Reads to the server's close frame (echoing it); asserts its code, no data before it, and the TCP end. */
async function expectClose(raw, code, { allowFrames = false } = {}) {
    const res = await raw.waitClose(5000);
    assert.equal(res.closeFrame, true, `expected a close frame ${code}, got a TCP end without one (1006)`);
    assert.equal(res.code, code, `close code (reason: ${JSON.stringify(res.reason)})`);
    if (!allowFrames) {
        assert.deepEqual(
            res.frames.map((f) => `${f.opcode}:${f.payload.toString()}`),
            [],
            'no frame before the close',
        );
    }
    await withTimeout(raw.tcpClosed, 5000, 'the server to close the TCP connection after the closing handshake');
    return res;
}

/** Sends the probe and asserts its answer arrives (pongs in between are allowed and returned). */
async function expectAlive(raw) {
    raw.sendText(PROBE);
    const text = await rawNextText(raw);
    assert.ok(text.startsWith(PROBE_ANSWER_PREFIX), `probe answered: ${text}`);
    assert.equal(JSON.parse(text).code, 'not_registered');
}

describe('RFC 6455 conformance', { timeout: 60000 }, () => {
    before(async () => {
        srv = await startServer({ threads: 1, config });
    });
    after(() => srv?.stop());

    describe('invalid UTF-8 -> 1007', () => {
        const cases = [
            ['0xff byte', [0xff]],
            ['overlong "/" (c0 af)', [0xc0, 0xaf]],
            ['overlong 3-byte (e0 80 af)', [0xe0, 0x80, 0xaf]],
            ['UTF-8 encoded surrogate (ed a0 80)', [0xed, 0xa0, 0x80]],
            ['code point above U+10FFFF (f4 90 80 80)', [0xf4, 0x90, 0x80, 0x80]],
            ['5-byte form (f8 88 80 80 80)', [0xf8, 0x88, 0x80, 0x80, 0x80]],
            ['lone continuation byte (80)', [0x80]],
            ['multibyte char cut by the end of the message', [0xe4, 0xb8], true],
        ];
        for (const [name, bytes, atEnd] of cases) {
            test(`one frame: ${name}`, async (t) => {
                const raw = await open(t);
                const body = Buffer.concat([Buffer.from('{"type":"dialing","receiverUserId":"'), Buffer.from(bytes)]);
                raw.send({ opcode: OP.TEXT, payload: atEnd ? body : Buffer.concat([body, Buffer.from('"}')]) });
                await expectClose(raw, 1007);
            });
        }

        test('split over two fragments: valid prefix of a char, continuation completes it wrongly', async (t) => {
            const raw = await open(t);
            // e4 b8 ad is 中: the first fragment ends with e4, the continuation goes on with 'A'
            raw.send({ opcode: OP.TEXT, fin: false, payload: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe4]) });
            raw.send({ opcode: OP.CONT, fin: true, payload: Buffer.from([0x41, 0x22, 0x7d]) });
            await expectClose(raw, 1007);
        });

        test('split over two fragments: e4 b8 | 41', async (t) => {
            const raw = await open(t);
            raw.send({ opcode: OP.TEXT, fin: false, payload: Buffer.from([0x22, 0xe4, 0xb8]) });
            raw.send({ opcode: OP.CONT, fin: true, payload: Buffer.from([0x41, 0x22]) });
            await expectClose(raw, 1007);
        });

        test('invalid bytes in a first fragment fail the connection without waiting for the rest', async (t) => {
            const raw = await open(t);
            raw.send({ opcode: OP.TEXT, fin: false, payload: Buffer.from([0x22, 0xff]) }); // no continuation ever
            await expectClose(raw, 1007);
        });

        // Text is checked as its bytes arrive (Autobahn 6.4.x): bad bytes close the connection while the rest of
        // their frame, or of their message, is still outstanding and never sent.
        /** Writes `first`, checks that it is accepted so far (nothing comes back), then `second`; expects 1007 at once. */
        async function expectPromptClose(raw, first, second) {
            raw.socket.setNoDelay(true);
            raw.sendRaw(first);
            await delay(100); // its own read on the server, which has no reason to answer it
            assert.deepEqual(raw.frames, [], 'nothing comes back for the valid first piece');
            assert.equal(raw.isTcpClosed, false, 'the valid first piece does not end the connection');
            const start = Date.now();
            raw.sendRaw(second);
            const res = await raw.waitClose(500); // rejects (timed out) if the server waits for the rest
            assert.equal(res.closeFrame, true, 'a close frame, not a TCP end (1006)');
            assert.equal(res.code, 1007, `close code (reason: ${JSON.stringify(res.reason)})`);
            assert.ok(Date.now() - start < 500, `closed ${Date.now() - start} ms after the bad bytes`);
            await withTimeout(raw.tcpClosed, 5000, 'the server to close the TCP connection after the closing handshake');
        }

        test('a frame in pieces: invalid bytes in the second piece close at once, the rest never sent', async (t) => {
            const raw = await open(t);
            const payload = Buffer.concat([Buffer.from('{"type":"dialing","receiverUserId":"用户'), Buffer.from([0xed, 0xa0, 0x80]),
                Buffer.from('","id":"x"}'), Buffer.alloc(200, 'x')]);
            const bytes = encodeFrame({ opcode: OP.TEXT, payload }); // 16-bit length, 4-byte key: a 8-byte header
            const bad = 8 + payload.indexOf(0xed);
            await expectPromptClose(raw, bytes.subarray(0, bad - 5), bytes.subarray(bad - 5, bad + 3));
        });

        test('a fragmented message: invalid bytes in the first continuation close at once, the final fragment never sent', async (t) => {
            const raw = await open(t);
            const first = encodeFrame({ opcode: OP.TEXT, fin: false, payload: Buffer.from('{"type":"dialing","receiverUserId":"') });
            const cont = encodeFrame({
                opcode: OP.CONT,
                fin: false,
                payload: Buffer.concat([Buffer.from([0x61, 0x62, 0xc0, 0xaf, 0x63]), Buffer.alloc(100, 'x')]),
            });
            // the continuation's header and its first 5 bytes: C0 AF (overlong "/"); 100 bytes of it still to come
            await expectPromptClose(raw, first, cont.subarray(0, 2 + 4 + 5));
        });

        test('a character split between two pieces of one frame is accepted', async (t) => {
            const raw = await open(t);
            raw.socket.setNoDelay(true);
            const bytes = encodeFrame({ opcode: OP.TEXT, payload: '{"type":"dialing","receiverUserId":"中😀","id":"split"}' });
            const cut = 2 + 4 + Buffer.from('{"type":"dialing","receiverUserId":"中').length + 2; // inside the emoji
            raw.sendRaw(bytes.subarray(0, cut));
            await delay(100);
            raw.sendRaw(bytes.subarray(cut));
            const text = await rawNextText(raw);
            assert.equal(JSON.parse(text).code, 'not_registered');
            assert.equal(JSON.parse(text).id, 'split');
        });

        test('a close reason that is not UTF-8 -> 1007', async (t) => {
            const raw = await open(t);
            raw.sendClose(1000, Buffer.from([0xff, 0xfe]));
            await expectClose(raw, 1007);
        });
    });

    describe('valid fragmentation is accepted', () => {
        test('a multibyte char split across fragments (1|3 and 2|2 bytes of an emoji)', async (t) => {
            const raw = await open(t);
            const userId = '用户😀x😀';
            const msg = Buffer.from(JSON.stringify({ type: 'create_connect', sponsorUserId: userId, id: 'frag' }));
            const first = msg.indexOf(Buffer.from('😀'));
            const second = msg.indexOf(Buffer.from('😀'), first + 4);
            const cuts = [0, first + 1, second + 2, msg.length];
            for (let i = 0; i < 3; i++) {
                raw.send({
                    opcode: i === 0 ? OP.TEXT : OP.CONT,
                    fin: i === 2,
                    payload: msg.subarray(cuts[i], cuts[i + 1]),
                });
            }
            assert.equal(await rawNextText(raw), createConnectOkText('frag', userId));
            // and a plain message afterwards
            raw.sendText('{"type":"dialing","receiverUserId":"nobody-conf","id":2}');
            assert.equal(await rawNextText(raw), dialingFailText('peer_offline', 2));
        });

        test('a message in 40 fragments, and empty fragments, are reassembled', async (t) => {
            const raw = await open(t);
            raw.sendFragmented(OP.TEXT, PROBE, 40);
            await expectAlive(raw);
            raw.send({ opcode: OP.TEXT, fin: false, payload: '' });
            raw.send({ opcode: OP.CONT, fin: false, payload: PROBE });
            raw.send({ opcode: OP.CONT, fin: true, payload: '' });
            const text = await rawNextText(raw);
            assert.equal(JSON.parse(text).code, 'not_registered');
        });

        test('a ping between two fragments is answered and the message still arrives', async (t) => {
            const raw = await open(t);
            const half = PROBE.length >> 1;
            raw.send({ opcode: OP.TEXT, fin: false, payload: PROBE.slice(0, half) });
            raw.sendPing(Buffer.from('mid'));
            raw.send({ opcode: OP.CONT, fin: true, payload: PROBE.slice(half) });
            const got = [await raw.nextFrame(), await raw.nextFrame()];
            const pong = got.find((f) => f.opcode === OP.PONG);
            const text = got.find((f) => f.opcode === OP.TEXT);
            assert.ok(pong, `a pong among ${got.map((f) => f.opcode)}`);
            assert.equal(pong.payload.toString(), 'mid');
            assert.ok(text, 'the reassembled message was answered');
            assert.equal(JSON.parse(text.payload.toString()).code, 'not_registered');
        });

        test('a frame delivered one byte per write is handled', async (t) => {
            const raw = await open(t);
            for (const byte of encodeFrame({ opcode: OP.TEXT, payload: PROBE })) {
                raw.sendRaw(Buffer.from([byte]));
                await new Promise((r) => setImmediate(r)); // separate writes, not coalesced
            }
            const text = await rawNextText(raw);
            assert.equal(JSON.parse(text).code, 'not_registered');
        });
    });

    describe('protocol violations -> 1002', () => {
        const cases = [
            ['reserved data opcode 0x3', { opcode: 0x3, payload: 'x' }],
            ['reserved data opcode 0x7', { opcode: 0x7, payload: '' }],
            ['reserved control opcode 0xB', { opcode: 0xb, payload: '' }],
            ['RSV1 set (no extension negotiated)', { opcode: OP.TEXT, payload: PROBE, rsv1: true }],
            ['RSV2 set', { opcode: OP.TEXT, payload: PROBE, rsv2: true }],
            ['RSV3 set', { opcode: OP.TEXT, payload: PROBE, rsv3: true }],
            ['RSV1 on a ping', { opcode: OP.PING, payload: 'x', rsv1: true }],
            ['unmasked text frame', { opcode: OP.TEXT, payload: PROBE, mask: false }],
            ['unmasked ping', { opcode: OP.PING, payload: 'x', mask: false }],
            ['fragmented ping (FIN=0)', { opcode: OP.PING, payload: 'x', fin: false }],
            ['ping with a 126-byte payload', { opcode: OP.PING, payload: Buffer.alloc(126, 0x61) }],
            [
                'close with a 126-byte payload',
                { opcode: OP.CLOSE, payload: Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.alloc(124, 0x61)]) },
            ],
            ['continuation frame with no message started', { opcode: OP.CONT, payload: 'x' }],
            ['close frame with a 1-byte payload', { opcode: OP.CLOSE, payload: Buffer.from([0x03]) }],
        ];
        for (const [name, frame] of cases) {
            test(name, async (t) => {
                const raw = await open(t);
                raw.send(frame);
                await expectClose(raw, 1002);
            });
        }

        test('a new text frame while a fragmented message is open', async (t) => {
            const raw = await open(t);
            raw.send({ opcode: OP.TEXT, fin: false, payload: '{"type":' });
            raw.send({ opcode: OP.TEXT, fin: true, payload: PROBE });
            await expectClose(raw, 1002);
        });

        for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) {
            test(`close with the invalid code ${code}`, async (t) => {
                const raw = await open(t);
                raw.sendClose(code);
                await expectClose(raw, 1002);
            });
        }
    });

    describe('ping, pong and the closing handshake', () => {
        test('a ping gets a pong with the same payload (empty, text, 125 bytes, binary)', async (t) => {
            const raw = await open(t);
            const payloads = [
                Buffer.alloc(0),
                Buffer.from('hello'),
                Buffer.alloc(125, 0x5a),
                Buffer.from([0, 0xff, 0x80, 1]),
            ];
            for (const p of payloads) {
                raw.sendPing(p);
                const f = await raw.nextFrame();
                assert.equal(f.opcode, OP.PONG);
                assert.equal(f.fin, true);
                assert.equal(f.masked, false, 'server frames are not masked');
                assert.deepEqual(f.payload, p);
            }
            await expectAlive(raw);
        });

        test('an unsolicited pong is ignored', async (t) => {
            const raw = await open(t);
            raw.sendPong(Buffer.from('unsolicited'));
            await expectAlive(raw);
        });

        test('close 1000 from the client is echoed with 1000 and the TCP connection ends', async (t) => {
            const raw = await open(t);
            raw.sendClose(1000, 'bye');
            const res = await raw.waitClose(5000, { reply: false });
            assert.equal(res.closeFrame, true);
            assert.equal(res.code, 1000);
            await withTimeout(raw.tcpClosed, 5000, 'TCP end after the closing handshake');
        });

        test('a close without a status is answered with a close and the TCP connection ends', async (t) => {
            const raw = await open(t);
            raw.sendClose(null);
            const res = await raw.waitClose(5000, { reply: false });
            assert.equal(res.closeFrame, true);
            assert.ok([1000, 1005].includes(res.code), `close code ${res.code} (empty close or 1000)`);
            await withTimeout(raw.tcpClosed, 5000, 'TCP end');
        });

        for (const code of [1001, 3000, 4999]) {
            test(`valid close code ${code} is accepted and echoed`, async (t) => {
                const raw = await open(t);
                raw.sendClose(code);
                const res = await raw.waitClose(5000, { reply: false });
                assert.equal(res.closeFrame, true);
                assert.equal(res.code, code);
                await withTimeout(raw.tcpClosed, 5000, 'TCP end');
            });
        }

        test("a client that never answers the server's close is still disconnected", async (t) => {
            const raw = await open(t);
            raw.sendBinary(Buffer.from('x')); // server starts the close (1003)
            const res = await raw.waitClose(5000, { reply: false });
            assert.equal(res.code, 1003);
            await withTimeout(raw.tcpClosed, 10000, 'the server to drop a client that never echoes its close');
        });
    });

    describe('message size -> 1009', () => {
        test(`one frame of max-message-size + 1 (${MAX_MESSAGE + 1}) bytes`, async (t) => {
            const raw = await open(t);
            raw.sendText('x'.repeat(MAX_MESSAGE + 1));
            await expectClose(raw, 1009);
        });

        test('small fragments adding up to more than max-message-size', async (t) => {
            const raw = await open(t);
            const n = Math.ceil((MAX_MESSAGE + 1) / 500);
            for (let i = 0; i < n; i++) {
                raw.send({ opcode: i === 0 ? OP.TEXT : OP.CONT, fin: i === n - 1, payload: 'y'.repeat(500) });
            }
            await expectClose(raw, 1009);
        });

        test('a frame header announcing 2^40 bytes is refused at once', async (t) => {
            const raw = await open(t);
            raw.sendRaw(encodeFrame({ opcode: OP.TEXT, payload: 'x', declaredLength: 2 ** 40 }));
            await expectClose(raw, 1009);
        });

        test('a 64 KiB frame written in one go', async (t) => {
            const raw = await open(t);
            raw.sendRaw(encodeFrame({ opcode: OP.TEXT, payload: Buffer.alloc(64 * 1024, 0x20) }));
            await expectClose(raw, 1009);
        });

        test(`exactly max-message-size (${MAX_MESSAGE}) bytes in fragments is accepted`, async (t) => {
            const raw = await open(t);
            const head = '{"type":"dialing","receiverUserId":"nobody","id":"size","field1":"';
            const msg = `${head}${'z'.repeat(MAX_MESSAGE - head.length - 2)}"}`;
            assert.equal(Buffer.byteLength(msg), MAX_MESSAGE);
            raw.sendFragmented(OP.TEXT, msg, 7);
            const text = await rawNextText(raw);
            assert.equal(JSON.parse(text).code, 'not_registered');
        });
    });

    test('the server survived all of the above', () => {
        assert.ok(srv.alive(), `server exited; stderr:\n${srv.stderr()}`);
    });
});
