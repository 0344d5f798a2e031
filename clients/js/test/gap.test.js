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
