// The fault test of issue 12: the server is SIGKILLed and restarted several times while several
// clients send in parallel. Every send resolves, each message is stored exactly once (in each sender's
// typed order), every client's messages() equals REST history, and no client saw a message twice.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AuroraClient } from "../src/index.js";
import { normalizeMessage } from "../src/entries.js";
import { AuroraServer, eventually, register, rest, restHistory } from "./support/server.js";

const KILLS = Number(process.env.AURORA_JS_FAULT_KILLS ?? 3);
const PER_CLIENT = 24;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
before(async () => { server = await new AuroraServer().start(); });
after(async () => { await server?.kill(); }); // its own database in a tmp dir: no need to wait for a graceful stop

test(`${KILLS} SIGKILLs and restarts while 3 clients send in parallel`, { timeout: 120000 }, async () => {
  const users = [await register(server.url), await register(server.url), await register(server.url)];
  const [alice, bob, carol] = users;
  const { conversation: group } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id, carol.id], title: "fault" });
  const { conversation: direct } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const conversationsOf = new Map([[alice.id, [group.id, direct.id]], [bob.id, [group.id, direct.id]], [carol.id, [group.id]]]);

  const clients = users.map((u) => new AuroraClient({
    url: server.url, token: u.token, timeoutMs: 3000, reconnectDelayMs: 100, reconnectDelayMaxMs: 800,
  }));
  const seen = clients.map(() => new Map()); // per client: "cid:seq" -> times seen as a new message
  clients.forEach((c, i) => c.on("message", (m) => {
    const key = `${m.conversation_id}:${m.seq}`;
    seen[i].set(key, (seen[i].get(key) ?? 0) + 1);
  }));
  const kinds = clients.map(() => []);
  clients.forEach((c, i) => c.on("state", (s) => kinds[i].push(s.state)));
  try {
    await Promise.all(clients.map((c) => c.connect()));

    // Each client types PER_CLIENT messages over a few seconds, without waiting for the acks.
    const sends = [];
    const typing = users.map((u, i) => (async () => {
      const cids = conversationsOf.get(u.id);
      for (let n = 0; n < PER_CLIENT; n++) {
        const cid = cids[n % cids.length];
        const body = `${u.username} #${n}`;
        sends.push(clients[i].send(cid, body).then((m) => ({ m, body, cid })));
        await sleep(60);
      }
    })());

    // Meanwhile: kill, leave it down a moment, restart; several times.
    for (let k = 0; k < KILLS; k++) {
      await sleep(250 + Math.random() * 250);
      await server.kill();
      await sleep(150 + Math.random() * 300);
      await server.start();
    }
    await Promise.all(typing);
    const results = await Promise.all(sends);
    for (const { m, body, cid } of results) {
      assert.equal(m.body, body);
      assert.equal(m.conversation_id, cid);
    }
    assert.ok(kinds.every((k) => k.includes("reconnecting")), "every client went through a reconnect");
    for (const c of clients) assert.deepEqual(c.pending(), []);

    for (const cid of [group.id, direct.id]) {
      const history = await restHistory(server.url, alice.token, cid);
      const bodies = history.map((m) => m.body);
      assert.equal(new Set(bodies).size, bodies.length, `conversation ${cid}: a message was stored twice`);
      assert.deepEqual(history.map((m) => m.seq), history.map((_, i) => i + 1));
      // Each sender's messages are stored in the order they were typed.
      for (const u of users) {
        const mine = history.filter((m) => m.sender_id === u.id).map((m) => Number(m.body.split("#")[1]));
        assert.deepEqual(mine, [...mine].sort((x, y) => x - y), `${u.username}'s order in ${cid}`);
      }
      // Every member's store equals REST history (after catching up on the last messages).
      for (const [i, u] of users.entries()) {
        if (!conversationsOf.get(u.id).includes(cid)) continue;
        await eventually(() => clients[i].messages(cid).length === history.length, `client ${i} catches up on ${cid}`);
        assert.deepEqual(clients[i].messages(cid), history.map((m) => normalizeMessage(m, u.id)));
      }
    }
    const expected = results.length;
    const stored = (await restHistory(server.url, alice.token, group.id)).length + (await restHistory(server.url, alice.token, direct.id)).length;
    assert.equal(stored, expected, "every send stored exactly once");
    for (const [i, map] of seen.entries()) {
      for (const [key, times] of map) assert.equal(times, 1, `client ${i} saw ${key} ${times} times`);
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});
