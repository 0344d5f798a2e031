// Voice and video calls on the SDK's client.calls: ring, accept, reject, hang up, mute, camera off,
// the remote video. `call-state` reads ringing | active | ended; the panel's data-peer-state is the
// RTCPeerConnection's connectionState as the SDK reports it.
import { h } from "./dom.js";

const ENDED_VISIBLE_MS = 8000;
const REASONS = {
  hangup: "Call ended.", rejected: "Call declined.", missed: "No answer.", busy: "Busy in another call.",
  disconnected: "The connection was lost.", answered_elsewhere: "Answered on another device.",
  server_restart: "The server restarted.",
};

export class CallPanel {
  constructor({ client, nameOf }) {
    this.client = client;
    this.nameOf = nameOf;       // conversationId -> display name
    this.session = null;
    this.incoming = null;       // {call, fromUser, session} while ringing here
    this.callId = null;
    this.localStream = null;
    this.hideTimer = null;
    this.unsubscribe = [];

    this.title = h("div", { className: "title", id: "call-title" });
    this.stateText = h("span", { testid: "call-state" });
    this.detail = h("span", { className: "muted" });
    this.remote = h("video", { className: "remote", testid: "remote-video", autoplay: true, playsInline: true,
      "aria-label": "Remote video" });
    this.local = h("video", { className: "local", autoplay: true, playsInline: true, muted: true,
      "aria-label": "Your camera" });
    this.videos = h("div", { className: "videos" }, this.remote, this.local);
    const button = (testid, label, className, onclick) =>
      h("button", { type: "button", testid, className, onclick }, label);
    this.acceptButton = button("call-accept", "Accept", "good", () => this.accept());
    this.rejectButton = button("call-reject", "Decline", "danger", () => this.reject());
    this.hangupButton = button("call-hangup", "Hang up", "danger", () => this.hangup());
    this.muteButton = h("button", { type: "button", "aria-pressed": "false", onclick: () => this.toggle("audio") }, "Mute");
    this.cameraButton = h("button", { type: "button", "aria-pressed": "false", onclick: () => this.toggle("video") }, "Camera off");
    this.closeButton = button(undefined, "Close", "", () => this.hide());
    this.el = h("aside", { className: "call", hidden: true, "aria-labelledby": "call-title", role: "region" },
      this.title, h("div", { role: "status", "aria-live": "assertive" }, this.stateText, " ", this.detail),
      this.videos,
      h("div", { className: "controls" }, this.acceptButton, this.rejectButton, this.muteButton, this.cameraButton,
        this.hangupButton, this.closeButton));

    client.calls.on("incoming", (info) => this.onIncoming(info));
    client.calls.on("ended", ({ callId, reason }) => { if (callId === this.callId) this.ended(reason); });
  }

  get busy() {
    return this.callId != null && this.stateText.textContent !== "ended";
  }

  // ---------------------------------------------------------------- outgoing
  async start(conversationId, media) {
    if (this.busy) return;
    this.reset(media, `Calling ${this.nameOf(conversationId)}…`);
    this.setState("ringing", "waiting for an answer");
    this.callId = -1;
    try {
      const localStream = await this.media(media);
      const session = await this.client.calls.invite(conversationId, media, { localStream });
      this.callId = session.id;
      this.attach(session);
      if (session.state === "active") this.setState("active", "");
      if (session.state === "ended") this.ended(session.call?.end_reason);
    } catch (err) {
      this.failed(err);
    }
  }

  // ---------------------------------------------------------------- incoming
  onIncoming(info) {
    if (this.busy) {
      this.client.calls.reject(info.call.id).catch(() => {});
      return;
    }
    this.reset(info.call.media, `${info.fromUser?.display_name || info.fromUser?.username || "Someone"} is calling`
      + (info.call.media === "video" ? " (video)" : " (voice)"));
    this.incoming = info;
    this.callId = info.call.id;
    this.attach(info.session);
    this.setState("ringing", "");
    this.acceptButton.hidden = this.rejectButton.hidden = false;
    this.hangupButton.hidden = true;
    this.acceptButton.focus();
  }

