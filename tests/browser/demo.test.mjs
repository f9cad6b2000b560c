// The demo page (h2o-conf/www/index.html) driven in a real browser, the walk-through a
// person does by hand, in two pages: page 1 uses Pane A as user 1122 (张三), page 2 uses
// Pane B as user 2211 (李四). Asserts on visible text only.
//
// Needs Debian's Chromium (apt-get install -y chromium; tests/lib/browser.mjs), or set
// CHROMIUM_PATH. Screenshots of both pages are written to a temp dir whose path is
// printed as a test diagnostic (DEMO_SCREENSHOT_DIR=... to choose it); they are kept.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { launchChromium } from '../lib/browser.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';

const EXTRA_ARGS = []; // lib/browser.mjs's flags are enough here
const WAIT = 5000; // every wait on the page is bounded by this

/** The quick-start layout: /WsService, and the demo page from the repository at `/`. */
const config = (vars, opts = {}) => signalingConfig(vars, { ...opts, fileDir: `${vars.root}/h2o-conf/www` });

/** Waits until the element's visible text matches `re`; returns that text. */
async function waitText(page, selector, re, what) {
    const loc = page.locator(selector);
    let last = '';
    try {
        return await waitUntil(
            async () => {
                last = await loc.innerText({ timeout: 1000 });
                return re.test(last) ? last : null;
            },
            { timeout: WAIT, interval: 25, what },
        );
    } catch (err) {
        err.message += `\n--- ${selector} shows:\n${last}`;
        throw err;
    }
}

/** Waits until the log has a visible entry of `kind` whose text contains `text`; returns the entry. */
async function logEntry(page, pane, kind, text) {
    const entry = page.locator(`#${pane}-log li.entry.${kind}`).filter({ hasText: text }).last();
    try {
        await entry.waitFor({ state: 'visible', timeout: WAIT });
    } catch (err) {
        const log = await page.locator(`#${pane}-log`).innerText({ timeout: 1000 }).catch(() => '?');
        err.message += `\n--- #${pane}-log shows:\n${log}`;
        throw err;
    }
    return entry;
}

/** The raw JSON shown in an entry, parsed. */
async function rawJson(entry) {
    return JSON.parse(await entry.locator('pre.raw').innerText({ timeout: WAIT }));
}

async function connectAndRegister(page, pane, userId, userName) {
    assert.equal(await page.locator(`#${pane}-user-id`).inputValue(), userId, `#${pane}-user-id default`);
    assert.equal(await page.locator(`#${pane}-user-name`).inputValue(), userName, `#${pane}-user-name default`);
    assert.equal(await page.locator(`#${pane}-status`).innerText(), 'Status: not connected');
    await page.bringToFront(); // like switching windows: a background tab gets no animation frames
    await page.click(`#${pane}-connect`, { timeout: WAIT });
    await waitText(page, `#${pane}-status`, /^Status: open$/, `pane ${pane} open`);
    await page.click(`#${pane}-register`, { timeout: WAIT });
    const sent = await logEntry(page, pane, 'sent', '"create_connect"');
    assert.deepEqual(await rawJson(sent), { type: 'create_connect', sponsorUserId: userId, sponsorUserName: userName, id: 1 });
    const ack = await logEntry(page, pane, 'received', `Registered as ${userId}`);
    assert.deepEqual(await rawJson(ack), {
        type: 'create_connect_response', ok: true, msg: '', id: 1, data: { sponsorUserId: userId },
    });
    await waitText(page, `#${pane}-status`, new RegExp(`^Status: open · registered as ${userId} \\(${userName}\\)$`),
        `pane ${pane} registered`);
}

async function send(page, pane, receiver, text) {
    await page.bringToFront();
    await page.fill(`#${pane}-receiver`, receiver, { timeout: WAIT });
    await page.fill(`#${pane}-field1`, text, { timeout: WAIT });
    await page.click(`#${pane}-send`, { timeout: WAIT });
}

