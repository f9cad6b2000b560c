// crash-handler and crash-handler.wait-pipe-close (docs/configuration.md, "Stock h2o 2.2.5
// directives"): a server killed by SIGSEGV or SIGABRT prints "received fatal signal N", hands its
// backtrace to the handler program (or to stderr when there is none) and dies by that signal; with
// wait-pipe-close ON it dies only once the handler is done. The default handler
// (share/annotate-backtrace-symbols) on its own; a reload that changes the handler says it waits for
// the next restart.
//
// Under valgrind (`make check-valgrind`) a crash is itself a valgrind report ("Process terminating
// with default action of signal 11") that fails the run: those cases are skipped there.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { how, makeTempDir, REPO_ROOT, signalingConfig, startServer } from '../lib/server.mjs';
import { waitUntil, withTimeout } from '../lib/wait.mjs';

const CRASH_SKIP = process.env.VALGRIND_LOG_DIR
    ? 'a deliberate crash under valgrind is a valgrind error report (and a failed check-valgrind run)'
    : false;
const EXIT_MS = 10000;
const SCRIPT = join(REPO_ROOT, 'share', 'annotate-backtrace-symbols');
// one frame of glibc's backtrace_symbols_fd: FILE(SYMBOL+OFF)[ADDR] or FILE[ADDR]
const FRAME = /^\S[^\n]*\[0x[0-9a-f]+\]/m;
const hasAddr2line = (() => {
    try {
        execFileSync('sh', ['-c', 'command -v addr2line'], { stdio: 'ignore' });
        return true;
    } catch {
        return false;
    }
})();

/** An executable shell script at `dir/name` with `body`. */
function writeScript(dir, name, body) {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return path;
}

/** The config with `global` directive lines (crash-handler...) at the top. */
const config = (global) => (vars) => signalingConfig(vars, { global: global(vars) });

/** Resolves with {code, signal} when the process itself has exited (not waiting for its stdio, which a handler may hold). */
const processExit = (srv) =>
    new Promise((res) => {
        if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) res({ code: srv.proc.exitCode, signal: srv.proc.signalCode });
        else srv.proc.once('exit', (code, signal) => res({ code, signal }));
    });

/** Sends `signal` and waits until the process and its stdio are gone; asserts it died by that signal. */
async function crash(srv, signal) {
    srv.proc.kill(signal);
    const st = await withTimeout(srv.exited, EXIT_MS, `server exit after ${signal}`);
    assert.equal(st.signal, signal, `the server dies by ${signal}; ${how({ ...st, stderr: srv.stderr() })}`);
    return st;
}

for (const [signal, number] of [
    ['SIGSEGV', 11],
    ['SIGABRT', 6],
]) {
    test(`${signal}: the crash handler gets the backtrace, its output goes to stderr, the server dies by ${signal}`, { skip: CRASH_SKIP }, async (t) => {
        const srv = await startServer({
            config: config((v) => [`crash-handler: ${writeScript(v.dir, 'handler', `tee "${v.dir}/backtrace.txt"`)}`]),
        });
        t.after(() => srv.stop('SIGKILL'));
        await crash(srv, signal);
        const stderr = srv.stderr();
        assert.match(stderr, new RegExp(`^received fatal signal ${number}$`, 'm'), stderr);
        const got = readFileSync(join(srv.dir, 'backtrace.txt'), 'utf8');
        assert.match(got, FRAME, `the handler's stdin had the backtrace:\n${got}`);
        // tee copied it to its stdout, which is the server's stderr
        for (const line of got.split('\n').filter(Boolean)) assert.ok(stderr.includes(line), `stderr has ${line}:\n${stderr}`);
    });
}

test('wait-pipe-close ON: the server dies only after the handler has read the whole backtrace and finished', { skip: CRASH_SKIP }, async (t) => {
    // the handler reads to EOF (the server ends the backtrace), takes its time, then publishes the file
    const body = (dir) => `exec >/dev/null 2>&1\ncat > "${dir}/bt.part"\nsleep 0.3\necho END >> "${dir}/bt.part"\nmv "${dir}/bt.part" "${dir}/bt.txt"`;
    const srv = await startServer({
        config: config((v) => [`crash-handler: ${writeScript(v.dir, 'handler', body(v.dir))}`, 'crash-handler.wait-pipe-close: ON']),
    });
    t.after(() => srv.stop('SIGKILL'));
    const exit = processExit(srv);
    srv.proc.kill('SIGSEGV');
    const st = await withTimeout(exit, EXIT_MS, 'server exit after SIGSEGV');
    assert.equal(st.signal, 'SIGSEGV', srv.stderr());
    // at the moment the process is gone, the handler has finished
    const path = join(srv.dir, 'bt.txt');
    assert.ok(existsSync(path), `the handler finished before the server died; stderr:\n${srv.stderr()}`);
    const got = readFileSync(path, 'utf8');
    assert.match(got, FRAME);
    assert.match(got, /\nEND\n$/, got);
});

