// wss:// with TLS takeover (handler/ws/sig_ws_tls.h, handler/core/sig_tlsrec.h): after the upgrade of a
// TLS 1.3 connection the server seals and opens the records itself. What is proven, end to end, with
// `signaling.tls-takeover: ON` (the default) unless said:
//
//   signaling  two wss users and one ws user: create_connect, dialing every way between them, the exact
//              replies and `called` pushes, peer_offline; 1,000 dialings pipelined by one wss client are
//              answered, and pushed to the receiver, exactly and in order.
//   big        through the echo endpoint (max-message-size 2 MiB): 1 MiB of text and of binary echoed
//              byte for byte (65 records of 16 KB back, as one loop turn seals them), exactly 2 MiB
//              passes, 2 MiB + 1 closes with 1009, which the client receives, under our records: the
//              close frame's record and a close_notify's (a 2-byte alert) end the stream.
//   suites     TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256 (Node
//              `ciphers`, checked with getCipher()): text and binary echoes of 0 B to 100 KB, and the
//              10 KB echo in one record (taken over). A TLS 1.2 client works and stays with h2o (its
//              1400-byte records); `signaling.tls-takeover: OFF` at path level keeps h2o's records too.
//   records    the bytes the client's TCP socket receives are parsed into TLS record headers (a
//              Duplex between Node's TLS and its own net.Socket): a 10,000-byte echo comes back in ONE
//              application-data record (10,004 + 17 bytes), where h2o writes several; five frames that
//              arrive in one record (3.6 KB) are answered with one record, where h2o writes three.
//   two parts  a client record cut after 1, 3, 5, 8192 and 16000 bytes, the rest sent once the server
//              has read the first part (its socket's receive queue empty in /proc/net/tcp): every echo
//              arrives; also at 8192 bytes on a connection h2o keeps (TLS 1.2, or takeover OFF), which
//              libh2o 2.2.5's on_read_ssl closed (it took libuv's nread == 0 for an I/O error;
//              server/sig_uv_read_fix.c).
//   KeyUpdate  `openssl s_client -msg` (stdin "K\n": KeyUpdate(update_requested); "k\n": not
//              requested), on every suite, several in a row: after each "K" the server's own
//              KeyUpdate (update_not_requested) is decrypted by s_client before the echo's record,
//              after "k" none is, and every echo after them is exact; at the end our close frame is
//              followed by a close_notify that s_client decrypts.
//   endings    close_notify alone (no close frame, the TCP connection left open): the server drops the
//              connection and the user is unregistered (peer_offline); a close 1000 is echoed (code
//              1000, wasClean) and followed by a close_notify; bytes that are not a record (three
//              kinds) or a record with one bit flipped, injected under Node's TLS: the connection is
//              closed with nothing sent back (no alert, no close frame), and another connection of
//              the same server goes on working.
//   OFF        `signaling.tls-takeover: OFF` at the global level: h2o keeps the TLS (several records for
//              10 KB), echoes on every suite, signaling and the close still work.
// Where h2o keeps the TLS, the echoes run on Node's own sockets, not over the Duplex: its 16 KB writes
// trip the libh2o bug above (the two-part tests show it on purpose).
// Every server exits 0 on SIGTERM at the end of its describe, with no sanitizer report on stderr.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';

import { acceptFor, encodeFrame, FrameParser, OP } from '../lib/rawws.mjs';
import { makeTempDir, signalingConfig, startServer } from '../lib/server.mjs';
import { calledText, createConnectOkText, dialingFailText, dialingOkText, nextText, register, request, waitPeerOffline } from '../lib/sigclient.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';
import { closeAfter, connect, nextRaw, waitClose } from '../lib/wsclient.mjs';

const ECHO_MAX = 2 * 1024 * 1024;
const SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
const OVERHEAD = 17; // a TLS 1.3 record's content type byte and AEAD tag
const MAX_RECORD = 16384 + OVERHEAD;
const CLOSE_NOTIFY_LEN = 2 + OVERHEAD; // an alert: 2 bytes of content

/** /WsService (no rate limit, for the pipelining), /echo (2 MiB messages), /echo-h2o (path-level OFF). */
const config =
    (global = []) =>
    (vars) =>
        signalingConfig(vars, {
            tls: true,
            global,
            settings: ['signaling.rate-limit: 0'],
            morePaths:
                '      /echo:\n' +
                '        websocket.echo: ON\n' +
                `        signaling.max-message-size: ${ECHO_MAX}\n` +
                '        signaling.max-queued-bytes: 8388608\n' +
                '        signaling.ping-interval: 0\n' +
                '      /echo-h2o:\n' +
                '        websocket.echo: ON\n' +
                '        signaling.tls-takeover: OFF\n' +
                '        signaling.ping-interval: 0\n',
        });

