// The video-call demo (h2o-conf/www/call.html) in real Chromium: two pages of one browser, users
// 1122 and 2211, a level-2 call through the real server, a real RTCPeerConnection with fake camera
// and microphone. Case 1: A calls, B accepts, media and the data channel flow, A hangs up. Case 2:
// B rejects.
//
// What counts as proof of media (calls.md section 4): `ontrack` fires even when ICE never connects,
// so the test asserts connectionState 'connected' on both RTCPeerConnections, a data-channel message
// received on both sides, remote video frames (videoWidth > 0 and currentTime advancing) and
// inbound-rtp video bytes in getStats.
//
// Needs Debian's Chromium (apt-get install -y chromium): the real binary /usr/lib/chromium/chromium
// (the /usr/bin/chromium wrapper script is not needed here), or set CHROMIUM_PATH.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { launchChromium } from '../lib/browser.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';

const EXTRA_ARGS = [
    // fake camera and microphone, granted without a prompt (also turns host candidates into raw IPs)
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    // a box with only `lo` gathers no candidate at all without it (calls.md section 4)
    '--allow-loopback-in-peer-connection',
    // no <uuid>.local candidates: headless Chromium cannot always resolve them
    '--disable-features=WebRtcHideLocalIpsWithMdns',
];
const WAIT = 5000; // every wait on a page is bounded by this...
const MEDIA_WAIT = 20000; // ...except ICE + DTLS + the first frames

const config = (vars) => signalingConfig(vars, { fileDir: `${vars.root}/h2o-conf/www` });

