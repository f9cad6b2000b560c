// Live reload (SIGHUP) from a test: rewrite the config file of a running server, send SIGHUP, and
// wait for the one line that says how the reload ended. The contract is in
// /work/shared/design/reload.md ("The contract"); the two lines are
//     h2o-signaling: reloaded FILE (generation N, M alive)
//     h2o-signaling: reload of FILE rejected; still serving generation N
// with FILE as given with -c (startServer passes its absolute `file`), a rejection preceded by the
// `FILE:LINE: ...` error lines. A server is what lib/server.mjs startServer() returns (waitOutcome
// needs only its file, stderr() and alive()).
//
//   requireReload() -> resolves when this build reloads on SIGHUP; else rejects at once with the
//       one-line reason "this build does not reload on SIGHUP yet ..." (a probe server, one SIGHUP,
//       REQUIRE_MS for the line). Cached per process: use it as `before(requireReload)`.
//   renderConfig(srv, config, {threads}) -> the text of `config` (a string, or a template called
//       with {port, tlsPort, ports, dir, root, cert, key, threads, file} of `srv`, as startServer's).
//       A server started with `threads: N` got `num-threads: N` prepended; so does every rendered
//       config (the value may not change by a reload), unless `threads` says otherwise (a number,
//       or null: nothing prepended).
//   writeConfig(srv, config, {files, threads}) -> the text written: `files` (paths relative to
//       srv.dir -> contents) first, then the config, atomically (a temp file renamed onto srv.file).
//   sighup(srv)                        -> sends SIGHUP
//   logMark(srv, {read})               -> where the log ends now (pass it as `since`)
//   waitOutcome(srv, {since, read, timeout, what}) -> the first outcome line after `since`:
//       {ok, generation, alive (null when rejected), line, output (the log from `since` to the
//       end of that line), errors ([{line, text}] FILE:LINE lines in output), count (outcome lines
//       after `since` so far)}. Rejects after `timeout` ms, or at once on a line that starts like
//       an outcome line but has another form, or when the server exits.
//   reload(srv, config, opts)          -> writeConfig + sighup + waitOutcome (config undefined:
//       the file is left as it is)
//   expectReloaded(srv, config, opts)  -> reload, asserting a good one (and exactly one outcome
//       line, no FILE:LINE line; `generation`/`alive` when given); returns the outcome
//   expectRejected(srv, config, opts)  -> reload, asserting a rejection with at least one
//       FILE:LINE line before it (`generation` when given); returns the outcome
//   outcomes(srv, {read})              -> every outcome line in the whole log so far
//   `read` is where the log is: () => text, default srv.stderr(); a server with `error-log`
//   writes there instead: pass fileLog(path) (the file's text, '' while it does not exist).
//
//   makeCert() -> {cert, key, dir, fingerprint256}: a second self-signed identity (RSA 2048,
//       CN=localhost) in a fresh temp dir, removed at exit; each call makes a new one
//   certFingerprint(pemPath)           -> SHA-256 fingerprint, as tls getPeerCertificate() shows it
//   tlsPeer(port, {alpn, timeout})     -> {fingerprint256, alpn} of a fresh TLS connection
//   httpConn(port, {timeout})          -> one keep-alive HTTP/1.1 connection: request(path,
//       {method, headers}) -> {status, headers, text} (101 resolves at once, body empty);
//       closed (Promise), isClosed(), destroy()
//   fdCount(pid), fdKinds(pid) (-> "socket: 26, /path/access.log 3, ..."), rssKb(pid),
//   underMemoryTool(pid) (-> 'valgrind' | 'a sanitizer runtime' | null)
//   SLOW: 8 under `make check-valgrind` (VALGRIND_LOG_DIR), else 1; REQUIRE_MS, OUTCOME_MS

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
    existsSync,
    mkdirSync,
    mkdtempSync,
    readdirSync,
    readFileSync,
    readlinkSync,
    renameSync,
    rmSync,
    writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

import { configErrors, runBinary, signalingConfig, startServer } from './server.mjs';
import { withTimeout } from './wait.mjs';

export const SLOW = process.env.VALGRIND_LOG_DIR ? 8 : 1;
export const REQUIRE_MS = 3000 * SLOW; // the probe's wait for the first reload line
export const OUTCOME_MS = 5000 * SLOW; // default wait for a reload's line

const run = promisify(execFile);
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// ---------------------------------------------------------------- the outcome lines

/** The complete lines of `text` (a last line without its newline is still being written). */
function completeLines(text) {
    const lines = text.split('\n');
    lines.pop();
    return lines;
}

