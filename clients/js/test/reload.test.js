// The outbox survives a "reload" with a persistent store: messages typed while the server is down,
// then the page is gone; a new client on the same storage sends them, each stored once, in typed order.
// LocalStorageStore over a Web Storage stand-in; IndexedDBStore over fake-indexeddb.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { IDBFactory } from "fake-indexeddb";

import { AuroraClient, IndexedDBStore, LocalStorageStore } from "../src/index.js";
import { AuroraServer, eventually, register, rest, restHistory } from "./support/server.js";
import { MemoryWebStorage } from "./support/web-storage.js";

let server;
before(async () => { server = await new AuroraServer().start(); });
after(async () => { await server?.kill(); }); // its own database in a tmp dir: no need to wait for a graceful stop

const stores = {
  LocalStorageStore: () => {
    const storage = new MemoryWebStorage();
    return () => new LocalStorageStore({ name: "aurora-test", storage });
  },
  IndexedDBStore: () => {
    const indexedDB = new IDBFactory();
    return () => new IndexedDBStore({ name: "aurora-test", indexedDB });
  },
};

for (const [name, makeFactory] of Object.entries(stores)) {
  test(`${name}: the outbox survives a reload and is stored once, in typed order`, async () => {
    const newStore = makeFactory();
    const alice = await register(server.url);
    const bob = await register(server.url);
    const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
    const options = { url: server.url, token: alice.token, reconnectDelayMs: 100, reconnectDelayMaxMs: 500, timeoutMs: 2000 };

    const first = new AuroraClient({ ...options, store: newStore() });
    await first.connect();
    await first.send(conversation.id, "before");
    await server.kill();
    const typed = ["one", "two", "three"];
    const promises = typed.map((body) => first.send(conversation.id, body).catch((err) => err));
    await eventually(() => first.pending().length === 3, "three in the outbox");
    await first.close(); // the page goes away with the server down
    for (const p of promises) assert.equal((await p).code, "closed");

    await server.start();
    const second = new AuroraClient({ ...options, store: newStore() });
    const seen = [];
    second.on("message", (m) => seen.push(m.body));
    let loaded = null; // what the client shows the moment the store is loaded, before any answer
    second.once("pending", (list) => {
      loaded = { outbox: list.map((p) => p.body), messages: second.messages(conversation.id).map((m) => m.body) };
    });
    try {
      await second.connect();
    } catch (err) {
      await second.close();
      throw err;
    }
    assert.deepEqual(loaded, { outbox: typed, messages: ["before"] }, "loaded from the store, in typed order");
    await eventually(() => second.pending().length === 0, "the outbox drains");
    await eventually(() => second.messages(conversation.id).length === 4, "the reloaded client stores them");

    const history = await restHistory(server.url, alice.token, conversation.id);
    assert.deepEqual(history.map((m) => m.body), ["before", ...typed]);
    assert.deepEqual(second.messages(conversation.id).map((m) => m.body), ["before", ...typed]);
    assert.deepEqual(seen, typed);
    await second.close();

    // A third "reload": nothing is sent again.
    const third = new AuroraClient({ ...options, store: newStore() });
    await third.connect();
    assert.deepEqual(third.pending(), []);
    assert.deepEqual(third.messages(conversation.id).map((m) => m.body), ["before", ...typed]);
    await third.close();
    assert.equal((await restHistory(server.url, alice.token, conversation.id)).length, 4);
  });
}

test("a store that was another user's is cleared: nothing shows, nothing is sent as the new user", async () => {
  const storage = new MemoryWebStorage();
  const alice = await register(server.url);
  const bob = await register(server.url);
  const carol = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [carol.id] });
  const options = { url: server.url, reconnectDelayMs: 100, reconnectDelayMaxMs: 500, timeoutMs: 2000 };
  const a = new AuroraClient({ ...options, token: alice.token, store: new LocalStorageStore({ storage }) });
  await a.connect();
  await a.send(conversation.id, "alice's");
  await server.kill();
  const lost = a.send(conversation.id, "still in alice's outbox").catch((err) => err);
  await eventually(() => a.pending().length === 1, "alice's outbox");
  await a.close();
  assert.equal((await lost).code, "closed");
  await server.start();

  const b = new AuroraClient({ ...options, token: bob.token, store: new LocalStorageStore({ storage }) });
  await b.connect();
  assert.equal(b.user.id, bob.id);
  assert.equal(b.conversation(conversation.id), undefined);
  assert.deepEqual(b.messages(conversation.id), []);
  assert.deepEqual(b.pending(), []);
  await b.close();
  const history = await restHistory(server.url, alice.token, conversation.id);
  assert.deepEqual(history.map((m) => m.body), ["alice's"]);
  for (let i = 0; i < storage.length; i++) assert.ok(!storage.getItem(storage.key(i)).includes("alice's"), storage.key(i));
});
