#!/usr/bin/env node
// Soak of /WsService (issue 4, item 6): a bounded run on loopback that mixes, at the same time,
//   - churn: raw clients that connect, register (create_connect), maybe dial, and close cleanly,
//     move to another id, live long enough to be pinged, or vanish (socket.destroy(), no close
//     frame) before/after registering, in the middle of a frame, of a fragmented message or of
//     the HTTP handshake;
//   - routed traffic: a stable population (`--users`, some with 2 devices, Node `ws` clients that
//     answer pings) dialing each other at `--rate` dialings/s with ids and a unique tag in field1,
//     plus dialings to churn users, to ids nobody ever registered, and some without an id;
//   - slow readers: registered raw clients that stop reading (socket.pause()) while the stable
//     population dials them with ~6 KB pushes, either lightly (the heartbeat drops them) or in a
//     flood (the send queue passes max-queued-bytes: close 1008); dialings to them must then fail
//     with peer_gone / peer_offline, never hang;
//   - malformed input: bad JSON and fields of the wrong kind (error replies, the connection stays),
//     binary frames (1003), invalid UTF-8 (1007), oversized messages (1009, also fragmented),
//     a reserved opcode (1002), and a valid fragmented dialing;
//   - calls (level 2, one node only): `--call-pairs` pairs of users (each with 1 or 2 level-2 devices,
//     every one with a deviceId) who call each other one call at a time, in cycles: `call` ->
//     incoming_call on every device of the callee (expiresIn = the ring timeout), maybe early signals
//     from the caller and call_ringing (call_state alerting N to the caller), then one outcome: the
//     accept (one device, or both devices of a 2-device callee at once: one wins, the other gets
//     call_ended answered_elsewhere and, if it accepted too, the error answered_elsewhere), call_accepted
//     on both sides, the early signals at the accepting device, signals both ways at ~10/s per party,
//     and a hangup by either party (call_ended hangup with the reason as detail; sometimes the hangup
//     is sent twice: the same call_ended again, "repeat":true) or a clean close (its hangup); or a
//     reject (rejected / busy to the caller, rejected_elsewhere to the other device), a cancel
//     (cancelled to every ringing device), a cancel and an accept at the same moment (either may win;
//     the loser is answered as if it came after), a ring timeout (no_answer to all), or an abrupt loss
//     of a party mid-call (socket destroyed): the other side gets call_state peerConnected:false and
//     keeps signalling; the lost device either comes back with its deviceId within the reconnect
//     grace (its create_connect_response lists the call, call_state to both, the kept signals follow
//     in order) or does not (call_ended peer_gone to the other side; it comes back after, lists no
//     call, and a late hangup gets the end again as a repeat). The server runs with
//     signaling.call.ring-timeout 1500 ms and signaling.call.reconnect-grace 1000 ms for this.
// Then it checks, printing every figure before asserting it (exit 1 on any failure):
//   1. every dialing with an id from a stable client to an online stable user was answered ok with
//      delivered == that user's device count, and its `called` arrived exactly once on each device
//      (byte-exact); nothing lost, nothing duplicated, nothing misrouted;
//   2. every dialing got exactly one answer (dialing_response ok / error code; a malformed one an
//      error reply), none left unanswered after a bounded drain;
//   3. once the churn is closed: the server holds exactly the baseline's sockets, and a probe dial to
//      every user id ever used finds no ghost (peer_offline) and each stable user with exactly its
//      live devices; once the stable clients are closed too, every stable id is offline;
//   4. server RSS after the run is within 10% of the level before it (see "RSS baseline" below);
//   5. the server is alive at the end and exits 0 on SIGTERM;
//   6. every client operation finished within its bound (handshakes, replies, closes) and every
//      close code was the one its cause calls for;
//   8. (calls) every call request (create_connect of a call device included) got exactly one reply, at
//      the connection that sent it; every message a cycle waited for was byte-exact and in the
//      owner's order where the contract fixes one; every placed call ended exactly once on every
//      device involved (one call_ended with the due reason, none at the device whose own message
//      ended it or that was lost; "repeat" answers exactly where due); no message of a call at a
//      device outside it; no call left live: once everything settled, a fresh level-2 device of each
//      call user lists "calls":[] and gets nothing else;
//   9. (calls) every call_signal answered ok arrived exactly once, in order (seq from 1 per
//      direction), byte-exact (data as the sender wrote it), at the other party only; the signals
//      the call's end dropped (early signals of a call nobody accepted, signals kept for a party that
//      never came back) arrived nowhere.
//   Checks 3 to 6 hold with the calls in the mix: their devices are part of the baseline sockets.
//
// Run (from the repository root; needs tests/node_modules and the built server):
//   node tests/soak/soak.mjs --seconds 60      the CI version (60 s of mixed load after a 5 s warm-up)
//   node tests/soak/soak.mjs --seconds 20      what tests/integration/soak-short.test.mjs runs
//   node tests/soak/soak.mjs --seconds 60 --nodes 2   the CI's cluster version (see "Cluster mode" below)
// Options: --seconds N (60), --warmup N (5), --users N (100), --multi-device F (0.3), --rate N
//   (1000 stable dialings/s), --churn N (32 churn workers), --slow-readers N (2 at a time),
//   --flood-rate N (500 dialings/s at a flooded slow reader), --call-pairs N (20 level-2 call pairs;
//   0: no calls), --seed N (random by default; printed).
// Every client of the soak stays far below signaling.rate-limit (default 200 messages/s per
// connection): stable devices send ~10/s each, the final probes are 8 connections paced at 80/s,
// a call device sends a few messages per call and its signals at ~10/s (signaling.call.signal-rate
// is 20/s per party with a burst of 64).
// The binary is $H2O_SIGNALING_BIN or <repo>/h2o-signaling (tests/lib/server.mjs). Exit status:
// 0 every assertion held, 1 one failed, 2 the soak itself broke (watchdog, setup failure).
//
// RSS baseline: "before" is taken after a warm-up that runs the very same mix (churn, slow readers,
// floods, malformed input) for --warmup seconds on top of the stable population, then closes the
// churn and waits for the server to hold only the stable sockets again; "after" is taken the same
// way at the end of the run. Both are the median of 5 samples 200 ms apart. The warm-up makes the
// allocator's high-water marks (per-thread arenas, socket buffers, registry tables) part of both
// figures, so the 10% bound measures growth over the run, not first-use. The level at start and
// the peak during the run are printed too. Under a memory tool (valgrind, ASan) RSS is the tool's,
// so check 4 is reported as not applicable there, never silently passed. With calls: the server keeps
// every ended call for 30 s (to answer repeats), about 800 bytes each (measured), a bounded cache that
// "after" holds in full and "before" only for the warm-up; so the call pairs pause 1 to 2.5 s between
// calls (about 9 calls/s for 20 pairs), which keeps it near 3% of RSS.
//
// Cluster mode (`--nodes N`, N >= 2; the CI runs `--nodes 2`): the soak starts its own redis-server
// (tests/lib/redis.mjs: a free port, no persistence) and N nodes on it (each 2 threads, its own
// signaling.node-id, the small timings of FAST_REDIS_TIMINGS: probe 200 ms, reconnect 50..500 ms,
// result 500 ms, connect 500 ms). Stable user i has device d on node (i + d) mod N (so a user with 2
// devices is on 2 nodes), probes and slow readers alternate, churn and malformed clients pick a node
// at random, and a stable dialing goes to a user whose first device is on another node 85% of the
// time (most dialings cross nodes; the summary counts them). At --redis-restart-at seconds into the
// run (default: its middle) Redis is stopped (SIGTERM), left down --redis-down seconds (1), and
// started again on the same port. The outage window runs from the stop until the first moment after
// the restart at which every node's sig:n: channel and every stable user's sig:u: channel are
// subscribed again (PUBSUB NUMSUB: one subscriber per node holding the user), every link of every
// thread had its next reconnect attempt (1.25 x reconnect-max + 100 ms after Redis is back), and a
// dialing from a probe on another node reaches every stable user with all its devices (a "recovery
// round"; the window ends when the first such round that succeeds was sent). The checks become,
// per node where they are about a server:
//   1. outside the window, exactly as above; a dialing that touches the window (sent before its end,
//      answered after its start) may be answered ok with delivered N >= 1 (only the devices that
//      could be reached), cluster_unavailable, peer_offline or peer_gone, and then at least N pushes arrive (at
//      most one per device; more than N when the RESULTs' way back broke and the answer is the count so far,
//      docs/scaling.md; none for peer_offline; for cluster_unavailable, which says the outcome is
//      unknown because the answers' way back broke, at most one per device). Elsewhere: a push
//      arrives only for a dialing answered ok with delivered >= 1, and never more pushes than "delivered";
//   2. every dialing with an id answered exactly once and within ANSWER_BOUND (3 s); codes as above,
//      plus cluster_unavailable in the window; answers to dialings without an id (failures only)
//      come only in the window, and each stable device got exactly as many of them as it has
//      id-less dialings in the window that reached nobody;
//   3. per node: fds, no ghost in any node's registry (the probes dial from every node);
//   4. per node: RSS within 10% (the same rule as above);
//   5. every node alive at the end and exits 0 on SIGTERM;
//   7. (cluster only) the restart: the outage was seen (cluster_unavailable answers), the users
//      registered before it are reachable across nodes within RECOVERY_BOUND (5 s) after Redis is
//      back, and once every client has closed Redis has no sig:u:* channel left (PUBSUB CHANNELS,
//      bounded wait) while each node's sig:n: channel is still subscribed.
//   8, 9. as above, for calls across the nodes: the devices of a call pair are on different nodes
//      (user A's first on node i mod N, B's on the next), so most events and outputs go through the
//      owner on Redis. A call cycle never overlaps the outage window: no cycle starts within
//      CALL_OUTAGE_GUARD of Redis's stop, and cycles start again CALL_RESUME_AFTER after the window's
//      end (the calls during an outage are calls-nodes.test.mjs's); a cycle that overlaps it anyway is
//      a problem.
// Options: --nodes N (1: one server, no Redis; 2 to 4: cluster), --redis-restart-at SECONDS (into the
//   run; default --seconds / 2), --redis-down SECONDS (1).

import { readFileSync } from 'node:fs';
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import WebSocket from 'ws';

import { T } from '../lib/callclient.mjs';
import { connectRaw, encodeFrame, OP } from '../lib/rawws.mjs';
import {
    clusterUnavailableText,
    FAST_REDIS_TIMINGS,
    nodeChannel,
    startNode,
    startRedis,
    waitNodesLinked,
} from '../lib/redis.mjs';
import { fdCount, rssKb, underMemoryTool } from '../lib/reload.mjs';
import { signalingConfig, startServer } from '../lib/server.mjs';
import { calledText, createConnectOkText, dialingFailText, dialingOkText, MSG, register } from '../lib/sigclient.mjs';
import { waitForHandoff, waitUntil, withTimeout } from '../lib/wait.mjs';
import { nextRaw, waitClose } from '../lib/wsclient.mjs';

// ---------------------------------------------------------------- options

const { values: opt } = parseArgs({
    options: {
        seconds: { type: 'string', default: '60' },
        warmup: { type: 'string', default: '5' },
        users: { type: 'string', default: '100' },
        'multi-device': { type: 'string', default: '0.3' },
        rate: { type: 'string', default: '1000' },
        churn: { type: 'string', default: '32' },
        'slow-readers': { type: 'string', default: '2' },
        'flood-rate': { type: 'string', default: '500' },
        seed: { type: 'string' },
        nodes: { type: 'string', default: '1' },
        'redis-restart-at': { type: 'string' },
        'redis-down': { type: 'string', default: '1' },
        'call-pairs': { type: 'string', default: '20' },
        help: { type: 'boolean', default: false },
    },
});
if (opt.help) {
    const head = readFileSync(new URL(import.meta.url), 'utf8').split('\n');
    console.log(
        head
            .slice(1, head.findIndex((l, i) => i > 0 && !l.startsWith('//'))) // line 0 is the #! line
            .map((l) => l.replace(/^\/\/ ?/, ''))
            .join('\n'),
    );
    process.exit(0);
}
const num = (name, min, max) => {
    const v = Number(opt[name]);
    if (!Number.isFinite(v) || v < min || v > max) {
        console.error(`--${name} must be a number in [${min}, ${max}], got ${opt[name]}`);
        process.exit(2);
    }
    return v;
};
const SECONDS = num('seconds', 1, 3600);
const WARMUP = num('warmup', 1, 600);
const USERS = Math.floor(num('users', 2, 5000));
const MULTI = num('multi-device', 0, 1);
const RATE = num('rate', 1, 20000);
const CHURN = Math.floor(num('churn', 0, 500));
const SLOW = Math.floor(num('slow-readers', 0, 50));
const FLOOD_RATE = num('flood-rate', 1, 20000);
const SEED = opt.seed !== undefined ? Math.floor(num('seed', 0, 2 ** 32 - 1)) : (Date.now() ^ (process.pid << 8)) >>> 0;
const NODES = Math.floor(num('nodes', 1, 4));
const CLUSTER = NODES > 1;
const RESTART_AT = opt['redis-restart-at'] !== undefined ? num('redis-restart-at', 0, 3600) : SECONDS / 2;
const REDIS_DOWN = num('redis-down', 0, 60);
const CALL_PAIRS = Math.floor(num('call-pairs', 0, 500));
if (!CLUSTER && opt['redis-restart-at'] !== undefined) {
    console.error('--redis-restart-at needs --nodes 2 or more (one node runs without Redis)');
    process.exit(2);
}
if (CLUSTER && RESTART_AT + REDIS_DOWN >= SECONDS) {
    console.error(
        `--redis-restart-at (${RESTART_AT}) + --redis-down (${REDIS_DOWN}) must end before --seconds (${SECONDS})`,
    );
    process.exit(2);
}
const NODE_IDS = Array.from({ length: NODES }, (_, i) => `soak-${String.fromCharCode(97 + i)}`);

// The server's limits for this run (the issue's figures).
const PING_INTERVAL = 1000;
const PING_TIMEOUT = 1000;
const MAX_QUEUED = 65536;
const MAX_MESSAGE = 8192;
const LINGER_MS = 3000; // SIG_WS_LINGER_MS: longest a closing connection takes to go

const SETTINGS = [
    `signaling.ping-interval: ${PING_INTERVAL}`,
    `signaling.ping-timeout: ${PING_TIMEOUT}`,
    `signaling.max-queued-bytes: ${MAX_QUEUED}`,
    `signaling.max-message-size: ${MAX_MESSAGE}`,
];
// level 2: short timers, so that calls ring out and lost parties run out of grace within a cycle
const RING_TIMEOUT = 1500;
const RECONNECT_GRACE = 1000;
const CALL_SETTINGS = [`signaling.call.ring-timeout: ${RING_TIMEOUT}`, `signaling.call.reconnect-grace: ${RECONNECT_GRACE}`];
// every client of the soak comes from 127.0.0.1: no cap per address
const config = (vars) =>
    signalingConfig(vars, { settings: [...SETTINGS, ...CALL_SETTINGS], global: ['max-connections-per-address: 0'] });

// Bounds of everything the soak waits for.
const OP_TIMEOUT = 5000; // one handshake, one reply, one close
const CHURN_OP_BOUND = 20000; // one whole churn / malformed scenario
const WORKERS_BOUND = 30000; // workers to finish after their phase ends
const DRAIN_BOUND = 10000; // answers and pushes still in flight at the end of a phase
const RELEASE_BOUND = LINGER_MS + PING_INTERVAL + PING_TIMEOUT + 5000; // server to let go of closed clients
const SLOW_REFUSAL_BOUND = 10000; // a paused reader to become unreachable
const CALL_CYCLE_BOUND = 60000; // one whole call cycle (each of its waits has its own, shorter bound)
const CALL_PAUSE = [1000, 2500]; // ms between two calls of a pair (see "RSS baseline")
// cluster mode: no call cycle starts this long before Redis is stopped (a cycle takes 1 to 6 s) ...
const CALL_OUTAGE_GUARD = 12000;
// ... nor until this long after the outage window ended (the nodes re-register their level-2 devices with the owner)
const CALL_RESUME_AFTER = 2000;
const WINDOW = 8; // dialings in flight per stable device
const MAX_LOOP = 1e7; // a count bound on every loop (time bounds come first)
const BIG_FIELD = 6000; // field2 of dialings to slow readers: a ~6 KB push, under max-message-size
const WATCHDOG_MS = (WARMUP + SECONDS) * 1000 + 180000 + (CLUSTER ? 120000 : 0);
// cluster mode
const ANSWER_BOUND = 3000; // a dialing's answer, outage or not (result-timeout is 500 ms)
const RECOVERY_BOUND = 5000; // Redis back -> every stable user reachable across nodes again
const RECOVERY_WAIT = 30000; // how long the soak keeps looking for the recovery past that bound
const REDIS_RELEASE_BOUND = 5000; // every client closed -> no sig:u:* channel left in Redis
const CROSS_BIAS = 0.85; // share of stable dialings aimed at a user whose first device is on another node
// failures a stable user may get in the window: unknown, not subscribed yet, or a holder whose answer
// could not come (its publishing link was still reconnecting: it delivered nothing, and a RESULT
// missing at the deadline counts 0, so nothing took it)
const ALLOWED_IN_WINDOW = ['cluster_unavailable', 'peer_offline', 'peer_gone'];
const RECONNECT_MAX = Number(/redis-reconnect-max:\s*(\d+)/.exec(FAST_REDIS_TIMINGS.join('\n'))[1]);
// the window does not close before every link (each thread has its own) had its next reconnect attempt
// after Redis came back: the longest backoff, 25% jitter included, and 100 ms to connect and subscribe
const LINKS_BACK_AFTER = Math.ceil(RECONNECT_MAX * 1.25) + 100;

// ---------------------------------------------------------------- random (seeded, printed)

