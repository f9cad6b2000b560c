// Reference peer: the /WsService level-1 protocol (level1.mjs) on uWebSockets.js (npm @trufflesuite/uws-js-unofficial,
// the build that runs on Debian bookworm's glibc). The native binary is loaded directly: the package's own entry falls
// back to a slow pure-JS implementation when the binary does not load, which would make this peer meaningless.
// Usage: node peer-uws.mjs [PORT]   (or PORT in the environment; default 9003). Listens on 127.0.0.1 and prints
// "peer-uws listening on 127.0.0.1:PORT". A plain HTTP request to /WsService gets 400; binary frames are closed
// with 1003; uWS closes on invalid UTF-8 and on messages over maxPayloadLength itself.
// TLS_CERT=FILE TLS_KEY=FILE (PEM): the same app as uWS.SSLApp (wss://, uWS's own OpenSSL defaults: TLS 1.3, session
// tickets; no ssl_prefer_low_memory_usage), and the line says "listening (TLS)".
import { createRequire } from 'node:module';
import { Level1, portFromArgs } from './level1.mjs';

const require = createRequire(import.meta.url);
const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
let uWS;
try {
    uWS = require(`@trufflesuite/uws-js-unofficial/binaries/${binary}`);
} catch (e) {
    console.error(`peer-uws: cannot load the native uWebSockets.js binary ${binary}: ${e.message}`);
    process.exit(1);
}

const port = portFromArgs(9003);
const tls = process.env.TLS_CERT && process.env.TLS_KEY;
const decoder = new TextDecoder();
const l1 = new Level1({
    send: (ws, text) => ws.send(text, false),
    isOpen: (ws) => !ws.getUserData().closed,
});

(tls ? uWS.SSLApp({ cert_file_name: process.env.TLS_CERT, key_file_name: process.env.TLS_KEY }) : uWS.App())
    .ws('/WsService', {
        compression: uWS.DISABLED,
        maxPayloadLength: 65536,
        maxBackpressure: 1024 * 1024,
        idleTimeout: 0,
        open: (ws) => {
            const data = ws.getUserData();
            data.closed = false;
            data.session = l1.open(ws);
        },
        message: (ws, message, isBinary) => {
            if (isBinary) ws.end(1003, 'binary frames are not supported');
            else l1.message(ws.getUserData().session, decoder.decode(message));
        },
        close: (ws) => {
            const data = ws.getUserData();
            data.closed = true; // uWS forbids any use of a closed WebSocket
            l1.close(data.session);
        },
    })
    .get('/WsService', (res) => res.writeStatus('400 Bad Request').end('WebSocket only\n'))
    .any('/*', (res) => res.writeStatus('404 Not Found').end())
    .listen('127.0.0.1', port, (token) => {
        if (!token) {
            console.error(`peer-uws: cannot listen on 127.0.0.1:${port}`);
            process.exit(1);
        }
        console.log(`peer-uws listening${tls ? ' (TLS)' : ''} on 127.0.0.1:${port}`);
    });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
