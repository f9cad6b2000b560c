// Real redis-server processes for tests, and h2o-signaling nodes on them (scale-out).
//
// Redis (Debian's /usr/bin/redis-server, or $REDIS_SERVER_BIN):
//   startRedis({port, args, dir, unixsocket, password, readyTimeout}) -> a redis-server on
//       127.0.0.1 (a free port unless `port`), no persistence, log in its temp dir
//       (`unixsocket: true` also listens on DIR/redis.sock, as `socket`; `password` sets
//       requirepass, and command() then AUTHs first); resolves once it answers PING with
//         {port, addr, socket, pid, dir, logFile, log(), alive(), command(...args),
//          numsub(channel), channels(pattern), clientsOf(pid), start(), stop(signal), kill(signal),
//          pause(), resume(), restart()}
//       clientsOf(pid): the CLIENT LIST entries ({id, addr, flags, sub, ...}) of the connections
//       process `pid` holds to it, found by their ports among pid's sockets (/proc): a test can cut
//       one node's links and no other's (CLIENT KILL ID).
//       command(...args) sends one command over a fresh TCP connection and resolves with the
//       decoded reply (simple string / bulk -> string, integer -> number, nil -> null, array ->
//       array, nested); an error reply rejects with an Error whose `redisError` is the text.
//       Bounded: `commandTimeout` ms (default 2000; a paused Redis rejects, it does not hang).
//       stop() (SIGTERM, SIGKILL after 5 s) is idempotent and never throws, for t.after();
//       start() starts it again on the same port with the same arguments (after stop/kill);
//       restart() = stop() + start(); kill(sig) sends sig (default SIGKILL, and then waits
//       until it is gone; `exited` tells that for other signals); pause()/resume() =
//       SIGSTOP/SIGCONT.
//   startSentinel({masterName, masterPort, quorum, down_after_ms, failover_timeout_ms, port})
//       -> `redis-server sentinel.conf --sentinel` monitoring 127.0.0.1:masterPort; same object.
//   A replica: startRedis({args: ['--replicaof', '127.0.0.1', String(masterPort)]}).
//   redisCommand(port, args, {timeout, password}) -> the same RESP client, standalone.
//   encodeCommand(args) / decodeReply(buffer, offset) -> the RESP2 codec ({value, next} or null).
//
// Any redis process still running when the test process exits gets SIGKILL; temp dirs are
// removed at exit unless KEEP_TEST_TMP=1.
//
// Scale-out nodes (the contract: /work/shared/design/scaleout.md):
//   FAST_REDIS_TIMINGS: directive lines with small timings (probe 200, reconnect 50..500,
//       result 500, connect 500) so that faults resolve quickly
//   redisDirective(value, name = 'signaling.redis') -> YAML lines for a directive whose value
//       is a string (as is), a number, a mapping or a sequence (block style, nested)
//   startNode({redis, nodeId, settings, global, host, morePaths, threads, timings})
//       -> startServer() of the usual config plus signaling.redis / signaling.node-id (global
//       level) and the timings; the server object gets `nodeId`
//   nodeChannel(nodeId, route) = 'sig:n:<nodeId>:<route>' (route: HOST/PATH, default 'default/WsService')
//   userChannels(redis, userId) -> the `sig:u:…:<userId>` channels that Redis has (PUBSUB CHANNELS)
//   startNodes(t, specs) -> starts one node per startNode() spec, in parallel; each is stopped
//       in t.after (also when another one failed to start)
//   startCluster(t, {n, settings, morePaths, threads, redisArgs, unixsocket, redisValue})
//       -> {redis, nodes}: requireRedisSupport(), a redis-server (startRedis args/unixsocket;
//       stopped in t.after) and `n` nodes on it (default 3; ids node-a, node-b, ... with the
//       same settings/morePaths/threads; `redisValue(redis)` is their signaling.redis, default
//       redis.addr), ready: waitNodesLinked() and waitCrossNode() have passed
//   waitNodesLinked(redis, nodes, {timeout}) -> polls until every node's nodeChannel() has
//       a subscriber on `redis` (a node that is not linked cannot receive RESULTs)
//   nodeLogs(nodes) -> the tail of each node's stderr, for failure messages
//   waitCrossNode(nodes, {timeout}) -> polls with probe users until a dialing from every node
//       to a user on every other node is delivered (closes the probes); returns the ms it took
//   dialAnswer(ws, fields, timeout) -> sends a dialing (fields must carry a unique `id`) and
//       returns the text of the dialing_response with that id, skipping other messages (one
//       at a time per socket: concurrent calls on one socket would take each other's answers)
//   waitDelivered(ws, receiverUserId, n, {timeout}) -> polls with dialAnswer until the answer is
//       `delivered: n`; returns {ms, attempts, answers} (each attempt may push a `called`)
//   drain(ws, ms) -> drops the messages queued on ws (and those arriving within `ms`)
//   clusterUnavailableText(id) -> the exact cluster_unavailable answer
//   noMessageWithin(ws, ms) -> resolves true when nothing arrives within `ms`, else the text
//   requireRedisSupport() -> throws a one-line reason when the binary does not know
//       signaling.redis yet (at the start of a test or in a before() hook: fail fast and
//       clearly, not hang)

