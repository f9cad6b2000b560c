// Server RSS per idle registered connection over wss:// (TLS=0: ws://), from Node `ws` clients:
//   cd tests && H2O_SIGNALING_BIN=../build/h2o-signaling N=2000 node bench/tls-idle.mjs
// 200 connections open and close first (the allocator's first use), then N stay registered and idle
// for 2 s before RSS is read from /proc. One process, one thread, loopback.
import { signalingConfig, startServer } from '../lib/server.mjs';
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
const N = Number(process.env.N || 2000), TLS = process.env.TLS !== '0';
const srv = await startServer({ tls: true, config: (v) => signalingConfig(v, { tls: true, global: ['max-connections: 50000', 'max-connections-per-address: 0'], settings: ['signaling.rate-limit: 0'] }) });
const rss = () => Number(readFileSync(`/proc/${srv.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
const url = TLS ? `wss://127.0.0.1:${srv.tlsPort}/WsService` : `ws://127.0.0.1:${srv.port}/WsService`;
async function one(i) {
  const ws = new WebSocket(url, { rejectUnauthorized: false, perMessageDeflate: false });
  await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
  ws.send(JSON.stringify({ type: 'create_connect', sponsorUserId: `u${i}`, id: 1 }));
  await new Promise((r) => ws.once('message', r));
  return ws;
}
const warm = []; for (let i = 0; i < 200; i++) warm.push(await one(`w${i}`));
for (const w of warm) w.close(); await new Promise((r) => setTimeout(r, 1000));
const before = rss(); const all = [];
for (let i = 0; i < N; i += 50) all.push(...(await Promise.all(Array.from({ length: 50 }, (_, k) => one(i + k)))));
await new Promise((r) => setTimeout(r, 2000));
const after = rss();
console.log(`${TLS ? 'wss' : 'ws'}: ${N} idle registered: ${((after - before) * 1024 / N / 1024).toFixed(2)} KB per connection (RSS ${before} -> ${after} KB)`);
for (const w of all) w.terminate();
await srv.stop();
