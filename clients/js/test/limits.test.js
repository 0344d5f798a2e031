// The server's abuse limits and its `closing` event, against a server with the limits on and a tiny
// message bucket (2, refilled at 2/s of the server's clock, which the test moves: test_clock): a send
// refused with rate_limited is retried after the delay and stored exactly once; a session ended on the server stops the client with that code, the
// outbox kept; logout() ends only this device's session unless {everywhere: true}.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AuroraClient, AuroraError } from "../src/index.js";
import { AuroraServer, eventually, register, rest, restHistory } from "./support/server.js";

let server;
before(async () => {
  server = await new AuroraServer({
    settings: { rate_limits_enabled: true, rate_message_burst: 2, rate_message_per_s: 2, test_clock: true },
  }).start();
});
after(async () => { await server?.kill(); });

const login = async (username) => (await AuroraClient.login(server.url, username, "correct horse battery")).token;
const client = (token, options = {}) => new AuroraClient({
  url: server.url, token, socketOptions: { transports: ["websocket"] }, reconnectDelayMs: 100, reconnectDelayMaxMs: 300, ...options,
});

test("sends refused with rate_limited are retried after retry_after_ms and stored exactly once, in order", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const a = client(alice.token);
  // The bucket refills only when the test moves the server's clock: one token (0.5 s) for each send
  // refused, so which sends are refused is decided, not raced against the machine's speed.
  const refusals = new Map(); // clientId -> retry_after_ms of the rate_limited answers it got
  const moves = [];
  a.on("pending", (list) => {
    for (const p of list) {
      if (p.lastError?.code !== "rate_limited" || refusals.has(p.clientId)) continue;
      refusals.set(p.clientId, p.lastError.retryAfterMs);
      moves.push(rest(server.url, alice.token, "POST", "/api/test/clock", { advance_s: 0.5 }));
    }
  });
  try {
    await a.connect();
    const bodies = ["r1", "r2", "r3", "r4", "r5"];
    const sent = await Promise.all(bodies.map((body) => a.send(conversation.id, body)));
    assert.deepEqual(sent.map((m) => m.body), bodies);
    await Promise.all(moves);
    // One conversation's sends go one at a time: the bucket of 2 takes r1 and r2, each later one is
    // refused, then taken by a retry after the delay it was told (the token the test let refill).
    const byId = new Map(sent.map((m) => [m.client_id, m.body]));
    assert.deepEqual([...refusals.keys()].map((id) => byId.get(id)), ["r3", "r4", "r5"]);
    for (const ms of refusals.values()) assert.equal(ms, 500, `retry_after_ms ${ms}`);
    const history = await restHistory(server.url, alice.token, conversation.id);
    assert.deepEqual(history.map((m) => m.body), bodies, "each stored once, in typed order");
    assert.equal(new Set(history.map((m) => m.client_id)).size, bodies.length);
    assert.deepEqual(a.pending(), []);
  } finally {
    await a.close();
  }
});

test("closing auth_invalid: the session ended elsewhere, the client goes offline with the code, the outbox stays", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const token = await login(alice.username);
  const a = client(token);
  const states = [];
  a.on("state", (s) => states.push(s));
  try {
    await a.connect();
    await rest(server.url, token, "POST", "/api/auth/logout"); // e.g. "log out this device" from elsewhere
    await eventually(() => a.state === "offline", "offline after the server's closing");
    const last = states.at(-1);
    assert.equal(last.reason, "auth_invalid");
    assert.ok(last.error instanceof AuroraError && last.error.code === "auth_invalid");
    assert.ok(!states.some((s) => s.state === "reconnecting"), JSON.stringify(states));
    // A send now cannot go anywhere: it stays in the outbox, and its promise says why.
    const send = a.send(conversation.id, "after the logout");
    await assert.rejects(send, (err) => err.code === "auth_invalid");
    assert.deepEqual(a.pending().map((p) => p.body), ["after the logout"]);
  } finally {
    await a.close();
  }
});

test("logout() ends this device's session only; {everywhere: true} ends the others too", async () => {
  const alice = await register(server.url);
  const [phone, laptop, tablet] = [client(await login(alice.username)), client(await login(alice.username)),
    client(await login(alice.username))];
  try {
    await Promise.all([phone.connect(), laptop.connect(), tablet.connect()]);
    await phone.logout();
    assert.equal(phone.state, "offline");
    await assert.rejects(phone.me(), (err) => err.code === "auth_invalid");
    assert.equal((await laptop.me()).id, alice.id); // still signed in
    assert.equal(laptop.state, "connected");

    await laptop.logout({ everywhere: true });
    await eventually(() => tablet.state === "offline", "the tablet is signed out too");
    assert.equal(tablet._fatalError?.code, "auth_invalid");
    await assert.rejects(tablet.me(), (err) => err.code === "auth_invalid");
  } finally {
    await Promise.all([phone.close(), laptop.close(), tablet.close()]);
  }
});