function mulberry32(a) {
    return () => {
        a = (a + 0x6d2b79f5) | 0;
        let t = Math.imul(a ^ (a >>> 15), 1 | a);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}
const rnd = mulberry32(SEED);
const chance = (p) => rnd() < p;
const randInt = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
const pick = (arr) => arr[Math.floor(rnd() * arr.length)];

// ---------------------------------------------------------------- bookkeeping

const counters = new Map();
const inc = (name, n = 1) => counters.set(name, (counters.get(name) ?? 0) + n);
const get = (name) => counters.get(name) ?? 0;

/** Problems by kind: each is counted, the first few kept as samples for the report. */
const problems = new Map();
function problem(kind, detail) {
    let p = problems.get(kind);
    if (!p) problems.set(kind, (p = { count: 0, samples: [] }));
    p.count++;
    if (p.samples.length < 5) p.samples.push(String(detail).slice(0, 400));
}
const problemCount = (...kinds) => kinds.reduce((s, k) => s + (problems.get(k)?.count ?? 0), 0);

const log = (...a) => console.log(...a);
const elapsed = (t = Date.now()) => ((t - T0) / 1000).toFixed(1).padStart(6);
const T0 = Date.now();

const S = {
    phase: 'setup',
    srv: null, // the server (cluster mode: the first node)
    nodes: [], // every server: [srv] for one node
    redis: null, // cluster mode: the redis-server
    outagePlannedAt: null, // cluster mode: when Redis will be stopped (ms since the epoch)
    outage: null, // cluster mode: {stopAt, stoppedAt, startAt, upAt, linkedAt, endAt, recoveredAt, rounds, ...}
    stableClosing: false, // stable clients are being closed on purpose
    usedIds: new Set(), // every user id any client registered or dialed
    slowTargets: [], // slow readers being dialed now
    openPeers: new Set(), // raw clients whose TCP connection has not ended
    rssPeak: 0,
    rssPeaks: [], // per node
};

/** Every node is running (the loops of the mix stop when one is not). */
const serversAlive = () => S.nodes.length > 0 && S.nodes.every((n) => n.alive());
/** A node for a new raw client: at random in cluster mode (no random draw with one node). */
const pickNode = () => (CLUSTER ? randInt(0, NODES - 1) : 0);
/** One figure per node: the value alone with one node, "soak-a V, soak-b W" in cluster mode. */
const perNode = (values, unit = '') =>
    CLUSTER ? values.map((v, i) => `${NODE_IDS[i]} ${v}${unit}`).join(', ') : `${values[0]}${unit}`;

// ---------------------------------------------------------------- server figures

// rssKb, fdCount, underMemoryTool: lib/reload.mjs
function cpuSeconds(pid) {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 10 ms
}

// ---------------------------------------------------------------- dialings

/*
 * One record per dialing: who sent it, to whom, what the answers and pushes were.
 *   targetKind: stable | slow | churn | offline (never registered) | never (a frame that was never
 *               completed: must not be delivered) | malformed (must get one error reply)
 */
let dialSeq = 0;
const byId = new Map(); // JSON of the id -> record
const byTag = new Map(); // field1 -> record
const records = [];

function newDial({ sender, target, targetKind, withId = true, name, field2 = '', field3 = '', claim = false }) {
    const n = ++dialSeq;
    const tag = `T${n}-${sender.kind}`;
    const id = withId ? (chance(0.5) ? n : `d${n}`) : undefined;
    const rec = {
        n,
        id,
        tag,
        senderKind: sender.kind,
        senderKey: sender.key,
        senderUserId: sender.userId,
        senderName: name ?? sender.name,
        senderNode: sender.node ?? 0,
        target: String(target),
        targetKind,
        field2len: field2.length,
        field3,
        answers: [],
        calls: null, // connection key -> times the push arrived there (a Map from the first push on)
        abandoned: false, // the sender vanished: an answer cannot be expected
        expectAnswer: withId,
        sentAt: Date.now(),
    };
    const msg = { type: 'dialing' };
    if (claim) msg.sponsorUserId = sender.userId; // optional, must equal the identity
    if (name !== undefined) msg.sponsorUserName = name;
    msg.receiverUserId = target;
    msg.field1 = tag;
    if (field2) msg.field2 = field2;
    if (field3) msg.field3 = field3;
    if (withId) msg.id = id;
    records.push(rec);
    sender.dials?.push(rec);
    byTag.set(tag, rec);
    if (withId) byId.set(JSON.stringify(id), rec);
    S.usedIds.add(String(target));
    inc('dials.sent');
    if (CLUSTER) inc(`node.${rec.senderNode}.dials.sent`);
    return { rec, text: JSON.stringify(msg) };
}

const expectedCalled = (rec) =>
    calledText({
        sponsorUserId: rec.senderUserId,
        sponsorUserName: rec.senderName ?? '',
        field1: rec.tag,
        field2: rec.field2len ? 'x'.repeat(rec.field2len) : '',
        field3: rec.field3,
    });

/**
 * Cluster mode: a failure answer without an id at a stable device, i.e. to one of its dialings without
 * an id (a success is never answered without an id). Kept per device with its arrival time: check 2
 * matches the count against the device's id-less dialings that reached nobody.
 */
function onIdlessFailure(conn, text, p) {
    inc('dials.idless-failures');
    inc(`dials.idless-failures.${p.code}`);
    const exact =
        p.code === 'cluster_unavailable'
            ? clusterUnavailableText(undefined)
            : p.code in MSG
              ? dialingFailText(p.code, undefined)
              : null;
    if (text !== exact) problem('answer not byte-exact', `${conn.key} (id-less): ${text}`);
    conn.idlessFailures.push({ code: p.code, at: Date.now() });
}

/** A dialing_response arrived at connection `conn`. */
function onAnswer(conn, text, p) {
    if (CLUSTER && p.id === undefined && p.ok === false && conn.idlessFailures) return onIdlessFailure(conn, text, p);
    const rec = p.id === undefined ? undefined : byId.get(JSON.stringify(p.id));
    if (!rec) {
        problem('answer with an unknown or missing id', `${conn.key}: ${text}`);
        return;
    }
    if (rec.senderKey !== conn.key) problem('answer at the wrong connection', `${conn.key} got ${text}`);
    rec.answers.push(text);
    if (rec.answers.length > 1) {
        problem('answer duplicated', `${rec.tag}: ${rec.answers.join(' | ')}`);
        return;
    }
    rec.ans = p;
    rec.answeredAt = Date.now();
    inc('dials.answered');
    conn.inflight = Math.max(0, (conn.inflight ?? 0) - 1);
    if (p.ok === true) {
        const delivered = p.data?.delivered;
        inc('dials.answered.ok');
        inc('dials.delivered', Number.isInteger(delivered) ? delivered : 0);
        if (text !== dialingOkText(rec.id, rec.target, delivered))
            problem('answer not byte-exact', `${rec.tag} to ${rec.target}: ${text}`);
    } else {
        inc(`dials.answered.${p.code}`);
        if (p.code in MSG) {
            if (text !== dialingFailText(p.code, rec.id)) problem('answer not byte-exact', `${rec.tag}: ${text}`);
        } else if (CLUSTER && p.code === 'cluster_unavailable') {
            if (text !== clusterUnavailableText(rec.id)) problem('answer not byte-exact', `${rec.tag}: ${text}`);
        } else if (
            p.type !== 'dialing_response' ||
            p.ok !== false ||
            p.data?.sponsorUserId !== null ||
            typeof p.msg !== 'string'
        ) {
            problem('answer not byte-exact', `${rec.tag}: ${text}`);
        }
        // (cluster mode: not an answer that may be the outage's, e.g. peer_offline before a re-subscription)
        if (rec.targetKind === 'slow' && (p.code === 'peer_gone' || p.code === 'peer_offline') && !inWindow(rec)) {
            const slow = S.slowTargets.find((s) => s.userId === rec.target);
            if (slow) slow.refusedAt ??= Date.now();
        }
    }
    if (rec.expectCode && p.code !== rec.expectCode)
        problem('wrong error code', `${rec.tag}: expected ${rec.expectCode}, got ${text}`);
    rec.onAnswer?.(p);
}

/** An error reply (type "error") to a malformed dialing. */
function onErrorReply(conn, text, p) {
    const rec = p.id === undefined ? undefined : byId.get(JSON.stringify(p.id));
    if (!rec || rec.targetKind !== 'malformed') return false; // someone else's: the caller's inbox
    if (rec.senderKey !== conn.key) problem('answer at the wrong connection', `${conn.key} got ${text}`);
    rec.answers.push(text);
    if (rec.answers.length > 1) {
        problem('answer duplicated', `${rec.tag}: ${rec.answers.join(' | ')}`);
        return true;
    }
    rec.ans = p;
    rec.answeredAt = Date.now();
    inc('dials.answered');
    inc(`dials.answered.${p.code}`);
    if (p.code !== rec.expectCode) problem('wrong error code', `${rec.tag}: expected ${rec.expectCode}, got ${text}`);
    rec.onAnswer?.(p);
    return true;
}

/** A `called` push arrived at connection `conn` (which has ever been the ids in conn.userIds). */
function onCalled(conn, text, p) {
    inc('called.received');
    if (CLUSTER) inc(`node.${conn.node}.called.received`);
    const rec = byTag.get(p.data?.field1);
    if (!rec) {
        problem('push with an unknown tag', `${conn.key}: ${text.slice(0, 200)}`);
        return;
    }
    if (!conn.userIds.has(rec.target)) {
        // cluster mode: create_connect is acknowledged once Redis confirmed the subscription, but the local
        // registration is made at once, so a push for the id asked for may come before the acknowledgement
        if (CLUSTER && conn.pendingIds?.has(rec.target)) inc('called.before-ack');
        else problem('push at the wrong user', `${rec.tag} for ${rec.target} at ${conn.key}`);
    }
    if (rec.targetKind === 'never') problem('push of a message that was never completed', `${rec.tag} at ${conn.key}`);
    rec.firstCallAt ??= Date.now();
    const times = ((rec.calls ??= new Map()).get(conn.key) ?? 0) + 1;
    rec.calls.set(conn.key, times);
    if (times > 1) problem('push duplicated', `${rec.tag} arrived ${times} times at ${conn.key}`);
    if (text !== expectedCalled(rec)) {
        problem(
            'push not byte-exact',
            `${rec.tag}: expected ${expectedCalled(rec).slice(0, 200)}\n   got ${text.slice(0, 200)}`,
        );
    }
}

// ---------------------------------------------------------------- stable population (`ws` clients)

const stableUsers = []; // {id, name, devices: [dev]}
const stableDevices = [];
// The final checks dial from these: several connections, each paced well under signaling.rate-limit
// (default 200 messages/s per connection, burst 400), so the probes never meet the limiter.
const PROBES = 8;
const PROBE_BATCH = 40; // dialings per probe connection per PROBE_PERIOD
const PROBE_PERIOD = 500; // ms: 80 dialings/s per connection
const probes = [];

const STABLE_NAMES = (i) => `用户${i} "😀" \\`;
const FIELD3 = ['', 'room "7"\nline 2', 'ζ😀 ünï', 'tab\there', '</script>', '{"json":"inside"}'];

async function openStableDevice(user, idx, node = 0) {
    const ws = await register(S.nodes[node].wsUrl, user.id, { name: user.name, timeout: OP_TIMEOUT });
    const dev = {
        kind: user.probe ? 'probe' : 'stable',
        key: `${user.id}#${idx}`,
        node,
        idlessFailures: [], // cluster mode: failure answers without an id (onIdlessFailure)
        user,
        userId: user.id,
        name: user.name,
        userIds: new Set([user.id]),
        ws,
        open: true,
        inflight: 0,
    };
    inc('conn.opened');
    inc('conn.opened.stable');
    if (CLUSTER) inc(`node.${node}.conn.opened`);
    ws.on('close', (code) => {
        dev.open = false;
        if (!S.stableClosing) {
            user.droppedAt ??= Date.now();
            problem('stable connection closed during the run', `${dev.key}: close ${code} at ${elapsed()} s`);
        }
    });
    dev.pumped = (async () => {
        for (let i = 0; i < MAX_LOOP; i++) {
            let m;
            try {
                m = await nextRaw(ws, 600000);
            } catch {
                if (ws.readyState === ws.CLOSED) return;
                continue;
            }
            const text = m.data.toString('utf8');
            if (m.isBinary) {
                problem('binary message from the server', dev.key);
                continue;
            }
            let p;
            try {
                p = JSON.parse(text);
            } catch {
                problem('server sent a message that is not JSON', `${dev.key}: ${text.slice(0, 200)}`);
                continue;
            }
            if (p.type === 'called') onCalled(dev, text, p);
            else if (p.type === 'dialing_response') onAnswer(dev, text, p);
            else if (p.code === 'rate_limited')
                problem('rate_limited reply to a paced soak client', `${dev.key}: ${text}`);
            else problem('unexpected message at a stable client', `${dev.key}: ${text.slice(0, 200)}`);
        }
    })();
    return dev;
}

async function buildStable() {
    for (let i = 0; i < USERS; i++) {
        const n = chance(MULTI) ? 2 : 1;
        stableUsers.push({ id: `st-${i}`, index: i, name: STABLE_NAMES(i), devices: [], nDevices: n, droppedAt: null });
    }
    // device d of user i on node (i + d) mod NODES: a user with 2 devices is on 2 nodes
    const jobs = stableUsers.flatMap((u) => Array.from({ length: u.nDevices }, (_, d) => [u, d]));
    for (let i = 0; i < jobs.length; i += 25) {
        const devs = await Promise.all(
            jobs.slice(i, i + 25).map(([u, d]) => openStableDevice(u, d, (u.index + d) % NODES)),
        );
        for (const dev of devs) {
            dev.user.devices.push(dev);
            stableDevices.push(dev);
            S.usedIds.add(dev.userId);
        }
    }
    for (let i = 0; i < PROBES; i++) {
        const probeUser = { id: `probe-${i}`, name: 'probe', devices: [], nDevices: 1, probe: true };
        const dev = await openStableDevice(probeUser, 0, i % NODES);
        probeUser.devices.push(dev);
        probes.push(dev);
    }
}

const onlineThroughout = (user) => user.droppedAt === null;
/** Cluster mode: the nodes a stable user has devices on. */
const nodesOf = (user) => new Set(user.devices.map((d) => d.node));
/** Cluster mode, per node: the stable users whose first device is on another node (stableDial's cross targets). */
const crossUsers = [];
const liveDevices = (user) => user.devices.filter((d) => d.open).length;

/** A stable device with room in its window, or null. */
function freeStableDevice() {
    for (let tries = 0; tries < 8; tries++) {
        const dev = pick(stableDevices);
        if (dev.open && dev.inflight < WINDOW) return dev;
    }
    return null;
}

function sendFromStable(dev, built) {
    try {
        dev.ws.send(built.text);
        if (built.rec.expectAnswer) dev.inflight++;
    } catch (err) {
        built.rec.abandoned = true;
        problem('stable client could not send', `${dev.key}: ${err.message}`);
    }
}

let offlineSeq = 0;
/** Cluster mode: a stable user other than dev's whose first device is on another node than dev, or null. */
function pickCross(dev) {
    const pool = crossUsers[dev.node] ?? [];
    for (let tries = 0; tries < 8 && pool.length; tries++) {
        const u = pick(pool);
        if (u !== dev.user) return u;
    }
    return null;
}

/** One dialing of the routed mix from a stable device. */
function stableDial() {
    const dev = freeStableDevice();
    if (!dev) {
        inc('dials.skipped.window-full');
        return;
    }
    const r = rnd();
    let target;
    let targetKind = 'stable';
    let withId = true;
    if (r < 0.84) {
        target = CLUSTER && chance(CROSS_BIAS) ? pickCross(dev) : null;
        if (!target) {
            do target = pick(stableUsers);
            while (target === dev.user);
        }
        target = target.id;
    } else if (r < 0.9) {
        target = pick(CHURN_IDS);
        targetKind = 'churn';
    } else if (r < 0.94) {
        target = `off-${++offlineSeq}`;
        targetKind = 'offline';
    } else {
        do target = pick(stableUsers);
        while (target === dev.user);
        target = target.id;
        withId = false;
    }
    const name = chance(0.3) ? `alias ${dev.userId} ✓` : undefined;
    const built = newDial({
        sender: dev,
        target,
        targetKind,
        withId,
        name,
        field3: pick(FIELD3),
        claim: chance(0.5),
    });
    sendFromStable(dev, built);
}

/** One ~6 KB dialing from a stable device to slow reader `slow`. */
function slowDial(slow) {
    const dev = freeStableDevice();
    if (!dev) {
        inc('dials.skipped.window-full');
        return;
    }
    const built = newDial({ sender: dev, target: slow.userId, targetKind: 'slow', field2: 'x'.repeat(BIG_FIELD) });
    slow.dialed++;
    sendFromStable(dev, built);
}

// ---------------------------------------------------------------- raw clients (churn, slow, malformed)

let peerSeq = 0;

/** A RawWebSocket with a reader: pings answered, pushes/answers checked, other replies queued. */
class Peer {
    constructor(raw, kind, node = 0) {
        this.raw = raw;
        this.kind = kind;
        this.node = node;
        this.key = `${kind}-${++peerSeq}`;
        this.userId = undefined;
        this.name = undefined;
        this.userIds = new Set();
        this.pendingIds = new Set(); // ids of create_connects not answered yet
        this.inbox = [];
        this.waiters = [];
        this.closeFrame = null;
        this.sentClose = false;
        this.pings = 0;
        this.frames = 0;
        this.badFrames = [];
        this.dials = []; // records of the dialings this connection sent
        this.tcpClosed = false;
        inc('conn.opened');
        inc(`conn.opened.${kind}`);
        if (CLUSTER) inc(`node.${node}.conn.opened`);
        S.openPeers.add(this);
        this.done = this.#read();
    }

    async #read() {
        for (let i = 0; i < MAX_LOOP; i++) {
            let f;
            try {
                f = await this.raw.nextFrame(600000);
            } catch {
                if (this.raw.isTcpClosed) break;
                continue;
            }
            this.frames++;
            if (f.opcode === OP.PING) {
                this.pings++;
                if (!this.sentClose && !this.closeFrame) this.raw.sendPong(f.payload);
            } else if (f.opcode === OP.CLOSE) {
                this.closeFrame ??= { code: f.code, reason: f.reason };
                if (!this.sentClose) {
                    this.sentClose = true;
                    this.raw.sendClose(f.code === 1005 ? null : f.code); // echo, as RFC 6455 asks
                }
            } else if (this.closeFrame) {
                problem('frame after the close frame', `${this.key}: opcode ${f.opcode}`);
            } else if (f.opcode === OP.TEXT && f.fin) {
                this.#onText(f.payload.toString('utf8'));
            } else {
                problem('unexpected frame from the server', `${this.key}: opcode ${f.opcode} fin ${f.fin}`);
            }
        }
        this.tcpClosed = true;
        S.openPeers.delete(this);
        for (const rec of this.dials) if (rec.answers.length === 0) rec.senderGone = true;
        for (const w of this.waiters.splice(0)) w.reject(new Error(`connection ended while waiting for ${w.what}`));
        return this.closeFrame;
    }

    #onText(text) {
        let p;
        try {
            p = JSON.parse(text);
        } catch {
            problem('server sent a message that is not JSON', `${this.key}: ${text.slice(0, 200)}`);
            return;
        }
        if (p.type === 'called') return onCalled(this, text, p);
        if (p.type === 'dialing_response' && byId.has(JSON.stringify(p.id))) return onAnswer(this, text, p);
        if (p.type === 'error' && onErrorReply(this, text, p)) return;
        // the identity counts from this frame on: a push right behind it is for that id
        if (p.type === 'create_connect_response' && p.ok === true) this.userIds.add(String(p.data?.sponsorUserId));
        const i = this.waiters.findIndex((w) => w.match(p));
        if (i >= 0) this.waiters.splice(i, 1)[0].resolve({ p, text });
        else this.inbox.push({ p, text });
    }

    /** The next non-push message matching `match` (queued or future), bounded. */
    expect(match, what, timeout = OP_TIMEOUT) {
        const i = this.inbox.findIndex((m) => match(m.p));
        if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
        if (this.tcpClosed) return Promise.reject(new Error(`connection ended before ${what}`));
        return waitForHandoff(this.waiters, timeout, `${this.key}: ${what}`, { match, what });
    }

    sendJson(value) {
        this.raw.sendText(JSON.stringify(value));
    }

    /** create_connect with an id; true when registered, false when refused with too_many_connections. */
    async register(userId, name) {
        const rid = `r${++dialSeq}`;
        S.usedIds.add(String(userId));
        this.pendingIds.add(String(userId));
        this.sendJson({ type: 'create_connect', sponsorUserId: userId, sponsorUserName: name, id: rid });
        const { p, text } = await this.expect((m) => m.id === rid, `create_connect_response ${rid}`).finally(() =>
            this.pendingIds.delete(String(userId)),
        );
        if (p.ok === true) {
            if (text !== createConnectOkText(rid, String(userId)))
                problem('create_connect answer not byte-exact', text);
            this.userId = String(userId);
            this.name = name;
            this.userIds.add(String(userId));
            inc('registered');
            return true;
        }
        if (p.code === 'too_many_connections') {
            inc('registered.refused.too_many_connections');
            return false;
        }
        problem('create_connect refused', `${this.key} as ${userId}: ${text}`);
        return false;
    }

    /** Close handshake from our side; resolves with the server's close frame once TCP has ended. */
    async closeClean(category) {
        if (!this.sentClose) {
            this.sentClose = true;
            this.raw.sendClose(1000);
        }
        const cf = await withTimeout(this.done, OP_TIMEOUT, `${this.key}: close handshake and TCP end`);
        const code = cf ? cf.code : 1006;
        inc(`close.${category}.${code}`);
        if (code !== 1000) problem('wrong close code', `${this.key} (${category}): expected 1000, got ${code}`);
        inc('conn.closed.clean');
        return cf;
    }

    /** Waits for the server to close (close frame echoed by the reader), then TCP end; returns the code (1006: none). */
    async serverClose(category, timeout = OP_TIMEOUT) {
        const cf = await withTimeout(this.done, timeout, `${this.key}: server close and TCP end`);
        const code = cf ? cf.code : 1006;
        inc(`close.${category}.${code}`);
        inc('conn.closed.by-server');
        return code;
    }

    abort() {
        if (!this.aborted && !this.raw.isTcpClosed) inc('conn.aborted');
        this.aborted = true;
        this.raw.destroy();
    }
}

