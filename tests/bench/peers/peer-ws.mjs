// Reference peer: the /WsService level-1 protocol (level1.mjs) on Node's `ws`, one process, one event loop.
// Usage: node peer-ws.mjs [PORT]   (or PORT in the environment; default 9002). Listens on 127.0.0.1 and prints
// "peer-ws listening on 127.0.0.1:PORT". A plain HTTP request gets 400; binary frames are closed with 1003, invalid
// UTF-8 with 1007 (ws itself), messages over 64 KiB with 1009 (ws itself, maxPayload).
// TLS_CERT=FILE TLS_KEY=FILE (PEM): the same server on node:https (wss://, Node's TLS defaults: TLS 1.3, session
// tickets), and the line says "listening (TLS)".
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { WebSocket, WebSocketServer } from 'ws';
import { Level1, portFromArgs } from './level1.mjs';

const port = portFromArgs(9002);
const l1 = new Level1({
    send: (ws, text) => ws.send(text),
    isOpen: (ws) => ws.readyState === WebSocket.OPEN,
});

const tls = process.env.TLS_CERT && process.env.TLS_KEY;
const onRequest = (req, res) => {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('WebSocket only\n');
};
const server = tls
    ? https.createServer({ cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) }, onRequest)
    : http.createServer(onRequest);
const wss = new WebSocketServer({ server, path: '/WsService', perMessageDeflate: false, maxPayload: 65536, clientTracking: false });
wss.on('connection', (ws) => {
    const session = l1.open(ws);
    ws.on('message', (data, isBinary) => {
        if (isBinary) ws.close(1003, 'binary frames are not supported');
        else l1.message(session, data.toString());
    });
    ws.on('close', () => l1.close(session));
    ws.on('error', () => {}); // protocol errors close the connection; nothing to add
});
server.listen(port, '127.0.0.1', () => console.log(`peer-ws listening${tls ? ' (TLS)' : ''} on 127.0.0.1:${port}`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
