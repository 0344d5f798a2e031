// Calls through the SDK against the real server, with a stand-in RTCPeerConnection (support/fake-rtc.js):
// invite/accept, perfect negotiation over call_signal, ICE servers from /api/ice-servers, candidate
// relay, ICE restart on failure, call_rejoin after a dropped connection, hangup and `ended` on both sides.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AuroraClient } from "../src/index.js";
import { FakeRTCPeerConnection } from "./support/fake-rtc.js";
import { AuroraServer, eventually, register, rest } from "./support/server.js";

let server;
before(async () => { server = await new AuroraServer().start(); });
after(async () => { await server?.kill(); }); // its own database in a tmp dir: no need to wait for a graceful stop

function client(user) {
  return new AuroraClient({ url: server.url, token: user.token, RTCPeerConnection: FakeRTCPeerConnection, reconnectDelayMs: 100, reconnectDelayMaxMs: 500 });
}

const negotiated = (pc) => pc && pc.signalingState === "stable" && pc.remoteDescription && pc.connectionState === "connected";

test("a video call: negotiate, relay candidates, restart ICE, rejoin after a drop, hang up", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const a = client(alice);
  const b = client(bob);
  const errors = [];
  a.on("error", (e) => errors.push(e));
  b.on("error", (e) => errors.push(e));
  try {
    await Promise.all([a.connect(), b.connect()]);
    const incoming = new Promise((resolve) => b.calls.on("incoming", resolve));
    const tracks = [];
    const caller = await a.calls.invite(conversation.id, "video", { localStream: { getTracks: () => [{ kind: "audio" }, { kind: "video" }] } });
    caller.on("track", (t) => tracks.push(["alice", t.track.kind]));
    assert.equal(caller.state, "ringing");
    const { call, fromUser, session: ringing } = await incoming;
    assert.equal(call.id, caller.id);
    assert.equal(fromUser.id, alice.id);
    assert.equal(ringing.state, "ringing");

    const callee = await b.calls.accept(call.id);
    callee.on("track", (t) => tracks.push(["bob", t.track.kind]));
    const pcA = await eventually(() => negotiated(caller.peerConnection(bob.id)) && caller.peerConnection(bob.id), "alice's connection");
    const pcB = await eventually(() => negotiated(callee.peerConnection(alice.id)) && callee.peerConnection(alice.id), "bob's connection");
    assert.equal(caller.state, "active");
    assert.equal(callee.state, "active");

    // ICE servers from /api/ice-servers; candidates relayed both ways (after the remote description).
    const { ice_servers: iceServers } = await rest(server.url, alice.token, "GET", "/api/ice-servers");
    assert.deepEqual(pcA.configuration.iceServers, iceServers);
    assert.deepEqual(pcB.configuration.iceServers, iceServers);
    await eventually(() => pcA.remoteCandidates.length > 0 && pcB.remoteCandidates.length > 0, "candidates relayed");
    assert.ok(pcB.remoteCandidates.some((c) => c.candidate.startsWith(`candidate:${pcA.id} `)));
    assert.ok(pcA.remoteCandidates.some((c) => c.candidate.startsWith(`candidate:${pcB.id} `)));
    // Alice sends audio+video; bob has no stream, so he receives (recvonly audio+video).
    await eventually(() => tracks.filter(([who]) => who === "bob").length === 2, "bob gets alice's tracks");

    // The ICE transport fails on alice's side: she restarts ICE, bob gets the new offer.
    pcA.failIce();
    await eventually(() => pcB.remoteDescription.sdp.includes(`ice-ufrag=u${pcA.id}r1`) && negotiated(pcA), "ICE restarted");
    assert.equal(pcA.iceRestarts, 1);
    // Failed in connectionState only (iceConnectionState "disconnected", as Chromium may leave it): bob
    // restarts ICE too, once.
    pcB.failConnectionOnly();
    await eventually(() => pcA.remoteDescription.sdp.includes(`ice-ufrag=u${pcB.id}r1`) && negotiated(pcB), "ICE restarted");
    assert.equal(pcB.iceRestarts, 1);

    // Bob's connection drops (the transport closes, as on a network change): his /calls socket comes
    // back, sends call_rejoin, and alice renegotiates towards him.
    const restartsBefore = pcA.iceRestarts;
    b._manager.engine.close();
    await eventually(() => pcA.iceRestarts > restartsBefore && negotiated(pcA) && negotiated(pcB), "rejoined and renegotiated");
    const [live] = await a.callHistory(conversation.id);
    assert.equal(live.state, "active");

    const ended = [new Promise((r) => a.calls.on("ended", r)), new Promise((r) => b.calls.on("ended", r))];
    const sessionEnded = new Promise((r) => callee.on("ended", r));
    await caller.hangup();
    const [endA, endB] = await Promise.all(ended);
    assert.equal(endA.reason, "hangup");
    assert.equal(endB.reason, "hangup");
    assert.equal((await sessionEnded).reason, "hangup");
    assert.equal(pcA.signalingState, "closed");
    assert.equal(pcB.signalingState, "closed");
    assert.equal(a.calls.session(call.id), undefined);
    const [stored] = await a.callHistory(conversation.id);
    assert.equal(stored.end_reason, "hangup");
    assert.deepEqual(errors, []);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("a rejected call ends on both sides", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const a = client(alice);
  const b = client(bob);
  try {
    await Promise.all([a.connect(), b.connect()]);
    let rejected;
    b.calls.on("incoming", ({ call }) => { rejected = b.calls.reject(call.id); });
    const endedA = new Promise((r) => a.calls.on("ended", r));
    const session = await a.calls.invite(conversation.id, "audio");
    const { callId, reason } = await endedA;
    assert.equal(callId, session.id);
    assert.equal(reason, "rejected");
    assert.equal(session.state, "ended");
    assert.equal((await rejected).end_reason, "rejected");
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("a signal to a member who has just left is not an error (the server answers not_found)", async () => {
  // A direct call's hangup is two steps on the server (the leaver is out, then the call ends); a late
  // candidate of the other side in between gets not_found. A group call that goes on after one member
  // leaves shows the same answer for as long as one likes.
  const [alice, bob, carol] = [await register(server.url), await register(server.url), await register(server.url)];
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations",
    { user_ids: [bob.id, carol.id], title: "group call" });
  const [a, b, c] = [client(alice), client(bob), client(carol)];
  const errors = [];
  b.on("error", (e) => errors.push(e));
  try {
    await Promise.all([a.connect(), b.connect(), c.connect()]);
    const ringB = new Promise((resolve) => b.calls.on("incoming", resolve));
    const ringC = new Promise((resolve) => c.calls.on("incoming", resolve));
    const caller = await a.calls.invite(conversation.id, "audio");
    await b.calls.accept((await ringB).call.id);
    await c.calls.accept((await ringC).call.id);
    await caller.hangup(); // alice leaves; bob and carol go on
    const [call] = await b.callHistory(conversation.id);
    assert.equal(call.state, "active");
    assert.ok(!call.participants.includes(alice.id));
    const answer = await b.calls._request("call_signal", { call_id: call.id, to_user_id: alice.id, type: "candidate", data: { candidate: "late" } }).catch((e) => e);
    assert.equal(answer.code, "not_found"); // what the server says of a signal to someone who left
    const settled = b.calls._signal(call.id, alice.id, "candidate", { candidate: "late" }); // the SDK's own path
    assert.ok(settled instanceof Promise, "_signal settles once the signal is answered");
    await settled;
    assert.deepEqual(errors, []);
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
});
