// The command line and the config file: -v, -h, -t on good and bad configs, a
// normal start on bad configs (must exit non-zero without serving, with a
// `FILE:LINE: ` error naming the directive), and every shipped h2o-conf/*.conf.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { describe, test } from 'node:test';

import {
    REPO_ROOT,
    configErrors,
    how,
    runBinary,
    runConfigTest,
    signalingConfig,
    startServer,
} from '../lib/server.mjs';
import { getTestCert } from '../lib/tls.mjs';

/** A minimal good config: /WsService and a static root. */
const GOOD = ({ port, dir }) => signalingConfig({ port }, { fileDir: dir });

describe('command line', () => {
    test('-v prints a version line naming h2o-signaling and exits 0', async () => {
        const r = await runBinary(['-v']);
        assert.equal(r.code, 0, how(r));
        assert.match(r.stdout, /h2o-signaling/);
        assert.match(r.stdout.trim().split('\n')[0], /\d+\.\d+/, 'the version line has a version number');
    });

    test('-h prints usage naming -c and -t and exits 0', async () => {
        const r = await runBinary(['-h']);
        assert.equal(r.code, 0, how(r));
        assert.match(r.stdout, /usage/i);
        assert.match(r.stdout, /-c\b/);
        assert.match(r.stdout, /-t\b/);
    });

    test('an unknown option exits non-zero with the usage on stderr', async () => {
        const r = await runBinary(['--no-such-option']);
        assert.notEqual(r.code, 0);
        assert.equal(r.timedOut, false);
        assert.match(r.stderr, /usage/i);
    });

    test('-c with a file that does not exist exits non-zero and names the file', async () => {
        const missing = join(tmpdir(), `h2o-signaling-no-such-${process.pid}.conf`);
        for (const args of [['-t', '-c', missing], ['-c', missing]]) {
            const r = await runBinary(args);
            assert.equal(r.timedOut, false, `${args.join(' ')} must not hang`);
            assert.notEqual(r.code, 0, `${args.join(' ')} exits non-zero`);
            assert.ok(r.stderr.includes(missing), `stderr names ${missing}: ${r.stderr}`);
        }
    });
});

describe('-t on good configs', () => {
    test('a minimal config is OK', async () => {
        const r = await runConfigTest(GOOD);
        assert.equal(r.code, 0, how(r));
        assert.match(r.stdout, /configuration OK/);
    });

    test('-t does not bind the listen port', async (t) => {
        // the port is taken by someone else: -t still passes, as it never binds
        const blocker = net.createServer();
        await new Promise((res) => blocker.listen(0, '127.0.0.1', res));
        t.after(() => blocker.close());
        const { port } = blocker.address();
        const r = await runConfigTest(({ dir }) => GOOD({ port, dir }));
        assert.equal(r.code, 0, how(r));
        assert.match(r.stdout, /configuration OK/);
    });

    test('a config with every host-level directive of the contract is OK', async () => {
        const r = await runConfigTest(
            ({ port, tlsPort, ports, dir, cert, key }) => `
num-threads: 2
max-connections: 1024
pid-file: ${dir}/h2o.pid
error-log: ${dir}/error.log
user: nobody
listen: ${port}
listen:
  host: 127.0.0.1
  port: ${tlsPort}
  ssl:
    certificate-file: ${cert}
    key-file: ${key}
    minimum-version: TLSv1.2
hosts:
  "example.com":
    listen: {host: 127.0.0.1, port: ${ports[2]}}
    paths:
      /WsService:
        signaling: ON
      /api:
        proxy.reverse.url: http://127.0.0.1:3000/
      /status:
        status: ON
      /:
        file.dir: ${dir}
        header.add: "X-Test: 1"
`,
            { tls: true, ports: 3 },
        );
        assert.equal(r.code, 0, how(r));
        assert.match(r.stdout, /configuration OK/);
        assert.equal(existsSync(join(r.dir, 'h2o.pid')), false, '-t writes no pid file');
    });
});

/**
 * Bad configs. `config` is a template; `line` is the expected 1-based error line:
 * a number, the text of the line to find in the rendered config, or null when any
 * line of the file will do. `names` must appear in the error line(s).
 */