async function openPeer(kind, node = pickNode()) {
    let raw;
    try {
        raw = await connectRaw({ port: S.nodes[node].port, timeout: OP_TIMEOUT });
    } catch (err) {
        problem('handshake failed', `${kind}${CLUSTER ? ` on ${NODE_IDS[node]}` : ''}: ${err.message}`);
        throw err;
    }
    return new Peer(raw, kind, node);
}

/** Waits for a record's answer (bounded). */
function answerOf(rec, timeout = OP_TIMEOUT) {
    if (rec.answers.length) return Promise.resolve(JSON.parse(rec.answers[0]));
    return withTimeout(new Promise((resolve) => (rec.onAnswer = resolve)), timeout, `answer to ${rec.tag}`);
}

// ---------------------------------------------------------------- churn

const CHURN_IDS = Array.from({ length: 150 }, (_, i) => `ch-${i}`);
const CHURN_OPS = [
    ['clean', 0.3],
    ['clean-dial-close', 0.1], // dial, then close at once: the answer must come before the close frame
    ['move', 0.05],
    ['long-lived', 0.04], // lives past a ping interval and answers the server's pings
    ['vanish-before-register', 0.1],
    ['vanish-after-register', 0.16],
    ['vanish-mid-frame', 0.12],
    ['vanish-mid-fragment', 0.05],
    ['vanish-handshake', 0.05],
    ['close-and-vanish', 0.03], // sends its close frame and destroys the socket without waiting
];

function pickChurnOp() {
    let r = rnd() * CHURN_OPS.reduce((s, [, w]) => s + w, 0);
    for (const [name, w] of CHURN_OPS) if ((r -= w) < 0) return name;
    return CHURN_OPS[0][0];
}

function churnDial(peer, { wait = true, closeInSameWrite = false } = {}) {
    const toStable = chance(0.8);
    const target = toStable ? pick(stableUsers).id : pick(CHURN_IDS);
    const built = newDial({
        sender: peer,
        target,
        targetKind: toStable ? 'stable' : 'churn',
        name: `churner ${peer.userId}`, // explicit: a churn id's registered name depends on which connection
        field3: pick(FIELD3),
        claim: chance(0.5),
    });
    if (closeInSameWrite) {
        peer.sentClose = true;
        const close = encodeFrame({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) });
        peer.raw.sendRaw(Buffer.concat([encodeFrame({ opcode: OP.TEXT, payload: built.text }), close]));
        inc('churn.dial-and-close-in-one-write');
        built.rec.closeInSameWrite = true;
    } else {
        peer.raw.sendText(built.text);
    }
    return wait ? answerOf(built.rec) : built.rec;
}

async function vanishInHandshake() {
    const node = pickNode();
    const { port } = S.nodes[node];
    const sock = net.connect({ host: '127.0.0.1', port });
    try {
        await withTimeout(
            new Promise((resolve, reject) => {
                sock.once('connect', resolve);
                sock.once('error', reject);
            }),
            OP_TIMEOUT,
            'TCP connect',
        );
        sock.on('error', () => {});
        const req =
            `GET /WsService HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
        sock.write(req.slice(0, randInt(1, req.length - 1)));
        await delay(randInt(0, 30));
        inc('conn.opened');
        inc('conn.opened.churn-handshake');
        if (CLUSTER) inc(`node.${node}.conn.opened`);
        inc('conn.aborted');
    } finally {
        sock.destroy();
    }
}

async function churnOp(op) {
    if (op === 'vanish-handshake') return vanishInHandshake();
    const peer = await openPeer('churn');
    try {
        if (op === 'vanish-before-register') {
            await delay(randInt(0, 30));
            peer.abort();
            return;
        }
        const registered = await peer.register(pick(CHURN_IDS), `churner`);
        if (!registered) {
            await peer.closeClean('churn');
            return;
        }
        switch (op) {
            case 'clean': {
                if (chance(0.6)) await churnDial(peer);
                await delay(randInt(0, 300));
                await peer.closeClean('churn');
                break;
            }
            case 'clean-dial-close': {
                // the dialing and the close frame in one write, or in two: the answer is owed either way
                const rec = churnDial(peer, { wait: false, closeInSameWrite: chance(0.5) });
                await peer.closeClean('churn');
                if (rec.answers.length !== 1) {
                    rec.lostToClose = true;
                    problem('answer missing before the close frame', `${rec.tag} to ${rec.target}`);
                }
                break;
            }
            case 'move': {
                const from = peer.userId;
                if (await peer.register(pick(CHURN_IDS.filter((id) => id !== from)), 'mover')) inc('churn.moved');
                if (chance(0.5)) await churnDial(peer);
                await delay(randInt(0, 200));
                await peer.closeClean('churn');
                break;
            }
            case 'long-lived': {
                const until = Date.now() + randInt(PING_INTERVAL + PING_TIMEOUT + 300, 3500);
                for (let i = 0; i < 100 && Date.now() < until; i++) {
                    if (chance(0.3)) await churnDial(peer);
                    await delay(200);
                }
                if (peer.pings === 0) problem('no ping from the server in a long-lived connection', peer.key);
                if (peer.tcpClosed) problem('long-lived client was dropped although it answered pings', peer.key);
                await peer.closeClean('churn');
                inc('churn.long-lived.pings', peer.pings);
                break;
            }
            case 'vanish-after-register': {
                const rec = chance(0.5) ? churnDial(peer, { wait: false }) : null;
                await delay(randInt(0, 40));
                if (rec && rec.answers.length === 0) rec.abandoned = true;
                peer.abort();
                break;
            }
            case 'vanish-mid-frame': {
                const built = newDial({ sender: peer, target: pick(stableUsers).id, targetKind: 'never' });
                built.rec.expectAnswer = false;
                inc('dials.sent', -1);
                inc('dials.never-completed');
                const frame = encodeFrame({ opcode: OP.TEXT, payload: built.text });
                peer.raw.sendRaw(frame.subarray(0, randInt(1, frame.length - 1)));
                await delay(randInt(0, 20));
                peer.abort();
                break;
            }
            case 'vanish-mid-fragment': {
                const built = newDial({ sender: peer, target: pick(stableUsers).id, targetKind: 'never' });
                built.rec.expectAnswer = false;
                inc('dials.sent', -1);
                inc('dials.never-completed');
                const half = Math.floor(built.text.length / 2);
                peer.raw.send({ opcode: OP.TEXT, fin: false, payload: built.text.slice(0, half) });
                await delay(randInt(0, 20));
                peer.abort();
                break;
            }
            case 'close-and-vanish': {
                if (chance(0.5)) await churnDial(peer);
                peer.sentClose = true;
                peer.raw.sendClose(1000);
                peer.abort();
                break;
            }
            default:
                throw new Error(`unknown churn op ${op}`);
        }
    } finally {
        if (!peer.tcpClosed && !peer.aborted) peer.abort();
    }
}

async function churnWorker(until) {
    for (let i = 0; i < MAX_LOOP && Date.now() < until && serversAlive(); i++) {
        const op = pickChurnOp();
        inc(`churn.op.${op}`);
        try {
            await withTimeout(churnOp(op), CHURN_OP_BOUND, `churn ${op}`);
        } catch (err) {
            problem('client operation failed', `churn ${op}: ${err.message}`);
        }
    }
}

// ---------------------------------------------------------------- slow readers

let slowSeq = 0;

async function slowReaderCycle(until) {
    const n = ++slowSeq;
    const mode = n % 2 === 1 ? 'flood' : 'stall'; // flood: past max-queued-bytes; stall: light, the heartbeat drops it
    const peer = await openPeer('slow', Math.floor(n / 2) % NODES); // each mode on every node in turn
    const slow = { userId: `slow-${n}`, mode, refusedAt: null, dialed: 0, pausedAt: 0 };
    if (!(await peer.register(slow.userId, 'slow reader'))) {
        peer.abort();
        throw new Error(`${slow.userId} not registered`);
    }
    peer.raw.socket.pause(); // nothing is read from here on, pings included
    slow.pausedAt = Date.now();
    S.slowTargets.push(slow);
    try {
        await waitUntil(() => slow.refusedAt !== null || !serversAlive(), {
            timeout: SLOW_REFUSAL_BOUND,
            interval: 20,
            what: `dialings to paused reader ${slow.userId} (${mode}) to be refused`,
        }).catch((err) => problem('slow reader never released by the server', err.message));
        inc(`slow.${mode}.refusal-ms`, (slow.refusedAt ?? Date.now()) - slow.pausedAt);
        // stay paused a while longer, so both "client drains and sees the close" and "server gave up" happen
        await delay(randInt(0, LINGER_MS + 1000));
    } finally {
        S.slowTargets.splice(S.slowTargets.indexOf(slow), 1);
        peer.raw.socket.resume();
    }
    const code = await peer.serverClose(`slow-${mode}`, 15000).catch((err) => {
        throw new Error(
            `${err.message} (${slow.userId}, ${mode}${CLUSTER ? ` on ${NODE_IDS[peer.node]}` : ''}, paused at ${((slow.pausedAt - T0) / 1000).toFixed(1)} s, ` +
                `refused at ${slow.refusedAt ? `${((slow.refusedAt - T0) / 1000).toFixed(1)} s` : 'never'})`,
        );
    });
    inc(`slow.${mode}`);
    inc(`slow.dialed`, slow.dialed);
    // 1008 when the queue overflowed, or no close frame (1006) when the heartbeat or the linger gave up
    if (code !== 1008 && code !== 1006) problem('wrong close code', `${slow.userId} (${mode}): ${code}`);
    if (Date.now() < until) await delay(randInt(0, 500));
}

async function slowWorker(until) {
    for (let i = 0; i < MAX_LOOP && Date.now() < until && serversAlive(); i++) {
        try {
            await withTimeout(slowReaderCycle(until), SLOW_REFUSAL_BOUND + LINGER_MS + 25000, 'slow reader cycle');
        } catch (err) {
            problem('client operation failed', `slow reader: ${err.message}`);
        }
    }
}

// ---------------------------------------------------------------- malformed input

let malSeq = 0;

/** Bad JSON and wrong field kinds on one connection: one error reply each, the connection stays usable. */
async function malformedJson() {
    const peer = await openPeer('malformed');
    try {
        const plain = [
            ['{"type":', 'bad_json'],
            ['{"type":"dialing"} trailing', 'bad_json'],
            ['[1,2]', 'not_object'],
            ['"text"', 'not_object'],
            ['{}', 'missing_type'],
            ['{"type":"zzz"}', 'unknown_type'],
            ['{"type":7}', 'bad_field'],
            ['{"type":"create_connect"}', 'missing_field'],
            ['{"type":"create_connect","sponsorUserId":""}', 'bad_id'],
            [`{"type":"create_connect","sponsorUserId":"${'u'.repeat(257)}"}`, 'bad_id'],
            ['{"type":"create_connect","sponsorUserId":{"a":1}}', 'bad_field'],
            ['{"type":"create_connect","sponsorUserId":1.5}', 'bad_field'],
        ];
        const order = plain.sort(() => rnd() - 0.5);
        // a dialing before create_connect: a dialing_response, counted with the dialings
        const unreg = newDial({ sender: peer, target: pick(stableUsers).id, targetKind: 'malformed-answer' });
        unreg.rec.expectCode = 'not_registered';
        for (const [text] of order) peer.raw.sendText(text);
        peer.raw.sendText(unreg.text);
        for (const [text, code] of order) {
            const { p, text: got } = await peer.expect(
                (m) => m.type === 'error',
                `error reply to ${text.slice(0, 40)}`,
            );
            if (p.code !== code || p.ok !== false)
                problem('wrong error code', `${text.slice(0, 60)}: expected ${code}, got ${got}`);
            inc(`malformed.error.${p.code}`);
        }
        await answerOf(unreg.rec);

        const uid = `mal-${++malSeq}`;
        if (!(await peer.register(uid, 'malformed'))) throw new Error(`${uid} not registered`);
        const wrong = [
            [{ receiverUserId: ['x'] }, 'bad_field'],
            [{ receiverUserId: pick(stableUsers).id, field1: { x: 1 } }, 'bad_field'],
            [{ receiverUserId: pick(stableUsers).id, field2: true }, 'bad_field'],
            [{ receiverUserId: pick(stableUsers).id, field3: [1] }, 'bad_field'],
            [{ receiverUserId: '' }, 'bad_id'],
            [{}, 'missing_field'],
        ];
        const mine = [];
        for (const [fields, code] of wrong) {
            const rec = {
                n: ++dialSeq,
                id: `m${dialSeq}`,
                tag: `M${dialSeq}`,
                senderKind: 'malformed',
                senderKey: peer.key,
                targetKind: 'malformed',
                expectCode: code,
                answers: [],
                calls: null,
                expectAnswer: true,
                sentAt: Date.now(),
            };
            records.push(rec);
            mine.push(rec);
            byId.set(JSON.stringify(rec.id), rec);
            inc('dials.sent');
            inc('dials.sent.malformed');
            peer.sendJson({ type: 'dialing', ...fields, id: rec.id });
        }
        const mismatch = newDial({
            sender: { ...peer, userId: 'somebody-else' },
            target: pick(stableUsers).id,
            targetKind: 'malformed-answer',
            claim: true,
        });
        mismatch.rec.senderUserId = uid;
        mismatch.rec.expectCode = 'identity_mismatch';
        peer.raw.sendText(mismatch.text);
        // a numeric receiver id means its decimal text; nobody registers it
        const numeric = 900000 + malSeq;
        const off = newDial({ sender: peer, target: numeric, targetKind: 'offline' });
        peer.raw.sendText(off.text);
        // and the connection still routes a well-formed dialing
        const good = newDial({
            sender: peer,
            target: pick(stableUsers).id,
            targetKind: 'stable',
            name: 'malformed ok',
        });
        peer.raw.sendText(good.text);
        await answerOf(mismatch.rec);
        await answerOf(off.rec);
        await answerOf(good.rec);
        for (const rec of mine) await answerOf(rec);
        if (peer.inbox.length)
            problem('unexpected message', `${peer.key}: ${peer.inbox.map((m) => m.text).join(' | ')}`);
        await peer.closeClean('malformed-json');
    } finally {
        if (!peer.tcpClosed && !peer.aborted) peer.abort();
    }
}

/** Input that ends the connection: registered first (so its registration must go), then the bad frame. */
async function malformedFatal(kind) {
    const peer = await openPeer('malformed');
    try {
        const uid = `mal-${++malSeq}`;
        if (!(await peer.register(uid, 'malformed'))) throw new Error(`${uid} not registered`);
        let expected;
        switch (kind) {
            case 'binary':
                peer.raw.sendBinary(Buffer.from(`{"type":"dialing","receiverUserId":"${pick(stableUsers).id}"}`));
                expected = 1003;
                break;
            case 'invalid-utf8': {
                const bad = Buffer.concat([
                    Buffer.from('{"type":"dialing","receiverUserId":"st-1","field1":"'),
                    Buffer.from([0xc3, 0x28, 0xff]),
                    Buffer.from('"}'),
                ]);
                peer.raw.send({ opcode: OP.TEXT, payload: bad });
                expected = 1007;
                break;
            }
            case 'oversized':
                peer.raw.sendText(
                    `{"type":"dialing","receiverUserId":"st-1","field1":"${'o'.repeat(randInt(MAX_MESSAGE, 3 * MAX_MESSAGE))}"}`,
                );
                expected = 1009;
                break;
            case 'oversized-fragmented':
                // every fragment under the limit, the message over it
                peer.raw.sendFragmented(OP.TEXT, 'f'.repeat(MAX_MESSAGE + randInt(1, 4000)), 3);
                expected = 1009;
                break;
            case 'reserved-opcode':
                peer.raw.send({ opcode: 0x3, payload: 'x' });
                expected = 1002;
                break;
            default:
                throw new Error(`unknown case ${kind}`);
        }
        const code = await peer.serverClose(`malformed-${kind}`);
        if (code !== expected) problem('wrong close code', `${kind}: expected ${expected}, got ${code}`);
    } finally {
        if (!peer.tcpClosed && !peer.aborted) peer.abort();
    }
}

/** A valid dialing split into fragments is routed like any other. */
async function fragmentedValid() {
    const peer = await openPeer('malformed');
    try {
        const uid = `mal-${++malSeq}`;
        if (!(await peer.register(uid, 'fragmenter'))) throw new Error(`${uid} not registered`);
        const built = newDial({ sender: peer, target: pick(stableUsers).id, targetKind: 'stable', name: 'fragmenter' });
        peer.raw.sendFragmented(OP.TEXT, built.text, randInt(2, 5));
        await answerOf(built.rec);
        await peer.closeClean('malformed-fragmented-valid');
    } finally {
        if (!peer.tcpClosed && !peer.aborted) peer.abort();
    }
}

const MAL_CASES = [
    'json',
    'binary',
    'invalid-utf8',
    'oversized',
    'oversized-fragmented',
    'reserved-opcode',
    'fragmented-valid',
];

async function malformedWorker(until) {
    for (let i = 0; i < MAX_LOOP && Date.now() < until && serversAlive(); i++) {
        const c = MAL_CASES[i % MAL_CASES.length];
        inc(`malformed.case.${c}`);
        try {
            const run =
                c === 'json' ? malformedJson() : c === 'fragmented-valid' ? fragmentedValid() : malformedFatal(c);
            await withTimeout(run, CHURN_OP_BOUND, `malformed ${c}`);
        } catch (err) {
            problem('client operation failed', `malformed ${c}: ${err.message}`);
        }
        await delay(randInt(20, 120));
    }
}

// ---------------------------------------------------------------- calls (level 2)

/*
 * A population of call pairs (--call-pairs): users A and B of pair i (`cu-i-a`, `cu-i-b`, each with 1
 * or 2 level-2 devices, every device with a deviceId) who only call each other, one call at a time, in
 * cycles that run during the mixed load. Every cycle picks a direction, a calling device and an
 * outcome, drives the call step by step and checks every message it waits for byte for byte
 * (tests/lib/callclient.mjs's T, the codec's bytes). Independently of that, every message a call
 * device receives is tapped (callTap): replies are counted per request id, everything else is kept
 * per callId with the logical device (user/deviceId) it arrived at; checks 8 and 9 judge those
 * arrivals against what each cycle recorded as due (newCallRec: who must get which call_ended, which
 * signals must arrive where, which must arrive nowhere).
 */
const CALLS = CALL_PAIRS > 0;
const callUsers = []; // {id, name, pair, devices}
const callPairs = []; // {n, a, b, cycles, broken}
const callDevices = []; // logical devices: {key, user, did, node (its server: an index into S.nodes), conn, conns}
const callReqs = new Map(); // JSON of a request id -> {id, type, connKey, replies, text}
const callArrivals = new Map(); // callId -> [{devKey, connKey, type, repeat, seq, text, at}]
const callRecs = [];
let callReqSeq = 0;
let callCycleSeq = 0;
const callFigures = { ringMs: [], graceMs: [], reattachMs: [] };

const CALL_OUTCOMES = [
    ['hangup', 0.5], // accepted, signals both ways, a hangup by either party
    ['close', 0.05], // accepted, then a party closes its connection cleanly (its hangup), and comes back
    ['reject', 0.08],
    ['cancel', 0.08], // the caller hangs up while it rings
    ['race', 0.05], // the caller's cancel and a callee device's accept at the same moment
    ['no_answer', 0.06], // rings out (signaling.call.ring-timeout)
    ['loss-back', 0.1], // a party's socket destroyed mid-call; it comes back within the grace
    ['loss-gone', 0.08], // ... and does not: peer_gone
];
const HANGUP_REASONS = [undefined, 'hangup', 'ice_failed', 'media_failed', 'user "left" ✓'];
const SIGNAL_KINDS = ['offer', 'answer', 'candidate', 'candidate', undefined, '', 'x-renegotiate ζ'];

const J = JSON.stringify;
const ofCall = (type, callId, { repeat = false } = {}) => (m) =>
    m.type === type && m.data?.callId === callId && (type !== 'call_ended' || (m.data.repeat === true) === repeat);
const replyTo = (id) => (m) => m.id === id && typeof m.type === 'string' && m.type.endsWith('_response');

/** One connection of a logical call device: an inbox (every message kept until a cycle takes it). */
class CallConn {
    constructor(dev, ws) {
        this.dev = dev;
        this.ws = ws;
        this.key = `${dev.key}#${++dev.conns}`;
        this.inbox = [];
        this.waiters = [];
        this.no = 0; // arrival number of the last message
        this.closed = null;
        this.expectClose = false;
        ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
        ws.on('close', (code) => {
            this.closed = { code };
            for (const w of this.waiters.splice(0))
                w.reject(new Error(`${this.key}: connection closed (${code}) while waiting for ${w.what}`));
            if (!this.expectClose) problem('call connection closed during the run', `${this.key}: close ${code} at ${elapsed()} s`);
        });
        ws.on('error', () => {}); // shows up as the close
        inc('conn.opened');
        inc('conn.opened.call');
    }

    #onMessage(data, isBinary) {
        const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat([].concat(data)).toString('utf8');
        if (isBinary) return problem('binary message from the server', this.key);
        let msg;
        try {
            msg = JSON.parse(text);
        } catch {
            return problem('server sent a message that is not JSON', `${this.key}: ${text.slice(0, 200)}`);
        }
        const entry = { text, msg, no: ++this.no, at: Date.now() };
        callTap(this, entry);
        const i = this.waiters.findIndex((w) => w.pred(msg));
        if (i >= 0) this.waiters.splice(i, 1)[0].resolve(entry);
        else this.inbox.push(entry);
    }

    /** The first message matching pred, now or later (bounded), taken from the inbox: {text, msg, no, at}. */
    take(pred, what, timeout = OP_TIMEOUT) {
        const i = this.inbox.findIndex((e) => pred(e.msg));
        if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
        if (this.closed) return Promise.reject(new Error(`${this.key}: closed (${this.closed.code}) before ${what}`));
        let waiter;
        const p = new Promise((resolve, reject) => {
            waiter = { pred, what, resolve, reject };
            this.waiters.push(waiter);
        });
        return withTimeout(p, timeout, `${this.key}: ${what}`).catch((err) => {
            const k = this.waiters.indexOf(waiter);
            if (k >= 0) this.waiters.splice(k, 1);
            err.message += `; inbox: ${this.inbox.map((e) => e.text.slice(0, 160)).join(' | ') || '(empty)'}`;
            throw err;
        });
    }

    send(text) {
        this.ws.send(text);
    }

    /** Clean close (1000), bounded. */
    async close() {
        this.expectClose = true;
        if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
        const closed = await withTimeout(
            new Promise((resolve) => (this.closed ? resolve(this.closed) : this.ws.once('close', (code) => resolve({ code })))),
            OP_TIMEOUT,
            `${this.key}: close`,
        );
        inc(`close.call.${closed.code}`);
        if (closed.code !== 1000) problem('wrong close code', `${this.key}: expected 1000, got ${closed.code}`);
        else inc('conn.closed.clean');
    }

    /** Abrupt loss: the socket is destroyed, no close frame. */
    kill() {
        this.expectClose = true;
        this.ws.terminate();
        inc('conn.aborted');
    }
}

