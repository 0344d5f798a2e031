// Calls on /calls: CallsClient (invite/accept/reject/hangup, incoming/ended) and a CallSession per call
// that owns one RTCPeerConnection per remote participant, negotiated with MDN's perfect negotiation.

import { Emitter } from "./emitter.js";
import { AuroraError } from "./errors.js";

export class CallsClient extends Emitter {
  constructor(client, { RTCPeerConnection } = {}) {
    super();
    this._client = client;
    this._RTC = RTCPeerConnection ?? globalThis.RTCPeerConnection ?? null;
    this._sessions = new Map();
    this._ended = new Set();
    this._socket = null;
    this._waiters = [];
    this._rejoining = Promise.resolve();  // the rejoin after the latest (re)connect
    this._connects = 0;  // how many times the /calls socket has (re)connected
  }

  _attach(socket, listen) {
    this._socket = socket;
    socket.on("connect", () => {
      this._connects += 1;
      // Set before the waiters run: a signal waits for the rejoin, since the server refuses
      // signals from a device that is not (yet again) in the call.
      this._rejoining = this._rejoinAll();
      for (const w of this._waiters.splice(0)) w.resolve();
    });
    listen("call_incoming", ({ call, from_user: fromUser }) => {
      const session = this._sessionFor(call);
      if (session) this.emit("incoming", { call, fromUser, session });
    });
    listen("call_accepted", ({ call_id: id, user_id: userId, call }) => this._sessions.get(id)?._onAccepted(userId, call));
    listen("call_left", ({ call_id: id, user_id: userId, call }) => this._sessions.get(id)?._onLeft(userId, call));
    listen("call_rejoined", ({ call_id: id, user_id: userId }) => this._sessions.get(id)?._onRejoined(userId));
    listen("call_signal", (signal) => this._sessions.get(signal.call_id)?._onSignal(signal));
    listen("call_ended", ({ call_id: id, reason, call }) => this._end(id, reason, call ?? null));
  }

  _close() {
    for (const session of [...this._sessions.values()]) session._close("closed", null);
    this._sessions.clear();
    const closed = new AuroraError("closed", "the client was closed");
    for (const w of this._waiters.splice(0)) w.reject(closed);
  }

  async _request(event, payload) {
    if (!this._socket) throw new AuroraError("unavailable", "not connected yet; call client.connect() first");
    if (!this._socket.connected) await new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    return this._client._request(event, payload, this._socket);
  }

  _sessionFor(call) {
    if (this._ended.has(call.id) || call.state === "ended") return null;
    let session = this._sessions.get(call.id);
    if (!session) {
      session = new CallSession(this, call);
      this._sessions.set(call.id, session);
    } else {
      session._update(call);
    }
    return session;
  }

  _end(callId, reason, call) {
    const session = this._sessions.get(callId);
    this._sessions.delete(callId);
    if (session) session._close(reason, call);
    // call_ended may come more than once for a call (answered_elsewhere, then the real end): once here.
    if (this._ended.has(callId)) return;
    this._ended.add(callId);
    this.emit("ended", { callId, reason, call });
  }

  async _rejoinAll() {
    for (const session of [...this._sessions.values()]) {
      if (!session._joined || session.state === "ended") continue;
      try {
        const { call } = await this._request("call_rejoin", { call_id: session.id });
        session._update(call);
      } catch (err) {
        // Past the grace period, or the call ended while we were away.
        if (err.code === "conflict" || err.code === "not_found") this._end(session.id, "disconnected", null);
        else this._client.emit("error", err);
      }
    }
  }

  async invite(conversationId, media, options = {}) {
    const iceServers = await this._iceServers();
    const { call } = await this._request("call_invite", { conversation_id: Number(conversationId), media });
    const session = this._sessionFor(call) ?? new CallSession(this, call);
    session._join(call, options, iceServers);
    return session;
  }

  async accept(callId, options = {}) {
    const iceServers = await this._iceServers();
    const session = this._sessions.get(callId);
    if (session) session._prepare(options, iceServers); // an offer may arrive before the ack
    const { call } = await this._request("call_accept", { call_id: callId });
    const live = this._sessionFor(call) ?? new CallSession(this, call);
    live._join(call, options, iceServers);
    return live;
  }

  async reject(callId) {
    const { call } = await this._request("call_reject", { call_id: callId });
    this._end(callId, "rejected", call);
    return call;
  }

