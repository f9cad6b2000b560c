#!/usr/bin/env node
// tests/bench/compression.mjs: permessage-deflate end to end (issue 14, item 5; docs/performance.md#compression).
// Prints figures, asserts nothing. h2o-signaling with `signaling.compression: OFF` and then `ON`, a fresh server
// process for each run, pinned to core 0 (taskset -c 0); run this script on the other core (taskset -c 1).
//
//   routed  PAIRS pairs of Node `ws` clients (perMessageDeflate with threshold 0 when ON, as browsers compress every
//           message); each sender sends dialings paced at RATE in all, each carrying the 6 KB Chrome-like offer of
//           deflate-bench.c (`deflate-bench -m`), so the server inflates the dialing, routes it and compresses the
//           `called` (same field1) for the receiver; the dialing_response (~100 bytes) stays under
//           compression-min-size. Over SECONDS after WARMUP: the server's CPU per routed message (utime + stime of the
//           process, /proc/PID/stat) and the bytes on the wire per routed message (every client socket's bytesRead +
//           bytesWritten: dialing + dialing_response + called, WebSocket framing included, TCP/IP headers not).
//   idle    IDLE registered connections that do nothing (compression negotiated when ON): the server's RSS per
//           connection (VmRSS after minus before, over IDLE); then every connection sends one compressed 6 KB dialing
//           to its neighbour and receives one compressed `called`, and the RSS per connection again (what a connection
//           keeps after compressed traffic). The thread's zlib state (one compressor, one decompressor, made on first
//           use) is in the "before" of both: 100 connections are registered and one message compressed each way first.
//
//   node tests/bench/compression.mjs          (H2O_SIGNALING_BIN, default build/h2o-signaling)
// Environment: PAIRS [20] RATE [1000] msgs/s in all SECONDS [10] WARMUP [2] IDLE [2000] REPS [3] (the median is printed)
//   BENCH_BUILD [tests/bench/build]: where deflate-bench is built (cc -O2, no autotools)

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import WebSocket from 'ws';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BIN = process.env.H2O_SIGNALING_BIN ?? join(ROOT, 'build', 'h2o-signaling');
const BUILD = process.env.BENCH_BUILD ?? join(HERE, 'build');
const env = (name, dflt) => Number(process.env[name] ?? dflt);
const PAIRS = env('PAIRS', 20);
const RATE = env('RATE', 1000);
const SECONDS = env('SECONDS', 10);
const WARMUP = env('WARMUP', 2);
const IDLE = env('IDLE', 2000);
const REPS = env('REPS', 3);
const TICK = 1000 / 100; // clock ticks of /proc/PID/stat: 100 per second on Linux
const live = new Set(); // servers not seen to exit: killed when this script exits, however it does
process.once('exit', () => {
    for (const p of live) p.kill('SIGKILL');
});

function message() {
    mkdirSync(BUILD, { recursive: true });
    const bench = join(BUILD, 'deflate-bench');
    execFileSync('cc', ['-O2', `-I${ROOT}/handler`, `${HERE}/deflate-bench.c`, `${ROOT}/handler/core/sig_deflate.c`,
        `${ROOT}/handler/core/sig_wsframe.c`, `${ROOT}/handler/common/sig_common.c`, '-lz', '-o', bench]);
    return execFileSync(bench, ['-m']).toString();
}

function freePort() {
    return new Promise((res, rej) => {
        const s = net.createServer();
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => res(port));
        });
        s.on('error', rej);
    });
}

async function startServer(compression) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'h2o-signaling-compression-'));
    const file = join(dir, 'h2o.conf');
    writeFileSync(file, `listen: {host: 127.0.0.1, port: ${port}}
max-connections: 19000
max-connections-per-address: 0
signaling.rate-limit: 0
signaling.ping-interval: 0
hosts:
  default:
    paths:
      /WsService:
        signaling: ON
        signaling.compression: ${compression ? 'ON' : 'OFF'}
`);
    const proc = spawn('taskset', ['-c', '0', BIN, '-c', file], { stdio: ['ignore', 'ignore', 'inherit'] });
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    for (let i = 0; i < 200; i++) {
        const up = await new Promise((res) => {
            const c = net.connect(port, '127.0.0.1', () => (c.destroy(), res(true)));
            c.on('error', () => res(false));
        });
        if (up) break;
        await delay(25);
    }
    return { port, proc, url: `ws://127.0.0.1:${port}/WsService` };
}

function stop(srv) {
    return new Promise((res) => {
        srv.proc.once('exit', res);
        srv.proc.kill('SIGTERM');
    });
}

const cpuTicks = (pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
};
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

/** A registered `ws` client; `queue` gets every text message after the create_connect answer. */
function client(url, user, compression) {
    return new Promise((res, rej) => {
        const ws = new WebSocket(url, { perMessageDeflate: compression ? { threshold: 0 } : false });
        ws.queue = [];
        ws.on('error', rej);
        ws.once('open', () => {
            if (compression && ws.extensions !== 'permessage-deflate') rej(new Error(`not negotiated: ${ws.extensions}`));
            ws.send(JSON.stringify({ type: 'create_connect', sponsorUserId: user, id: 'r' }));
        });
        ws.once('message', () => {
            ws.on('message', (d) => ws.onmsg?.(d));
            res(ws);
        });
    });
}

const wire = (list) => list.reduce((n, ws) => n + ws._socket.bytesRead + ws._socket.bytesWritten, 0);