/** Every message at a call device: replies counted per request id, the rest kept per callId. */
function callTap(conn, entry) {
    const { msg, text } = entry;
    inc('calls.received');
    if (typeof msg.type === 'string' && msg.type.endsWith('_response')) {
        const r = msg.id === undefined ? undefined : callReqs.get(J(msg.id));
        if (!r) return problem('call reply with an unknown or missing id', `${conn.key}: ${text.slice(0, 200)}`);
        r.replies++;
        if (r.connKey !== conn.key) problem('call reply at the wrong connection', `${conn.key} got ${text.slice(0, 200)} (sent on ${r.connKey})`);
        if (r.replies > 1) problem('call reply duplicated', `${conn.key}: ${text.slice(0, 200)}`);
        return;
    }
    const callId = msg.data?.callId;
    if (msg.ok !== true || typeof callId !== 'string' || !['incoming_call', 'call_state', 'call_accepted', 'call_signal', 'call_ended'].includes(msg.type))
        return problem('unexpected message at a call device', `${conn.key}: ${text.slice(0, 200)}`);
    let list = callArrivals.get(callId);
    if (!list) callArrivals.set(callId, (list = []));
    list.push({
        devKey: conn.dev.key,
        connKey: conn.key,
        type: msg.type,
        repeat: msg.data.repeat === true,
        seq: msg.data.seq,
        text,
        at: entry.at,
    });
}

/** Sends a call request with a fresh id (a number or a string); `text(id)` builds the bytes when given. */
function callRequest(conn, msg, text) {
    const n = ++callReqSeq;
    const id = n % 2 ? n : `q${n}`;
    const bytes = text ? text(id) : J({ ...msg, id });
    callReqs.set(J(id), { id, type: msg.type, connKey: conn.key, replies: 0, text: bytes.slice(0, 200) });
    inc('calls.requests');
    conn.send(bytes);
    return id;
}

/** Takes the message matching pred and checks it is exactly `expected`. */
async function want(conn, pred, expected, what, timeout) {
    const e = await conn.take(pred, what, timeout);
    if (e.text !== expected)
        problem('call message not as the contract says', `${conn.key}, ${what}:\n   expected ${expected.slice(0, 300)}\n   got      ${e.text.slice(0, 300)}`);
    return e;
}

/** A message that must come after another on the same connection (the owner's order per device). */
function inOrder(first, then, what) {
    if (!(first.no < then.no)) problem('call messages out of order', `${what}: #${first.no} ${first.text.slice(0, 120)} came after #${then.no} ${then.text.slice(0, 120)}`);
}

