// An offline start: `client.ready` / the `loaded` event come from the store alone, and messages()
// read before the store was loaded does not keep showing nothing. `client.transport` names the
// Engine.IO transport while connected, null otherwise.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AuroraClient, MemoryStore } from "../src/index.js";
import { AuroraServer, eventually, freePort, register, rest } from "./support/server.js";

let server;
before(async () => { server = await new AuroraServer().start(); });
after(async () => { await server?.kill(); });

test("offline start: ready and loaded come from the store; messages() read early is not stuck empty", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const store = new MemoryStore(); // the same storage for both "page loads"
  const first = new AuroraClient({ url: server.url, token: alice.token, store });
  await first.connect();
  await first.send(conversation.id, "one");
  await first.send(conversation.id, "two");
  await first.close();

  // The next start has no server to talk to (nothing listens on this port).
  const deadUrl = `http://127.0.0.1:${await freePort()}`;
  const second = new AuroraClient({ url: deadUrl, token: alice.token, store, reconnectDelayMs: 100, reconnectDelayMaxMs: 200 });
  const loaded = [];
  second.on("loaded", (info) => loaded.push({ ...info, bodies: second.messages(conversation.id).map((m) => m.body) }));
  // A UI that renders at once, before anything is loaded, sees nothing yet...
  assert.deepEqual(second.messages(conversation.id), []);
  const connecting = second.connect().catch((err) => err);
  try {
    await second.ready;
    // ...and everything stored as soon as the store is loaded, with no connection.
    assert.deepEqual(second.messages(conversation.id).map((m) => m.body), ["one", "two"]);
    assert.equal(second.conversation(conversation.id).id, conversation.id);
    assert.equal(second.user.id, alice.id);
    assert.equal(loaded.length, 1);
    assert.deepEqual(loaded[0].bodies, ["one", "two"]);
    assert.equal(loaded[0].user.id, alice.id);
    assert.equal(loaded[0].conversations, 1);
    assert.equal(second.state, "connecting");
    assert.equal(second.transport, null);
    await second.ready; // resolves again, loads once
    assert.equal(loaded.length, 1);
  } finally {
    await second.close();
  }
  assert.equal((await connecting).code, "closed");
});

test("ready before connect(): loads the store without connecting", async () => {
  const alice = await register(server.url);
  const client = new AuroraClient({ url: server.url, token: alice.token });
  await client.ready;
  assert.equal(client.state, "offline");
  assert.deepEqual(client.conversations(), []);
  await client.close();
});

test("transport: websocket, polling, and null when not connected", async () => {
  const alice = await register(server.url);
  const ws = new AuroraClient({ url: server.url, token: alice.token, socketOptions: { transports: ["websocket"] } });
  const polling = new AuroraClient({ url: server.url, token: alice.token, socketOptions: { transports: ["polling"] } });
  const upgrading = new AuroraClient({ url: server.url, token: alice.token });
  try {
    assert.equal(ws.transport, null);
    await Promise.all([ws.connect(), polling.connect(), upgrading.connect()]);
    assert.equal(ws.transport, "websocket");
    assert.equal(polling.transport, "polling");
    // The default starts with polling and upgrades to a WebSocket.
    await eventually(() => upgrading.transport === "websocket", "the default connection upgrades to websocket");
  } finally {
    await Promise.all([ws.close(), polling.close(), upgrading.close()]);
  }
  assert.equal(ws.transport, null);
});
