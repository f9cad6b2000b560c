// Bounded waiting: the only way tests in this tree wait for anything.
//
//   withTimeout(promise, ms, what)  -> the promise's value, or rejects with
//                                      "timed out after MS ms: WHAT"
//   waitUntil(check, {timeout, interval, what})
//                                   -> polls `check()` (sync or async) until it
//                                      returns a truthy value, which is returned;
//                                      rejects after `timeout` ms with the last
//                                      error thrown by `check` in the message.
//   onceEvent(emitter, name, ms)    -> resolves with the event's arguments array,
//                                      rejects on 'error' or after `ms`.
//   waitForHandoff(waiters, ms, what, fields)
//                                   -> the next value a producer hands to a waiter
//                                      it takes off `waiters`; rejects after `ms`.
//
// A poll loop is a condition wait with a deadline, not a sleep-for-luck: every
// caller states what it waits for and how long it is willing to wait.

import { setTimeout as delay } from 'node:timers/promises';

/** Resolves like `promise`, or rejects after `ms` ms with a message naming `what`. */
export function withTimeout(promise, ms, what = 'operation') {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Calls `check` every `interval` ms until it returns a truthy value (returned) or
 * `timeout` ms have passed (rejects; the message names `what` and the last error).
 */
export async function waitUntil(check, { timeout = 5000, interval = 20, what = 'condition' } = {}) {
    const deadline = Date.now() + timeout;
    let lastError;
    for (;;) {
        try {
            const value = await check();
            if (value) return value;
        } catch (err) {
            lastError = err;
        }
        if (Date.now() >= deadline) {
            const detail = lastError ? ` (last error: ${lastError.message})` : '';
            throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail}`);
        }
        await delay(interval);
    }
}

/** Resolves with the arguments of the next `name` event; rejects on 'error' or after `ms`. */
export function onceEvent(emitter, name, ms = 5000) {
    let onEvent, onError;
    const settled = new Promise((resolve, reject) => {
        onEvent = (...args) => resolve(args);
        onError = (err) => reject(err);
        emitter.on(name, onEvent);
        if (name !== 'error') emitter.on('error', onError);
    });
    return withTimeout(settled, ms, `event '${name}'`).finally(() => {
        emitter.off(name, onEvent);
        emitter.off('error', onError);
    });
}

/**
 * Waits for the next value a producer hands out: adds a waiter `{...fields, resolve, reject}` to
 * the list `waiters` (the producer takes it off and calls resolve or reject), and rejects after
 * `ms` ms naming `what`, taking the waiter off the list then so that no later value goes to it.
 */
export function waitForHandoff(waiters, ms, what, fields = {}) {
    let waiter;
    const handedOver = new Promise((resolve, reject) => {
        waiter = { ...fields, resolve, reject };
        waiters.push(waiter);
    });
    return withTimeout(handedOver, ms, what).catch((err) => {
        const i = waiters.indexOf(waiter);
        if (i >= 0) waiters.splice(i, 1);
        throw err;
    });
}
