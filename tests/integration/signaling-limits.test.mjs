// Limits of /WsService: signaling.max-message-size (close 1009, which the client must
// receive), binary frames (close 1003), and signaling.max-queued-bytes: a client that stops
// reading is closed (1008) or dropped while everyone else carries on, and the server's
// memory stays bounded.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { connectRaw, encodeFrame, OP } from '../lib/rawws.mjs';
import { fdCount, rssKb } from '../lib/reload.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import {
    calledText,
    dial,
    dialingFailText,
    dialingOkText,
    nextText,
    rawRegister,
    register,
    waitPeerOffline,
} from '../lib/sigclient.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';
import { closeAll, connect, waitClose } from '../lib/wsclient.mjs';

const MAX_MESSAGE = 1024;
const MAX_QUEUED = 65536;
const RSS_BUDGET_KB = 50 * 1024;

const config = (vars) =>
    signalingConfig(vars, {
        settings: [
            `signaling.max-message-size: ${MAX_MESSAGE}`,
            `signaling.max-queued-bytes: ${MAX_QUEUED}`,
            // one sender floods here on purpose: the rate limit (its own test) must not stop it first
            'signaling.rate-limit: 0',
        ],
    });

/** A dialing of exactly `size` bytes of JSON. */
function dialingOfSize(size, receiverUserId = 'nobody') {
    const head = `{"type":"dialing","receiverUserId":"${receiverUserId}","field1":"`;
    const text = `${head}${'a'.repeat(size - head.length - 2)}"}`;
    assert.equal(Buffer.byteLength(text), size);
    return text;
}

/** Reads the raw client's frames to the close; asserts close `code` arrives and the TCP connection then ends. */
async function expectServerClose(raw, code, what) {
    const res = await raw.waitClose(5000);
    assert.equal(res.closeFrame, true, `${what}: expected a close frame ${code}, the TCP connection just ended (1006)`);
    assert.equal(res.code, code, `${what}: close code`);
    await withTimeout(raw.tcpClosed, 5000, `${what}: the server to close the TCP connection after the close frame`);
}

describe('message size and binary frames', { timeout: 30000 }, () => {
    let srv;
    before(async () => {
        srv = await startServer({ threads: 1, config });
    });
    after(() => srv?.stop());

    test(`a message of exactly max-message-size (${MAX_MESSAGE}) bytes is accepted`, async (t) => {
        const ws = await register(srv.wsUrl, 'lim-exact');
        t.after(() => closeAll([ws]));
        ws.send(dialingOfSize(MAX_MESSAGE));
        assert.equal(await nextText(ws), dialingFailText('peer_offline'));
    });

    test('ws client: a message over max-message-size is answered with close 1009, and the user is unregistered', async (t) => {
        const big = await register(srv.wsUrl, 'lim-big');
        const d = await register(srv.wsUrl, 'lim-big-d');
        t.after(() => closeAll([big, d]));
        big.send(dialingOfSize(MAX_MESSAGE + 1, 'lim-big-d'));
        const { code } = await waitClose(big);
        assert.equal(code, 1009, 'the ws client must receive 1009 (1006 means no close frame reached it)');
        await waitPeerOffline(d, 'lim-big');
    });

    test('ws client: a 64 KiB message is answered with close 1009', async (t) => {
        const ws = await connect(srv.wsUrl);
        t.after(() => closeAll([ws]));
        ws.send('x'.repeat(64 * 1024));
        assert.equal((await waitClose(ws)).code, 1009);
    });

    test('raw client: a 64 KiB text frame written in one go gets close 1009, then the TCP connection ends', async (t) => {
        const raw = await connectRaw({ port: srv.port });
        t.after(() => raw.destroy());
        raw.sendRaw(encodeFrame({ opcode: OP.TEXT, payload: Buffer.alloc(64 * 1024, 0x61) }));
        await expectServerClose(raw, 1009, '64 KiB frame');
    });

    test('raw client: a 64 KiB frame after registering also gets 1009 (with the rest of the frame never read)', async (t) => {
        const raw = await rawRegister(srv.port, 'lim-raw-big');
        t.after(() => raw.destroy());
        // header announcing 1 MiB, then 64 KiB of it: the server must not wait for the rest to answer
        const frame = encodeFrame({
            opcode: OP.TEXT,
            payload: Buffer.alloc(64 * 1024, 0x61),
            declaredLength: 1024 * 1024,
        });
        raw.sendRaw(frame);
        await expectServerClose(raw, 1009, 'frame announcing 1 MiB');
    });

    test('ws client: a binary message is answered with close 1003, and the user is unregistered', async (t) => {
        const bin = await register(srv.wsUrl, 'lim-bin');
        const d = await register(srv.wsUrl, 'lim-bin-d');
        t.after(() => closeAll([bin, d]));
        bin.send(Buffer.from('{"type":"dialing","receiverUserId":"lim-bin-d"}'));
        assert.equal((await waitClose(bin)).code, 1003);
        await waitPeerOffline(d, 'lim-bin');
    });

    test('raw client: a binary frame gets close 1003, then the TCP connection ends', async (t) => {
        const raw = await connectRaw({ port: srv.port });
        t.after(() => raw.destroy());
        raw.sendBinary(Buffer.from([1, 2, 3]));
        await expectServerClose(raw, 1003, 'binary frame');
    });
});