/** Parses one log line: an outcome {ok, generation, alive, line}, 'malformed', or null (other line). */
function parseOutcome(line, file) {
    const good = new RegExp(`^h2o-signaling: reloaded ${esc(file)} \\(generation (\\d+), (\\d+) alive\\)$`).exec(line);
    if (good) return { ok: true, generation: Number(good[1]), alive: Number(good[2]), line };
    const bad = new RegExp(`^h2o-signaling: reload of ${esc(file)} rejected; still serving generation (\\d+)$`).exec(line);
    if (bad) return { ok: false, generation: Number(bad[1]), alive: null, line };
    if (/^h2o-signaling: (reloaded|reload of)\b/.test(line)) return 'malformed';
    return null;
}

/** A log reader for an `error-log` file: its text, '' while it does not exist. */
export function fileLog(path) {
    return () => (existsSync(path) ? readFileSync(path, 'utf8') : '');
}

const readerOf = (srv, read) => read ?? (() => srv.stderr());

/** Where the log of `srv` ends now. */
export function logMark(srv, { read } = {}) {
    return readerOf(srv, read)().length;
}

/** Every outcome line in the whole log of `srv` so far. */
export function outcomes(srv, { read } = {}) {
    return completeLines(readerOf(srv, read)())
        .map((l) => parseOutcome(l, srv.file))
        .filter((o) => o && o !== 'malformed');
}

/** Waits for the first outcome line after `since`; see the top of this file. */
export async function waitOutcome(srv, { since = 0, read, timeout = OUTCOME_MS, what = 'the reload' } = {}) {
    const log = readerOf(srv, read);
    const deadline = Date.now() + timeout;
    for (;;) {
        const output = log().slice(since);
        const lines = completeLines(output);
        let found = null;
        let count = 0;
        let upTo = 0;
        for (const [i, line] of lines.entries()) {
            const o = parseOutcome(line, srv.file);
            if (o === 'malformed') {
                throw new Error(`${what}: a reload line of an unexpected form: ${JSON.stringify(line)} (want ` +
                    `"h2o-signaling: reloaded ${srv.file} (generation N, M alive)" or ` +
                    `"h2o-signaling: reload of ${srv.file} rejected; still serving generation N")`);
            }
            if (o) {
                count++;
                if (!found) {
                    found = o;
                    upTo = lines.slice(0, i + 1).join('\n').length + 1;
                }
            }
        }
        if (found) {
            const head = output.slice(0, upTo);
            return { ...found, output: head, errors: configErrors(head, srv.file), count };
        }
        if (!srv.alive()) throw new Error(`${what}: the server exited; log since SIGHUP:\n${output}\n--- stderr\n${srv.stderr()}`);
        if (Date.now() >= deadline) {
            throw new Error(`${what}: no "h2o-signaling: reloaded/reload of ${srv.file} ..." line within ${timeout} ms ` +
                `of SIGHUP; log since then:\n${output}`);
        }
        await new Promise((r) => setTimeout(r, 10)); // poll interval of a bounded condition wait
    }
}

// ---------------------------------------------------------------- writing the config, signalling

/** num-threads the server was started with (startServer's `threads`), or undefined. */
function startedThreads(srv) {
    const m = /^num-threads: (\d+)\n/.exec(srv.config ?? '');
    return m ? Number(m[1]) : undefined;
}

/** The text of `config` for `srv`; see the top of this file. */
export function renderConfig(srv, config, { threads } = {}) {
    const n = threads === undefined ? startedThreads(srv) : threads;
    const ctx = {
        port: srv.port,
        tlsPort: srv.tlsPort,
        ports: srv.ports,
        dir: srv.dir,
        root: srv.root,
        cert: srv.cert,
        key: srv.key,
        threads: n ?? undefined,
        file: srv.file,
    };
    const text = typeof config === 'function' ? config(ctx) : String(config);
    return n === undefined || n === null ? text : `num-threads: ${n}\n${text}`;
}

let tmpSeq = 0;

/** Writes `files` into srv.dir, then the config atomically onto srv.file; returns the text. */
export function writeConfig(srv, config, { files = {}, threads } = {}) {
    for (const [rel, content] of Object.entries(files)) {
        const path = join(srv.dir, rel);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, content);
    }
    const text = renderConfig(srv, config, { threads });
    const tmp = `${srv.file}.tmp-${process.pid}-${++tmpSeq}`;
    writeFileSync(tmp, text);
    renameSync(tmp, srv.file);
    return text;
}

/** Sends SIGHUP to the server. */
export function sighup(srv) {
    srv.proc.kill('SIGHUP');
}