test('demo page: the two-user walk-through in two browser pages', { timeout: 60000 }, async (t) => {

    const server = await startServer({ config });
    let browser;
    const pages = [];
    const problems = []; // console errors, page errors, requests that leave the server
    let shotsTaken = false;
    const shotDir = process.env.DEMO_SCREENSHOT_DIR || mkdtempSync(join(tmpdir(), 'h2o-signaling-demo-'));
    mkdirSync(shotDir, { recursive: true });

    async function screenshots() {
        const paths = [];
        for (const [i, page] of pages.entries()) {
            await page.bringToFront();
            const path = join(shotDir, `page${i + 1}.png`);
            await withTimeout(page.screenshot({ path, fullPage: true, timeout: WAIT }), WAIT + 1000, `screenshot ${path}`);
            paths.push(path);
        }
        shotsTaken = true;
        t.diagnostic(`screenshots: ${paths.join(' ')}`);
    }

    t.after(async () => {
        if (!shotsTaken && pages.length) await screenshots().catch(() => {}); // what a failure looked like
        if (browser) await withTimeout(browser.close(), 10000, 'browser close').catch(() => {});
        const st = await server.stop();
        assert.equal(st.timedOut, false, 'server stops on SIGTERM');
    });

    browser = await launchChromium(EXTRA_ARGS);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    for (let i = 0; i < 2; i++) {
        const page = await context.newPage();
        page.setDefaultTimeout(WAIT);
        page.on('console', (m) => m.type() === 'error' && problems.push(`page${i + 1} console: ${m.text()}`));
        page.on('pageerror', (e) => problems.push(`page${i + 1} error: ${e.message}`));
        page.on('request', (r) => {
            if (!r.url().startsWith(`${server.url}/`)) problems.push(`page${i + 1} request: ${r.url()}`);
        });
        pages.push(page);
    }
    const [p1, p2] = pages;
    for (const page of pages) {
        const resp = await page.goto(`${server.url}/`, { waitUntil: 'load', timeout: WAIT });
        assert.equal(resp.status(), 200);
        assert.equal(await page.title(), 'h2o-signaling demo');
        assert.match(await page.locator('header').innerText(), /docs\/protocol\.md/);
        assert.equal(await page.locator('#endpoint').innerText(), `ws://127.0.0.1:${server.port}/WsService`);
        assert.ok(await page.locator('#pane-a').isVisible(), 'Pane A visible');
        assert.ok(await page.locator('#pane-b').isVisible(), 'Pane B visible');
        assert.ok(await page.locator('#a-send').isDisabled(), 'Send is disabled before Connect');
    }
    // The panes sit side by side on a laptop-sized window.
    const boxA = await p1.locator('#pane-a').boundingBox();
    const boxB = await p1.locator('#pane-b').boundingBox();
    assert.ok(boxB.x >= boxA.x + boxA.width && Math.abs(boxA.y - boxB.y) < 2, 'panes side by side');
    assert.equal(await p1.locator('#a-receiver').inputValue(), '2211');
    assert.equal(await p2.locator('#b-receiver').inputValue(), '1122');

    // Page 1 is 张三 (1122) in Pane A; page 2 is 李四 (2211) in Pane B.
    await connectAndRegister(p1, 'a', '1122', '张三');
    await connectAndRegister(p2, 'b', '2211', '李四');

    // 1122 -> 2211: "hello"
    await send(p1, 'a', '2211', 'hello');
    const hello = await logEntry(p2, 'b', 'received', 'From 张三 (1122): hello');
    assert.equal(await hello.locator('.note').innerText(), 'From 张三 (1122): hello');
    assert.deepEqual(await rawJson(hello), {
        type: 'called', ok: true, msg: '',
        data: { sponsorUserId: '1122', sponsorUserName: '张三', field1: 'hello', field2: '', field3: '' },
    });
    const sentHello = await logEntry(p1, 'a', 'sent', '"dialing"');
    assert.deepEqual(await rawJson(sentHello), {
        type: 'dialing', sponsorUserId: '1122', sponsorUserName: '张三', receiverUserId: '2211',
        field1: 'hello', field2: '', field3: '', id: 2,
    });
    await logEntry(p1, 'a', 'received', 'Delivered to 2211 (1 connection)');

    // 2211 answers "hi"
    await send(p2, 'b', '1122', 'hi');
    const hi = await logEntry(p1, 'a', 'received', 'From 李四 (2211): hi');
    assert.equal(await hi.locator('.note').innerText(), 'From 李四 (2211): hi');
    await logEntry(p2, 'b', 'received', 'Delivered to 1122 (1 connection)');

    // 1122 -> 9999, who is offline: the error in red
    await send(p1, 'a', '9999', 'anyone there?');
    const offline = await logEntry(p1, 'a', 'received', 'Error: 对方未建立链接 (peer_offline)');
    assert.deepEqual(await rawJson(offline), {
        type: 'dialing_response', ok: false, msg: '对方未建立链接', code: 'peer_offline', id: 3,
        data: { sponsorUserId: null },
    });
    const red = await offline.locator('.note').evaluate((n) => getComputedStyle(n).color);
    assert.equal(red, 'rgb(198, 40, 40)', 'errors are shown in red');

    // Message content is text, never markup.
    const xss = '<img src=x onerror="window.__xss=1"><b>bold</b>';
    await send(p2, 'b', '1122', xss);
    const shown = await logEntry(p1, 'a', 'received', 'From 李四 (2211): <img');
    assert.equal(await shown.locator('.note').innerText(), `From 李四 (2211): ${xss}`);
    assert.equal(await p1.locator('#a-log img, #a-log b').count(), 0, 'no element made from message content');
    assert.equal(await p1.evaluate(() => window.__xss), undefined);

    // Every entry says whether it was sent or received.
    const tags = await p1.locator('#a-log li.entry:not(.info) .tag').allInnerTexts();
    assert.ok(tags.length >= 8, `entries in page 1's log: ${tags.length}`);
    assert.ok(tags.every((s) => /^(sent|received)$/i.test(s)), `tags: ${tags}`);

    // Page 1 disconnects: its status shows the close code, and 1122 is offline at once.
    await p1.bringToFront();
    await p1.click('#a-disconnect');
    await waitText(p1, '#a-status', /^Status: closed \(code 1000\)$/, 'pane a closed');
    assert.ok(await p1.locator('#a-send').isDisabled(), 'Send is disabled after Disconnect');
    assert.ok(await p1.locator('#a-connect').isEnabled(), 'Connect is enabled after Disconnect');
    await send(p2, 'b', '1122', 'still there?');
    await logEntry(p2, 'b', 'received', 'Error: 对方未建立链接 (peer_offline)');
    assert.match(await p2.locator('#b-status').innerText(), /^Status: open · registered as 2211 \(李四\)$/);

    await screenshots();
    assert.deepEqual(problems, [], 'no console errors, page errors or outside requests');
    assert.equal(server.alive(), true, 'server still running');
});

test('demo page over https:// connects with wss:// to the same host', { timeout: 60000 }, async (t) => {

    const server = await startServer({
        tls: true,
        config: (vars) => config(vars, { tls: true }),
    });
    let browser;
    t.after(async () => {
        if (browser) await withTimeout(browser.close(), 10000, 'browser close').catch(() => {});
        await server.stop();
    });

    browser = await launchChromium(EXTRA_ARGS);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));

    const resp = await page.goto(`${server.httpsUrl}/`, { waitUntil: 'load', timeout: WAIT });
    assert.equal(resp.status(), 200);
    assert.equal(await page.locator('#endpoint').innerText(), server.wssUrl);

    // Both panes of the one page: 1122 says hello to 2211 over wss://.
    await connectAndRegister(page, 'a', '1122', '张三');
    await connectAndRegister(page, 'b', '2211', '李四');
    await send(page, 'a', '2211', 'hello over TLS');
    await logEntry(page, 'b', 'received', 'From 张三 (1122): hello over TLS');
    assert.deepEqual(sockets, [server.wssUrl, server.wssUrl]);
});
