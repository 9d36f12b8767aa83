// The signaling client: one WebSocket (JSON text frames) to /ws, the room state as the
// server describes it, reconnection with backoff, and version checks.
//
// * PUBLIC events carry `version`: ignored when <= the state's version; a gap asks for
//   a `resync` (a fresh snapshot) and holds events back until it comes.
// * QUEUE events (hands, invitations) carry `queue_version`: stale ones are ignored, but
//   a gap asks for a `resync` only on stage, the one place that receives the whole queue
//   chain. A listener's first QUEUE event (raising a hand, being invited) jumps the
//   version past the events they were not sent; coming on stage brings a snapshot.
// * After a drop the client joins again with the same token: within the server's grace
//   the user keeps their role; the `joined` snapshot replaces everything.

const PUBLIC_EVENTS = new Set([
  "participant_joined",
  "participant_left",
  "role_changed",
  "mute_changed",
  "participant_kicked",
  "participant_banned",
  "room_lock_changed",
  "room_ended",
]);
const QUEUE_EVENTS = new Set(["hand_raised", "hand_lowered", "speaker_invited", "invite_withdrawn"]);
// A bye with one of these reasons is final: no reconnecting.
const FINAL_BYES = new Set(["kicked", "banned", "room_ended", "left", "replaced", "join_refused"]);
// A join refused with one of these codes will not succeed by trying again.
const FINAL_JOIN_ERRORS = new Set([
  "banned",
  "kicked",
  "room_locked",
  "room_ended",
  "not_found",
  "token_required",
  "token_invalid",
  "token_expired",
  "unsupported_version",
  "forbidden",
]);
const RANK = { host: 3, moderator: 2, speaker: 1, listener: 0 };
const PING_EVERY = 15_000;
const REQUEST_TIMEOUT = 15_000;

export class RequestError extends Error {
  constructor(code, message, retryAfter = null) {
    super(message);
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export class RoomClient extends EventTarget {
  constructor({ roomId, token, name }) {
    super();
    this.roomId = roomId;
    this.token = token;
    this.name = name;
    this.ws = null;
    this.phase = "idle"; // idle | connecting | live | waiting | closed
    this.attempt = 0;
    this.you = null; // {user_id, name, guest}
    this.snap = null; // the room snapshot, kept current by events
    this.media = null; // joined.media
    this.listeners = 0;
    this.queueLength = 0;
    this.speaking = [];
    this.closedWhy = null; // {kind: "bye"|"join", code, message, retryAfter}
    this._nextId = 1;
    this._pending = new Map();
    this._resyncing = false;
    this._held = [];
    this._timer = null;
    this._pinger = null;
    this._lastPong = 0;
    this.reconnectAt = 0;
  }

  // ------------------------------------------------------------------ lifecycle
  start() {
    this._connect();
  }

  _connect() {
    clearTimeout(this._timer);
    this.phase = "connecting";
    this._emit("phase");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      const join = { type: "join", room_id: this.roomId, id: this._id() };
      if (this.token) join.token = this.token;
      if (this.name) join.name = this.name;
      this._joinId = join.id;
      ws.send(JSON.stringify(join));
    };
    ws.onmessage = (e) => {
      if (ws !== this.ws) return;
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      this._receive(msg);
    };
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      this._dropped(e.code);
    };
  }