/** SIGTERM: exit 0, no signal, in time, and no sanitizer or assertion report on stderr. */
async function stopClean(srv) {
    if (!srv) return;
    const st = await srv.stop('SIGTERM', { timeout: 10000 });
    const stderr = srv.stderr();
    assert.deepEqual({ code: st.code, signal: st.signal, timedOut: st.timedOut }, { code: 0, signal: null, timedOut: false }, `the server's exit; stderr:\n${stderr.slice(-3000)}`);
    assert.doesNotMatch(stderr, /AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed/, stderr.slice(-3000));
}

/** Valid UTF-8 text of exactly `n` bytes (1-, 2-, 3- and 4-byte characters, cut only between them). */
function utf8Text(n) {
    const piece = 'wss héllo wörld 中文字 😀 {"a":1} ';
    let s = piece.repeat(Math.ceil(n / Buffer.byteLength(piece)) + 1);
    let buf = Buffer.from(s).subarray(0, n);
    while (buf.length && (buf[buf.length - 1] & 0xc0) === 0x80) buf = buf.subarray(0, -1);
    if (buf.length && buf[buf.length - 1] >= 0xc0) buf = buf.subarray(0, -1);
    s = buf.toString('utf8');
    return s + 'x'.repeat(n - Buffer.byteLength(s));
}

/** Deterministic bytes (every value 0..255 appears). */
const binaryOf = (n) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + (i >> 8)) & 0xff));

/** Bytes the kernel holds for the server side of `sock` (a loopback connection) that it has not read yet (0 once it is closed). */
function serverUnread(sock) {
    const hex = (port) => port.toString(16).toUpperCase().padStart(4, '0');
    const local = `0100007F:${hex(sock.remotePort)}`;
    const remote = `0100007F:${hex(sock.localPort)}`;
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f[1] === local && f[2] === remote) return parseInt(f[4].split(':')[1], 16);
    }
    return 0; // the server closed it: it reads nothing more
}

/**
 * The stream between Node's TLS and a net.Socket of our own: it parses the TLS record headers of
 * both directions ({type, len}: `records` from the server, `sent` by the client), can change the
 * next chunk Node's TLS writes (`mutateNext`), can cut the next record the client writes after
 * `cutNextAt` bytes (the rest follows once the server has read the first part: its receive queue
 * is empty), and with `holdFin` does not end the TCP connection when TLS ends its side (so a
 * close_notify goes alone). `sock` is the TCP socket itself.
 */
class RecordTap extends Duplex {
    constructor(sock) {
        super();
        this.sock = sock;
        this.records = [];
        this.sent = [];
        this.inBuf = Buffer.alloc(0);
        this.outBuf = Buffer.alloc(0);
        this.mutateNext = null;
        this.cutNextAt = 0;
        this.pending = Buffer.alloc(0);
        this.cuts = 0; // records cut so far (the first part read by the server before the rest was sent)
        this.stalls = []; // cuts whose first part the server did not read in time (the rest was sent anyway)
        this.holdFin = false;
        this.tcpEnded = new Promise((resolve) => sock.once('close', resolve));
        sock.on('data', (d) => {
            this.inBuf = RecordTap.#parse(Buffer.concat([this.inBuf, d]), this.records);
            if (!this.push(d)) sock.pause();
        });
        sock.on('end', () => this.push(null));
        sock.on('error', (err) => this.destroy(err));
    }

    static #parse(buf, into) {
        while (buf.length >= 5) {
            const len = buf.readUInt16BE(3);
            if (buf.length < 5 + len) break;
            into.push({ type: buf[0], len });
            buf = buf.subarray(5 + len);
        }
        return buf;
    }

    _read() {
        this.sock.resume();
    }

    _write(chunk, _enc, cb) {
        if (this.mutateNext) {
            const mutate = this.mutateNext;
            this.mutateNext = null;
            chunk = mutate(Buffer.from(chunk));
        }
        this.outBuf = RecordTap.#parse(Buffer.concat([this.outBuf, chunk]), this.sent);
        if (!this.cutNextAt) {
            this.sock.write(chunk, cb);
            return;
        }
        this.pending = Buffer.concat([this.pending, chunk]);
        if (this.pending.length < 5 || this.pending.length < 5 + this.pending.readUInt16BE(3)) {
            cb(); // a record is not whole yet: held
            return;
        }
        const [held, at] = [this.pending, this.cutNextAt];
        this.pending = Buffer.alloc(0);
        this.cutNextAt = 0;
        this.sock.write(held.subarray(0, at), () => {
            // until the server has read the first part, or closed the connection (then it reads nothing more)
            const readOrGone = () => this.sock.readableEnded || this.sock.destroyed || serverUnread(this.sock) === 0;
            waitUntil(readOrGone, { timeout: 3000, interval: 5, what: `the server to read ${at} bytes of a record` }).then(
                () => {
                    this.cuts++;
                    this.sock.write(held.subarray(at), cb);
                },
                () => {
                    this.stalls.push(`${at} bytes written, ${serverUnread(this.sock)} unread by the server after 3 s`);
                    this.sock.write(held.subarray(at), cb);
                },
            );
        });
    }

    _final(cb) {
        if (!this.holdFin) this.sock.end();
        cb();
    }

    _destroy(err, cb) {
        this.sock.destroy();
        cb(err);
    }
}