import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

import { configErrors, freeServicePort, makeTempDir, runConfigTest, signalingConfig, spawnChild, startServer } from './server.mjs';
import { register } from './sigclient.mjs';
import { nextRaw } from './wsclient.mjs';
import { waitUntil, withTimeout } from './wait.mjs';

const HOST = '127.0.0.1';
// Processes (spawnChild) and temp dirs (makeTempDir) are lib/server.mjs's: a redis process still
// running when the test process exits gets SIGKILL (which also ends a paused one), and the temp
// dirs are removed at exit unless KEEP_TEST_TMP=1.

/** The redis-server binary: $REDIS_SERVER_BIN, else redis-server from PATH (Debian: /usr/bin). */
export function redisBinary() {
    if (process.env.REDIS_SERVER_BIN) return process.env.REDIS_SERVER_BIN;
    for (const path of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (existsSync(path)) return path;
    return 'redis-server';
}

// ---------------------------------------------------------------------------------------------
// RESP2 codec

/** One command as a RESP array of bulk strings. */
export function encodeCommand(args) {
    const parts = [Buffer.from(`*${args.length}\r\n`)];
    for (const arg of args) {
        const b = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg), 'utf8');
        parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
    }
    return Buffer.concat(parts);
}

/** A reply that is an error (`-ERR ...`), kept apart from strings inside arrays. */
export class RedisReplyError extends Error {
    constructor(text) {
        super(text);
        this.redisError = text;
    }
}

/**
 * Decodes one RESP2 reply from `buf` at `offset`: {value, next} or null when incomplete.
 * Errors are RedisReplyError values (also inside arrays); nil bulk / nil array -> null.
 */
export function decodeReply(buf, offset = 0) {
    if (offset >= buf.length) return null;
    const eol = buf.indexOf('\r\n', offset);
    if (eol < 0) return null;
    const type = String.fromCharCode(buf[offset]);
    const line = buf.toString('utf8', offset + 1, eol);
    const after = eol + 2;
    switch (type) {
        case '+':
            return { value: line, next: after };
        case '-':
            return { value: new RedisReplyError(line), next: after };
        case ':':
            return { value: Number(line), next: after };
        case '$': {
            const n = Number(line);
            if (n < 0) return { value: null, next: after };
            if (buf.length < after + n + 2) return null;
            return { value: buf.toString('utf8', after, after + n), next: after + n + 2 };
        }
        case '*': {
            const n = Number(line);
            if (n < 0) return { value: null, next: after };
            const items = [];
            let at = after;
            for (let i = 0; i < n; i++) {
                const item = decodeReply(buf, at);
                if (item === null) return null;
                items.push(item.value);
                at = item.next;
            }
            return { value: items, next: at };
        }
        default:
            throw new Error(`RESP: unexpected type byte ${JSON.stringify(type)} in ${JSON.stringify(buf.toString('utf8', offset, Math.min(buf.length, offset + 80)))}`);
    }
}