/** Opens a connection for logical device `dev` and registers it (level 2, its deviceId); `calls`: the listing due. */
async function openCallConn(dev, calls = []) {
    const ws = new WebSocket(S.nodes[dev.node].wsUrl, { perMessageDeflate: false, handshakeTimeout: OP_TIMEOUT });
    const conn = new CallConn(dev, ws);
    await withTimeout(
        new Promise((resolve, reject) => {
            ws.once('open', resolve);
            ws.once('error', reject);
            ws.once('unexpected-response', (req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
        }),
        OP_TIMEOUT + 1000,
        `${conn.key}: WebSocket open`,
    ).catch((err) => {
        conn.expectClose = true;
        ws.terminate();
        problem('handshake failed', `${conn.key}: ${err.message}`);
        throw err;
    });
    dev.conn = conn;
    const msg = { type: 'create_connect', sponsorUserId: dev.user.id, sponsorUserName: dev.user.name, level: 2, deviceId: dev.did };
    const id = callRequest(conn, msg);
    conn.registered = await want(
        conn,
        replyTo(id),
        T.registered({ id, user: dev.user.id, device: dev.did, calls }),
        calls.length ? 'create_connect_response listing the call' : 'create_connect_response',
    );
    inc('calls.registered');
    return conn;
}

async function buildCallPairs() {
    for (let i = 0; i < CALL_PAIRS; i++) {
        const pair = { n: i, cycles: 0, broken: false };
        for (const side of ['a', 'b']) {
            const user = { id: `cu-${i}-${side}`, name: `呼叫 ${i}${side} "☎"`, pair, devices: [] };
            const nDev = chance(side === 'b' ? 0.4 : 0.2) ? 2 : 1;
            for (let d = 0; d < nDev; d++) {
                const node = (i + (side === 'a' ? 0 : 1) + d) % NODES; // cluster mode: A's and B's first devices on different nodes
                const dev = { key: `${user.id}/${side}${d + 1}`, user, did: `${side}${d + 1}.dev~${i}`, node, conn: null, conns: 0 };
                user.devices.push(dev);
                callDevices.push(dev);
            }
            pair[side] = user;
            callUsers.push(user);
            S.usedIds.add(user.id);
        }
        callPairs.push(pair);
    }
    for (let i = 0; i < callDevices.length; i += 20) await Promise.all(callDevices.slice(i, i + 20).map((d) => openCallConn(d)));
}

/** Per call: what the cycle says is due; checks 8 and 9 hold the tapped arrivals against it. */
function newCallRec(fields) {
    const rec = {
        callId: null,
        end: new Map(), // devKey -> the exact first call_ended due there, or null for none
        repeats: new Map(), // devKey -> call_ended "repeat" answers due there
        up: [], // signals caller -> callee party: {seq, text, fate: 'deliver' | 'drop'}
        down: [], // callee party -> caller
        winnerKey: null,
        failed: false,
        done: false,
        startedAt: Date.now(),
        endedAt: null,
        ...fields,
    };
    callRecs.push(rec);
    return rec;
}

function endDue(rec, dev, reason, detail) {
    rec.end.set(dev.key, reason === null ? null : T.ended({ callId: rec.callId, reason, detail }));
}

/** Waits for the first (not repeated) call_ended at dev, due with `reason`. */
function endedAt(rec, dev, reason, { detail, timeout } = {}) {
    endDue(rec, dev, reason, detail);
    return want(dev.conn, ofCall('call_ended', rec.callId), rec.end.get(dev.key), `call_ended ${reason}`, timeout);
}

/** Waits for a repeat call_ended ("repeat":true) at dev. */
function repeatAt(rec, dev, reason, detail) {
    rec.repeats.set(dev.key, (rec.repeats.get(dev.key) ?? 0) + 1);
    return want(
        dev.conn,
        ofCall('call_ended', rec.callId, { repeat: true }),
        T.ended({ callId: rec.callId, reason, detail, repeat: true }),
        `call_ended ${reason} (repeat)`,
    );
}

let sigSeq = 0;
/** The JSON text of a signal's data: SDP-like, candidates, scalars, blanks inside, escapes kept as written. */
function signalData(kind) {
    const n = ++sigSeq;
    switch (kind === 'offer' || kind === 'answer' ? 0 : randInt(1, 7)) {
        case 0: {
            const lines = Array.from({ length: randInt(3, 60) }, (_, i) => `a=x-line:${i} ${n}`).join('\\r\\n');
            return `{"type":${J(kind)},"sdp":"v=0\\r\\no=- ${n} 2 IN IP4 127.0.0.1\\r\\n${lines}\\r\\n"}`;
        }
        case 1:
        case 2:
            return J({ candidate: `candidate:${n} 1 udp 2122260223 192.168.${n % 256}.${(n >> 8) % 256} ${1024 + (n % 60000)} typ host`, sdpMid: '0', sdpMLineIndex: n % 3 });
        case 3:
            return `{ "n" : ${n} ,\n\t"list" : [ 1 , -2.5e3 , true , false , null , "ζ😀" ] , "o" : { } }`;
        case 4:
            return `"text ${n} \\u00e9 \\"quoted\\" \\\\ </script>"`;
        case 5:
            return pick([`${n}`, `-${n}.25e-3`, 'true', 'false', '0', '[]', '{}']);
        case 6:
            return J({ n, big: 'b'.repeat(randInt(500, 5000)) });
        default:
            return J([n, { nested: [[], {}], s: 'tab\there' }]);
    }
}

/** One call_signal from `from` (a party of rec) in direction `dir`; waits for its reply (state `state`). */
async function sendSignal(rec, from, dir, state, fate = 'deliver') {
    const list = rec[dir];
    const kind = pick(SIGNAL_KINDS);
    const data = signalData(kind);
    const kindPart = kind === undefined ? '' : `,"kind":${J(kind)}`;
    const dataLast = chance(0.5);
    const id = callRequest(from.conn, { type: 'call_signal' }, (rid) =>
        dataLast
            ? `{"type":"call_signal","callId":${J(rec.callId)}${kindPart},"id":${J(rid)},"data":${data}}`
            : `{"type":"call_signal","callId":${J(rec.callId)},"data":${data}${kindPart},"id":${J(rid)}}`,
    );
    const entry = {
        seq: list.length + 1,
        fate,
        text: T.signal({ callId: rec.callId, fromUser: from.user.id, fromDevice: from.did, seq: list.length + 1, kind: kind ?? '', data }),
    };
    list.push(entry);
    inc('calls.signals.sent');
    const r = await from.conn.take(replyTo(id), `call_signal_response ${id}`);
    if (r.text !== T.response('call_signal', { id, callId: rec.callId, state })) {
        list.pop(); // refused: it took no seq
        problem('call message not as the contract says', `${from.conn.key}, call_signal_response (${state}): ${r.text}`);
    }
    return entry;
}

/** Takes, in order, the signals of `dir` due at `to` that it has not taken yet; returns the arrivals. */
async function receiveSignals(rec, to, dir) {
    const got = [];
    for (const entry of rec[dir]) {
        if (entry.fate !== 'deliver' || entry.taken) continue;
        entry.taken = true;
        got.push(await want(to.conn, ofCall('call_signal', rec.callId), entry.text, `call_signal seq ${entry.seq} (${dir})`));
    }
    return got;
}

/** Both parties send signals at once, paced (~10/s per party), then each takes what the other sent. */
async function exchangeSignals(rec, caller, callee, nUp, nDown) {
    const side = async (from, dir, n) => {
        for (let i = 0; i < n; i++) {
            await sendSignal(rec, from, dir, 'active');
            await delay(randInt(50, 130));
        }
    };
    await Promise.all([side(caller, 'up', nUp), side(callee, 'down', nDown)]);
    await Promise.all([receiveSignals(rec, callee, 'up'), receiveSignals(rec, caller, 'down')]);
}

/** A hangup by `h` of an active call; `o` gets call_ended hangup (with the reason as detail). Maybe repeated. */
async function hangupActive(rec, h, o, { allowRepeat = true } = {}) {
    const reason = pick(HANGUP_REASONS);
    const id = callRequest(h.conn, { type: 'call_hangup', callId: rec.callId, ...(reason === undefined ? {} : { reason }) });
    await want(h.conn, replyTo(id), T.response('call_hangup', { id, callId: rec.callId, state: 'ended' }), 'call_hangup_response');
    endDue(rec, h, null);
    await endedAt(rec, o, 'hangup', { detail: reason });
    if (allowRepeat && chance(0.15)) {
        // a hangup sent again: the same call_ended, as a repeat
        const again = callRequest(h.conn, { type: 'call_hangup', callId: rec.callId });
        const r = await want(h.conn, replyTo(again), T.response('call_hangup', { id: again, callId: rec.callId, state: 'ended' }), 'repeated call_hangup_response');
        inOrder(r, await repeatAt(rec, h, 'hangup', reason), 'repeated hangup: reply, then call_ended repeat');
        inc('calls.hangup.repeated');
    }
}

function pickOutcome() {
    let r = rnd() * CALL_OUTCOMES.reduce((s, [, w]) => s + w, 0);
    for (const [name, w] of CALL_OUTCOMES) if ((r -= w) < 0) return name;
    return CALL_OUTCOMES[0][0];
}

/** One call of `pair`, start to end. `onRec` gets the record at once (for the failure report). */
async function callCycle(pair, onRec) {
    const n = ++callCycleSeq;
    const fwd = chance(0.5);
    const callerUser = fwd ? pair.a : pair.b;
    const calleeUser = fwd ? pair.b : pair.a;
    const caller = pick(callerUser.devices);
    const ring = calleeUser.devices;
    const outcome = pickOutcome();
    const media = chance(0.5) ? 'audio' : 'video';
    const chosen = chance(0.5) ? `c${n}.${SEED.toString(36)}~${randInt(0, 999999)}` : undefined;
    const name = chance(0.4) ? `call ${n} "☎" ü` : undefined;
    const rec = newCallRec({
        n,
        pair: pair.n,
        outcome,
        callerKey: caller.key,
        involved: new Set([caller.key, ...ring.map((d) => d.key)]),
        sentAt: Date.now(),
    });
    onRec(rec);
    inc(`calls.outcome.${outcome}`);

    // call -> call_response (ringing), incoming_call on every device of the callee
    const id = callRequest(caller.conn, {
        type: 'call',
        receiverUserId: calleeUser.id,
        media,
        ...(chosen ? { callId: chosen } : {}),
        ...(name ? { sponsorUserName: name } : {}),
    });
    const r = await caller.conn.take(replyTo(id), `call_response ${id}`);
    const callId = r.msg.data?.callId;
    if (typeof callId !== 'string' || !/^[0-9A-Za-z._~-]{1,64}$/.test(callId) || (chosen && callId !== chosen))
        throw new Error(`call_response without the callId${chosen ? ` ${chosen}` : ''}: ${r.text}`);
    rec.callId = callId;
    if (r.text !== T.callResponse({ id, callId, state: 'ringing', level2: ring.length, legacy: 0 }))
        throw new Error(`call_response not ringing on ${ring.length} level-2 devices: ${r.text}`);
    inc('calls.placed');
    const incoming = T.incoming({ callId, from: callerUser.id, name: name ?? callerUser.name, media, expiresIn: RING_TIMEOUT });
    await Promise.all(ring.map((d) => want(d.conn, ofCall('incoming_call', callId), incoming, 'incoming_call')));

    // the caller's early signals: kept for the device that accepts (dropped if none does)
    if (chance(0.4)) for (let i = randInt(1, 3); i > 0; i--) await sendSignal(rec, caller, 'up', 'ringing');
    // some callee devices say they alert: call_state to the caller, alerting counting them
    let alerting = 0;
    for (const d of ring) {
        if (!chance(0.5)) continue;
        const rid = callRequest(d.conn, { type: 'call_ringing', callId });
        await want(d.conn, replyTo(rid), T.response('call_ringing', { id: rid, callId, state: 'ringing' }), 'call_ringing_response');
        alerting++;
        await want(caller.conn, ofCall('call_state', callId), T.state({ callId, state: 'ringing', alerting, peerConnected: true }), `call_state alerting ${alerting}`);
    }
    const dropEarly = () => rec.up.forEach((e) => (e.fate = 'drop'));

    if (outcome === 'reject') {
        const rj = pick(ring);
        const reason = pick([undefined, 'declined', 'busy']);
        const rid = callRequest(rj.conn, { type: 'call_reject', callId, ...(reason ? { reason } : {}) });
        await want(rj.conn, replyTo(rid), T.response('call_reject', { id: rid, callId, state: 'ended' }), 'call_reject_response');
        endDue(rec, rj, null);
        dropEarly();
        await Promise.all([
            endedAt(rec, caller, reason === 'busy' ? 'busy' : 'rejected'),
            ...ring.filter((d) => d !== rj).map((d) => endedAt(rec, d, 'rejected_elsewhere')),
        ]);
        rec.done = true;
        return;
    }
    if (outcome === 'cancel') {
        const hid = callRequest(caller.conn, { type: 'call_hangup', callId, ...(chance(0.3) ? { reason: 'changed my mind' } : {}) });
        await want(caller.conn, replyTo(hid), T.response('call_hangup', { id: hid, callId, state: 'ended' }), 'call_hangup_response (cancel)');
        endDue(rec, caller, null);
        dropEarly();
        await Promise.all(ring.map((d) => endedAt(rec, d, 'cancelled')));
        rec.done = true;
        return;
    }
    if (outcome === 'no_answer') {
        dropEarly();
        const ends = await Promise.all([caller, ...ring].map((d) => endedAt(rec, d, 'no_answer', { timeout: RING_TIMEOUT + OP_TIMEOUT })));
        // the ring started when the owner placed the call: after the call was sent, before its answer came
        const ms = Math.min(...ends.map((e) => e.at)) - rec.sentAt;
        callFigures.ringMs.push(ms);
        if (ms < RING_TIMEOUT - 20) problem('ring timeout fired early', `${callId}: call_ended no_answer ${ms} ms after the call (ring-timeout ${RING_TIMEOUT} ms)`);
        if (ms > RING_TIMEOUT + 1500) problem('ring timeout fired late', `${callId}: call_ended no_answer ${ms} ms after the call (ring-timeout ${RING_TIMEOUT} ms)`);
        rec.done = true;
        return;
    }
    if (outcome === 'race') {
        // the cancel and an accept at the same moment: whichever the owner sees first wins
        const acc = pick(ring);
        const hid = callRequest(caller.conn, { type: 'call_hangup', callId });
        const aid = callRequest(acc.conn, { type: 'call_accept', callId });
        const [hr, ar] = await Promise.all([caller.conn.take(replyTo(hid), 'call_hangup_response (race)'), acc.conn.take(replyTo(aid), 'call_accept_response (race)')]);
        if (hr.text !== T.response('call_hangup', { id: hid, callId, state: 'ended' }))
            problem('call message not as the contract says', `${caller.conn.key}, hangup racing an accept: ${hr.text}`);
        endDue(rec, caller, null);
        if (ar.msg.ok === true) {
            // the accept won; the cancel is the hangup of the active call
            inc('calls.race.accept-first');
            rec.winnerKey = acc.key;
            if (ar.text !== T.response('call_accept', { id: aid, callId, state: 'active' }))
                problem('call message not as the contract says', `${acc.conn.key}, accept that won a race: ${ar.text}`);
            const byDevice = acc.did;
            const accepted = await want(caller.conn, ofCall('call_accepted', callId), T.accepted({ callId, byUser: calleeUser.id, byDevice, polite: false }), 'call_accepted (race)');
            inOrder(accepted, hr, 'race won by the accept: the caller gets call_accepted, then its hangup reply');
            const a2 = await want(acc.conn, ofCall('call_accepted', callId), T.accepted({ callId, byUser: calleeUser.id, byDevice, polite: true }), 'call_accepted (race)');
            inOrder(ar, a2, 'accept reply, then call_accepted');
            const flushed = await receiveSignals(rec, acc, 'up');
            const ended = await endedAt(rec, acc, 'hangup');
            for (const f of flushed) inOrder(a2, f, 'call_accepted, then the early signals');
            if (flushed.length) inOrder(flushed[flushed.length - 1], ended, 'early signals, then call_ended');
            await Promise.all(ring.filter((d) => d !== acc).map((d) => endedAt(rec, d, 'answered_elsewhere')));
        } else {
            // the cancel won; the accept is answered as if it came after: bad_state, then call_ended again
            inc('calls.race.cancel-first');
            dropEarly();
            if (ar.text !== T.error('call_accept', 'bad_state', aid))
                problem('call message not as the contract says', `${acc.conn.key}, accept that lost to a cancel: ${ar.text}`);
            const ends = await Promise.all(ring.map((d) => endedAt(rec, d, 'cancelled')));
            inOrder(ends[ring.indexOf(acc)], ar, 'cancel won: call_ended cancelled, then the accept\'s bad_state');
            inOrder(ar, await repeatAt(rec, acc, 'cancelled'), 'the accept\'s bad_state, then call_ended repeat');
        }
        rec.done = true;
        return;
    }

    // the accept: one device, or (2 devices) both at the same moment: the first wins alone
    let winner;
    let winReply;
    const losers = [];
    const double = ring.length > 1 && chance(0.3);
    if (double) {
        inc('calls.accept.double');
        const ids = ring.map((d) => callRequest(d.conn, { type: 'call_accept', callId }));
        const replies = await Promise.all(ring.map((d, i) => d.conn.take(replyTo(ids[i]), 'call_accept_response (double accept)')));
        const won = replies.map((x, i) => (x.msg.ok === true ? i : -1)).filter((i) => i >= 0);
        if (won.length !== 1) throw new Error(`two devices accepted at once: ${won.length} accepts won: ${replies.map((x) => x.text).join(' | ')}`);
        winner = ring[won[0]];
        winReply = replies[won[0]];
        if (winReply.text !== T.response('call_accept', { id: ids[won[0]], callId, state: 'active' }))
            problem('call message not as the contract says', `${winner.conn.key}, accept that won: ${winReply.text}`);
        for (const [i, d] of ring.entries()) {
            if (i === won[0]) continue;
            losers.push(d);
            if (replies[i].text !== T.error('call_accept', 'answered_elsewhere', ids[i]))
                problem('call message not as the contract says', `${d.conn.key}, accept that lost: ${replies[i].text}`);
            inOrder(await endedAt(rec, d, 'answered_elsewhere'), replies[i], 'the losing accept: call_ended answered_elsewhere, then its error');
        }
    } else {
        winner = pick(ring);
        const aid = callRequest(winner.conn, { type: 'call_accept', callId });
        winReply = await want(winner.conn, replyTo(aid), T.response('call_accept', { id: aid, callId, state: 'active' }), 'call_accept_response');
        for (const d of ring) if (d !== winner) losers.push(d);
    }
    rec.winnerKey = winner.key;
    inc('calls.accepted');
    const byDevice = winner.did;
    const [, wAccepted] = await Promise.all([
        want(caller.conn, ofCall('call_accepted', callId), T.accepted({ callId, byUser: calleeUser.id, byDevice, polite: false }), 'call_accepted (caller)'),
        want(winner.conn, ofCall('call_accepted', callId), T.accepted({ callId, byUser: calleeUser.id, byDevice, polite: true }), 'call_accepted (callee)'),
        ...(double ? [] : losers.map((d) => endedAt(rec, d, 'answered_elsewhere'))),
    ]);
    inOrder(winReply, wAccepted, 'accept reply, then call_accepted');
    for (const f of await receiveSignals(rec, winner, 'up')) inOrder(wAccepted, f, 'call_accepted, then the early signals');
    await exchangeSignals(rec, caller, winner, randInt(1, 5), randInt(1, 5));

    const byCaller = chance(0.5);
    if (outcome === 'hangup') {
        await hangupActive(rec, byCaller ? caller : winner, byCaller ? winner : caller);
    } else if (outcome === 'close') {
        // a clean close is the party's hangup; it comes back once the other side was told
        const h = byCaller ? caller : winner;
        const o = byCaller ? winner : caller;
        await h.conn.close();
        endDue(rec, h, null);
        await endedAt(rec, o, 'hangup');
        await openCallConn(h);
    } else {
        // loss: the victim's socket is destroyed (no close frame); the other side is told, and keeps signalling
        const victim = byCaller ? caller : winner;
        const surv = byCaller ? winner : caller;
        const dir = surv === caller ? 'up' : 'down';
        const back = outcome === 'loss-back';
        const killedAt = Date.now();
        victim.conn.kill();
        const lost = await want(surv.conn, ofCall('call_state', callId), T.state({ callId, state: 'active', alerting: 0, peerConnected: false }), 'call_state peerConnected:false');
        for (let i = randInt(0, 3); i > 0; i--) {
            await sendSignal(rec, surv, dir, 'active', back ? 'deliver' : 'drop');
            await delay(randInt(20, 60));
        }
        if (back) {
            await delay(randInt(0, 250));
            const conn = await openCallConn(victim, [
                { callId, state: 'active', role: victim === caller ? 'caller' : 'callee', peerUserId: surv.user.id, media },
            ]);
            callFigures.reattachMs.push(conn.registered.at - lost.at);
            const own = await want(conn, ofCall('call_state', callId), T.state({ callId, state: 'active', alerting: 0, peerConnected: true }), 'call_state on re-attach (own view)');
            inOrder(conn.registered, own, 're-attach: create_connect_response, then call_state');
            await want(surv.conn, ofCall('call_state', callId), T.state({ callId, state: 'active', alerting: 0, peerConnected: true }), 'call_state peerConnected:true');
            for (const f of await receiveSignals(rec, victim, dir)) inOrder(own, f, 're-attach: call_state, then the kept signals');
            inc('calls.loss.reattached');
            await exchangeSignals(rec, caller, winner, randInt(1, 3), randInt(1, 3));
            const again = chance(0.5);
            await hangupActive(rec, again ? caller : winner, again ? winner : caller, { allowRepeat: false });
        } else {
            const gone = await endedAt(rec, surv, 'peer_gone', { timeout: RECONNECT_GRACE + OP_TIMEOUT });
            endDue(rec, victim, null); // lost: told nothing
            const ms = gone.at - killedAt;
            callFigures.graceMs.push(ms);
            if (ms < RECONNECT_GRACE - 20) problem('reconnect grace ended early', `${callId}: peer_gone ${ms} ms after the loss (grace ${RECONNECT_GRACE} ms)`);
            inc('calls.loss.gone');
            // the lost device comes back after the grace: nothing live, and a late hangup gets the end again
            await openCallConn(victim);
            if (chance(0.5)) {
                const hid = callRequest(victim.conn, { type: 'call_hangup', callId });
                const hr = await want(victim.conn, replyTo(hid), T.response('call_hangup', { id: hid, callId, state: 'ended' }), 'late call_hangup_response');
                inOrder(hr, await repeatAt(rec, victim, 'peer_gone'), 'late hangup: reply, then call_ended repeat');
                inc('calls.loss.late-hangup');
            }
        }
    }
    rec.done = true;
}

/** After a cycle: nothing may be left in any inbox of the pair. */
function pairLeftovers(pair, label) {
    for (const d of [...pair.a.devices, ...pair.b.devices]) {
        if (d.conn?.inbox.length) {
            problem('unexpected call message', `${d.conn.key} after ${label}: ${d.conn.inbox.map((e) => e.text.slice(0, 200)).join(' | ')}`);
            d.conn.inbox.length = 0;
        }
    }
}

/** A cycle failed: every device connected again, the call ended if it still lives, the inboxes emptied. */
async function recoverPair(pair, rec) {
    try {
        for (const d of [...pair.a.devices, ...pair.b.devices]) {
            if (!d.conn || d.conn.closed || d.conn.expectClose) {
                if (d.conn && !d.conn.closed) d.conn.kill();
                const ws = new WebSocket(S.nodes[d.node].wsUrl, { perMessageDeflate: false, handshakeTimeout: OP_TIMEOUT });
                const conn = new CallConn(d, ws);
                await withTimeout(new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject))), OP_TIMEOUT, `${conn.key}: open`);
                d.conn = conn;
                const id = callRequest(conn, { type: 'create_connect', sponsorUserId: d.user.id, sponsorUserName: d.user.name, level: 2, deviceId: d.did });
                await conn.take(replyTo(id), 'create_connect_response (recovery)');
            }
        }
        if (rec?.callId) {
            for (const d of [...pair.a.devices, ...pair.b.devices]) {
                const id = callRequest(d.conn, { type: 'call_hangup', callId: rec.callId });
                await d.conn.take(replyTo(id), 'call_hangup_response (recovery)').catch(() => {});
            }
        }
        await delay(Math.max(RING_TIMEOUT, RECONNECT_GRACE) + 500);
        for (const d of [...pair.a.devices, ...pair.b.devices]) if (d.conn) d.conn.inbox.length = 0;
    } catch (err) {
        pair.broken = true;
        problem('call cycle failed', `pair ${pair.n} could not recover (it stops): ${err.message}`);
    }
}

/** Cluster mode: waits until a call cycle started now cannot overlap the Redis outage window (see the header). */
async function callsOutsideOutage(until) {
    for (let i = 0; CLUSTER && i < MAX_LOOP && Date.now() < until && serversAlive(); i++) {
        const o = S.outage;
        const soon = !o && S.outagePlannedAt !== null && Date.now() + CALL_OUTAGE_GUARD > S.outagePlannedAt;
        const within = o && !(o.endAt !== undefined && Date.now() >= o.endAt + CALL_RESUME_AFTER);
        if (!soon && !within) return;
        await delay(100);
    }
}

async function callWorker(pair, until) {
    await delay(randInt(0, 500));
    for (let i = 0; i < MAX_LOOP && Date.now() < until && serversAlive() && !pair.broken; i++) {
        let rec = null;
        await callsOutsideOutage(until);
        if (Date.now() >= until) break;
        try {
            await withTimeout(
                callCycle(pair, (r) => (rec = r)),
                CALL_CYCLE_BOUND,
                `call cycle of pair ${pair.n}`,
            );
            pair.cycles++;
            rec.endedAt = Date.now();
            pairLeftovers(pair, `call ${rec.callId} (${rec.outcome})`);
        } catch (err) {
            if (rec) {
                rec.failed = true;
                rec.endedAt = Date.now();
            }
            problem('call cycle failed', `pair ${pair.n}, ${rec?.outcome ?? '?'} call ${rec?.callId ?? '(no callId yet)'} at ${elapsed()} s: ${err.message}`);
            if (/^timed out after \d+ ms: call cycle/.test(err.message)) {
                pair.broken = true; // the cycle may still be running: the pair stops
                continue;
            }
            await recoverPair(pair, rec);
        }
        await delay(randInt(CALL_PAUSE[0], CALL_PAUSE[1]));
    }
}

/** Once everything settled: a fresh level-2 device of each call user lists no live call and gets nothing. */
async function callsFinalListing() {
    const results = await Promise.all(
        callUsers.map(async (user) => {
            const dev = { key: `${user.id}/final`, user, did: 'final-check', node: (user.devices[0].node + 1) % NODES, conn: null, conns: 0 };
            try {
                const conn = await openCallConn(dev);
                const listed = conn.registered.text === T.registered({ id: conn.registered.msg.id, user: user.id, device: dev.did, calls: [] });
                await delay(300);
                const extra = conn.inbox.map((e) => e.text);
                await conn.close();
                return { user, listed, extra, text: conn.registered.text };
            } catch (err) {
                return { user, listed: false, extra: [], text: err.message };
            }
        }),
    );
    return results;
}