async function routed(compression, msg) {
    const srv = await startServer(compression);
    const senders = [];
    const receivers = [];
    for (let i = 0; i < PAIRS; i++) {
        receivers.push(await client(srv.url, `r${i}`, compression));
        senders.push(await client(srv.url, `s${i}`, compression));
    }
    const texts = receivers.map((_, i) => msg.replace('"receiverUserId":"2211"', `"receiverUserId":"r${i}"`));
    let called = 0;
    let answered = 0;
    for (const r of receivers) r.onmsg = () => called++;
    for (const s of senders) s.onmsg = () => answered++;
    let sent = 0;
    const t0 = Date.now();
    const timer = setInterval(() => {
        const due = Math.floor(((Date.now() - t0) / 1000) * RATE);
        for (; sent < due; sent++) senders[sent % PAIRS].send(texts[sent % PAIRS]);
    }, 5);
    await delay(WARMUP * 1000);
    const all = senders.concat(receivers);
    const c0 = { cpu: cpuTicks(srv.proc.pid), called, bytes: wire(all), t: Date.now() };
    await delay(SECONDS * 1000);
    const c1 = { cpu: cpuTicks(srv.proc.pid), called, bytes: wire(all), t: Date.now() };
    clearInterval(timer);
    const n = c1.called - c0.called;
    const out = {
        rate: (n * 1000) / (c1.t - c0.t),
        usPerMsg: ((c1.cpu - c0.cpu) * TICK * 1000) / n,
        cpuShare: ((c1.cpu - c0.cpu) * TICK) / (c1.t - c0.t),
        bytesPerMsg: (c1.bytes - c0.bytes) / n,
    };
    for (const ws of all) ws.terminate();
    await stop(srv);
    void answered;
    return out;
}

async function idle(compression, msg) {
    const srv = await startServer(compression);
    const pid = srv.proc.pid;
    // first what is made once: 100 connections (the registry's first growth, h2o's recycled buffers) and the
    // thread's zlib state (one compressed message each way)
    const warm = [];
    for (let i = 0; i < 100; i++) warm.push(await client(srv.url, `warm-${i}`, compression));
    const [a, b] = warm;
    await new Promise((res) => {
        b.onmsg = res;
        a.send(msg.replace('"receiverUserId":"2211"', '"receiverUserId":"warm-1"'));
    });
    await delay(500);
    const before = rssKb(pid);
    const conns = [];
    for (let i = 0; i < IDLE; i += 100) {
        const batch = [];
        for (let k = i; k < Math.min(IDLE, i + 100); k++) batch.push(client(srv.url, `u${k}`, compression));
        conns.push(...(await Promise.all(batch)));
    }
    await delay(1000);
    const registered = rssKb(pid);
    // one 6 KB dialing from each to its neighbour: each gets one `called` (and one dialing_response)
    let got = 0;
    await new Promise((res) => {
        for (const ws of conns) ws.onmsg = () => ++got === 2 * IDLE && res();
        conns.forEach((ws, i) => ws.send(msg.replace('"receiverUserId":"2211"', `"receiverUserId":"u${i ^ 1}"`)));
    });
    await delay(1000);
    const after = rssKb(pid);
    for (const ws of conns.concat(warm)) ws.terminate();
    await stop(srv);
    return { idleBytes: ((registered - before) * 1024) / IDLE, afterBytes: ((after - before) * 1024) / IDLE };
}

const median = (xs) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)];

async function main() {
    if (!existsSync(BIN)) throw new Error(`no server binary at ${BIN} (set H2O_SIGNALING_BIN)`);
    const msg = message();
    console.log(`message: ${Buffer.byteLength(msg)} bytes (a dialing with a Chrome-like offer); server ${BIN}`);
    console.log(`routed: ${PAIRS} pairs at ${RATE} msgs/s for ${SECONDS} s; idle: ${IDLE} connections; median of ${REPS}\n`);
    const rows = {};
    for (let rep = 0; rep < REPS; rep++) {
        for (const on of [false, true]) {
            const r = await routed(on, msg);
            const m = await idle(on, msg);
            const key = on ? 'ON' : 'OFF';
            rows[key] ??= [];
            rows[key].push({ ...r, ...m });
            console.log(`  run ${rep + 1} ${key}: ${r.usPerMsg.toFixed(1)} us/msg at ${r.rate.toFixed(0)} msgs/s (${(100 * r.cpuShare).toFixed(0)}% of a core), ` +
                `${r.bytesPerMsg.toFixed(0)} B/msg, idle ${m.idleBytes.toFixed(0)} B/conn, after traffic ${m.afterBytes.toFixed(0)} B/conn`);
        }
    }
    console.log('\n| compression | server CPU per routed message | bytes on the wire per routed message | RSS per idle connection | after one compressed message each way |');
    console.log('|---|---|---|---|---|');
    for (const key of ['OFF', 'ON']) {
        const col = (f) => median(rows[key].map(f));
        console.log(`| ${key} | ${col((r) => r.usPerMsg).toFixed(1)} us | ${col((r) => r.bytesPerMsg).toFixed(0)} | ` +
            `${col((r) => r.idleBytes).toFixed(0)} B | ${col((r) => r.afterBytes).toFixed(0)} B |`);
    }
}

main().then(
    () => process.exit(0),
    (err) => {
        console.error(err);
        process.exit(1);
    },
);