test('wait-pipe-close OFF (the default): the server dies at once, the handler goes on', { skip: CRASH_SKIP }, async (t) => {
    // the handler waits for the test's go-ahead before it finishes, which comes only after the server died
    const body = (dir) =>
        `exec >/dev/null 2>&1\ncat > "${dir}/bt.part"\nwhile [ ! -e "${dir}/go" ]; do sleep 0.05; done\n` +
        `echo END >> "${dir}/bt.part"\nmv "${dir}/bt.part" "${dir}/bt.txt"`;
    const srv = await startServer({ config: config((v) => [`crash-handler: ${writeScript(v.dir, 'handler', body(v.dir))}`]) });
    t.after(() => srv.stop('SIGKILL'));
    const exit = processExit(srv);
    srv.proc.kill('SIGSEGV');
    const st = await withTimeout(exit, EXIT_MS, 'server exit after SIGSEGV');
    assert.equal(st.signal, 'SIGSEGV', srv.stderr());
    assert.equal(existsSync(join(srv.dir, 'bt.txt')), false, 'the server did not wait for the handler');
    writeFileSync(join(srv.dir, 'go'), '');
    const got = await waitUntil(() => existsSync(join(srv.dir, 'bt.txt')) && readFileSync(join(srv.dir, 'bt.txt'), 'utf8'), {
        what: 'the handler finishing after the server died',
    });
    assert.match(got, FRAME);
    assert.match(got, /\nEND\n$/, got);
});

test('a handler that cannot be run: one line at start, the backtrace on stderr', { skip: CRASH_SKIP }, async (t) => {
    const srv = await startServer({ config: config((v) => [`crash-handler: ${v.dir}/no-such-handler`]) });
    t.after(() => srv.stop('SIGKILL'));
    assert.match(srv.stderr(), /^crash-handler: cannot run `[^`]*no-such-handler`: No such file or directory; backtraces go to stderr$/m);
    await crash(srv, 'SIGSEGV');
    assert.match(srv.stderr(), /^received fatal signal 11$/m);
    assert.match(srv.stderr().split('received fatal signal 11')[1], FRAME, srv.stderr());
});

test('a handler that already exited: the backtrace goes to stderr', { skip: CRASH_SKIP }, async (t) => {
    // it closes its stdin first, then says so
    const srv = await startServer({
        config: config((v) => [`crash-handler: ${writeScript(v.dir, 'handler', `exec 0<&-\ntouch "${v.dir}/gone"`)}`]),
    });
    t.after(() => srv.stop('SIGKILL'));
    await waitUntil(() => existsSync(join(srv.dir, 'gone')), { what: 'the handler closing its stdin' });
    await crash(srv, 'SIGSEGV');
    assert.match(srv.stderr().split('received fatal signal 11')[1] ?? '', FRAME, srv.stderr());
});

test('the default handler (share/annotate-backtrace-symbols) annotates the backtrace on stderr', { skip: CRASH_SKIP }, async (t) => {
    const srv = await startServer({ config: config(() => []) });
    t.after(() => srv.stop('SIGKILL'));
    await crash(srv, 'SIGSEGV');
    const after = srv.stderr().split('received fatal signal 11')[1] ?? '';
    assert.match(after, FRAME, srv.stderr());
    // addr2line names at least the signal handler's own frame (the binary is built with -g)
    if (hasAddr2line) assert.match(after, /\[0x[0-9a-f]+\] \S+ at \S+/, after);
});

test('share/annotate-backtrace-symbols: lines it cannot resolve, and every line without addr2line, pass through', () => {
    const input = 'not a frame\n/no/such/binary(+0x1a2b)[0x55d0c0de1a2b]\n/bin/sh(+0x10)[0x5555]\n';
    const out = execFileSync('/bin/sh', [SCRIPT], { input, encoding: 'utf8' });
    const lines = out.split('\n');
    assert.equal(lines[0], 'not a frame');
    assert.equal(lines[1], '/no/such/binary(+0x1a2b)[0x55d0c0de1a2b]');
    assert.ok(lines[2].startsWith('/bin/sh(+0x10)[0x5555]'), out);
    // a PATH with cat only: no addr2line, no awk
    const bin = makeTempDir('h2o-signaling-nobinutils-');
    mkdirSync(join(bin, 'bin'));
    symlinkSync(execFileSync('sh', ['-c', 'command -v cat'], { encoding: 'utf8' }).trim(), join(bin, 'bin', 'cat'));
    const plain = execFileSync('/bin/sh', [SCRIPT], { input, encoding: 'utf8', env: { PATH: join(bin, 'bin') } });
    assert.equal(plain, input);
});

test('a reload that changes crash-handler keeps the running handler and says the new one waits for a restart', async (t) => {
    const first = (v) => `crash-handler: ${writeScript(v.dir, 'first', `tee "${v.dir}/first.txt"`)}`;
    const srv = await startServer({ config: config((v) => [first(v)]) });
    t.after(() => srv.stop('SIGKILL'));
    const second = writeScript(srv.dir, 'second', `tee "${srv.dir}/second.txt"`);
    const text = readFileSync(srv.file, 'utf8');
    writeFileSync(srv.file, text.replace(/^crash-handler: .*$/m, `crash-handler: ${second}\ncrash-handler.wait-pipe-close: ON`));
    srv.proc.kill('SIGHUP');
    await waitUntil(() => /reloaded/.test(srv.stderr()), { timeout: 20000, what: 'the reload' });
    const stderr = srv.stderr();
    assert.ok(
        stderr.includes(`${srv.file}:1: crash-handler: the new value takes effect at the next restart; \`${srv.dir}/first\` stays until then`),
        stderr,
    );
    assert.ok(stderr.includes(`${srv.file}:2: crash-handler.wait-pipe-close: ON takes effect at the next restart; OFF stays until then`), stderr);
    if (CRASH_SKIP) return; // the rest is a crash
    await crash(srv, 'SIGSEGV');
    assert.match(readFileSync(join(srv.dir, 'first.txt'), 'utf8'), FRAME);
    assert.equal(existsSync(join(srv.dir, 'second.txt')), false);
});
