// A throw-away TLS identity for tests.
//
//   getTestCert() -> Promise<{cert, key, dir}>: paths of a self-signed P-256
//   certificate and its key, valid for DNS:localhost and IP:127.0.0.1, made with
//   the `openssl` CLI in a fresh temp dir. Made once per process and cached; the
//   dir is removed when the process exits. Clients must not verify it
//   (`rejectUnauthorized: false`).
//   makeHostCert(name, {dir}) -> Promise<{cert, key, fingerprint256}>: a new self-signed
//   certificate for one host name (CN and SAN), for SNI tests; see below.

import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
let cached;

/** Paths of a cached self-signed cert + key for 127.0.0.1/localhost. */
export function getTestCert() {
    cached ??= makeCert().catch((err) => {
        cached = undefined; // let a later caller retry
        throw err;
    });
    return cached;
}

async function makeCert() {
    const dir = mkdtempSync(join(tmpdir(), 'h2o-signaling-tls-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const cert = join(dir, 'server.crt');
    const key = join(dir, 'server.key');
    // prettier-ignore
    const args = [
        'req', '-x509', '-nodes', '-days', '2',
        '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-keyout', key, '-out', cert,
        '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ];
    try {
        await run('openssl', args, { timeout: 20000 });
    } catch (err) {
        throw new Error(`openssl could not make a test certificate: ${err.stderr || err.message}`);
    }
    return { cert, key, dir };
}

/**
 * makeHostCert(name, {dir}) -> Promise<{cert, key, fingerprint256}>: a new self-signed P-256 certificate for the host
 * name `name` (CN and subjectAltName DNS:name; a wildcard such as "*.wild.example" works) made with the `openssl` CLI
 * into `dir` (a test's temp dir, which the caller removes) as NAME.crt and NAME.key ("*" spelled "_"). Not cached:
 * each call makes a new key, so a renewal is a second call. Clients must not verify it.
 */
export async function makeHostCert(name, { dir }) {
    const base = join(dir, name.replace(/\*/g, '_'));
    const cert = `${base}.crt`;
    const key = `${base}.key`;
    // prettier-ignore
    const args = [
        'req', '-x509', '-nodes', '-days', '2',
        '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-keyout', key, '-out', cert,
        '-subj', `/CN=${name}`,
        '-addext', `subjectAltName=DNS:${name}`,
    ];
    try {
        await run('openssl', args, { timeout: 20000 });
    } catch (err) {
        throw new Error(`openssl could not make a certificate for ${name}: ${err.stderr || err.message}`);
    }
    return { cert, key, fingerprint256: new X509Certificate(readFileSync(cert)).fingerprint256 };
}