/** A `ws` client of `url` whose TLS runs over a RecordTap; closed and destroyed in t.after. */
async function tapped(t, url, wsOptions = {}) {
    const { port } = new URL(url);
    const sock = net.connect(Number(port), '127.0.0.1');
    t.after(() => sock.destroy());
    await withTimeout(new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject)), 5000, 'TCP connect');
    const tap = new RecordTap(sock);
    const ws = await connect(url, { ...wsOptions, createConnection: (opts) => tls.connect({ ...opts, socket: tap, rejectUnauthorized: false }) });
    closeAfter(t).push(ws);
    return { ws, tap, sock };
}

/** Sends `data` (string: text, Buffer: binary) and checks the echo is the same message. */
async function echo(ws, data, what = '') {
    const binary = Buffer.isBuffer(data);
    ws.send(data, { binary });
    const back = await nextRaw(ws, 10000);
    const sent = binary ? data : Buffer.from(data, 'utf8');
    assert.equal(back.isBinary, binary, `${what}: came back as ${back.isBinary ? 'binary' : 'text'}`);
    assert.ok(back.data.equals(sent), `${what}: ${back.data.length} bytes came back, not the ${sent.length} sent`);
}

/** Runs `fn` and returns the server's records that arrived during it (`fn` ends when its answer is in). */
async function recordsDuring(tap, fn) {
    const mark = tap.records.length;
    await fn();
    return tap.records.slice(mark);
}

const lens = (records) => records.map((r) => r.len);

/**
 * `openssl s_client -tls1_3 -ciphersuites SUITE -quiet -no_ign_eof -msg` on `port`: stdout is the
 * application data only, the -msg log goes to a file (read with events()), stderr has "KEYUPDATE"
 * per key update command. Killed in t.after when still running.
 *   upgrade(path)      -> writes the HTTP upgrade, checks the 101 and its accept value
 *   command('K'|'k')   -> writes "K\n" alone and waits until s_client has acted on it
 *   sendFrame(opts)    -> a client frame (masked with key 0, so the bytes s_client reads are ours)
 *   nextFrame()        -> the next server frame from stdout
 *   events()           -> [{dir: 'in'|'out', kind, name, hex}] from the -msg log, in order
 */
function sClient(t, port, suite) {
    const dir = makeTempDir('wss-records-sclient-');
    const msgFile = join(dir, 'msg.txt');
    // prettier-ignore
    const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_3', '-ciphersuites', suite,
        '-quiet', '-no_ign_eof', '-msg', '-msgfile', msgFile];
    const proc = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let status;
    const exited = new Promise((resolve) => proc.once('close', (code, signal) => resolve((status = { code, signal }))));
    proc.once('error', (err) => (stderr += `[spawn error] ${err.message}`));
    t.after(() => {
        if (status === undefined) proc.kill('SIGKILL');
        return exited;
    });
    proc.stdin.on('error', () => {}); // EPIPE once it is gone: seen as its exit
    proc.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    let out = Buffer.alloc(0);
    let upgraded = false;
    const parser = new FrameParser();
    const frames = [];
    proc.stdout.on('data', (d) => {
        if (upgraded) frames.push(...parser.push(d));
        else out = Buffer.concat([out, d]);
    });
    const keyUpdates = () => (stderr.match(/^KEYUPDATE$/gm) ?? []).length;
    const sc = {
        proc,
        exited,
        stderr: () => stderr,
        async upgrade(path) {
            const key = crypto.randomBytes(16).toString('base64');
            proc.stdin.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
            await waitUntil(() => out.includes('\r\n\r\n') || status, { timeout: 5000, what: `the 101 on s_client's stdout (stderr: ${stderr})` });
            const end = out.indexOf('\r\n\r\n');
            assert.ok(end > 0, `s_client ended before the 101: ${status && JSON.stringify(status)}, stderr:\n${stderr}`);
            const head = out.subarray(0, end).toString('latin1');
            assert.match(head, /^HTTP\/1\.1 101 /);
            assert.match(head, new RegExp(`^sec-websocket-accept: ${acceptFor(key).replace(/[+/]/g, '\\$&')}$`, 'im'));
            upgraded = true;
            frames.push(...parser.push(out.subarray(end + 4)));
        },
        async command(letter) {
            const before = keyUpdates();
            proc.stdin.write(`${letter}\n`);
            await waitUntil(() => keyUpdates() > before, { timeout: 5000, what: `s_client acting on "${letter}" (stderr: ${stderr})` });
        },
        sendFrame(opts) {
            proc.stdin.write(encodeFrame({ ...opts, maskKey: Buffer.alloc(4) }));
        },
        async nextFrame(timeout = 5000) {
            await waitUntil(() => frames.length > 0, { timeout, what: `a frame on s_client's stdout (stderr: ${stderr})` });
            return frames.shift();
        },
        events() {
            let text = '';
            try {
                text = readFileSync(msgFile, 'latin1');
            } catch {
                /* not written yet */
            }
            const found = [];
            const re = /^(<<<|>>>) [^,\n]+, (\w+) \[length [0-9a-f]+\](?:, ([^\n]*))?\n((?: {4}[^\n]*\n)*)/gm;
            for (const m of text.matchAll(re)) {
                found.push({ dir: m[1] === '<<<' ? 'in' : 'out', kind: m[2], name: m[3] ?? '', hex: (m[4].split('\n')[0] ?? '').trim() });
            }
            return found;
        },
    };
    return sc;
}

