// AuroraClient: one user's connection to Aurora, with the client's half of the guarantees built in:
// the outbox (persisted, retried with the same client_id, in typed order), cursors and sync on every
// (re)connect until has_more is false, gap detection and duplicate dropping by seq, change entries
// applied in order, `delivered` sent when a message reaches the store.

import { Manager } from "socket.io-client";

import { CallsClient } from "./calls.js";
import { Emitter } from "./emitter.js";
import { applyChange, excerpt, isChange, normalizeMessage, reflects } from "./entries.js";
import { AuroraError, retryDelay } from "./errors.js";
import { query, restRequest } from "./rest.js";
import { MemoryStore } from "./stores/memory.js";

const AUTH_CODES = new Set(["auth_required", "auth_invalid", "auth_expired"]);

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function newClientId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  // Insecure browser contexts have no randomUUID; getRandomValues is enough for an idempotency key.
  const bytes = new Uint8Array(16);
  if (c && c.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function byActivity(a, b) {
  const x = a.last_activity_at ?? a.created_at ?? "";
  const y = b.last_activity_at ?? b.created_at ?? "";
  if (x !== y) return x < y ? 1 : -1;
  return b.id - a.id;
}

/** A message as persisted: its attachments without their (expiring, per-viewer) URLs. */
function withoutUrls(message) {
  if (!message.attachments?.length) return message;
  return { ...message, attachments: message.attachments.map(({ url, thumbnail_url: thumb, ...rest }) => rest) };
}

const needsUrls = (m) => !m.deleted && (m.attachments ?? []).some((a) => !a.url);

function publicPending(entry) {
  const { n, local, ...rest } = entry;
  return { ...rest };
}

export class AuroraClient extends Emitter {
  constructor(options) {
    super();
    if (!options || !options.url || !options.token) throw new TypeError("AuroraClient needs { url, token }");
    this.url = String(options.url).replace(/\/+$/, "");
    this.token = options.token;
    this.store = options.store ?? new MemoryStore();
    this._timeoutMs = options.timeoutMs ?? 10000;
    this._initialHistory = options.initialHistory ?? 200;
    this._syncLimit = options.syncLimit ?? 500;
    this._socketOptions = options.socketOptions ?? {};
    this._reconnectDelayMs = options.reconnectDelayMs ?? 500;
    this._reconnectDelayMaxMs = options.reconnectDelayMaxMs ?? 5000;
    this._drop = options.dropIncoming ?? null;
    this._uploadTimeoutMs = options.uploadTimeoutMs ?? 120000;

    this._user = null;
    this._state = "offline";
    this._closed = false;
    this._loaded = null;
    this._epoch = 0;

    this._convs = new Map(); // cid -> Conversation
    this._cursors = new Map(); // cid -> {cursor, floor, counted}
    this._msgs = new Map(); // cid -> Map(seq -> Message)
    this._sorted = new Map(); // cid -> Message[] (cache)
    this._early = new Map(); // cid -> Map(seq -> entry): arrived ahead of the cursor
    this._receipts = new Map(); // cid -> {userId: Receipt}
    this._presence = new Map(); // userId -> PresenceInfo
    this._outbox = new Map(); // clientId -> pending entry
    this._outboxN = 0;
    this._sendPromises = new Map(); // clientId -> {resolve, reject}
    this._sending = new Set(); // cids whose outbox is being drained
    this._appliedWaiters = new Map(); // cid -> [{seq, resolve}]
    this._connWaiters = [];
    this._dirty = new Map();
    this._flushChain = Promise.resolve();
    this._flushTimer = null;
    this._convChanged = new Set();
    this._deliveredDue = new Map();
    this._microtaskQueued = false;
    this._syncing = null;
    this._syncAgain = false;

    this.calls = new CallsClient(this, { RTCPeerConnection: options.RTCPeerConnection });
  }

  // ------------------------------------------------------------ static REST helpers

  static register(url, fields) {
    return restRequest(url, "POST", "/api/auth/register", { body: fields });
  }

  static login(url, username, password) {
    return restRequest(url, "POST", "/api/auth/login", { body: { username, password } });
  }

  get user() {
    return this._user;
  }

  get state() {
    return this._state;
  }

  /**
   * Resolves once the store is loaded (conversations, messages, the outbox and, if persisted, the
   * user are readable), without waiting for a connection: an offline start renders from here.
   * Starts loading if connect() has not yet. The `loaded` event fires at the same moment.
   */
  get ready() {
    return this._load().then(() => undefined);
  }

  /** The Engine.IO transport of the connection: "polling" | "websocket", or null while not connected. */
  get transport() {
    if (!this._chat || !this._chat.connected) return null;
    return this._manager?.engine?.transport?.name ?? null;
  }

  // ------------------------------------------------------------ connection

  connect() {
    if (this._closed) return Promise.reject(new AuroraError("closed", "the client was closed"));
    if (this._connectPromise) return this._connectPromise;
    this._connectPromise = new Promise((resolve, reject) => {
      this._connectResolve = resolve;
      this._connectReject = reject;
    });
    this._setState("connecting", "connect()");
    this._start().catch((err) => this._fatal(err));
    return this._connectPromise;
  }

  async _start() {
    await this._load();
    // Who am I? Retried while the server cannot be reached; an auth error ends it.
    for (let attempt = 1; ; attempt++) {
      if (this._closed) return;
      try {
        const { user } = await this.request("GET", "/api/me");
        await this._adoptUser(user);
        break;
      } catch (err) {
        if (!err.retryable) throw err;
        await sleep(retryDelay(err, attempt));
      }
    }
    if (this._closed) return;
    this._openSockets();
  }

  _fatal(err) {
    const error = err instanceof AuroraError ? err : new AuroraError("internal", String(err?.message ?? err), { cause: err });
    if (this._state === "offline" && this._fatalError) return; // already stopped (closing, then connect_error)
    this._fatalError = error;
    this._setState("offline", error.code, error);
    if (this._connectReject) {
      this._connectReject(error);
      this._connectReject = this._connectResolve = null;
    }
    if (AUTH_CODES.has(error.code)) {
      this._shutdownSockets();
      // Waiting sends and requests get the reason; the outbox itself stays (in a persistent store,
      // for the next client with a fresh token), as with close().
      for (const waiter of this._connWaiters.splice(0)) waiter.reject(error);
      for (const { reject } of this._sendPromises.values()) reject(error);
      this._sendPromises.clear();
    }
  }

  _openSockets() {
    this._manager = new Manager(this.url, {
      autoConnect: false,
      reconnectionDelay: this._reconnectDelayMs,
      reconnectionDelayMax: this._reconnectDelayMaxMs,
      randomizationFactor: 0.5,
      ...this._socketOptions,
    });
    const auth = { token: this.token };
    this._chat = this._manager.socket("/chat", { auth });
    this._callsSocket = this._manager.socket("/calls", { auth });
    const chat = this._chat;

    chat.on("connect", () => this._onConnected());
    // The server says why before it closes a socket on its own (docs/protocol.md "closing").
    const onClosing = (payload) => {
      const code = payload?.code;
      if (this._closed || typeof code !== "string") return;
      if (AUTH_CODES.has(code)) {
        // The session ended or the token expired: reconnecting cannot help. The outbox stays.
        this._fatal(new AuroraError(code, payload.message ?? code));
        return;
      }
      this._closingCode = code; // e.g. rate_limited (a flood): the disconnect's reason, then reconnect
    };
    chat.on("closing", onClosing);
    this._callsSocket.on("closing", onClosing);
    chat.on("disconnect", (reason) => {
      this._epoch++;
      if (this._closed || this._state === "offline") return;
      const why = this._closingCode ?? reason;
      this._closingCode = null;
      this._setState("reconnecting", why);
      // The server closed the socket (a restart, a logout): socket.io does not reconnect by itself then.
      if (reason === "io server disconnect") this._reconnectLater(chat);
    });
    chat.on("connect_error", (err) => {
      if (this._closed) return;
      const code = err?.data?.code;
      if (AUTH_CODES.has(code)) {
        this._fatal(new AuroraError(code, err.data.message ?? err.message));
        return;
      }
      this._setState(this._everConnected ? "reconnecting" : "connecting", code ?? err?.message ?? "connect_error");
      // A refusal by the namespace (e.g. `internal`, database down) is not retried by the Manager.
      if (code) this._reconnectLater(chat);
    });

    this._listen("new_message", (m) => this._ingest(m));
    this._listen("message_changed", (p) => this._ingest(p && p.entry ? p.entry : p));
    this._listen("resync", () => this._requestSync());
    this._listen("conversation_created", ({ conversation }) => this._addConversation(conversation, { fresh: true }));
    this._listen("member_added", (p) => this._onMemberAdded(p));
    this._listen("member_removed", (p) => this._onMemberRemoved(p));
    this._listen("receipt", (r) => this._onReceipt(r));
    this._listen("typing", (t) => this.emit("typing", t));
    this._listen("presence", (p) => this._onPresence(p));

    this.calls._attach(this._callsSocket, (event, handler) => this._listen(event, handler, this._callsSocket, "/calls"));
    chat.connect();
    this._callsSocket.connect();
  }

  _listen(event, handler, socket = this._chat, namespace = "/chat") {
    socket.on(event, (payload) => {
      if (this._drop && this._drop(namespace, event, payload)) return;
      try {
        handler(payload);
      } catch (err) {
        this.emit("error", err instanceof AuroraError ? err : new AuroraError("internal", `${event}: ${err?.message ?? err}`, { cause: err }));
      }
    });
  }

  _reconnectLater(socket, attempt = 1) {
    setTimeout(() => {
      if (!this._closed && !socket.connected && this._state !== "offline") socket.connect();
    }, retryDelay(null, attempt, { baseMs: this._reconnectDelayMs, maxMs: this._reconnectDelayMaxMs }));
  }

  async _onConnected() {
    const epoch = ++this._epoch;
    this._everConnected = true;
    for (const waiter of this._connWaiters.splice(0)) waiter.resolve();
    this._pumpOutbox();
    for (let attempt = 1; ; attempt++) {
      try {
        await this._refreshConversations();
        await this._syncAll();
        break;
      } catch (err) {
        if (epoch !== this._epoch || this._closed) return;
        this.emit("error", err);
        await sleep(retryDelay(err, attempt));
        if (epoch !== this._epoch || this._closed) return;
      }
    }
    if (epoch !== this._epoch || this._closed) return;
    this._setState("connected", "caught_up");
    this._refreshMissingUrls().catch((err) => this.emit("error", err));
    if (this._connectResolve) {
      this._connectResolve();
      this._connectResolve = this._connectReject = null;
    }
  }

  _whenConnected() {
    if (this._closed) return Promise.reject(new AuroraError("closed", "the client was closed"));
    if (this._fatalError && AUTH_CODES.has(this._fatalError.code)) return Promise.reject(this._fatalError);
    if (this._chat && this._chat.connected) return Promise.resolve();
    return new Promise((resolve, reject) => this._connWaiters.push({ resolve, reject }));
  }

  _setState(state, reason, error) {
    if (this._state === state && state !== "offline") return;
    this._state = state;
    const change = { state, reason };
    if (error) change.error = error;
    this.emit("state", change);
  }

  async close() {
    if (this._closed) return;
    this._closed = true;
    this._epoch++;
    this._setState("offline", "close()");
    const closed = new AuroraError("closed", "the client was closed");
    for (const waiter of this._connWaiters.splice(0)) waiter.reject(closed);
    if (this._connectReject) this._connectReject(closed);
    this._connectReject = this._connectResolve = null;
    for (const { reject } of this._sendPromises.values()) reject(closed);
    this._sendPromises.clear();
    this.calls._close();
    this._shutdownSockets();
    if (this._flushTimer) clearTimeout(this._flushTimer);
    this._flushTimer = null;
    await this._flush();
    if (typeof this.store.close === "function") this.store.close();
  }

  _shutdownSockets() {
    this._chat?.disconnect();
    this._callsSocket?.disconnect();
  }

  // ------------------------------------------------------------ store: load and write-behind

  _load() {
    if (!this._loaded) this._loaded = this._loadNow();
    return this._loaded;
  }

  async _loadNow() {
    for (const [key, value] of await this.store.entries("")) {
      const [kind, a, b] = key.split(":");
      if (kind === "u") this._user = value;
      else if (kind === "c") this._convs.set(Number(a), value);
      else if (kind === "k") this._cursors.set(Number(a), value);
      else if (kind === "r") this._receipts.set(Number(a), value);
      else if (kind === "m") this._messageMap(Number(a)).set(Number(b), value);
      else if (kind === "o" && !this._outbox.has(value.clientId)) {
        this._outbox.set(value.clientId, { ...value, status: "queued" });
      }
    }
    for (const entry of this._outbox.values()) this._outboxN = Math.max(this._outboxN, entry.n);
    // messages() read before the load cached what was there then (nothing): drop those lists.
    this._sorted.clear();
    if (this._outbox.size) this._emitPending();
    this.emit("loaded", { user: this._user, conversations: this._convs.size, pending: this._outbox.size });
  }

  async _adoptUser(user) {
    if (this._user && this._user.id !== user.id) {
      // This store was another user's: nothing of theirs may show, and their outbox must not be sent as us.
      const mine = [...this._outbox.values()].filter((e) => e.local);
      await this.store.clear();
      this._convs.clear(); this._cursors.clear(); this._msgs.clear(); this._sorted.clear();
      this._receipts.clear(); this._early.clear(); this._outbox.clear();
      for (const e of mine) this._outbox.set(e.clientId, e);
      this._emitPending();
    }
    this._user = user;
    this._put("u", user);
    for (const e of this._outbox.values()) {
      delete e.local;
      this._put(`o:${e.clientId}`, this._storable(e));
    }
    await this._flush();
  }

  _put(key, value) {
    // Attachment URLs are signed for this viewer and expire: never persisted (refreshed after a connect).
    if (key[0] === "m" && value) value = withoutUrls(value);
    else if (key[0] === "c" && value?.last_message) value = { ...value, last_message: withoutUrls(value.last_message) };
    this._dirty.set(key, value);
    if (!this._flushTimer && !this._closed) this._flushTimer = setTimeout(() => { this._flushTimer = null; this._flush().catch((err) => this.emit("error", err)); }, 0);
  }

  _flush() {
    this._flushChain = this._flushChain.then(async () => {
      if (this._dirty.size === 0) return;
      const changes = [...this._dirty];
      this._dirty.clear();
      await this.store.write(changes);
    });
    return this._flushChain;
  }

  _storable(entry) {
    const { lastError, status, local, ...rest } = entry;
    return rest;
  }

  _messageMap(cid) {
    let map = this._msgs.get(cid);
    if (!map) this._msgs.set(cid, (map = new Map()));
    return map;
  }

  // ------------------------------------------------------------ reading

  conversations() {
    return [...this._convs.values()].sort(byActivity);
  }

  conversation(conversationId) {
    return this._convs.get(Number(conversationId));
  }

  messages(conversationId) {
    const cid = Number(conversationId);
    let sorted = this._sorted.get(cid);
    if (!sorted) {
      sorted = [...(this._msgs.get(cid)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
      this._sorted.set(cid, sorted);
    }
    return sorted.slice();
  }

  pending(conversationId) {
    const all = [...this._outbox.values()].sort((a, b) => a.n - b.n);
    const chosen = conversationId === undefined ? all : all.filter((e) => e.conversationId === Number(conversationId));
    return chosen.map(publicPending);
  }

  presence(userId) {
    return this._presence.get(Number(userId));
  }

  receipts(conversationId) {
    return Object.values(this._receipts.get(Number(conversationId)) ?? {});
  }

  deliveryState(conversationId, seq) {
    let state = "stored";
    for (const r of this.receipts(conversationId)) {
      if (this._user && r.user_id === this._user.id) continue;
      if (r.read_seq >= seq) return "read";
      if (r.delivered_seq >= seq) state = "delivered";
    }
    return state;
  }

  hasOlder(conversationId) {
    const k = this._cursors.get(Number(conversationId));
    return k ? k.floor > 1 : false;
  }

  async loadOlder(conversationId, limit = 50) {
    const cid = Number(conversationId);
    const k = this._cursors.get(cid);
    if (!k || k.floor <= 1) return [];
    const page = await this.history(cid, { beforeSeq: k.floor, limit });
    const added = [];
    const map = this._messageMap(cid);
    for (const raw of page.messages) {
      if (map.has(raw.seq)) continue;
      const message = normalizeMessage(raw, this._user?.id);
      map.set(message.seq, message);
      this._put(`m:${cid}:${message.seq}`, message);
      added.push(message);
    }
    k.floor = page.has_more && page.messages.length ? page.messages[0].seq : 1;
    this._put(`k:${cid}`, k);
    this._sorted.delete(cid);
    return added;
  }

  // ------------------------------------------------------------ the log: ingest entries

  /**
   * One log entry (message or change), live, from an ack, or from sync.
   * Returns "applied" | "duplicate" | "gap" | "unknown".
   */
  _ingest(entry, { fromSync = false } = {}) {
    if (!entry || typeof entry.seq !== "number") return "unknown";
    const cid = entry.conversation_id;
    const k = this._cursors.get(cid);
    if (!k || !this._convs.has(cid)) {
      this._bufferEarly(cid, entry);
      this._requestSync();
      return "unknown";
    }
    if (entry.seq <= k.cursor) return "duplicate";
    if (entry.seq > k.cursor + 1) {
      if (!fromSync) {
        this._bufferEarly(cid, entry);
        this._requestSync();
        return "gap";
      }
      k.cursor = entry.seq - 1; // sync is the server's word: what it skips does not exist
    }
    this._applyOne(cid, k, entry);
    const early = this._early.get(cid);
    if (early) {
      for (let next = early.get(k.cursor + 1); next; next = early.get(k.cursor + 1)) this._applyOne(cid, k, next);
      for (const seq of early.keys()) if (seq <= k.cursor) early.delete(seq);
      if (early.size === 0) this._early.delete(cid);
    }
    return "applied";
  }

  _bufferEarly(cid, entry) {
    if (!this._early.has(cid)) this._early.set(cid, new Map());
    this._early.get(cid).set(entry.seq, entry);
  }

  _applyOne(cid, k, entry) {
    const me = this._user?.id;
    const conv = this._convs.get(cid);
    const map = this._messageMap(cid);
    k.cursor = entry.seq;
    if (isChange(entry)) {
      const target = map.get(entry.target_seq);
      // A target we do not hold (older than what we loaded) comes in its current state when fetched.
      if (target && !reflects(target, entry)) {
        const updated = applyChange(target, entry, me);
        this._storeMessage(cid, updated);
        if (conv.last_message && conv.last_message.seq === updated.seq) {
          conv.last_message = updated;
          this._convChanged.add(cid);
        }
        this.emit("message", updated);
      }
      if (entry.kind === "edit" || entry.kind === "delete") {
        this._refreshReplies(cid, entry.target_seq, entry.kind === "delete" ? null : excerpt(entry.body));
      }
    } else {
      const message = normalizeMessage(entry, me);
      this._storeMessage(cid, message);
      if (!conv.last_message || message.seq >= conv.last_message.seq) {
        conv.last_message = message;
        conv.last_activity_at = message.created_at ?? conv.last_activity_at;
      }
      if (entry.seq > k.counted) {
        if (message.sender_id === me) {
          // Sending moves the sender's own pointers to the message (no receipt comes for that).
          conv.read_seq = Math.max(conv.read_seq ?? 0, message.seq);
          conv.delivered_seq = Math.max(conv.delivered_seq ?? 0, message.seq);
          conv.unread_count = 0;
        } else if (message.seq > (conv.read_seq ?? 0)) {
          conv.unread_count = (conv.unread_count ?? 0) + 1;
        }
      }
      if (message.sender_id !== me) this._deliveredDue.set(cid, Math.max(this._deliveredDue.get(cid) ?? 0, message.seq));
      this._convChanged.add(cid);
      this.emit("message", message);
    }
    k.counted = Math.max(k.counted, entry.seq);
    if (entry.seq > (conv.last_seq ?? 0)) {
      conv.last_seq = entry.seq;
      this._convChanged.add(cid);
    }
    this._put(`k:${cid}`, k);
    this._resolveApplied(cid, k.cursor);
    this._afterChanges();
  }

  _storeMessage(cid, message) {
    this._messageMap(cid).set(message.seq, message);
    this._sorted.delete(cid);
    this._put(`m:${cid}:${message.seq}`, message);
  }

  /** Replies quote their target: an edit or a delete changes their excerpt (even when the target is not stored). */
  _refreshReplies(cid, targetSeq, newExcerpt) {
    for (const m of this._msgs.get(cid)?.values() ?? []) {
      if (!m.reply_to || m.reply_to.seq !== targetSeq || m.reply_to.excerpt === newExcerpt) continue;
      const updated = { ...m, reply_to: { ...m.reply_to, excerpt: newExcerpt } };
      this._storeMessage(cid, updated);
      this.emit("message", updated); // its current state changed too
    }
  }

  _afterChanges() {
    if (this._microtaskQueued) return;
    this._microtaskQueued = true;
    queueMicrotask(() => {
      this._microtaskQueued = false;
      for (const cid of this._convChanged) {
        const conv = this._convs.get(cid);
        if (!conv) continue;
        this._put(`c:${cid}`, conv);
        this.emit("conversation", { ...conv });
      }
      this._convChanged.clear();
      this._sendDelivered();
    });
  }

  _sendDelivered() {
    if (!this._chat || !this._chat.connected) return; // sent after the next sync instead
    for (const [cid, seq] of this._deliveredDue) {
      const conv = this._convs.get(cid);
      this._deliveredDue.delete(cid);
      if (!conv || seq <= (conv.delivered_seq ?? 0)) continue;
      conv.delivered_seq = seq;
      this._chat.emit("delivered", { conversation_id: cid, seq });
    }
  }

  _applied(cid, seq) {
    const k = this._cursors.get(cid);
    if (!k || k.cursor >= seq || !this._convs.has(cid)) return Promise.resolve();
    return new Promise((resolve) => {
      if (!this._appliedWaiters.has(cid)) this._appliedWaiters.set(cid, []);
      this._appliedWaiters.get(cid).push({ seq, resolve });
    });
  }

  _resolveApplied(cid, cursor, all = false) {
    const waiters = this._appliedWaiters.get(cid);
    if (!waiters) return;
    const keep = [];
    for (const w of waiters) (all || w.seq <= cursor ? w.resolve() : keep.push(w));
    if (keep.length) this._appliedWaiters.set(cid, keep);
    else this._appliedWaiters.delete(cid);
  }

  // ------------------------------------------------------------ sync

  _requestSync() {
    if (!this._chat || !this._chat.connected || this._closed) return; // the next connect syncs anyway
    this._syncAll().catch((err) => this.emit("error", err));
  }

  _syncAll() {
    if (this._syncing) {
      this._syncAgain = true;
      return this._syncing;
    }
    this._syncing = (async () => {
      try {
        do {
          this._syncAgain = false;
          await this._syncOnce();
        } while (this._syncAgain && !this._closed);
      } finally {
        this._syncing = null;
      }
    })();
    return this._syncing;
  }

  async _syncOnce() {
    let res = await this._request("sync", {});
    for (let staleRetries = 0; ;) {
      await this._reconcile(res.conversations);
      const wanted = {};
      for (const { id, last_seq: lastSeq } of res.conversations) {
        const k = this._cursors.get(id);
        if (k && k.cursor < lastSeq) wanted[id] = k.cursor;
      }
      if (Object.keys(wanted).length === 0) break;
      try {
        res = await this._request("sync", { cursors: wanted, limit: this._syncLimit });
      } catch (err) {
        // A conversation left on another device meanwhile: learn the list again, drop it, retry.
        if (err.code === "not_found" && staleRetries++ < 3) {
          res = await this._request("sync", {});
          continue;
        }
        throw err;
      }
      let progressed = false;
      for (const entry of res.messages) if (this._ingest(entry, { fromSync: true }) === "applied") progressed = true;
      if (!progressed) break; // nothing more to get (the list's last_seq was ahead of what sync serves)
    }
    this._sendDelivered();
  }

  /** The sync answer's conversation list against ours: drop what we left, fetch what is new. */
  async _reconcile(list) {
    const ids = new Set(list.map((c) => c.id));
    for (const cid of [...this._convs.keys()]) if (!ids.has(cid)) this._removeConversation(cid);
    if (list.some((c) => !this._convs.has(c.id))) await this._refreshConversations();
    for (const { id, last_seq: lastSeq } of list) {
      const conv = this._convs.get(id);
      if (conv && lastSeq > (conv.last_seq ?? 0)) conv.last_seq = lastSeq;
    }
  }

  async _refreshConversations() {
    const { conversations } = await this.request("GET", "/api/conversations");
    const ids = new Set(conversations.map((c) => c.id));
    for (const cid of [...this._convs.keys()]) if (!ids.has(cid)) this._removeConversation(cid);
    for (const fresh of conversations) this._mergeConversation(fresh);
  }

  _mergeConversation(fresh) {
    const cid = fresh.id;
    const old = this._convs.get(cid);
    const k = this._ensureCursor(cid, fresh.last_seq, false);
    const merged = { ...old, ...fresh };
    // What this store already applied beyond the server's snapshot stays (it raced the REST answer).
    merged.last_seq = Math.max(fresh.last_seq ?? 0, old?.last_seq ?? 0, k.cursor);
    if (old?.last_message && (!fresh.last_message || old.last_message.seq > fresh.last_message.seq)) merged.last_message = old.last_message;
    else if (fresh.last_message) merged.last_message = normalizeMessage(fresh.last_message, this._user?.id);
    let unread = fresh.unread_count ?? 0;
    for (const m of this._msgs.get(cid)?.values() ?? []) {
      if (m.seq > fresh.last_seq && m.sender_id !== this._user?.id && m.seq > (fresh.read_seq ?? 0)) unread++;
    }
    merged.unread_count = unread;
    k.counted = Math.max(fresh.last_seq ?? 0, k.cursor);
    this._put(`k:${cid}`, k);
    for (const member of fresh.members ?? []) this._notePresence(member);
    if (!old || JSON.stringify(old) !== JSON.stringify(merged)) {
      this._convs.set(cid, merged);
      this._convChanged.add(cid);
      this._afterChanges();
    }
  }

  /** A conversation this store has never seen starts initialHistory entries before its last_seq. */
  _ensureCursor(cid, lastSeq, fresh) {
    let k = this._cursors.get(cid);
    if (!k) {
      const start = fresh ? 0 : Math.max(0, (lastSeq ?? 0) - this._initialHistory);
      k = { cursor: start, floor: start + 1, counted: start };
      this._cursors.set(cid, k);
      this._put(`k:${cid}`, k);
    }
    return k;
  }

  _addConversation(conversation, { fresh }) {
    const cid = conversation.id;
    if (this._convs.has(cid)) {
      this._mergeConversation({ ...this._convs.get(cid), ...conversation, last_message: this._convs.get(cid).last_message });
      return;
    }
    const k = this._ensureCursor(cid, conversation.last_seq, fresh);
    // A member who is added starts with both pointers at last_seq (docs/protocol.md).
    const pointer = fresh ? 0 : conversation.last_seq ?? 0;
    k.counted = Math.max(k.counted, pointer);
    this._convs.set(cid, { last_message: null, unread_count: 0, read_seq: pointer, delivered_seq: pointer, ...conversation });
    for (const member of conversation.members ?? []) this._notePresence(member);
    this._convChanged.add(cid);
    this._afterChanges();
    if ((conversation.last_seq ?? 0) > k.cursor || this._early.has(cid)) this._requestSync();
  }

  _removeConversation(cid) {
    this._convs.delete(cid);
    this._cursors.delete(cid);
    this._early.delete(cid);
    this._sorted.delete(cid);
    for (const seq of this._msgs.get(cid)?.keys() ?? []) this._put(`m:${cid}:${seq}`, undefined);
    this._msgs.delete(cid);
    this._receipts.delete(cid);
    for (const key of [`c:${cid}`, `k:${cid}`, `r:${cid}`]) this._put(key, undefined);
    this._resolveApplied(cid, Infinity, true);
    this.emit("conversation_removed", { conversation_id: cid });
  }

  // ------------------------------------------------------------ other live events

  _onMemberAdded({ conversation_id: cid, user, conversation }) {
    if (this._user && user.id === this._user.id && !this._convs.has(cid)) {
      this._addConversation(conversation, { fresh: false });
      return;
    }
    const conv = this._convs.get(cid);
    if (!conv) return;
    conv.members = conversation?.members ?? [...(conv.members ?? []).filter((m) => m.id !== user.id), user];
    this._notePresence(user);
    this._convChanged.add(cid);
    this._afterChanges();
  }

  _onMemberRemoved({ conversation_id: cid, user }) {
    if (this._user && user.id === this._user.id) {
      if (this._convs.has(cid)) this._removeConversation(cid);
      return;
    }
    const conv = this._convs.get(cid);
    if (!conv) return;
    conv.members = (conv.members ?? []).filter((m) => m.id !== user.id);
    this._convChanged.add(cid);
    this._afterChanges();
  }

  _onReceipt(receipt) {
    const cid = receipt.conversation_id;
    const all = this._receipts.get(cid) ?? {};
    all[receipt.user_id] = { ...receipt };
    this._receipts.set(cid, all);
    this._put(`r:${cid}`, all);
    if (this._user && receipt.user_id === this._user.id) this._movePointers(cid, receipt);
    this.emit("receipt", receipt);
  }

  _movePointers(cid, { read_seq: readSeq, delivered_seq: deliveredSeq }) {
    const conv = this._convs.get(cid);
    if (!conv) return;
    const before = [conv.read_seq, conv.delivered_seq, conv.unread_count];
    conv.delivered_seq = Math.max(conv.delivered_seq ?? 0, deliveredSeq ?? 0);
    if ((readSeq ?? 0) > (conv.read_seq ?? 0)) {
      conv.read_seq = readSeq;
      const k = this._cursors.get(cid);
      if (k && k.floor <= readSeq + 1) {
        // The store holds everything after read_seq: count exactly.
        let unread = 0;
        for (const m of this._msgs.get(cid)?.values() ?? []) if (m.seq > readSeq && m.sender_id !== this._user?.id) unread++;
        conv.unread_count = unread;
      }
    }
    if (before.join() !== [conv.read_seq, conv.delivered_seq, conv.unread_count].join()) {
      this._convChanged.add(cid);
      this._afterChanges();
    }
  }

  _onPresence(p) {
    this._notePresence({ id: p.user_id, online: p.online, last_seen_at: p.last_seen_at });
    for (const conv of this._convs.values()) {
      for (const member of conv.members ?? []) {
        if (member.id === p.user_id) {
          member.online = p.online;
          member.last_seen_at = p.last_seen_at;
        }
      }
    }
    this.emit("presence", p);
  }

  _notePresence(user) {
    if (user && typeof user.online === "boolean") {
      this._presence.set(user.id, { user_id: user.id, online: user.online, last_seen_at: user.last_seen_at ?? null });
    }
  }

  // ------------------------------------------------------------ writing

  async _request(event, payload, socket = this._chat) {
    if (!socket) throw new AuroraError("unavailable", "not connected yet");
    let ack;
    try {
      ack = await socket.timeout(this._timeoutMs).emitWithAck(event, payload);
    } catch (err) {
      if (this._closed) throw new AuroraError("closed", "the client was closed", { cause: err });
      throw new AuroraError("timeout", `${event}: ${err?.message ?? "no answer"} (timeout ${this._timeoutMs} ms)`, { cause: err });
    }
    if (!ack || ack.ok !== true) throw AuroraError.fromWire(ack && ack.error);
    return ack;
  }

  /** A request retried (when connected) until it succeeds or fails for a reason a retry cannot fix. */
  async _retrying(event, payload, socket = this._chat) {
    for (let attempt = 1; ; attempt++) {
      if (socket === this._chat) await this._whenConnected();
      try {
        return await this._request(event, payload, socket);
      } catch (err) {
        if (this._closed || !err.retryable) throw err;
        await sleep(retryDelay(err, attempt));
      }
    }
  }

  send(conversationId, body, { replyTo, attachments, clientId } = {}) {
    if (this._closed) return Promise.reject(new AuroraError("closed", "the client was closed"));
    const entry = {
      clientId: clientId ?? newClientId(),
      conversationId: Number(conversationId),
      body,
      replyTo: replyTo ?? null,
      attachments: attachments ?? [],
      createdAt: Date.now(),
      n: ++this._outboxN,
      status: "queued",
      lastError: null,
      attempts: 0,
    };
    if (!this._user) entry.local = true; // typed before we know whose store this is
    const promise = new Promise((resolve, reject) => this._sendPromises.set(entry.clientId, { resolve, reject }));
    this._outbox.set(entry.clientId, entry);
    if (this._user) this._put(`o:${entry.clientId}`, this._storable(entry));
    this._emitPending();
    // In the store before it is sent: a reload from here on still sends it.
    this._flush().then(() => this._pumpOutbox(), (err) => this.emit("error", err));
    return promise;
  }

  _emitPending() {
    this.emit("pending", this.pending());
  }

  _pumpOutbox() {
    if (!this._chat || this._closed || !this._user) return;
    for (const entry of this._outbox.values()) {
      if (!this._sending.has(entry.conversationId)) this._drain(entry.conversationId);
    }
  }

  async _drain(cid) {
    this._sending.add(cid);
    try {
      for (;;) {
        if (this._closed) return;
        const next = this.pending(cid)[0];
        if (!next) return;
        await this._deliver(this._outbox.get(next.clientId));
      }
    } catch (err) {
      if (AUTH_CODES.has(err?.code)) {
        // Signed out (closing/connect_error): the sends stay in the outbox; their promises say why.
        for (const { reject } of this._sendPromises.values()) reject(err);
        this._sendPromises.clear();
      } else if (!this._closed) this.emit("error", err);
    } finally {
      this._sending.delete(cid);
    }
  }

  async _deliver(entry) {
    const payload = { conversation_id: entry.conversationId, body: entry.body, client_id: entry.clientId };
    if (entry.replyTo != null) payload.reply_to_seq = entry.replyTo;
    if (entry.attachments.length) payload.attachments = entry.attachments;
    for (let attempt = 1; ; attempt++) {
      await this._whenConnected();
      entry.status = "sending";
      entry.attempts++;
      this._emitPending();
      let ack;
      try {
        ack = await this._request("send_message", payload);
      } catch (err) {
        if (this._closed) return;
        if (!err.retryable) {
          this._finishPending(entry, null, err);
          return;
        }
        entry.status = "queued";
        entry.lastError = err;
        this._emitPending();
        await sleep(retryDelay(err, attempt));
        continue;
      }
      this._ingest(ack.message);
      // Out of the outbox only once the store holds it (an ack ahead of a gap waits for the catch-up),
      // so a send never leaves pending() before it is in messages().
      const cid = ack.message.conversation_id;
      if (!this._cursors.get(cid) || !this._convs.has(cid)) await this._syncAll().catch(() => {});
      await this._applied(cid, ack.message.seq);
      if (this._closed) return; // still in the outbox: the next run sends it again, with its client_id
      this._finishPending(entry, ack.message, null);
      return;
    }
  }

  _finishPending(entry, message, error) {
    this._outbox.delete(entry.clientId);
    this._put(`o:${entry.clientId}`, undefined);
    this._emitPending();
    const promise = this._sendPromises.get(entry.clientId);
    this._sendPromises.delete(entry.clientId);
    if (error) {
      this.emit("send_failed", { pending: publicPending(entry), error });
      promise?.reject(error);
      return;
    }
    const cid = message.conversation_id;
    // Resolve once the message is in the store (at once, unless it arrived ahead of a gap being filled).
    this._applied(cid, message.seq).then(() => {
      promise?.resolve(this._msgs.get(cid)?.get(message.seq) ?? normalizeMessage(message, this._user?.id));
    });
  }

  async _change(event, conversationId, seq, extra) {
    const cid = Number(conversationId);
    const ack = await this._retrying(event, { conversation_id: cid, seq, ...extra });
    if (ack.entry) {
      this._ingest(ack.entry);
      await this._applied(cid, ack.entry.seq);
    }
    return this._msgs.get(cid)?.get(seq) ?? normalizeMessage(ack.message, this._user?.id);
  }

  edit(conversationId, seq, body) {
    return this._change("edit_message", conversationId, seq, { body, client_id: newClientId() });
  }

  delete(conversationId, seq) {
    return this._change("delete_message", conversationId, seq, {});
  }

  react(conversationId, seq, emoji) {
    return this._change("react", conversationId, seq, { emoji });
  }

  unreact(conversationId, seq, emoji) {
    return this._change("unreact", conversationId, seq, { emoji });
  }

  async markRead(conversationId, seq) {
    const cid = Number(conversationId);
    this._movePointers(cid, { read_seq: seq, delivered_seq: seq });
    try {
      const ack = await this._retrying("mark_read", { conversation_id: cid, seq });
      const receipt = { conversation_id: cid, user_id: ack.user_id, delivered_seq: ack.delivered_seq, read_seq: ack.read_seq };
      this._movePointers(cid, receipt);
      return receipt;
    } catch (err) {
      if (!this._closed) this.emit("error", err);
      return null;
    }
  }

  typing(conversationId, typing) {
    if (this._chat && this._chat.connected) this._chat.volatile.emit("typing", { conversation_id: Number(conversationId), typing: Boolean(typing) });
  }

  // ------------------------------------------------------------ attachments

  /**
   * Upload a file (POST /api/uploads, multipart field `file`): a Blob or File, bytes (Uint8Array,
   * ArrayBuffer) or, in Node, a path. Resolves with {id, name, content_type, size, sha256, width?,
   * height?}; send it with send(cid, body, {attachments: [upload.id]}). Errors: AuroraError
   * too_large (413), invalid (400), rate_limited, unavailable (503).
   */
  async upload(file, { filename, timeoutMs = this._uploadTimeoutMs } = {}) {
    let blob = file;
    let name = filename;
    if (typeof file === "string") {
      const [{ readFile }, path] = await Promise.all([import("node:fs/promises"), import("node:path")]);
      blob = new Blob([await readFile(file)]);
      name ??= path.basename(file);
    } else if (file instanceof ArrayBuffer || ArrayBuffer.isView(file)) {
      blob = new Blob([file]);
    } else if (!(typeof Blob !== "undefined" && file instanceof Blob)) {
      throw new TypeError("upload() takes a Blob or File, bytes, or a file path");
    }
    name ??= file?.name || "file";
    const form = new FormData();
    form.append("file", blob, name);
    const { upload } = await restRequest(this.url, "POST", "/api/uploads", { token: this.token, body: form, timeoutMs });
    return upload;
  }

  /**
   * Fetch fresh attachment URLs for a conversation's stored messages (they expire: a message fetch
   * signs new ones). The client does it by itself after every connect for messages loaded from the
   * store; call it when an image fails to load in a long session. Resolves with the messages changed.
   */
  async refreshAttachments(conversationId, { all = true } = {}) {
    const cid = Number(conversationId);
    const wanted = (this.messages(cid)).filter((m) => !m.deleted && m.attachments?.length && (all || needsUrls(m)));
    if (!wanted.length) return [];
    const bySeq = new Map(wanted.map((m) => [m.seq, m]));
    const last = wanted.at(-1).seq;
    const changed = [];
    for (let after = wanted[0].seq - 1; after < last;) {
      const page = await this.history(cid, { afterSeq: after, limit: 200 });
      for (const fresh of page.messages) {
        const stale = bySeq.get(fresh.seq);
        const current = this._msgs.get(cid)?.get(fresh.seq);
        if (!stale || !current) continue;
        const updated = { ...current, attachments: fresh.attachments ?? [] };
        this._storeMessage(cid, updated);
        this.emit("message", updated);
        changed.push(updated);
      }
      if (!page.has_more || !page.messages.length) break;
      after = page.messages.at(-1).seq;
    }
    return changed;
  }

  async _refreshMissingUrls() {
    for (const cid of this._convs.keys()) {
      if (this.messages(cid).some(needsUrls)) await this.refreshAttachments(cid, { all: false });
    }
  }

  // ------------------------------------------------------------ REST helpers

  request(method, path, body) {
    return restRequest(this.url, method, path, { token: this.token, body, timeoutMs: this._timeoutMs });
  }

  async me() {
    return (await this.request("GET", "/api/me")).user;
  }

  async searchUsers(q) {
    return (await this.request("GET", `/api/users${query({ q })}`)).users;
  }

  async createConversation(userIds, { title } = {}) {
    const body = { user_ids: userIds };
    if (title !== undefined) body.title = title;
    const { conversation } = await this.request("POST", "/api/conversations", body);
    if (this._user) this._addConversation(conversation, { fresh: !this._convs.has(conversation.id) && !conversation.last_seq });
    return this._convs.get(conversation.id) ? { ...this._convs.get(conversation.id) } : conversation;
  }

  async addMembers(conversationId, userIds) {
    return (await this.request("POST", `/api/conversations/${Number(conversationId)}/members`, { user_ids: userIds })).conversation;
  }

  async leaveConversation(conversationId) {
    await this.request("DELETE", `/api/conversations/${Number(conversationId)}/members/me`);
    if (this._convs.has(Number(conversationId))) this._removeConversation(Number(conversationId));
  }

  async history(conversationId, { beforeSeq, afterSeq, limit } = {}) {
    const q = query({ before_seq: beforeSeq, after_seq: afterSeq, limit });
    return this.request("GET", `/api/conversations/${Number(conversationId)}/messages${q}`);
  }

  search(q, { conversationId, limit, before } = {}) {
    return this.request("GET", `/api/search${query({ q, conversation_id: conversationId, limit, before })}`);
  }

  async callHistory(conversationId, { limit } = {}) {
    return (await this.request("GET", `/api/calls${query({ conversation_id: conversationId, limit })}`)).calls;
  }

  async iceServers() {
    return (await this.request("GET", "/api/ice-servers")).ice_servers;
  }

  /** Ends this device's session (`{everywhere: true}`: every session of the user), then close(). */
  async logout({ everywhere = false } = {}) {
    await this.request("POST", "/api/auth/logout", everywhere ? { everywhere: true } : undefined);
    await this.close();
  }
}
