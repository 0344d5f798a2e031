// A live gap (one new_message dropped by the test hook) is detected and filled by a sync of that
// conversation, without a reconnect; messages still reach the `message` event once each, in seq order.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AuroraClient } from "../src/index.js";
import { normalizeMessage } from "../src/entries.js";
import { AuroraServer, eventually, register, rest, restHistory } from "./support/server.js";

let server;
before(async () => { server = await new AuroraServer().start(); });
after(async () => { await server?.kill(); }); // its own database in a tmp dir: no need to wait for a graceful stop

test("a dropped new_message is noticed at the next one and filled by sync", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const dropped = [];
  const b = new AuroraClient({
    url: server.url, token: bob.token,
    dropIncoming: (ns, event, payload) => {
      const drop = event === "new_message" && payload.seq === 2 && dropped.length === 0;
      if (drop) dropped.push(payload.seq);
      return drop;
    },
  });
  const a = new AuroraClient({ url: server.url, token: alice.token });
  try {
    await Promise.all([a.connect(), b.connect()]);
    const events = [];
    const states = [];
    b.on("message", (m) => events.push(m.seq));
    b.on("state", (s) => states.push(s.state));

    await a.send(conversation.id, "one");
    await eventually(() => events.length === 1, "bob gets seq 1");
    await a.send(conversation.id, "two"); // dropped on its way to bob
    await eventually(() => dropped.length === 1, "the hook dropped seq 2");
    assert.deepEqual(b.messages(conversation.id).map((m) => m.seq), [1]);
    await a.send(conversation.id, "three"); // seq 3 skips ahead: bob syncs
    await eventually(() => b.messages(conversation.id).length === 3, "bob fills the gap");

    assert.deepEqual(events, [1, 2, 3], "each once, in seq order");
    assert.deepEqual(states, [], "no reconnect was needed");
    const history = await restHistory(server.url, bob.token, conversation.id);
    assert.deepEqual(b.messages(conversation.id), history.map((m) => normalizeMessage(m, bob.id)));
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("a send acked ahead of a gap stays pending until the sync has stored it", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const cid = conversation.id;
  let openGate;
  const gate = new Promise((resolve) => { openGate = resolve; });
  // A real client whose gap-filling sync waits for the test: the ack of its own send arrives first.
  class GatedSync extends AuroraClient {
    async _syncOnce() {
      if (this.gateSyncs) await gate;
      return super._syncOnce();
    }
  }
  const b = new GatedSync({
    url: server.url, token: bob.token,
    dropIncoming: (ns, event, payload) => event === "new_message" && payload.seq === 1,
  });
  const a = new AuroraClient({ url: server.url, token: alice.token });
  try {
    await Promise.all([a.connect(), b.connect()]);
    b.gateSyncs = true;
    await a.send(cid, "one"); // dropped on its way to bob: bob's store ends at seq 0
    let settled = false;
    const sending = b.send(cid, "mine").finally(() => { settled = true; });
    await eventually(async () => (await restHistory(server.url, bob.token, cid)).length === 2, "the server acked seq 2");
    await new Promise((resolve) => setTimeout(resolve, 200)); // the ack is in: seq 2 waits for the sync of seq 1
    assert.deepEqual(b.pending(cid).map((p) => p.body), ["mine"]);
    assert.deepEqual(b.messages(cid), []);
    assert.equal(settled, false);
    openGate();
    const mine = await sending;
    assert.equal(mine.seq, 2);
    assert.deepEqual(b.pending(cid), []);
    assert.deepEqual(b.messages(cid).map((m) => m.body), ["one", "mine"]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
