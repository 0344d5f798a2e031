// Edits, deletes, reactions and replies (the conversation log of issue 9): a client that was offline
// through all of them, a client online throughout (with one message_changed dropped by the test hook:
// a gap on a change entry), and the editing client itself all end with exactly REST history's state.
//
// Skipped, with the reason, when the server does not have the change events yet (edit_message unknown).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AuroraClient, AuroraError, MemoryStore } from "../src/index.js";
import { normalizeMessage } from "../src/entries.js";
import { AuroraServer, eventually, register, rest, restHistory } from "./support/server.js";

let server;
let lacks = null;
before(async () => {
  server = await new AuroraServer().start();
  const [u, v] = [await register(server.url), await register(server.url)];
  const { conversation } = await rest(server.url, u.token, "POST", "/api/conversations", { user_ids: [v.id] });
  const probe = new AuroraClient({ url: server.url, token: u.token });
  await probe.connect();
  const sent = await probe.send(conversation.id, "probe");
  try {
    await probe.edit(conversation.id, sent.seq, "probe!");
  } catch (err) {
    if (err instanceof AuroraError && err.code === "invalid" && /unknown event/.test(err.message)) {
      lacks = `this server has no edit_message (issue 9, message features, not merged yet): ${err.message}`;
    } else throw err;
  } finally {
    await probe.close();
  }
});
after(async () => { await server?.kill(); }); // its own database in a tmp dir: no need to wait for a graceful stop

const sameAsRest = async (client, user, cid) => {
  const history = (await restHistory(server.url, user.token, cid)).map((m) => normalizeMessage(m, user.id));
  assert.deepEqual(client.messages(cid), history);
  return history;
};

test("offline through edits, deletes, reactions and replies: ends with REST history's state", async (t) => {
  if (lacks) return t.skip(lacks);
  const [alice, bob, carol] = [await register(server.url), await register(server.url), await register(server.url)];
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id, carol.id], title: "log" });
  const cid = conversation.id;
  const bobStore = new MemoryStore();
  const a = new AuroraClient({ url: server.url, token: alice.token });
  let droppedChange = null;
  const c = new AuroraClient({
    url: server.url, token: carol.token,
    dropIncoming: (ns, event, payload) => {
      if (event !== "message_changed" || droppedChange) return false;
      droppedChange = payload.entry.seq;
      return true;
    },
  });
  const b1 = new AuroraClient({ url: server.url, token: bob.token, store: bobStore });
  const b2 = new AuroraClient({ url: server.url, token: bob.token, store: bobStore });
  try {
    await Promise.all([a.connect(), c.connect(), b1.connect()]);
    const m1 = await a.send(cid, "first");
    const m2 = await a.send(cid, "second");
    const m3 = await a.send(cid, "third");
    await eventually(() => b1.messages(cid).length === 3 && c.messages(cid).length === 3, "bob and carol have 3");
    await b1.close(); // bob goes offline, keeping his store

    const edited = await a.edit(cid, m1.seq, "first, edited");
    assert.equal(edited.body, "first, edited");
    assert.ok(edited.edited_at);
    const deleted = await a.delete(cid, m2.seq);
    assert.equal(deleted.deleted, true);
    assert.equal(deleted.body, null);
    assert.equal((await a.delete(cid, m2.seq)).deleted, true, "a second delete is ok");
    await c.react(cid, m1.seq, "👍");
    const both = await a.react(cid, m1.seq, "👍");
    assert.deepEqual(both.reactions.map((r) => [r.emoji, r.count, r.me]), [["👍", 2, true]]);
    await c.react(cid, m3.seq, "🎉");
    await c.unreact(cid, m1.seq, "👍");
    const reply = await c.send(cid, "a reply", { replyTo: m1.seq });
    assert.equal(reply.reply_to.seq, m1.seq);
    assert.equal(reply.reply_to.excerpt, "first, edited");
    await a.edit(cid, m1.seq, "first, edited twice, and longer than a hundred code points: " + "ü".repeat(80));
    const m5 = await a.send(cid, "fifth");
    await a.delete(cid, m3.seq); // it had a reaction
    await rest(server.url, bob.token, "PUT", `/api/conversations/${cid}/messages/${m5.seq}/reactions/${encodeURIComponent("❤️")}`);
    await assert.rejects(c.edit(cid, m5.seq, "not mine"), (err) => err.code === "forbidden");
    await assert.rejects(a.edit(cid, m2.seq, "deleted"), (err) => err.code === "conflict");

    // The editing client and the online one (which lost one change event on the way) match REST.
    const history = await sameAsRest(a, alice, cid);
    assert.equal(history.find((m) => m.seq === reply.seq).reply_to.excerpt.length, 100);
    assert.ok(droppedChange, "the hook dropped a message_changed");
    await eventually(async () => {
      await sameAsRest(c, carol, cid);
      return true;
    }, "carol's store equals REST history (the dropped change was synced)");

    // Bob comes back on the same store: sync brings every entry after his cursor.
    const changed = [];
    b2.on("message", (m) => changed.push(m.seq));
    await b2.connect();
    await sameAsRest(b2, bob, cid);
    assert.ok(changed.includes(m1.seq) && changed.includes(m2.seq) && changed.includes(m3.seq), "bob saw the changed messages");
    assert.equal(b2.conversation(cid).last_message.seq, m5.seq);
  } finally {
    await Promise.all([a.close(), c.close(), b1.close(), b2.close()]);
  }
});
