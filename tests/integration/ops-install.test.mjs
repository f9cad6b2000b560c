// Install (issue 12, item 3; docs/operations.md#install): `make install DESTDIR=<tmp>` from the build
// tree of the binary under test gives the documented tree; the installed binary -t's the installed
// config and serves the installed demo page with it; systemd-analyze verify accepts the unit; the man
// page renders without warnings; `make uninstall` takes everything away again but a config the admin
// changed.
//
// The installed files name their real (configured) paths, /usr/local/... by default, which do not
// exist outside DESTDIR: the config is checked on a copy whose installed paths are moved under DESTDIR
// (every path it names must then exist), and the unit the same way. The .deb check in CI
// (tools/check-deb) runs them at their real paths.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { before, test } from 'node:test';
import { promisify } from 'node:util';

import { freePorts, isListening, makeTempDir, REPO_ROOT, serverBinary, spawnChild } from '../lib/server.mjs';
import { waitUntil } from '../lib/wait.mjs';

const run = promisify(execFile);

// The configured build tree the binary under test was built in (the valgrind pass wraps the real one).
const BUILD_DIR = dirname(process.env.H2O_SIGNALING_REAL_BIN ?? serverBinary());
const SKIP = existsSync(join(BUILD_DIR, 'Makefile'))
    ? false
    : `${BUILD_DIR} has no Makefile: the binary under test is not in a configured build tree, so there is nothing to install`;

/** Which of `names` is on PATH (the first found), or undefined. */
async function which(...names) {
    for (const name of names) {
        try {
            await run('sh', ['-c', `command -v ${name}`]);
            return name;
        } catch {
            /* not there */
        }
    }
    return undefined;
}

/** `make TARGET...` in the build tree; resolves with {stdout, stderr}, rejects with make's output. */
async function make(...args) {
    return run('make', ['-C', BUILD_DIR, '--no-print-directory', ...args], { timeout: 180000, maxBuffer: 16 << 20 });
}

/** Every file (and symlink) under `dir`, as paths relative to it, sorted. */
function filesUnder(dir) {
    const out = [];
    const walk = (d) => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
            const p = join(d, e.name);
            if (e.isDirectory()) walk(p);
            else out.push(relative(dir, p));
        }
    };
    if (existsSync(dir)) walk(dir);
    return out.sort();
}

const isExecutable = (path) => {
    try {
        accessSync(path, constants.X_OK);
        return statSync(path).isFile();
    } catch {
        return false;
    }
};

let dest; // DESTDIR
let dirs; // the configured installation directories, from the Makefile
const at = (dir, ...rest) => join(dest, dirs[dir], ...rest); // a file of the install, under DESTDIR

/** The installed file's text with every configured install path moved under DESTDIR. */
function underDestdir(text) {
    return text.replaceAll(dirs.prefix + '/', join(dest, dirs.prefix) + '/');
}

