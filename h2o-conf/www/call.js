// h2o-signaling video-call demo (call.html): one user per page, calls through the server's level 2.
// The server owns the call (ringing, accept, who won, the end); this page only drives the WebRTC side:
// offer, answer and ICE candidates travel as call_signal, media and the data channel go peer to peer.
// Message content is put into the page with textContent only (it comes from other users).
// Kept ASCII: the server sends .js without a charset.
import { SignalingClient } from './signaling.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
for (const key of ['user', 'peer', 'name']) if (params.has(key)) $(key).value = params.get(key);

let client = null;
let call = null; // the one call of this page: {id, role, polite, pc, dc, tracksAdded, makingOffer, ignoreOffer, chain, ended}
let localStream = null;

// ws:// on http, wss:// behind TLS; same host and port as the page (file:// assumes the quick start).
function endpointUrl() {
    if (location.protocol === 'http:' || location.protocol === 'https:') {
        return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/WsService';
    }
    return 'ws://127.0.0.1:8080/WsService';
}

function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
}

// kind: 'sent' | 'received' | 'info'; the frames are shown raw, as the server's docs show them.
function log(kind, raw, note, cls) {
    const item = el('li', `entry ${kind}${cls ? ' ' + cls : ''}`);
    const meta = el('div', 'meta');
    meta.append(el('span', 'tag', kind), el('time', 'time', new Date().toISOString().slice(11, 23)));
    item.append(meta);
    if (note) item.append(el('div', `note ${cls || 'plain'}`, note));
    if (raw) item.append(el('pre', 'raw', raw));
    $('log').append(item);
    $('log').scrollTop = $('log').scrollHeight;
}
const info = (text, cls) => log('info', null, text, cls);

function setStatus(state, text) {
    $('status').dataset.state = state;
    $('status').textContent = text;
}

// #state and #reason are what a person (and the browser test) reads: idle, calling, ringing, incoming,
// active, ended; #reason is call_ended's reason (or the local one: hangup, rejected, cancelled).
function setCallState(state, reason = '', note = '') {
    $('state').textContent = state;
    $('state').dataset.state = state;
    $('reason').dataset.reason = reason;
    $('reason').textContent = reason ? `(${reason})` : note ? `(${note})` : '';
    sync();
}

function sync() {
    const registered = client !== null && client.state === 'registered';
    $('connect').disabled = client !== null;
    $('disconnect').disabled = client === null;
    $('call').disabled = !registered || client.level !== 2 || call !== null;
    $('hangup').disabled = call === null || call.state === 'incoming';
    $('dc-send').disabled = !(call && call.dc && call.dc.readyState === 'open');
}

function dcLog(kind, text) {
    $('dc-log').append(el('li', `entry ${kind}`, `${kind === 'sent' ? 'me' : 'peer'}: ${text}`));
}

// ---- signaling ----

function connect() {
    const userId = $('user').value.trim();
    const me = new SignalingClient({ url: endpointUrl(), userId, userName: $('name').value || undefined }); // the default deviceId: one per tab
    client = me;
    client.on('wire', ({ direction, text }) => log(direction, text));
    client.on('open', () => setStatus('connecting', 'open, registering...'));
    client.on('registered', ({ level, calls }) => {
        setStatus('open', `registered as ${userId}, level ${level}`);
        if (level !== 2) info('the server does not offer calls here (level 1): Call is off', 'error');
        // back after a drop: a call the server no longer lists ended while we were away
        if (call && call.id && !calls.some((c) => c.callId === call.id)) endCall('ended while disconnected');
        sync();
    });
    client.on('close', ({ code, reconnectIn }) => {
        if (reconnectIn === null) setStatus(code === 1000 ? 'closed' : 'failed', `closed (code ${code})`);
        else setStatus('connecting', `connection lost (code ${code}), reconnecting in ${reconnectIn} ms`);
        sync();
    });
    client.on('error', (err) => info(err.message, 'error'));
    client.on('incoming', onIncoming);
    client.on('accepted', onAccepted);
    client.on('signal', onSignal);
    client.on('state', onCallState);
    client.on('ended', (e) => {
        if (call && e.callId === call.id) endCall(e.reason, e.detail);
    });
    setStatus('connecting', `connecting to ${endpointUrl()}...`);
    me.connect().catch((err) => {
        if (client !== me) return; // Disconnect was pressed
        info(`not registered: ${err.message}`, 'error');
        client = null;
        sync();
    });
    sync();
}