/** Writes `config` (unless undefined), sends SIGHUP and waits for the outcome line. */
export async function reload(srv, config, { files, threads, read, since, timeout, what } = {}) {
    const mark = since ?? logMark(srv, { read });
    let text;
    if (config !== undefined) text = writeConfig(srv, config, { files, threads });
    sighup(srv);
    const outcome = await waitOutcome(srv, { since: mark, read, timeout, what });
    return { ...outcome, config: text };
}

/** A good reload: asserts the line's form, one outcome line, no FILE:LINE line; see the top of this file. */
export async function expectReloaded(srv, config, opts = {}) {
    const { generation, alive, what = 'reload' } = opts;
    const o = await reload(srv, config, { ...opts, what });
    assert.equal(o.ok, true, `${what}: expected "reloaded", got ${o.line}\n--- log\n${o.output}\n--- new config\n${o.config ?? '(unchanged)'}`);
    assert.deepEqual(o.errors, [], `${what}: a good reload logs no FILE:LINE line`);
    assert.equal(o.count, 1, `${what}: exactly one outcome line per SIGHUP`);
    if (generation !== undefined) assert.equal(o.generation, generation, `${what}: generation in ${o.line}`);
    if (alive !== undefined) assert.equal(o.alive, alive, `${what}: generations alive in ${o.line}`);
    return o;
}

/** A rejected reload: asserts the line, FILE:LINE lines before it, one outcome line; see the top. */
export async function expectRejected(srv, config, opts = {}) {
    const { generation, what = 'reload of a bad file' } = opts;
    const o = await reload(srv, config, { ...opts, what });
    assert.equal(o.ok, false, `${what}: expected a rejection, got ${o.line}\n--- new config\n${o.config ?? '(unchanged)'}`);
    assert.ok(o.errors.length >= 1, `${what}: FILE:LINE lines (${srv.file}:LINE: ...) before ${o.line}; log:\n${o.output}`);
    assert.equal(o.count, 1, `${what}: exactly one outcome line per SIGHUP`);
    if (generation !== undefined) assert.equal(o.generation, generation, `${what}: generation in ${o.line}`);
    return o;
}

// ---------------------------------------------------------------- does this build reload?

let probe;

/** Resolves when this build reloads on SIGHUP; rejects with a one-line reason otherwise (cached). */
export function requireReload() {
    probe ??= probeReload();
    return probe;
}

async function probeReload() {
    const srv = await startServer({ config: (vars) => signalingConfig(vars) });
    try {
        const since = logMark(srv);
        sighup(srv);
        let o;
        try {
            o = await waitOutcome(srv, { since, timeout: REQUIRE_MS, what: 'probe' });
        } catch (err) {
            if (!srv.alive()) throw new Error(`SIGHUP killed the server: ${JSON.stringify(srv.stderr().slice(since))}`);
            if (/unexpected form/.test(err.message)) throw new Error(err.message.split('\n')[0]);
            const help = await runBinary(['-h'], { timeout: 5000 }).catch(() => ({ stdout: '' }));
            const signals = `${help.stdout}${help.stderr ?? ''}`.split('\n').find((l) => /SIGHUP/.test(l));
            throw new Error(
                `this build does not reload on SIGHUP yet: no "h2o-signaling: reloaded FILE (generation 2, M alive)" ` +
                    `line within ${REQUIRE_MS} ms of SIGHUP${signals ? ` (-h: "${signals.trim()}")` : ''}`,
            );
        }
        if (!o.ok) throw new Error(`SIGHUP with an unchanged, valid config was rejected: ${o.line} (${o.output.trim()})`);
        if (o.generation !== 2) throw new Error(`the first reload should be generation 2: ${o.line}`);
    } finally {
        await srv.stop('SIGKILL');
    }
}

// ---------------------------------------------------------------- TLS

/** SHA-256 fingerprint of the PEM certificate at `path`, as getPeerCertificate().fingerprint256 shows it. */
export function certFingerprint(path) {
    return new X509Certificate(readFileSync(path)).fingerprint256;
}

/** A new self-signed RSA identity for CN=localhost in its own temp dir (removed at exit). */
export async function makeCert() {
    const dir = mkdtempSync(join(tmpdir(), 'h2o-signaling-reload-tls-'));
    if (process.env.KEEP_TEST_TMP !== '1') process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const key = join(dir, 'k.pem');
    const cert = join(dir, 'c.pem');
    // prettier-ignore
    const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'];
    try {
        await run('openssl', args, { timeout: 30000 });
    } catch (err) {
        throw new Error(`openssl could not make a certificate: ${err.stderr || err.message}`);
    }
    return { cert, key, dir, fingerprint256: certFingerprint(cert) };
}