/** Sends one command to 127.0.0.1:port over a fresh connection; resolves with the reply. */
export function redisCommand(port, args, { timeout = 2000, host = HOST, password } = {}) {
    const what = `redis ${host}:${port} ${args.join(' ')}`.slice(0, 200);
    let cancel;
    const done = new Promise((resolve, reject) => {
        const sock = net.connect({ port, host });
        let data = Buffer.alloc(0);
        let settled = false;
        const finish = (err, value) => {
            if (settled) return;
            settled = true;
            sock.destroy();
            if (err) reject(err);
            else resolve(value);
        };
        // with a password: AUTH first, pipelined; its reply is checked, the command's returned
        sock.once('connect', () => {
            if (password !== undefined) sock.write(encodeCommand(['AUTH', password]));
            sock.write(encodeCommand(args));
        });
        let authed = password === undefined;
        sock.on('data', (chunk) => {
            data = Buffer.concat([data, chunk]);
            let reply;
            try {
                reply = decodeReply(data, 0);
                if (reply !== null && !authed) {
                    if (reply.value instanceof RedisReplyError) return finish(new RedisReplyError(`${what}: AUTH: ${reply.value.message}`));
                    authed = true;
                    data = data.subarray(reply.next);
                    reply = decodeReply(data, 0);
                }
            } catch (err) {
                return finish(err);
            }
            if (reply === null) return;
            if (reply.value instanceof RedisReplyError) finish(new RedisReplyError(`${what}: ${reply.value.message}`));
            else finish(null, reply.value);
        });
        sock.once('error', (err) => finish(new Error(`${what}: ${err.message}`)));
        sock.once('close', () => finish(new Error(`${what}: connection closed before a reply`)));
        cancel = () => finish(new Error(`${what}: no reply within ${timeout} ms`));
    });
    let timer;
    const timeoutP = new Promise((_, reject) => {
        timer = setTimeout(() => {
            cancel?.();
            reject(new Error(`${what}: no reply within ${timeout} ms`));
        }, timeout);
    });
    done.catch(() => {}); // the race below reports whichever comes first
    return Promise.race([done, timeoutP]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// processes

/** Common object for a redis-server or sentinel: spawn(), readiness, signals. */
function redisHandle({ port, dir, logFile, argv, readyTimeout, commandTimeout, kind, password }) {
    let child = null;
    let paused = false;
    const log = () => {
        try {
            return readFileSync(logFile, 'utf8');
        } catch {
            return '';
        }
    };
    const handle = {
        kind,
        port,
        addr: `${HOST}:${port}`,
        dir,
        logFile,
        log,
        get pid() {
            return child?.proc.pid;
        },
        get exited() {
            return child ? child.exited : Promise.resolve({ code: null, signal: null });
        },
        get proc() {
            return child?.proc;
        },
        alive: () => child !== null && child.status() === undefined,
        password,
        command: (...args) => redisCommand(port, args, { timeout: commandTimeout, password }),
        /** Subscribers of `channel` (PUBSUB NUMSUB). */
        async numsub(channel) {
            const reply = await handle.command('PUBSUB', 'NUMSUB', channel);
            return Number(reply[1]);
        },
        /** CLIENT LIST entries of process `pid`'s connections here (see the header). */
        async clientsOf(pid) {
            const inodes = new Set();
            for (const fd of readdirSync(`/proc/${pid}/fd`)) {
                try {
                    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
                    if (m) inodes.add(m[1]);
                } catch {} // closed meanwhile
            }
            const ports = new Set();
            for (const line of readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
                const f = line.trim().split(/\s+/); // sl local_address rem_address st ... uid timeout inode
                if (f.length > 9 && inodes.has(f[9])) ports.add(parseInt(f[1].split(':')[1], 16));
            }
            const list = await handle.command('CLIENT', 'LIST');
            return list
                .split('\n')
                .filter((line) => line.trim() !== '')
                .map((line) => Object.fromEntries(line.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])))
                .filter((c) => ports.has(Number(c.addr.split(':').pop())));
        },
        /** Active channels matching `pattern` (PUBSUB CHANNELS), sorted. */
        async channels(pattern = '*') {
            return (await handle.command('PUBSUB', 'CHANNELS', pattern)).sort();
        },
        async start() {
            if (handle.alive()) throw new Error(`${kind} on ${port} is already running`);
            paused = false;
            child = spawnChild(redisBinary(), argv, { cwd: dir });
            const deadline = Date.now() + readyTimeout;
            let lastError;
            for (;;) {
                if (child.status() !== undefined) {
                    const st = child.status();
                    throw new Error(
                        `${kind} on port ${port} exited before answering PING (code ${st.code}, signal ${st.signal})\n` +
                            `--- output\n${child.output()}\n--- log ${logFile}\n${log()}`,
                    );
                }
                try {
                    if ((await redisCommand(port, ['PING'], { timeout: 500, password })) === 'PONG') return handle;
                } catch (err) {
                    lastError = err;
                }
                if (Date.now() >= deadline) {
                    await handle.stop('SIGKILL');
                    throw new Error(
                        `${kind} on port ${port} did not answer PING within ${readyTimeout} ms (${lastError?.message})\n` +
                            `--- log ${logFile}\n${log()}`,
                    );
                }
                await new Promise((r) => setTimeout(r, 20));
            }
        },
        /** SIGTERM (SIGKILL after `timeout` ms); idempotent, never throws. {code, signal, timedOut}. */
        async stop(signal = 'SIGTERM', { timeout = 5000 } = {}) {
            if (!child || child.status() !== undefined) return { ...(child?.status() ?? {}), timedOut: false };
            try {
                child.proc.kill(signal);
                if (paused) child.proc.kill('SIGCONT'); // a stopped process only acts on SIGTERM once continued
                paused = false;
            } catch {
                /* gone meanwhile */
            }
            try {
                const st = await withTimeout(child.exited, timeout, `${kind} exit`);
                return { ...st, timedOut: false };
            } catch {
                try {
                    child.proc.kill('SIGKILL');
                } catch {
                    /* gone */
                }
                const st = await child.exited;
                return { ...st, timedOut: true };
            }
        },
        /** Sends `signal` (default SIGKILL) and waits until the process is gone. */
        async kill(signal = 'SIGKILL') {
            if (!handle.alive()) return child?.status();
            child.proc.kill(signal);
            if (signal === 'SIGKILL' || signal === 9) return withTimeout(child.exited, 5000, `${kind} exit after ${signal}`);
            return undefined;
        },
        pause() {
            if (!handle.alive()) throw new Error(`${kind} on ${port} is not running`);
            child.proc.kill('SIGSTOP');
            paused = true;
        },
        resume() {
            if (!handle.alive()) return;
            child.proc.kill('SIGCONT');
            paused = false;
        },
        async restart() {
            await handle.stop();
            return handle.start();
        },
    };
    return handle;
}

