// Metrics (issue 12, item 1): `signaling.metrics: ON` serves the Prometheus text of every
// `signaling: ON` route, summed over threads, and h2o's `status: ON` JSON has the same figures in
// its `signaling` section.
//
//   - a scripted scenario on 4 threads (connections, users on several devices, dials of every
//     answer a single node can give, invalid and rate-limited messages, closes with several codes,
//     a second route): every series is exact, the histogram is cumulative and counts every dial
//   - dialings of all pairs while the metrics are scraped in a loop: every answer and every
//     `called` arrives, and the counters grew by exactly that much
//   - a reload keeps a kept route's counters; a route the reload removed leaves the scrape
//   - the configuration rules: a path of its own, path level only (FILE:LINE)
//   - `status: ON`: the `signaling` section equals the scrape
//   - with Redis: backplane_up 1, 0 while Redis is stopped (dials of users elsewhere:
//     cluster_unavailable), 1 again after it returns, reconnects_total counts the return

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';

import { httpRequest } from '../lib/http.mjs';
import { clusterUnavailableText, dialAnswer, startCluster } from '../lib/redis.mjs';
import { expectReloaded } from '../lib/reload.mjs';
import { configErrors, runConfigTest, signalingConfig, startServer } from '../lib/server.mjs';
import { dialAllPairs, dialingFailText, dialingOkText, rawRegister, register } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAfter, connect, waitClose } from '../lib/wsclient.mjs';

const TYPES = ['create_connect', 'dialing', 'call', 'call_ringing', 'call_accept', 'call_reject', 'call_hangup', 'call_signal', 'call_resume', 'invalid'];
const REASONS = ['cancelled', 'rejected', 'busy', 'no_answer', 'offline', 'answered_elsewhere', 'rejected_elsewhere', 'hangup', 'peer_gone',
    'replaced', 'max_duration', 'shutdown'];
const RESULTS = ['delivered', 'peer_offline', 'peer_gone', 'cluster_unavailable', 'not_registered', 'identity_mismatch', 'rate_limited'];
const CODES = ['1000', '1001', '1002', '1003', '1005', '1006', '1007', '1008', '1009', '1010', '1011', 'other'];
const LE = ['0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '+Inf'];
const MAIN = 'default/WsService';
const LIMITED = 'default/Limited';

const METRICS_PATH = '      /metrics:\n        signaling.metrics: ON\n';
const LIMITED_PATH = '      /Limited:\n        signaling: ON\n        signaling.rate-limit: 1\n        signaling.rate-limit-burst: 3\n';

/**
 * Parses an exposition text strictly: every sample's family has HELP and TYPE lines before it, a
 * family's lines are together, no series twice. Returns {samples: Map('name{labels}' -> number),
 * types: Map(family -> type)}.
 */
function parseExposition(text) {
    assert.ok(text.endsWith('\n'), 'the text ends with a newline');
    const samples = new Map();
    const help = new Set();
    const types = new Map();
    const finished = new Set(); // families whose lines have ended
    let current = null;
    for (const line of text.slice(0, -1).split('\n')) {
        let m;
        if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$/.exec(line))) {
            assert.ok(!help.has(m[1]) && !finished.has(m[1]), `one HELP per family: ${line}`);
            if (current !== null) finished.add(current);
            current = m[1];
            help.add(m[1]);
            continue;
        }
        if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter|histogram)$/.exec(line))) {
            assert.equal(m[1], current, `TYPE right after its HELP: ${line}`);
            types.set(m[1], m[2]);
            continue;
        }
        m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$/.exec(line);
        assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
        const family = types.get(m[1].replace(/_(bucket|sum|count)$/, '')) === 'histogram' ? m[1].replace(/_(bucket|sum|count)$/, '') : m[1];
        assert.equal(family, current, `${line}: in its family's block`);
        assert.ok(types.has(family), `${line}: its family has a TYPE`);
        const key = `${m[1]}${m[2] ?? ''}`;
        assert.ok(!samples.has(key), `no series twice: ${key}`);
        const value = Number(m[3]);
        assert.ok(Number.isFinite(value) && value >= 0, `${line}: a finite value`);
        samples.set(key, value);
    }
    return { samples, types };
}