const isData = (e, dir) => e.dir === dir && e.kind === 'InnerContent' && e.hex === '17';
const isKeyUpdate = (e, dir) => e.dir === dir && e.kind === 'Handshake' && e.name === 'KeyUpdate';

describe('wss with signaling.tls-takeover ON (the default)', { timeout: 60000 }, () => {
    let srv;
    let echoUrl;
    before(async () => {
        srv = await startServer({ tls: true, config: config() });
        echoUrl = `wss://127.0.0.1:${srv.tlsPort}/echo`;
    });
    after(() => stopClean(srv));

    describe('signaling over wss', () => {
        test('two wss users and a ws user: create_connect, dialing every way, exact answers and called', async (t) => {
            const a = await register(srv.wssUrl, 'wss-a', { name: '张三' });
            const b = await register(srv.wssUrl, 'wss-b', { name: 'Bob "B"' });
            const c = await register(srv.wsUrl, 'ws-c');
            closeAfter(t).push(a, b, c);
            assert.equal(a._socket.getProtocol(), 'TLSv1.3', 'a TLS 1.3 connection: one the server takes over');
            const pairs = [
                [a, 'wss-a', '张三', b, 'wss-b'], // wss -> wss
                [b, 'wss-b', 'Bob "B"', c, 'ws-c'], // wss -> ws
                [c, 'ws-c', '', a, 'wss-a'], // ws -> wss
                [b, 'wss-b', 'Bob "B"', a, 'wss-a'], // wss -> wss, the other way
            ];
            for (const [i, [from, fromId, name, to, toId]] of pairs.entries()) {
                const fields = { field1: `hi ${i} 😀`, field2: 'line\nbreak', field3: '"quoted"' };
                const answer = await request(from, { type: 'dialing', receiverUserId: toId, ...fields, id: i });
                assert.equal(answer, dialingOkText(i, toId, 1), `${fromId} -> ${toId}`);
                assert.equal(await nextText(to), calledText({ sponsorUserId: fromId, sponsorUserName: name, ...fields }), `called at ${toId}`);
            }
            assert.equal(await request(a, { type: 'dialing', receiverUserId: 'nobody-here', id: 'x' }), dialingFailText('peer_offline', 'x'));
            // a second create_connect on a wss connection: the same exact reply
            assert.equal(await request(b, { type: 'create_connect', sponsorUserId: 'wss-b', id: 'again' }), createConnectOkText('again', 'wss-b'));
        });

        test('1,000 dialings pipelined by one wss client: every answer and every called, exact and in order', async (t) => {
            const N = 1000;
            const a = await register(srv.wssUrl, 'pipe-a');
            const b = await register(srv.wssUrl, 'pipe-b');
            closeAfter(t).push(a, b);
            for (let i = 0; i < N; i++) a.send(JSON.stringify({ type: 'dialing', receiverUserId: 'pipe-b', field1: `m${i}`, id: i }));
            for (let i = 0; i < N; i++) assert.equal(await nextText(a, 10000), dialingOkText(i, 'pipe-b', 1), `answer ${i}`);
            for (let i = 0; i < N; i++) assert.equal(await nextText(b, 10000), calledText({ sponsorUserId: 'pipe-a', field1: `m${i}` }), `called ${i}`);
            // nothing more: the next message on each is the answer to a fresh request
            assert.equal(await request(a, { type: 'dialing', receiverUserId: 'pipe-b', id: 'last' }), dialingOkText('last', 'pipe-b', 1));
            assert.equal(await nextText(b), calledText({ sponsorUserId: 'pipe-a' }));
        });
    });

    describe('big messages through the echo endpoint', () => {
        test('1 MiB of text and of binary echoed exactly, in 16 KB records', async (t) => {
            const { ws, tap } = await tapped(t, echoUrl);
            const text = utf8Text(1024 * 1024);
            assert.equal(Buffer.byteLength(text), 1024 * 1024);
            for (const [what, data] of [
                ['text', text],
                ['binary', binaryOf(1024 * 1024)],
            ]) {
                const got = await recordsDuring(tap, () => echo(ws, data, `1 MiB ${what}`));
                // one message of 1 MiB + a 10-byte frame header, sealed in one loop turn: 64 full records and 10 bytes
                assert.deepEqual(lens(got), [...Array(64).fill(MAX_RECORD), 10 + OVERHEAD], `${what}: the records of the echo`);
            }
            // the client's records were many too (Node writes 16 KB records): the server opened them all
            assert.ok(tap.sent.length > 128, `${tap.sent.length} client records`);
        });

        test(`exactly max-message-size (${ECHO_MAX}) passes; one byte more closes with 1009, then close_notify`, async (t) => {
            const { ws, tap } = await tapped(t, echoUrl);
            await echo(ws, binaryOf(ECHO_MAX), 'exactly the limit');
            ws.send(Buffer.alloc(ECHO_MAX + 1, 0x5a));
            const closed = await waitClose(ws, 10000);
            assert.equal(closed.code, 1009, `close ${closed.code} ${closed.reason}`);
            await withTimeout(tap.tcpEnded, 5000, 'the TCP connection to end');
            const closeFrameLen = 2 + 2 + Buffer.byteLength(closed.reason) + OVERHEAD;
            assert.deepEqual(lens(tap.records.slice(-2)), [closeFrameLen, CLOSE_NOTIFY_LEN], 'our close frame, then a close_notify, last');
        });
    });

    describe('every TLS 1.3 suite, and TLS 1.2', () => {
        const SIZES = [0, 1, 125, 126, 1000, 65535, 65536, 100000];
        for (const suite of SUITES) {
            test(`${suite}: echoes of 0 B to 100 KB, text and binary; 10 KB comes back in one record`, async (t) => {
                const { ws, tap } = await tapped(t, echoUrl, { ciphers: suite });
                assert.equal(ws._socket.getProtocol(), 'TLSv1.3');
                assert.equal(ws._socket.getCipher().name, suite, 'the suite asked for');
                for (const n of SIZES) {
                    await echo(ws, utf8Text(n), `text ${n}`);
                    await echo(ws, binaryOf(n), `binary ${n}`);
                }
                const got = await recordsDuring(tap, () => echo(ws, binaryOf(10000), '10 KB'));
                assert.deepEqual(lens(got), [10004 + OVERHEAD], 'one record: the server seals it');
            });
        }

        test('a TLS 1.2 client (maxVersion TLSv1.2) works and stays with h2o (its 1400-byte records)', async (t) => {
            const { ws: tapWs, tap } = await tapped(t, echoUrl, { maxVersion: 'TLSv1.2' });
            assert.equal(tapWs._socket.getProtocol(), 'TLSv1.2');
            const got = await recordsDuring(tap, () => echo(tapWs, binaryOf(10000), '10 KB'));
            assert.ok(got.length > 1 && Math.max(...lens(got)) <= 1500, `h2o's records: ${lens(got)}`);
            // the echoes on a connection of Node's own (before server/sig_uv_read_fix.c, a cut at 8192 bytes through the
            // tap closed h2o's TLS connections: the tests of records in two parts below)
            const ws = await connect(echoUrl, { maxVersion: 'TLSv1.2' });
            closeAfter(t).push(ws);
            assert.equal(ws._socket.getProtocol(), 'TLSv1.2');
            for (const n of [0, 125, 126, 65536, 100000]) {
                await echo(ws, utf8Text(n), `text ${n}`);
                await echo(ws, binaryOf(n), `binary ${n}`);
            }
            ws.close(1000);
            assert.equal((await waitClose(ws)).code, 1000);
        });

        test('signaling.tls-takeover: OFF at path level (/echo-h2o): h2o writes the records, the echo works', async (t) => {
            const url = `wss://127.0.0.1:${srv.tlsPort}/echo-h2o`;
            const { ws: tapWs, tap } = await tapped(t, url);
            assert.equal(tapWs._socket.getProtocol(), 'TLSv1.3');
            const got = await recordsDuring(tap, () => echo(tapWs, binaryOf(10000), '10 KB'));
            assert.ok(got.length > 1 && Math.max(...lens(got)) <= 1500, `h2o's records: ${lens(got)}`);
            const ws = await connect(url);
            closeAfter(t).push(ws);
            await echo(ws, utf8Text(30000), 'text 30 KB');
            await echo(ws, binaryOf(65536), 'binary 64 KB');
        });
    });

    describe('one record per loop turn, seen from the client', () => {
        test('a 10,000-byte echo arrives in ONE application-data record', async (t) => {
            const { ws, tap } = await tapped(t, echoUrl);
            for (let round = 0; round < 3; round++) {
                const got = await recordsDuring(tap, () => echo(ws, 'x'.repeat(10000), `round ${round}`));
                assert.deepEqual(got, [{ type: 23, len: 10004 + OVERHEAD }], `round ${round}`);
            }
        });

        test('five frames arriving in one record are answered in one record', async (t) => {
            const { ws, tap } = await tapped(t, echoUrl);
            // 3.6 KB in all: more than one of h2o's 1400-byte records, far less than one of ours
            const payloads = Array.from({ length: 5 }, (_, i) => `message ${i} `.repeat(70 + i));
            const bytes = Buffer.concat(payloads.map((p) => encodeFrame({ opcode: OP.TEXT, payload: p })));
            const got = await recordsDuring(tap, async () => {
                const sentBefore = tap.sent.length;
                ws._socket.write(bytes); // one TLS write: one record
                for (const [i, p] of payloads.entries()) {
                    const back = await nextRaw(ws);
                    assert.equal(back.data.toString('utf8'), p, `echo ${i}`);
                }
                assert.equal(tap.sent.length - sentBefore, 1, 'the five frames left in one record');
            });
            const answer = payloads.reduce((n, p) => n + (Buffer.byteLength(p) < 126 ? 2 : 4) + Buffer.byteLength(p), 0);
            assert.deepEqual(lens(got), [answer + OVERHEAD], 'the five echoes in one record');
        });
    });

    describe('a record that arrives in two parts', () => {
        test('with takeover: cut after 1, 3, 5, 8192 and 16000 bytes, the server reading each part alone, every echo arrives', async (t) => {
            const { ws, tap } = await tapped(t, echoUrl);
            for (const at of [1, 3, 5, 8192, 16000]) {
                tap.cutNextAt = at;
                await echo(ws, binaryOf(16300), `cut at ${at}`);
            }
            assert.deepEqual({ cuts: tap.cuts, stalls: tap.stalls }, { cuts: 5, stalls: [] }, 'every record was cut, its first part read alone');
        });

        // libh2o 2.2.5's libuv binding (on_read_ssl) takes libuv's nread == 0 (the read after one that filled the
        // buffer returned EAGAIN) for an I/O error: a TLS connection h2o keeps was closed when the bytes that came
        // filled its 8192-byte read buffer exactly and no more followed at once (server/sig_uv_read_fix.c mends it).
        test('TLS 1.2 (h2o): a record cut after exactly 8192 bytes', async (t) => {
            const { ws, tap } = await tapped(t, echoUrl, { maxVersion: 'TLSv1.2' });
            tap.cutNextAt = 8192;
            try {
                await echo(ws, binaryOf(16300), 'cut at 8192');
            } finally {
                for (const stall of tap.stalls) t.diagnostic(stall);
            }
        });

        test('takeover OFF (h2o): a record cut after exactly 8192 bytes', async (t) => {
            const { ws, tap } = await tapped(t, `wss://127.0.0.1:${srv.tlsPort}/echo-h2o`);
            tap.cutNextAt = 8192;
            try {
                await echo(ws, binaryOf(16300), 'cut at 8192');
            } finally {
                for (const stall of tap.stalls) t.diagnostic(stall);
            }
        });
    });

    describe('KeyUpdate (openssl s_client)', () => {
        for (const suite of SUITES) {
            test(`${suite}: K (update_requested) is answered with the server's KeyUpdate; k is not; echoes go on`, async (t) => {
                const sc = sClient(t, srv.tlsPort, suite);
                await sc.upgrade('/echo');
                const commands = ['K', 'K', 'k', 'K', 'k', 'k', 'K'];
                for (const [i, letter] of commands.entries()) {
                    const mark = sc.events().length;
                    await sc.command(letter);
                    const payload = String(i).repeat(100 + i * 1000); // digits: s_client reads no command in them
                    sc.sendFrame({ opcode: OP.TEXT, payload });
                    const f = await sc.nextFrame();
                    assert.equal(f.opcode, OP.TEXT, `round ${i} (${letter})`);
                    assert.equal(f.payload.toString('latin1'), payload, `round ${i} (${letter}): the echo`);
                    // the echo's record is in the log once s_client wrote the echo; a KeyUpdate before it too
                    await waitUntil(() => sc.events().slice(mark).some((e) => isData(e, 'in')), { timeout: 5000, what: 'the echo in the -msg log' });
                    const ev = sc.events().slice(mark);
                    const ours = ev.filter((e) => isKeyUpdate(e, 'out'));
                    assert.deepEqual(ours.map((e) => e.hex), [letter === 'K' ? '18 00 00 01 01' : '18 00 00 01 00'], `round ${i}: s_client's KeyUpdate`);
                    const theirs = ev.filter((e) => isKeyUpdate(e, 'in'));
                    const firstData = ev.findIndex((e) => isData(e, 'in'));
                    if (letter === 'K') {
                        assert.deepEqual(theirs.map((e) => e.hex), ['18 00 00 01 00'], `round ${i}: the server's KeyUpdate, not requesting one`);
                        assert.ok(ev.indexOf(theirs[0]) < firstData, `round ${i}: the server's KeyUpdate comes before its next record`);
                    } else {
                        assert.deepEqual(theirs, [], `round ${i}: no KeyUpdate answers "k"`);
                    }
                }
                // close: our close frame, then a close_notify s_client decrypts
                const mark = sc.events().length;
                sc.sendFrame({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) });
                const f = await sc.nextFrame();
                assert.deepEqual([f.opcode, f.code], [OP.CLOSE, 1000]);
                await waitUntil(() => sc.events().slice(mark).some((e) => e.dir === 'in' && e.kind === 'Alert'), { timeout: 5000, what: 'an alert in the -msg log' });
                const alerts = sc.events().slice(mark).filter((e) => e.dir === 'in' && e.kind === 'Alert');
                assert.deepEqual(alerts.map((e) => e.name), ['warning close_notify']);
                sc.proc.stdin.end();
                await withTimeout(sc.exited, 5000, 's_client exit');
            });
        }
    });

    describe('endings', () => {
        test('close_notify alone (no close frame, TCP left open): the server drops the connection, the user is gone', async (t) => {
            const { ws, tap } = await tapped(t, srv.wssUrl);
            const probe = await register(srv.wssUrl, 'notify-probe');
            closeAfter(t).push(probe);
            assert.equal(await request(ws, { type: 'create_connect', sponsorUserId: 'notify-user', id: 1 }), createConnectOkText(1, 'notify-user'));
            assert.equal(await request(probe, { type: 'dialing', receiverUserId: 'notify-user', id: 2 }), dialingOkText(2, 'notify-user', 1));
            assert.equal(await nextText(ws), calledText({ sponsorUserId: 'notify-probe' }));
            tap.holdFin = true;
            const sentBefore = tap.sent.length;
            ws._socket.end(); // Node's TLS sends close_notify; the tap keeps the TCP connection open
            await waitUntil(() => tap.sent.length > sentBefore, { timeout: 5000, what: 'the close_notify to leave' });
            assert.deepEqual(lens(tap.sent.slice(sentBefore)), [CLOSE_NOTIFY_LEN], 'a close_notify, no close frame');
            assert.equal(tap.sock.writableEnded, false, 'no FIN sent');
            await withTimeout(tap.tcpEnded, 5000, 'the server to close the TCP connection');
            assert.equal(await waitPeerOffline(probe, 'notify-user', { timeout: 3000, id: 3 }), dialingFailText('peer_offline', 3));
        });

        test('a close 1000 is echoed: code 1000, wasClean, then a close_notify; the user is gone', async (t) => {
            const { ws, tap } = await tapped(t, srv.wssUrl);
            const probe = await register(srv.wssUrl, 'close-probe');
            closeAfter(t).push(probe);
            assert.equal(await request(ws, { type: 'create_connect', sponsorUserId: 'close-user', id: 1 }), createConnectOkText(1, 'close-user'));
            const event = new Promise((resolve) => ws.addEventListener('close', (ev) => resolve(ev)));
            ws.close(1000);
            const ev = await withTimeout(event, 5000, 'close event');
            assert.deepEqual({ code: ev.code, wasClean: ev.wasClean }, { code: 1000, wasClean: true });
            await withTimeout(tap.tcpEnded, 5000, 'the TCP connection to end');
            assert.deepEqual(lens(tap.records.slice(-2)), [2 + 2 + OVERHEAD, CLOSE_NOTIFY_LEN], 'the close frame (code 1000), then a close_notify');
            assert.equal(await waitPeerOffline(probe, 'close-user', { timeout: 3000, id: 2 }), dialingFailText('peer_offline', 2));
        });

        const junk = {
            'bytes that are not a record (ASCII)': () => Buffer.from('GET / HTTP/1.1\r\nthis is not TLS\r\n\r\n'),
            'an application_data header announcing 65535 bytes': () => Buffer.from([0x17, 0x03, 0x03, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8]),
            'an application_data record of random bytes': () => Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), crypto.randomBytes(64)]),
        };
        for (const [what, make] of Object.entries(junk)) {
            test(`${what} after the upgrade: that connection is closed, nothing sent back; another goes on`, async (t) => {
                const { ws, tap } = await tapped(t, echoUrl);
                const { ws: other } = await tapped(t, echoUrl);
                await echo(ws, 'before', 'before the junk');
                const mark = tap.records.length;
                tap.sock.write(make()); // under Node's TLS: straight to the server
                const closed = await waitClose(ws, 5000);
                assert.equal(closed.code, 1006, 'the TCP connection ended without a close frame');
                await withTimeout(tap.tcpEnded, 5000, 'the TCP connection to end');
                assert.deepEqual(tap.records.slice(mark), [], 'no record came back (no alert, no close frame)');
                await echo(other, 'still here', 'the other connection');
                await echo(other, binaryOf(50000), 'the other connection, 50 KB');
            });
        }

        test('one bit flipped in a real record: that connection is closed, nothing sent back; another goes on', async (t) => {
            const { ws, tap } = await tapped(t, echoUrl);
            const { ws: other } = await tapped(t, echoUrl);
            await echo(ws, 'before', 'before the flip');
            const mark = tap.records.length;
            let flipped = null;
            tap.mutateNext = (chunk) => {
                flipped = { type: chunk[0], len: chunk.readUInt16BE(3), size: chunk.length };
                chunk[5 + 3] ^= 0x10; // inside the ciphertext of the first record
                return chunk;
            };
            const text = 'this record will not authenticate';
            ws.send(text);
            const closed = await waitClose(ws, 5000);
            const frameLen = 2 + 4 + text.length; // header, mask key, payload
            assert.deepEqual(flipped, { type: 23, len: frameLen + OVERHEAD, size: 5 + frameLen + OVERHEAD }, 'the chunk was the one record of that frame');
            assert.equal(closed.code, 1006, 'the TCP connection ended without a close frame');
            await withTimeout(tap.tcpEnded, 5000, 'the TCP connection to end');
            assert.deepEqual(tap.records.slice(mark), [], 'no record came back (no alert, no close frame)');
            await echo(other, 'still here', 'the other connection');
        });
    });
});