function disconnect() {
    // code 1000: the server hangs up our call for us (a drop would leave it waiting for us to come back)
    if (call) endCall('hangup');
    client.close();
    client = null;
    sync();
}

async function getMedia() {
    if (!localStream) {
        localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
        $('local-video').srcObject = localStream;
    }
    return localStream;
}

function newCall(id, role) {
    // callee is polite (perfect negotiation) until call_accepted says otherwise
    return { id, role, state: '', polite: role === 'callee', pc: null, dc: null, tracksAdded: false, makingOffer: false, ignoreOffer: false, chain: Promise.resolve(), ended: false };
}

async function startCall() {
    const peer = $('peer').value.trim();
    const c = newCall(null, 'caller'); // no id until the reply; taken now so that a second call waits
    c.state = 'calling';
    c.peer = peer;
    call = c;
    setCallState('calling');
    let r;
    try {
        await getMedia();
        if (c.ended) return; // Hang up while the camera was starting
        r = await client.call(peer, { media: 'video' });
    } catch (err) {
        info(`call failed: ${err.message}`, 'error');
        if (!c.ended) endCall(err.code || 'media_failed');
        return;
    }
    if (c.ended) { // Hang up was pressed before the reply
        if (r.state !== 'ended') client.hangup(r.callId).catch(() => {});
        return;
    }
    c.id = r.callId;
    c.state = r.state;
    if (r.state === 'ended') return; // call_ended (busy, offline) follows this reply
    // glare: the peer's call to us was ringing, the server joined us into it: we are its callee
    if (r.glare) {
        c.role = 'callee';
        c.polite = true;
    }
    setCallState(r.state === 'active' ? 'active' : 'ringing');
    setupPeerConnection(c);
    // The caller offers at once: the server keeps the offer and candidates until a device accepts.
    if (c.role === 'caller') {
        addLocalTracks(c);
        wireDataChannel(c, c.pc.createDataChannel('chat'));
    }
}

function onIncoming(c) {
    if (call) {
        // we are calling this very peer: the server joins the two calls (glare), our reply says so
        if (call.state === 'calling' && call.peer === c.sponsorUserId) return;
        client.reject(c.callId, 'busy').catch(() => {}); // one call at a time in this demo
        return;
    }
    call = newCall(c.callId, 'callee');
    call.state = 'incoming';
    const who = c.sponsorUserName ? `${c.sponsorUserName} (${c.sponsorUserId})` : c.sponsorUserId;
    $('incoming-text').textContent = `Incoming ${c.media} call from ${who}`;
    $('incoming').hidden = false;
    setCallState('incoming');
    client.ringing(c.callId).catch(() => {}); // lets the caller see that we are alerting
}

async function acceptCall() {
    const c = call;
    $('incoming').hidden = true;
    try {
        await getMedia();
        if (c.ended) return;
        // before the accept: the buffered offer comes right after it and needs a peer connection
        setupPeerConnection(c);
        await client.accept(c.id);
        c.state = 'active';
        setCallState('active');
    } catch (err) {
        info(`accept failed: ${err.message}`, 'error');
        if (!c.ended) endCall(err.code || 'media_failed');
    }
}

function rejectCall() {
    const id = call.id;
    endCall('rejected');
    client.reject(id, 'declined').catch((err) => info(`reject failed: ${err.message}`, 'error'));
}

function hangupCall(reason) {
    const id = call.id;
    endCall(call.role === 'caller' && /^(calling|ringing)$/.test(call.state) ? 'cancelled' : 'hangup', reason);
    // the reply is all we get: call_ended goes to the other side (no id yet: startCall hangs up on the reply)
    if (id) client.hangup(id, reason).catch((err) => info(`hangup failed: ${err.message}`, 'error'));
}

function onAccepted(a) {
    if (!call || a.callId !== call.id) return;
    call.polite = a.polite;
    call.state = 'active';
    setCallState('active');
}

function onCallState(s) {
    if (!call || s.callId !== call.id) return;
    if (s.state === 'ringing') setCallState('ringing', '', s.alerting ? `${s.alerting} device(s) alerting` : s.peerConnected ? '' : 'no device rings yet');
    else if (s.state === 'active') setCallState('active', '', s.peerConnected ? '' : 'peer lost its connection: waiting for it');
}

// ---- WebRTC ----

function sendSignal(c, kind, data) {
    if (c.ended) return;
    client.signal(c.id, kind, data).catch((err) => info(`signal ${kind} refused: ${err.message}`, 'error'));
}