/** GET /metrics: checks the status and the content type, returns the parsed text (and the text). */
async function scrape(srv) {
    const res = await httpRequest(`${srv.url}/metrics`);
    assert.equal(res.status, 200, `GET /metrics: ${res.status} ${res.text}`);
    assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    return { ...parseExposition(res.text), text: res.text };
}

/** A route's expected series (every label value of every family but the histogram). */
function routeSeries(route, e) {
    const r = `route="${route}"`;
    const m = new Map();
    m.set(`h2o_signaling_connections{${r}}`, e.connections);
    m.set(`h2o_signaling_users{${r}}`, e.users);
    for (const t of TYPES) m.set(`h2o_signaling_messages_received_total{${r},type="${t}"}`, e.messages[t] ?? 0);
    for (const res of RESULTS) m.set(`h2o_signaling_dials_total{${r},result="${res}"}`, e.dials[res] ?? 0);
    m.set(`h2o_signaling_called_sent_total{${r}}`, e.called);
    for (const c of CODES) m.set(`h2o_signaling_closes_total{${r},code="${c}"}`, e.closes[c] ?? 0);
    m.set(`h2o_signaling_calls{${r},state="ringing"}`, e.calls.ringing);
    m.set(`h2o_signaling_calls{${r},state="active"}`, e.calls.active);
    m.set(`h2o_signaling_calls_started_total{${r}}`, e.calls.started);
    m.set(`h2o_signaling_calls_answered_total{${r}}`, e.calls.answered);
    for (const reason of REASONS) m.set(`h2o_signaling_calls_ended_total{${r},reason="${reason}"}`, e.calls.ended[reason] ?? 0);
    return m;
}

/** The histogram of `route`: cumulative buckets in order, +Inf = count. */
function histogram(samples, route) {
    const r = `route="${route}"`;
    const buckets = LE.map((le) => {
        const v = samples.get(`h2o_signaling_dial_duration_seconds_bucket{${r},le="${le}"}`);
        assert.notEqual(v, undefined, `bucket le=${le} of ${route}`);
        return v;
    });
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1], `${route}: buckets are cumulative: ${buckets}`);
    const count = samples.get(`h2o_signaling_dial_duration_seconds_count{${r}}`);
    const sum = samples.get(`h2o_signaling_dial_duration_seconds_sum{${r}}`);
    assert.equal(buckets[buckets.length - 1], count, `${route}: le="+Inf" is the count`);
    return { buckets, count, sum };
}

/** Every h2o_signaling_* series of the routes in `expected` (route -> figures), exactly. */
function assertFigures(samples, expected) {
    const want = new Map();
    for (const [route, e] of Object.entries(expected)) for (const [k, v] of routeSeries(route, e)) want.set(k, v);
    const diffs = [];
    for (const [k, v] of want) if (samples.get(k) !== v) diffs.push(`${k}: expected ${v}, got ${samples.get(k)}`);
    for (const k of samples.keys()) {
        if (!k.startsWith('h2o_signaling_') || k.startsWith('h2o_signaling_dial_duration_seconds') || k.startsWith('h2o_signaling_backplane'))
            continue;
        if (!want.has(k)) diffs.push(`unexpected series ${k}`);
    }
    assert.deepEqual(diffs, [], 'every series exact');
    for (const [route, e] of Object.entries(expected)) {
        const h = histogram(samples, route);
        assert.equal(h.count, e.messages.dialing ?? 0, `${route}: the histogram counts every dialing once`);
        const answered = RESULTS.filter((r) => r !== 'rate_limited').reduce((n, r) => n + (e.dials[r] ?? 0), 0);
        assert.equal(h.count, answered, `${route}: count = dials answered (rate-limited messages are not read)`);
        if (h.count > 0) assert.ok(h.sum > 0 && h.sum < h.count * 5, `${route}: the sum (${h.sum} s) is plausible`);
    }
}

const fresh = () => ({ connections: 0, users: 0, messages: {}, dials: {}, called: 0, closes: {},
    calls: { ringing: 0, active: 0, started: 0, answered: 0, ended: {} } });
const bump = (obj, key, n = 1) => (obj[key] = (obj[key] ?? 0) + n);

