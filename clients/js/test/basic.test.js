// The everyday paths against a real server: connect and catch up, send/receive without joining,
// automatic `delivered`, markRead and unread_count, typed errors, state events.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AuroraClient, AuroraError } from "../src/index.js";
import { normalizeMessage } from "../src/entries.js";
import { AuroraServer, eventually, register, rest, restHistory } from "./support/server.js";

let server;
before(async () => { server = await new AuroraServer().start(); });
after(async () => { await server?.kill(); }); // its own database in a tmp dir: no need to wait for a graceful stop

function client(user, options = {}) {
  return new AuroraClient({ url: server.url, token: user.token, socketOptions: { transports: ["websocket"] }, ...options });
}

test("two clients: send, receive without joining, delivered, read, unread_count", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const a = client(alice);
  const b = client(bob);
  const states = [];
  a.on("state", (s) => states.push(s));
  try {
    await Promise.all([a.connect(), b.connect()]);
    assert.deepEqual(states.map((s) => s.state), ["connecting", "connected"]);
    assert.equal(a.user.id, alice.id);

    const bobMessages = [];
    b.on("message", (m) => bobMessages.push(m));
    const convEvents = [];
    b.on("conversation", (c) => convEvents.push(c));

    const conversation = await a.createConversation([bob.id]);
    await eventually(() => b.conversation(conversation.id), "bob learns the conversation live");

    const sent = await a.send(conversation.id, "  hello bob  ");
    assert.equal(sent.body, "hello bob");
    assert.equal(sent.seq, 1);
    assert.deepEqual(a.pending(), []);
    assert.deepEqual(a.messages(conversation.id).map((m) => m.seq), [1]);

    await eventually(() => bobMessages.length === 1, "bob receives it");
    assert.equal(bobMessages[0].body, "hello bob");
    await eventually(() => b.conversation(conversation.id).unread_count === 1, "bob's unread_count is 1");
    assert.ok(convEvents.some((c) => c.id === conversation.id && c.last_message?.seq === 1));

    // delivered went out by itself: the server's pointer for bob moved.
    await eventually(async () => {
      const { conversations } = await rest(server.url, bob.token, "GET", "/api/conversations");
      return conversations.find((c) => c.id === conversation.id).delivered_seq === 1;
    }, "bob's delivered_seq on the server");
    await eventually(() => a.deliveryState(conversation.id, 1) === "delivered", "alice sees delivered");

    const receipt = await b.markRead(conversation.id, 1);
    assert.equal(receipt.read_seq, 1);
    assert.equal(b.conversation(conversation.id).unread_count, 0);
    await eventually(() => a.deliveryState(conversation.id, 1) === "read", "alice sees read");

    // Both stores equal REST history (normalized to the SDK's message shape).
    const history = (await restHistory(server.url, alice.token, conversation.id)).map((m) => normalizeMessage(m, alice.id));
    assert.deepEqual(a.messages(conversation.id), history);
    assert.deepEqual(b.messages(conversation.id), history.map((m) => normalizeMessage(m, bob.id)));
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("errors are typed; a send that cannot succeed rejects and leaves the outbox", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const a = client(alice);
  try {
    await a.connect();
    const conversation = await a.createConversation([bob.id]);
    const failed = [];
    a.on("send_failed", (f) => failed.push(f));
    await assert.rejects(a.send(conversation.id, "x".repeat(5000)), (err) => err instanceof AuroraError && err.code === "too_large");
    await assert.rejects(a.send(999999, "hi"), (err) => err instanceof AuroraError && err.code === "not_found" && !err.retryable);
    assert.deepEqual(a.pending(), []);
    assert.deepEqual(failed.map((f) => f.error.code), ["too_large", "not_found"]);
    await assert.rejects(a.history(999999), (err) => err instanceof AuroraError && err.code === "not_found" && err.status === 404);
    await assert.rejects(AuroraClient.login(server.url, alice.username, "wrong password!"), (err) => err.code === "invalid_credentials");
  } finally {
    await a.close();
  }
});

test("a bad token: connect() rejects with auth_invalid and the state is offline", async () => {
  const c = new AuroraClient({ url: server.url, token: "not-a-token" });
  const states = [];
  c.on("state", (s) => states.push(s));
  await assert.rejects(c.connect(), (err) => err instanceof AuroraError && err.code === "auth_invalid");
  assert.equal(c.state, "offline");
  assert.equal(states.at(-1).error.code, "auth_invalid");
  await c.close();
});

test("a conversation created by someone else, with history, is discovered and synced", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const carol = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id, carol.id], title: "trio" });
  for (let i = 1; i <= 3; i++) await rest(server.url, alice.token, "POST", `/api/conversations/${conversation.id}/messages`, { body: `m${i}` });
  const b = client(bob);
  try {
    await b.connect(); // resolves caught up
    assert.deepEqual(b.messages(conversation.id).map((m) => m.body), ["m1", "m2", "m3"]);
    assert.equal(b.conversation(conversation.id).unread_count, 3);
    assert.equal(b.conversation(conversation.id).title, "trio");
    const typing = [];
    b.on("typing", (t) => typing.push(t));
    const a = client(alice);
    await a.connect();
    a.typing(conversation.id, true);
    await eventually(() => typing.length === 1, "bob sees alice typing");
    assert.deepEqual(typing[0], { conversation_id: conversation.id, user_id: alice.id, typing: true });
    assert.equal(b.presence(alice.id)?.online, true);
    await a.close();
    await eventually(() => b.presence(alice.id)?.online === false, "alice goes offline for bob");
  } finally {
    await b.close();
  }
});
