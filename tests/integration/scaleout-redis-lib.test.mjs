// tests/lib/redis.mjs on its own: the RESP codec, a real redis-server (PING, SET/GET, errors,
// restart on the same port, pause/resume, stop twice), and a sentinel that follows a forced
// failover to a replica. No h2o-signaling involved.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { decodeReply, encodeCommand, redisCommand, startRedis, startSentinel } from '../lib/redis.mjs';
import { freePorts } from '../lib/server.mjs';
import { waitUntil } from '../lib/wait.mjs';

describe('RESP codec', () => {
    test('encodes a command as an array of bulk strings (bytes, not characters)', () => {
        assert.equal(encodeCommand(['SET', 'k', 'é']).toString('utf8'), '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n');
    });

    test('decodes simple strings, errors, integers, bulk, nil and nested arrays; null when incomplete', () => {
        const wire = Buffer.from('*4\r\n+OK\r\n:-3\r\n*2\r\n$5\r\nhello\r\n$-1\r\n*0\r\n');
        const r = decodeReply(wire);
        assert.deepEqual(r.value, ['OK', -3, ['hello', null], []]);
        assert.equal(r.next, wire.length);
        const err = decodeReply(Buffer.from('-ERR nope\r\n')).value;
        assert.ok(err instanceof Error, 'an error reply decodes to an Error');
        assert.equal(err.redisError, 'ERR nope');
        for (let cut = 0; cut < wire.length; cut++) {
            assert.equal(decodeReply(wire.subarray(0, cut)), null, `a reply cut at byte ${cut} is incomplete`);
        }
        assert.equal(decodeReply(Buffer.from('*-1\r\n')).value, null);
    });
});

describe('startRedis', { timeout: 30000 }, () => {
    test('PING, SET/GET, an error reply rejects, INFO is a bulk string', async (t) => {
        const redis = await startRedis();
        t.after(() => redis.stop());
        assert.equal(redis.addr, `127.0.0.1:${redis.port}`);
        assert.ok(redis.pid > 0);
        assert.equal(await redis.command('PING'), 'PONG');
        assert.equal(await redis.command('SET', 'k', 'v 1'), 'OK');
        assert.equal(await redis.command('GET', 'k'), 'v 1');
        assert.equal(await redis.command('GET', 'missing'), null);
        assert.equal(await redis.command('INCR', 'n'), 1);
        await assert.rejects(redis.command('NO-SUCH-COMMAND'), (err) => {
            assert.match(err.redisError, /unknown command/i, err.message);
            return true;
        });
        assert.match(await redis.command('INFO', 'memory'), /used_memory:\d+/);
        assert.deepEqual(await redis.command('ROLE'), ['master', 0, []]);
        assert.equal(await redis.numsub('nobody'), 0);
        assert.deepEqual(await redis.channels('*'), []);
        assert.equal(await redis.command('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 32mb 8mb 60'), 'OK');
    });

    test('restart() comes back on the same port with a new pid (and no data: no persistence)', async (t) => {
        const redis = await startRedis();
        t.after(() => redis.stop());
        const { port, pid } = redis;
        await redis.command('SET', 'k', 'v');
        await redis.restart();
        assert.equal(redis.port, port);
        assert.notEqual(redis.pid, pid, 'a new process');
        assert.equal(await redis.command('PING'), 'PONG');
        assert.equal(await redis.command('GET', 'k'), null, 'nothing was saved');
        const st = await redis.stop();
        assert.equal(st.timedOut, false, 'SIGTERM is enough');
        assert.equal(redis.alive(), false);
        await assert.rejects(redisCommand(port, ['PING'], { timeout: 1000 }), /ECONNREFUSED|closed/);
        assert.deepEqual(await redis.stop(), { ...(await redis.exited), timedOut: false }, 'stop() twice is harmless');
        await redis.start();
        assert.equal(await redis.command('PING'), 'PONG', 'start() after stop()');
    });

    test('pause() makes commands time out instead of hanging; resume() answers again', async (t) => {
        const redis = await startRedis({ commandTimeout: 300 });
        t.after(() => redis.stop());
        redis.pause();
        const started = Date.now();
        await assert.rejects(redis.command('PING'), /no reply within 300 ms/);
        assert.ok(Date.now() - started < 1500, 'bounded');
        redis.resume();
        assert.equal(await redis.command('PING'), 'PONG');
        // stop() of a paused server still ends it promptly
        redis.pause();
        const st = await redis.stop();
        assert.equal(st.timedOut, false, `a paused redis stops on SIGTERM (+SIGCONT): ${JSON.stringify(st)}`);
    });

    test('password: requirepass is set, command() authenticates, a client without it gets NOAUTH', async (t) => {
        const redis = await startRedis({ password: 'p w' });
        t.after(() => redis.stop());
        assert.equal(await redis.command('PING'), 'PONG');
        await assert.rejects(redisCommand(redis.port, ['PING']), /NOAUTH/);
        await assert.rejects(redisCommand(redis.port, ['PING'], { password: 'wrong' }), /AUTH: WRONGPASS/);
    });

    test('unixsocket: true listens on DIR/redis.sock too', async (t) => {
        const redis = await startRedis({ unixsocket: true });
        t.after(() => redis.stop());
        assert.equal(redis.socket, `${redis.dir}/redis.sock`);
        assert.deepEqual(await redis.command('CONFIG', 'GET', 'unixsocket'), ['unixsocket', redis.socket]);
    });

    test('a given port and extra args are used; kill() ends it at once', async (t) => {
        const [port] = await freePorts(1);
        const redis = await startRedis({ port, args: ['--maxmemory', '12mb'] });
        t.after(() => redis.stop());
        assert.equal(redis.port, port);
        assert.deepEqual(await redis.command('CONFIG', 'GET', 'maxmemory'), ['maxmemory', String(12 * 1024 * 1024)]);
        const st = await redis.kill();
        assert.equal(st.signal, 'SIGKILL');
        assert.equal(redis.alive(), false);
    });
});