/** Checks 8 and 9 from the tapped arrivals. */
function evaluateCalls(finalListing) {
    const recs = callRecs.filter((r) => r.callId !== null);
    const failed = callRecs.filter((r) => r.failed).length;
    const judged = recs.filter((r) => r.done && !r.failed);
    const byId = new Map(recs.map((r) => [r.callId, r]));
    const samples = [];
    const sample = (s) => samples.length < 8 && samples.push(s);
    // replies
    let reqs = 0;
    let unanswered = 0;
    for (const r of callReqs.values()) {
        reqs++;
        if (r.replies === 0) {
            unanswered++;
            sample(`unanswered: ${r.text} (on ${r.connKey})`);
        }
    }
    const replyProblems = problemCount('call reply with an unknown or missing id', 'call reply at the wrong connection', 'call reply duplicated');
    // arrivals of unknown calls
    let strays = 0;
    for (const [callId, list] of callArrivals) {
        if (!byId.has(callId)) {
            strays += list.length;
            sample(`a message of a call nobody placed (${callId}) at ${list[0].devKey}: ${list[0].text.slice(0, 160)}`);
        }
    }
    // ends, misrouting, signals
    let endsDue = 0;
    let endsOk = 0;
    let endsMissing = 0;
    let endsDup = 0;
    let endsWrong = 0;
    let endsUnexpected = 0;
    let repeatsDue = 0;
    let repeatsBad = 0;
    let misrouted = 0;
    const sig = { due: 0, ok: 0, lost: 0, dup: 0, reordered: 0, inexact: 0, misrouted: 0, dropDue: 0, dropArrived: 0 };
    for (const rec of judged) {
        const list = callArrivals.get(rec.callId) ?? [];
        for (const a of list) {
            if (!rec.involved.has(a.devKey)) {
                misrouted++;
                sample(`${rec.callId} (${rec.outcome}): ${a.type} at ${a.devKey}, a device not in the call: ${a.text.slice(0, 160)}`);
            }
        }
        for (const key of rec.involved) {
            const firsts = list.filter((a) => a.devKey === key && a.type === 'call_ended' && !a.repeat);
            const repeats = list.filter((a) => a.devKey === key && a.type === 'call_ended' && a.repeat);
            if (!rec.end.has(key)) {
                // the device took no part in the end (a caller's other device is not in `involved`)
                endsUnexpected += firsts.length;
                continue;
            }
            const due = rec.end.get(key);
            if (due === null) {
                if (firsts.length) {
                    endsUnexpected += firsts.length;
                    sample(`${rec.callId} (${rec.outcome}): ${key} must get no call_ended, got ${firsts.map((a) => a.text).join(' | ')}`);
                }
            } else {
                endsDue++;
                if (firsts.length === 0) {
                    endsMissing++;
                    sample(`${rec.callId} (${rec.outcome}): no call_ended at ${key} (due ${due})`);
                } else {
                    if (firsts.length > 1) {
                        endsDup += firsts.length - 1;
                        sample(`${rec.callId} (${rec.outcome}): call_ended ${firsts.length} times at ${key}`);
                    }
                    if (firsts[0].text !== due) {
                        endsWrong++;
                        sample(`${rec.callId} (${rec.outcome}) at ${key}: due ${due}, got ${firsts[0].text}`);
                    } else if (firsts.length === 1) endsOk++;
                }
            }
            const dueRepeats = rec.repeats.get(key) ?? 0;
            repeatsDue += dueRepeats;
            if (repeats.length !== dueRepeats) {
                repeatsBad++;
                sample(`${rec.callId} (${rec.outcome}) at ${key}: ${repeats.length} repeat call_ended, due ${dueRepeats}`);
            }
        }
        // signals: caller -> callee party ("up") arrive at the device that accepted, callee -> caller ("down") at the caller
        const at = { up: [], down: [] };
        for (const a of list) {
            if (a.type !== 'call_signal') continue;
            if (rec.winnerKey !== null && a.devKey === rec.winnerKey) at.up.push(a);
            else if (a.devKey === rec.callerKey) at.down.push(a);
            else {
                sig.misrouted++;
                sample(`${rec.callId} (${rec.outcome}): call_signal at ${a.devKey}, not a party: ${a.text.slice(0, 160)}`);
            }
        }
        for (const dir of ['up', 'down']) {
            const to = dir === 'up' ? rec.winnerKey : rec.callerKey;
            const due = rec[dir].filter((e) => e.fate === 'deliver');
            sig.due += due.length;
            sig.dropDue += rec[dir].length - due.length;
            const seen = new Map();
            let last = 0;
            for (const a of at[dir]) {
                seen.set(a.seq, (seen.get(a.seq) ?? 0) + 1);
                if (!(a.seq > last)) sig.reordered++;
                last = Math.max(last, a.seq);
                const e = rec[dir][a.seq - 1];
                if (!e || e.fate !== 'deliver') {
                    sig.dropArrived++;
                    sample(`${rec.callId} (${rec.outcome}): signal seq ${a.seq} (${dir}) arrived at ${a.devKey}, but was due nowhere`);
                } else if (a.text !== e.text) {
                    sig.inexact++;
                    sample(`${rec.callId}: signal seq ${a.seq} (${dir}) not as sent: ${a.text.slice(0, 200)}`);
                }
            }
            for (const e of due) {
                const k = seen.get(e.seq) ?? 0;
                if (k === 0) {
                    sig.lost++;
                    sample(`${rec.callId} (${rec.outcome}): signal seq ${e.seq} (${dir}) never arrived at ${to}`);
                } else if (k > 1) sig.dup += k - 1;
                else sig.ok++;
            }
        }
    }
    const listedOk = finalListing.filter((r) => r.listed && r.extra.length === 0).length;
    for (const r of finalListing.filter((x) => !x.listed || x.extra.length)) sample(`final listing of ${r.user.id}: ${r.text.slice(0, 200)}${r.extra.length ? `; then ${r.extra.join(' | ')}` : ''}`);
    const driverProblems = problemCount(
        'call cycle failed',
        'call message not as the contract says',
        'call messages out of order',
        'unexpected call message',
        'unexpected message at a call device',
        'call connection closed during the run',
        'ring timeout fired early',
        'ring timeout fired late',
        'reconnect grace ended early',
    );
    const outcomes = CALL_OUTCOMES.map(([o]) => `${o}=${get(`calls.outcome.${o}`)}`).join(' ');
    const range = (xs) => (xs.length ? `${Math.min(...xs)}..${Math.max(...xs)} ms` : '-');
    check(
        8,
        'calls: every call request answered exactly once; every call ended exactly once on every device involved, with the right reason; no call left live',
        failed === 0 &&
            judged.length > 0 &&
            unanswered === 0 &&
            replyProblems === 0 &&
            strays === 0 &&
            misrouted === 0 &&
            endsMissing + endsDup + endsWrong + endsUnexpected + repeatsBad === 0 &&
            listedOk === callUsers.length &&
            driverProblems === 0,
        [
            `${callPairs.length} call pairs, ${callDevices.length} level-2 devices (${callUsers.filter((u) => u.devices.length > 1).length} users with 2${CLUSTER ? `; per node ${perNode(S.nodes.map((_, i) => callDevices.filter((d) => d.node === i).length))}, the caller's and callee's first devices on different nodes` : ''}); ` +
                `${get('calls.placed')} calls placed, ${judged.length} ran to their end, ${failed} cycles failed; outcomes ${outcomes}`,
            `requests: ${reqs} sent (create_connect included), ${unanswered} unanswered; replies duplicated/misrouted/with an unknown id: ${replyProblems}`,
            `call_ended: ${endsDue} due (call, device), ${endsOk} arrived exactly once and exact, ${endsMissing} missing, ${endsDup} duplicated, ${endsWrong} with the wrong bytes/reason, ` +
                `${endsUnexpected} at a device that ended it itself or was lost; repeats ("repeat":true) due ${repeatsDue}, ${repeatsBad} devices with another count`,
            `races: ${get('calls.accept.double')} double accepts (one winner each), cancel against accept ${get('calls.race.accept-first')} won by the accept / ${get('calls.race.cancel-first')} by the cancel; ` +
                `repeated hangups ${get('calls.hangup.repeated')}`,
            `ring timeouts: call_ended no_answer ${range(callFigures.ringMs)} after the call (ring-timeout ${RING_TIMEOUT} ms); ` +
                `losses: ${get('calls.loss.reattached')} re-attached within the grace (create_connect answered ${range(callFigures.reattachMs)} after peerConnected:false), ` +
                `${get('calls.loss.gone')} peer_gone ${range(callFigures.graceMs)} after the loss (grace ${RECONNECT_GRACE} ms), ${get('calls.loss.late-hangup')} late hangups after it`,
            `messages of calls nobody placed: ${strays}; call messages at a device not in the call: ${misrouted}; driver problems (wrong bytes, order, leftovers, timeouts): ${driverProblems}`,
            `no call left live: ${listedOk} of ${callUsers.length} call users listed "calls":[] on a fresh level-2 device once everything settled (and got nothing else)`,
        ],
        samples,
    );
    check(
        9,
        'calls: no call_signal lost, duplicated, reordered, misrouted or changed; none delivered that the call\'s end dropped',
        judged.length > 0 && sig.lost + sig.dup + sig.reordered + sig.inexact + sig.misrouted + sig.dropArrived === 0 && get('calls.signals.sent') > 0,
        [
            `${get('calls.signals.sent')} signals sent; ${sig.due} due at the other party: ${sig.ok} arrived exactly once, in order and byte-exact; ` +
                `${sig.lost} lost, ${sig.dup} duplicated, ${sig.reordered} out of order, ${sig.inexact} not byte-exact, ${sig.misrouted} at another device`,
            `${sig.dropDue} dropped by the call's end (early signals of calls nobody accepted, signals kept for a party that never came back): ${sig.dropArrived} of them arrived somewhere`,
        ],
        samples.filter((s) => /signal/.test(s)),
    );
}

// ---------------------------------------------------------------- phases

/** Paced loop: calls `fn` about rate(now) times per second until `until` (no catch-up bursts). */
async function paced(until, rateFn, fn) {
    let last = Date.now();
    let credit = 0;
    for (let i = 0; i < MAX_LOOP && Date.now() < until && serversAlive(); i++) {
        await delay(10);
        const now = Date.now();
        credit = Math.min(credit + ((now - last) * rateFn()) / 1000, rateFn() / 20 + 1); // at most 50 ms worth
        last = now;
        for (; credit >= 1; credit--) fn();
    }
}

/** The whole mix for `ms` milliseconds; resolves once every worker has stopped (bounded). */
async function runMix(ms) {
    const until = Date.now() + ms;
    const workers = [
        paced(until, () => RATE, stableDial),
        ...Array.from({ length: SLOW }, () => slowWorker(until)),
        ...Array.from({ length: CHURN }, () => churnWorker(until)),
        malformedWorker(until),
        ...(CALLS ? callPairs.map((pair) => callWorker(pair, until)) : []),
    ];
    // dialings at the slow readers: per reader, at its mode's rate
    const slowDials = (async () => {
        let last = Date.now();
        const credit = new Map();
        for (let i = 0; i < MAX_LOOP && serversAlive(); i++) {
            if (Date.now() >= until && S.slowTargets.length === 0) break;
            if (Date.now() >= until + SLOW_REFUSAL_BOUND + LINGER_MS + 25000) break;
            await delay(10);
            const now = Date.now();
            for (const slow of [...S.slowTargets]) {
                const rate = slow.mode === 'flood' && slow.refusedAt === null ? FLOOD_RATE : 50;
                let c = Math.min((credit.get(slow) ?? 0) + ((now - last) * rate) / 1000, rate / 20 + 1);
                for (; c >= 1; c--) slowDial(slow);
                credit.set(slow, c);
            }
            last = now;
        }
    })();
    await withTimeout(
        Promise.all([...workers, slowDials]),
        ms + WORKERS_BOUND + SLOW_REFUSAL_BOUND + LINGER_MS + 25000,
        'workers to stop',
    ).catch((err) => problem('client operation failed', err.message));
}

/** Records still waiting for an answer or a push that must come. */
function outstanding() {
    let answers = 0;
    let pushes = 0;
    for (const rec of records) {
        if (rec.expectAnswer && !rec.abandoned && !rec.senderGone && rec.answers.length === 0) answers++;
        if (rec.targetKind === 'stable' && rec.ans) {
            const user = stableById.get(rec.target);
            if (CLUSTER) {
                // "delivered" may be short of the devices in the outage window: that many pushes are due
                if (rec.ans.ok && user) {
                    const got = user.devices.filter((d) => rec.calls?.get(d.key)).length;
                    pushes += Math.max(0, Math.min(rec.ans.data?.delivered ?? 0, liveDevices(user)) - got);
                }
            } else if (rec.ans.ok && user) for (const d of user.devices) if (d.open && !rec.calls?.get(d.key)) pushes++;
        }
    }
    return { answers, pushes };
}

/** End of a phase: churn gone, answers and pushes in, the server back to the stable sockets only. */
async function quiesce(label) {
    // raw clients still open (none should be: every scenario ends its own) are ended here
    for (const peer of [...S.openPeers]) {
        problem('raw client left open by its scenario', peer.key);
        peer.abort();
    }
    await waitUntil(() => S.openPeers.size === 0, { timeout: OP_TIMEOUT, what: 'raw clients to end' }).catch((err) =>
        problem('client operation failed', err.message),
    );
    await waitUntil(
        () => {
            const o = outstanding();
            return o.answers === 0 && o.pushes === 0;
        },
        { timeout: DRAIN_BOUND, interval: 100, what: `answers and pushes of the ${label} phase` },
    ).catch(() => {}); // what is missing is counted by the assertions
    const fdsWanted = S.fdsBase;
    await waitUntil(() => S.nodes.every((n, i) => fdCount(n.pid) <= fdsWanted[i]), {
        timeout: RELEASE_BOUND,
        interval: 100,
        what: `the server to hold only the stable sockets (${perNode(fdsWanted)} fds)`,
    }).catch(() => {}); // asserted in check 3
}

/** Per node: {rss (median of 5 samples 200 ms apart), samples, fds}. */
async function measureIdle() {
    await delay(2000); // settle: heartbeats only
    const samples = S.nodes.map(() => []);
    for (let i = 0; i < 5; i++) {
        S.nodes.forEach((n, j) => samples[j].push(rssKb(n.pid)));
        await delay(200);
    }
    return S.nodes.map((n, j) => {
        samples[j].sort((a, b) => a - b);
        return { rss: samples[j][2], samples: samples[j], fds: fdCount(n.pid) };
    });
}

/**
 * One probe dialing to every target, spread over the probe connections (those on node `node` when
 * given) and paced; returns [{target, rec, answer}].
 */
async function probeAll(targets, targetKind, node) {
    const out = [];
    const from = node === undefined ? probes : probes.filter((p) => p.node === node);
    const step = from.length * PROBE_BATCH;
    for (let i = 0; i < targets.length; i += step) {
        const started = Date.now();
        const recs = targets.slice(i, i + step).map((target, j) => {
            const probe = from[j % from.length];
            const built = newDial({ sender: probe, target, targetKind, name: 'probe' });
            built.rec.final = true;
            probe.ws.send(built.text);
            return built.rec;
        });
        const answers = await Promise.all(recs.map((rec) => answerOf(rec).catch(() => null)));
        recs.forEach((rec, j) => out.push({ target: rec.target, rec, answer: answers[j] }));
        await delay(Math.max(0, PROBE_PERIOD - (Date.now() - started)));
    }
    return out;
}

// ---------------------------------------------------------------- cluster: Redis and its restart

/** Cluster mode: every stable user's sig:u: channel, found in Redis once the stable population registered. */
async function findUserChannels() {
    const channels = await S.redis.channels('sig:u:*');
    S.userChannel = new Map();
    for (const u of stableUsers) {
        const ch = channels.find((c) => c.endsWith(`:${u.id}`));
        if (!ch)
            throw new Error(
                `no sig:u: channel for ${u.id} in Redis after it registered (PUBSUB CHANNELS sig:u:* has ${channels.length})`,
            );
        S.userChannel.set(u.id, ch);
    }
}

/**
 * Cluster mode: whether Redis has each node's sig:n: channel with one subscriber and each stable user's
 * sig:u: channel with one subscriber per node that holds a live device of it (PUBSUB NUMSUB).
 */
async function clusterLinked() {
    const chans = [...NODE_IDS.map((id) => nodeChannel(id)), ...stableUsers.map((u) => S.userChannel.get(u.id))];
    const reply = await S.redis.command('PUBSUB', 'NUMSUB', ...chans);
    for (let i = 0; i < NODES; i++) if (Number(reply[2 * i + 1]) !== 1) return false;
    const holders = (u) => new Set(u.devices.filter((d) => d.open).map((d) => d.node)).size;
    return stableUsers.every((u, j) => Number(reply[2 * (NODES + j) + 1]) === holders(u));
}

/**
 * Cluster mode: one dialing to every stable user from a probe on a node without a device of that user
 * (any probe for a user on every node); ok when each is answered delivered == its live devices. These
 * are ordinary records: their pushes are checked by check 1.
 */
async function recoveryRound(round) {
    const sentAt = Date.now();
    const recs = stableUsers.map((user) => {
        const held = nodesOf(user);
        const away = probes.filter((p) => !held.has(p.node));
        const pool = away.length ? away : probes;
        const probe = pool[(user.index + round) % pool.length];
        const built = newDial({ sender: probe, target: user.id, targetKind: 'stable', name: 'probe' });
        built.rec.recovery = round;
        probe.ws.send(built.text);
        return built.rec;
    });
    await Promise.all(recs.map((rec) => answerOf(rec, ANSWER_BOUND).catch(() => null)));
    const bad = recs.filter(
        (rec) => rec.answers[0] !== dialingOkText(rec.id, rec.target, liveDevices(stableById.get(rec.target))),
    );
    return {
        sentAt,
        ok: bad.length === 0,
        bad: bad.length,
        samples: bad.slice(0, 3).map((r) => `${r.target}: ${r.answers[0] ?? 'no answer'}`),
    };
}

/**
 * Cluster mode: at `at`, stops Redis (SIGTERM), waits REDIS_DOWN, starts it on the same port, then
 * finds the end of the outage window: the first recovery round that succeeds once clusterLinked().
 */
async function redisOutage(at) {
    await delay(Math.max(0, at - Date.now()));
    if (!serversAlive()) return;
    const o = (S.outage = { stopAt: Date.now(), rounds: 0, failedRounds: 0, recovered: false });
    log(
        `[${elapsed()} s] redis: stopping it (SIGTERM); it stays down ${REDIS_DOWN} s, then starts again on port ${S.redis.port}`,
    );
    o.stop = await S.redis.stop();
    o.stoppedAt = Date.now();
    await delay(REDIS_DOWN * 1000);
    o.startAt = Date.now();
    try {
        await S.redis.start();
    } catch (err) {
        problem('redis could not be started again', err.message);
        o.endAt = Infinity;
        return;
    }
    o.upAt = Date.now();
    log(`[${elapsed()} s] redis: up again after ${o.upAt - o.stopAt} ms (stopped in ${o.stoppedAt - o.stopAt} ms)`);
    for (let i = 0; i < MAX_LOOP; i++) {
        let linked = false;
        try {
            linked = await clusterLinked();
        } catch (err) {
            o.lastError = err.message;
        }
        if (linked) o.linkedAt ??= Date.now();
        if (linked && Date.now() - o.upAt >= LINKS_BACK_AFTER) {
            const round = await recoveryRound(++o.rounds);
            if (round.ok) {
                o.endAt = round.sentAt;
                o.recoveredAt = Date.now();
                o.recovered = true;
                break;
            }
            o.failedRounds++;
            o.lastRound = `${round.bad} of ${stableUsers.length} not reached, e.g. ${round.samples.join(' | ')}`;
        }
        if (Date.now() - o.upAt > RECOVERY_WAIT) {
            o.endAt = Date.now();
            problem(
                'cluster not recovered after the Redis restart',
                `${RECOVERY_WAIT} ms after Redis was back: linked ${o.linkedAt ? 'yes' : 'no'}; ${o.lastRound ?? o.lastError ?? ''}`,
            );
            break;
        }
        await delay(linked && o.rounds > 0 ? PROBE_PERIOD : 50); // rounds paced for the probes' rate limit
    }
    log(
        `[${elapsed()} s] redis: ${o.recovered ? '' : 'NOT '}recovered: node and user channels subscribed again ${o.linkedAt ? `${o.linkedAt - o.upAt} ms` : 'never'} after Redis was back, ` +
            `every stable user reached across nodes by round ${o.rounds} sent ${o.recovered ? `${o.endAt - o.upAt} ms` : '-'} after (${o.failedRounds} rounds fell short)`,
    );
}

/** Cluster mode, every client closed: waits (bounded) until Redis has no sig:u:* channel; the node channels' subscribers. */
async function redisAfterAllClosed() {
    const started = Date.now();
    let left = [];
    let error;
    await waitUntil(
        async () => {
            left = await S.redis.channels('sig:u:*');
            return left.length === 0;
        },
        { timeout: REDIS_RELEASE_BOUND, interval: 50, what: 'Redis to have no sig:u:* channel' },
    ).catch((err) => (error = err.message));
    const ms = Date.now() - started;
    const leftSubs = [];
    for (const ch of left.slice(0, 5))
        leftSubs.push(`${ch} (${await S.redis.numsub(ch).catch(() => '?')} subscribers)`);
    const nodeSubs = [];
    for (const id of NODE_IDS) nodeSubs.push(await S.redis.numsub(nodeChannel(id)).catch(() => -1));
    return { left, leftSubs, ms, nodeSubs, error };
}

// ---------------------------------------------------------------- checks

const stableById = new Map();
const results = [];
function check(n, title, ok, figures, details = []) {
    results.push({ n, title, ok, figures, details });
}

/** Cluster mode: whether a dialing touches the outage window (sent before its end, finished after its start). */
function inWindow(rec) {
    const o = S.outage;
    if (!CLUSTER || !o || rec.sentAt === undefined) return false;
    if (rec.sentAt > (o.endAt ?? Infinity)) return false;
    // finished = answered; one not answered (no id: a success is not answered; or its sender vanished) may
    // have been in flight for ANSWER_BOUND (a dialing left unanswered fails check 2 anyway)
    const finished = rec.answeredAt ?? rec.sentAt + ANSWER_BOUND;
    return finished >= o.stopAt;
}

