// 50 reloads under load (reload.md, the contract; test plan 7): a co-hosted config (static files,
// a REST API through proxy.reverse.url, signaling, an access log, 2 threads) is reloaded 50 times
// while clients dial continuously, API requests go through the proxy, and every few reloads a new
// dialer and a new receiver join (on the newest generation). Checks: every dialing gets exactly
// one answer, ok with delivered = the receiver's devices, and exactly that many `called` arrive
// (nothing lost or duplicated); every API request gets its own answer; 50 reload lines with
// generations 2..51; the server's open fds flat within FD_MARGIN after the reloads; RSS growth
// per reload below 200 KB (the figures are printed as diagnostics).

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { httpRequest, startUpstream } from '../lib/http.mjs';
import { expectReloaded, fdCount, fdKinds, outcomes, requireReload, rssKb, SLOW, underMemoryTool } from '../lib/reload.mjs';
import { startServer } from '../lib/server.mjs';
import { register } from '../lib/sigclient.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';
import { closeAll } from '../lib/wsclient.mjs';

const RELOADS = 50;
const RECEIVERS = 12; // the first TWO_DEVICES of them with a second device
const TWO_DEVICES = 4;
const DIALERS = 6;
const WINDOW = 4; // dialings in flight per dialer
const JOIN_EVERY = 5; // reloads between two joins (one dialer and one receiver)
const API_LOOPS = 2;
const PER_RELOAD = { answers: 20, api: 2 }; // traffic that must flow between two reloads
const FD_MARGIN = 8;
const RSS_PER_RELOAD_KB = 200;

before(requireReload);

const cohost = (upstreamPort, k) => (vars) => `listen: {host: 127.0.0.1, port: ${vars.port}}
access-log: ${vars.dir}/access.log
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
        signaling.max-connections-per-user: 4
        signaling.rate-limit: 0
      /api:
        proxy.reverse.url: http://127.0.0.1:${upstreamPort}/
        proxy.preserve-host: ON
      /:
        file.dir: ${vars.dir}/www
        header.add: "X-Reload: ${k}"
`;