const BAD = [
    {
        name: 'bad YAML syntax',
        config: ({ port, dir }) => `listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
     broken: [1, 2
`,
        line: 'broken: [1, 2',
        names: [],
    },
    {
        name: 'empty file',
        config: '',
        line: 1,
        names: [],
    },
    {
        name: 'unknown directive',
        config: ({ port, dir }) => `listen: {host: 127.0.0.1, port: ${port}}
no-such-directive: 1
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
`,
        line: 2,
        names: ['no-such-directive'],
    },
    {
        name: 'num-threads inside a path (wrong level)',
        config: ({ port, dir }) => `listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
        num-threads: 2
`,
        line: 'num-threads: 2',
        names: ['num-threads'],
    },
    {
        name: 'missing certificate file',
        config: ({ port, tlsPort, dir, key }) => `listen: {host: 127.0.0.1, port: ${port}}
listen:
  host: 127.0.0.1
  port: ${tlsPort}
  ssl:
    certificate-file: ${dir}/no-such-cert.pem
    key-file: ${key}
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
`,
        tls: true,
        line: { from: 'listen:\n  host', to: 'key-file:' },
        names: ['no-such-cert.pem'],
        anyOf: ['certificate-file', 'listen'],
    },
    {
        name: 'num-threads: 0',
        config: ({ port, dir }) => `num-threads: 0
listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
`,
        line: 1,
        names: ['num-threads'],
    },
    {
        name: 'num-threads that is not a number',
        config: ({ port, dir }) => `listen: {host: 127.0.0.1, port: ${port}}
num-threads: many
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
`,
        line: 2,
        names: ['num-threads'],
    },
    {
        name: 'listen with port 70000',
        config: ({ port, dir }) => `listen: {host: 127.0.0.1, port: ${port}}
listen:
  host: 127.0.0.1
  port: 70000
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
`,
        line: { from: 'listen:\n  host', to: 'port: 70000' },
        names: ['listen', '70000'],
    },
    {
        name: 'no hosts',
        config: ({ port }) => `listen: {host: 127.0.0.1, port: ${port}}
num-threads: 1
`,
        line: null,
        names: ['hosts'],
    },
    {
        name: 'no listen',
        config: ({ dir }) => `num-threads: 1
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
`,
        line: null,
        names: ['listen'],
    },
    {
        name: 'signaling with a value other than ON/OFF',
        config: ({ port, dir }) => `listen: {host: 127.0.0.1, port: ${port}}
hosts:
  default:
    paths:
      /WsService:
        signaling: MAYBE
      /:
        file.dir: ${dir}
`,
        line: 'signaling: MAYBE',
        names: ['signaling'],
    },
];

/** The 1-based line(s) of the rendered `text` that the case's `line` designates. */
function expectedLines(text, spec) {
    const lines = text.split('\n');
    const count = lines.length;
    const all = Array.from({ length: count }, (_, i) => i + 1);
    if (spec === null) return all;
    if (typeof spec === 'number') return [spec];
    const lineOf = (needle, from = 0) => {
        const at = text.indexOf(needle, from);
        assert.ok(at >= 0, `test bug: "${needle}" not in the config`);
        return { line: text.slice(0, at).split('\n').length, at };
    };
    if (typeof spec === 'string') return [lineOf(spec).line];
    const a = lineOf(spec.from);
    const b = lineOf(spec.to, a.at);
    return all.filter((n) => n >= a.line && n <= b.line);
}

/** Asserts stderr has a `FILE:LINE: ` error on an expected line that names what it must. */
function assertConfigError(res, bad) {
    const errors = configErrors(res.stderr, res.file);
    assert.ok(errors.length > 0, `stderr has no "${res.file}:LINE: " error:\n${res.stderr}`);
    const want = expectedLines(res.config, bad.line);
    const onLine = errors.filter((e) => want.includes(e.line));
    assert.ok(onLine.length > 0, `error line(s) ${errors.map((e) => e.line)} not in [${want}]:\n${res.stderr}`);
    const text = onLine.map((e) => e.text).join('\n');
    for (const word of bad.names) assert.ok(text.includes(word), `error does not name "${word}":\n${text}`);
    if (bad.anyOf) {
        assert.ok(
            bad.anyOf.some((w) => text.includes(w)),
            `error names none of ${bad.anyOf.join(', ')}:\n${text}`,
        );
    }
}

