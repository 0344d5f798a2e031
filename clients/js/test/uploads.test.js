// upload() against the real server: a PNG made in the test (as a Blob, as bytes, from a path), sent
// with an empty body; the other member gets it live with a thumbnail_url that serves an image
// without any Authorization header; errors are AuroraError too_large / invalid; URLs are never
// persisted in the store and are fetched fresh after a reconnect.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { AuroraClient, AuroraError, MemoryStore } from "../src/index.js";
import { makePng } from "./support/png.js";
import { AuroraServer, eventually, register, rest } from "./support/server.js";

const MAX_UPLOAD_BYTES = 4096;
let server;
before(async () => { server = await new AuroraServer({ settings: { max_upload_bytes: MAX_UPLOAD_BYTES } }).start(); });
after(async () => { await server?.kill(); });

const client = (user, options = {}) => new AuroraClient({ url: server.url, token: user.token, socketOptions: { transports: ["websocket"] }, ...options });

test("upload a PNG, send it with no text: the other member sees it with a working thumbnail", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const png = makePng(16, 12);
  const a = client(alice);
  const b = client(bob);
  try {
    await Promise.all([a.connect(), b.connect()]);
    const upload = await a.upload(new Blob([png], { type: "image/png" }), { filename: "dot.png" });
    assert.equal(upload.name, "dot.png");
    assert.equal(upload.content_type, "image/png");
    assert.equal(upload.width, 16);
    assert.equal(upload.height, 12);
    assert.ok(Number.isInteger(upload.id));
    const sent = await a.send(conversation.id, "", { attachments: [upload.id] });
    assert.equal(sent.attachments.length, 1);
    assert.equal(sent.attachments[0].id, upload.id);

    const got = await eventually(() => b.messages(conversation.id).find((m) => m.seq === sent.seq), "bob gets it");
    const [attachment] = got.attachments;
    assert.equal(attachment.name, "dot.png");
    assert.ok(attachment.thumbnail_url && attachment.url, JSON.stringify(attachment));
    const thumb = await fetch(new URL(attachment.thumbnail_url, server.url)); // no Authorization: an <img src>
    assert.equal(thumb.status, 200);
    assert.match(thumb.headers.get("content-type"), /^image\//);
    const full = await fetch(new URL(attachment.url, server.url));
    assert.equal(full.status, 200);
    assert.ok((await full.arrayBuffer()).byteLength > 0);

    // Bytes and a path work too.
    const fromBytes = await a.upload(new Uint8Array(png), { filename: "bytes.png" });
    const file = path.join(server.dir, "from-disk.png");
    writeFileSync(file, png);
    const fromPath = await a.upload(file);
    assert.equal(fromBytes.name, "bytes.png");
    assert.equal(fromPath.name, "from-disk.png");
    assert.equal(fromPath.sha256, upload.sha256); // the same bytes
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("upload errors are AuroraError: too_large (413) and invalid (400)", async () => {
  const alice = await register(server.url);
  const a = client(alice);
  try {
    await assert.rejects(a.upload(new Uint8Array(MAX_UPLOAD_BYTES + 1), { filename: "big.bin" }),
      (err) => err instanceof AuroraError && err.code === "too_large" && err.status === 413);
    await assert.rejects(a.upload(new Blob([]), { filename: "empty.txt" }),
      (err) => err instanceof AuroraError && err.code === "invalid" && err.status === 400);
    await assert.rejects(a.upload(42), TypeError);
  } finally {
    await a.close();
  }
});

test("attachment URLs are not persisted, and come back fresh after a reconnect", async () => {
  const alice = await register(server.url);
  const bob = await register(server.url);
  const { conversation } = await rest(server.url, alice.token, "POST", "/api/conversations", { user_ids: [bob.id] });
  const store = new MemoryStore();
  const a = client(alice, { store });
  let seq;
  try {
    await a.connect();
    const upload = await a.upload(new Blob([makePng(8, 8)]), { filename: "p.png" });
    seq = (await a.send(conversation.id, "look", { attachments: [upload.id] })).seq;
    assert.ok(a.messages(conversation.id)[0].attachments[0].url); // in memory: usable now
  } finally {
    await a.close();
  }
  const [[, persisted]] = await store.entries(`m:${conversation.id}:${seq}`);
  assert.deepEqual(Object.keys(persisted.attachments[0]).filter((k) => k.endsWith("url")), []);
  const [[, conv]] = await store.entries(`c:${conversation.id}`);
  assert.equal(conv.last_message.attachments[0].url, undefined);

  const again = client(alice, { store });
  try {
    await again.ready;
    assert.equal(again.messages(conversation.id)[0].attachments[0].url, undefined); // offline: no stale URL
    await again.connect();
    const refreshed = await eventually(() => again.messages(conversation.id)[0].attachments[0].url, "a fresh URL");
    assert.equal((await fetch(new URL(refreshed, server.url))).status, 200);
    const [changed] = await again.refreshAttachments(conversation.id);
    assert.equal(changed.seq, seq);
  } finally {
    await again.close();
  }
});