describe('call.html: a video call between two pages', { timeout: 120000 }, () => {
    let server;
    let browser;
    let context;
    const problems = []; // console errors and page errors of every page

    before(async () => {
        server = await startServer({ config });
        browser = await launchChromium(EXTRA_ARGS);
        context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    });
    after(async () => {
        if (browser) await withTimeout(browser.close(), 10000, 'browser close').catch(() => {});
        if (server) await server.stop();
    });

    /** A page of call.html for `user` calling `peer`, connected and registered at level 2. */
    async function openUser(user, peer) {
        const page = await context.newPage();
        page.setDefaultTimeout(WAIT);
        page.on('console', (m) => m.type() === 'error' && problems.push(`${user} console: ${m.text()}`));
        page.on('pageerror', (e) => problems.push(`${user} error: ${e.message}`));
        const resp = await page.goto(`${server.url}/call.html?user=${user}&peer=${peer}`, { waitUntil: 'load', timeout: WAIT });
        assert.equal(resp.status(), 200);
        assert.equal(await page.locator('#user').inputValue(), user);
        await page.click('#connect');
        await waitText(page, '#status', new RegExp(`^registered as ${user}, level 2$`), `${user} registered`);
        assert.equal(await page.locator('#state').innerText(), 'idle');
        return page;
    }

    /** Waits until the element's text matches `re`; on a timeout the message has what it showed and the page's log. */
    async function waitText(page, selector, re, what) {
        let last = '';
        try {
            return await waitUntil(async () => {
                last = await page.locator(selector).innerText({ timeout: 1000 });
                return re.test(last) ? last : null;
            }, { timeout: WAIT, interval: 25, what });
        } catch (err) {
            err.message += `\n--- ${selector} shows: ${last}\n--- #log:\n${await pageLog(page)}`;
            throw err;
        }
    }

    const pageLog = (page) => page.locator('#log').innerText({ timeout: 1000 }).catch(() => '?');

    /** The raw frames of the page's log, parsed, as {kind: 'sent' | 'received', msg}. */
    const frames = (page) => page.$$eval('#log li.entry:not(.info)', (items) =>
        items.map((li) => ({ kind: li.classList.contains('sent') ? 'sent' : 'received', msg: JSON.parse(li.querySelector('pre.raw').textContent) })));

    /** What the page's live RTCPeerConnection and remote <video> say (null before the call has one). */
    const media = (page) => page.evaluate(async () => {
        const pc = window.callDemo.pc;
        if (!pc) return null;
        const video = document.getElementById('remote-video');
        let bytes = 0;
        let frames = 0;
        for (const s of (await pc.getStats()).values()) {
            if (s.type === 'inbound-rtp' && s.kind === 'video') {
                bytes += s.bytesReceived || 0;
                frames += s.framesDecoded || 0;
            }
        }
        return { state: pc.connectionState, width: video.videoWidth, time: video.currentTime, bytes, frames };
    });

    async function waitMedia(page, check, what) {
        let last = null;
        try {
            return await waitUntil(async () => {
                last = await media(page);
                return last && check(last) ? last : null;
            }, { timeout: MEDIA_WAIT, interval: 50, what });
        } catch (err) {
            err.message += `\n--- media: ${JSON.stringify(last)}\n--- #log:\n${await pageLog(page)}`;
            throw err;
        }
    }

    test('A calls, B accepts: connected, data channel both ways, video frames; A hangs up', async () => {
        const a = await openUser('1122', '2211');
        const b = await openUser('2211', '1122');

        await a.bringToFront(); // a background page gets no animation frames: act where the user looks
        await a.click('#call');
        await waitText(a, '#state', /^ringing$/, 'A rings');
        await b.bringToFront();
        await b.locator('#incoming').waitFor({ state: 'visible', timeout: WAIT });
        assert.equal(await b.locator('#incoming-text').innerText(), 'Incoming video call from 1122');
        assert.equal(await b.locator('#state').innerText(), 'incoming');
        await b.click('#accept');
        await waitText(b, '#state', /^active$/, 'B active');
        await waitText(a, '#state', /^active$/, 'A active');

        // Proof of a working call on both sides (not `ontrack`: it fires without ICE too).
        for (const [page, who] of [[a, 'A'], [b, 'B']]) {
            await page.bringToFront();
            const first = await waitMedia(page, (m) => m.state === 'connected' && m.width > 0 && m.bytes > 0 && m.frames > 0,
                `${who}: connected, remote video decoded`);
            await waitMedia(page, (m) => m.state === 'connected' && m.time > first.time + 0.2, `${who}: remote video plays`);
            assert.equal(await page.locator('#pc-state').innerText(), 'connected');
        }
        await waitText(b, '#dc-log', /peer: hello from 1122/, 'B got A\'s data channel message');
        await waitText(a, '#dc-log', /peer: hello from 2211/, 'A got B\'s data channel message');
        await waitText(a, '#dc-log', /me: hello from 1122/, 'A shows what it sent');

        // The negotiation went through the server: A's offer reached B as call_signal, B's answer reached A.
        const signalsAt = async (page, kind) => (await frames(page)).filter((f) => f.kind === 'received' && f.msg.type === 'call_signal' && f.msg.data.kind === kind);
        const offers = await signalsAt(b, 'offer');
        assert.equal(offers.length, 1, 'B received one offer');
        assert.equal(offers[0].msg.data.from.userId, '1122');
        assert.equal(offers[0].msg.data.data.type, 'offer');
        assert.equal((await signalsAt(a, 'answer')).length, 1, 'A received one answer');
        assert.ok((await signalsAt(a, 'candidate')).length > 0 && (await signalsAt(b, 'candidate')).length > 0, 'candidates both ways');

        await a.bringToFront();
        await a.click('#hangup');
        await waitText(a, '#state', /^ended$/, 'A ended');
        assert.equal(await a.locator('#reason').getAttribute('data-reason'), 'hangup');
        await waitText(b, '#state', /^ended$/, 'B ended');
        assert.equal(await b.locator('#reason').getAttribute('data-reason'), 'hangup');
        assert.equal(await b.locator('#reason').innerText(), '(hangup)');
        const ended = (await frames(b)).filter((f) => f.msg.type === 'call_ended');
        assert.equal(ended.length, 1);
        assert.equal(ended[0].msg.data.reason, 'hangup');
        for (const page of [a, b]) {
            assert.equal(await page.evaluate(() => window.callDemo.pc), null, 'no peer connection left');
            assert.equal(await page.evaluate(() => document.getElementById('remote-video').srcObject), null);
            assert.ok(await page.locator('#call').isEnabled(), 'Call is possible again');
        }

        await a.close();
        await b.close();
        assert.deepEqual(problems, [], 'no console errors or page errors');
    });

    test('B rejects: A shows the call ended with reason rejected', async () => {
        const a = await openUser('1133', '2233');
        const b = await openUser('2233', '1133');

        await a.bringToFront();
        await a.click('#call');
        await waitText(a, '#state', /^ringing$/, 'A rings');
        await b.bringToFront();
        await b.locator('#incoming').waitFor({ state: 'visible', timeout: WAIT });
        // B's page sends call_ringing: A's page sees that one device alerts
        await waitText(a, '#reason', /1 device\(s\) alerting/, 'A sees B alerting');
        await b.click('#reject');
        await waitText(b, '#state', /^ended$/, 'B ended');
        assert.equal(await b.locator('#reason').getAttribute('data-reason'), 'rejected');
        assert.ok(await b.locator('#incoming').isHidden(), 'the banner is gone');
        await waitText(a, '#state', /^ended$/, 'A ended');
        assert.equal(await a.locator('#reason').getAttribute('data-reason'), 'rejected');
        assert.equal(await a.evaluate(() => window.callDemo.pc), null, 'A\'s peer connection is closed');
        const sent = (await frames(b)).filter((f) => f.kind === 'sent' && f.msg.type === 'call_reject');
        assert.deepEqual(sent.map((f) => f.msg.reason), ['declined']);

        await a.close();
        await b.close();
        assert.deepEqual(problems, [], 'no console errors or page errors');
    });
});
