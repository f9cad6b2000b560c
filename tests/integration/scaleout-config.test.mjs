// The scale-out directives under -t: every form of signaling.redis (address, unix socket,
// mapping, shards, sentinel; at global, host and path level) is accepted with no Redis running,
// quickly and without connecting anywhere; bad values are refused with a `FILE:LINE: DIRECTIVE:`
// error on the directive's line.

import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { FAST_REDIS_TIMINGS, redisDirective, requireRedisSupport } from '../lib/redis.mjs';
import { configErrors, how, runConfigTest, signalingConfig, startServer } from '../lib/server.mjs';

// an address nothing listens on (port 1 on loopback is refused); -t must not care
const NOWHERE = '127.0.0.1:1';

/** A config with `lines` at `level` ('global' | 'host' | 'path'). */
function configWith(lines, level = 'global') {
    const opts = level === 'global' ? { global: lines } : level === 'host' ? { host: lines } : { settings: lines };
    return (vars) => signalingConfig(vars, opts);
}

/** Runs -t and asserts it passes quickly. */
async function assertAccepted(config, what, { files } = {}) {
    const started = Date.now();
    const r = await runConfigTest(config, { files, timeout: 5000 });
    const ms = Date.now() - started;
    assert.equal(r.code, 0, `${what}: -t must accept it\n--- config\n${r.config}\n--- ${how(r)}`);
    assert.match(r.stdout, /configuration OK/, `${what}: stdout ${r.stdout}`);
    assert.ok(ms < 3000, `${what}: -t took ${ms} ms (it must not try to connect)`);
    return r;
}

describe('-t accepts every form of signaling.redis, without Redis and without connecting', () => {
    const forms = [
        ['HOST:PORT', NOWHERE],
        ['unix:/path.sock', 'unix:/nonexistent-dir/redis.sock'],
        ['a mapping {host, port, db, prefix}', { host: '127.0.0.1', port: 1, db: 3, prefix: 'myapp' }],
        ['a sequence of addresses (shards)', [NOWHERE, '127.0.0.1:2', 'unix:/nonexistent-dir/r3.sock']],
        ['a sequence of mappings (shards)', [{ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: 2, db: 1 }]],
        ['the sentinel form', { sentinel: { master: 'mymaster', addresses: ['127.0.0.1:26379', '127.0.0.1:26380'] }, prefix: 'sig' }],
    ];
    for (const [name, value] of forms) {
        for (const level of ['global', 'host', 'path']) {
            test(`${name} at ${level} level`, async () => {
                await assertAccepted(configWith(redisDirective(value), level), `${name} at ${level} level`);
            });
        }
    }

    test('flow style on one line: a mapping and a sequence', async () => {
        await assertAccepted(configWith([`signaling.redis: {host: 127.0.0.1, port: 1, prefix: p}`]), 'flow mapping');
        await assertAccepted(configWith([`signaling.redis: [${NOWHERE}, 127.0.0.1:2]`]), 'flow sequence');
    });

    test('password-file (an existing file) in a mapping and in a shard', async () => {
        const files = { 'redis.pass': 'secret\n' };
        const pass = (vars) => join(vars.dir, 'redis.pass');
        await assertAccepted(
            (vars) => signalingConfig(vars, { global: redisDirective({ host: '127.0.0.1', port: 1, 'password-file': pass(vars) }) }),
            'password-file in a mapping',
            { files },
        );
        await assertAccepted(
            (vars) =>
                signalingConfig(vars, {
                    global: redisDirective([{ host: '127.0.0.1', port: 1, 'password-file': pass(vars) }, NOWHERE]),
                }),
            'password-file in a shard',
            { files },
        );
    });

    test('node-id (64 bytes is the most) and every timing, also at path level', async () => {
        const timings = [
            'signaling.redis-connect-timeout: 1000',
            'signaling.redis-result-timeout: 1000',
            'signaling.redis-reconnect-min: 100',
            'signaling.redis-reconnect-max: 5000',
            'signaling.redis-probe-interval: 1000',
        ];
        await assertAccepted(configWith([`signaling.redis: ${NOWHERE}`, `signaling.node-id: ${'n'.repeat(64)}`, ...timings]), 'global');
        await assertAccepted(configWith([`signaling.redis: ${NOWHERE}`, 'signaling.node-id: node-a_1.x', ...FAST_REDIS_TIMINGS], 'path'), 'path');
        await assertAccepted(configWith(['signaling.node-id: node-a'], 'host'), 'node-id alone');
    });

    test('-t does not connect: a listener at the configured address (and at a sentinel address) sees no connection', async (t) => {
        let accepted = 0;
        const listener = net.createServer((sock) => {
            accepted++;
            sock.destroy();
        });
        await new Promise((res) => listener.listen(0, '127.0.0.1', res));
        t.after(() => listener.close());
        const addr = `127.0.0.1:${listener.address().port}`;
        await assertAccepted(configWith([`signaling.redis: ${addr}`]), 'an address that listens');
        await assertAccepted(configWith(redisDirective({ sentinel: { master: 'mymaster', addresses: [addr] } })), 'a sentinel that listens');
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(accepted, 0, `-t connected ${accepted} times to ${addr}`);
    });
});

