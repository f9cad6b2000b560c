// Minimal HTTP clients for tests, each request on its own connection (no agent
// pooling, so nothing keeps a server connection open after a test).
//
//   httpRequest(url, {method, headers, body, timeout})
//       HTTP/1.1 over http: or https: (certificate not verified) ->
//       {status, headers, body: Buffer, text, httpVersion}
//   h2Request(origin, {path, method, headers, body, timeout})
//       HTTP/2 over TLS with ALPN h2 (certificate not verified) ->
//       {status, headers, body: Buffer, text, alpn}
//   startUpstream(handler) -> {port, url, requests[], close()}: a node http
//       server on 127.0.0.1 for proxy tests; every request is recorded as
//       {method, url, headers, body} before `handler(req, res, body)` runs.

import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';

import { withTimeout } from './wait.mjs';

/** One HTTP/1.1 request on a fresh connection. */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeout = 5000 } = {}) {
    const u = new URL(url);
    const lib = u.protocol === 'https:' ? https : http;
    const done = new Promise((resolve, reject) => {
        const req = lib.request(
            u,
            { method, headers, agent: false, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] },
            (res) => {
                const chunks = [];
                res.on('data', (c) => chunks.push(c));
                res.on('error', reject);
                res.on('end', () => {
                    const buf = Buffer.concat(chunks);
                    resolve({
                        status: res.statusCode,
                        headers: res.headers,
                        body: buf,
                        text: buf.toString('utf8'),
                        httpVersion: res.httpVersion,
                    });
                });
            },
        );
        req.on('error', reject);
        req.setTimeout(timeout, () => req.destroy(new Error(`no response within ${timeout} ms: ${method} ${url}`)));
        req.end(body);
    });
    return withTimeout(done, timeout + 1000, `${method} ${url}`);
}

/** One HTTP/2 request over TLS on a fresh session; the session is closed afterwards. */
export async function h2Request(origin, { path = '/', method = 'GET', headers = {}, body, timeout = 5000 } = {}) {
    const session = http2.connect(origin, { rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    try {
        const done = new Promise((resolve, reject) => {
            session.once('error', reject);
            const req = session.request({ ':path': path, ':method': method, ...headers });
            const chunks = [];
            let resHeaders;
            req.on('response', (h) => (resHeaders = h));
            req.on('data', (c) => chunks.push(c));
            req.on('error', reject);
            req.on('end', () => {
                const buf = Buffer.concat(chunks);
                resolve({
                    status: resHeaders?.[':status'],
                    headers: resHeaders ?? {},
                    body: buf,
                    text: buf.toString('utf8'),
                    alpn: session.alpnProtocol,
                });
            });
            req.end(body);
        });
        return await withTimeout(done, timeout, `h2 ${method} ${origin}${path}`);
    } finally {
        session.destroy();
    }
}

/** A recording HTTP upstream on a free loopback port. */
export async function startUpstream(handler = (req, res) => res.end('ok')) {
    const requests = [];
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const body = Buffer.concat(chunks);
            requests.push({ method: req.method, url: req.url, headers: req.headers, body });
            handler(req, res, body);
        });
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address();
    return {
        port,
        url: `http://127.0.0.1:${port}`,
        requests,
        close: () =>
            new Promise((resolve) => {
                server.closeAllConnections();
                server.close(() => resolve());
            }),
    };
}
