// A video call between two contexts with Chromium's fake camera and microphone: ringing, accept,
// both RTCPeerConnections connected, the remote video playing on both sides, mute and camera off,
// hang up on one side ends it on the other. Then a declined voice call.
import {
  args, run, connectBrowser, person, openApp, registerThroughUi, openDirect, type, message, shot, unique,
  PASSWORD, assert,
} from "./lib.mjs";

/** Installed in every page: each RTCPeerConnection's states and signalling steps, timed, in
 * window.__rtcLog, so that a call that never connects says where it stopped. */
function recordPeerConnections() {
  const log = (window.__rtcLog = []);
  const t0 = performance.now();
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function RecordedPeerConnection(...init) {
    const pc = new Native(...init);
    const id = log.filter((line) => line.endsWith(" created")).length;
    const note = (what) => log.push(`${Math.round(performance.now() - t0)}ms pc${id} ${what}`);
    note("created");
    for (const type of ["negotiationneeded", "signalingstatechange", "icegatheringstatechange",
      "iceconnectionstatechange", "connectionstatechange"]) {
      pc.addEventListener(type, () => note(`${type}: signaling=${pc.signalingState} ice=${pc.iceConnectionState} `
        + `connection=${pc.connectionState} gathering=${pc.iceGatheringState}`));
    }
    pc.addEventListener("icecandidate", ({ candidate }) => note(`local candidate ${candidate?.candidate ?? "(end)"}`));
    for (const method of ["setLocalDescription", "setRemoteDescription", "addIceCandidate"]) {
      const call = pc[method].bind(pc);
      pc[method] = (arg) => {
        note(`${method}(${arg?.type ?? arg?.candidate ?? ""})`);
        return call(arg).catch((err) => { note(`${method} failed: ${err}`); throw err; });
      };
    }
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
}

/** Both peer connections connected, or an error with each side's RTCPeerConnection timeline. */
async function bothConnected(a, b) {
  try {
    await a.page.locator('.call[data-peer-state="connected"]').waitFor();
    await b.page.locator('.call[data-peer-state="connected"]').waitFor();
  } catch (err) {
    const timeline = async (p) => (await p.page.evaluate(() => window.__rtcLog).catch(() => null) ?? []).join("\n  ");
    throw new Error(`${err.message}\nA's peer connections:\n  ${await timeline(a)}\nB's:\n  ${await timeline(b)}`);
  }
}

/** The remote <video> is really playing: frames decoded, time advancing. */
async function remotePlaying(p) {
  const handle = p.by("remote-video");
  await p.page.waitForFunction(() => {
    const v = document.querySelector('[data-testid="remote-video"]');
    return v && v.srcObject && v.readyState >= 2 && !v.paused && v.videoWidth > 0;
  });
  const t0 = await handle.evaluate((v) => v.currentTime);
  await p.page.waitForFunction((t) => document.querySelector('[data-testid="remote-video"]').currentTime > t + 0.2, t0);
  return handle.evaluate((v) => ({ width: v.videoWidth, height: v.videoHeight, time: v.currentTime }));
}

async function callState(p, text) {
  await p.page.locator('[data-testid="call-state"]', { hasText: new RegExp(`^${text}$`) }).waitFor();
}

run(async () => {
  const browser = await connectBrowser();
  const a = await person(browser, "A");
  const b = await person(browser, "B");
  await Promise.all([a.context.addInitScript(recordPeerConnections), b.context.addInitScript(recordPeerConnections)]);
  const names = { a: unique("caller"), b: unique("callee") };
  await Promise.all([openApp(a, args.url), openApp(b, args.url)]);
  await Promise.all([registerThroughUi(a, names.a, PASSWORD), registerThroughUi(b, names.b, PASSWORD)]);
  await openDirect(a, names.b);
  await type(a, "calling you");
  await b.by("conversation").first().click();
  await message(b, "calling you").waitFor();

  // A rings B.
  await a.by("call-video").click();
  await callState(a, "ringing");
  await callState(b, "ringing");
  await b.by("call-accept").waitFor({ state: "visible" });
  await b.by("call-accept").click();
  await callState(a, "active");
  await callState(b, "active");

  // Both peer connections connected (as the SDK reports each RTCPeerConnection's connectionState).
  await bothConnected(a, b);
  const videoB = await remotePlaying(b);
  const videoA = await remotePlaying(a);
  await shot(b, "video-call");

  // Mute and camera off act on the local tracks.
  await a.page.getByRole("button", { name: "Mute" }).click();
  await a.page.getByRole("button", { name: "Camera off" }).click();
  const local = await a.page.evaluate(() => {
    const stream = document.querySelector(".call video.local").srcObject;
    return { audio: stream.getAudioTracks().map((t) => t.enabled), video: stream.getVideoTracks().map((t) => t.enabled) };
  });
  assert(local.audio.length === 1 && local.audio.every((on) => !on), `muted: ${JSON.stringify(local)}`);
  assert(local.video.length === 1 && local.video.every((on) => !on), `camera off: ${JSON.stringify(local)}`);
  assert(await a.page.getByRole("button", { name: "Unmute" }).getAttribute("aria-pressed") === "true", "mute is pressed");

  // B hangs up: A's side ends too.
  await b.by("call-hangup").click();
  await callState(b, "ended");
  await callState(a, "ended");
  const camerasStopped = await a.page.evaluate(() => document.querySelector(".call video.local").srcObject === null
    || document.querySelector(".call video.local").srcObject.getTracks().every((t) => t.readyState === "ended"));
  assert(camerasStopped, "the camera is released when the call ends");
  // The call summary reaches the conversation like any message.
  await message(a, /Video call/).waitFor();

  // A voice call that B declines.
  await a.by("call-audio").click();
  await callState(a, "ringing");
  await b.by("call-reject").waitFor({ state: "visible" });
  await b.by("call-reject").click();
  await callState(b, "ended");
  await callState(a, "ended");
  await message(a, /Declined audio call/).waitFor();

  const result = { names, videoA, videoB, problems: [...a.problems, ...b.problems] };
  await browser.close();
  return result;
});