describe('max-queued-bytes: clients that stop reading', { timeout: 120000 }, () => {
    test(
        'a slow reader is closed (1008) or dropped while a well-behaved pair keeps talking; memory stays bounded',
        { timeout: 60000 },
        async (t) => {
            const srv = await startServer({ threads: 1, config });
            t.after(() => srv.stop());
            const [slowId, dId, cId, eId] = ['q-slow', 'q-dialer', 'q-c', 'q-e'];
            const d = await register(srv.wsUrl, dId);
            const c = await register(srv.wsUrl, cId);
            const e = await register(srv.wsUrl, eId);
            t.after(() => closeAll([d, c, e]));
            const rssBefore = rssKb(srv.pid);
            const slow = await rawRegister(srv.port, slowId);
            t.after(() => slow.destroy());
            slow.socket.pause(); // stops reading: the kernel buffers fill, then the server's queue

            const field1 = 'k'.repeat(900); // a ~1 KB push, and a request under max-message-size
            const BATCH = 32;
            const MAX_DIALS = 60000; // ~60 MB of pushes: far more than any socket buffer + 64 KiB
            const deadline = Date.now() + 40000;
            let sent = 0;
            let pairRounds = 0;
            let refusal = null;
            while (!refusal) {
                assert.ok(
                    sent < MAX_DIALS && Date.now() < deadline,
                    `the slow reader was still accepted after ${sent} dialings of ~1 KB`,
                );
                for (let i = 0; i < BATCH; i++)
                    d.send(JSON.stringify({ type: 'dialing', receiverUserId: slowId, field1, id: sent + i }));
                for (let i = 0; i < BATCH; i++) {
                    const text = await nextText(d);
                    const p = JSON.parse(text);
                    if (p.ok) assert.equal(text, dialingOkText(sent + i, slowId, 1));
                    else refusal ??= text;
                }
                sent += BATCH;
                // the well-behaved pair, meanwhile
                const id = `pair-${pairRounds++}`;
                assert.equal(
                    await dial(c, { receiverUserId: eId, field1: id, id }),
                    dialingOkText(id, eId, 1),
                    'pair dialing',
                );
                assert.equal(await nextText(e), calledText({ sponsorUserId: cId, field1: id }));
            }
            const p = JSON.parse(refusal);
            assert.ok(['peer_gone', 'peer_offline'].includes(p.code), `a closing/closed receiver: ${refusal}`);
            assert.equal(refusal, dialingFailText(p.code, p.id));
            const rssAfter = rssKb(srv.pid);
            t.diagnostic(
                `refused after ${sent} dialings (${pairRounds} pair rounds); RSS ${rssBefore} -> ${rssAfter} kB`,
            );
            // under `make check-valgrind` the process's RSS is valgrind's shadow memory, not the server's
            if (!process.env.VALGRIND_LOG_DIR)
                assert.ok(rssAfter - rssBefore < RSS_BUDGET_KB, `RSS grew by ${rssAfter - rssBefore} kB`);

            // the pair still works, and the slow reader, once it reads again, finds a 1008 or the end
            assert.equal(await dial(c, { receiverUserId: eId, id: 'last' }), dialingOkText('last', eId, 1));
            assert.equal(await nextText(e), calledText({ sponsorUserId: cId }));
            slow.socket.resume();
            const res = await slow.waitClose(15000);
            t.diagnostic(
                `slow reader: ${res.closeFrame ? `close frame ${res.code}` : 'TCP end without a close frame'} after ${res.frames.length} frames`,
            );
            if (res.closeFrame) assert.equal(res.code, 1008, 'close code for a client past max-queued-bytes');
            await withTimeout(slow.tcpClosed, 10000, "the slow reader's TCP connection to end");
            await waitPeerOffline(d, slowId, { timeout: 5000 });
            assert.ok(srv.alive());
        },
    );

    test(
        'a reader that never reads again is released by the server (fd closed, unregistered)',
        { timeout: 60000 },
        async (t) => {
            const srv = await startServer({ threads: 1, config });
            t.after(() => srv.stop());
            const d = await register(srv.wsUrl, 'n-dialer');
            t.after(() => closeAll([d]));
            const fdsBefore = fdCount(srv.pid);
            const slow = await rawRegister(srv.port, 'n-slow');
            t.after(() => slow.destroy());
            slow.socket.pause();
            assert.equal(fdCount(srv.pid), fdsBefore + 1, 'the new connection holds one fd');

            const field1 = 'k'.repeat(900); // a ~1 KB push, and a request under max-message-size
            let refused = false;
            for (let sent = 0; !refused; sent += 32) {
                assert.ok(sent < 60000, 'never refused');
                for (let i = 0; i < 32; i++)
                    d.send(JSON.stringify({ type: 'dialing', receiverUserId: 'n-slow', field1, id: i }));
                for (let i = 0; i < 32; i++) if (!JSON.parse(await nextText(d)).ok) refused = true;
            }
            // never resumed: the server must give up on the connection on its own
            await waitPeerOffline(d, 'n-slow', { timeout: 15000 });
            await waitUntil(() => fdCount(srv.pid) <= fdsBefore, {
                timeout: 15000,
                what: 'the server to close the fd of the stuck reader',
            });
        },
    );

    test(
        'a client that floods requests without reading the replies is stopped; others are unaffected, memory bounded',
        { timeout: 60000 },
        async (t) => {
            const srv = await startServer({ threads: 1, config });
            t.after(() => srv.stop());
            const a = await register(srv.wsUrl, 'f-a');
            const b = await register(srv.wsUrl, 'f-b');
            t.after(() => closeAll([a, b]));
            const rssBefore = rssKb(srv.pid);
            const flood = await connectRaw({ port: srv.port });
            t.after(() => flood.destroy());
            flood.socket.pause(); // never reads the error replies

            // each "x" earns an error reply of ~80 bytes: 200,000 of them is ~16 MB of replies
            const chunk = Buffer.concat(Array(10000).fill(encodeFrame({ opcode: OP.TEXT, payload: 'x' })));
            let written = 0;
            let rounds = 0;
            while (!flood.isTcpClosed && rounds++ < 20) {
                if (!flood.socket.write(chunk)) {
                    await Promise.race([
                        new Promise((r) => flood.socket.once('drain', r)),
                        flood.tcpClosed,
                        new Promise((r) => setTimeout(r, 1000)), // a server that stopped reading: move on to the checks
                    ]);
                }
                written += chunk.length;
                assert.equal(
                    await dial(a, { receiverUserId: 'f-b', id: rounds }),
                    dialingOkText(rounds, 'f-b', 1),
                    'others are served',
                );
                assert.equal(await nextText(b), calledText({ sponsorUserId: 'f-a' }));
            }
            const rssAfter = rssKb(srv.pid);
            t.diagnostic(`wrote ${written} bytes of requests; RSS ${rssBefore} -> ${rssAfter} kB`);
            // under `make check-valgrind` the process's RSS is valgrind's shadow memory, not the server's
            if (!process.env.VALGRIND_LOG_DIR)
                assert.ok(rssAfter - rssBefore < RSS_BUDGET_KB, `RSS grew by ${rssAfter - rssBefore} kB`);

            flood.socket.resume();
            const res = await flood.waitClose(15000).catch((err) => ({ error: err.message }));
            assert.ok(!res.error, `the flooding client is closed or dropped: ${res.error}`);
            if (res.closeFrame) assert.equal(res.code, 1008);
            await withTimeout(flood.tcpClosed, 15000, "the flooding client's TCP connection to end");
            assert.equal(await dial(a, { receiverUserId: 'f-b', id: 'end' }), dialingOkText('end', 'f-b', 1));
            assert.equal(await nextText(b), calledText({ sponsorUserId: 'f-a' }));
        },
    );
});
