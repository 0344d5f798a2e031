// One call between two users with the official socket.io-client, against a running Aurora server.
//
//   node tests/js/calls_scenario.mjs '<json config>'
//
// config: {url, caller: {id, token}, callee: {id, token}, conversation_id, offer, answer}
// Connects both users to /calls with auth {token}; the caller invites (emitWithAck), the callee gets
// call_incoming and accepts, an offer and an answer are relayed, the caller hangs up and both get
// call_ended "hangup". Prints one JSON line {ok, ...} and exits non-zero on any failure.

import { io } from "socket.io-client";

const TIMEOUT_MS = 10000;
const steps = [];

function fail(message) {
  throw new Error(message);
}

function check(condition, message, detail) {
  if (!condition) fail(`${message}: ${JSON.stringify(detail)}`.slice(0, 2000));
}

function connect(url, token) {
  return new Promise((resolve, reject) => {
    const socket = io(`${url}/calls`, {
      auth: { token },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
    });
    const events = [];
    socket.onAny((event, ...args) => events.push([event, args[0]]));
    const timer = setTimeout(() => reject(new Error("connect timed out")), TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve({ socket, events });
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      reject(new Error(`connect_error: ${err.message} ${JSON.stringify(err.data)}`));
    });
  });
}

// The first `name` event matching predicate, already received or still to come.
function waitFor(client, name, predicate = () => true) {
  const seen = client.events.find(([event, data]) => event === name && predicate(data));
  if (seen) return Promise.resolve(seen[1]);
  return new Promise((resolve, reject) => {
    const listener = (event, data) => {
      if (event === name && predicate(data)) {
        clearTimeout(timer);
        client.socket.offAny(listener);
        resolve(data);
      }
    };
    const timer = setTimeout(() => {
      client.socket.offAny(listener);
      reject(new Error(`no ${name} within ${TIMEOUT_MS} ms; got ${JSON.stringify(client.events).slice(0, 1000)}`));
    }, TIMEOUT_MS);
    client.socket.onAny(listener);
  });
}

async function call(client, event, data) {
  const ack = await client.socket.timeout(TIMEOUT_MS).emitWithAck(event, data);
  steps.push(event);
  return ack;
}

async function ok(client, event, data) {
  const ack = await call(client, event, data);
  check(ack && ack.ok === true, `${event} was not acked ok`, ack);
  return ack;
}

async function main() {
  const config = JSON.parse(process.argv[2] ?? fail("usage: calls_scenario.mjs '<json config>'"));
  const caller = await connect(config.url, config.caller.token);
  const callee = await connect(config.url, config.callee.token);
  steps.push("connected");
  try {
    const invited = await ok(caller, "call_invite", { conversation_id: config.conversation_id, media: "video" });
    const callId = invited.call.id;
    check(invited.call.state === "ringing" && invited.call.caller_id === config.caller.id, "invite ack", invited);

    const incoming = await waitFor(callee, "call_incoming", (d) => d.call.id === callId);
    check(incoming.from_user.id === config.caller.id, "call_incoming from_user", incoming);
    check(incoming.call.media === "video", "call_incoming call", incoming);

    const bad = await call(callee, "call_accept", {});
    check(bad.ok === false && bad.error.code === "invalid", "a bad payload is acked with an error", bad);

    const accepted = await ok(callee, "call_accept", { call_id: callId });
    check(accepted.call.state === "active" && accepted.call.answered_at !== null, "accept ack", accepted);
    const note = await waitFor(caller, "call_accepted", (d) => d.call_id === callId);
    check(note.user_id === config.callee.id, "call_accepted user_id", note);

    await ok(caller, "call_signal", { call_id: callId, to_user_id: config.callee.id, type: "offer", data: config.offer });
    const offer = await waitFor(callee, "call_signal", (d) => d.type === "offer");
    check(offer.call_id === callId && offer.from_user_id === config.caller.id, "offer envelope", offer);
    check(JSON.stringify(offer.data) === JSON.stringify(config.offer), "offer relayed unchanged", offer.data);

    await ok(callee, "call_signal", { call_id: callId, to_user_id: config.caller.id, type: "answer", data: config.answer });
    const answer = await waitFor(caller, "call_signal", (d) => d.type === "answer");
    check(answer.call_id === callId && answer.from_user_id === config.callee.id, "answer envelope", answer);
    check(JSON.stringify(answer.data) === JSON.stringify(config.answer), "answer relayed unchanged", answer.data);

    const hungUp = await ok(caller, "call_hangup", { call_id: callId });
    check(hungUp.call.state === "ended" && hungUp.call.end_reason === "hangup", "hangup ack", hungUp);
    const endedCaller = await waitFor(caller, "call_ended", (d) => d.call_id === callId);
    const endedCallee = await waitFor(callee, "call_ended", (d) => d.call_id === callId);
    check(endedCaller.reason === "hangup" && endedCallee.reason === "hangup", "call_ended reasons",
      [endedCaller, endedCallee]);

    return { ok: true, call_id: callId, steps, offer: offer.data, answer: answer.data,
      ended: [endedCaller.reason, endedCallee.reason] };
  } finally {
    caller.socket.disconnect();
    callee.socket.disconnect();
  }
}

try {
  const result = await main();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(err && err.stack || err), steps })}\n`);
  process.exit(1);
}
