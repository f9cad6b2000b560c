// `websocket.echo: ON` (issue 4): a diagnostic endpoint that sends every message back, text
// as text and binary as binary, through the same WebSocket layer and limits as signaling
// (signaling.max-message-size: 1024 there -> a 2 KB message gets close 1009).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { httpRequest } from '../lib/http.mjs';
import { connectRaw, OP } from '../lib/rawws.mjs';
import { runConfigTest, startServer } from '../lib/server.mjs';
import { calledText, dial, dialingOkText, nextText, register } from '../lib/sigclient.mjs';
import { withTimeout } from '../lib/wait.mjs';
import { closeAll, connect, nextRaw, ping, waitClose } from '../lib/wsclient.mjs';

const MAX = 1024;

const config = ({ port }) => `
listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /echo:
        websocket.echo: ON
        signaling.max-message-size: ${MAX}
      /WsService:
        signaling: ON
`;

/** Reads the raw client's frames to the close; asserts close `code` arrives and then the TCP end. */
async function expectServerClose(raw, code, what) {
    const res = await raw.waitClose(5000);
    assert.equal(res.closeFrame, true, `${what}: expected a close frame ${code}, the TCP connection just ended`);
    assert.equal(res.code, code, `${what}: close code`);
    await withTimeout(raw.tcpClosed, 5000, `${what}: the server to close the TCP connection after the close frame`);
}