  _dropped(code) {
    clearInterval(this._pinger);
    this.ws = null;
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new RequestError("disconnected", "the connection dropped"));
    }
    this._pending.clear();
    this._resyncing = false;
    clearTimeout(this._resyncTimer);
    this._held = [];
    if (this.phase === "closed") {
      this._emit("phase");
      return;
    }
    // Back off: 0.5 s, 1 s, 2 s, ... up to 15 s, with jitter.
    const base = Math.min(15_000, 500 * 2 ** this.attempt);
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.attempt += 1;
    this.phase = "waiting";
    this.lastCloseCode = code;
    this.reconnectAt = Date.now() + delay;
    this._timer = setTimeout(() => this._connect(), delay);
    this._emit("phase");
    this._emit("change");
  }

  /** Try again now (the "reconnect now" button). */
  reconnectNow() {
    if (this.phase === "waiting") this._connect();
  }

  /** Close for good (leaving the page, or a final bye). */
  stop(why = null) {
    if (why && !this.closedWhy) this.closedWhy = why;
    this.phase = "closed";
    clearTimeout(this._timer);
    clearInterval(this._pinger);
    const ws = this.ws;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
    this._emit("phase");
    this._emit("change");
  }

  /** Leave the room for good. */
  async leave() {
    try {
      if (this.phase === "live") await this.request({ type: "leave" }, 3000);
    } catch {
      // Closing is what matters.
    }
    this.stop({ kind: "bye", code: "left", message: "" });
  }

  // ------------------------------------------------------------------ requests
  _id() {
    const id = this._nextId;
    this._nextId = (this._nextId % 2_000_000_000) + 1;
    return id;
  }

  /** Send a command and wait for its ack (or rtc_answer, audience); rejects with the server's error. */
  request(command, timeout = REQUEST_TIMEOUT) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.phase !== "live") {
        reject(new RequestError("disconnected", "not connected"));
        return;
      }
      const id = this._id();
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RequestError("timeout", "no answer from the server"));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...command, id }));
    });
  }

  /** Send without waiting for a reply (ICE candidates). */
  send(command) {
    if (this.ws && this.phase === "live") this.ws.send(JSON.stringify(command));
  }

  _settle(msg) {
    const entry = this._pending.get(msg.id);
    if (!entry) return false;
    this._pending.delete(msg.id);
    clearTimeout(entry.timer);
    if (msg.type === "error") {
      entry.reject(new RequestError(msg.code, msg.message, msg.retry_after ?? null));
    } else {
      entry.resolve(msg);
    }
    return true;
  }

  // ------------------------------------------------------------------ inbound
  _receive(msg) {
    switch (msg.type) {
      case "joined":
        return this._joined(msg);
      case "snapshot":
        return this._snapshot(msg.snapshot);
      case "ack":
      case "rtc_answer":
      case "audience":
        this._settle(msg);
        return;
      case "pong":
        this._lastPong = Date.now();
        return;
      case "error":
        return this._error(msg);
      case "room_stats":
        this.listeners = msg.listeners;
        this.queueLength = msg.queue_length;
        return this._emit("stats");
      case "active_speakers":
        this.speaking = msg.user_ids || [];
        return this._emit("speakers");
      case "bye":
        return this._bye(msg);
      case "rtc_closed":
        return this._emit("rtc_closed", msg);
      default:
        if (PUBLIC_EVENTS.has(msg.type) || QUEUE_EVENTS.has(msg.type)) this._event(msg);
    }
  }

  _joined(msg) {
    this.phase = "live";
    this.attempt = 0;
    this.you = msg.you;
    this.media = msg.media;
    if (msg.token && !this.token) this.token = msg.token;
    this._adopt(msg.snapshot);
    this._lastPong = Date.now();
    clearInterval(this._pinger);
    this._pinger = setInterval(() => this._ping(), PING_EVERY);
    this._emit("phase");
    this._emit("joined", msg);
    this._emit("change");
  }

  _ping() {
    if (!this.ws || this.phase !== "live") return;
    if (Date.now() - this._lastPong > PING_EVERY * 2 + 5000) {
      // Nothing came back for two rounds: the socket is dead even if it says open.
      this.ws.close();
      this._dropped(4999);
      return;
    }
    this.ws.send(JSON.stringify({ type: "ping", id: this._id() }));
  }

  _error(msg) {
    if (this.phase === "connecting" && msg.id === this._joinId) {
      const why = {
        kind: "join",
        code: msg.code,
        message: msg.message,
        retryAfter: msg.retry_after ?? null,
      };
      if (FINAL_JOIN_ERRORS.has(msg.code)) {
        this.stop(why);
      } else {
        this.closedWhy = null;
        this.ws?.close();
      }
      return;
    }
    if (this._settle(msg)) return;
    this._emit("server_error", msg);
  }

  _bye(msg) {
    if (FINAL_BYES.has(msg.reason)) {
      this.stop({ kind: "bye", code: msg.reason, message: msg.message });
    } else {
      this._emit("bye", msg);
    }
  }

  _snapshot(snapshot) {
    this._adopt(snapshot);
    this._resyncing = false;
    clearTimeout(this._resyncTimer);
    const held = this._held;
    this._held = [];
    for (const ev of held) this._event(ev);
    this._emit("change");
  }

  _adopt(snapshot) {
    this.snap = structuredClone(snapshot);
    this.snap.stage = this.snap.stage || [];
    this.snap.queue = this.snap.queue || [];
    this.snap.invited = this.snap.invited || [];
    this.listeners = snapshot.info.listener_count;
    this.queueLength = snapshot.queue_length;
  }

  resync() {
    if (this._resyncing || this.phase !== "live") return;
    this._resyncing = true;
    this.send({ type: "resync" });
    // If the snapshot never comes (e.g. rate limited), ask again later.
    clearTimeout(this._resyncTimer);
    this._resyncTimer = setTimeout(() => {
      this._resyncing = false;
      this.resync();
    }, 5000);
  }

  /** Whether this viewer receives every QUEUE event, so that a gap means a loss: the stage. */
  receivesWholeQueue() {
    const you = this.snap?.you;
    return Boolean(you && you.role !== "listener");
  }

  /** Whether this viewer receives QUEUE events about others (stage, queue, invitees). */
  seesQueue() {
    const you = this.snap?.you;
    if (!you) return false;
    return you.role !== "listener" || you.hand_position != null || you.invited;
  }

  _event(ev) {
    if (!this.snap) return;
    if (this._resyncing) {
      this._held.push(ev);
      return;
    }
    if (QUEUE_EVENTS.has(ev.type)) {
      const have = this.snap.queue_version;
      if (ev.queue_version <= have) return;
      if (ev.queue_version > have + 1 && this.receivesWholeQueue()) {
        this._held.push(ev);
        this.resync();
        return;
      }
      this.snap.queue_version = ev.queue_version;
    } else {
      const have = this.snap.version;
      if (ev.version <= have) return;
      if (ev.version > have + 1) {
        this._held.push(ev);
        this.resync();
        return;
      }
      this.snap.version = ev.version;
    }
    this._apply(ev);
    this._emit("event", ev);
    this._emit("change");
  }

  // ------------------------------------------------------------------ state
  member(userId) {
    return this.snap?.stage.find((m) => m.user_id === userId) || null;
  }

  _sortStage() {
    // Host first, then by rank; within a rank, by when they came (kept from arrival order).
    this.snap.stage.forEach((m, i) => {
      m._order ??= i;
    });
    this.snap.stage.sort((a, b) => RANK[b.role] - RANK[a.role] || a._order - b._order);
  }

  _apply(ev) {
    const s = this.snap;
    const me = s.you;
    const isMe = me && ev.user_id === me.user_id;
    const dropFromStage = (uid) => {
      s.stage = s.stage.filter((m) => m.user_id !== uid);
    };
    const dropFromQueue = (uid) => {
      s.queue = s.queue.filter((q) => q.user_id !== uid);
      s.invited = s.invited.filter((u) => u !== uid);
    };
    switch (ev.type) {
      case "participant_joined": {
        dropFromStage(ev.user_id);
        s.stage.push({
          user_id: ev.user_id,
          name: ev.name,
          role: ev.role,
          muted: true,
          mute_forced: false,
          _order: Date.now(),
        });
        this._sortStage();
        break;
      }
      case "participant_left":
        dropFromStage(ev.user_id);
        break;
      case "role_changed": {
        const m = this.member(ev.user_id);
        if (ev.role === "listener") {
          dropFromStage(ev.user_id);
        } else if (m) {
          m.role = ev.role;
          m._order = Date.now();
          if (ev.previous === "listener") Object.assign(m, { muted: true, mute_forced: false });
          if (ev.role === "host") m.mute_forced = false;
        } else {
          dropFromQueue(ev.user_id);
          s.stage.push({
            user_id: ev.user_id,
            name: ev.name,
            role: ev.role,
            muted: true,
            mute_forced: false,
            _order: Date.now(),
          });
        }
        this._sortStage();
        if (isMe) {
          const wasOn = me.role !== "listener";
          me.role = ev.role;
          if (wasOn !== (ev.role !== "listener")) Object.assign(me, { muted: true, mute_forced: false });
          if (ev.role !== "listener") Object.assign(me, { hand_position: null, invited: false });
          if (ev.role === "host") me.mute_forced = false;
        }
        break;
      }
      case "mute_changed": {
        const m = this.member(ev.user_id);
        if (m) Object.assign(m, { muted: ev.muted, mute_forced: ev.forced });
        if (isMe) Object.assign(me, { muted: ev.muted, mute_forced: ev.forced });
        break;
      }
      case "participant_kicked":
      case "participant_banned":
        if (isMe && ev.type === "participant_kicked") this.kickedUntil = ev.until;
        dropFromStage(ev.user_id);
        dropFromQueue(ev.user_id);
        break;
      case "room_lock_changed":
        s.info.locked = ev.locked;
        break;
      case "room_ended":
        s.info.status = "ended";
        break;
      case "hand_raised":
        if (this.seesQueue() || isMe) {
          s.queue = s.queue.filter((q) => q.user_id !== ev.user_id);
          if (me?.role !== "listener") s.queue.splice(ev.position - 1, 0, { user_id: ev.user_id, name: ev.name });
        }
        if (isMe) me.hand_position = ev.position;
        this.queueLength = Math.max(this.queueLength, ev.position);
        break;
      case "hand_lowered":
        s.queue = s.queue.filter((q) => q.user_id !== ev.user_id);
        if (isMe) me.hand_position = null;
        else if (me?.hand_position != null && me.hand_position > ev.position) me.hand_position -= 1;
        this.queueLength = Math.max(0, this.queueLength - 1);
        break;
      case "speaker_invited":
        if (!s.invited.includes(ev.user_id)) s.invited.push(ev.user_id);
        if (isMe) me.invited = true;
        break;
      case "invite_withdrawn":
        s.invited = s.invited.filter((u) => u !== ev.user_id);
        if (isMe) me.invited = false;
        break;
      default:
        break;
    }
    s.queue_length = me?.role !== "listener" ? s.queue.length : this.queueLength;
    if (me?.role !== "listener") this.queueLength = s.queue.length;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
