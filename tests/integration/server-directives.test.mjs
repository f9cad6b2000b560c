// The reference list of issue 16 (docs/configuration.md, "Stock h2o 2.2.5 directives"): every
// directive stock h2o 2.2.5 knows (tests/fixtures/h2o-2.2.5-directives.txt, extracted from h2o's
// source by tools/h2o-stock-directives) has a row in the doc's table; a row that says "same as h2o"
// is a directive this binary registers (`--list-directives`); any other row names its difference;
// and every registered stock directive, written at a level it belongs to with a valid value, passes
// `-t`, while a bad value fails with FILE:LINE.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { configErrors, how, REPO_ROOT, runBinary, runConfigTest, signalingConfig } from '../lib/server.mjs';

const FIXTURE = join(REPO_ROOT, 'tests', 'fixtures', 'h2o-2.2.5-directives.txt');
const DOC = join(REPO_ROOT, 'docs', 'configuration.md');
const SECTION = '## Stock h2o 2.2.5 directives';
const SAME = 'same as h2o';
const RUN_MS = process.env.VALGRIND_LOG_DIR ? 60000 : 10000; // one `-t`

/** The fixture's names (comment lines start with #). */
function fixtureNames() {
    return readFileSync(FIXTURE, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The rows of the doc's table: Map name -> its last cell (what h2o-signaling does). */
function docRows() {
    const doc = readFileSync(DOC, 'utf8');
    const start = doc.indexOf(`\n${SECTION}\n`);
    assert.ok(start !== -1, `docs/configuration.md has a section "${SECTION}"`);
    const rest = doc.slice(start + SECTION.length + 2);
    const end = rest.search(/^## /m);
    const rows = new Map();
    for (const line of (end === -1 ? rest : rest.slice(0, end)).split('\n')) {
        const m = /^\| `([^`]+)` \|(.*)\|\s*$/.exec(line);
        if (!m) continue;
        const cells = m[2].split(' | ');
        assert.ok(!rows.has(m[1]), `one row for ${m[1]}`);
        rows.set(m[1], cells[cells.length - 1].trim());
    }
    return rows;
}

let registered;
async function registeredNames() {
    if (registered === undefined) {
        const r = await runBinary(['--list-directives']);
        assert.equal(r.code, 0, how(r));
        registered = new Set(r.stdout.split('\n').filter(Boolean));
    }
    return registered;
}

test('the fixture is the list of the doc table, name for name', () => {
    const names = fixtureNames();
    assert.ok(names.length >= 90, `the fixture lists every stock directive (${names.length})`);
    assert.deepEqual([...names].sort(), [...new Set(names)].sort(), 'no name twice in the fixture');
    assert.deepEqual([...docRows().keys()].sort(), [...names].sort());
});

test('--list-directives: sorted names, the server\'s own families included, no file read', async () => {
    const r = await runBinary(['--list-directives', '-c', '/nonexistent/h2o.conf']);
    assert.equal(r.code, 0, how(r));
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.deepEqual(lines, [...lines].sort(), 'sorted');
    for (const name of ['hosts', 'listen', 'signaling', 'signaling.redis', 'crash-handler', 'file.dir']) {
        assert.ok(lines.includes(name), `${name} is listed`);
    }
    assert.equal(r.stderr, '');
});

test('every "same as h2o" row is a directive this binary registers', async () => {
    const names = await registeredNames();
    const missing = [...docRows()].filter(([name, what]) => what.startsWith(SAME) && !names.has(name)).map(([n]) => n);
    assert.deepEqual(missing, [], 'documented as "same as h2o" but not registered (--list-directives)');
});

test('every other row names its difference', async () => {
    const names = await registeredNames();
    for (const [name, what] of docRows()) {
        if (what.startsWith(SAME)) continue;
        const m = /^\*\*(differs|not supported):\*\* (.+)$/.exec(what);
        assert.ok(m, `${name}: a row that is not "${SAME}" starts with **differs:** or **not supported:** (got: ${what})`);
        assert.ok(m[2].length >= 30, `${name}: the difference is spelled out (got: ${m[2]})`);
        if (m[1] === 'differs') assert.ok(names.has(name), `${name}: "differs" is for a directive that is accepted`);
        else assert.ok(!names.has(name), `${name}: "not supported" but registered`);
    }
});

// ---- every registered stock directive at work in `-t` ----
//
// at: 'global' | 'host' (host `default`) | 'path' (a path /t of its own, with `with` lines before, by
// default a file.dir handler) | 'config' (a whole config). ok / bad: the directive's line(s), or a
// function of the template's vars. A bad value must fail with FILE:LINE within the directive's lines.

const fileDir = (v) => [`file.dir: ${v.dir}`];
const fcgi = 'fastcgi.connect: {host: 127.0.0.1, port: 9000, type: tcp}';
const onOff = (name, at = 'global', extra = {}) => ({ at, ok: `${name}: ON`, bad: `${name}: maybe`, ...extra });
const num = (name, value, at = 'global', extra = {}) => ({ at, ok: `${name}: ${value}`, bad: `${name}: abc`, ...extra });
const scalar = (name, value, at = 'global', extra = {}) => ({ at, ok: `${name}: ${value}`, bad: `${name}: [not, a, scalar]`, ...extra });
const header = (name, at) => ({ at, ok: `${name}: "X-Example: 1"`, bad: `${name}: "no-colon-here"` });

const EXAMPLES = {
    'access-log': { at: 'path', ok: (v) => `access-log: ${v.dir}/access.log`, bad: 'access-log: {format: "%h"}' },
    compress: onOff('compress', 'path'),
    'compress-minimum-size': num('compress-minimum-size', 100, 'host'),
    'crash-handler': scalar('crash-handler', '/bin/cat'),
    'crash-handler.wait-pipe-close': onOff('crash-handler.wait-pipe-close'),
    'duration-stats': onOff('duration-stats'),
    'error-doc': { at: 'host', ok: 'error-doc: {status: 404, url: /404.html}', bad: 'error-doc: {status: 200, url: /404.html}' },
    'error-log': scalar('error-log', '/tmp/h2o-signaling-unused-error.log'),
    'error-log.emit-request-errors': onOff('error-log.emit-request-errors', 'path'),
    expires: { at: 'path', ok: 'expires: 1 day', bad: 'expires: soon' },
    'fastcgi.connect': { at: 'path', with: () => [], ok: fcgi, bad: 'fastcgi.connect: {host: 127.0.0.1, port: 9000, type: bogus}' },
    'fastcgi.spawn': { at: 'path', with: () => [], ok: 'fastcgi.spawn: "exec /bin/true"', bad: 'fastcgi.spawn: {user: nobody}' },
    'fastcgi.timeout.io': num('fastcgi.timeout.io', 30000, 'path', { with: () => [fcgi] }),
    'fastcgi.timeout.keepalive': num('fastcgi.timeout.keepalive', 0, 'path', { with: () => [fcgi] }),
    'fastcgi.document_root': scalar('fastcgi.document_root', '/var/www', 'path', { with: () => [fcgi] }),
    'fastcgi.send-delegated-uri': onOff('fastcgi.send-delegated-uri', 'path', { with: () => [fcgi] }),
    'file.custom-handler': {
        at: 'path',
        ok: `file.custom-handler: {extension: .php, ${fcgi}}`,
        bad: `file.custom-handler: {${fcgi}}`,
    },
    'file.dir': { at: 'path', with: () => [], ok: (v) => `file.dir: ${v.dir}`, bad: 'file.dir: [not, a, scalar]' },
    'file.dirlisting': onOff('file.dirlisting', 'path'),
    'file.etag': onOff('file.etag', 'path'),
    'file.file': { at: 'path', with: () => [], ok: (v) => `file.file: ${v.dir}/h2o.conf`, bad: 'file.file: [not, a, scalar]' },
    'file.index': { at: 'path', ok: 'file.index: [index.html, index.htm]', bad: 'file.index: index.html' },
    'file.mime.addtypes': { at: 'global', ok: 'file.mime.addtypes: {application/x-example: .example}', bad: 'file.mime.addtypes: [.example]' },
    'file.mime.removetypes': { at: 'host', ok: 'file.mime.removetypes: [.txt]', bad: 'file.mime.removetypes: .txt' },
    'file.mime.setdefaulttype': scalar('file.mime.setdefaulttype', 'application/octet-stream', 'path'),
    'file.mime.settypes': { at: 'path', ok: 'file.mime.settypes: {text/plain: [.txt, .text]}', bad: 'file.mime.settypes: [.txt]' },
    'file.send-compressed': onOff('file.send-compressed', 'path'),
    'file.send-gzip': onOff('file.send-gzip', 'path'),
    gzip: onOff('gzip', 'host'),
    'handshake-timeout': num('handshake-timeout', 10),
    'header.add': header('header.add', 'path'),
    'header.append': header('header.append', 'host'),
    'header.merge': header('header.merge', 'global'),
    'header.set': header('header.set', 'path'),
    'header.setifempty': header('header.setifempty', 'path'),
    'header.unset': scalar('header.unset', 'X-Example', 'path'),
    hosts: {
        at: 'config',
        ok: (v) => `listen: {host: 127.0.0.1, port: ${v.port}}\nhosts:\n  default:\n    paths:\n      /:\n        file.dir: ${v.dir}\n`,
        bad: (v) => `listen: {host: 127.0.0.1, port: ${v.port}}\nhosts: [default]\n`,
        name: 'hosts',
    },
    'http1-request-timeout': num('http1-request-timeout', 10),
    'http1-upgrade-to-http2': onOff('http1-upgrade-to-http2'),
    // stock h2o takes any other scalar as OFF: a bad value is a bad attribute
    'http2-casper': { at: 'host', ok: 'http2-casper: {capacity-bits: 15, tracking-types: all}', bad: 'http2-casper: {capacity-bits: 16}' },
    'http2-debug-state': { at: 'host', ok: 'http2-debug-state: hpack', bad: 'http2-debug-state: everything' },
    'http2-graceful-shutdown-timeout': num('http2-graceful-shutdown-timeout', 0),
    'http2-idle-timeout': num('http2-idle-timeout', 10),
    'http2-latency-optimization-max-additional-delay': num('http2-latency-optimization-max-additional-delay', 0.1),
    'http2-latency-optimization-max-cwnd': num('http2-latency-optimization-max-cwnd', 65535),
    'http2-latency-optimization-min-rtt': num('http2-latency-optimization-min-rtt', 50),
    'http2-max-concurrent-requests-per-connection': num('http2-max-concurrent-requests-per-connection', 100),
    'http2-push-preload': onOff('http2-push-preload', 'host'),
    'http2-reprioritize-blocking-assets': onOff('http2-reprioritize-blocking-assets'),
    'limit-request-body': num('limit-request-body', 1048576),
    listen: {
        at: 'config',
        ok: (v) => signalingConfig(v),
        bad: (v) => `listen: {host: 127.0.0.1, port: ${v.port}, type: bogus}\nhosts:\n  default:\n    paths:\n      /:\n        file.dir: ${v.dir}\n`,
        name: 'listen',
    },
    'max-connections': { at: 'global', ok: 'max-connections: 100', bad: 'max-connections: 0' },
    'max-delegations': num('max-delegations', 5),
    'num-name-resolution-threads': { at: 'global', ok: 'num-name-resolution-threads: 4', bad: 'num-name-resolution-threads: 0' },
    'num-ocsp-updaters': { at: 'global', ok: 'num-ocsp-updaters: 4', bad: 'num-ocsp-updaters: 0' },
    'num-threads': { at: 'global', ok: 'num-threads: 2', bad: 'num-threads: 0' },
    paths: {
        at: 'config',
        ok: (v) => signalingConfig(v),
        bad: (v) => `listen: {host: 127.0.0.1, port: ${v.port}}\nhosts:\n  default:\n    paths: /\n`,
        name: 'paths',
    },
    'pid-file': scalar('pid-file', '/tmp/h2o-signaling-unused.pid'),
    'proxy.emit-via-header': onOff('proxy.emit-via-header'),
    'proxy.emit-x-forwarded-headers': onOff('proxy.emit-x-forwarded-headers'),
    'proxy.header.add': header('proxy.header.add', 'path'),
    'proxy.header.append': header('proxy.header.append', 'path'),
    'proxy.header.merge': header('proxy.header.merge', 'host'),
    'proxy.header.set': header('proxy.header.set', 'global'),
    'proxy.header.setifempty': header('proxy.header.setifempty', 'path'),
    'proxy.header.unset': scalar('proxy.header.unset', 'X-Example', 'path'),
    'proxy.preserve-host': onOff('proxy.preserve-host', 'path'),
    'proxy.preserve-x-forwarded-proto': onOff('proxy.preserve-x-forwarded-proto'),
    'proxy.proxy-protocol': onOff('proxy.proxy-protocol', 'path'),
    'proxy.reverse.url': { at: 'path', with: () => [], ok: 'proxy.reverse.url: http://127.0.0.1:9/api/', bad: 'proxy.reverse.url: not a url' },
    'proxy.ssl.cafile': { at: 'path', tls: true, ok: (v) => `proxy.ssl.cafile: ${v.cert}`, bad: 'proxy.ssl.cafile: [not, a, scalar]' },
    'proxy.ssl.session-cache': { at: 'path', ok: 'proxy.ssl.session-cache: OFF', bad: 'proxy.ssl.session-cache: sometimes' },
    'proxy.ssl.verify-peer': onOff('proxy.ssl.verify-peer', 'path'),
    'proxy.timeout.io': num('proxy.timeout.io', 30000, 'path'),
    'proxy.timeout.keepalive': num('proxy.timeout.keepalive', 2000, 'host'),
    'proxy.websocket': onOff('proxy.websocket', 'path'),
    'proxy.websocket.timeout': num('proxy.websocket.timeout', 300000, 'path'),
    redirect: { at: 'path', with: () => [], ok: 'redirect: https://example.com/', bad: 'redirect: {status: 301}' },
    reproxy: onOff('reproxy', 'path'),
    'send-server-name': onOff('send-server-name'),
    'server-name': scalar('server-name', 'example/1.0'),
    setenv: { at: 'path', ok: 'setenv: {EXAMPLE: "1"}', bad: 'setenv: EXAMPLE' },
    'ssl-session-resumption': { at: 'global', ok: 'ssl-session-resumption: {mode: all}', bad: 'ssl-session-resumption: {mode: sometimes}' },
    status: { at: 'path', with: () => [], ok: 'status: ON', bad: 'status: maybe' },
    'tcp-fastopen': num('tcp-fastopen', 4096),
    'temp-buffer-path': scalar('temp-buffer-path', '/tmp'),
    'throttle-response': onOff('throttle-response', 'path'),
    unsetenv: { at: 'host', ok: 'unsetenv: [EXAMPLE]', bad: 'unsetenv: {EXAMPLE: 1}' },
    user: { at: 'global', ok: 'user: nobody', bad: 'user: no-such-user-h2o-signaling' },
};

/** The config of `example` with its ok or bad line(s) (`which`), as a template. */
function exampleConfig(example, which) {
    const value = example[which];
    return (v) => {
        const text = typeof value === 'function' ? value(v) : value;
        if (example.at === 'config') return text;
        const lines = text.split('\n');
        if (example.at === 'global') return signalingConfig(v, { global: lines });
        if (example.at === 'host') return signalingConfig(v, { host: lines });
        const body = [...(example.with ?? fileDir)(v), ...lines].map((l) => `        ${l}\n`).join('');
        return signalingConfig(v, { morePaths: `      /t:\n${body}` });
    };
}

test('the examples cover every registered stock directive', async () => {
    const names = await registeredNames();
    const stock = fixtureNames().filter((n) => names.has(n));
    assert.deepEqual(stock.filter((n) => !(n in EXAMPLES)), [], 'registered stock directives without an example');
    assert.deepEqual(Object.keys(EXAMPLES).filter((n) => !fixtureNames().includes(n)), [], 'examples of no stock directive');
});

test('each registered stock directive: a valid value passes -t, a bad one fails with FILE:LINE', { concurrency: 8 }, async (t) => {
    const names = await registeredNames();
    const runs = [];
    for (const name of fixtureNames().filter((n) => names.has(n) && n in EXAMPLES)) {
        const example = EXAMPLES[name];
        runs.push(t.test(name, async () => {
            const opts = { tls: example.tls, timeout: RUN_MS };
            const good = await runConfigTest(exampleConfig(example, 'ok'), opts);
            assert.equal(good.code, 0, `${name}: valid example fails -t\n--- config\n${good.config}\n--- ${how(good)}`);

            const bad = await runConfigTest(exampleConfig(example, 'bad'), opts);
            assert.equal(bad.code, 1, `${name}: bad example passes -t\n--- config\n${bad.config}\n--- ${how(bad)}`);
            // the directive's own line (the bad value's line(s) follow it)
            const lines = bad.config.split('\n');
            const at = lines.findIndex((l) => new RegExp(`^\\s*${name.replace(/\./g, '\\.')}:`).test(l)) + 1;
            assert.ok(at > 0, `${name}: found in the bad config`);
            const errors = configErrors(bad.stderr, bad.file);
            assert.ok(
                errors.some((e) => e.line >= at && e.line <= at + 1),
                `${name}: an error at ${bad.file}:${at} (or the next line); got:\n${bad.stderr}\n--- config\n${bad.config}`,
            );
        }));
    }
    await Promise.all(runs);
});
