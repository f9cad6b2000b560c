// JSON Web Tokens for tests, signed with node:crypto (no dependency).
//
//   b64url(bufOrString)                 -> base64url text without padding
//   signJwt(payload, key, {header, alg, hmac, payloadText, signature})
//       -> "header.payload.signature". `payload` is JSON-encoded unless `payloadText`
//       (raw JSON text, e.g. with an integer too big for a JS number) is given.
//       `header` defaults to {alg: 'HS256', typ: 'JWT'} (a key set to undefined is
//       left out); `alg` overrides header.alg and picks the HMAC: 'HS256' (sha256),
//       'HS384', 'HS512', 'none' (empty signature). `hmac` signs with that HMAC
//       whatever the header says (alg-confusion tokens). `signature` replaces the
//       computed signature (base64url text).
//   nowSec()                            -> the current time in whole seconds
//   userToken(key, sub, {ttl = 300, name, nbf, extra}) -> an HS256 token for `sub`
//       expiring `ttl` seconds from now (exp = nowSec() + ttl).
//   testKey(bytes = 48)                 -> a random printable key of `bytes` bytes.

import crypto from 'node:crypto';

/** base64url (RFC 4648 section 5) without padding. */
export function b64url(data) {
    return Buffer.from(data).toString('base64url');
}

const HMACS = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/** A compact JWS; see the top of this file. */
export function signJwt(payload, key, { header, alg, hmac, payloadText, signature } = {}) {
    const head = { alg: 'HS256', typ: 'JWT', ...header };
    if (alg !== undefined) head.alg = alg;
    const signingInput = `${b64url(JSON.stringify(head))}.${b64url(payloadText ?? JSON.stringify(payload))}`;
    let sig;
    if (signature !== undefined) {
        sig = signature;
    } else if ((hmac ?? head.alg) === 'none') {
        sig = '';
    } else {
        const hash = HMACS[hmac ?? head.alg];
        if (!hash) throw new Error(`signJwt: no HMAC for alg ${hmac ?? head.alg}`);
        sig = crypto.createHmac(hash, key).update(signingInput).digest('base64url');
    }
    return `${signingInput}.${sig}`;
}

/** Seconds since the epoch, rounded down. */
export function nowSec() {
    return Math.floor(Date.now() / 1000);
}

/** An HS256 token for user `sub`, valid for `ttl` seconds. */
export function userToken(key, sub, { ttl = 300, name, nbf, extra = {} } = {}) {
    const payload = { sub, exp: nowSec() + ttl, ...extra };
    if (name !== undefined) payload.name = name;
    if (nbf !== undefined) payload.nbf = nbf;
    return signJwt(payload, key);
}

/** A random key of `bytes` printable bytes (base64url alphabet). */
export function testKey(bytes = 48) {
    return crypto.randomBytes(bytes).toString('base64url').slice(0, bytes);
}