test(`${RELOADS} reloads while clients dial and call the API: nothing lost or duplicated, fds and RSS flat`, { timeout: 90000 * SLOW }, async (t) => {
    const upstream = await startUpstream((req, res) => res.end(`api ${req.url}`));
    t.after(() => upstream.close());
    const srv = await startServer({ threads: 2, config: cohost(upstream.port, 0), files: { 'www/index.html': 'site\n' } });
    t.after(() => srv.stop('SIGKILL'));
    const sockets = [];
    t.after(() => closeAll(sockets));

    const problems = [];
    const note = (msg) => problems.length < 30 && problems.push(msg);
    const dials = new Map(); // id -> {receiver, devices, answers, delivered, called}
    let seq = 0;
    let answers = 0;
    let stopping = false;
    const devices = new Map(); // receiver -> device count
    const targets = [];

    /** A receiver device: counts `called` per dialing id (field1 carries "id>receiver"). */
    function asReceiver(ws, me) {
        ws.on('message', (data) => {
            const m = JSON.parse(data.toString('utf8'));
            if (m.type !== 'called') return note(`${me}: unexpected ${data}`);
            const [id, to] = m.data.field1.split('>');
            const rec = dials.get(id);
            if (!rec || to !== me) return note(`${me}: a called for ${m.data.field1}`);
            rec.called++;
        });
        ws.on('close', (code) => stopping || note(`${me}: closed (${code})`));
    }
    async function addReceiver(me, n) {
        for (let d = 0; d < n; d++) {
            const ws = await register(srv.wsUrl, me, { id: `dev${d}` });
            sockets.push(ws);
            asReceiver(ws, me);
        }
        devices.set(me, n);
        targets.push(me);
    }
    /** A dialer: WINDOW dialings in flight to random receivers until `stopping`. */
    async function addDialer(me) {
        const ws = await register(srv.wsUrl, me);
        sockets.push(ws);
        const pending = new Set();
        let resolveIdle;
        const idle = new Promise((r) => (resolveIdle = r));
        const fill = () => {
            while (!stopping && pending.size < WINDOW) {
                const id = `${me}.${++seq}`;
                const receiver = targets[seq % targets.length];
                dials.set(id, { receiver, devices: devices.get(receiver), answers: 0, delivered: null, called: 0 });
                pending.add(id);
                ws.send(JSON.stringify({ type: 'dialing', receiverUserId: receiver, field1: `${id}>${receiver}`, id }));
            }
            if (stopping && pending.size === 0) resolveIdle();
        };
        ws.on('message', (data) => {
            const text = data.toString('utf8');
            const m = JSON.parse(text);
            const rec = m.type === 'dialing_response' ? dials.get(m.id) : undefined;
            if (!rec) return note(`${me}: unexpected ${text}`);
            rec.answers++;
            answers++;
            pending.delete(m.id);
            if (m.ok !== true || m.data?.receiverUserId !== rec.receiver) note(`${me}: ${text}`);
            else rec.delivered = m.data.delivered;
            fill();
        });
        ws.on('close', (code) => stopping || note(`${me}: closed (${code})`));
        return { start: fill, idle, kick: fill };
    }

    // API traffic: each request has its own path and must get its own answer
    let apiOk = 0;
    let apiSeq = 0;
    const apiLoops = Array.from({ length: API_LOOPS }, async (_, loop) => {
        while (!stopping) {
            const n = `${loop}-${++apiSeq}`;
            try {
                const res = await httpRequest(`${srv.url}/api/req-${n}`, { timeout: 5000 * SLOW });
                if (res.status !== 200 || res.text !== `api /req-${n}`) note(`API ${n}: ${res.status} ${res.text}`);
                else apiOk++;
            } catch (err) {
                note(`API ${n}: ${err.message}`);
            }
        }
    });

    for (let r = 0; r < RECEIVERS; r++) await addReceiver(`rx-${r}`, r < TWO_DEVICES ? 2 : 1);
    const dialers = [];
    for (let d = 0; d < DIALERS; d++) dialers.push(await addDialer(`dx-${d}`));
    for (const d of dialers) d.start();
    const flowing = async (what) => {
        const a0 = answers;
        const p0 = apiOk;
        await waitUntil(() => problems.length > 0 || (answers - a0 >= PER_RELOAD.answers && apiOk - p0 >= PER_RELOAD.api), {
            timeout: 10000 * SLOW,
            what: `traffic ${what}`,
        });
    };
    await flowing('warm-up');
    await flowing('warm-up');
    const fdBefore = fdCount(srv.pid);
    const fdKindsBefore = fdKinds(srv.pid);
    const rssBefore = rssKb(srv.pid);

    const started = Date.now();
    const joiners = [];
    for (let k = 1; k <= RELOADS; k++) {
        await expectReloaded(srv, cohost(upstream.port, k), { generation: k + 1, what: `reload ${k}` });
        if (k % JOIN_EVERY === 0) {
            // a receiver and a dialer of the newest generation join the traffic
            await addReceiver(`rx-new-${k}`, 1);
            const d = await addDialer(`dx-new-${k}`);
            joiners.push(d);
            dialers.push(d);
            d.start();
        }
        await flowing(`after reload ${k}`);
        if (problems.length) break;
    }
    const reloadMs = Date.now() - started;
    assert.deepEqual(problems, [], 'no wrong, missing or unexpected message');
    const home = await httpRequest(`${srv.url}/`);
    assert.equal(home.headers['x-reload'], String(RELOADS), 'the last file is the one serving');

    // stop the traffic: every dialing in flight gets its answer, then every called arrives
    stopping = true;
    for (const d of dialers) d.kick();
    await withTimeout(Promise.all([...dialers.map((d) => d.idle), ...apiLoops]), 10000 * SLOW, 'the answers in flight');
    const records = [...dials.values()];
    await waitUntil(() => records.every((r) => r.delivered === null || r.called >= r.delivered), {
        timeout: 10000 * SLOW,
        what: 'every called of the answered dialings',
    }).catch(() => {});
    const wrong = records.filter((r) => r.answers !== 1 || r.delivered !== r.devices || r.called !== r.delivered);
    assert.deepEqual(
        wrong.slice(0, 10),
        [],
        `${wrong.length} of ${records.length} dialings without exactly one answer, delivered = devices, as many called`,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(
        outcomes(srv).map((o) => [o.ok, o.generation]),
        Array.from({ length: RELOADS }, (_, i) => [true, i + 2]),
        'one good reload line per SIGHUP',
    );

    // fds: the joiners leave; the old generations' proxy connections idle out (keep-alive 2 s)
    closeAll(sockets.slice(-2 * joiners.length));
    let fdAfter;
    const fdsFlat = await waitUntil(() => (fdAfter = fdCount(srv.pid)) <= fdBefore + FD_MARGIN, {
        timeout: 20000 * SLOW, // an old context (and what it holds) goes once empty and 10 s after the switch
        what: `open fds back within ${FD_MARGIN} of ${fdBefore}`,
    }).then(
        () => null,
        (err) =>
            `${err.message}: ${fdAfter} fds after ${RELOADS} reloads (${fdKinds(srv.pid)}), ` +
            `${fdBefore} before (${fdKindsBefore})`,
    );
    const rssAfter = rssKb(srv.pid);
    const perReload = (rssAfter - rssBefore) / RELOADS;
    t.diagnostic(
        `${RELOADS} reloads in ${reloadMs} ms; ${records.length} dialings, ${apiOk} API requests; ` +
            `fds ${fdBefore} -> ${fdAfter}; RSS ${rssBefore} -> ${rssAfter} kB = ${perReload.toFixed(1)} kB per reload`,
    );
    // both figures are printed before either is asserted
    if (fdsFlat) assert.fail(fdsFlat);
    const tool = underMemoryTool(srv.pid);
    if (tool) t.diagnostic(`RSS bound not checked: the server runs under ${tool}`);
    else assert.ok(perReload < RSS_PER_RELOAD_KB, `RSS grew ${perReload.toFixed(1)} kB per reload (bound ${RSS_PER_RELOAD_KB})`);
    assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);
});
