// RFC 7692 conformance of the echo endpoint with `signaling.compression: ON`: what the
// Autobahn|Testsuite's sections 12 and 13 check, written here because the suite (Python, from
// PyPI) cannot run on this machine. Node `ws` (perMessageDeflate) is the reference peer: it
// compresses what we inflate and inflates what we compress, with its own zlib settings.
//
//   12.x "different payloads": five kinds of payload (JSON, human text in several scripts, HTML,
//        a bitmap-like binary, incompressible binary), messages of 16 bytes to 128 KiB, whole
//        and fragmented in 256-byte frames (each fragment compressed on its own by `ws`, RSV1 on
//        the first only), every one echoed byte for byte, text as text, binary as binary.
//   13.x "different parameters": the same traffic after other offers: client_no_context_takeover,
//        client_max_window_bits 8 and 15, both; server_max_window_bits 9, 11, 15 (answered, and our
//        compressor keeps to the window: a repeat 1.3 KB back is out of reach of a 512-byte one);
//        and a list of several offers on a raw socket (13.7), answered with the first we accept.
// The suite also times each case; here a case only has to finish within the test's timeout.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';

import { connectRaw, OP } from '../lib/rawws.mjs';
import { startServer } from '../lib/server.mjs';
import { closeAfter, connect, nextRaw } from '../lib/wsclient.mjs';

const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072];
const MAX = 262144;

const config = ({ port }) => `
listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /echo:
        websocket.echo: ON
        signaling.compression: ON
        signaling.max-message-size: ${MAX}
`;

/** RFC 7692 7.2.2: the tail appended, inflated (`options`: zlib's, e.g. windowBits). */
function inflate(payload, options = {}) {
    return zlib.inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH, ...options });
}

/** A deterministic byte generator (xorshift), so every run sends the same payloads. */
function generator(seed) {
    let s = seed >>> 0 || 1;
    return () => {
        s ^= s << 13;
        s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5;
        s >>>= 0;
        return s;
    };
}

/** Text of at least `n` bytes from `pieces`, cut at a character boundary to exactly `n` bytes or just under. */
function textFrom(pieces, n, seed) {
    const rnd = generator(seed);
    let out = '';
    while (Buffer.byteLength(out) < n) out += pieces[rnd() % pieces.length];
    let buf = Buffer.from(out).subarray(0, n);
    while (buf.length && (buf[buf.length - 1] & 0xc0) === 0x80) buf = buf.subarray(0, -1); // no cut character
    if (buf.length && buf[buf.length - 1] >= 0xc0) buf = buf.subarray(0, -1);
    return buf;
}

/** The five payload kinds of 12.1 - 12.5, `n` bytes each (text: valid UTF-8, up to 3 bytes shorter). */
const KINDS = {
    json: (n) => {
        const rnd = generator(1);
        const records = [];
        for (let i = 0; i < 64; i++) {
            records.push(
                JSON.stringify({ id: rnd(), user: `user-${rnd() % 5000}`, online: rnd() % 2 === 0, tags: ['a', 'bb', 'ccc'].slice(0, rnd() % 4), score: (rnd() % 100000) / 100 }) + ',',
            );
        }
        return { data: textFrom(records, n, 11), binary: false };
    },
    text: (n) => ({
        data: textFrom(
            [
                'Habe nun, ach! Philosophie, Juristerei und Medizin, und leider auch Theologie durchaus studiert, mit heißem Bemühn. ',
                'Da steh ich nun, ich armer Tor! Und bin so klug als wie zuvor; heiße Magister, heiße Doktor gar. ',
                '用户已建立链接，对方未建立链接。对方意外断开连接。 ',
                'Ελληνικά γράμματα, кириллица и ещё немного текста. ',
                'emoji 😀🎉👋 and a tab\there. ',
            ],
            n,
            12,
        ),
        binary: false,
    }),
    html: (n) => ({
        data: textFrom(
            ['<div class="row"><span class="name">', 'Alice</span>', '<a href="/users/1122">profile</a>', '</div>\n', '<p>Lorem ipsum dolor sit amet, consectetur.</p>\n', '<img src="/a.png" alt="">'],
            n,
            13,
        ),
        binary: false,
    }),
    bitmap: (n) => {
        const rnd = generator(4);
        const buf = Buffer.alloc(n);
        for (let i = 0; i < n; i++) buf[i] = (i % 512 < 256 ? i & 0xff : 0xff - (i & 0xff)) ^ (rnd() % 16 === 0 ? rnd() & 0xff : 0);
        return { data: buf, binary: true };
    },
    noise: (n) => {
        const rnd = generator(5);
        const buf = Buffer.alloc(n);
        for (let i = 0; i < n; i++) buf[i] = rnd() & 0xff;
        return { data: buf, binary: true };
    },
};

/** Sends `data` on a `ws` client, whole or in `frag`-byte fragments, and checks the echo. */
async function echo(ws, { data, binary }, frag, what) {
    if (!frag || data.length <= frag) {
        ws.send(data, { binary });
    } else {
        for (let off = 0; off < data.length; off += frag) {
            ws.send(data.subarray(off, off + frag), { binary, fin: off + frag >= data.length });
        }
    }
    const back = await nextRaw(ws, 10000);
    assert.equal(back.isBinary, binary, `${what}: came back as ${back.isBinary ? 'binary' : 'text'}`);
    assert.ok(back.data.equals(data), `${what}: ${back.data.length} bytes came back, not the ${data.length} sent`);
}