before(async () => {
    if (SKIP) return;
    const tmp = makeTempDir('h2o-signaling-install-');
    dest = join(tmp, 'dest');
    // make prints the configured directories, expanded (a second makefile read after the build tree's)
    const printer = join(tmp, 'print-dirs.mk');
    const names = ['prefix', 'bindir', 'sysconfdir', 'pkgdatadir', 'docdir', 'man8dir', 'systemdsystemunitdir', 'sysusersdir'];
    writeFileSync(printer, `print-install-dirs:\n${names.map((n) => `\t@echo '${n}=$(${n})'\n`).join('')}`);
    const { stdout } = await make('-s', '-f', 'Makefile', '-f', printer, 'print-install-dirs');
    dirs = Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    for (const n of names.filter((n) => n !== 'systemdsystemunitdir' && n !== 'sysusersdir')) {
        assert.match(dirs[n] ?? '', /^\//, `make's ${n} is an absolute path`);
    }
    await make('install', `DESTDIR=${dest}`);
});

test('make install DESTDIR=... gives the documented tree', { skip: SKIP }, () => {
    assert.ok(isExecutable(at('bindir', 'h2o-signaling')), '$(bindir)/h2o-signaling is an executable');

    const conf = at('sysconfdir', 'h2o-signaling', 'h2o.conf');
    assert.ok(existsSync(conf), '$(sysconfdir)/h2o-signaling/h2o.conf');
    const text = readFileSync(conf, 'utf8');
    assert.match(text, new RegExp(`^\\s*file\\.dir: ${dirs.pkgdatadir}/www$`, 'm'), 'the config serves the installed demo page');
    assert.doesNotMatch(text, /@[a-zA-Z_]+@/, 'no placeholder left in the config');
    assert.doesNotMatch(text, /^user:/m, 'no `user:` (the unit runs the server as its user)');

    // the demo page, every helper of share/, the README and every docs/*.md: all of the tree's
    assert.deepEqual(filesUnder(at('pkgdatadir', 'www')), filesUnder(join(REPO_ROOT, 'h2o-conf', 'www')), '$(pkgdatadir)/www is h2o-conf/www');
    for (const script of readdirSync(join(REPO_ROOT, 'share'))) {
        assert.ok(isExecutable(at('pkgdatadir', script)), `$(pkgdatadir)/${script} is an executable`);
    }
    assert.ok(existsSync(at('docdir', 'README.md')), '$(docdir)/README.md');
    const docs = readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md'));
    assert.deepEqual(filesUnder(at('docdir', 'docs')), docs.sort(), '$(docdir)/docs holds every docs/*.md (Makefile.am: dist_docs_DATA)');

    const man = at('man8dir', 'h2o-signaling.8');
    assert.ok(existsSync(man), '$(man8dir)/h2o-signaling.8');
    assert.doesNotMatch(readFileSync(man, 'utf8'), /@[a-zA-Z_]+@/, 'no placeholder left in the man page');

    if (dirs.systemdsystemunitdir === 'no') return; // configured --without-systemdsystemunitdir
    const unit = readFileSync(at('systemdsystemunitdir', 'h2o-signaling.service'), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=${dirs.bindir}/h2o-signaling -c ${dirs.sysconfdir}/h2o-signaling/h2o.conf$`, 'm'));
    assert.match(unit, new RegExp(`^ExecStartPre=${dirs.bindir}/h2o-signaling -t -c `, 'm'), 'the unit checks the config before starting');
    assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, 'reload sends SIGHUP');
    assert.match(unit, /^LimitNOFILE=\d{6,}$/m, 'LimitNOFILE is set high');
    assert.match(unit, /^User=h2o-signaling$/m, 'the unit runs as the unprivileged user');
    assert.doesNotMatch(unit, /@[a-zA-Z_]+@/, 'no placeholder left in the unit');
    const sysusers = readFileSync(at('sysusersdir', 'h2o-signaling.conf'), 'utf8');
    assert.match(sysusers, /^u h2o-signaling /m, 'sysusers.d creates the user the unit names');
});

test('the installed binary -t\'s the installed config (its paths under DESTDIR), and serves the demo page with it', { skip: SKIP }, async (t) => {
    const bin = at('bindir', 'h2o-signaling');
    const conf = underDestdir(readFileSync(at('sysconfdir', 'h2o-signaling', 'h2o.conf'), 'utf8'));
    for (const m of conf.matchAll(/^\s*file\.dir:\s*(\S+)\s*$/gm)) {
        assert.ok(statSync(m[1]).isDirectory(), `file.dir ${m[1]} is installed`);
    }
    const file = join(dest, 'h2o.conf.test');
    writeFileSync(file, conf);
    const checked = await run(bin, ['-t', '-c', file], { timeout: 10000 }).catch((e) => e);
    assert.equal(checked.code ?? 0, 0, `-t failed:\n${checked.stdout}${checked.stderr}`);
    assert.match(checked.stdout, /configuration OK/);

    // started on a free port, it serves the installed index.html
    const [port] = await freePorts(1);
    const served = join(dest, 'h2o.conf.serve');
    writeFileSync(served, conf.replace(/^(\s*port:\s*)\d+\s*$/m, `$1${port}`));
    const server = spawnChild(bin, ['-c', served], { cwd: dest });
    t.after(async () => {
        server.proc.kill('SIGTERM');
        await server.exited;
    });
    await waitUntil(() => isListening(port, 200), { timeout: 10000, what: `the installed server on ${port}` });
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), readFileSync(join(REPO_ROOT, 'h2o-conf', 'www', 'index.html'), 'utf8'));

    // an installed binary runs the installed helpers, never the source tree's (handler/server/sig_share.h):
    // outside DESTDIR $(pkgdatadir) is usually absent, and then the crash handler says which path it tried
    if (!existsSync(join(dirs.pkgdatadir, 'annotate-backtrace-symbols'))) {
        await waitUntil(() => /crash-handler: cannot run/.test(server.stderr()), { timeout: 5000, what: 'the crash-handler line' });
        assert.ok(server.stderr().includes(`\`${dirs.pkgdatadir}/annotate-backtrace-symbols\``), server.stderr());
    }
    assert.ok(!server.stderr().includes(join(REPO_ROOT, 'share')), `the installed binary uses no file of the source tree:\n${server.stderr()}`);
});

