// signaling.js: a client for h2o-signaling's /WsService (docs/protocol.md: level 1; calls, level 2).
// One ES module, no build step, no dependency: copy it into your app. Runs in browsers and in Node
// (pass the `ws` package as `WebSocket`). Kept ASCII: right whatever charset a server sends .js with.
//
//   import { SignalingClient } from './signaling.js';
//   const sig = new SignalingClient({ url: 'wss://example.com/WsService', userId: '1122', userName: 'Ann' });
//   sig.on('incoming', (c) => showBanner(c.callId, c.sponsorUserId));  // or sig.addEventListener(...)
//   const { level, calls } = await sig.connect();
//   const { callId } = await sig.call('2211', { media: 'video' });
//
// Options (constructor):
//   url        ws:// or wss:// URL of the signaling path (required)
//   userId     the identity to register (create_connect's sponsorUserId; required)
//   userName   sponsorUserName (optional)
//   level      2 (default: calls) or 1 (dialing/called only)
//   deviceId   stable id of this device, [0-9A-Za-z._~-]{1,64}: the server uses it to re-attach live
//              calls after a reconnect, and a new connection with a party's deviceId takes the call
//              over, so two live connections must not share one. Default: this browser's id, kept in
//              localStorage (key DEVICE_ID_KEY, made once from crypto.getRandomValues), then "." and
//              this tab's own part, kept in sessionStorage (so a reload keeps it and two tabs differ);
//              without storage (Node) a fresh one per client. null: send none.
//   token      sent as create_connect's `auth` (a string, or a function returning one or a promise
//              of one: called at every (re)registration, so a refreshed token is used)
//   WebSocket  the WebSocket class (default globalThis.WebSocket; in Node: `import WebSocket from 'ws'`)
//   backoff    {min: 500, max: 30000, jitter: 0.5}: reconnect delays in ms, doubling from min up to
//              max, each cut by up to jitter*100 % at random (clients do not all come back at once)
//   timeout    ms to wait for a reply (default 10000)
//
// Methods (each request gets a fresh numeric "id"; the promise resolves with the reply's `data` or
// rejects with a SignalingError {code, msg}; code "disconnected" when the socket is not registered
// or drops before the reply, "timeout" when none comes in time):
//   connect()                     -> {level, calls, deviceId, sponsorUserId} once registered; the
//                                    client then stays connected: it reconnects with backoff and
//                                    registers again by itself (same deviceId) until close()
//   close()                       closes with code 1000: the server takes it as a hangup of this
//                                    device's calls (any other end is a detach it may come back from)
//   dial(receiverUserId, {field1, field2, field3})            level 1: -> {receiverUserId, delivered}
//   call(receiverUserId, {media, callId, field1, field2, field3, sponsorUserName})
//                                 -> {callId, state, delivered: {level2, legacy}, glare?}; media
//                                    'audio' | 'video' (default); no callId: the server picks one
//   ringing(callId) accept(callId) reject(callId, reason) hangup(callId, reason) resume(callId)
//   signal(callId, kind, data)    kind "offer" | "answer" | "candidate" | ..., data any JSON but null
//   The call methods reject with code "not_level2" at once when the server registered this client
//   at level 1 (it does not offer calls, or level: 1 was asked): dial() still works then.
//   Note: the device that ends a call (hangup, reject) gets only the reply, no `ended` event.
//
// Properties: state ('idle' | 'connecting' (also while waiting to retry) | 'registering' | 'registered'
// | 'closed'), level (1, 2, or null while not registered), deviceId, userId.
//
// Events (EventTarget; the payload is event.detail; sig.on(type, fn) calls fn(detail) and returns an
// unsubscribe function):
//   open        the socket opened (registration follows)
//   registered  {level, calls, deviceId, sponsorUserId}: after every (re)registration
//   close       {code, reason, reconnectIn}: the socket closed; reconnectIn is ms, or null when final
//   called      level-1 push `called` data: {sponsorUserId, sponsorUserName, field1..3[, callId]}
//   incoming    incoming_call data: {callId, sponsorUserId, sponsorUserName, media, expiresIn}
//   accepted    call_accepted data: {callId, by: {userId, deviceId}, polite[, glare]}
//   signal      call_signal data: {callId, from, seq, kind, data}
//   state       call_state data: {callId, state, alerting, peerConnected}
//   ended       call_ended data: {callId, reason[, detail][, repeat]}
//   error       a SignalingError: a registration refused (the client stops), or an error the
//               server sent that answers no pending request (e.g. rate_limited)
//   wire        {direction: 'sent' | 'received', text}: every frame, for logs and debugging

export const DEVICE_ID_KEY = 'h2o-signaling.deviceId';

const OPEN = 1; // WebSocket.OPEN, the same in browsers and `ws`
// Closes the client makes to reconnect: not 1000/1001, so the server detaches (grace) instead of hanging up.
const RECONNECT_CLOSE = 4001;
const PUSH_EVENTS = {
    called: 'called',
    incoming_call: 'incoming',
    call_accepted: 'accepted',
    call_signal: 'signal',
    call_state: 'state',
    call_ended: 'ended',
};