function makeDir(dir, prefix) {
    if (dir) {
        mkdirSync(dir, { recursive: true });
        return dir;
    }
    return makeTempDir(prefix);
}

/** A redis-server on 127.0.0.1; see the top of this file. */
export async function startRedis({ port, args = [], dir, unixsocket = false, password, readyTimeout = 5000, commandTimeout = 2000 } = {}) {
    const p = port ?? (await freeServicePort()); // nodes reconnect to it while it is down: see freeServicePort
    const d = makeDir(dir, 'h2o-signaling-redis-');
    const logFile = join(d, 'redis.log');
    const socket = unixsocket ? join(d, 'redis.sock') : undefined;
    if (socket) args = ['--unixsocket', socket, '--unixsocketperm', '700', ...args];
    if (password !== undefined) args = ['--requirepass', password, ...args];
    const argv = [
        '--port', String(p),
        '--bind', HOST,
        '--save', '',
        '--appendonly', 'no',
        '--dir', d,
        '--logfile', logFile,
        '--daemonize', 'no',
        ...args.map(String),
    ];
    const handle = redisHandle({ port: p, dir: d, logFile, argv, readyTimeout, commandTimeout, kind: 'redis-server', password });
    handle.socket = socket;
    return handle.start();
}

/** A Sentinel monitoring 127.0.0.1:masterPort as `masterName`; see the top of this file. */
export async function startSentinel({
    masterName = 'mymaster',
    masterPort,
    quorum = 1,
    down_after_ms = 1000,
    failover_timeout_ms = 5000,
    port,
    dir,
    readyTimeout = 5000,
    commandTimeout = 2000,
} = {}) {
    if (!masterPort) throw new Error('startSentinel: masterPort is required');
    const p = port ?? (await freeServicePort()); // nodes reconnect to it while it is down: see freeServicePort
    const d = makeDir(dir, 'h2o-signaling-sentinel-');
    const logFile = join(d, 'sentinel.log');
    const conf = join(d, 'sentinel.conf');
    writeFileSync(
        conf,
        [
            `port ${p}`,
            `bind ${HOST}`,
            `dir ${d}`,
            `logfile ${logFile}`,
            'daemonize no',
            'sentinel resolve-hostnames no',
            `sentinel monitor ${masterName} ${HOST} ${masterPort} ${quorum}`,
            `sentinel down-after-milliseconds ${masterName} ${down_after_ms}`,
            `sentinel failover-timeout ${masterName} ${failover_timeout_ms}`,
            '',
        ].join('\n'),
    );
    const handle = redisHandle({
        port: p,
        dir: d,
        logFile,
        argv: [conf, '--sentinel'],
        readyTimeout,
        commandTimeout,
        kind: 'redis-sentinel',
    });
    handle.conf = conf;
    handle.masterName = masterName;
    /** 'HOST:PORT' of the master as this sentinel reports it. */
    handle.masterAddr = async (name = masterName) => {
        const [host, mport] = await handle.command('SENTINEL', 'get-master-addr-by-name', name);
        return `${host}:${mport}`;
    };
    return handle.start();
}