function evaluateDelivery() {
    // 1. stable sender, with id, to a stable user online throughout (the final probe included: it is a stable client)
    let c1 = 0;
    let expectedPushes = 0;
    let exactlyOnce = 0;
    let lost = 0;
    let dup = 0;
    let notOk = 0;
    let wrongDelivered = 0;
    const samples = [];
    // other senders' dialings to online stable users: all-or-nothing per user, never twice
    let others = 0;
    let othersBad = 0;
    let noId = 0;
    let noIdBad = 0;
    // 2. answers
    let expectAnswers = 0;
    let unanswered = 0;
    let lostToClose = 0;
    let lostToCloseOneWrite = 0;
    const unansweredSamples = [];
    let overDelivered = 0;
    let offlineWrong = 0;
    let slowWrong = 0;
    let churnWrong = 0;
    let neverDelivered = 0;
    // cluster mode: dialings to online stable users that touch the outage window, answer times, cross-node share
    let inWin = 0;
    let okWin = 0;
    let partialWin = 0;
    let badWin = 0;
    let idlessWin = 0;
    const failWin = new Map(); // code -> count
    const zeroIdless = new Map(); // sender key -> id-less dialings in the window that reached nobody
    const idlessReached = new Map(); // sender key -> id-less dialings in the window that reached somebody
    let lateAnswers = 0;
    let slowestAnswer = 0;
    const lateSamples = [];
    let cross = 0;
    let toStable = 0;
    for (const rec of records) {
        const win = inWindow(rec);
        if (rec.expectAnswer && !rec.abandoned) {
            expectAnswers++;
            if (rec.answers.length === 0) {
                unanswered++;
                if (rec.lostToClose) lostToClose++;
                if (rec.lostToClose && rec.closeInSameWrite) lostToCloseOneWrite++;
                if (unansweredSamples.length < 5)
                    unansweredSamples.push(`${rec.tag} (${rec.senderKind} -> ${rec.target}, ${rec.targetKind})`);
            }
        }
        if (CLUSTER && rec.answeredAt !== undefined && rec.sentAt !== undefined) {
            const ms = rec.answeredAt - rec.sentAt;
            slowestAnswer = Math.max(slowestAnswer, ms);
            if (ms > ANSWER_BOUND) {
                lateAnswers++;
                if (lateSamples.length < 5)
                    lateSamples.push(`${rec.tag} to ${rec.target}: answered after ${ms} ms: ${rec.answers[0]}`);
            }
        }
        const ans = rec.answers.length ? JSON.parse(rec.answers[0]) : null;
        const received = [...(rec.calls?.values() ?? [])].reduce((s, v) => s + v, 0);
        // in the window an ok count may be short (docs/scaling.md: RESULTs lost with the subscriber, "the count so far")
        if (ans && ans.ok === true && received > ans.data.delivered && !win) overDelivered++;
        // cluster_unavailable in the window means "unknown": the answers' way back broke (docs/scaling.md)
        if (ans && ans.ok === false && received > 0 && !(win && ans.code === 'cluster_unavailable')) overDelivered++;
        if (rec.targetKind === 'never' && received > 0) neverDelivered++;
        // in the outage window a user not held by the sender's node is unknown
        const unavailable = win && ans?.code === 'cluster_unavailable';
        if (
            rec.targetKind === 'offline' &&
            ans &&
            rec.answers[0] !== dialingFailText('peer_offline', rec.id) &&
            !unavailable
        )
            offlineWrong++;
        if (rec.targetKind === 'slow' && ans) {
            const fine =
                (ans.ok && ans.data.delivered === 1) ||
                ans.code === 'peer_gone' ||
                ans.code === 'peer_offline' ||
                unavailable;
            if (!fine) slowWrong++;
        }
        if (rec.targetKind === 'churn' && ans) {
            const fine =
                (ans.ok && ans.data.delivered >= 1) ||
                ans.code === 'peer_gone' ||
                ans.code === 'peer_offline' ||
                unavailable;
            if (!fine) churnWrong++;
        }
        if (rec.targetKind !== 'stable') continue;
        const user = stableById.get(rec.target);
        if (!user || !onlineThroughout(user)) continue;
        const counts = user.devices.map((d) => rec.calls?.get(d.key) ?? 0);
        const fromStable = rec.senderKind === 'stable' || rec.senderKind === 'probe';
        if (CLUSTER) {
            toStable++;
            if (user.devices.some((d) => d.node !== rec.senderNode)) cross++;
        }
        if (win) {
            // what the answer says is what arrived: N pushes for delivered N (one per device at most), none for a failure
            let fine;
            let why = '';
            if (rec.id === undefined) {
                idlessWin++;
                fine = counts.every((c) => c <= 1);
                if (received === 0) zeroIdless.set(rec.senderKey, (zeroIdless.get(rec.senderKey) ?? 0) + 1);
                else idlessReached.set(rec.senderKey, (idlessReached.get(rec.senderKey) ?? 0) + 1);
            } else {
                inWin++;
                if (!ans) {
                    fine = counts.every((c) => c <= 1); // unanswered: counted in check 2
                } else if (ans.ok === true) {
                    okWin++;
                    const n = ans.data.delivered;
                    if (n < user.devices.length) partialWin++;
                    // at least the N counted; more when RESULTs were lost with the subscriber (the count so far)
                    fine = n >= 1 && n <= user.devices.length && received >= n && received <= user.devices.length && counts.every((c) => c <= 1);
                    why = `delivered ${n} of ${user.devices.length} devices`;
                } else {
                    failWin.set(ans.code, (failWin.get(ans.code) ?? 0) + 1);
                    // cluster_unavailable: the outcome is unknown, so some devices may have got it (one push each at most)
                    fine =
                        ALLOWED_IN_WINDOW.includes(ans.code) &&
                        (received === 0 || (ans.code === 'cluster_unavailable' && counts.every((c) => c <= 1)));
                    why = ans.code;
                }
            }
            if (!fine) {
                badWin++;
                if (samples.length < 5)
                    samples.push(
                        `${rec.tag} (${rec.senderKind} on ${NODE_IDS[rec.senderNode]}, in the outage window) to ${rec.target}: ` +
                            `${rec.answers[0] ?? 'no answer'}${why ? ` (${why})` : ''}, arrivals per device ${counts.join(',')} ` +
                            `(devices on ${user.devices.map((d) => NODE_IDS[d.node]).join(',')}), sent at ${((rec.sentAt - T0) / 1000).toFixed(3)} s, ` +
                            `answered at ${rec.answeredAt ? ((rec.answeredAt - T0) / 1000).toFixed(3) : '-'} s, ` +
                            `first push at ${rec.firstCallAt ? ((rec.firstCallAt - T0) / 1000).toFixed(3) : '-'} s (Redis stopped at ${((S.outage.stopAt - T0) / 1000).toFixed(3)} s)`,
                    );
            }
            continue;
        }
        if (fromStable && rec.id !== undefined) {
            c1++;
            expectedPushes += user.devices.length;
            for (const c of counts) {
                if (c === 1) exactlyOnce++;
                else if (c === 0) lost++;
                else dup += c - 1;
            }
            if (!ans || ans.ok !== true) {
                notOk++;
                if (samples.length < 5) samples.push(`${rec.tag} to ${rec.target}: ${rec.answers[0] ?? 'no answer'}`);
            } else if (ans.data.delivered !== user.devices.length) {
                wrongDelivered++;
                if (samples.length < 5)
                    samples.push(
                        `${rec.tag} to ${rec.target}: delivered ${ans.data.delivered}, devices ${user.devices.length}`,
                    );
            }
            if (counts.some((c) => c !== 1) && samples.length < 5)
                samples.push(`${rec.tag} to ${rec.target}: arrivals per device ${counts.join(',')}`);
        } else if (fromStable) {
            noId++;
            if (counts.some((c) => c !== 1)) {
                noIdBad++;
                if (samples.length < 5)
                    samples.push(`${rec.tag} (no id) to ${rec.target}: arrivals per device ${counts.join(',')}`);
            }
        } else {
            others++;
            const okAns = ans && ans.ok === true;
            const fine = okAns
                ? counts.every((c) => c === 1) && ans.data.delivered === user.devices.length
                : ans
                  ? false // a dialing from a live churn/malformed client to an online user must succeed
                  : counts.every((c) => c === counts[0] && c <= 1); // sender vanished: all devices or none
            if (!fine) {
                othersBad++;
                if (samples.length < 5)
                    samples.push(
                        `${rec.tag} (${rec.senderKind}) to ${rec.target}: ${rec.answers[0] ?? 'no answer'}, arrivals ${counts.join(',')}`,
                    );
            }
        }
    }
    const stableDrops = problemCount('stable connection closed during the run');
    const arrivalProblems = problemCount(
        'push duplicated',
        'push at the wrong user',
        'push with an unknown tag',
        'push not byte-exact',
    );
    const windowFigures = [];
    if (CLUSTER) {
        const o = S.outage;
        const span = o
            ? `${((o.stopAt - T0) / 1000).toFixed(1)} s to ${Number.isFinite(o.endAt) ? ((o.endAt - T0) / 1000).toFixed(1) : 'the end'} s`
            : 'none: Redis was not restarted';
        const fails = [...failWin.entries()].map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
        windowFigures.push(
            `outage window (${span}): ${inWin} dialings with an id to online stable users touched it: ${okWin} ok (${partialWin} with delivered < devices), ` +
                `failures ${fails}; ${idlessWin} without an id; ${badWin} where the pushes did not match the answer or the code was not ${ALLOWED_IN_WINDOW.join('/')}`,
            `cross-node: ${cross} of the ${toStable} dialings to online stable users had a receiver device on another node than the sender (${((cross / Math.max(1, toStable)) * 100).toFixed(0)}%); ` +
                `${get('called.before-ack')} pushes reached a churn connection before its create_connect was acknowledged (for the id it asked for)`,
        );
    }
    check(
        1,
        CLUSTER
            ? 'every dialing with an id from a stable client to an online stable user: ok, delivered == devices, pushed exactly once per device (in the outage window: at least "delivered" pushes, at most one per device, or an allowed failure and none)'
            : 'every dialing with an id from a stable client to an online stable user: ok, delivered == devices, pushed exactly once per device',
        c1 > 0 &&
            lost === 0 &&
            dup === 0 &&
            notOk === 0 &&
            wrongDelivered === 0 &&
            noIdBad === 0 &&
            othersBad === 0 &&
            arrivalProblems === 0 &&
            neverDelivered === 0 &&
            overDelivered === 0 &&
            stableDrops === 0 &&
            badWin === 0,
        [
            `${c1} dialings${CLUSTER ? ' outside the outage window' : ''}, ${expectedPushes} expected pushes: ${exactlyOnce} arrived exactly once, ${lost} lost, ${dup} duplicated`,
            `${notOk} not answered ok, ${wrongDelivered} with delivered != devices`,
            `${noId} without id to online users (${noIdBad} not exactly once per device); ${others} from churn/malformed clients (${othersBad} wrong)`,
            `pushes misrouted/unknown/not byte-exact/duplicated: ${arrivalProblems}; pushes of never-completed frames: ${neverDelivered}; more pushes than "delivered": ${overDelivered}`,
            `stable connections dropped during the run: ${stableDrops}`,
            ...windowFigures,
        ],
        samples,
    );
    // cluster mode: failure answers without an id, per stable device, against its id-less dialings that reached nobody
    let idlessAnswers = 0;
    let idlessZero = 0;
    let idlessOutside = 0;
    let idlessMismatch = 0;
    const idlessSamples = [];
    if (CLUSTER) {
        const o = S.outage;
        for (const d of [...stableDevices, ...probes]) {
            const got = d.idlessFailures;
            const zero = zeroIdless.get(d.key) ?? 0;
            idlessAnswers += got.length;
            idlessZero += zero;
            const outside = got.filter(
                (f) =>
                    !o ||
                    !ALLOWED_IN_WINDOW.includes(f.code) ||
                    f.at < o.stopAt ||
                    f.at > (o.endAt ?? Infinity) + ANSWER_BOUND,
            );
            idlessOutside += outside.length;
            // every one that reached nobody is answered; one that reached somebody may be too, with
            // cluster_unavailable (its outcome unknown: the answers' way back broke)
            const unknownOk = got.filter((f) => f.code === 'cluster_unavailable').length;
            const mismatch = got.length < zero || got.length > zero + Math.min(unknownOk, idlessReached.get(d.key) ?? 0);
            if (mismatch) idlessMismatch++;
            if ((outside.length || mismatch) && idlessSamples.length < 5)
                idlessSamples.push(
                    `${d.key}: ${got.length} id-less failure answers (${got.map((f) => `${f.code}@${((f.at - T0) / 1000).toFixed(3)}s`).slice(0, 4).join(' ')}), ` +
                        `${zero} id-less dialings in the window that reached nobody`,
                );
        }
    }
    const dupAnswers = problemCount(
        'answer duplicated',
        'answer at the wrong connection',
        'answer with an unknown or missing id',
        'answer not byte-exact',
        'wrong error code',
    );
    check(
        2,
        CLUSTER
            ? `every dialing got exactly one answer, within ${ANSWER_BOUND} ms; none unanswered after the drain`
            : 'every dialing got exactly one answer; none unanswered after the drain',
        unanswered === 0 &&
            dupAnswers === 0 &&
            offlineWrong === 0 &&
            slowWrong === 0 &&
            churnWrong === 0 &&
            lateAnswers === 0 &&
            idlessOutside === 0 &&
            idlessMismatch === 0,
        [
            `${get('dials.sent')} dialings sent, ${expectAnswers} expecting an answer, ${get('dials.answered')} answered, ${unanswered} unanswered, ` +
                `${records.filter((r) => r.abandoned).length} abandoned by a vanishing sender`,
            `of the unanswered: ${lostToClose} were dialings sent right before the sender's close frame, answered by the close echo alone ` +
                `(${lostToCloseOneWrite} of the ${get('churn.dial-and-close-in-one-write')} sent in the same write as the close, ` +
                `${lostToClose - lostToCloseOneWrite} of the ${get('churn.op.clean-dial-close') - get('churn.dial-and-close-in-one-write')} sent in two writes)`,
            `duplicated/misrouted/unknown-id/not-exact/wrong-code answers: ${dupAnswers}`,
            `never-registered ids not answered peer_offline${CLUSTER ? ' (or cluster_unavailable in the outage window)' : ''}: ${offlineWrong}; ` +
                `slow readers answered otherwise than ok(1)/peer_gone/peer_offline${CLUSTER ? '(/cluster_unavailable)' : ''}: ${slowWrong}; churn ids: ${churnWrong}`,
            ...(CLUSTER
                ? [
                      `answer times: slowest ${slowestAnswer} ms, ${lateAnswers} later than ${ANSWER_BOUND} ms`,
                      `failure answers without an id (to dialings without an id): ${idlessAnswers}, ${idlessOutside} of them outside the outage window or not ${ALLOWED_IN_WINDOW.join('/')}; ` +
                          `id-less dialings in the window that reached nobody: ${idlessZero}; devices where the two counts differ: ${idlessMismatch}`,
                  ]
                : []),
        ],
        [...unansweredSamples, ...lateSamples, ...idlessSamples].slice(0, 8),
    );
}

// ---------------------------------------------------------------- summary

function printSummary(before, after, rss0) {
    const codes = [...counters.entries()]
        .filter(([k]) => k.startsWith('close.'))
        .map(([k, v]) => `${k.slice(6)}=${v}`)
        .sort();
    const answered = [...counters.entries()]
        .filter(([k]) => k.startsWith('dials.answered.'))
        .map(([k, v]) => `${k.slice(15)}=${v}`)
        .sort();
    const ops = [...counters.entries()]
        .filter(([k]) => k.startsWith('churn.op.') || k.startsWith('malformed.case.'))
        .map(([k, v]) => `${k.replace(/^(churn\.op|malformed\.case)\./, '')}=${v}`);
    log('');
    log('==== soak summary ====');
    log(
        `seed ${SEED}; ${WARMUP} s warm-up + ${SECONDS} s run; ${USERS} stable users (${stableDevices.length} devices), rate ${RATE}/s, ${CHURN} churn workers, ${SLOW} slow readers`,
    );
    log(
        `connections: opened ${get('conn.opened')} (stable ${get('conn.opened.stable')}, churn ${get('conn.opened.churn') + get('conn.opened.churn-handshake')}, slow ${get('conn.opened.slow')}, malformed ${get('conn.opened.malformed')}${CALLS ? `, level-2 call ${get('conn.opened.call')}` : ''}), ` +
            `closed cleanly ${get('conn.closed.clean')}, closed by the server ${get('conn.closed.by-server')}, aborted by the client ${get('conn.aborted')}`,
    );
    log(
        `registrations: ${get('registered')} ok, ${get('registered.refused.too_many_connections')} too_many_connections; moves ${get('churn.moved')}`,
    );
    log(`scenarios: ${ops.join(' ')}`);
    log(
        `dialings: sent ${get('dials.sent')}, answered ${get('dials.answered')} (${answered.join(' ')}), delivered (sum of "delivered") ${get('dials.delivered')}, pushes received ${get('called.received')}`,
    );
    if (CLUSTER) {
        const idless = [...counters.entries()]
            .filter(([k]) => k.startsWith('dials.idless-failures.'))
            .map(([k, v]) => `${k.slice(22)}=${v}`)
            .sort();
        log(`failure answers to dialings without an id: ${get('dials.idless-failures')} (${idless.join(' ')})`);
    }
    log(
        `slow readers: flood ${get('slow.flood')} (avg ${Math.round(get('slow.flood.refusal-ms') / Math.max(1, get('slow.flood')))} ms to refusal), ` +
            `stall ${get('slow.stall')} (avg ${Math.round(get('slow.stall.refusal-ms') / Math.max(1, get('slow.stall')))} ms), ${get('slow.dialed')} ~6 KB dialings at them`,
    );
    log(`close codes seen by clients: ${codes.join(' ')}`);
    log(
        `malformed error replies: ${[...counters.entries()]
            .filter(([k]) => k.startsWith('malformed.error.'))
            .map(([k, v]) => `${k.slice(16)}=${v}`)
            .join(' ')}`,
    );
    log(`long-lived churn clients answered ${get('churn.long-lived.pings')} server pings`);
    if (CALLS)
        log(
            `calls: ${callPairs.length} pairs (${callDevices.length} devices), ${get('calls.placed')} placed (${CALL_OUTCOMES.map(([o]) => `${o}=${get(`calls.outcome.${o}`)}`).join(' ')}), ` +
                `${get('calls.accepted')} accepted, ${get('calls.requests')} requests, ${get('calls.signals.sent')} signals, ${get('calls.received')} messages received by call devices, ` +
                `${get('calls.registered')} level-2 registrations`,
        );
    if (CLUSTER) {
        const o = S.outage;
        const at = (t) => (t === undefined ? '-' : `${((t - T0) / 1000).toFixed(1)} s`);
        log(
            `redis: 127.0.0.1:${S.redis?.port}; ` +
                (o
                    ? `stopped at ${at(o.stopAt)} (gone in ${o.stoppedAt - o.stopAt} ms), up again at ${at(o.upAt)} (${o.upAt - o.stopAt} ms down); ` +
                      `channels subscribed again ${o.linkedAt ? `${o.linkedAt - o.upAt} ms` : 'never'} and every stable user reachable across nodes ` +
                      `${o.recovered ? `${o.endAt - o.upAt} ms` : 'never'} after that (outage window ${at(o.stopAt)} to ${at(o.endAt)})`
                    : 'not restarted'),
        );
        S.nodes.forEach((n, i) => {
            const b = before?.[i];
            const a = after?.[i];
            log(
                `node ${NODE_IDS[i]} (pid ${n.pid}, port ${n.port}): connections opened ${get(`node.${i}.conn.opened`)}, dialings sent from it ${get(`node.${i}.dials.sent`)}, ` +
                    `pushes received on it ${get(`node.${i}.called.received`)}; CPU ${S.cpu?.[i]?.toFixed(2)} s`,
            );
            if (b && a)
                log(
                    `  RSS: at start ${rss0[i]} kB, before the run ${b.rss} kB [${b.samples.join(' ')}], peak ${S.rssPeaks[i]} kB, after ${a.rss} kB [${a.samples.join(' ')}] ` +
                        `(${(((a.rss - b.rss) / b.rss) * 100).toFixed(1)}%); fds: before ${b.fds}, after ${a.fds}`,
                );
        });
        log(
            `soak event-loop delay max ${(S.loopDelay.max / 1e6).toFixed(0)} ms, p99 ${(S.loopDelay.percentile(99) / 1e6).toFixed(0)} ms`,
        );
    } else {
        if (before && after) {
            const [b] = before;
            const [a] = after;
            log(
                `server RSS: at start ${rss0[0]} kB, before the run ${b.rss} kB [${b.samples.join(' ')}], peak ${S.rssPeak} kB, after ${a.rss} kB [${a.samples.join(' ')}] (${(((a.rss - b.rss) / b.rss) * 100).toFixed(1)}%)`,
            );
            log(`server fds: before ${b.fds}, after ${a.fds}`);
        }
        log(
            `server CPU ${S.cpu?.[0]?.toFixed(2)} s; soak event-loop delay max ${(S.loopDelay.max / 1e6).toFixed(0)} ms, p99 ${(S.loopDelay.percentile(99) / 1e6).toFixed(0)} ms`,
        );
    }
    if (problems.size) {
        log('problems:');
        for (const [kind, p] of problems) {
            log(`  ${kind}: ${p.count}`);
            for (const s of p.samples) log(`      ${s}`);
        }
    }
}