describe('startSentinel', { timeout: 40000 }, () => {
    test('a sentinel sees the master; SENTINEL FAILOVER moves it to the replica', async (t) => {
        // no 5 s wait before the first (diskless) sync of the replica
        const master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
        t.after(() => master.stop());
        const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
        t.after(() => replica.stop());
        await waitUntil(async () => (await replica.command('ROLE'))[3] === 'connected', {
            timeout: 5000,
            what: 'the replica to connect to its master',
        });
        const sentinel = await startSentinel({ masterName: 'mymaster', masterPort: master.port });
        t.after(() => sentinel.stop());
        assert.equal(await sentinel.masterAddr(), master.addr);
        // the sentinel learns about the replica from the master's INFO
        await waitUntil(
            async () => {
                const replicas = await sentinel.command('SENTINEL', 'replicas', 'mymaster');
                return replicas.some((r) => {
                    const f = Object.fromEntries(r.flatMap((v, i, a) => (i % 2 ? [] : [[v, a[i + 1]]])));
                    return f.port === String(replica.port) && f.flags === 'slave';
                });
            },
            { timeout: 15000, interval: 100, what: 'the sentinel to list the replica' },
        );
        const started = Date.now();
        await waitUntil(
            async () => {
                try {
                    return (await sentinel.command('SENTINEL', 'FAILOVER', 'mymaster')) === 'OK';
                } catch (err) {
                    if (/INPROG/.test(err.message)) return true;
                    throw err; // e.g. NOGOODSLAVE: retried until the deadline
                }
            },
            { timeout: 5000, interval: 200, what: 'SENTINEL FAILOVER to be accepted' },
        );
        await waitUntil(async () => (await sentinel.masterAddr()) === replica.addr, {
            timeout: 15000,
            interval: 100,
            what: `the sentinel to report ${replica.addr} as the master`,
        });
        assert.equal((await replica.command('ROLE'))[0], 'master');
        t.diagnostic(`failover took ${Date.now() - started} ms`);
    });
});
