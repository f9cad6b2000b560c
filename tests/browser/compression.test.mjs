// permessage-deflate with a real browser (issue 14, item 5): headless Chromium, which offers the
// extension on every WebSocket, against `signaling.compression: ON`. From a page the server serves
// itself: the extension Chromium reports as negotiated, the echo endpoint with text and binary
// messages of 16 B to 128 KiB (Chromium compresses what it sends, the server what it echoes from
// 256 bytes), and two registered users exchanging 60 KB offers through /WsService. And with
// compression OFF the same page negotiates nothing and works the same.
//
// Needs Debian's Chromium (tests/lib/browser.mjs), or CHROMIUM_PATH.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { launchChromium } from '../lib/browser.mjs';
import { startServer } from '../lib/server.mjs';
import { withTimeout } from '../lib/wait.mjs';

const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

const config = (compression) => ({ port, dir }) => `
listen: {host: 127.0.0.1, port: ${port}}
signaling.compression: ${compression}
signaling.rate-limit: 0
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
      /echo:
        websocket.echo: ON
        signaling.max-message-size: 262144
      /:
        file.dir: ${dir}/www
`;

/** Runs in the page: opens `url`, echoes every size as text and as binary, reports what came back. */
async function echoInPage({ url, sizes }) {
    const open = (u) =>
        new Promise((resolve, reject) => {
            const ws = new WebSocket(u);
            ws.binaryType = 'arraybuffer';
            ws.queue = [];
            ws.waiters = [];
            ws.onmessage = (e) => (ws.waiters.length ? ws.waiters.shift()(e.data) : ws.queue.push(e.data));
            ws.onopen = () => resolve(ws);
            ws.onerror = () => reject(new Error(`WebSocket error on ${u}`));
        });
    const next = (ws) => (ws.queue.length ? Promise.resolve(ws.queue.shift()) : new Promise((r) => ws.waiters.push(r)));
    const text = (n) => {
        const words = ['candidate', 'typ host', 'a=rtpmap:111 opus/48000/2', '用户', '😀', 'ssrc', '\r\n'];
        let s = '';
        for (let i = 0; s.length < n; i++) s += words[(i * 7 + (i >> 3)) % words.length] + i;
        return s.slice(0, n);
    };
    const ws = await open(url);
    const out = { extensions: ws.extensions, failures: [] };
    for (const n of sizes) {
        const t = text(n);
        ws.send(t);
        const back = await next(ws);
        if (back !== t) out.failures.push(`text ${n}: ${typeof back} of ${back.length ?? back.byteLength}`);
        const bin = new Uint8Array(n);
        for (let i = 0; i < n; i++) bin[i] = (i * 31 + (i >> 7)) & 0xff;
        ws.send(bin);
        const b = new Uint8Array(await next(ws));
        if (b.length !== n || b.some((v, i) => v !== bin[i])) out.failures.push(`binary ${n}: ${b.length} bytes`);
    }
    ws.close(1000);
    return out;
}

/** Runs in the page: users A and B register on `url` and send each other a 60 KB field. */
async function signalInPage({ url }) {
    const open = (u) =>
        new Promise((resolve, reject) => {
            const ws = new WebSocket(u);
            ws.queue = [];
            ws.waiters = [];
            ws.onmessage = (e) => (ws.waiters.length ? ws.waiters.shift()(e.data) : ws.queue.push(e.data));
            ws.onopen = () => resolve(ws);
            ws.onerror = () => reject(new Error(`WebSocket error on ${u}`));
        });
    const next = (ws) => (ws.queue.length ? Promise.resolve(ws.queue.shift()) : new Promise((r) => ws.waiters.push(r)));
    const ask = async (ws, msg) => {
        ws.send(JSON.stringify(msg));
        return JSON.parse(await next(ws));
    };
    const sdp = (seed, n) => {
        let s = '';
        for (let i = 0; s.length < n; i++) s += `a=candidate:${(seed * 7919 + i * 104729) % 100000} 1 udp 2122260223 192.168.${i % 256}.${seed} ${40000 + i} typ host\r\n`;
        return s.slice(0, n);
    };
    const a = await open(url);
    const b = await open(url);
    const out = { extensions: a.extensions, problems: [] };
    for (const [ws, user] of [[a, 'chromium-a'], [b, 'chromium-b']]) {
        const r = await ask(ws, { type: 'create_connect', sponsorUserId: user, id: 'reg' });
        if (!r.ok) out.problems.push(`create_connect ${user}: ${JSON.stringify(r)}`);
    }
    for (const [from, to, field, data] of [[a, 'chromium-b', 'field1', sdp(1, 60000)], [b, 'chromium-a', 'field2', sdp(2, 60000)]]) {
        const r = await ask(from, { type: 'dialing', receiverUserId: to, [field]: data, id: 7 });
        if (!r.ok || r.data.delivered !== 1) out.problems.push(`dialing ${to}: ${JSON.stringify(r)}`);
        const called = JSON.parse(await next(from === a ? b : a));
        if (called.type !== 'called' || called.data[field] !== data) out.problems.push(`called at ${to}: ${called.type}, ${field} differs`);
    }
    a.close(1000);
    b.close(1000);
    return out;
}

for (const compression of ['ON', 'OFF']) {
    describe(`Chromium with signaling.compression: ${compression}`, { timeout: 60000 }, () => {
        let srv;
        let browser;
        let page;
        before(async () => {
            srv = await startServer({ threads: 1, config: config(compression), files: { 'www/index.html': '<!doctype html><title>compression</title>\n' } });
            browser = await launchChromium();
            page = await (await browser.newContext()).newPage();
            await page.goto(`http://127.0.0.1:${srv.port}/`, { timeout: 10000 });
        });
        after(async () => {
            if (browser) await withTimeout(browser.close(), 10000, 'browser close').catch(() => {});
            await srv?.stop();
        });

        test('the echo endpoint: text and binary, 16 B to 128 KiB, byte for byte', async () => {
            const res = await withTimeout(
                page.evaluate(echoInPage, { url: `ws://127.0.0.1:${srv.port}/echo`, sizes: [16, 255, 256, 1024, 6000, 16384, 65536, 131072] }),
                30000,
                'the echoes in the page',
            );
            assert.equal(res.extensions, compression === 'ON' ? ANSWER : '', 'what Chromium reports as negotiated');
            assert.deepEqual(res.failures, []);
        });

        test('two users exchange 60 KB offers through /WsService', async () => {
            const res = await withTimeout(page.evaluate(signalInPage, { url: `ws://127.0.0.1:${srv.port}/WsService` }), 30000, 'the signaling in the page');
            assert.equal(res.extensions, compression === 'ON' ? ANSWER : '');
            assert.deepEqual(res.problems, []);
        });
    });
}
