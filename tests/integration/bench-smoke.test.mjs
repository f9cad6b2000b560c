// Smoke test of the benchmark's instruments (tests/bench/, run by tests/bench/run): the load generator and the raw
// TCP echo build without a warning, each workload runs with tiny counts against the real server (routed, idle,
// churn), against the echo (echo) and against the Node `ws` reference peer (routed), and every run prints a RESULT
// line that parses, delivers something and reports no error. The generator must also fail, loudly, when the
// upgrade is refused. The scale-out instruments run against two nodes on a real redis-server: routed across nodes
// (--url2, --watch), Redis memory per user (idle --redis-port) and the re-subscribe watcher through a Redis restart
// (resub, idle --hold). Figures are printed by the benchmark, never asserted here.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { requireRedisSupport, startNodes, startRedis, waitNodesLinked } from '../lib/redis.mjs';
import { REPO_ROOT, freePorts, signalingConfig, startServer } from '../lib/server.mjs';
import { withTimeout } from '../lib/wait.mjs';

const BENCH = join(REPO_ROOT, 'tests', 'bench');
const CFLAGS = ['-O2', '-Wall', '-Wextra', '-Werror'];

const config = (vars) =>
    signalingConfig(vars, {
        global: ['max-connections: 1000'],
        settings: [
            'signaling.ping-interval: 0',
            // the generator sends as fast as the server answers: no per-connection rate limit in a load test
            'signaling.rate-limit: 0',
        ],
    });

/** Runs a program to completion (bounded by `timeout` ms): {code, stdout, stderr}. */
function run(file, args, { timeout = 15000 } = {}) {
    return new Promise((resolve) => {
        execFile(file, args, { timeout }, (err, stdout, stderr) => {
            resolve({ code: err ? (err.code ?? err.signal ?? 'failed') : 0, stdout, stderr });
        });
    });
}

/** Compiles one bench C file into `dir`; any warning fails (-Werror). */
async function compile(dir, src, name, libs = []) {
    const out = join(dir, name);
    const res = await run('cc', [...CFLAGS, '-o', out, join(BENCH, src), ...libs], { timeout: 60000 });
    assert.equal(res.code, 0, `cc ${src} failed:\n${res.stderr}`);
    assert.equal(res.stderr, '', `cc ${src} printed warnings:\n${res.stderr}`);
    return out;
}

/** The RESULT line of a loadgen run as {key: value}, numbers as numbers. */
function parseResult(stdout) {
    const lines = stdout.split('\n').filter((l) => l.startsWith('RESULT '));
    assert.equal(lines.length, 1, `expected one RESULT line in:\n${stdout}`);
    const result = {};
    for (const field of lines[0].slice('RESULT '.length).trim().split(/\s+/)) {
        const m = /^([a-z0-9_]+)=(\S*)$/.exec(field);
        assert.ok(m, `malformed RESULT field "${field}" in: ${lines[0]}`);
        result[m[1]] = m[2] !== '' && !Number.isNaN(Number(m[2])) ? Number(m[2]) : m[2];
    }
    return result;
}

/** A loadgen run that must succeed: exit 0, nothing on stderr, no error counted. Returns the parsed RESULT. */
async function loadgen(bin, args) {
    const res = await run(bin, args);
    assert.equal(res.stderr, '', `loadgen ${args.join(' ')} printed errors:\n${res.stderr}`);
    assert.equal(res.code, 0, `loadgen ${args.join(' ')} exited ${res.code}:\n${res.stdout}`);
    const r = parseResult(res.stdout);
    assert.equal(r.errors, 0);
    return r;
}

/** Spawns a peer and resolves once it printed its "listening" line; the child is killed at test end. */
async function startPeer(t, file, args) {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    await withTimeout(
        new Promise((resolve, reject) => {
            child.stdout.setEncoding('utf8').on('data', (d) => {
                out += d;
                if (/listening on/.test(out)) resolve();
            });
            child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
            child.once('exit', (code) => reject(new Error(`${file} exited (${code}) before listening:\n${out}`)));
        }),
        10000,
        `${file} to listen`,
    );
    return child;
}

