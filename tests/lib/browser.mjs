// Headless Chromium for the browser tests: Debian's binary (apt-get install -y chromium) or
// CHROMIUM_PATH, and the flags every test launches it with. The real binary, not the
// /usr/bin/chromium wrapper script (which prints a shell error on some hosts).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import { chromium } from 'playwright-core';

import { withTimeout } from './wait.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/lib/chromium/chromium';

/** Headless, no sandbox (root), nothing that talks to the network on its own. */
export const BASE_ARGS = Object.freeze([
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]);

/** Launches Chromium with BASE_ARGS and `args`, within 20 s. */
export async function launchChromium(args = []) {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    return withTimeout(chromium.launch({ executablePath: CHROMIUM, args: [...BASE_ARGS, ...args], timeout: 20000 }), 30000,
        'launching Chromium');
}