function addLocalTracks(c) {
    if (c.tracksAdded) return;
    c.tracksAdded = true;
    for (const track of localStream.getTracks()) c.pc.addTrack(track, localStream);
}

function setupPeerConnection(c) {
    const pc = new RTCPeerConnection({ iceServers: [] }); // host candidates only: same machine or LAN
    c.pc = pc;
    pc.onicecandidate = ({ candidate }) => {
        if (candidate) sendSignal(c, 'candidate', candidate.toJSON()); // null = gathering done: nothing to send
    };
    // Perfect negotiation: whoever needs a (re)negotiation offers; on a collision the polite side yields.
    pc.onnegotiationneeded = async () => {
        try {
            c.makingOffer = true;
            await pc.setLocalDescription();
            sendSignal(c, 'offer', pc.localDescription.toJSON());
        } catch (err) {
            info(`offer failed: ${err.message}`, 'error');
        } finally {
            c.makingOffer = false;
        }
    };
    pc.ontrack = ({ track, streams }) => {
        const video = $('remote-video');
        const stream = streams[0] || new MediaStream([track]);
        if (video.srcObject !== stream) video.srcObject = stream;
        video.play().catch(() => {}); // autoplay may wait for a gesture; the click on Call/Accept was one
    };
    pc.ondatachannel = ({ channel }) => wireDataChannel(c, channel);
    pc.onconnectionstatechange = () => {
        $('pc-state').textContent = pc.connectionState;
        if (pc.connectionState === 'failed' && !c.ended) hangupCall('ice_failed');
    };
}

function wireDataChannel(c, dc) {
    c.dc = dc;
    dc.onopen = () => {
        const text = `hello from ${$('user').value.trim()}`;
        dc.send(text);
        dcLog('sent', text);
        sync();
    };
    dc.onmessage = (ev) => dcLog('received', String(ev.data));
    dc.onclose = sync;
}

function onSignal(s) {
    const c = call;
    if (!c || s.callId !== c.id || !c.pc) return;
    // one at a time, in the server's order: a candidate must not overtake the description before it
    c.chain = c.chain.then(() => handleSignal(c, s)).catch((err) => info(`${s.kind} failed: ${err.message}`, 'error'));
}

async function handleSignal(c, { kind, data }) {
    if (c.ended) return;
    const pc = c.pc;
    if (kind === 'offer' || kind === 'answer') {
        const collision = data.type === 'offer' && (c.makingOffer || pc.signalingState !== 'stable');
        c.ignoreOffer = !c.polite && collision;
        if (c.ignoreOffer) return;
        await pc.setRemoteDescription(data); // a polite side in collision rolls its own offer back here
        if (data.type === 'offer') {
            // after the remote offer: our tracks take its m-lines instead of asking for new ones
            addLocalTracks(c);
            await pc.setLocalDescription();
            sendSignal(c, 'answer', pc.localDescription.toJSON());
        }
    } else if (kind === 'candidate') {
        try {
            await pc.addIceCandidate(data);
        } catch (err) {
            if (!c.ignoreOffer) throw err; // a candidate of an offer we ignored may fail
        }
    }
}

function endCall(reason, detail) {
    const c = call;
    if (!c) return;
    c.ended = true;
    call = null;
    $('incoming').hidden = true;
    if (c.dc) c.dc.close();
    if (c.pc) c.pc.close();
    $('pc-state').textContent = c.pc ? 'closed' : 'none';
    $('remote-video').srcObject = null;
    if (localStream) for (const track of localStream.getTracks()) track.stop();
    localStream = null;
    $('local-video').srcObject = null;
    setCallState('ended', reason);
    if (detail) $('reason').textContent = `(${reason}: ${detail})`;
}

$('connect').addEventListener('click', connect);
$('disconnect').addEventListener('click', disconnect);
$('call').addEventListener('click', startCall);
$('hangup').addEventListener('click', () => hangupCall());
$('accept').addEventListener('click', acceptCall);
$('reject').addEventListener('click', rejectCall);
$('clear').addEventListener('click', () => $('log').replaceChildren());
$('dc-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!call || !call.dc || call.dc.readyState !== 'open') return;
    call.dc.send($('dc-text').value);
    dcLog('sent', $('dc-text').value);
});
// For tests and the devtools console: the live objects behind the page.
window.callDemo = {
    get client() { return client; },
    get call() { return call; },
    get pc() { return call && call.pc; },
};
sync();
