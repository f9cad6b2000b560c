// permessage-deflate (RFC 7692; issue 14 item 5) against the real server: `signaling.compression`
// on the signaling handler and on the echo endpoint, with Node `ws` (perMessageDeflate) as the
// client and a raw socket (lib/rawws.mjs, with Node's zlib) to see RSV1 and send what `ws` will
// not: what is negotiated (the exact answer; offers refused; OFF answers no extension), signaling
// messages and 60 KB ones both ways, small messages left uncompressed (compression-min-size),
// a deflate bomb (1009), text that is not UTF-8 once inflated (1007), data that is not deflate
// (1007: RFC 6455 7.4.1 "data within a message that was not consistent with the type of the
// message", as `ws` does), RSV1 where it may not be (1002), and a client that takes context over
// against the answer (1007). The RFC 7692 cases of the Autobahn suite (12.x, 13.x) are in
// ws-compression-conformance.test.mjs.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';

import { connectRaw, encodeFrame, httpUpgrade, OP } from '../lib/rawws.mjs';
import { runConfigTest, startServer } from '../lib/server.mjs';
import { calledText, createConnectOkText, dialingFailText, dialingOkText, nextText, request } from '../lib/sigclient.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';
import { closeAfter, connect, nextRaw, waitClose } from '../lib/wsclient.mjs';

const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
const OFFER = 'permessage-deflate; client_max_window_bits'; // what browsers and `ws` send
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const MAX = 65536; // signaling.max-message-size's default, on /WsService
const ECHO_MAX = 262144;

const config = ({ port }) => `
listen: {host: 127.0.0.1, port: ${port}}
signaling.rate-limit: 0
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
        signaling.compression: ON
      /plain:
        signaling: ON
      /echo:
        websocket.echo: ON
        signaling.compression: ON
        signaling.max-message-size: ${ECHO_MAX}
      /echo-plain:
        websocket.echo: ON
      /echo-min:
        websocket.echo: ON
        signaling.compression: ON
        signaling.compression-min-size: 1000
      /echo-big:
        websocket.echo: ON
        signaling.compression: ON
        signaling.max-message-size: 4194304
        signaling.max-queued-bytes: 8388608
`;

/** A permessage-deflate payload as a sender makes it (RFC 7692 7.2.1): sync flush, tail removed. */
function deflate(data, options = {}) {
    const z = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH, ...options });
    assert.deepEqual(z.subarray(-4), TAIL, 'a sync flush ends with 00 00 ff ff');
    return z.subarray(0, -4);
}