// ---------------------------------------------------------------------------------------------
// scale-out nodes

/** Small timings (ms) for tests: faults resolve within a second or two. */
export const FAST_REDIS_TIMINGS = Object.freeze([
    'signaling.redis-connect-timeout: 500',
    'signaling.redis-result-timeout: 500',
    'signaling.redis-reconnect-min: 50',
    'signaling.redis-reconnect-max: 500',
    'signaling.redis-probe-interval: 200',
]);

const yamlScalar = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

function yamlBlock(value, indent) {
    const pad = ' '.repeat(indent);
    if (Array.isArray(value)) {
        if (value.length === 0) return null; // caller writes []
        const lines = [];
        for (const item of value) {
            if (item !== null && typeof item === 'object') {
                const inner = yamlBlock(item, indent + 2);
                if (inner === null) lines.push(`${pad}- ${Array.isArray(item) ? '[]' : '{}'}`);
                else lines.push(`${pad}- ${inner[0].trimStart()}`, ...inner.slice(1));
            } else lines.push(`${pad}- ${yamlScalar(item)}`);
        }
        return lines;
    }
    const entries = Object.entries(value);
    if (entries.length === 0) return null;
    const lines = [];
    for (const [k, v] of entries) {
        if (v !== null && typeof v === 'object') {
            const inner = yamlBlock(v, indent + 2);
            if (inner === null) lines.push(`${pad}${k}: ${Array.isArray(v) ? '[]' : '{}'}`);
            else lines.push(`${pad}${k}:`, ...inner);
        } else lines.push(`${pad}${k}: ${yamlScalar(v)}`);
    }
    return lines;
}

/** YAML lines (relative indentation) for `name: value`; see the top of this file. */
export function redisDirective(value, name = 'signaling.redis') {
    if (value === null || typeof value !== 'object') return [`${name}: ${yamlScalar(value)}`];
    const inner = yamlBlock(value, 2);
    if (inner === null) return [`${name}: ${Array.isArray(value) ? '[]' : '{}'}`];
    return [`${name}:`, ...inner];
}

/** The node's own channel. */
export const nodeChannel = (nodeId, route = 'default/WsService') => `sig:n:${nodeId}:${route}`;

/**
 * Starts one node: the usual config (lib/server.mjs signalingConfig) with `signaling.redis`
 * (`redis`: a value for redisDirective, e.g. redis.addr), `signaling.node-id` and the timings at
 * the global level. Resolves with the startServer object plus `nodeId`.
 */
export async function startNode({
    redis,
    nodeId,
    settings = [],
    global = [],
    host = [],
    morePaths = '',
    threads,
    timings = FAST_REDIS_TIMINGS,
    readyTimeout = 10000,
} = {}) {
    const lines = [...(redis === undefined ? [] : redisDirective(redis)), ...timings, ...global];
    if (nodeId !== undefined) lines.push(`signaling.node-id: ${nodeId}`);
    const srv = await startServer({
        threads,
        readyTimeout,
        config: (vars) => signalingConfig(vars, { global: lines, settings, host, morePaths }),
    });
    srv.nodeId = nodeId;
    return srv;
}

