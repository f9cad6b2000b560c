// Run the real h2o-signaling binary from a test.
//
//   startServer({config, files, threads, tls, env, cwd, ports, expectFail, readyTimeout})
//       Writes `files` and the rendered config into a fresh temp dir, spawns
//       `h2o-signaling -c <dir>/h2o.conf`, and resolves once every port the config
//       used accepts TCP connections on 127.0.0.1. Resolves with
//         {port, tlsPort, ports, url, httpsUrl, wsUrl, wssUrl, dir, file, root,
//          cert, key, proc, pid, stdout(), stderr(), alive(), exited, stop(signal)}
//       `stop(signal = 'SIGTERM', {timeout = 5000})` resolves with {code, signal,
//       timedOut}: after `timeout` ms the process gets SIGKILL and timedOut is true.
//       stop() is idempotent and never throws, so it belongs in t.after()/after().
//       With `expectFail: true` it does not wait for readiness: it waits for the
//       process to exit on its own and resolves with
//         {code, signal, timedOut, stdout, stderr, file, dir, listening}
//       (`listening`: a config port still accepted connections after the exit).
//   runConfigTest(config, {files, tls, ports, cwd, env})
//       `h2o-signaling -t -c FILE` -> {code, signal, timedOut, stdout, stderr, file, dir, ...}
//   runBinary(args, {cwd, env, timeout}) -> {code, signal, timedOut, stdout, stderr}
//   how(result) -> "code C, signal S[, timed out]; stderr: ..." for assertion messages
//   signalingConfig(vars, {settings, morePaths, fileDir, global, host, tls, ssl}), atLevel(level, line)
//       -> the usual config (one listener, /WsService with signaling: ON) as a template's text
//   configErrors(stderr, file) -> [{line, text}]: the error lines that start with
//       `FILE:LINE: ` (1-based LINE). libh2o's own format, `[FILE:LINE] in command
//       X, ...`, does not count: the server replaces it, and the tests check that.
//   spawnChild(bin, args, {cwd, env}) -> {proc, exited, stdout(), stderr(), output(), status()}:
//       any child process, killed at exit like the server (lib/redis.mjs spawns redis with it)
//   makeTempDir(prefix) -> a fresh temp dir, removed at exit like the server's
//   freePorts(n), isListening(port), serverBinary(), REPO_ROOT
//
// The config is a string or a template function called with a context object:
//   {port, tlsPort, ports[], dir, root, cert, key, threads}
// `port`/`tlsPort` are ports[0]/ports[1]; `ports` has max(2, opts.ports) free ports.
// Every port the template reads is taken to be one the server listens on and is
// waited for (read them only for `listen:`). `dir` is the temp dir (also the
// server's cwd unless `cwd` is given), `root` the repository root, `cert`/`key`
// the paths from lib/tls.mjs when `tls: true`. `threads: N` prepends
// `num-threads: N` to the config. `files` maps paths relative to `dir` to contents.
//
// The binary is $H2O_SIGNALING_BIN or <repo>/h2o-signaling. Any process of
// spawnChild() (every server) still running when the test process exits gets
// SIGKILL; temp dirs are removed at exit unless KEEP_TEST_TMP=1.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { getTestCert } from './tls.mjs';
import { withTimeout } from './wait.mjs';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const HOST = '127.0.0.1';
const live = new Set(); // child processes not yet seen to exit
const tempDirs = [];

process.once('exit', () => {
    for (const child of live) {
        try {
            child.kill('SIGKILL');
        } catch {
            /* already gone */
        }
    }
    if (process.env.KEEP_TEST_TMP !== '1') {
        for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
        process.exit(128 + (sig === 'SIGINT' ? 2 : 15)); // runs the 'exit' cleanup above
    });
}

/**
 * Path of the server binary: $H2O_SIGNALING_BIN, else an in-tree build (./h2o-signaling), else
 * tools/build's (build/h2o-signaling). Throws a message saying how to build it when absent.
 */