/** Counts the `called` pushes each socket receives. */
function countCalled(ws) {
    const box = { called: 0 };
    ws.on('message', (data) => {
        if (JSON.parse(data.toString()).type === 'called') box.called++;
    });
    return box;
}

/** Sends `value` and waits for the next message whose `type` is `type` (our own listener, so the wsclient inbox stays untouched). */
function sendAndWait(ws, value, type, timeout = 5000) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            ws.off('message', on);
            reject(new Error(`no ${type} within ${timeout} ms after ${JSON.stringify(value)}`));
        }, timeout);
        const on = (data) => {
            const m = JSON.parse(data.toString());
            if (m.type !== type) return;
            clearTimeout(timer);
            ws.off('message', on);
            resolve(m);
        };
        ws.on('message', on);
        ws.send(typeof value === 'string' ? value : JSON.stringify(value));
    });
}

const config = (vars) => signalingConfig(vars, { morePaths: LIMITED_PATH + METRICS_PATH });

describe('signaling.metrics on 4 threads', { timeout: 120000 }, () => {
    test('a scripted scenario: every value exact; a scrape during load; a reload keeps the counters', { timeout: 90000 }, async (t) => {
        const srv = await startServer({ threads: 4, config });
        t.after(() => srv.stop());
        const open = closeAfter(t);
        const E = { [MAIN]: fresh(), [LIMITED]: fresh() };
        const main = E[MAIN];
        const limited = E[LIMITED];

        // nothing yet: every series at 0, the process figures there
        let s = await scrape(srv);
        assertFigures(s.samples, E);
        assert.equal(s.types.get('h2o_signaling_dial_duration_seconds'), 'histogram');
        assert.ok(!s.text.includes('backplane'), 'no backplane families without signaling.redis');

        // 8 users, u0 with 3 devices: 10 registered connections; 2 connections that never register
        const users = Array.from({ length: 8 }, (_, i) => `u${i}`);
        const sock = {};
        for (const u of users) open.push((sock[u] = await register(srv.wsUrl, u)));
        const devices = [sock.u0, await register(srv.wsUrl, 'u0', { id: 'd1' }), await register(srv.wsUrl, 'u0', { id: 'd2' })];
        open.push(devices[1], devices[2]);
        const x1 = await connect(srv.wsUrl);
        const x2 = await connect(srv.wsUrl);
        open.push(x1, x2);
        main.connections += 12;
        main.users += 8;
        bump(main.messages, 'create_connect', 10);
        const called = Object.fromEntries(users.map((u) => [u, countCalled(sock[u])]));
        const calledDevices = devices.slice(1).map(countCalled);

        // delivered: u1..u7 -> u0 (3 devices each), u0 -> u1..u7
        let seq = 0;
        for (const u of users.slice(1)) {
            const id = `m${++seq}`;
            assert.equal(await dialAnswer(sock[u], { receiverUserId: 'u0', id }), dialingOkText(id, 'u0', 3));
            const id2 = `m${++seq}`;
            assert.equal(await dialAnswer(sock.u0, { receiverUserId: u, id: id2 }), dialingOkText(id2, u, 1));
        }
        bump(main.messages, 'dialing', 14);
        bump(main.dials, 'delivered', 14);
        main.called += 7 * 3 + 7;
        // peer_offline twice, not_registered, identity_mismatch
        for (const id of ['off1', 'off2']) assert.equal(await dialAnswer(sock.u1, { receiverUserId: 'nobody', id }), dialingFailText('peer_offline', id));
        let m = await sendAndWait(x1, { type: 'dialing', receiverUserId: 'u0', id: 'nr' }, 'dialing_response');
        assert.equal(m.code, 'not_registered');
        m = await sendAndWait(sock.u2, { type: 'dialing', sponsorUserId: 'someone-else', receiverUserId: 'u0', id: 'im' }, 'dialing_response');
        assert.equal(m.code, 'identity_mismatch');
        bump(main.messages, 'dialing', 4);
        bump(main.dials, 'peer_offline', 2);
        bump(main.dials, 'not_registered');
        bump(main.dials, 'identity_mismatch');
        // invalid: not JSON, an unknown type, a create_connect without sponsorUserId
        assert.equal((await sendAndWait(sock.u3, 'not json', 'error')).code, 'bad_json');
        assert.equal((await sendAndWait(sock.u3, { type: 'nope', id: 'q' }, 'error')).code, 'unknown_type');
        assert.equal((await sendAndWait(x2, { type: 'create_connect', id: 'q' }, 'error')).code, 'missing_field');
        bump(main.messages, 'invalid', 3);

        // peer_gone: a receiver whose only connection is closing. The raw client stops reading, then
        // announces a message past signaling.max-message-size: the server queues close 1009 and lingers
        // (up to 3 s) for an echo or an EOF that the paused client never sends; the connection is still
        // registered but takes nothing. Dials until then were delivered (and are counted as such).
        const raw = await rawRegister(srv.port, 'gone-user');
        main.connections += 1;
        main.users += 1;
        bump(main.messages, 'create_connect');
        raw.socket.pause();
        raw.sendText('x', { declaredLength: 1 << 20 });
        let polls = 0;
        await waitUntil(
            async () => {
                const id = `pg${++polls}`;
                const answer = await dialAnswer(sock.u4, { receiverUserId: 'gone-user', id });
                bump(main.messages, 'dialing');
                if (answer === dialingOkText(id, 'gone-user', 1)) {
                    bump(main.dials, 'delivered');
                    main.called += 1;
                    return false;
                }
                assert.equal(answer, dialingFailText('peer_gone', id), 'the closing receiver: peer_gone');
                bump(main.dials, 'peer_gone');
                return true;
            },
            { timeout: 2500, interval: 1, what: 'peer_gone while the receiver closes' },
        );
        raw.destroy();
        main.connections -= 1;
        main.users -= 1;
        bump(main.closes, '1009');

        // closes: 1000 and 4001 (other) by the clients, 1001 by an unregistered one, a TCP drop (1006)
        sock.u5.close(1000);
        sock.u6.close(4001);
        x2.close(1001);
        await Promise.all([waitClose(sock.u5), waitClose(sock.u6), waitClose(x2)]);
        sock.u7.terminate();
        main.connections -= 4;
        main.users -= 3;
        bump(main.closes, '1000');
        bump(main.closes, 'other');
        bump(main.closes, '1001');
        bump(main.closes, '1006');

        // the second route: 3 dialings pass the rate limit (not_registered), the 4th is refused unread
        const l1 = await connect(`${srv.url.replace('http', 'ws')}/Limited`);
        open.push(l1);
        limited.connections += 1;
        for (const id of ['l1', 'l2', 'l3'])
            assert.equal((await sendAndWait(l1, { type: 'dialing', receiverUserId: 'u0', id }, 'dialing_response')).code, 'not_registered');
        assert.equal((await sendAndWait(l1, { type: 'dialing', receiverUserId: 'u0', id: 'l4' }, 'error')).code, 'rate_limited');
        bump(limited.messages, 'dialing', 3);
        bump(limited.dials, 'not_registered', 3);
        bump(limited.dials, 'rate_limited');

        // level-2 calls: one rings, is answered and hung up; one finds its callee offline
        const c1 = await connect(srv.wsUrl);
        const c2 = await connect(srv.wsUrl);
        open.push(c1, c2);
        for (const [ws, u] of [[c1, 'caller-1'], [c2, 'callee-1']])
            assert.equal((await sendAndWait(ws, { type: 'create_connect', sponsorUserId: u, level: 2, id: 'r' }, 'create_connect_response')).data.level, 2);
        main.connections += 2;
        main.users += 2;
        bump(main.messages, 'create_connect', 2);
        const incoming = new Promise((resolve) => c2.on('message', (d) => JSON.parse(d).type === 'incoming_call' && resolve()));
        const placed = await sendAndWait(c1, { type: 'call', receiverUserId: 'callee-1', media: 'audio', callId: 'metrics-call', id: 'c' }, 'call_response');
        assert.equal(placed.data.state, 'ringing');
        await incoming;
        main.calls.started += 1;
        main.calls.ringing += 1;
        bump(main.messages, 'call');
        assertFigures((await scrape(srv)).samples, E); /* the owner publishes its figures after each event */
        assert.equal((await sendAndWait(c2, { type: 'call_accept', callId: 'metrics-call', id: 'a' }, 'call_accept_response')).ok, true);
        assert.equal((await sendAndWait(c1, { type: 'call_hangup', callId: 'metrics-call', id: 'h' }, 'call_hangup_response')).ok, true);
        assert.equal((await sendAndWait(c1, { type: 'call', receiverUserId: 'nobody', media: 'audio', id: 'o' }, 'call_response')).data.state, 'ended');
        bump(main.messages, 'call');
        bump(main.messages, 'call_accept');
        bump(main.messages, 'call_hangup');
        main.calls.ringing -= 1;
        main.calls.started += 1;
        main.calls.answered += 1;
        bump(main.calls.ended, 'hangup');
        bump(main.calls.ended, 'offline');

        // the pushes arrived where they were counted
        await waitUntil(() => called.u0.called === 7 && calledDevices.every((b) => b.called === 7), { what: 'u0 devices: 7 called each' });
        for (const u of users.slice(1)) assert.equal(called[u].called, 1, `${u}: one called`);

        // a close is counted when the server has finished it: wait for the gauges, then compare all
        await waitUntil(async () => (s = await scrape(srv)).samples.get(`h2o_signaling_closes_total{route="${MAIN}",code="1006"}`) === 1 &&
            s.samples.get(`h2o_signaling_connections{route="${MAIN}"}`) === main.connections, { timeout: 8000, what: 'the closes counted' });
        assertFigures(s.samples, E);
        const fds = readdirSync(`/proc/${srv.pid}/fd`).length;
        assert.ok(Math.abs(s.samples.get('process_open_fds') - fds) <= 4, `process_open_fds ${s.samples.get('process_open_fds')} ~ ${fds} in /proc`);
        assert.ok(s.samples.get('process_max_fds') >= s.samples.get('process_open_fds'), 'process_max_fds');
        assert.ok(s.samples.get('process_resident_memory_bytes') > 1 << 20, 'process_resident_memory_bytes');
        assert.ok(s.samples.get('process_cpu_seconds_total') >= 0, 'process_cpu_seconds_total');
        t.diagnostic(`scrape of ${s.text.length} bytes, ${s.samples.size} series`);

        // load: 40 users dial all pairs (1560 dials) while the metrics are scraped in a loop
        const loadUsers = Array.from({ length: 40 }, (_, i) => `load-${i}`);
        const loadSockets = [];
        for (const u of loadUsers) loadSockets.push(await register(srv.wsUrl, u));
        open.push(...loadSockets);
        let scrapes = 0;
        let loading = true;
        const scraper = (async () => {
            let last = 0;
            while (loading && scrapes < 2000) {
                const { samples } = await scrape(srv);
                const dialing = samples.get(`h2o_signaling_messages_received_total{route="${MAIN}",type="dialing"}`);
                assert.ok(dialing >= last, 'no counter goes back between scrapes');
                last = dialing;
                scrapes++;
            }
        })();
        const res = await dialAllPairs(loadUsers, loadSockets, { window: 8, tag: 'load:', timeout: 40000 }).finally(() => (loading = false));
        await scraper;
        assert.deepEqual(res.problems, []);
        assert.equal(res.answers, res.total);
        assert.equal(res.calledTotal, res.total, 'every called arrived, once');
        assert.deepEqual(res.wrong, []);
        assert.ok(scrapes >= 3, `scraped during the load (${scrapes} scrapes)`);
        t.diagnostic(`${res.total} dials in ${res.ms} ms with ${scrapes} scrapes meanwhile`);
        main.connections += 40;
        main.users += 40;
        bump(main.messages, 'create_connect', 40);
        bump(main.messages, 'dialing', res.total);
        bump(main.dials, 'delivered', res.total);
        main.called += res.total;
        for (const ws of loadSockets) ws.close(1000);
        await Promise.all(loadSockets.map((ws) => waitClose(ws)));
        main.connections -= 40;
        main.users -= 40;
        bump(main.closes, '1000', 40);
        await waitUntil(async () => (s = await scrape(srv)).samples.get(`h2o_signaling_connections{route="${MAIN}"}`) === main.connections, {
            timeout: 8000,
            what: 'the load users closed',
        });
        assertFigures(s.samples, E);

        // a reload of the same file keeps every counter; one without /Limited takes that route out
        await expectReloaded(srv, undefined, { what: 'reload of the same file' });
        assertFigures((await scrape(srv)).samples, E);
        await expectReloaded(srv, (vars) => signalingConfig(vars, { morePaths: METRICS_PATH }), { what: 'reload without /Limited' });
        s = await scrape(srv);
        assertFigures(s.samples, { [MAIN]: main });
        assert.ok(![...s.samples.keys()].some((k) => k.includes(LIMITED)), 'a removed route leaves the scrape');
        // the kept route keeps counting after the reload
        const id = 'after-reload';
        assert.equal(await dialAnswer(sock.u1, { receiverUserId: 'u2', id }), dialingOkText(id, 'u2', 1));
        bump(main.messages, 'dialing');
        bump(main.dials, 'delivered');
        main.called += 1;
        assertFigures((await scrape(srv)).samples, { [MAIN]: main });

        const st = await srv.stop();
        assert.equal(st.code, 0, `clean exit: ${JSON.stringify(st)}\n${srv.stderr()}`);
    });

    test('HEAD has the headers without the body; other methods get 405', async (t) => {
        const srv = await startServer({ config });
        t.after(() => srv.stop());
        const head = await httpRequest(`${srv.url}/metrics`, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
        assert.equal(head.body.length, 0);
        const post = await httpRequest(`${srv.url}/metrics`, { method: 'POST', body: 'x' });
        assert.equal(post.status, 405);
        assert.equal(post.headers.allow, 'GET, HEAD');
    });

    test('configuration: a path of its own, at path level only (FILE:LINE)', async () => {
        const cases = [
            ['on the signaling path, after `signaling: ON`', (v) => signalingConfig(v, { settings: ['signaling.metrics: ON'] }), 'signaling.metrics'],
            [
                'on the signaling path, before `signaling: ON`',
                (v) => `listen: {host: 127.0.0.1, port: ${v.port}}\nhosts:\n  default:\n    paths:\n      /WsService:\n        signaling.metrics: ON\n        signaling: ON\n`,
                'signaling',
            ],
            ['with file.dir', (v) => signalingConfig(v, { morePaths: `      /metrics:\n        file.dir: ${v.dir}\n        signaling.metrics: ON\n` }), 'signaling.metrics'],
            ['at host level', (v) => signalingConfig(v, { host: ['signaling.metrics: ON'] }), 'signaling.metrics'],
            ['not ON or OFF', (v) => signalingConfig(v, { morePaths: '      /metrics:\n        signaling.metrics: YES\n' }), 'signaling.metrics'],
        ];
        for (const [what, cfg, directive] of cases) {
            const r = await runConfigTest(cfg);
            assert.equal(r.code, 1, `${what}: refused\n${r.stderr}`);
            const errors = configErrors(r.stderr, r.file);
            assert.equal(errors.length, 1, `${what}: one FILE:LINE error\n${r.stderr}`);
            const line = r.config.split('\n')[errors[0].line - 1];
            assert.ok(line.includes(`${directive}:`), `${what}: the line named is that of ${directive}: ${line}\n${r.stderr}`);
            assert.ok(errors[0].text.includes(`: ${directive}: `), `${what}: ${errors[0].text}`);
        }
        const okText = await runConfigTest((v) => signalingConfig(v, { morePaths: METRICS_PATH + '      /off:\n        signaling.metrics: OFF\n        file.dir: .\n' }));
        assert.equal(okText.code, 0, okText.stderr);
    });
});

describe('status: ON', { timeout: 60000 }, () => {
    test('the `signaling` section of /server-status/json has the scrape\'s figures', { timeout: 30000 }, async (t) => {
        const srv = await startServer({
            threads: 4,
            config: (v) => signalingConfig(v, { morePaths: METRICS_PATH + '      /server-status:\n        status: ON\n' }),
        });
        t.after(() => srv.stop('SIGKILL'));
        const open = closeAfter(t);
        const a = await register(srv.wsUrl, 'sa');
        const b = await register(srv.wsUrl, 'sb');
        const b2 = await register(srv.wsUrl, 'sb', { id: 'r2' });
        open.push(a, b, b2);
        assert.equal(await dialAnswer(a, { receiverUserId: 'sb', id: 's1' }), dialingOkText('s1', 'sb', 2));
        assert.equal(await dialAnswer(a, { receiverUserId: 'nobody', id: 's2' }), dialingFailText('peer_offline', 's2'));
        const { samples } = await scrape(srv);
        const res = await httpRequest(`${srv.url}/server-status/json?show=signaling`);
        assert.equal(res.status, 200);
        const doc = JSON.parse(res.text);
        assert.deepEqual(Object.keys(doc), ['signaling'], '?show=signaling: that section alone');
        const routes = doc.signaling.routes;
        assert.equal(routes.length, 1);
        const r = routes[0];
        const l = `route="${MAIN}"`;
        assert.equal(r.route, MAIN);
        assert.equal(r.connections, 3);
        assert.equal(r.users, 2);
        assert.equal(r.connections, samples.get(`h2o_signaling_connections{${l}}`));
        assert.equal(r.users, samples.get(`h2o_signaling_users{${l}}`));
        for (const ty of TYPES) assert.equal(r.messages_received[ty], samples.get(`h2o_signaling_messages_received_total{${l},type="${ty}"}`), ty);
        for (const re of RESULTS) assert.equal(r.dials[re], samples.get(`h2o_signaling_dials_total{${l},result="${re}"}`), re);
        for (const c of CODES) assert.equal(r.closes[c], samples.get(`h2o_signaling_closes_total{${l},code="${c}"}`), c);
        assert.equal(r.called_sent, 2);
        assert.equal(r.called_sent, samples.get(`h2o_signaling_called_sent_total{${l}}`));
        assert.deepEqual(r.messages_received, { create_connect: 3, dialing: 2, call: 0, call_ringing: 0, call_accept: 0, call_reject: 0,
            call_hangup: 0, call_signal: 0, call_resume: 0, invalid: 0 });
        assert.deepEqual(r.calls, { ringing: 0, active: 0, started: 0, answered: 0,
            ended: Object.fromEntries(REASONS.map((reason) => [reason, 0])) }, 'the calls member: no call yet');
        assert.equal(r.dials.delivered, 1);
        assert.equal(r.dials.peer_offline, 1);
        const h = histogram(samples, MAIN);
        // (a JS object lists the integer-like keys "1" and "5" first: compare bound by bound)
        assert.deepEqual(Object.keys(r.dial_duration_seconds.buckets).sort(), [...LE].sort());
        assert.deepEqual(LE.map((le) => r.dial_duration_seconds.buckets[le]), h.buckets);
        assert.ok(/"buckets": \{"0\.0005": \d+, "0\.001": /.test(res.text), 'in the text the bounds come in order');
        assert.equal(r.dial_duration_seconds.count, 2);
        assert.equal(r.dial_duration_seconds.count, h.count);
        assert.equal(r.dial_duration_seconds.sum, h.sum);
        assert.equal(r.backplane, undefined, 'no backplane member without signaling.redis');
        for (const k of ['resident_memory_bytes', 'open_fds', 'max_fds', 'cpu_seconds'])
            assert.equal(typeof doc.signaling.process[k], 'number', `process.${k}`);
        // the whole document (every section) is JSON too
        const all = await httpRequest(`${srv.url}/server-status/json`);
        assert.ok(JSON.parse(all.text).signaling, 'the section is in the full document');
    });

    test('with 4 threads the server still exits 0 after reloads dispose old generations (libh2o 2.2.5 status bugs worked around)', { timeout: 60000 }, async (t) => {
        const config = (tag) => (v) =>
            signalingConfig(v, { host: [`header.add: "X-Gen: ${tag}"`], morePaths: '      /server-status:\n        status: ON\n' });
        const srv = await startServer({ threads: 4, config: config('one') });
        t.after(() => srv.stop('SIGKILL'));
        for (const tag of ['two', 'three']) {
            assert.equal((await httpRequest(`${srv.url}/server-status/json`)).status, 200);
            await expectReloaded(srv, config(tag));
        }
        // the old generations' contexts go once their quarantine (10 s) is over: status still answers
        // meanwhile and after, from every thread
        await new Promise((res) => setTimeout(res, 11000));
        for (let i = 0; i < 8; i++) assert.equal((await httpRequest(`${srv.url}/server-status/json`)).status, 200, `status request ${i}`);
        const exit = await srv.stop('SIGTERM');
        assert.deepEqual([exit.code, exit.signal], [0, null], `a clean exit, not libh2o's assertion: ${srv.stderr().slice(-400)}`);
    });
});

describe('with Redis', { timeout: 90000 }, () => {
    test('backplane_up: 1, 0 while Redis is stopped, 1 after it returns; reconnects_total counts it', { timeout: 60000 }, async (t) => {
        const open = closeAfter(t);
        const { redis, nodes: [A, B] } = await startCluster(t, { n: 2, threads: 2, morePaths: METRICS_PATH });
        const up = (s) => s.samples.get(`h2o_signaling_backplane_up{route="${MAIN}"}`);
        const reconnects = (s) => s.samples.get(`h2o_signaling_backplane_reconnects_total{route="${MAIN}"}`);
        const dials = (s, r) => s.samples.get(`h2o_signaling_dials_total{route="${MAIN}",result="${r}"}`);
        const a1 = await register(A.wsUrl, 'ra1');
        const a2 = await register(A.wsUrl, 'ra2');
        const b1 = await register(B.wsUrl, 'rb1');
        open.push(a1, a2, b1);
        assert.equal(await dialAnswer(a1, { receiverUserId: 'rb1', id: 'x1' }), dialingOkText('x1', 'rb1', 1));
        let sA = await scrape(A);
        const base = { delivered: dials(sA, 'delivered'), unavailable: dials(sA, 'cluster_unavailable'), dialing: sA.samples.get(`h2o_signaling_messages_received_total{route="${MAIN}",type="dialing"}`) };
        assert.equal(up(sA), 1, 'backplane_up 1');
        assert.equal(reconnects(sA), 0, 'no reconnect yet');
        assert.equal(sA.types.get('h2o_signaling_backplane_up'), 'gauge');
        assert.equal(sA.types.get('h2o_signaling_backplane_reconnects_total'), 'counter');
        assert.equal(sA.samples.get(`h2o_signaling_users{route="${MAIN}"}`), 2, 'users of this node only');
        assert.equal(up(await scrape(B)), 1, 'node B: up');

        await redis.stop();
        await waitUntil(async () => up((sA = await scrape(A))) === 0, { timeout: 10000, what: 'backplane_up 0 on node A' });
        assert.equal(await dialAnswer(a1, { receiverUserId: 'rb1', id: 'x2' }), clusterUnavailableText('x2'), 'a user elsewhere: cluster_unavailable');
        assert.equal(await dialAnswer(a1, { receiverUserId: 'ra2', id: 'x3' }), dialingOkText('x3', 'ra2', 1), 'a user here: delivered');
        sA = await scrape(A);
        assert.equal(up(sA), 0);
        assert.equal(dials(sA, 'cluster_unavailable') - base.unavailable, 1, 'cluster_unavailable counted once');
        assert.equal(dials(sA, 'delivered') - base.delivered, 1, 'the local dial counted as delivered');
        assert.equal(reconnects(sA), 0, 'failed attempts are not reconnects');

        await redis.start();
        await waitUntil(async () => up((sA = await scrape(A))) === 1, { timeout: 15000, what: 'backplane_up 1 again on node A' });
        assert.equal(reconnects(sA), 1, 'one reconnect');
        await waitUntil(async () => up(await scrape(B)) === 1, { timeout: 15000, what: 'backplane_up 1 again on node B' });
        assert.equal(reconnects(await scrape(B)), 1, 'node B: one reconnect');
        assert.equal(sA.samples.get(`h2o_signaling_messages_received_total{route="${MAIN}",type="dialing"}`) - base.dialing, 2);
        const h = histogram(sA.samples, MAIN);
        assert.equal(h.count, sA.samples.get(`h2o_signaling_messages_received_total{route="${MAIN}",type="dialing"}`), 'histogram count = dialings');
    });
});