  async accept() {
    const info = this.incoming;
    if (!info) return;
    this.incoming = null;
    this.acceptButton.hidden = this.rejectButton.hidden = true;
    this.hangupButton.hidden = false;
    this.title.textContent = `Call with ${info.fromUser?.display_name || info.fromUser?.username || "someone"}`;
    try {
      const localStream = await this.media(info.call.media);
      const session = await this.client.calls.accept(info.call.id, { localStream });
      if (session !== this.session) this.attach(session);
      this.setState("active", "connecting…");
    } catch (err) {
      this.failed(err);
    }
  }

  async reject() {
    const info = this.incoming;
    if (!info) return;
    this.incoming = null;
    try {
      await this.client.calls.reject(info.call.id);
    } catch { /* already over */ }
    this.ended("rejected");
  }

  async hangup() {
    const id = this.callId;
    try {
      if (this.session) await this.session.hangup();
      else if (id > 0) await this.client.calls.hangup(id);
    } catch { /* already over */ }
    this.ended("hangup");
  }

  // ---------------------------------------------------------------- session wiring
  attach(session) {
    if (!session) return;
    for (const off of this.unsubscribe) off();
    this.session = session;
    this.unsubscribe = [
      session.on("track", ({ track, streams }) => {
        const stream = streams?.[0] ?? new MediaStream([track]);
        if (this.remote.srcObject !== stream) this.remote.srcObject = stream;
        this.remote.play().catch(() => {});
      }),
      session.on("call", (call) => {
        if (call.state === "active" && this.stateText.textContent !== "ended") this.setState("active", this.detail.textContent);
      }),
      session.on("connection", ({ state }) => {
        this.el.dataset.peerState = state;
        if (this.stateText.textContent === "active") this.detail.textContent = state === "connected" ? "" : `${state}…`;
      }),
      session.on("ended", ({ reason }) => this.ended(reason)),
    ];
  }

  async media(media) {
    try {
      this.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: media === "video" });
    } catch (err) {
      this.detail.textContent = `No ${media === "video" ? "camera/" : ""}microphone (${err.name}); joining without.`;
      this.localStream = null;
    }
    this.local.srcObject = this.localStream;
    this.cameraButton.hidden = media !== "video" || !this.localStream;
    this.muteButton.hidden = !this.localStream;
    return this.localStream;
  }

  toggle(kind) {
    const tracks = kind === "audio" ? this.localStream?.getAudioTracks() : this.localStream?.getVideoTracks();
    if (!tracks?.length) return;
    const off = tracks[0].enabled;
    for (const track of tracks) track.enabled = !off;
    const button = kind === "audio" ? this.muteButton : this.cameraButton;
    button.setAttribute("aria-pressed", String(off));
    button.textContent = kind === "audio" ? (off ? "Unmute" : "Mute") : (off ? "Camera on" : "Camera off");
  }

  // ---------------------------------------------------------------- states
  reset(media, title) {
    clearTimeout(this.hideTimer);
    this.el.hidden = false;
    this.el.dataset.media = media;
    delete this.el.dataset.peerState;
    this.title.textContent = title;
    this.videos.hidden = media !== "video";
    this.remote.srcObject = null;
    this.acceptButton.hidden = this.rejectButton.hidden = true;
    this.hangupButton.hidden = false;
    this.closeButton.hidden = true;
    this.muteButton.hidden = this.cameraButton.hidden = true;
    for (const button of [this.muteButton, this.cameraButton]) button.setAttribute("aria-pressed", "false");
    this.muteButton.textContent = "Mute";
    this.cameraButton.textContent = "Camera off";
  }

  setState(state, detail) {
    this.stateText.textContent = state;
    this.el.dataset.state = state;
    this.detail.textContent = detail;
  }

  ended(reason) {
    if (this.stateText.textContent === "ended") return;
    this.setState("ended", REASONS[reason] ?? (reason ? `Ended (${reason}).` : "Call ended."));
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
    this.localStream = null;
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    this.session = null;
    this.incoming = null;
    this.acceptButton.hidden = this.rejectButton.hidden = this.hangupButton.hidden = true;
    this.muteButton.hidden = this.cameraButton.hidden = true;
    this.closeButton.hidden = false;
    this.hideTimer = setTimeout(() => this.hide(), ENDED_VISIBLE_MS);
  }

  failed(err) {
    this.ended(null);
    this.detail.textContent = `The call could not start: ${err.message || err.code}`;
  }

  hide() {
    clearTimeout(this.hideTimer);
    this.el.hidden = true;
    this.callId = null;
    this.remote.srcObject = null;
    this.local.srcObject = null;
  }
}