/** Kills every node and Redis (the soak broke). */
async function killAll() {
    await Promise.all(S.nodes.map((n) => n.stop('SIGKILL')));
    await S.redis?.stop('SIGKILL');
}

// ---------------------------------------------------------------- main

async function main() {
    log(
        `soak: seed ${SEED}, ${WARMUP} s warm-up + ${SECONDS} s, ${USERS} users (${MULTI * 100}% with 2 devices), ${RATE} dialings/s, ` +
            `${CHURN} churn workers, ${SLOW} slow readers (flood ${FLOOD_RATE}/s), num-threads 2, ping ${PING_INTERVAL}/${PING_TIMEOUT} ms, ` +
            `max-queued-bytes ${MAX_QUEUED}, max-message-size ${MAX_MESSAGE}`,
    );
    if (CALLS)
        log(
            `soak: ${CALL_PAIRS} level-2 call pairs in the mix; signaling.call.ring-timeout ${RING_TIMEOUT} ms, reconnect-grace ${RECONNECT_GRACE} ms`,
        );
    if (CLUSTER)
        log(
            `soak: cluster of ${NODES} nodes (${NODE_IDS.join(', ')}) on one redis-server; ${FAST_REDIS_TIMINGS.map((l) => l.replace('signaling.redis-', '')).join(', ')}; ` +
                `Redis stopped ${RESTART_AT} s into the run for ${REDIS_DOWN} s`,
        );
    const watchdog = setTimeout(() => {
        console.error(`soak: WATCHDOG: still running after ${WATCHDOG_MS} ms; giving up`);
        printSummary();
        killAll().finally(() => process.exit(2));
    }, WATCHDOG_MS);
    watchdog.unref();
    S.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    S.loopDelay.enable();

    if (CLUSTER) {
        S.redis = await startRedis();
        const started = await Promise.allSettled(
            NODE_IDS.map((nodeId) => startNode({ redis: S.redis.addr, nodeId, settings: [...SETTINGS, ...CALL_SETTINGS], threads: 2 })),
        );
        S.nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
        const failed = started.find((r) => r.status === 'rejected');
        if (failed) throw failed.reason;
        await waitNodesLinked(S.redis, S.nodes, { timeout: 10000 });
    } else {
        S.nodes = [await startServer({ threads: 2, config })];
    }
    S.srv = S.nodes[0];
    const pid = S.srv.pid;
    const rss0 = S.nodes.map((n) => rssKb(n.pid));
    S.nodes.forEach((n, i) =>
        n.exited.then((st) => {
            if (S.phase !== 'stopping') {
                const who = CLUSTER ? `${NODE_IDS[i]}: ` : '';
                problem('server exited during the soak', `${who}code ${st.code} signal ${st.signal}`);
            }
        }),
    );

    await buildStable();
    for (const u of stableUsers) stableById.set(u.id, u);
    if (CALLS) await buildCallPairs();
    if (CLUSTER) {
        for (let n = 0; n < NODES; n++) crossUsers[n] = stableUsers.filter((u) => u.devices[0].node !== n);
        await findUserChannels();
        await waitUntil(clusterLinked, {
            timeout: 10000,
            interval: 50,
            what: 'every stable user subscribed by the nodes that hold it',
        });
        const round = await recoveryRound(0);
        if (!round.ok)
            throw new Error(
                `cross-node delivery does not work before the run: ${round.bad} stable users not reached, e.g. ${round.samples.join(' | ')}`,
            );
        await waitUntil(() => outstanding().pushes === 0, {
            timeout: DRAIN_BOUND,
            interval: 50,
            what: 'pushes of the first cross-node round',
        });
    }
    S.fdsBase = S.nodes.map((n) => fdCount(n.pid));
    if (CLUSTER)
        log(
            `[${elapsed()} s] nodes ${S.nodes.map((n, i) => `${NODE_IDS[i]} pid ${n.pid} on port ${n.port}`).join(', ')}; redis-server pid ${S.redis.pid} on port ${S.redis.port}; ` +
                `${stableDevices.length} stable devices + ${PROBES} probes registered (per node ${S.nodes.map((_, i) => stableDevices.filter((d) => d.node === i).length).join('/')} + ` +
                `${S.nodes.map((_, i) => probes.filter((d) => d.node === i).length).join('/')}); RSS ${perNode(S.nodes.map((n) => rssKb(n.pid)), ' kB')}; fds ${perNode(S.fdsBase)}`,
        );
    else
        log(
            `[${elapsed()} s] server pid ${pid} on port ${S.srv.port}; ${stableDevices.length} stable devices + ${PROBES} probes + ${callDevices.length} level-2 call devices registered; RSS ${rssKb(pid)} kB, ${S.fdsBase[0]} fds`,
        );

    S.rssPeaks = S.nodes.map(() => 0);
    const progress = setInterval(() => {
        if (!serversAlive()) return;
        const rss = S.nodes.map((n) => rssKb(n.pid));
        rss.forEach((r, i) => (S.rssPeaks[i] = Math.max(S.rssPeaks[i], r)));
        S.rssPeak = S.rssPeaks[0];
        const fds = S.nodes.map((n) => fdCount(n.pid));
        log(
            `[${elapsed()} s] ${S.phase}: dialings ${get('dials.sent')} sent / ${get('dials.answered')} answered, pushes ${get('called.received')}, ` +
                `conns ${get('conn.opened')} opened, ${S.openPeers.size} raw open, slow ${S.slowTargets.length}, ` +
                (CALLS ? `calls ${get('calls.placed')} placed / ${callRecs.filter((r) => r.done).length} done, ` : '') +
                (CLUSTER
                    ? `RSS ${rss.join('/')} kB, fds ${fds.join('/')}, redis ${S.redis.alive() ? 'up' : 'DOWN'}, cluster_unavailable ${get('dials.answered.cluster_unavailable') + get('dials.idless-failures.cluster_unavailable')}, `
                    : `RSS ${rss[0]} kB, fds ${fds[0]}, `) +
                `problems ${[...problems.values()].reduce((s, p) => s + p.count, 0)}`,
        );
    }, 5000);

    S.phase = 'warm-up';
    await runMix(WARMUP * 1000);
    await quiesce('warm-up');
    const before = await measureIdle();
    log(
        `[${elapsed()} s] warm-up done: RSS ${perNode(before.map((b) => b.rss), ' kB')}, fds ${perNode(before.map((b) => b.fds))} (stable sockets: ${perNode(S.fdsBase)})`,
    );

    S.phase = 'run';
    if (CLUSTER) S.outagePlannedAt = Date.now() + RESTART_AT * 1000;
    const outage = CLUSTER ? redisOutage(S.outagePlannedAt) : null;
    await runMix(SECONDS * 1000);
    if (outage)
        await withTimeout(outage, RECOVERY_WAIT + 30000, 'the Redis restart to finish').catch((err) =>
            problem('client operation failed', err.message),
        );
    if (CALLS && S.outage) {
        const o = S.outage;
        for (const r of callRecs.filter((r) => r.startedAt < (o.endAt ?? Infinity) + CALL_RESUME_AFTER && (r.endedAt ?? Infinity) > o.stopAt))
            problem('call cycle overlapped the Redis outage window', `pair ${r.pair}, ${r.outcome} call ${r.callId ?? '(no callId)'}: ${elapsed(r.startedAt)} to ${r.endedAt ? elapsed(r.endedAt) : 'never'} s`);
    }
    S.phase = 'drain';
    await quiesce('run');
    const after = await measureIdle();
    clearInterval(progress);
    S.cpu = S.nodes.map((n) => cpuSeconds(n.pid));
    log(`[${elapsed()} s] run done: RSS ${perNode(after.map((a) => a.rss), ' kB')}, fds ${perNode(after.map((a) => a.fds))}`);

    // calls: nothing left live (a fresh device of each call user lists no call), then the call devices close
    let finalListing = [];
    if (CALLS) {
        for (const pair of callPairs) pairLeftovers(pair, 'the run');
        finalListing = await callsFinalListing();
        await Promise.all(
            callDevices.map((d) =>
                d.conn && !d.conn.closed
                    ? d.conn.close().catch((err) => problem('client operation failed', `closing ${d.conn.key}: ${err.message}`))
                    : null,
            ),
        );
    }

    // 3. the registry holds exactly the live connections (cluster mode: the probes dial from every node)
    S.phase = 'final';
    const fromEach = async (targets, kind) => {
        if (!CLUSTER) return probeAll(targets, kind);
        const out = [];
        for (let n = 0; n < NODES; n++) out.push(...(await probeAll(targets, kind, n)));
        return out;
    };
    const stableIds = new Set(stableUsers.map((u) => u.id));
    const others = [...S.usedIds].filter((id) => !stableIds.has(id));
    const ghostProbe = await fromEach(others, 'offline');
    const ghosts = ghostProbe.filter(
        (r) => !r.answer || r.rec.answers[0] !== dialingFailText('peer_offline', r.rec.id),
    );
    const liveProbe = await fromEach([...stableIds], 'stable');
    await waitUntil(() => outstanding().pushes === 0, {
        timeout: DRAIN_BOUND,
        interval: 50,
        what: 'probe pushes',
    }).catch(() => {});
    const wrongLive = liveProbe.filter((r) => {
        const user = stableById.get(r.target);
        return (
            !r.answer ||
            r.rec.answers[0] !== dialingOkText(r.rec.id, r.target, liveDevices(user)) ||
            user.devices.some((d) => d.open && r.rec.calls?.get(d.key) !== 1)
        );
    });
    // then the stable clients close; every stable id must be gone from the registry
    S.stableClosing = true;
    await Promise.all(
        stableDevices.map(async (d) => {
            d.ws.close(1000);
            const { code } = await waitClose(d.ws, OP_TIMEOUT).catch(() => ({ code: 'timeout' }));
            inc(`close.stable.${code}`);
            if (code === 1000) inc('conn.closed.clean');
            else problem('wrong close code', `${d.key}: expected 1000, got ${code}`);
        }),
    );
    const emptyProbe = await fromEach([...stableIds], 'offline');
    const leftOver = emptyProbe.filter(
        (r) => !r.answer || r.rec.answers[0] !== dialingFailText('peer_offline', r.rec.id),
    );
    const fdsEmpty = S.nodes.map((n) => fdCount(n.pid));
    // (the call devices closed before the probes)
    const fdsEmptyWanted = S.fdsBase.map(
        (f, i) => f - stableDevices.filter((d) => d.node === i).length - callDevices.filter((d) => d.node === i).length,
    );
    const nodeLabel = (r) => (CLUSTER ? ` (from ${NODE_IDS[r.rec.senderNode]})` : '');
    check(
        3,
        'the registry holds exactly the live connections',
        S.nodes.every((_, i) => after[i].fds === before[i].fds && fdsEmpty[i] === fdsEmptyWanted[i]) &&
            ghosts.length === 0 &&
            wrongLive.length === 0 &&
            leftOver.length === 0,
        [
            `server fds with only the stable clients + probes: before ${perNode(before.map((b) => b.fds))}, after ${perNode(after.map((a) => a.fds))}; ` +
                `with only the ${PROBES} probes: ${perNode(fdsEmpty)} (expected ${perNode(fdsEmptyWanted)})`,
            `${others.length} non-stable ids ever used (churn, slow, malformed, never-registered): ${ghosts.length} still reachable (ghosts)${CLUSTER ? ` in ${ghostProbe.length} probes from every node` : ''}`,
            `${stableIds.size} stable users: ${wrongLive.length} not answered with exactly their live devices (or not pushed once on each)`,
            `after the stable clients closed: ${leftOver.length} stable ids still reachable`,
        ],
        [...ghosts, ...wrongLive, ...leftOver]
            .slice(0, 5)
            .map((r) => `${r.target}${nodeLabel(r)}: ${r.rec.answers[0] ?? 'no answer'}`),
    );

    evaluateDelivery();
    if (CALLS) evaluateCalls(finalListing);
    else {
        const why = 'not applicable: --call-pairs 0';
        check(8, 'calls: every call request answered exactly once; every call ended exactly once on every device involved; no call left live', null, [why]);
        check(9, 'calls: no call_signal lost, duplicated, reordered, misrouted or changed', null, [why]);
    }

    // 4. memory (per node)
    const tool = underMemoryTool(pid);
    const growth = S.nodes.map((_, i) => (after[i].rss - before[i].rss) / before[i].rss);
    check(
        4,
        CLUSTER ? 'RSS of every node after the run within 10% of before' : 'server RSS after the run within 10% of before',
        tool ? null : growth.every((g) => Math.abs(g) <= 0.1),
        [
            ...S.nodes.map(
                (_, i) =>
                    `${CLUSTER ? `${NODE_IDS[i]}: ` : ''}before ${before[i].rss} kB, after ${after[i].rss} kB: ${(growth[i] * 100).toFixed(1)}% (bound 10%); ` +
                        `at start ${rss0[i]} kB, peak ${S.rssPeaks[i]} kB`,
            ),
            ...(tool ? [`not applicable: the server runs under ${tool}, whose memory RSS counts`] : []),
        ],
    );

    // 6. bounded operations and close codes
    const opFails = problemCount(
        'client operation failed',
        'handshake failed',
        'raw client left open by its scenario',
        'create_connect refused',
        'create_connect answer not byte-exact',
        'stable client could not send',
    );
    const codeFails = problemCount(
        'wrong close code',
        'slow reader never released by the server',
        'no ping from the server in a long-lived connection',
        'long-lived client was dropped although it answered pings',
    );
    const otherFails = problemCount(
        'unexpected frame from the server',
        'server sent a message that is not JSON',
        'unexpected message at a stable client',
        'unexpected message',
        'binary message from the server',
        'rate_limited reply to a paced soak client',
        'frame after the close frame',
    );
    check(
        6,
        'every client operation finished within its bound; every close code matched its cause',
        opFails === 0 && codeFails === 0 && otherFails === 0,
        [
            `operations failed or timed out: ${opFails}; wrong close codes / slow readers not released / heartbeat faults: ${codeFails}; unexpected frames or messages: ${otherFails}`,
        ],
    );

    // 5. alive, then SIGTERM -> exit 0
    const alive = S.nodes.map((n) => n.alive());
    await Promise.all(
        probes.map((p) => {
            p.ws.close(1000);
            return waitClose(p.ws, OP_TIMEOUT).catch(() => {});
        }),
    );

    // 7. (cluster) the Redis restart, and no ghost in Redis once every client has closed
    if (CLUSTER) {
        const o = S.outage;
        const end = await redisAfterAllClosed();
        const seen = get('dials.answered.cluster_unavailable') + get('dials.idless-failures.cluster_unavailable');
        const recoveryMs = o?.recovered ? o.recoveredAt - o.upAt : null;
        check(
            7,
            `Redis restarted mid-run: the outage was seen, every user registered before it reachable across nodes within ${RECOVERY_BOUND} ms of Redis coming back; ` +
                'once every client closed, no sig:u:* channel left and every node channel still subscribed',
            Boolean(o) &&
                o.recovered &&
                recoveryMs <= RECOVERY_BOUND &&
                (REDIS_DOWN < 0.5 || seen > 0) &&
                problemCount('redis could not be started again', 'cluster not recovered after the Redis restart') === 0 &&
                end.left.length === 0 &&
                end.nodeSubs.every((k) => k === 1),
            [
                o
                    ? `Redis stopped ${((o.stopAt - T0) / 1000).toFixed(1)} s into the soak (gone in ${o.stoppedAt - o.stopAt} ms), back ${o.upAt - o.stopAt} ms later on the same port; ` +
                      `node and user channels subscribed again ${o.linkedAt ? `${o.linkedAt - o.upAt} ms` : 'never'} after, every stable user reached across nodes ` +
                      `${recoveryMs === null ? 'never' : `${recoveryMs} ms`} after (bound ${RECOVERY_BOUND} ms; ${o.rounds} recovery rounds, ${o.failedRounds} fell short)`
                    : 'Redis was never restarted',
                `the outage as the clients saw it: ${seen} cluster_unavailable answers (${get('dials.idless-failures.cluster_unavailable')} of them without an id)`,
                `once every client had closed: ${end.left.length} sig:u:* channels left in Redis after ${end.ms} ms (bound ${REDIS_RELEASE_BOUND} ms); ` +
                    `subscribers of the node channels: ${perNode(end.nodeSubs)}`,
            ],
            [...end.leftSubs, ...(o?.lastRound ? [`last recovery round: ${o.lastRound}`] : [])],
        );
    }

    S.phase = 'stopping';
    const st = await Promise.all(S.nodes.map((n) => n.stop('SIGTERM', { timeout: 10000 })));
    check(
        5,
        CLUSTER ? 'every node is alive at the end and exits 0 on SIGTERM' : 'the server is alive at the end and exits 0 on SIGTERM',
        alive.every(Boolean) &&
            st.every((s) => s.code === 0 && s.signal === null && !s.timedOut) &&
            problemCount('server exited during the soak') === 0,
        S.nodes.map(
            (_, i) =>
                `${CLUSTER ? `${NODE_IDS[i]}: ` : ''}alive before SIGTERM: ${alive[i]}; exit code ${st[i].code}, signal ${st[i].signal}, timed out ${st[i].timedOut}`,
        ),
    );
    await S.redis?.stop();

    printSummary(before, after, rss0);
    S.nodes.forEach((n, i) => {
        const stderr = n.stderr().trim();
        if (stderr)
            log(`${CLUSTER ? `node ${NODE_IDS[i]}` : 'server'} stderr (last 20 lines):\n${stderr.split('\n').slice(-20).join('\n')}`);
    });
    log('');
    log('==== assertions ====');
    let failed = 0;
    for (const r of results.sort((a, b) => a.n - b.n)) {
        const verdict = r.ok === null ? 'N/A ' : r.ok ? 'PASS' : 'FAIL';
        if (r.ok === false) failed++;
        log(`${verdict} ${r.n}. ${r.title}`);
        for (const f of r.figures) log(`       ${f}`);
        if (r.ok === false) for (const d of r.details) log(`       e.g. ${d}`);
    }
    log(failed ? `soak: ${failed} assertion(s) FAILED (seed ${SEED})` : `soak: every assertion held (seed ${SEED})`);
    clearTimeout(watchdog);
    return failed ? 1 : 0;
}

main().then(
    (code) => process.exit(code),
    async (err) => {
        console.error(`soak: broke: ${err.stack ?? err}`);
        S.nodes.forEach((n, i) =>
            console.error(`${CLUSTER ? `node ${NODE_IDS[i]}` : 'server'} stderr:\n${n.stderr().split('\n').slice(-30).join('\n')}`),
        );
        await killAll();
        process.exit(2);
    },
);