/** Fingerprint of the certificate a fresh TLS connection to 127.0.0.1:port presents, and the ALPN chosen. */
export function tlsPeer(port, { alpn = ['h2', 'http/1.1'], timeout = 5000 } = {}) {
    let sock;
    const done = new Promise((resolve, reject) => {
        sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: alpn });
        sock.once('secureConnect', () => {
            const cert = sock.getPeerCertificate();
            resolve({ fingerprint256: cert.fingerprint256, alpn: sock.alpnProtocol });
        });
        sock.once('error', reject);
    });
    return withTimeout(done, timeout, `TLS handshake with 127.0.0.1:${port}`).finally(() => sock.destroy());
}

// ---------------------------------------------------------------- one keep-alive HTTP/1.1 connection

/** Parses one response off the front of `buf`: {response, used} or null (incomplete). */
function parseResponse(buf, closed) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) throw new Error(`bad status line: ${statusLine}`);
    const headers = {};
    for (const line of lines) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    let at = end + 4;
    const out = (bodyBuf, used) => ({ response: { status, headers, text: bodyBuf.toString('utf8') }, used });
    if (status === 101 || status === 204 || status === 304) return out(Buffer.alloc(0), at);
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
        const parts = [];
        for (;;) {
            const le = buf.indexOf('\r\n', at);
            if (le < 0) return null;
            const size = parseInt(buf.subarray(at, le).toString('latin1'), 16);
            if (buf.length < le + 2 + size + 2) return null;
            if (size === 0) return out(Buffer.concat(parts), le + 4); // no trailers expected
            parts.push(buf.subarray(le + 2, le + 2 + size));
            at = le + 2 + size + 2;
        }
    }
    if (headers['content-length'] !== undefined) {
        const cl = Number(headers['content-length']);
        return buf.length >= at + cl ? out(buf.subarray(at, at + cl), at + cl) : null;
    }
    return closed ? out(buf.subarray(at), buf.length) : null; // body until the close
}

/** One keep-alive HTTP/1.1 connection to 127.0.0.1:port; see the top of this file. */
export async function httpConn(port, { timeout = 5000 } = {}) {
    const sock = net.connect({ port, host: '127.0.0.1' });
    await withTimeout(new Promise((res, rej) => sock.once('connect', res).once('error', rej)), timeout, `connect ${port}`);
    let buf = Buffer.alloc(0);
    let closed = false;
    const waiters = [];
    const pump = () => {
        while (waiters.length) {
            let r;
            try {
                r = parseResponse(buf, closed);
            } catch (err) {
                waiters.shift().reject(err);
                continue;
            }
            if (r) {
                buf = buf.subarray(r.used);
                waiters.shift().resolve(r.response);
            } else if (closed) {
                waiters.shift().reject(new Error('the server closed the connection before a complete response'));
            } else {
                return;
            }
        }
    };
    const closedP = new Promise((resolve) =>
        sock.once('close', () => {
            closed = true;
            pump();
            resolve();
        }),
    );
    sock.on('error', () => {}); // shows up as the close
    sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        pump();
    });
    return {
        request(path, { method = 'GET', headers = {} } = {}) {
            const all = { Host: `127.0.0.1:${port}`, ...headers };
            const head = Object.entries(all)
                .map(([k, v]) => `${k}: ${v}\r\n`)
                .join('');
            const p = new Promise((resolve, reject) => waiters.push({ resolve, reject }));
            if (closed) pump();
            else sock.write(`${method} ${path} HTTP/1.1\r\n${head}\r\n`);
            return withTimeout(p, timeout, `${method} ${path} on a kept-alive connection to ${port}`);
        },
        closed: closedP,
        isClosed: () => closed,
        destroy: () => sock.destroy(),
    };
}

// ---------------------------------------------------------------- process figures

export const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;

/** What the open fds of `pid` are, most frequent first: "socket: 26, /tmp/x/access.log 51, ...". */
export function fdKinds(pid) {
    const kinds = new Map();
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        let target;
        try {
            target = readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/\[\d+\]$/, '');
        } catch {
            continue; // closed meanwhile
        }
        kinds.set(target, (kinds.get(target) ?? 0) + 1);
    }
    return [...kinds]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
}

export const rssKb = (pid) => Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

/** 'valgrind' or 'a sanitizer runtime' when RSS is not the server's own, else null. */
export function underMemoryTool(pid) {
    if (process.env.VALGRIND_LOG_DIR) return 'valgrind';
    try {
        const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
        if (/libasan|libtsan|libmsan/.test(maps)) return 'a sanitizer runtime';
        if (/vgpreload|valgrind/.test(maps)) return 'valgrind';
    } catch {
        /* process gone */
    }
    return null;
}
