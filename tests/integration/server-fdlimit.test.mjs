// Open-files limits that hold (issue 12, "limits that hold"): at start the server raises its soft
// limit to the hard one, so a usual soft limit of 1024 no longer drops clients past about a thousand;
// when max-connections cannot be reached under the limit it says so at start with both numbers;
// running out of descriptors is logged, and the server recovers once clients leave.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { serverBinary, signalingConfig, startServer } from '../lib/server.mjs';
import { createConnectOkText, nextText } from '../lib/sigclient.mjs';
import { waitUntil } from '../lib/wait.mjs';
import { closeAll, connect } from '../lib/wsclient.mjs';

/**
 * Starts the server under `prlimit --nofile=SOFT:HARD` (a wrapper script around the binary). In the
 * valgrind pass it wraps the real binary: valgrind keeps descriptors for itself and caps the client's
 * limits, so the kernel limits this test is about cannot be seen through it (memory errors are what
 * that pass checks, and every other test gives it the server under valgrind).
 */
async function startLimited(t, soft, hard, opts) {
    const dir = mkdtempSync(join(tmpdir(), 'h2o-signaling-fdlimit-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const wrapper = join(dir, 'limited');
    const bin = process.env.H2O_SIGNALING_REAL_BIN ?? serverBinary();
    writeFileSync(wrapper, `#!/bin/sh\nexec prlimit --nofile=${soft}:${hard} -- '${bin}' "$@"\n`);
    chmodSync(wrapper, 0o755);
    const saved = process.env.H2O_SIGNALING_BIN;
    process.env.H2O_SIGNALING_BIN = wrapper;
    try {
        const srv = await startServer(opts);
        t.after(() => srv.stop());
        return srv;
    } finally {
        if (saved === undefined) delete process.env.H2O_SIGNALING_BIN;
        else process.env.H2O_SIGNALING_BIN = saved;
    }
}

async function registerOn(url, id) {
    const ws = await connect(url);
    ws.send(JSON.stringify({ type: 'create_connect', sponsorUserId: id, id: 'r' }));
    const reply = await nextText(ws, 10000);
    return { ws, ok: reply === createConnectOkText('r', id), reply };
}

test('soft limit 1024, hard 20000, max-connections 3000: the soft limit is raised and every client registers', { timeout: 180000 }, async (t) => {
    const n = 3000;
    const srv = await startLimited(t, 1024, 20000, { config: (vars) => signalingConfig(vars, { global: ['max-connections: 3000', 'max-connections-per-address: 0'] }) });
    const sockets = [];
    t.after(() => closeAll(sockets));
    for (let i = 0; i < n; i += 100) {
        const batch = await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, k) => registerOn(srv.wsUrl, `fd-${i + k}`)));
        for (const b of batch) {
            sockets.push(b.ws);
            assert.ok(b.ok, `client ${sockets.length} registered: ${b.reply}`);
        }
    }
    assert.equal(sockets.length, n);
    assert.doesNotMatch(srv.stderr(), /open-files limit/, 'no warning: the raised limit holds max-connections');
    assert.ok(srv.alive(), 'still running');
});

test('hard limit 100: a warning at start names both numbers; running out is logged; the server recovers', { timeout: 60000 }, async (t) => {
    const srv = await startLimited(t, 100, 100, { config: (vars) => signalingConfig(vars) });
    assert.match(
        srv.stderr(),
        /max-connections is 16384, but the open-files limit is 100 \(hard limit 100\): about \d+ connections fit; raise the limit/,
        `the warning at start: ${srv.stderr()}`,
    );
    const sockets = [];
    t.after(() => closeAll(sockets));
    let refused = 0;
    for (let i = 0; i < 120 && refused < 3; i++) {
        try {
            sockets.push(await connect(srv.wsUrl, { timeout: 2000 }));
        } catch {
            refused++;
        }
    }
    assert.ok(refused > 0, `some clients are refused once descriptors run out (${sockets.length} connected)`);
    await waitUntil(() => /cannot accept more connections: .*open-files limit 100/.test(srv.stderr()), {
        timeout: 5000,
        what: 'the log line about the limit',
    });
    closeAll(sockets.splice(0));
    await waitUntil(
        async () => {
            try {
                const { ws, ok } = await registerOn(srv.wsUrl, 'after');
                ws.terminate();
                return ok;
            } catch {
                return false;
            }
        },
        { timeout: 10000, interval: 200, what: 'a new client registers once the others left' },
    );
    assert.ok(srv.alive(), 'still running');
});
