// The /WsService level-1 protocol (docs/protocol.md) for the reference peers, transport-free: the same registry
// rules, replies and errors as h2o-signaling, so that a benchmark compares equal work. Each peer supplies three
// functions over its own connection objects:
//   send(conn, text)   send one text frame;
//   isOpen(conn)       false once the connection is closing or gone (its entry then counts as "peer_gone");
//   close(conn, code, reason)   (unused here: transports close on binary frames, bad UTF-8, oversize themselves).
//
//   const l1 = new Level1({send, isOpen});
//   const session = l1.open(conn);      on a new WebSocket connection
//   l1.message(session, text);          on every text message
//   l1.close(session);                  when the connection is gone: its entry is removed at once

const MAX_ID_BYTES = 256;

// code -> msg, as handler/common/sig_common.h's SIG_ERR_MAP
const ERRORS = {
    bad_json: 'message is not valid JSON',
    not_object: 'message is not a JSON object',
    missing_type: 'message has no type',
    unknown_type: 'message type is not known',
    bad_field: 'a field has a value of the wrong kind',
    missing_field: 'a required field is missing',
    bad_id: 'user id must be 1 to 256 bytes',
    not_registered: 'send create_connect before dialing',
    identity_mismatch: "sponsorUserId does not match this connection's identity",
    peer_offline: '对方未建立链接',
    peer_gone: '对方意外断开连接',
    too_many_connections: 'this user has too many connections',
};

class ProtocolError extends Error {
    constructor(code) {
        super(code);
        this.code = code;
    }
}

/** A text field: string, or a number's text; null/absent -> undefined; anything else is bad_field. */
function textField(v) {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number') return String(v);
    throw new ProtocolError('bad_field');
}

/** A user id: string or integer, 1..256 bytes once it is text. */
function userId(v) {
    if (typeof v === 'number' && !Number.isInteger(v)) throw new ProtocolError('bad_field');
    const s = textField(v);
    if (s !== undefined && (s.length === 0 || Buffer.byteLength(s) > MAX_ID_BYTES)) throw new ProtocolError('bad_id');
    return s;
}

export class Level1 {
    constructor({ send, isOpen, maxConnectionsPerUser = 8 }) {
        this.send = send;
        this.isOpen = isOpen;
        this.maxPerUser = maxConnectionsPerUser;
        this.users = new Map(); // user id -> Set of sessions
    }

    open(conn) {
        return { conn, user: undefined, name: '' };
    }

    close(session) {
        this.unbind(session);
    }

    unbind(session) {
        if (session.user === undefined) return;
        const set = this.users.get(session.user);
        set.delete(session);
        if (set.size === 0) this.users.delete(session.user); // the entry dies with its last connection
        session.user = undefined;
    }

    error(session, type, code, id) {
        let text = `{"type":${JSON.stringify(type)},"ok":false,"msg":${JSON.stringify(ERRORS[code])},"code":"${code}"`;
        if (id !== undefined) text += `,"id":${JSON.stringify(id)}`;
        if (type === 'dialing_response') text += ',"data":{"sponsorUserId":null}';
        this.send(session.conn, text + '}');
    }

    message(session, text) {
        let msg, id;
        try {
            msg = JSON.parse(text);
        } catch {
            return this.error(session, 'error', 'bad_json');
        }
        if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return this.error(session, 'error', 'not_object');
        if (msg.id !== undefined) {
            if (msg.id === null || (typeof msg.id !== 'string' && typeof msg.id !== 'number'))
                return this.error(session, 'error', 'bad_field');
            id = msg.id;
        }
        const type = msg.type;
        try {
            if (type === undefined || type === null) throw new ProtocolError('missing_type');
            if (typeof type !== 'string') throw new ProtocolError('bad_field');
            if (type === 'create_connect') return this.createConnect(session, msg, id);
            if (type === 'dialing') return this.dialing(session, msg, id);
            throw new ProtocolError('unknown_type');
        } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            return this.error(session, 'error', e.code, id);
        }
    }

    createConnect(session, msg, id) {
        const user = userId(msg.sponsorUserId);
        const name = textField(msg.sponsorUserName) ?? '';
        textField(msg.auth);
        if (user === undefined) throw new ProtocolError('missing_field');
        if (session.user !== user) {
            const set = this.users.get(user);
            if (set !== undefined && set.size >= this.maxPerUser)
                return this.error(session, 'create_connect_response', 'too_many_connections', id);
            this.unbind(session); // at most one identity: a second create_connect moves the connection
            if (set !== undefined) set.add(session);
            else this.users.set(user, new Set([session]));
            session.user = user;
        }
        session.name = name;
        if (id !== undefined)
            this.send(
                session.conn,
                `{"type":"create_connect_response","ok":true,"msg":"","id":${JSON.stringify(id)},"data":{"sponsorUserId":${JSON.stringify(user)}}}`,
            );
    }

    dialing(session, msg, id) {
        const receiver = userId(msg.receiverUserId);
        const sponsor = userId(msg.sponsorUserId);
        const name = textField(msg.sponsorUserName);
        const f1 = textField(msg.field1) ?? '';
        const f2 = textField(msg.field2) ?? '';
        const f3 = textField(msg.field3) ?? '';
        if (receiver === undefined) throw new ProtocolError('missing_field');
        if (session.user === undefined) return this.error(session, 'dialing_response', 'not_registered', id);
        // the pushed sponsorUserId is the connection's registered identity, never what the sender typed
        if (sponsor !== undefined && sponsor !== session.user)
            return this.error(session, 'dialing_response', 'identity_mismatch', id);
        const set = this.users.get(receiver);
        if (set === undefined) return this.error(session, 'dialing_response', 'peer_offline', id);
        const called = JSON.stringify({
            type: 'called',
            ok: true,
            msg: '',
            data: { sponsorUserId: session.user, sponsorUserName: name ?? session.name, field1: f1, field2: f2, field3: f3 },
        });
        let delivered = 0;
        for (const s of set) {
            if (!this.isOpen(s.conn)) continue;
            this.send(s.conn, called);
            delivered++;
        }
        if (delivered === 0) return this.error(session, 'dialing_response', 'peer_gone', id);
        if (id !== undefined)
            this.send(
                session.conn,
                `{"type":"dialing_response","ok":true,"msg":"","id":${JSON.stringify(id)},"data":{"receiverUserId":${JSON.stringify(receiver)},"delivered":${delivered}}}`,
            );
    }
}

/** The port from argv[2] or $PORT (default `fallback`), validated. */
export function portFromArgs(fallback) {
    const port = Number(process.argv[2] ?? process.env.PORT ?? fallback);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        console.error(`usage: ${process.argv[1]} [PORT]`);
        process.exit(2);
    }
    return port;
}