/** Asserts a `FILE:LINE: ` error on one of the directive's lines that names the directive. */
function assertRefused(r, { directive, lineText }) {
    assert.equal(r.timedOut, false, '-t must not hang');
    assert.doesNotMatch(r.stderr, /unknown (command|directive)/i, `the directives must be known (refused for its value, not its name):\n${r.stderr}`);
    assert.notEqual(r.code, 0, `-t must refuse it; stdout: ${r.stdout}\n--- config\n${r.config}`);
    assert.equal(r.signal, null, `-t ends by itself: ${how(r)}`);
    assert.doesNotMatch(r.stdout, /configuration OK/);
    const errors = configErrors(r.stderr, r.file);
    assert.ok(errors.length > 0, `stderr has no "${r.file}:LINE: " error:\n${r.stderr}`);
    // the directive's first line and the lines of its value (block style) are acceptable
    const lines = r.config.split('\n');
    const first = lines.findIndex((l) => l.includes(lineText)) + 1;
    assert.ok(first > 0, `test bug: "${lineText}" not in the config`);
    const indentOf = (l) => l.length - l.trimStart().length;
    let last = first;
    while (last < lines.length && lines[last].trim() !== '' && indentOf(lines[last]) > indentOf(lines[first - 1])) last++;
    const onLine = errors.filter((e) => e.line >= first && e.line <= last);
    assert.ok(onLine.length > 0, `error line(s) ${errors.map((e) => e.line)} not in ${first}..${last}:\n${r.stderr}`);
    const text = onLine.map((e) => e.text).join('\n');
    assert.ok(text.includes(`${directive}`), `the error names ${directive}:\n${text}`);
    return text;
}

describe('-t refuses bad scale-out values with FILE:LINE: and the directive', () => {
    // refusals are only meaningful once the directives exist (an unknown directive is refused too)
    before(() => requireRedisSupport());
    const bad = [
        ['a port out of range (70000)', ['signaling.redis: 127.0.0.1:70000']],
        ['a port out of range (0)', ['signaling.redis: 127.0.0.1:0']],
        ['a port out of range in a mapping (65536)', ['signaling.redis: {host: 127.0.0.1, port: 65536}']],
        ['a port that is not a number', ['signaling.redis: 127.0.0.1:redis']],
        ['host missing in a mapping', ['signaling.redis: {port: 6379}']],
        ['host missing in HOST:PORT', ['signaling.redis: ":6379"']],
        ['an unknown mapping key', ['signaling.redis: {host: 127.0.0.1, port: 6379, passwd-file: /etc/hostname}']],
        ['an empty sequence', ['signaling.redis: []']],
        ['an empty value', ['signaling.redis: ""']],
        ['a bad shard inside a sequence', ['signaling.redis: [127.0.0.1:6379, 127.0.0.1:99999]']],
        ['a password-file that does not exist', ['signaling.redis: {host: 127.0.0.1, port: 6379, password-file: /nonexistent/redis.pass}']],
        ['a sentinel form without master', ['signaling.redis: {sentinel: {addresses: [127.0.0.1:26379]}}']],
        ['a sentinel form without addresses', ['signaling.redis: {sentinel: {master: mymaster}}']],
    ];
    for (const [name, lines] of bad) {
        test(`signaling.redis: ${name}`, async () => {
            const r = await runConfigTest(configWith(lines), { timeout: 5000 });
            assertRefused(r, { directive: 'signaling.redis', lineText: 'signaling.redis' });
        });
    }

    test('the error names signaling.redis as `FILE:LINE: signaling.redis: ...`', async () => {
        const r = await runConfigTest(configWith(['signaling.redis: 127.0.0.1:70000']), { timeout: 5000 });
        const text = assertRefused(r, { directive: 'signaling.redis', lineText: 'signaling.redis' });
        assert.match(text, new RegExp(`^${r.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: signaling\\.redis: \\S`, 'm'), text);
    });

    test('a bad value in block style points into the directive', async () => {
        const r = await runConfigTest(configWith(redisDirective({ host: '127.0.0.1', port: 6379, colour: 'blue' })), { timeout: 5000 });
        assertRefused(r, { directive: 'signaling.redis', lineText: 'signaling.redis' });
    });

    const badNodeIds = [
        ['with a space', 'signaling.node-id: "node a"'],
        ['longer than 64 bytes', `signaling.node-id: ${'n'.repeat(65)}`],
        ['empty', 'signaling.node-id: ""'],
    ];
    for (const [name, line] of badNodeIds) {
        test(`signaling.node-id ${name}`, async () => {
            const r = await runConfigTest(configWith([`signaling.redis: ${NOWHERE}`, line]), { timeout: 5000 });
            assertRefused(r, { directive: 'signaling.node-id', lineText: 'signaling.node-id' });
        });
    }

    for (const name of ['connect-timeout', 'result-timeout', 'reconnect-min', 'reconnect-max', 'probe-interval']) {
        test(`signaling.redis-${name}: negative`, async () => {
            const r = await runConfigTest(configWith([`signaling.redis: ${NOWHERE}`, `signaling.redis-${name}: -1`]), { timeout: 5000 });
            assertRefused(r, { directive: `signaling.redis-${name}`, lineText: `signaling.redis-${name}` });
        });
    }

    test('a normal start on a bad value exits non-zero at once, with the same error, without listening', async () => {
        const r = await startServer({ config: configWith(['signaling.redis: {port: 6379}']), expectFail: true, exitTimeout: 5000 });
        assert.equal(r.timedOut, false, `the server kept running; stderr:\n${r.stderr}`);
        assert.notEqual(r.code, 0, how(r));
        assert.equal(r.listening, false, 'nothing listens afterwards');
        assertRefused(r, { directive: 'signaling.redis', lineText: 'signaling.redis' });
    });
});