  async hangup(callId) {
    const { call } = await this._request("call_hangup", { call_id: callId });
    this._end(callId, "hangup", call);
    return call;
  }

  session(callId) {
    return this._sessions.get(callId);
  }

  sessions() {
    return [...this._sessions.values()];
  }

  async _iceServers() {
    try {
      return await this._client.iceServers();
    } catch (err) {
      this._client.emit("error", err);
      return [];
    }
  }

  async _sendSignal(payload) {
    if (this._socket && !this._socket.connected) {
      await new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    }
    await this._rejoining;
    const connects = this._connects;
    try {
      return await this._request("call_signal", payload);
    } catch (err) {
      // Emitted as the socket dropped: socket.io-client sends what it buffered while disconnected
      // before it reports "connect", so the server saw it before this reconnect's call_rejoin and
      // refused it (conflict: not in the call yet). It was lost with the dropped socket.
      if (err.code === "conflict" && this._connects !== connects) err.crossedReconnect = true;
      throw err;
    }
  }

  /** Sends a signal; failures that mean "this signal no longer matters" are dropped. Settles when done. */
  _signal(callId, toUserId, type, data) {
    return this._sendSignal({ call_id: callId, to_user_id: toUserId, type, data }).catch((err) => {
      // A signal lost with a dropped socket is not an error: call_rejoin on reconnect makes the
      // other side restart ICE, which renegotiates from scratch.
      if (err.code === "closed" || (err.code === "timeout" && !this._socket.connected)) return;
      if (err.crossedReconnect) return;
      // not_found: the peer is no longer in the call (it left, or hung up a direct call, whose end
      // follows in a moment); its call_left / call_ended is on its way. Nothing to do.
      if (err.code === "not_found") return;
      // A late candidate of a call that has just ended (conflict) does not matter either.
      if (!this._sessions.has(callId) || this._sessions.get(callId).state === "ended") return;
      this._client.emit("error", err);
    });
  }
}

export class CallSession extends Emitter {
  constructor(calls, call) {
    super();
    this._calls = calls;
    this.id = call.id;
    this.conversationId = call.conversation_id;
    this.media = call.media;
    this.call = call;
    this.state = call.state === "ended" ? "ended" : call.state;
    this._joined = false;
    this._peers = new Map(); // userId -> Peer
    this._localStream = null;
    this._iceServers = [];
  }

  get _myId() {
    return this._calls._client.user?.id;
  }

  peerConnection(userId) {
    if (userId === undefined) return this._peers.values().next().value?.pc;
    return this._peers.get(userId)?.pc;
  }

  peerConnections() {
    return new Map([...this._peers].map(([id, peer]) => [id, peer.pc]));
  }

  hangup() {
    return this._calls.hangup(this.id);
  }

  _update(call) {
    this.call = call;
    if (this.state !== "ended") this.state = call.state;
    this.emit("call", call);
  }

  _prepare(options, iceServers) {
    this._localStream = options.localStream ?? this._localStream;
    this._iceServers = iceServers;
  }

  _join(call, options, iceServers) {
    this._prepare(options, iceServers);
    this._joined = true;
    this._update(call);
    // Connect to everyone already in (the caller, for an accept; nobody yet, for an invite).
    for (const userId of call.participants ?? []) if (userId !== this._myId) this._peer(userId);
  }

  _onAccepted(userId, call) {
    this._update(call);
    if (this._joined && userId !== this._myId) this._peer(userId);
  }

  _onLeft(userId, call) {
    this._update(call);
    const peer = this._peers.get(userId);
    if (peer) {
      peer.close();
      this._peers.delete(userId);
    }
  }

  _onRejoined(userId) {
    // The other side's socket came back (same device): renegotiate its transport.
    this._peers.get(userId)?.restartIce();
  }

  _onSignal(signal) {
    if (this.state === "ended" || !this._calls._RTC) return;
    this._peer(signal.from_user_id).receive(signal.type, signal.data);
  }

  _peer(userId) {
    let peer = this._peers.get(userId);
    if (!peer) {
      if (!this._calls._RTC) throw new AuroraError("invalid", "no RTCPeerConnection here: pass { RTCPeerConnection } to AuroraClient");
      peer = new Peer(this, userId);
      this._peers.set(userId, peer);
    }
    return peer;
  }