export function serverBinary() {
    const candidates = process.env.H2O_SIGNALING_BIN
        ? [process.env.H2O_SIGNALING_BIN]
        : [join(REPO_ROOT, 'h2o-signaling'), join(REPO_ROOT, 'build', 'h2o-signaling')];
    const bin = candidates.find((path) => existsSync(path));
    if (bin === undefined) {
        throw new Error(`server binary not found: ${candidates.join(' or ')} (build it with tools/build, or set H2O_SIGNALING_BIN)`);
    }
    return bin;
}

/** `n` distinct loopback ports that were free a moment ago (bound to port 0, then closed). */
export async function freePorts(n = 1) {
    const servers = [];
    try {
        for (let i = 0; i < n; i++) {
            const srv = net.createServer();
            servers.push(srv);
            await new Promise((res, rej) => {
                srv.once('error', rej);
                srv.listen(0, HOST, res);
            });
        }
        return servers.map((s) => s.address().port);
    } finally {
        await Promise.all(servers.map((s) => new Promise((res) => s.close(() => res()))));
    }
}

/**
 * A free port below the kernel's ephemeral range, for a server that clients may try to reach while it
 * is down (Redis restarted, or started late). Connecting to a free port of the ephemeral range can
 * pick that very port as the source and connect the socket to itself, which then holds the port: the
 * server cannot bind it when it comes back. Ports below the range are never picked as sources.
 */
export async function freeServicePort() {
    let low = 32768;
    try {
        low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
    } catch {
        /* not Linux: keep the usual bound */
    }
    const floor = Math.max(1024, Math.min(10000, low - 1000));
    for (let attempt = 0; attempt < 200; attempt++) {
        const port = floor + Math.floor(Math.random() * (low - floor));
        const ok = await new Promise((res) => {
            const srv = net.createServer();
            srv.once('error', () => res(false));
            srv.listen(port, HOST, () => srv.close(() => res(true)));
        });
        if (ok) return port;
    }
    throw new Error(`no free port between ${floor} and ${low}`);
}

/** True when 127.0.0.1:port completes a TCP handshake within `timeout` ms. */
export function isListening(port, timeout = 1000) {
    return new Promise((res) => {
        const sock = net.connect({ port, host: HOST });
        const done = (ok) => {
            clearTimeout(timer);
            sock.destroy();
            res(ok);
        };
        const timer = setTimeout(() => done(false), timeout);
        sock.once('connect', () => done(true));
        sock.once('error', () => done(false));
    });
}

/** Lines of `stderr` that start with `FILE:LINE: ` for config `file`, as [{line, text}] (1-based). */
export function configErrors(stderr, file) {
    const esc = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const re = new RegExp(`^${esc}:(\\d+): `);
    const found = [];
    for (const text of stderr.split('\n')) {
        const m = re.exec(text);
        if (m) found.push({ line: Number(m[1]), text });
    }
    return found;
}

/** Writes files and config into a fresh temp dir; returns the context and the ports the config used. */
async function prepare({ config, files = {}, threads, tls = false, ports: nports = 2 }) {
    const dir = makeTempDir('h2o-signaling-test-');
    for (const [rel, content] of Object.entries(files)) {
        const path = join(dir, rel);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, content);
    }
    const ports = await freePorts(Math.max(2, nports));
    const used = new Set();
    const portList = new Proxy(ports, {
        get(target, prop, receiver) {
            if (typeof prop === 'string' && /^\d+$/.test(prop) && Number(prop) < target.length) used.add(target[prop]);
            return Reflect.get(target, prop, receiver);
        },
    });
    const { cert, key } = tls ? await getTestCert() : {};
    const ctx = {
        get port() {
            used.add(ports[0]);
            return ports[0];
        },
        get tlsPort() {
            used.add(ports[1]);
            return ports[1];
        },
        ports: portList,
        dir,
        root: REPO_ROOT,
        cert,
        key,
        threads,
    };
    let text = typeof config === 'function' ? config(ctx) : String(config ?? '');
    if (threads !== undefined) text = `num-threads: ${threads}\n${text}`;
    const file = join(dir, 'h2o.conf');
    writeFileSync(file, text);
    return { dir, file, text, ports, used: [...used], cert, key };
}