describe('websocket.echo: ON', { timeout: 30000 }, () => {
    let srv;
    let echoUrl;
    before(async () => {
        srv = await startServer({ threads: 1, config });
        echoUrl = `ws://127.0.0.1:${srv.port}/echo`;
    });
    after(() => srv?.stop());

    test('-t accepts websocket.echo', async () => {
        const r = await runConfigTest(config);
        assert.equal(r.code, 0, r.stderr);
    });

    test('text comes back as text, byte for byte (any Unicode, not JSON)', async (t) => {
        const ws = await connect(echoUrl);
        t.after(() => closeAll([ws]));
        for (const text of ['hello', '张三 👋 "quoted" \\ \n\t', 'not json {', '']) {
            ws.send(text);
            const { data, isBinary } = await nextRaw(ws);
            assert.equal(isBinary, false, `${JSON.stringify(text)} came back as binary`);
            assert.equal(data.toString('utf8'), text);
        }
    });

    test('binary comes back as binary, byte for byte (no close 1003 here)', async (t) => {
        const ws = await connect(echoUrl);
        t.after(() => closeAll([ws]));
        const payloads = [Buffer.from([0, 1, 2, 255]), Buffer.from([0xc3, 0x28]), Buffer.alloc(0), Buffer.alloc(MAX, 7)];
        for (const buf of payloads) {
            ws.send(buf, { binary: true });
            const { data, isBinary } = await nextRaw(ws);
            assert.equal(isBinary, true, `a binary message of ${buf.length} bytes came back as text`);
            assert.deepEqual(data, buf);
        }
    });

    test('a signaling message is echoed, not interpreted', async (t) => {
        const ws = await connect(echoUrl);
        t.after(() => closeAll([ws]));
        const msg = JSON.stringify({ type: 'create_connect', sponsorUserId: 'echo-u', id: 1 });
        ws.send(msg);
        assert.equal(await nextText(ws), msg);
    });

    test('200 messages at once come back complete and in order', async (t) => {
        const ws = await connect(echoUrl);
        t.after(() => closeAll([ws]));
        for (let i = 0; i < 200; i++) {
            if (i % 2) ws.send(Buffer.from(`bin-${i}`), { binary: true });
            else ws.send(`text-${i}`);
        }
        for (let i = 0; i < 200; i++) {
            const { data, isBinary } = await nextRaw(ws);
            assert.equal(isBinary, i % 2 === 1, `message ${i} kind`);
            assert.equal(data.toString(), i % 2 ? `bin-${i}` : `text-${i}`);
        }
    });

    test('a fragmented text message is reassembled and echoed as one message', async (t) => {
        const raw = await connectRaw({ port: srv.port, path: '/echo' });
        t.after(() => raw.destroy());
        const text = 'fragmented ' + '张'.repeat(100);
        raw.sendFragmented(OP.TEXT, Buffer.from(text), 5);
        const f = await raw.nextFrame();
        assert.equal(f.opcode, OP.TEXT);
        assert.equal(f.fin, true);
        assert.equal(f.payload.toString('utf8'), text);
    });

    test(`a message of exactly ${MAX} bytes is echoed`, async (t) => {
        const ws = await connect(echoUrl);
        t.after(() => closeAll([ws]));
        const text = 'e'.repeat(MAX);
        ws.send(text);
        assert.equal(await nextText(ws), text);
    });

    test('the same limits: a 2 KB text message gets close 1009 (ws client)', async (t) => {
        const ws = await connect(echoUrl);
        t.after(() => closeAll([ws]));
        ws.send('x'.repeat(2048));
        assert.equal((await waitClose(ws)).code, 1009);
    });

    test('the same limits: a 2 KB binary message gets close 1009, then the TCP connection ends (raw)', async (t) => {
        const raw = await connectRaw({ port: srv.port, path: '/echo' });
        t.after(() => raw.destroy());
        raw.sendBinary(Buffer.alloc(2048, 1));
        await expectServerClose(raw, 1009, '2 KB binary');
    });

    test('the same limits: a 2 KB message in fragments gets close 1009', async (t) => {
        const raw = await connectRaw({ port: srv.port, path: '/echo' });
        t.after(() => raw.destroy());
        raw.sendFragmented(OP.TEXT, Buffer.alloc(2048, 0x61), 4);
        await expectServerClose(raw, 1009, '2 KB in 4 fragments');
    });

    test('the same WebSocket layer: invalid UTF-8 text gets 1007, an unmasked frame 1002', async (t) => {
        const bad = await connectRaw({ port: srv.port, path: '/echo' });
        const unmasked = await connectRaw({ port: srv.port, path: '/echo' });
        t.after(() => {
            bad.destroy();
            unmasked.destroy();
        });
        bad.send({ opcode: OP.TEXT, payload: Buffer.from([0x68, 0xc3, 0x28]) });
        await expectServerClose(bad, 1007, 'invalid UTF-8');
        unmasked.send({ opcode: OP.TEXT, payload: Buffer.from('hi'), mask: false });
        await expectServerClose(unmasked, 1002, 'unmasked frame');
    });

    test('pings are answered, and a close is echoed with its code', async (t) => {
        const ws = await connect(echoUrl);
        await ping(ws);
        const raw = await connectRaw({ port: srv.port, path: '/echo' });
        t.after(() => {
            closeAll([ws]);
            raw.destroy();
        });
        raw.sendClose(1000, 'bye');
        const res = await raw.waitClose(5000, { reply: false });
        assert.equal(res.code, 1000);
    });

    test('a request that is not a handshake gets 400', async () => {
        const res = await httpRequest(`${srv.url}/echo`);
        assert.equal(res.status, 400);
    });

    test('the signaling path next to it works as usual, and echo traffic never reaches it', async (t) => {
        const a = await register(srv.wsUrl, 'echo-a');
        const b = await register(srv.wsUrl, 'echo-b');
        const e = await connect(echoUrl);
        t.after(() => closeAll([a, b, e]));
        e.send(JSON.stringify({ type: 'dialing', receiverUserId: 'echo-b', field1: 'via echo' }));
        assert.equal(await nextText(e), JSON.stringify({ type: 'dialing', receiverUserId: 'echo-b', field1: 'via echo' }));
        assert.equal(await dial(a, { receiverUserId: 'echo-b', field1: 'real', id: 1 }), dialingOkText(1, 'echo-b', 1));
        assert.equal(await nextText(b), calledText({ sponsorUserId: 'echo-a', field1: 'real' }), 'b got only the real one');
    });
});

describe('websocket.echo: other values', { timeout: 30000 }, () => {
    test('websocket.echo: OFF installs nothing (the path is not a WebSocket endpoint)', async (t) => {
        const srv = await startServer({
            threads: 1,
            config: ({ port }) => `
listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /echo:
        websocket.echo: OFF
      /WsService:
        signaling: ON
`,
        });
        t.after(() => srv.stop());
        await assert.rejects(connect(`ws://127.0.0.1:${srv.port}/echo`), (err) => err.status === 404);
    });

    test('a value other than ON/OFF is a config error naming websocket.echo', async () => {
        const r = await runConfigTest(({ port }) => `
listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /echo:
        websocket.echo: maybe
`);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /websocket\.echo/);
    });
});