  _close(reason, call) {
    if (this.state === "ended") return;
    this.state = "ended";
    if (call) this.call = call;
    for (const peer of this._peers.values()) peer.close();
    this._peers.clear();
    this.emit("ended", { reason, call });
  }
}

/** One RTCPeerConnection to one remote user, with perfect negotiation (MDN). */
class Peer {
  constructor(session, userId) {
    this.session = session;
    this.userId = userId;
    // The peer with the lower user id is polite: it yields when offers collide.
    this.polite = session._myId < userId;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.restartingIce = false;
    this.pendingCandidates = [];
    this.chain = Promise.resolve();
    const RTC = session._calls._RTC;
    const pc = new RTC({ iceServers: session._iceServers });
    this.pc = pc;

    pc.addEventListener("negotiationneeded", async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        this.signal(pc.localDescription.type, descriptionJSON(pc.localDescription));
      } catch (err) {
        this.report(err);
      } finally {
        this.makingOffer = false;
      }
    });
    pc.addEventListener("icecandidate", ({ candidate }) => {
      if (candidate) this.signal("candidate", typeof candidate.toJSON === "function" ? candidate.toJSON() : candidate);
    });
    // A failed transport restarts ICE once (until connected again). Chromium may report the failure
    // in connectionState alone, its iceConnectionState staying "disconnected": a restart waiting for
    // iceConnectionState "failed" would never come, and the call would stay unconnected.
    const restartIfFailed = () => {
      if (pc.connectionState === "connected") this.restartingIce = false;
      const failed = pc.iceConnectionState === "failed" || pc.connectionState === "failed";
      if (failed && !this.restartingIce && pc.signalingState !== "closed") {
        this.restartingIce = true;
        pc.restartIce();
      }
    };
    pc.addEventListener("iceconnectionstatechange", restartIfFailed);
    pc.addEventListener("connectionstatechange", () => {
      restartIfFailed();
      session.emit("connection", { userId, state: pc.connectionState });
    });
    pc.addEventListener("track", ({ track, streams }) => session.emit("track", { userId, track, streams: streams ?? [] }));

    const stream = session._localStream;
    const tracks = stream ? stream.getTracks() : [];
    if (tracks.length) for (const track of tracks) pc.addTrack(track, stream);
    else {
      // Nothing to send (no camera, or a test): still receive the call's media.
      pc.addTransceiver("audio", { direction: "recvonly" });
      if (session.media === "video") pc.addTransceiver("video", { direction: "recvonly" });
    }
  }

  signal(type, data) {
    this.session._calls._signal(this.session.id, this.userId, type, data);
  }

  receive(type, data) {
    // One signal at a time per peer: an answer must not overtake the offer before it.
    this.chain = this.chain.then(() => this.handle(type, data)).catch((err) => this.report(err));
  }

  async handle(type, data) {
    const pc = this.pc;
    if (pc.signalingState === "closed") return;
    if (type === "candidate") {
      if (!pc.remoteDescription) {
        this.pendingCandidates.push(data);
        return;
      }
      try {
        await pc.addIceCandidate(data);
      } catch (err) {
        if (!this.ignoreOffer) throw err;
      }
      return;
    }
    const description = { ...data, type };
    const readyForOffer = !this.makingOffer && (pc.signalingState === "stable" || this.settingRemoteAnswer);
    const collision = type === "offer" && !readyForOffer;
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    this.settingRemoteAnswer = type === "answer";
    await pc.setRemoteDescription(description);
    this.settingRemoteAnswer = false;
    for (const candidate of this.pendingCandidates.splice(0)) await pc.addIceCandidate(candidate).catch(() => {});
    if (type === "offer") {
      await pc.setLocalDescription();
      // What was set, under its own type (MDN's pattern), not a type assumed here.
      this.signal(pc.localDescription.type, descriptionJSON(pc.localDescription));
    }
  }

  restartIce() {
    if (this.pc.signalingState !== "closed") this.pc.restartIce();
  }

  close() {
    try {
      this.pc.close();
    } catch {
      // already closed
    }
  }

  report(err) {
    this.session._calls._client.emit("error", err instanceof AuroraError ? err : new AuroraError("internal", `call ${this.session.id}: ${err?.message ?? err}`, { cause: err }));
  }
}

function descriptionJSON(description) {
  if (typeof description.toJSON === "function") return description.toJSON();
  return { type: description.type, sdp: description.sdp };
}