describe('RFC 7692 conformance (Autobahn 12.x and 13.x, written here)', { timeout: 120000 }, () => {
    let srv;
    let url;
    before(async () => {
        srv = await startServer({ threads: 1, config });
        url = `ws://127.0.0.1:${srv.port}/echo`;
    });
    after(() => srv?.stop());

    describe('12.x: payload kinds and sizes', () => {
        for (const [kind, make] of Object.entries(KINDS)) {
            test(`${kind}: 16 B to 128 KiB, whole and in 256-byte fragments, twice each`, async (t) => {
                const ws = await connect(url, { perMessageDeflate: { threshold: 0 } });
                closeAfter(t).push(ws);
                assert.equal(ws.extensions, 'permessage-deflate');
                for (const size of SIZES) {
                    const payload = make(size);
                    for (const frag of [0, 256]) {
                        for (let round = 0; round < 2; round++) await echo(ws, payload, frag, `${kind} ${size} B frag ${frag} #${round}`);
                    }
                }
            });
        }
    });

    describe('13.x: offer parameters', () => {
        const variants = [
            ['13.1 permessage-deflate; client_max_window_bits', {}],
            ['13.2 client_no_context_takeover', { clientNoContextTakeover: true }],
            ['13.3 client_max_window_bits=8', { clientMaxWindowBits: 8 }],
            ['13.4 client_max_window_bits=15', { clientMaxWindowBits: 15 }],
            ['13.5 client_no_context_takeover, client_max_window_bits=8', { clientNoContextTakeover: true, clientMaxWindowBits: 8 }],
            ['13.6 client_no_context_takeover, client_max_window_bits=15', { clientNoContextTakeover: true, clientMaxWindowBits: 15 }],
            ['server_max_window_bits=9', { serverMaxWindowBits: 9 }],
            ['server_max_window_bits=11, server_no_context_takeover', { serverMaxWindowBits: 11, serverNoContextTakeover: true }],
            ['server_max_window_bits=15', { serverMaxWindowBits: 15 }],
        ];
        for (const [name, opts] of variants) {
            test(`${name}: JSON and bitmap, 16 B to 128 KiB, whole and fragmented`, async (t) => {
                const ws = await connect(url, { perMessageDeflate: { threshold: 0, ...opts } });
                closeAfter(t).push(ws);
                assert.equal(ws.extensions, 'permessage-deflate', 'negotiated');
                for (const size of SIZES) {
                    for (const kind of ['json', 'bitmap']) {
                        for (const frag of [0, 256]) await echo(ws, KINDS[kind](size), frag, `${kind} ${size} B frag ${frag}`);
                    }
                }
            });
        }

        test('13.7 several offers: the first acceptable is answered, and traffic flows compressed', async () => {
            const offers =
                'permessage-deflate; client_no_context_takeover; client_max_window_bits=8; server_max_window_bits=8, ' +
                'permessage-deflate; client_no_context_takeover; client_max_window_bits=9, permessage-deflate';
            const raw = await connectRaw({ port: srv.port, path: '/echo', headers: { 'Sec-WebSocket-Extensions': offers } });
            assert.equal(raw.handshake.headers['sec-websocket-extensions'], ANSWER, 'the second offer (the first asks for an 8-bit server window)');
            for (const size of SIZES) {
                const { data } = KINDS.json(size);
                const z = zlib.deflateRawSync(data, { windowBits: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
                raw.send({ opcode: OP.TEXT, rsv1: true, payload: z });
                let f = await raw.nextFrame(10000);
                while (f.opcode === OP.PING) f = await raw.nextFrame(10000);
                const back = f.rsv1 ? inflate(f.payload) : f.payload;
                assert.ok(back.equals(data), `${size} B`);
                assert.equal(f.rsv1, size >= 256, `${size} B: compressed back iff at least compression-min-size`);
            }
            raw.sendClose(1000);
            assert.equal((await raw.waitClose(5000)).code, 1000);
        });

        test('server_max_window_bits is kept to: a repeat out of the window cannot be referenced', async () => {
            // 40 copies of 1336 random base64 bytes: a 32 KiB window finds each copy, a 512-byte one cannot
            const unit = crypto.randomBytes(1002).toString('base64');
            const text = unit.repeat(40);
            const sizes = {};
            for (const bits of [9, 15]) {
                const raw = await connectRaw({
                    port: srv.port,
                    path: '/echo',
                    headers: { 'Sec-WebSocket-Extensions': `permessage-deflate; server_max_window_bits=${bits}` },
                });
                assert.equal(raw.handshake.headers['sec-websocket-extensions'], `${ANSWER}; server_max_window_bits=${bits}`);
                raw.sendText(text);
                const f = await raw.nextFrame(10000);
                assert.equal(f.rsv1, true);
                assert.equal(inflate(f.payload, { windowBits: bits }).toString(), text);
                sizes[bits] = f.payload.length;
                raw.destroy();
            }
            assert.ok(sizes[15] < 3000, `window 15: ${sizes[15]} bytes (each copy found)`);
            assert.ok(sizes[9] > 20 * sizes[15], `window 9: ${sizes[9]} bytes (no copy within reach)`);
        });
    });

    test('the server exits cleanly (no sanitizer or leak report)', async () => {
        const r = await srv.stop();
        assert.equal(r.code, 0, `exit: ${JSON.stringify(r)}\n${srv.stderr()}`);
    });
});