/** An error the server answered (code and msg as it sent them) or one of this module's own codes. */
export class SignalingError extends Error {
    constructor(code, msg = '') {
        super(msg ? `${code}: ${msg}` : code);
        this.name = 'SignalingError';
        this.code = code;
        this.msg = msg;
    }
}

function randomDeviceId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** An id kept in `store` under `key`, made by `make` on first use (null when the store is unusable). */
function storedId(store, key, make) {
    try {
        if (!store) return null;
        let id = store.getItem(key);
        if (!id || !/^[0-9A-Za-z_~-]{1,40}$/.test(id)) {
            id = make();
            store.setItem(key, id);
        }
        return id;
    } catch {
        return null; /* storage disabled (privacy mode) */
    }
}

/** This browser's id (localStorage) and this tab's (sessionStorage): "web-<24 hex>.<8 hex>". */
function defaultDeviceId() {
    const browser = storedId(globalThis.localStorage, DEVICE_ID_KEY, randomDeviceId) ?? randomDeviceId();
    const tab = storedId(globalThis.sessionStorage, `${DEVICE_ID_KEY}.tab`, () => randomDeviceId().slice(4, 12)) ?? randomDeviceId().slice(4, 12);
    return `${browser}.${tab}`;
}

export class SignalingClient extends EventTarget {
    constructor(opts = {}) {
        super();
        if (!opts.url || opts.userId === undefined || opts.userId === null) throw new TypeError('SignalingClient: url and userId are required');
        this.url = opts.url;
        this.userId = String(opts.userId);
        this.userName = opts.userName;
        this.wantLevel = opts.level === 1 ? 1 : 2;
        this.deviceId = opts.deviceId === undefined ? defaultDeviceId() : opts.deviceId;
        this.token = opts.token;
        this.WebSocket = opts.WebSocket || globalThis.WebSocket;
        if (!this.WebSocket) throw new TypeError('SignalingClient: no WebSocket here: pass one (Node: the `ws` package)');
        this.backoff = { min: 500, max: 30000, jitter: 0.5, ...opts.backoff };
        this.timeout = opts.timeout ?? 10000;
        this.state = 'idle';
        this.level = null;
        this._ws = null;
        this._nextId = 1;
        this._pending = new Map(); // id -> {resolve, reject, timer}
        this._attempt = 0; // reconnects since the last registration
        this._retryTimer = null;
        this._waiters = []; // connect() promises waiting for the next registration
    }

    /** fn(detail) on each `type` event; returns a function that removes it. */
    on(type, fn) {
        const listener = (ev) => fn(ev.detail);
        this.addEventListener(type, listener);
        return () => this.removeEventListener(type, listener);
    }

    connect() {
        const registered = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
        if (this.state === 'idle' || this.state === 'closed') {
            this._attempt = 0;
            this._open();
        } else if (this.state === 'registered') {
            this._settleWaiters(null, this._lastRegistration);
        }
        return registered;
    }

    close() {
        clearTimeout(this._retryTimer);
        this._retryTimer = null;
        const ws = this._ws;
        this._ws = null;
        this._setClosed(1000, 'closed by the client', null);
        if (ws) ws.close(1000);
    }

    dial(receiverUserId, { field1, field2, field3 } = {}) {
        return this._request('dialing', { receiverUserId: String(receiverUserId), field1, field2, field3 });
    }

    call(receiverUserId, { media = 'video', callId, field1, field2, field3, sponsorUserName } = {}) {
        return this._callRequest('call', { receiverUserId: String(receiverUserId), media, callId, field1, field2, field3, sponsorUserName });
    }

    ringing(callId) {
        return this._callRequest('call_ringing', { callId });
    }

    accept(callId) {
        return this._callRequest('call_accept', { callId });
    }

    reject(callId, reason) {
        return this._callRequest('call_reject', { callId, reason });
    }

    hangup(callId, reason) {
        return this._callRequest('call_hangup', { callId, reason });
    }

    resume(callId) {
        return this._callRequest('call_resume', { callId });
    }

    signal(callId, kind, data) {
        return this._callRequest('call_signal', { callId, kind, data });
    }

    // ---- internals ----

    _emit(type, detail) {
        this.dispatchEvent(new CustomEvent(type, { detail }));
    }

    _open() {
        this.state = 'connecting';
        let ws;
        try {
            ws = new this.WebSocket(this.url);
        } catch (err) {
            // a malformed URL never gets better: final
            this._settleWaiters(new SignalingError('bad_url', err.message));
            this._setClosed(1006, err.message, null);
            return;
        }
        this._ws = ws;
        // Handlers check `this._ws === ws`: events of a socket we already let go of are ignored.
        ws.onopen = () => {
            if (this._ws !== ws) return;
            this._emit('open', {});
            this._register(ws);
        };
        ws.onmessage = (ev) => {
            if (this._ws === ws && typeof ev.data === 'string') this._onText(ev.data);
        };
        ws.onclose = (ev) => {
            if (this._ws !== ws) return;
            this._ws = null;
            this._scheduleReconnect(ev.code, ev.reason);
        };
        ws.onerror = () => {}; // a close event always follows; it carries what we can know
    }