/** What a receiver does (7.2.2): tail appended, inflated. */
function inflate(payload) {
    return zlib.inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

/** A frame's message: inflated when RSV1 says it is compressed. */
const messageOf = (f) => (f.rsv1 ? inflate(f.payload) : f.payload);

/** SDP-like text of `n` bytes (ASCII, what a WebRTC offer looks like to a compressor). */
function sdpText(n) {
    const lines = [];
    for (let i = 0, len = 0; len < n; i++) {
        const h = crypto.createHash('sha256').update(String(i)).digest('hex');
        const two =
            `a=candidate:${h.slice(0, 10)} 1 udp 2122260223 192.168.${i % 256}.${(i * 7) % 256} ${40000 + i} typ host\\r\\n` +
            `a=ssrc:${parseInt(h.slice(0, 8), 16)} cname:${h.slice(8, 24)}\\r\\na=rtpmap:${96 + (i % 30)} VP8/90000\\r\\n`;
        lines.push(two);
        len += two.length;
    }
    return lines.join('').slice(0, n);
}

/** Reads the raw client's frames to the close; asserts close `code` arrives and then the TCP end. */
async function expectServerClose(raw, code, what) {
    const res = await raw.waitClose(5000);
    assert.equal(res.closeFrame, true, `${what}: expected a close frame ${code}, the TCP connection just ended`);
    assert.equal(res.code, code, `${what}: close code (reason: ${res.reason})`);
    await withTimeout(raw.tcpClosed, 5000, `${what}: the server to close the TCP connection after the close frame`);
    return res;
}

/** A raw client that offered `offer` (null: none) on `path`. */
function rawWith(port, path, offer = OFFER) {
    return connectRaw({ port, path, headers: offer === null ? {} : { 'Sec-WebSocket-Extensions': offer } });
}

/** A `ws` client with permessage-deflate (every message compressed unless `threshold` says otherwise). */
function wsDeflate(url, perMessageDeflate = { threshold: 0 }) {
    return connect(url, { perMessageDeflate });
}

/** create_connect on a `ws` client; the answer checked byte for byte. */
async function registerOn(ws, userId) {
    assert.equal(await request(ws, { type: 'create_connect', sponsorUserId: userId, id: 'reg' }), createConnectOkText('reg', userId));
    return ws;
}

/** The next frame of a raw client that is not a ping. */
async function nextDataFrame(raw) {
    for (;;) {
        const f = await raw.nextFrame(5000);
        if (f.opcode !== OP.PING) return f;
    }
}

describe('permessage-deflate', { timeout: 60000 }, () => {
    let srv;
    let port;
    before(async () => {
        srv = await startServer({ threads: 1, config });
        port = srv.port;
    });
    after(() => srv?.stop());

    describe('negotiation', () => {
        test('an offer gets the answer without context takeover both ways', async () => {
            for (const path of ['/WsService', '/echo']) {
                for (const offer of [OFFER, 'permessage-deflate', 'permessage-deflate; client_no_context_takeover; server_no_context_takeover']) {
                    const res = await httpUpgrade({ port, path, headers: { 'Sec-WebSocket-Extensions': offer } });
                    res.socket.destroy();
                    assert.equal(res.status, 101, `${path} [${offer}]`);
                    assert.equal(res.headers['sec-websocket-extensions'], ANSWER, `${path} [${offer}]: the answer`);
                }
            }
        });

        test('server_max_window_bits is answered with the value offered, 9 to 15', async () => {
            for (const bits of [9, 12, 15]) {
                const offer = `permessage-deflate; server_max_window_bits=${bits}; client_max_window_bits`;
                const res = await httpUpgrade({ port, path: '/echo', headers: { 'Sec-WebSocket-Extensions': offer } });
                res.socket.destroy();
                assert.equal(res.headers['sec-websocket-extensions'], `${ANSWER}; server_max_window_bits=${bits}`);
            }
        });

        test('an offer we refuse is skipped: the next is taken, or the connection is uncompressed', async () => {
            const cases = [
                // [offer lines, the answer (undefined: no extension)]
                [['permessage-deflate; server_max_window_bits=8'], undefined], // zlib has no 256-byte raw window
                [['permessage-deflate; server_max_window_bits=8, permessage-deflate'], ANSWER],
                [['permessage-deflate; mystery_param'], undefined],
                [['permessage-deflate; server_no_context_takeover; server_no_context_takeover'], undefined],
                [['permessage-deflate; client_max_window_bits=16'], undefined],
                [['permessage-deflate; server_max_window_bits'], undefined],
                [['permessage-deflate; client_no_context_takeover=1, permessage-deflate; server_max_window_bits="10"'],
                    `${ANSWER}; server_max_window_bits=10`],
                [['x-webkit-deflate-frame'], undefined],
                [['x-webkit-deflate-frame', 'permessage-deflate; client_max_window_bits'], ANSWER], // two header lines
                [['permessage-deflate; server_max_window_bits=8', 'permessage-deflate; server_max_window_bits=11'],
                    `${ANSWER}; server_max_window_bits=11`],
                [['permessage-deflate; a="x,y"; b, permessage-deflate'], ANSWER],
                [['permessage-deflate;;'], undefined],
            ];
            for (const [lines, answer] of cases) {
                const res = await httpUpgrade({ port, path: '/echo', rawHeaders: lines.map((l) => ['Sec-WebSocket-Extensions', l]) });
                res.socket.destroy();
                assert.equal(res.status, 101, `${JSON.stringify(lines)}: still upgraded`);
                assert.equal(res.headers['sec-websocket-extensions'], answer, `${JSON.stringify(lines)}: the answer`);
            }
        });

        test('a refused offer gives a working uncompressed connection (and RSV1 is then 1002)', async (t) => {
            const ws = await wsDeflate(`ws://127.0.0.1:${port}/echo`, { serverMaxWindowBits: 8, threshold: 0 });
            closeAfter(t).push(ws);
            assert.equal(ws.extensions, '', 'nothing negotiated');
            ws.send('x'.repeat(5000));
            assert.equal((await nextRaw(ws)).data.toString(), 'x'.repeat(5000));

            const raw = await rawWith(port, '/echo', 'permessage-deflate; mystery_param');
            assert.equal(raw.handshake.headers['sec-websocket-extensions'], undefined);
            raw.send({ opcode: OP.TEXT, payload: deflate(Buffer.from('hello')), rsv1: true });
            await expectServerClose(raw, 1002, 'RSV1 after a refused offer');
        });

        test('OFF answers without the extension even when it is offered, on signaling and echo paths alike', async (t) => {
            for (const path of ['/plain', '/echo-plain']) {
                const res = await httpUpgrade({ port, path, headers: { 'Sec-WebSocket-Extensions': OFFER } });
                res.socket.destroy();
                assert.equal(res.status, 101);
                assert.equal(res.headers['sec-websocket-extensions'], undefined, `${path}: no extension`);
                const ws = await wsDeflate(`ws://127.0.0.1:${port}${path}`);
                closeAfter(t).push(ws);
                assert.equal(ws.extensions, '', `${path}: ws negotiated nothing`);
            }
            const ws = await wsDeflate(`ws://127.0.0.1:${port}/plain`);
            closeAfter(t).push(ws);
            await registerOn(ws, 'off-user');
        });

        test('RSV1 without negotiation closes with 1002 (OFF, or ON without an offer)', async () => {
            for (const [path, offer] of [['/plain', OFFER], ['/echo-plain', OFFER], ['/WsService', null], ['/echo', null]]) {
                const raw = await rawWith(port, path, offer);
                raw.send({ opcode: OP.TEXT, payload: deflate(Buffer.from('{"type":"x"}')), rsv1: true });
                await expectServerClose(raw, 1002, `${path}, offer ${offer}`);
            }
        });

        test('the echo endpoint follows the setting', async (t) => {
            const on = await wsDeflate(`ws://127.0.0.1:${port}/echo`);
            const off = await wsDeflate(`ws://127.0.0.1:${port}/echo-plain`);
            closeAfter(t).push(on, off);
            assert.equal(on.extensions, 'permessage-deflate');
            assert.equal(off.extensions, '');
        });
    });

    describe('signaling with compression ON', () => {
        test('registering, dialing and called with ws (perMessageDeflate, threshold 0)', async (t) => {
            const url = `ws://127.0.0.1:${port}/WsService`;
            const a = await registerOn(await wsDeflate(url), 'z-a');
            const b = await registerOn(await wsDeflate(url), 'z-b');
            closeAfter(t).push(a, b);
            assert.equal(a.extensions, 'permessage-deflate');
            const reply = await request(a, { type: 'dialing', receiverUserId: 'z-b', field1: 'ring', id: 1 });
            assert.equal(reply, dialingOkText(1, 'z-b', 1));
            assert.equal(await nextText(b), calledText({ sponsorUserId: 'z-a', field1: 'ring' }));
            assert.equal(await request(a, { type: 'dialing', receiverUserId: 'nobody', id: 2 }), dialingFailText('peer_offline', 2));
        });

        test('60 KB messages both ways, byte for byte', async (t) => {
            const url = `ws://127.0.0.1:${port}/WsService`;
            const a = await registerOn(await wsDeflate(url), 'big-a');
            const b = await registerOn(await wsDeflate(url), 'big-b');
            closeAfter(t).push(a, b);
            const offer = sdpText(60000);
            const answer = sdpText(61000).slice(1000);
            assert.equal(await request(a, { type: 'dialing', receiverUserId: 'big-b', field1: offer, id: 'o' }), dialingOkText('o', 'big-b', 1));
            assert.equal(await nextText(b), calledText({ sponsorUserId: 'big-a', field1: offer }));
            assert.equal(await request(b, { type: 'dialing', receiverUserId: 'big-a', field2: answer, id: 'a' }), dialingOkText('a', 'big-a', 1));
            assert.equal(await nextText(a), calledText({ sponsorUserId: 'big-b', field2: answer }));
        });

        test('what the server sends: below compression-min-size plain, at or above it compressed (RSV1), and it inflates exactly', async (t) => {
            const rx = await rawWith(port, '/WsService');
            const tx = await rawWith(port, '/WsService');
            t.after(() => {
                rx.destroy();
                tx.destroy();
            });
            assert.equal(rx.handshake.headers['sec-websocket-extensions'], ANSWER);
            for (const [raw, user] of [[rx, 'raw-rx'], [tx, 'raw-tx']]) {
                raw.sendText(JSON.stringify({ type: 'create_connect', sponsorUserId: user, id: 'reg' }));
                const f = await nextDataFrame(raw);
                assert.equal(f.rsv1, false, 'create_connect_response (under 256 bytes): uncompressed');
                assert.equal(f.payload.toString(), createConnectOkText('reg', user));
            }
            const field1 = sdpText(2000);
            // the client's message compressed, the server's answer not (small), the push compressed
            tx.send({ opcode: OP.TEXT, rsv1: true, payload: deflate(Buffer.from(JSON.stringify({ type: 'dialing', receiverUserId: 'raw-rx', field1, id: 9 }))) });
            const answer = await nextDataFrame(tx);
            assert.equal(answer.rsv1, false, 'dialing_response: uncompressed');
            assert.equal(answer.payload.toString(), dialingOkText(9, 'raw-rx', 1));
            const push = await nextDataFrame(rx);
            assert.equal(push.rsv1, true, 'a 2 KB called: compressed');
            assert.ok(push.payload.length < 2000, `compressed to ${push.payload.length} bytes`);
            assert.equal(messageOf(push).toString(), calledText({ sponsorUserId: 'raw-tx', field1 }));
            // a client may send uncompressed messages on a compressed connection
            tx.sendText(JSON.stringify({ type: 'dialing', receiverUserId: 'raw-rx', field1: 'plain', id: 10 }));
            assert.equal(messageOf(await nextDataFrame(tx)).toString(), dialingOkText(10, 'raw-rx', 1));
            assert.equal(messageOf(await nextDataFrame(rx)).toString(), calledText({ sponsorUserId: 'raw-tx', field1: 'plain' }));
        });

        test('max-message-size applies to the inflated message: exactly 65536 passes, 65537 closes with 1009', async () => {
            const head = '{"type":"dialing","receiverUserId":"nobody","id":1,"field1":"';
            const ofSize = (n) => Buffer.from(`${head}${'a'.repeat(n - head.length - 2)}"}`);
            const raw = await rawWith(port, '/WsService');
            raw.sendText(JSON.stringify({ type: 'create_connect', sponsorUserId: 'max-size', id: 'reg' }));
            assert.equal(messageOf(await nextDataFrame(raw)).toString(), createConnectOkText('reg', 'max-size'));
            raw.send({ opcode: OP.TEXT, rsv1: true, payload: deflate(ofSize(MAX)) });
            assert.equal(messageOf(await nextDataFrame(raw)).toString(), dialingFailText('peer_offline', 1));
            raw.send({ opcode: OP.TEXT, rsv1: true, payload: deflate(ofSize(MAX + 1)) });
            await expectServerClose(raw, 1009, 'inflated past max-message-size');
        });
    });

    describe('what closes a compressed connection', () => {
        test('a deflate bomb (a small frame that inflates past max-message-size) closes with 1009', async () => {
            const bomb = deflate(Buffer.alloc(50 * 1024 * 1024, 'a'), { level: 9 }); // 50 MB in about 50 KB
            assert.ok(bomb.length < ECHO_MAX, `the bomb is ${bomb.length} bytes on the wire`);
            const raw = await rawWith(port, '/echo');
            raw.send({ opcode: OP.TEXT, rsv1: true, payload: bomb });
            const res = await expectServerClose(raw, 1009, 'bomb in one frame');
            assert.equal(res.frames.length, 0, 'nothing echoed');
        });

        test('a fragmented bomb: RSV1 on the first fragment only, closes with 1009', async () => {
            const bomb = deflate(Buffer.alloc(20 * 1024 * 1024), { level: 9 });
            const raw = await rawWith(port, '/WsService');
            const parts = 8;
            const size = Math.ceil(bomb.length / parts);
            for (let i = 0; i < parts; i++) {
                raw.send({ opcode: i === 0 ? OP.TEXT : OP.CONT, rsv1: i === 0, fin: i === parts - 1, payload: bomb.subarray(i * size, (i + 1) * size) });
            }
            await expectServerClose(raw, 1009, 'fragmented bomb');
        });

        test('the server stays well: a connection made after the bombs works', async (t) => {
            const ws = await wsDeflate(`ws://127.0.0.1:${port}/echo`);
            closeAfter(t).push(ws);
            ws.send('after the bombs');
            assert.equal((await nextRaw(ws)).data.toString(), 'after the bombs');
        });

        test('text that is not UTF-8 once inflated closes with 1007; binary with the same bytes is echoed', async () => {
            let raw = await rawWith(port, '/echo');
            raw.send({ opcode: OP.TEXT, rsv1: true, payload: deflate(Buffer.from([0x68, 0x69, 0xc3, 0x28])) });
            await expectServerClose(raw, 1007, 'bad UTF-8 after inflate');
            raw = await rawWith(port, '/echo');
            raw.send({ opcode: OP.BINARY, rsv1: true, payload: deflate(Buffer.from([0x68, 0x69, 0xc3, 0x28])) });
            assert.deepEqual(messageOf(await nextDataFrame(raw)), Buffer.from([0x68, 0x69, 0xc3, 0x28]));
            raw.destroy();
        });

        test('data that is not deflate closes with 1007: a reserved block type, a message cut inside a block', async () => {
            const good = deflate(Buffer.from(sdpText(3000)));
            for (const [what, payload] of [
                ['reserved block type', Buffer.from([0x06, 0x00, 0x11])],
                ['cut inside a block', good.subarray(0, good.length - 9)],
                ['random bytes', crypto.randomBytes(300).fill(0xff, 0, 1)],
            ]) {
                const raw = await rawWith(port, '/echo');
                raw.send({ opcode: OP.TEXT, rsv1: true, payload });
                await expectServerClose(raw, 1007, what);
            }
        });

        test('RSV1 on a continuation frame or a control frame closes with 1002', async () => {
            let raw = await rawWith(port, '/echo');
            const z = deflate(Buffer.from('hello hello hello'));
            raw.send({ opcode: OP.TEXT, rsv1: true, fin: false, payload: z.subarray(0, 4) });
            raw.send({ opcode: OP.CONT, rsv1: true, fin: true, payload: z.subarray(4) });
            await expectServerClose(raw, 1002, 'RSV1 on a continuation');
            raw = await rawWith(port, '/echo');
            raw.send({ opcode: OP.PING, rsv1: true, payload: Buffer.from('p') });
            await expectServerClose(raw, 1002, 'RSV1 on a ping');
            raw = await rawWith(port, '/echo');
            raw.send({ opcode: OP.TEXT, rsv2: true, payload: Buffer.from('x') });
            await expectServerClose(raw, 1002, 'RSV2, which no extension of ours defines');
        });

        test('a client that keeps its context against client_no_context_takeover fails with 1007', async () => {
            const raw = await rawWith(port, '/echo');
            const text = Buffer.from(sdpText(4000));
            // one deflate stream for two messages: the second refers back into the first
            const d = zlib.createDeflateRaw();
            const flush = (buf) =>
                new Promise((resolve) => {
                    const chunks = [];
                    const onData = (c) => chunks.push(c);
                    d.on('data', onData);
                    d.write(buf);
                    d.flush(zlib.constants.Z_SYNC_FLUSH, () => {
                        d.off('data', onData);
                        resolve(Buffer.concat(chunks).subarray(0, -4));
                    });
                });
            const first = await flush(text);
            const second = await flush(text);
            d.close();
            assert.ok(second.length < 100, 'the second message is mostly a reference to the first');
            raw.send({ opcode: OP.TEXT, rsv1: true, payload: first });
            assert.deepEqual(messageOf(await nextDataFrame(raw)), text, 'the first message is fine');
            raw.send({ opcode: OP.TEXT, rsv1: true, payload: second });
            await expectServerClose(raw, 1007, 'a reference to the previous message');
        });
    });

    describe('compression-min-size and incompressible messages (echo)', () => {
        test('shorter than compression-min-size: plain; at it: compressed; not made shorter: plain', async (t) => {
            const raw = await rawWith(port, '/echo-min');
            t.after(() => raw.destroy());
            raw.sendText('a'.repeat(999));
            let f = await nextDataFrame(raw);
            assert.equal(f.rsv1, false, '999 bytes: uncompressed');
            assert.equal(f.payload.toString(), 'a'.repeat(999));
            raw.sendText('a'.repeat(1000));
            f = await nextDataFrame(raw);
            assert.equal(f.rsv1, true, '1000 bytes: compressed');
            assert.ok(f.payload.length < 50, `to ${f.payload.length} bytes`);
            assert.equal(messageOf(f).toString(), 'a'.repeat(1000));
            const noise = crypto.randomBytes(5000);
            raw.sendBinary(noise);
            f = await nextDataFrame(raw);
            assert.equal(f.rsv1, false, 'random bytes do not compress: sent as they are');
            assert.deepEqual(f.payload, noise);
        });

        test('messages past 1 MiB both ways (the thread\'s buffers grow for them and are let go after), then small ones', async (t) => {
            const ws = await wsDeflate(`ws://127.0.0.1:${port}/echo-big`);
            closeAfter(t).push(ws);
            for (const n of [3 * 1024 * 1024, 1000, 2 * 1024 * 1024 + 1, 300]) {
                const text = sdpText(n);
                ws.send(text);
                const back = await nextRaw(ws, 20000);
                assert.equal(back.data.length, n);
                assert.equal(back.data.toString(), text, `${n} bytes`);
            }
        });

        test('the default compression-min-size is 256', async (t) => {
            const raw = await rawWith(port, '/echo');
            t.after(() => raw.destroy());
            raw.sendText('b'.repeat(255));
            assert.equal((await nextDataFrame(raw)).rsv1, false, '255 bytes: uncompressed');
            raw.sendText('b'.repeat(256));
            const f = await nextDataFrame(raw);
            assert.equal(f.rsv1, true, '256 bytes: compressed');
            assert.equal(messageOf(f).toString(), 'b'.repeat(256));
        });

        test('a compressed frame has the shortest length form of its compressed size (RFC 6455 5.2)', async () => {
            // [message length, the length byte of the frame that comes back]: 16-bit or 64-bit plain, shorter compressed
            for (const [n, marker] of [[5000, 'short'], [70000, 126]]) {
                const res = await httpUpgrade({ port, path: '/echo', headers: { 'Sec-WebSocket-Extensions': OFFER } });
                const { socket } = res;
                let bytes = res.rest;
                socket.on('data', (c) => (bytes = Buffer.concat([bytes, c])));
                socket.resume();
                socket.write(encodeFrame({ opcode: OP.TEXT, payload: Buffer.from('c'.repeat(n)) }));
                await waitUntil(() => bytes.length >= 2 && bytes.length >= 2 + (bytes[1] === 126 ? 2 + bytes.readUInt16BE(2) : bytes[1]), {
                    timeout: 5000,
                    what: `the echo of ${n} bytes`,
                });
                socket.destroy();
                assert.equal(bytes[0], 0x80 | 0x40 | OP.TEXT, `${n}: FIN, RSV1, text`);
                const len = bytes[1] === 126 ? bytes.readUInt16BE(2) : bytes[1];
                if (marker === 'short') assert.ok(bytes[1] < 126, `${n}: compressed to ${len} bytes, in the 7-bit form`);
                else assert.ok(bytes[1] === 126 && len >= 126, `${n}: compressed to ${len} bytes, in the 16-bit form`);
                assert.equal(inflate(bytes.subarray(bytes[1] === 126 ? 4 : 2, (bytes[1] === 126 ? 4 : 2) + len)).toString(), 'c'.repeat(n));
            }
        });
    });

    describe('configuration', () => {
        test('-t accepts the directives at every level and refuses bad values with FILE:LINE', async () => {
            const good = ({ port: p }) => `
listen: {host: 127.0.0.1, port: ${p}}
signaling.compression: ON
hosts:
  default:
    signaling.compression-min-size: 0
    paths:
      /WsService:
        signaling: ON
        signaling.compression: OFF
`;
            const r = await runConfigTest(good);
            assert.equal(r.code, 0, r.stderr);
            for (const [line, msg] of [
                ['signaling.compression: yes', /signaling\.compression/],
                ['signaling.compression-min-size: -1', /whole number from 0 to 16777216/],
                ['signaling.compression-min-size: 16777217', /whole number from 0 to 16777216/],
            ]) {
                const bad = ({ port: p }) => `listen: {host: 127.0.0.1, port: ${p}}
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
        ${line}
`;
                const res = await runConfigTest(bad);
                assert.equal(res.code, 1, `${line}: refused`);
                assert.match(res.stderr, /h2o\.conf:7: /, `${line}: with its line`);
                assert.match(res.stderr, msg, `${line}: the message`);
            }
        });
    });

    test('the server exits cleanly', async () => {
        const ws = await wsDeflate(`ws://127.0.0.1:${port}/echo`);
        ws.send('last');
        await nextRaw(ws);
        const done = waitClose(ws);
        const r = await srv.stop();
        assert.equal(r.code, 0, `exit: ${JSON.stringify(r)}`);
        assert.equal((await done).code, 1001);
    });
});
