// A stand-in RTCPeerConnection for Node: no media, but the signaling state machine of the real one
// (JSEP): setLocalDescription()/setRemoteDescription() move signalingState and throw InvalidStateError
// where a browser does (an answer in "stable", addIceCandidate before a remote description), an offer
// received in "have-local-offer" rolls back implicitly, negotiationneeded fires for addTrack /
// addTransceiver / restartIce, candidates are gathered after a local description, and the connection
// turns "connected" once both descriptions are set. Instances are listed in FakeRTCPeerConnection.all.

let nextId = 1;

function invalidState(message) {
  return new DOMException(message, "InvalidStateError");
}

export class FakeRTCPeerConnection extends EventTarget {
  static all = [];

  constructor(configuration = {}) {
    super();
    this.id = nextId++;
    this.configuration = configuration;
    this.signalingState = "stable";
    this.iceConnectionState = "new";
    this.connectionState = "new";
    this.localDescription = null;
    this.remoteDescription = null;
    this.currentRemoteDescription = null;
    this.kinds = [];
    this.remoteCandidates = [];
    this.offersMade = 0;
    this.iceRestarts = 0;
    this._restartPending = false;
    this._negotiationQueued = false;
    this._ufrag = `u${this.id}`;
    FakeRTCPeerConnection.all.push(this);
  }

  _fire(type, props = {}) {
    const event = Object.assign(new Event(type), props);
    this.dispatchEvent(event);
  }

  _needNegotiation() {
    if (this._negotiationQueued || this.signalingState === "closed") return;
    this._negotiationQueued = true;
    setTimeout(() => {
      this._negotiationQueued = false;
      if (this.signalingState === "stable") this._fire("negotiationneeded");
      else this._needsAfterStable = true;
    }, 0);
  }

  addTrack(track) {
    this.kinds.push(track.kind);
    this._needNegotiation();
    return { track };
  }

  addTransceiver(kind) {
    this.kinds.push(kind);
    this._needNegotiation();
    return { kind };
  }

  restartIce() {
    this.iceRestarts++;
    this._restartPending = true;
    this._ufrag = `u${this.id}r${this.iceRestarts}`;
    this._needNegotiation();
  }

  _sdp(type) {
    return `v=0 fake ${type} pc=${this.id} ice-ufrag=${this._ufrag} m=${this.kinds.join(",")}`;
  }

  async setLocalDescription(description) {
    if (this.signalingState === "closed") throw invalidState("closed");
    const type = description?.type ?? (this.signalingState === "have-remote-offer" ? "answer" : "offer");
    if (type === "rollback") {
      this.signalingState = "stable";
      this.localDescription = null;
      return;
    }
    if (type === "offer") {
      if (this.signalingState !== "stable" && this.signalingState !== "have-local-offer") throw invalidState(`offer in ${this.signalingState}`);
      this.offersMade++;
      this.signalingState = "have-local-offer";
    } else if (type === "answer") {
      if (this.signalingState !== "have-remote-offer") throw invalidState(`answer in ${this.signalingState}`);
      this.signalingState = "stable";
    }
    this.localDescription = { type, sdp: description?.sdp ?? this._sdp(type), toJSON() { return { type: this.type, sdp: this.sdp }; } };
    setTimeout(() => this._gather(), 0);
    if (type === "answer") this._settled();
  }

  async setRemoteDescription(description) {
    if (this.signalingState === "closed") throw invalidState("closed");
    if (description.type === "offer") {
      if (this.signalingState === "have-local-offer") this.signalingState = "stable"; // implicit rollback
      if (this.signalingState !== "stable") throw invalidState(`remote offer in ${this.signalingState}`);
      this.signalingState = "have-remote-offer";
    } else if (description.type === "answer") {
      if (this.signalingState !== "have-local-offer") throw invalidState(`remote answer in ${this.signalingState}`);
      this.signalingState = "stable";
    } else {
      throw new TypeError(`bad description type ${description.type}`);
    }
    const isNew = !this.remoteDescription;
    this.remoteDescription = this.currentRemoteDescription = { type: description.type, sdp: description.sdp };
    if (isNew) {
      const kinds = /m=([a-z,]*)/.exec(description.sdp ?? "")?.[1]?.split(",").filter(Boolean) ?? [];
      for (const kind of kinds) this._fire("track", { track: { kind, id: `${kind}-${this.id}` }, streams: [{ id: `remote-${this.id}` }] });
    }
    if (description.type === "answer") this._settled();
  }

  _settled() {
    if (this.signalingState !== "stable" || !this.remoteDescription) return;
    this._restartPending = false;
    if (this.iceConnectionState !== "connected") {
      this.iceConnectionState = "connected";
      this.connectionState = "connected";
      this._fire("iceconnectionstatechange");
      this._fire("connectionstatechange");
    }
    if (this._needsAfterStable) {
      this._needsAfterStable = false;
      this._needNegotiation();
    }
  }

  _gather() {
    if (this.signalingState === "closed") return;
    const candidate = { candidate: `candidate:${this.id} 1 udp 2122260223 192.0.2.${this.id % 250} 5${this.id % 1000} typ host ufrag ${this._ufrag}`, sdpMid: "0", sdpMLineIndex: 0, usernameFragment: this._ufrag };
    this._fire("icecandidate", { candidate: { ...candidate, toJSON: () => candidate } });
    this._fire("icecandidate", { candidate: null });
  }

  async addIceCandidate(candidate) {
    if (this.signalingState === "closed") throw invalidState("closed");
    if (!this.remoteDescription) throw invalidState("addIceCandidate before a remote description");
    this.remoteCandidates.push(candidate);
  }

  /** Test control: the ICE transport fails (as when the network path breaks). */
  failIce() {
    this.iceConnectionState = "failed";
    this.connectionState = "failed";
    this._fire("iceconnectionstatechange");
    this._fire("connectionstatechange");
  }

  /** Test control: a failure as Chromium may report it, in connectionState alone. */
  failConnectionOnly() {
    this.iceConnectionState = "disconnected";
    this.connectionState = "failed";
    this._fire("iceconnectionstatechange");
    this._fire("connectionstatechange");
  }

  close() {
    this.signalingState = "closed";
    this.connectionState = "closed";
    this.iceConnectionState = "closed";
  }
}