test('systemd-analyze verify accepts the installed unit', { skip: SKIP }, async (t) => {
    if (dirs.systemdsystemunitdir === 'no') return t.skip('configured --without-systemdsystemunitdir');
    if (!(await which('systemd-analyze'))) return t.skip('systemd-analyze is not installed (apt-get install systemd)');
    // a copy under its own name whose commands are the DESTDIR's; man: pages from the DESTDIR too
    const dir = join(dest, 'unit-check');
    await run('mkdir', ['-p', dir]);
    const unit = join(dir, 'h2o-signaling.service');
    writeFileSync(unit, underDestdir(readFileSync(at('systemdsystemunitdir', 'h2o-signaling.service'), 'utf8')));
    const r = await run('systemd-analyze', ['verify', unit], {
        env: { ...process.env, MANPATH: join(dest, dirs.prefix, 'share', 'man'), SYSTEMD_LOG_COLOR: '0' },
        timeout: 30000,
    }).catch((e) => e);
    assert.equal(r.code ?? 0, 0, `systemd-analyze verify failed:\n${r.stdout}${r.stderr}`);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'systemd-analyze verify has nothing to say');
});

test('the man page renders without warnings', { skip: SKIP }, async (t) => {
    const man = at('man8dir', 'h2o-signaling.8');
    const tool = await which('groff', 'mandoc');
    if (!tool) return t.skip('neither groff nor mandoc is installed (apt-get install groff-base)');
    const args = tool === 'groff' ? ['-man', '-Tutf8', '-ww', '-z', man] : ['-T', 'lint', '-W', 'warning', man];
    const r = await run(tool, args, { env: { ...process.env, LC_ALL: 'C.UTF-8' } }).catch((e) => e);
    assert.equal(r.code ?? 0, 0, `${tool} failed:\n${r.stderr}`);
    assert.equal(r.stderr, '', `${tool} warns`);
    const text = (await run(tool, tool === 'groff' ? ['-man', '-Tutf8', man] : ['-T', 'utf8', man])).stdout.replace(/.\x08/g, '');
    for (const section of ['NAME', 'SYNOPSIS', 'OPTIONS', 'SIGNALS', 'FILES']) assert.match(text, new RegExp(`^${section}$`, 'm'));
    assert.ok(text.includes(`${dirs.sysconfdir}/h2o-signaling/h2o.conf`), 'the page names the installed config');
});

test('make uninstall removes what make install put, but keeps a config the admin changed', { skip: SKIP }, async () => {
    const conf = at('sysconfdir', 'h2o-signaling', 'h2o.conf');
    for (const f of ['h2o.conf.test', 'h2o.conf.serve', 'unit-check/h2o-signaling.service']) await run('rm', ['-f', join(dest, f)]);
    await make('uninstall', `DESTDIR=${dest}`);
    assert.deepEqual(filesUnder(dest), [], 'nothing is left after make uninstall');

    await make('install', `DESTDIR=${dest}`);
    writeFileSync(conf, readFileSync(conf, 'utf8') + '# the admin was here\n');
    const again = await make('install', `DESTDIR=${dest}`);
    assert.match(again.stdout, /keeping .*h2o\.conf \(it was changed\)/, 'make install says it keeps the changed config');
    assert.match(readFileSync(conf, 'utf8'), /# the admin was here/, 'a second make install keeps the changed config');
    const removed = await make('uninstall', `DESTDIR=${dest}`);
    assert.match(removed.stdout, /keeping .*h2o\.conf \(it was changed\)/);
    assert.deepEqual(filesUnder(dest), [relative(dest, conf)], 'only the changed config is left');
});