describe('signaling.tls-takeover: OFF (global): h2o keeps the TLS', { timeout: 30000 }, () => {
    let srv;
    let echoUrl;
    before(async () => {
        srv = await startServer({ tls: true, config: config(['signaling.tls-takeover: OFF']) });
        echoUrl = `wss://127.0.0.1:${srv.tlsPort}/echo`;
    });
    after(() => stopClean(srv));

    test('a 10,000-byte echo arrives in several small records (h2o), and echoes of every size work', async (t) => {
        const { ws: tapWs, tap } = await tapped(t, echoUrl);
        assert.equal(tapWs._socket.getProtocol(), 'TLSv1.3');
        const got = await recordsDuring(tap, () => echo(tapWs, 'x'.repeat(10000), '10 KB'));
        assert.ok(got.length > 1 && Math.max(...lens(got)) <= 1500, `h2o's records: ${lens(got)}`);
        for (const suite of SUITES) {
            const ws = await connect(echoUrl, { ciphers: suite });
            closeAfter(t).push(ws);
            assert.equal(ws._socket.getCipher().name, suite);
            for (const n of [0, 1, 126, 65536, 100000]) {
                await echo(ws, utf8Text(n), `${suite} text ${n}`);
                await echo(ws, binaryOf(n), `${suite} binary ${n}`);
            }
            ws.close(1000);
            assert.equal((await waitClose(ws)).code, 1000);
        }
    });

    test('signaling over wss: create_connect and dialing, exact', async (t) => {
        const a = await register(srv.wssUrl, 'off-a');
        const b = await register(srv.wssUrl, 'off-b');
        closeAfter(t).push(a, b);
        assert.equal(await request(a, { type: 'dialing', receiverUserId: 'off-b', field1: 'f', id: 1 }), dialingOkText(1, 'off-b', 1));
        assert.equal(await nextText(b), calledText({ sponsorUserId: 'off-a', field1: 'f' }));
    });
});