/** Spawns a loadgen that keeps running; resolves once its stdout matched `pattern`. `exit` resolves with its code. */
async function spawnUntil(t, file, args, pattern) {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    const run = { child, out: '', err: '' };
    run.exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.stderr.setEncoding('utf8').on('data', (d) => (run.err += d));
    await withTimeout(
        new Promise((resolve, reject) => {
            child.stdout.setEncoding('utf8').on('data', (d) => {
                run.out += d;
                if (pattern.test(run.out)) resolve();
            });
            run.exit.then((code) => reject(new Error(`loadgen exited (${code}):\n${run.out}${run.err}`)));
        }),
        15000,
        `loadgen ${args.join(' ')} to print ${pattern}`,
    );
    return run;
}

describe('benchmark instruments (tests/bench)', { timeout: 60000 }, () => {
    let dir, bin, srv;
    before(async () => {
        dir = mkdtempSync(join(tmpdir(), 'h2o-signaling-bench-'));
        const crypto = await run('pkg-config', ['--cflags', '--libs', 'libcrypto']);
        assert.equal(crypto.code, 0, 'pkg-config libcrypto failed');
        bin = await compile(dir, 'loadgen.c', 'loadgen', crypto.stdout.trim().split(/\s+/));
        srv = await startServer({ config });
    });
    after(async () => {
        await srv?.stop();
        if (dir) rmSync(dir, { recursive: true, force: true });
    });
    const common = () => ['--port', String(srv.port), '--server-pid', String(srv.pid), '--label', 'h2o-signaling'];

    test('routed: 2 pairs ping-pong for 1 s deliver called messages, with latency and server CPU', async () => {
        const r = await loadgen(bin, [...common(), '--workload', 'routed', '--pairs', '2', '--duration', '1', '--warmup', '0.2']);
        assert.equal(r.workload, 'routed');
        assert.equal(r.server, 'h2o-signaling');
        assert.ok(r.delivered > 0, `delivered ${r.delivered}`);
        assert.ok(r.msgs_per_s > 0 && r.p50_us > 0 && r.p99_us >= r.p50_us && r.p999_us >= r.p99_us, JSON.stringify(r));
        assert.ok(r.server_us_per_msg > 0, `server_us_per_msg ${r.server_us_per_msg}`);
        assert.ok(r.client_limited === 0 || r.client_limited === 1);
    });

    test('routed --rate: a paced run reaches a modest rate', async () => {
        const r = await loadgen(bin, [...common(), '--pairs', '2', '--rate', '2000', '--duration', '0.5', '--warmup', '0.1']);
        assert.ok(r.delivered > 0);
        assert.equal(r.rate, 2000);
    });

    test('idle: 20 registered connections, server RSS read before and after', async () => {
        const r = await loadgen(bin, [...common(), '--workload', 'idle', '--conns', '20', '--warmup', '0.1']);
        assert.equal(r.workload, 'idle');
        assert.equal(r.conns, 20);
        assert.ok(r.rss_before_kb > 0 && r.rss_after_kb > 0, JSON.stringify(r));
        assert.equal(typeof r.rss_kb_per_conn, 'number');
    });

    test('churn: connect + upgrade + create_connect + close cycles for 1 s', async () => {
        const r = await loadgen(bin, [...common(), '--workload', 'churn', '--conns', '4', '--duration', '1', '--warmup', '0.2']);
        assert.equal(r.workload, 'churn');
        assert.ok(r.cycles > 0, `cycles ${r.cycles}`);
        assert.ok(r.server_us_per_cycle > 0);
    });

    test('a refused upgrade is an error: non-zero exit and a message', async () => {
        const res = await run(bin, ['--port', String(srv.port), '--path', '/not-signaling', '--pairs', '1', '--duration', '0.2']);
        assert.notEqual(res.code, 0);
        assert.match(res.stderr, /upgrade refused|connections registered/);
    });

    test('the generator refuses a non-loopback address', async () => {
        const res = await run(bin, ['--host', '192.0.2.1', '--port', '80']);
        assert.equal(res.code, 2);
        assert.match(res.stderr, /loopback/);
    });

    test('echo against peers/tcp-echo.c', async (t) => {
        const echo = await compile(dir, 'peers/tcp-echo.c', 'tcp-echo');
        const [port] = await freePorts(1);
        const child = await startPeer(t, echo, [String(port)]);
        const r = await loadgen(bin, ['--port', String(port), '--server-pid', String(child.pid), '--workload', 'echo',
            '--pairs', '2', '--duration', '0.5', '--warmup', '0.1']);
        assert.ok(r.delivered > 0);
    });

    test('routed and idle against the Node ws reference peer (peers/peer-ws.mjs)', async (t) => {
        const [port] = await freePorts(1);
        const child = await startPeer(t, process.execPath, [join(BENCH, 'peers', 'peer-ws.mjs'), String(port)]);
        const args = ['--port', String(port), '--server-pid', String(child.pid), '--label', 'ws'];
        const r = await loadgen(bin, [...args, '--pairs', '2', '--duration', '0.5', '--warmup', '0.1']);
        assert.ok(r.delivered > 0);
        const idle = await loadgen(bin, [...args, '--workload', 'idle', '--conns', '10', '--warmup', '0.1']);
        assert.equal(idle.conns, 10);
    });

    test('scale-out: routed across two nodes on one Redis, Redis memory per user, resub through a Redis restart', async (t) => {
        await requireRedisSupport();
        const redis = await startRedis();
        t.after(() => redis.stop());
        const settings = ['signaling.ping-interval: 0', 'signaling.rate-limit: 0'];
        const [a, b] = await startNodes(t, ['a', 'b'].map((nodeId) => ({ redis: redis.addr, nodeId, settings })));
        await waitNodesLinked(redis, [a, b]);
        const r = await loadgen(bin, ['--port', String(a.port), '--url2', `ws://127.0.0.1:${b.port}/WsService`, '--server-pid',
            String(a.pid), '--watch', `nodeb:${b.pid}`, '--watch', `redis:${redis.pid}`, '--pairs', '2', '--duration', '0.5',
            '--warmup', '0.1']);
        assert.ok(r.delivered > 0 && r.nodeb_us_per_msg >= 0 && r.redis_us_per_msg >= 0, JSON.stringify(r));
        // 20 users held on node B: their channels in Redis, then through a restart of Redis on the same port
        const idle = ['--port', String(b.port), '--server-pid', String(b.pid), '--workload', 'idle', '--conns', '20',
            '--warmup', '0.1', '--redis-port', String(redis.port)];
        const hold = await spawnUntil(t, bin, [...idle, '--hold', '30'], /^RESULT .*\n/m);
        const held = parseResult(hold.out);
        assert.ok(held.errors === 0 && held.redis_pubsub_channels === 22 && held.redis_bytes_per_user > 0, JSON.stringify(held));
        const watchArgs = ['--workload', 'resub', '--redis-port', String(redis.port), '--duration', '20'];
        const watch = await spawnUntil(t, bin, watchArgs, /^READY/m);
        await redis.restart();
        assert.equal(await watch.exit, 0, watch.out + watch.err);
        const resub = parseResult(watch.out);
        assert.ok(resub.channels === 22 && resub.resubscribed === 22 && resub.all_ms >= 0, JSON.stringify(resub));
        hold.child.kill('SIGTERM');
        assert.equal(await hold.exit, 0, `the held users were dropped: ${hold.err}`);
        assert.equal(hold.err, '');
    });

    test('routed against the uWebSockets.js reference peer (peers/peer-uws.mjs)', async (t) => {
        assert.ok(existsSync(join(BENCH, 'node_modules', '@trufflesuite', 'uws-js-unofficial')),
            'tests/bench/node_modules is missing: run tools/install-deps (or npm ci in tests/bench)');
        const [port] = await freePorts(1);
        const child = await startPeer(t, process.execPath, [join(BENCH, 'peers', 'peer-uws.mjs'), String(port)]);
        const r = await loadgen(bin, ['--port', String(port), '--server-pid', String(child.pid), '--pairs', '2',
            '--duration', '0.5', '--warmup', '0.1']);
        assert.ok(r.delivered > 0);
    });
});
