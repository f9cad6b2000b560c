// h2o-signaling demo: two independent signaling clients ("panes") on one page.
// Plain browser JS, no build step, no external resources. Message content is only
// ever put into the page with textContent (never innerHTML): it comes from other users.
// Kept ASCII (non-ASCII as \u escapes): the server sends .js without a charset.
'use strict';

(function () {
    // ws:// on http, wss:// behind TLS; same host and port as the page.
    function endpointUrl() {
        if (location.protocol === 'http:' || location.protocol === 'https:') {
            return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/WsService';
        }
        // Opened as a file: assume the quick-start config (h2o-conf/h2o.conf).
        return 'ws://127.0.0.1:8080/WsService';
    }

    function el(tag, className, text) {
        const node = document.createElement(tag);
        if (className) node.className = className;
        if (text !== undefined) node.textContent = text;
        return node;
    }

    function clock() {
        const d = new Date();
        const p = (n, w) => String(n).padStart(w, '0');
        return `${p(d.getHours(), 2)}:${p(d.getMinutes(), 2)}:${p(d.getSeconds(), 2)}.${p(d.getMilliseconds(), 3)}`;
    }

    function str(v) {
        return v === undefined || v === null ? '' : String(v);
    }

    // A one-line human reading of a received message, or null: {cls, text}.
    function describe(msg) {
        if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return null;
        const data = msg.data && typeof msg.data === 'object' ? msg.data : {};
        if (msg.ok === false) {
            let text = 'Error: ' + (str(msg.msg) || '(no message)');
            if (msg.code !== undefined) text += ' (' + str(msg.code) + ')';
            return { cls: 'error', text };
        }
        if (msg.type === 'called') {
            return {
                cls: 'called',
                text: `From ${str(data.sponsorUserName)} (${str(data.sponsorUserId)}): ${str(data.field1)}`,
            };
        }
        if (msg.type === 'create_connect_response' && msg.ok === true) {
            return { cls: 'ack', text: `Registered as ${str(data.sponsorUserId)}` };
        }
        if (msg.type === 'dialing_response' && msg.ok === true) {
            const n = Number(data.delivered);
            const conns = Number.isFinite(n) ? ` (${n} connection${n === 1 ? '' : 's'})` : '';
            return { cls: 'ack', text: `Delivered to ${str(data.receiverUserId)}${conns}` };
        }
        return null;
    }

    function Pane(root) {
        const p = root.dataset.pane;
        const $ = (name) => document.getElementById(`${p}-${name}`);
        const ui = {
            status: $('status'),
            statusText: $('status-text'),
            userId: $('user-id'),
            userName: $('user-name'),
            connect: $('connect'),
            register: $('register'),
            disconnect: $('disconnect'),
            form: $('send-form'),
            receiver: $('receiver'),
            field1: $('field1'),
            send: $('send'),
            log: $('log'),
            clear: $('clear'),
        };
        let ws = null;
        let nextId = 1;
        let registered = null; // {id, name} once the server acknowledged create_connect

        function setStatus(state, text) {
            ui.status.dataset.state = state;
            ui.statusText.textContent = text;
        }

        function openStatus() {
            let text = 'open';
            if (registered) text += ` \u00b7 registered as ${registered.id}` + (registered.name ? ` (${registered.name})` : '');
            setStatus('open', text);
        }

        function sync() {
            const state = ws ? ws.readyState : WebSocket.CLOSED;
            const open = state === WebSocket.OPEN;
            ui.connect.disabled = state === WebSocket.CONNECTING || open;
            ui.register.disabled = !open;
            ui.send.disabled = !open;
            ui.disconnect.disabled = !(open || state === WebSocket.CONNECTING);
        }

        // kind: 'sent' | 'received' | 'info'; raw: the exact frame text (or null for info)
        function log(kind, raw, note) {
            const nearBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
            const item = el('li', `entry ${kind}`);
            item.dataset.kind = kind;
            const meta = el('div', 'meta');
            meta.append(el('span', 'tag', kind), el('time', 'time', clock()));
            item.append(meta);
            if (note) {
                item.classList.add(note.cls);
                item.append(el('div', `note ${note.cls}`, note.text));
            }
            if (raw !== null && raw !== undefined) item.append(el('pre', 'raw', raw));
            ui.log.append(item);
            if (nearBottom) ui.log.scrollTop = ui.log.scrollHeight;
        }

        function info(text, cls) {
            log('info', null, { cls: cls || 'plain', text });
        }

        function send(obj) {
            if (!ws || ws.readyState !== WebSocket.OPEN) {
                info('not connected: press Connect first', 'error');
                return;
            }
            const raw = JSON.stringify(obj);
            ws.send(raw);
            log('sent', raw);
        }

        function connect() {
            if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) return;
            const url = endpointUrl();
            registered = null;
            let sock;
            try {
                sock = new WebSocket(url);
            } catch (e) {
                setStatus('closed', `closed (${e.message})`);
                info(`cannot open ${url}: ${e.message}`, 'error');
                return;
            }
            ws = sock;
            sock.binaryType = 'arraybuffer';
            setStatus('connecting', `connecting to ${url}\u2026`);
            info(`connecting to ${url}`);
            sock.addEventListener('open', () => {
                if (ws !== sock) return;
                openStatus();
                info('connection open');
                sync();
            });
            sock.addEventListener('message', (ev) => {
                if (ws !== sock) return;
                if (typeof ev.data !== 'string') {
                    log('received', `[binary frame, ${ev.data.byteLength} bytes]`);
                    return;
                }
                let msg;
                try {
                    msg = JSON.parse(ev.data);
                } catch {
                    log('received', ev.data, { cls: 'error', text: 'Not JSON' });
                    return;
                }
                const note = describe(msg);
                if (msg && msg.type === 'create_connect_response' && msg.ok === true) {
                    const data = msg.data || {};
                    registered = { id: str(data.sponsorUserId), name: ui.userName.value };
                    openStatus();
                }
                log('received', ev.data, note);
            });
            sock.addEventListener('error', () => {
                if (ws !== sock) return;
                info('WebSocket error (see the close code)', 'error');
            });
            sock.addEventListener('close', (ev) => {
                if (ws !== sock) return;
                registered = null;
                const why = ev.reason ? `: ${ev.reason}` : '';
                setStatus(ev.code === 1000 ? 'closed' : 'failed', `closed (code ${ev.code}${why})`);
                info(`connection closed, code ${ev.code}${why}`, ev.code === 1000 ? 'plain' : 'error');
                sync();
            });
            sync();
        }

        ui.connect.addEventListener('click', connect);
        ui.register.addEventListener('click', () => {
            send({
                type: 'create_connect',
                sponsorUserId: ui.userId.value.trim(),
                sponsorUserName: ui.userName.value,
                id: nextId++,
            });
        });
        ui.form.addEventListener('submit', (ev) => {
            ev.preventDefault();
            send({
                type: 'dialing',
                sponsorUserId: ui.userId.value.trim(),
                sponsorUserName: ui.userName.value,
                receiverUserId: ui.receiver.value.trim(),
                field1: ui.field1.value,
                field2: '',
                field3: '',
                id: nextId++,
            });
        });
        ui.disconnect.addEventListener('click', () => {
            if (!ws) return;
            setStatus('closing', 'closing\u2026');
            info('closing with code 1000');
            ws.close(1000);
            sync();
        });
        ui.clear.addEventListener('click', () => ui.log.replaceChildren());
        sync();
    }

    function init() {
        const endpoint = document.getElementById('endpoint');
        if (endpoint) endpoint.textContent = endpointUrl();
        for (const root of document.querySelectorAll('.pane[data-pane]')) Pane(root);
    }

    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
    else init();
})();