describe('bad configs are refused with FILE:LINE: and the directive', () => {
    for (const bad of BAD) {
        const tls = bad.tls ?? false;

        test(`-t: ${bad.name}`, async () => {
            const r = await runConfigTest(bad.config, { tls });
            assert.equal(r.timedOut, false, '-t must not hang');
            assert.notEqual(r.code, 0, `-t exits non-zero; stdout: ${r.stdout}`);
            assert.equal(r.signal, null, `-t ends by itself: ${how(r)}`);
            assert.doesNotMatch(r.stdout, /configuration OK/);
            assertConfigError(r, bad);
        });

        test(`start: ${bad.name}`, async () => {
            const r = await startServer({ config: bad.config, tls, expectFail: true });
            assert.equal(r.timedOut, false, `the server kept running on a bad config; stderr:\n${r.stderr}`);
            assert.notEqual(r.code, 0, 'exits non-zero');
            assert.equal(r.signal, null, `exits by itself: ${how(r)}`);
            assert.equal(r.listening, false, 'nothing listens on the config ports afterwards');
            assertConfigError(r, bad);
        });
    }

    test('start: a listen port already in use exits non-zero, naming the listen line', async (t) => {
        const blocker = net.createServer();
        await new Promise((res) => blocker.listen(0, '127.0.0.1', res));
        t.after(() => blocker.close());
        const busy = blocker.address().port;
        const config = ({ port, dir }) => `listen: {host: 127.0.0.1, port: ${port}}
listen: {host: 127.0.0.1, port: ${busy}}
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}
`;
        const r = await startServer({ config, expectFail: true });
        assert.equal(r.timedOut, false, `the server kept running; stderr:\n${r.stderr}`);
        assert.notEqual(r.code, 0);
        assert.equal(r.listening, false, 'the other listener is not left open');
        const errors = configErrors(r.stderr, r.file);
        assert.ok(
            errors.some((e) => e.line === 2),
            `expected a "${r.file}:2: " error for the busy port:\n${r.stderr}`,
        );
    });
});

/**
 * Shipped configs. A certificate-file/key-file that does not exist (the docs tell
 * the admin to make them) is replaced by a generated one in a temp copy; relative
 * paths are resolved from the repo root, where the README runs the server.
 */
describe('every h2o-conf/*.conf passes -t', () => {
    const confDir = join(REPO_ROOT, 'h2o-conf');
    const confs = existsSync(confDir) ? readdirSync(confDir).filter((f) => f.endsWith('.conf')).sort() : [];

    test('the repo ships configs in h2o-conf/', () => {
        assert.ok(confs.length > 0, `no *.conf in ${confDir}`);
    });

    for (const name of confs) {
        test(`h2o-conf/${name}`, async (t) => {
            const original = join(confDir, name);
            let text = readFileSync(original, 'utf8');
            let file = original;
            const replaced = [];
            const missing = (p) => !existsSync(isAbsolute(p) ? p : resolve(REPO_ROOT, p));
            if (/(certificate|key)-file:/.test(text)) {
                const { cert, key } = await getTestCert();
                const directive = /^(\s*(?:-\s+)?)(certificate-file|key-file):\s*(["']?)([^"'\s#]+)\3/gm;
                text = text.replace(directive, (m, pre, k, q, p) => {
                    if (!missing(p)) return m;
                    replaced.push(`${k} ${p}`);
                    return `${pre}${k}: ${k === 'key-file' ? key : cert}`;
                });
            }
            if (replaced.length) {
                const dir = mkdtempSync(join(tmpdir(), 'h2o-signaling-conf-'));
                t.after(() => rmSync(dir, { recursive: true, force: true }));
                file = join(dir, name);
                writeFileSync(file, text);
                t.diagnostic(`generated stand-ins for ${replaced.join(', ')}`);
            }
            const r = await runBinary(['-t', '-c', file], { cwd: REPO_ROOT });
            assert.equal(r.timedOut, false);
            assert.equal(r.code, 0, `-t failed on ${name}: ${how(r)}`);
            assert.match(r.stdout, /configuration OK/);
        });
    }
});