/** startNode() for each spec, in parallel; every node that started is stopped in t.after. */
export async function startNodes(t, specs) {
    const results = await Promise.allSettled(
        specs.map(async (spec) => {
            const node = await startNode(spec);
            t.after(() => node.stop());
            return node;
        }),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return results.map((r) => r.value);
}

/** The node ids startCluster() gives its nodes, in order. */
export const NODE_NAMES = Object.freeze(['node-a', 'node-b', 'node-c', 'node-d', 'node-e']);

/**
 * A redis-server and `n` nodes on it (ids node-a, node-b, ...), ready: every node channel is
 * subscribed and a dialing from each node reaches each other node. See the top of this file.
 */
export async function startCluster(t, { n = 3, settings = [], morePaths, threads, redisArgs = [], unixsocket, redisValue } = {}) {
    if (n > NODE_NAMES.length) throw new Error(`startCluster: at most ${NODE_NAMES.length} nodes`);
    await requireRedisSupport();
    const redis = await startRedis({ args: redisArgs, unixsocket });
    t.after(() => redis.stop());
    const value = redisValue ? redisValue(redis) : redis.addr;
    const nodes = await startNodes(
        t,
        NODE_NAMES.slice(0, n).map((nodeId) => ({ redis: value, nodeId, settings, morePaths, threads })),
    );
    await waitNodesLinked(redis, nodes);
    await waitCrossNode(nodes);
    return { redis, nodes };
}

/** The `sig:u:` channels of `userId` that `redis` has now (normally one: `sig:u:<route>:<user>`). */
export async function userChannels(redis, userId) {
    const esc = String(userId).replace(/[*?[\]\\]/g, '\\$&');
    return redis.channels(`sig:u:*:${esc}`);
}

/** The tail of each node's stderr, for failure messages. */
export function nodeLogs(nodes, chars = 1500) {
    return nodes
        .map((n) => {
            const err = n.stderr?.() ?? '';
            const st = n.alive?.() === false ? ' (exited)' : '';
            return err || st ? `\n--- ${n.nodeId ?? n.port}${st} stderr (last ${chars} chars)\n${err.slice(-chars)}` : '';
        })
        .join('');
}

/** Polls until each node's nodeChannel(nodeId) has exactly one subscriber on `redis`. */
export async function waitNodesLinked(redis, nodes, { timeout = 5000, what = 'the nodes to subscribe their node channels' } = {}) {
    let last = {};
    try {
        await waitUntil(
            async () => {
                last = {};
                for (const n of nodes) last[n.nodeId] = await redis.numsub(nodeChannel(n.nodeId));
                return Object.values(last).every((k) => k === 1);
            },
            { timeout, interval: 25, what },
        );
    } catch (err) {
        throw new Error(`${err.message}; PUBSUB NUMSUB on ${redis.addr}: ${JSON.stringify(last)}${nodeLogs(nodes)}`);
    }
}

/** The exact answer to a dialing when the cluster cannot be reached. */
export function clusterUnavailableText(id) {
    return JSON.stringify({
        type: 'dialing_response',
        ok: false,
        msg: 'the cluster cannot be reached: only users on this server are reachable',
        code: 'cluster_unavailable',
        id,
        data: { sponsorUserId: null },
    });
}

/**
 * Sends {"type":"dialing", ...fields} (fields.id must be set and unique on `ws`) and returns the
 * text of the dialing_response carrying that id; other messages (late answers, called) are skipped.
 */
export async function dialAnswer(ws, fields, timeout = 5000) {
    if (fields.id === undefined) throw new Error('dialAnswer: fields.id is required');
    ws.send(JSON.stringify({ type: 'dialing', ...fields }));
    const deadline = Date.now() + timeout;
    for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${timeout} ms: answer to dialing ${fields.receiverUserId} id ${fields.id}`);
        let msg;
        try {
            msg = await nextRaw(ws, left);
        } catch (err) {
            throw new Error(`answer to dialing ${fields.receiverUserId} id ${fields.id}: ${err.message}`);
        }
        const text = msg.data.toString('utf8');
        try {
            const m = JSON.parse(text);
            if (m.type === 'dialing_response' && m.id === fields.id) return text;
        } catch {
            /* not ours */
        }
    }
}

/** Resolves true when `ws` receives nothing within `ms`; otherwise with the text that came. */
export async function noMessageWithin(ws, ms) {
    try {
        const msg = await nextRaw(ws, ms);
        return msg.data.toString('utf8');
    } catch (err) {
        if (/timed out/.test(err.message)) return true;
        return `(${err.message})`;
    }
}

/** Drops every message already queued on `ws` (waits `ms` for stragglers); returns their texts. */
export async function drain(ws, ms = 50) {
    const got = [];
    for (;;) {
        const r = await noMessageWithin(ws, ms);
        if (r === true || r.startsWith('(')) return got;
        got.push(r);
    }
}

let probeSeq = 0;
let dialSeq = 0;

/**
 * Dials `receiverUserId` from `ws` until the answer is `delivered: n` (bounded by `timeout`);
 * any other dialing_response counts as "not yet". Returns {ms, attempts, answers}.
 */
export async function waitDelivered(ws, receiverUserId, n, { timeout = 5000, interval = 50, what } = {}) {
    const started = Date.now();
    const answers = [];
    for (let attempts = 1; ; attempts++) {
        const id = `wd${++dialSeq}`;
        const expected = JSON.stringify({ type: 'dialing_response', ok: true, msg: '', id, data: { receiverUserId, delivered: n } });
        let answer;
        try {
            answer = await dialAnswer(ws, { receiverUserId, id }, Math.max(500, Math.min(2000, started + timeout - Date.now())));
        } catch (err) {
            answer = err.message;
        }
        if (answer === expected) return { ms: Date.now() - started, attempts, answers };
        if (answers.length < 5 || answers[answers.length - 1] !== answer) answers.push(answer);
        if (Date.now() - started >= timeout) {
            throw new Error(
                `timed out after ${timeout} ms waiting for ${what ?? `a dialing of ${receiverUserId} to be delivered to ${n}`} ` +
                    `(${attempts} dialings); expected ${expected}; answers: ${answers.slice(-5).join(' | ')}`,
            );
        }
        await new Promise((r) => setTimeout(r, interval));
    }
}

/**
 * Polls until a dialing from each node reaches a probe user on each other node (`delivered: 1`).
 * Answers such as cluster_unavailable, peer_offline and peer_gone count as "not yet". Returns the
 * ms it took; rejects after `timeout` with the last answers.
 */
export async function waitCrossNode(nodes, { timeout = 5000, what = 'cross-node delivery' } = {}) {
    const started = Date.now();
    const tag = `xprobe${process.pid}-${++probeSeq}`;
    const probes = [];
    try {
        for (const [i, n] of nodes.entries()) probes.push(await register(n.wsUrl, `${tag}-${i}`));
        const pending = new Set();
        for (let i = 0; i < nodes.length; i++) for (let j = 0; j < nodes.length; j++) if (i !== j) pending.add(`${i}>${j}`);
        const last = {};
        let seq = 0;
        const deadline = started + timeout;
        while (pending.size > 0) {
            for (const key of [...pending]) {
                const [i, j] = key.split('>').map(Number);
                const receiverUserId = `${tag}-${j}`;
                const id = `p${++seq}`;
                let answer;
                try {
                    answer = await dialAnswer(probes[i], { receiverUserId, id }, Math.max(200, Math.min(2000, deadline - Date.now())));
                } catch (err) {
                    answer = err.message;
                }
                last[key] = answer;
                if (answer === JSON.stringify({ type: 'dialing_response', ok: true, msg: '', id, data: { receiverUserId, delivered: 1 } }))
                    pending.delete(key);
            }
            if (pending.size === 0) break;
            if (Date.now() >= deadline) {
                const detail = [...pending].map((k) => `${nodes[k[0]]?.nodeId ?? k}: ${k} -> ${last[k]}`).join(' | ');
                throw new Error(`timed out after ${timeout} ms waiting for ${what}; still failing (node i>j: answer): ${detail}${nodeLogs(nodes)}`);
            }
            await new Promise((r) => setTimeout(r, 50));
        }
        return Date.now() - started;
    } finally {
        for (const ws of probes) ws.terminate();
    }
}

let support; // cached verdict: null = supported, else the reason

/**
 * Throws `h2o-signaling does not support signaling.redis yet: <error line>` when `-t` refuses a
 * config with signaling.redis (the C side has not landed); cheap, cached, bounded.
 */
export async function requireRedisSupport() {
    if (support === undefined) {
        const r = await runConfigTest((vars) => signalingConfig(vars, { global: ['signaling.redis: 127.0.0.1:1', 'signaling.node-id: probe'] }), {
            timeout: 5000,
        });
        if (r.code === 0) support = null;
        else {
            const first = configErrors(r.stderr, r.file)[0]?.text ?? r.stderr.trim().split('\n')[0] ?? `code ${r.code}`;
            support = `h2o-signaling does not support signaling.redis yet (-t: ${first})`;
        }
    }
    if (support !== null) throw new Error(support);
}