    async _register(ws) {
        this.state = 'registering';
        const req = { sponsorUserId: this.userId, sponsorUserName: this.userName };
        if (this.wantLevel === 2) {
            req.level = 2;
            if (this.deviceId !== null) req.deviceId = this.deviceId;
        }
        try {
            if (this.token !== undefined) req.auth = typeof this.token === 'function' ? await this.token() : this.token;
        } catch (err) {
            return this._refused(ws, new SignalingError('auth_unavailable', String(err && err.message)));
        }
        if (this._ws !== ws) return;
        let data;
        try {
            data = await this._send('create_connect', req);
        } catch (err) {
            if (this._ws !== ws) return; // the socket dropped: the reconnect is already planned
            if (err.code === 'timeout') { // no answer: let this socket go, try a fresh one
                this._ws = null;
                ws.close(RECONNECT_CLOSE);
                this._scheduleReconnect(RECONNECT_CLOSE, err.message);
                return;
            }
            return this._refused(ws, err);
        }
        if (this._ws !== ws) return;
        // A server without level 2 answers as level 1 does: no `level`, no `calls`.
        this.level = data.level === 2 ? 2 : 1;
        this.state = 'registered';
        this._attempt = 0;
        const info = { level: this.level, calls: Array.isArray(data.calls) ? data.calls : [], deviceId: data.deviceId ?? null, sponsorUserId: data.sponsorUserId };
        this._lastRegistration = info;
        this._emit('registered', info);
        this._settleWaiters(null, info);
    }

    // create_connect was refused (auth, too many connections, a bad deviceId): trying again would be
    // refused the same way, so the client stops and says why.
    _refused(ws, err) {
        this._ws = null;
        ws.close(1000);
        this._settleWaiters(err); // before _setClosed, which would reject them as "disconnected"
        this._setClosed(1000, err.message, null);
        this._emit('error', err);
    }

    _scheduleReconnect(code, reason) {
        const { min, max, jitter } = this.backoff;
        const delay = Math.round(Math.min(max, min * 2 ** this._attempt) * (1 - jitter * Math.random()));
        this._attempt++;
        this._setClosed(code, reason, delay);
        this._retryTimer = setTimeout(() => {
            this._retryTimer = null;
            this._open();
        }, delay);
    }

    _setClosed(code, reason, reconnectIn) {
        const was = this.state;
        this.state = reconnectIn === null ? 'closed' : 'connecting'; // 'connecting' covers the wait before a retry
        this.level = null;
        for (const [id, p] of this._pending) {
            clearTimeout(p.timer);
            p.reject(new SignalingError('disconnected', 'the connection closed before the reply'));
            this._pending.delete(id);
        }
        if (reconnectIn === null) this._settleWaiters(new SignalingError('disconnected', 'closed before registering'));
        if (was !== 'idle' && was !== 'closed') this._emit('close', { code, reason, reconnectIn });
    }

    _settleWaiters(err, value) {
        const waiters = this._waiters;
        this._waiters = [];
        for (const w of waiters) (err ? w.reject(err) : w.resolve(value));
    }

    _callRequest(type, fields) {
        if (this.state === 'registered' && this.level !== 2) {
            return Promise.reject(new SignalingError('not_level2', 'the server registered this client at level 1: no calls (dial() works)'));
        }
        return this._request(type, fields);
    }

    _request(type, fields) {
        if (this.state !== 'registered') return Promise.reject(new SignalingError('disconnected', 'not connected and registered'));
        return this._send(type, fields);
    }

    _send(type, fields) {
        const ws = this._ws;
        if (!ws || ws.readyState !== OPEN) return Promise.reject(new SignalingError('disconnected', 'not connected'));
        const id = this._nextId++;
        const text = JSON.stringify({ type, ...fields, id }); // undefined fields are left out
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this._pending.delete(id);
                reject(new SignalingError('timeout', `no reply to ${type} within ${this.timeout} ms`));
            }, this.timeout);
            this._pending.set(id, { resolve, reject, timer });
            ws.send(text);
            this._emit('wire', { direction: 'sent', text });
        });
    }

    _onText(text) {
        this._emit('wire', { direction: 'received', text });
        let msg;
        try {
            msg = JSON.parse(text);
        } catch {
            return; // the server sends JSON only; nothing to do with anything else
        }
        if (!msg || typeof msg !== 'object') return;
        // Replies carry our id back; they may come in any order (match by id, not by position).
        const pending = typeof msg.id === 'number' ? this._pending.get(msg.id) : undefined;
        if (pending && (String(msg.type).endsWith('_response') || msg.type === 'error')) {
            this._pending.delete(msg.id);
            clearTimeout(pending.timer);
            if (msg.ok === true) pending.resolve(msg.data ?? {});
            else pending.reject(new SignalingError(msg.code || 'error', msg.msg || ''));
            return;
        }
        const event = PUSH_EVENTS[msg.type];
        if (event && msg.ok === true) this._emit(event, msg.data ?? {});
        else if (msg.ok === false) this._emit('error', new SignalingError(msg.code || 'error', msg.msg || ''));
    }
}