/**
 * Spawns `bin` with `args`, output captured: {proc, exited, stdout(), stderr(), output() (both,
 * in arrival order), status()}; `exited` resolves with {code, signal} once it is gone (status()
 * is undefined until then). The child is SIGKILLed if it is still running when this process
 * exits (see the top of this file); `env` is added to process.env.
 */
export function spawnChild(bin, args, { cwd, env = {} } = {}) {
    const proc = spawn(bin, args, {
        cwd,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(proc);
    let out = '';
    let err = '';
    let all = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => {
        out += d;
        all += d;
    });
    proc.stderr.setEncoding('utf8').on('data', (d) => {
        err += d;
        all += d;
    });
    let status;
    const exited = new Promise((res) => {
        proc.once('error', (e) => {
            err += `\n[spawn error] ${e.message}`;
            all += `\n[spawn error] ${e.message}`;
            live.delete(proc);
            status ??= { code: null, signal: null };
            res(status);
        });
        // 'close' (not 'exit') so that stdout/stderr are complete when this resolves
        proc.once('close', (code, signal) => {
            live.delete(proc);
            status ??= { code, signal };
            res(status);
        });
    });
    return { proc, exited, stdout: () => out, stderr: () => err, output: () => all, status: () => status };
}

/** Spawns the server binary (spawnChild). */
const spawnServer = (args, opts) => spawnChild(serverBinary(), args, opts);

/** A fresh temp dir named `prefix`XXXXXX, removed at exit unless KEEP_TEST_TMP=1. */
export function makeTempDir(prefix = 'h2o-signaling-test-') {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    tempDirs.push(dir);
    return dir;
}

/** Waits up to `ms` for the child to exit, SIGKILLing it after that; resolves {code, signal, timedOut}. */
async function awaitExit(child, ms) {
    try {
        const st = await withTimeout(child.exited, ms, 'server exit');
        return { ...st, timedOut: false };
    } catch {
        child.proc.kill('SIGKILL');
        const st = await child.exited;
        return { ...st, timedOut: true };
    }
}

/** Runs the binary with `args` to completion (bounded by `timeout` ms). */
export async function runBinary(args, { cwd = REPO_ROOT, env, timeout = 10000 } = {}) {
    const child = spawnServer(args, { cwd, env });
    const st = await awaitExit(child, timeout);
    return { ...st, stdout: child.stdout(), stderr: child.stderr() };
}

/** `h2o-signaling -t -c FILE` on a rendered config (string or template, as for startServer). */
export async function runConfigTest(config, { files, tls, ports, cwd, env, timeout = 10000 } = {}) {
    const prep = await prepare({ config, files, tls, ports });
    const res = await runBinary(['-t', '-c', prep.file], { cwd: cwd ?? prep.dir, env, timeout });
    return { ...res, file: prep.file, dir: prep.dir, config: prep.text, ports: prep.ports };
}

/**
 * The config most tests start from: one loopback listener and `/WsService` with `signaling: ON`.
 * `settings` are directive lines for that path (e.g. 'signaling.ping-interval: 200'); `morePaths`
 * is YAML appended under `paths:`, indented like `/WsService:` (other paths of the same host);
 * `fileDir` adds a last path `/` serving that directory (`file.dir:`). `global` are directive lines
 * at the top level (e.g. 'max-connections: 3'), `host` lines for the host `default` (above its
 * `paths:`). `tls: true` adds a second loopback listener on `tlsPort` with the test certificate
 * (start the server with `tls: true` too); `ssl` are more lines for its `ssl:` mapping.
 * Use it as `config: (vars) => signalingConfig(vars, {...})`.
 */
export function signalingConfig(vars, opts = {}) {
    const { settings = [], morePaths = '', fileDir, global = [], host = [], tls = false, ssl = [] } = opts;
    const indent = (lines, spaces) => lines.map((line) => `${' '.repeat(spaces)}${line}\n`).join('');
    let listen = `listen: {host: 127.0.0.1, port: ${vars.port}}\n`;
    if (tls) {
        // read only here: every port the template reads is one the server must listen on
        if (!vars.cert) throw new Error('signalingConfig: tls: true needs a server started with tls: true');
        listen += `listen:
  host: 127.0.0.1
  port: ${vars.tlsPort}
  ssl:
    certificate-file: ${vars.cert}
    key-file: ${vars.key}
${indent(ssl, 4)}`;
    }
    const root = fileDir === undefined ? '' : `      /:\n        file.dir: ${fileDir}\n`;
    return `${indent(global, 0)}${listen}hosts:
  default:
${indent(host, 4)}    paths:
      /WsService:
        signaling: ON
${indent(settings, 8)}${morePaths}${root}`;
}

/**
 * signalingConfig options that put the directive `line` at `level`: 'global' (top level), 'host'
 * (host `default`) or 'path' (`/WsService`), e.g. `signalingConfig(vars, atLevel('host', line))`.
 */
export function atLevel(level, line) {
    if (level === 'global') return { global: [line] };
    if (level === 'host') return { host: [line] };
    if (level === 'path') return { settings: [line] };
    throw new Error(`atLevel: unknown level ${level}`);
}

/** How a run ended (runBinary, runConfigTest, startServer with expectFail), for assertion messages. */
export const how = (r) => `code ${r.code}, signal ${r.signal}${r.timedOut ? ', timed out' : ''}; stderr:\n${r.stderr}`;

/** Starts the server on free loopback ports; see the top of this file. */
export async function startServer(opts = {}) {
    const { env, cwd, expectFail = false, readyTimeout = 10000, exitTimeout = 10000 } = opts;
    const prep = await prepare(opts);
    const child = spawnServer(['-c', prep.file], { cwd: cwd ?? prep.dir, env });

    if (expectFail) {
        const st = await awaitExit(child, exitTimeout);
        const listening = (await Promise.all(prep.used.map((p) => isListening(p)))).some(Boolean);
        return {
            ...st,
            listening,
            stdout: child.stdout(),
            stderr: child.stderr(),
            file: prep.file,
            dir: prep.dir,
            config: prep.text,
        };
    }

    const [port, tlsPort] = prep.ports;
    const server = {
        port,
        tlsPort,
        ports: prep.ports,
        url: `http://${HOST}:${port}`,
        httpsUrl: `https://${HOST}:${tlsPort}`,
        wsUrl: `ws://${HOST}:${port}/WsService`,
        wssUrl: `wss://${HOST}:${tlsPort}/WsService`,
        dir: prep.dir,
        file: prep.file,
        config: prep.text,
        root: REPO_ROOT,
        cert: prep.cert,
        key: prep.key,
        proc: child.proc,
        pid: child.proc.pid,
        exited: child.exited,
        stdout: child.stdout,
        stderr: child.stderr,
        alive: () => child.status() === undefined,
        async stop(signal = 'SIGTERM', { timeout = 5000 } = {}) {
            if (child.status() !== undefined) return { ...child.status(), timedOut: false };
            child.proc.kill(signal);
            return awaitExit(child, timeout);
        },
    };

    if (prep.used.length === 0) {
        await server.stop('SIGKILL');
        throw new Error('the config template used no port (use ctx.port / ctx.tlsPort / ctx.ports[i] in listen:)');
    }

    // Ready = every used port accepts a connection. Fail early if the process exits.
    const deadline = Date.now() + readyTimeout;
    for (;;) {
        if (child.status() !== undefined) {
            const st = child.status();
            throw new Error(
                `h2o-signaling exited before listening (code ${st.code}, signal ${st.signal})\n` +
                    `--- config ${prep.file}\n${prep.text}\n--- stderr\n${child.stderr()}`,
            );
        }
        const up = await Promise.all(prep.used.map((p) => isListening(p, 500)));
        if (up.every(Boolean)) return server;
        if (Date.now() >= deadline) {
            await server.stop('SIGKILL');
            throw new Error(
                `h2o-signaling did not listen on ${prep.used.join(', ')} within ${readyTimeout} ms\n` +
                    `--- stderr\n${child.stderr()}`,
            );
        }
        await Promise.race([child.exited, new Promise((r) => setTimeout(r, 25))]);
    }
}
