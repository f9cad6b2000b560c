// The h2o side of h2o-signaling: static files over HTTP/1.1 and HTTP/2 (TLS, ALPN h2),
// the reverse proxy to a co-hosted REST API, and the 400 a plain request to the
// signaling endpoint gets. One server (plain + TLS listener) and one upstream serve
// every test of this file.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { h2Request, httpRequest, startUpstream } from '../lib/http.mjs';
import { REPO_ROOT, signalingConfig, startServer } from '../lib/server.mjs';

const INDEX_HTML = '<!doctype html>\n<html><head><title>t</title></head><body>integration index</body></html>\n';
const STYLE_CSS = 'body { color: #123456; }\n';
const DEMO_INDEX = join(REPO_ROOT, 'h2o-conf', 'www', 'index.html');

describe('static files, reverse proxy and the signaling path over HTTP', { timeout: 60000 }, () => {
    let srv;
    let upstream;

    before(async () => {
        upstream = await startUpstream((req, res, body) => {
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify({ upstream: true, method: req.method, url: req.url, body: body.toString('utf8') }));
        });
        srv = await startServer({
            tls: true,
            files: { 'www/index.html': INDEX_HTML, 'www/style.css': STYLE_CSS },
            config: (vars) =>
                signalingConfig(vars, {
                    tls: true,
                    ssl: ['minimum-version: TLSv1.2'],
                    morePaths: `      /api:
        proxy.reverse.url: http://127.0.0.1:${upstream.port}/
      /demo:
        file.dir: ${vars.root}/h2o-conf/www
`,
                    fileDir: `${vars.dir}/www`,
                }),
        });
    });

    after(async () => {
        await srv?.stop();
        await upstream?.close();
    });

    test('index.html is served with text/html over HTTP/1.1', async () => {
        const res = await httpRequest(`${srv.url}/`);
        assert.equal(res.status, 200);
        assert.equal(res.httpVersion, '1.1');
        assert.match(res.headers['content-type'] ?? '', /^text\/html\b/);
        assert.equal(res.text, INDEX_HTML);
    });

    test('a .css file is served with text/css', async () => {
        const res = await httpRequest(`${srv.url}/style.css`);
        assert.equal(res.status, 200);
        assert.match(res.headers['content-type'] ?? '', /^text\/css\b/);
        assert.equal(res.text, STYLE_CSS);
    });

    test('a missing file is a 404', async () => {
        const res = await httpRequest(`${srv.url}/no-such-file.html`);
        assert.equal(res.status, 404);
    });

    test('the demo page h2o-conf/www/index.html is served as text/html', async () => {
        assert.ok(existsSync(DEMO_INDEX), `the demo page ${DEMO_INDEX} is missing`);
        const res = await httpRequest(`${srv.url}/demo/index.html`);
        assert.equal(res.status, 200);
        assert.match(res.headers['content-type'] ?? '', /^text\/html\b/);
        assert.equal(res.text, readFileSync(DEMO_INDEX, 'utf8'));
        const dirIndex = await httpRequest(`${srv.url}/demo/`);
        assert.equal(dirIndex.status, 200);
        assert.equal(dirIndex.text, res.text);
    });

    test('the TLS listener serves HTTP/2 through ALPN h2', async () => {
        const res = await h2Request(srv.httpsUrl, { path: '/' });
        assert.equal(res.alpn, 'h2');
        assert.equal(res.status, 200);
        assert.match(res.headers['content-type'] ?? '', /^text\/html\b/);
        assert.equal(res.text, INDEX_HTML);
        const css = await h2Request(srv.httpsUrl, { path: '/style.css' });
        assert.equal(css.status, 200);
        assert.match(css.headers['content-type'] ?? '', /^text\/css\b/);
    });

    test('the TLS listener also serves HTTP/1.1 to a client without h2', async () => {
        const res = await httpRequest(`${srv.httpsUrl}/style.css`);
        assert.equal(res.status, 200);
        assert.equal(res.httpVersion, '1.1');
        assert.equal(res.text, STYLE_CSS);
    });

    test('/api is reverse-proxied to the upstream with the path forwarded', async () => {
        const before = upstream.requests.length;
        const res = await httpRequest(`${srv.url}/api/users/42?fields=name`);
        assert.equal(res.status, 200);
        assert.match(res.headers['content-type'] ?? '', /^application\/json\b/);
        const body = JSON.parse(res.text);
        assert.deepEqual(body, { upstream: true, method: 'GET', url: '/users/42?fields=name', body: '' });
        assert.equal(upstream.requests.length, before + 1);
    });

    test('/api forwards a POST body, and works over HTTP/2 too', async () => {
        const payload = JSON.stringify({ name: '张三', id: '1122' });
        const res = await httpRequest(`${srv.url}/api/echo`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
            body: payload,
        });
        assert.equal(res.status, 200);
        assert.deepEqual(JSON.parse(res.text), { upstream: true, method: 'POST', url: '/echo', body: payload });

        const h2 = await h2Request(srv.httpsUrl, { path: '/api/h2?x=1' });
        assert.equal(h2.status, 200);
        assert.equal(JSON.parse(h2.text).url, '/h2?x=1');
    });

    test('a plain GET to /WsService is a 400', async () => {
        const res = await httpRequest(`${srv.url}/WsService`);
        assert.equal(res.status, 400);
    });

    test('a POST to /WsService is a 400', async () => {
        const res = await httpRequest(`${srv.url}/WsService`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'content-length': 2 },
            body: '{}',
        });
        assert.equal(res.status, 400);
    });

    test('an HTTP/2 request to /WsService is a 400 (WebSocket needs HTTP/1.1)', async () => {
        const res = await h2Request(srv.httpsUrl, { path: '/WsService' });
        assert.equal(res.alpn, 'h2');
        assert.equal(res.status, 400);
    });

    test('the server is still running after these requests', () => {
        assert.ok(srv.alive(), `the server exited; stderr:\n${srv.stderr()}`);
    });
});

describe('listen forms', { timeout: 30000 }, () => {
    test('`listen: PORT` (scalar, every address) serves on 127.0.0.1', async (t) => {
        const srv = await startServer({
            files: { 'www/index.html': INDEX_HTML },
            config: ({ port, dir }) => `
listen: ${port}
hosts:
  default:
    paths:
      /:
        file.dir: ${dir}/www
`,
        });
        t.after(() => srv.stop());
        const res = await httpRequest(`${srv.url}/`);
        assert.deepEqual([res.status, res.text], [200, INDEX_HTML]);
    });

    test('each host-level listener serves its own host', async (t) => {
        const srv = await startServer({
            files: { 'a/index.html': 'host A\n', 'b/index.html': 'host B\n' },
            config: ({ ports, dir }) => `
hosts:
  "a.example":
    listen: {host: 127.0.0.1, port: ${ports[0]}}
    paths:
      /:
        file.dir: ${dir}/a
  "b.example":
    listen: {host: 127.0.0.1, port: ${ports[1]}}
    paths:
      /:
        file.dir: ${dir}/b
`,
        });
        t.after(() => srv.stop());
        // the Host header names neither: each listener falls back to its own host
        const a = await httpRequest(`http://127.0.0.1:${srv.ports[0]}/`);
        const b = await httpRequest(`http://127.0.0.1:${srv.ports[1]}/`);
        assert.deepEqual([a.status, a.text], [200, 'host A\n']);
        assert.deepEqual([b.status, b.text], [200, 'host B\n']);
        const named = await httpRequest(`http://127.0.0.1:${srv.ports[1]}/`, { headers: { host: 'b.example' } });
        assert.equal(named.text, 'host B\n');
    });
});
