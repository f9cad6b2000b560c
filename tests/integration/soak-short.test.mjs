// The soak (tests/soak/soak.mjs) for 20 seconds, so that it is part of the suite: churn, routed
// traffic, slow readers, abrupt disconnects and malformed input at once against a 2-thread server,
// then its six checks (exactly-once delivery to online users, one answer per dialing, no ghost
// registrations, RSS within 10%, clean SIGTERM exit, bounded operations and right close codes).
// The soak prints its figures; they are passed on here as diagnostics, and any failed check fails
// this test with the soak's whole report. The 60-second CI version: node tests/soak/soak.mjs --seconds 60
//
// Under `make check-valgrind` (VALGRIND_LOG_DIR set) the server runs many times slower, so the load is
// scaled down (rates and worker counts, never the checks); the soak itself reports check 4 (RSS) as
// not applicable there, since RSS is then valgrind's.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SOAK = join(dirname(fileURLToPath(import.meta.url)), '..', 'soak', 'soak.mjs');
const SECONDS = 20;
const UNDER_VALGRIND = Boolean(process.env.VALGRIND_LOG_DIR);
const ARGS = [
    '--seconds',
    String(SECONDS),
    ...(UNDER_VALGRIND
        ? ['--rate', '100', '--churn', '4', '--slow-readers', '1', '--flood-rate', '300', '--users', '40']
        : []),
];
// the soak's own watchdog ends it after warm-up + run + 180 s; this bound is only a backstop
const BOUND_MS = (SECONDS + 5 + 240) * 1000;

/** Runs the soak to completion (bounded); resolves with {code, signal, output}. */
function runSoak(args) {
    return new Promise((resolve) => {
        const child = spawn(process.execPath, [SOAK, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.setEncoding('utf8').on('data', (d) => (output += d));
        child.stderr.setEncoding('utf8').on('data', (d) => (output += d));
        const timer = setTimeout(() => {
            output += `\n[soak-short] no exit within ${BOUND_MS} ms: killed`;
            child.kill('SIGKILL');
        }, BOUND_MS);
        child.on('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, output });
        });
    });
}

test(`soak for ${SECONDS} s: every check holds`, { timeout: BOUND_MS + 10000 }, async (t) => {
    const { code, signal, output } = await runSoak(ARGS);
    const report = output.slice(output.indexOf('==== soak summary ===='));
    for (const line of report.split('\n')) if (line.trim()) t.diagnostic(line);
    assert.equal(signal, null, `the soak was killed (${signal}):\n${output}`);
    assert.match(output, /==== assertions ====/, `the soak did not get to its checks:\n${output}`);
    assert.equal(code, 0, `the soak failed (exit ${code}):\n${report || output}`);
    assert.match(output, /soak: every assertion held/);
});
