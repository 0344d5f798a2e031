// The message log with the official socket.io-client: edit, delete, react, reply, and a device that was
// offline through all of it and catches up by `sync`, applying the rules of docs/protocol.md
// ("Applying the log"). Both of bob's devices must end with exactly the state REST history shows.
//
//   node message_log_scenario.mjs <server_url> <alice_token> <bob_token> <bob_id>
//
// Prints one JSON object; exits non-zero on any failure.

import { io } from "socket.io-client";
import { isDeepStrictEqual } from "node:util";

const [url, aliceToken, bobToken, bobIdText] = process.argv.slice(2);
const bobId = Number(bobIdText);
const TIMEOUT_MS = 10000;
const steps = [];

function check(condition, message, detail) {
  if (!condition) throw Object.assign(new Error(message), { detail });
}

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT_MS); }),
  ]).finally(() => clearTimeout(timer));
}

function connect(token) {
  return io(url + "/chat", { auth: { token }, transports: ["websocket"], reconnection: false, forceNew: true });
}

async function connected(socket) {
  if (!socket.connected) await withTimeout(new Promise((r) => socket.once("connect", r)), "connect");
}

async function request(socket, event, payload) {
  const res = await socket.timeout(TIMEOUT_MS).emitWithAck(event, payload);
  check(res.ok === true, `${event} failed`, res);
  return res;
}

async function rest(method, path, token, body) {
  const res = await fetch(url + path, {
    method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json();
  check(res.ok, `${method} ${path} -> ${res.status}`, data);
  return data;
}

// -- a store that applies the log (what an SDK does) ------------------------------------------
class LogStore {
  constructor() { this.messages = new Map(); this.cursor = 0; }

  apply(entry) {
    if (entry.seq <= this.cursor) return "duplicate";
    if (entry.seq > this.cursor + 1) return "gap";
    this.cursor = entry.seq;
    if (entry.kind === "text" || entry.kind === "call") {
      this.messages.set(entry.seq, structuredClone(entry));
      return "applied";
    }
    if (entry.kind === "edit" || entry.kind === "delete") {
      const excerpt = entry.kind === "delete" || !entry.body ? null : Array.from(entry.body).slice(0, 100).join("");
      for (const m of this.messages.values()) if (m.reply_to && m.reply_to.seq === entry.target_seq) m.reply_to.excerpt = excerpt;
    }
    const target = this.messages.get(entry.target_seq);
    if (!target || entry.seq <= target.state_seq) return "skipped";
    if (entry.kind === "edit") {
      target.body = entry.body;
      target.edited_at = entry.created_at;
    } else if (entry.kind === "delete") {
      Object.assign(target, { deleted: true, body: null, edited_at: null, reactions: [], reply_to: null });
    } else {
      let item = target.reactions.find((r) => r.emoji === entry.emoji);
      if (entry.added) {
        if (!item) target.reactions.push(item = { emoji: entry.emoji, count: 0, user_ids: [] });
        if (!item.user_ids.includes(entry.sender_id)) item.user_ids.push(entry.sender_id);
      } else if (item && item.user_ids.includes(entry.sender_id)) {
        item.user_ids.splice(item.user_ids.indexOf(entry.sender_id), 1);
        if (item.user_ids.length === 0) target.reactions.splice(target.reactions.indexOf(item), 1);
      }
      for (const r of target.reactions) r.count = r.user_ids.length;
    }
    target.state_seq = entry.seq;
    return "applied";
  }

  view(myId) {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq).map((m) => ({
      ...structuredClone(m),
      reactions: m.reactions.map((r) => ({ ...r, user_ids: [...r.user_ids], me: r.user_ids.includes(myId) })),
    }));
  }
}

async function syncInto(socket, store, conversationId) {
  for (;;) {
    const res = await request(socket, "sync", { cursors: { [conversationId]: store.cursor }, limit: 2 });
    for (const entry of res.messages) {
      const outcome = store.apply(entry);
      check(outcome === "applied" || outcome === "skipped", "sync entry not applicable", { entry, outcome });
    }
    if (!res.has_more) return;
  }
}

async function main() {
  const alice = connect(aliceToken);
  const bobLive = connect(bobToken);
  const bobOffline = connect(bobToken);
  await Promise.all([connected(alice), connected(bobLive), connected(bobOffline)]);
  const { conversation } = await rest("POST", "/api/conversations", aliceToken, { user_ids: [bobId] });
  const cid = conversation.id;

  const live = new LogStore();
  const gaps = [];
  bobLive.on("new_message", (m) => { if (live.apply(m) === "gap") gaps.push(m.seq); });
  bobLive.on("message_changed", ({ entry }) => { if (live.apply(entry) === "gap") gaps.push(entry.seq); });

  await request(alice, "send_message", { conversation_id: cid, body: "hello wrold", client_id: "m-1" });
  const offline = new LogStore();
  await syncInto(bobOffline, offline, cid);
  check(offline.cursor === 1, "offline device has seq 1", offline.cursor);
  bobOffline.disconnect();
  steps.push({ step: "offline device left at seq 1" });

  const edit = await request(alice, "edit_message", { conversation_id: cid, seq: 1, body: "hello world", client_id: "e-1" });
  check(edit.entry.kind === "edit" && edit.message.body === "hello world", "edit ack", edit);
  const retried = await request(alice, "edit_message", { conversation_id: cid, seq: 1, body: "hello world", client_id: "e-1" });
  check(retried.duplicate === true && retried.entry.seq === edit.entry.seq, "edit retry returns the original", retried);
  const reply = await request(bobLive, "send_message", { conversation_id: cid, body: "hi alice", reply_to_seq: 1 });
  check(reply.message.reply_to.excerpt === "hello world", "reply excerpt", reply);
  live.apply(reply.message); // the sending socket gets the ack, not new_message
  const react = await request(bobLive, "react", { conversation_id: cid, seq: 1, emoji: "👍" });
  check(react.message.reactions[0].me === true, "me in the ack", react);
  live.apply(react.entry);
  await request(alice, "react", { conversation_id: cid, seq: 1, emoji: "👍" });
  await request(alice, "react", { conversation_id: cid, seq: 3, emoji: "❤️" });
  const unreact = await request(bobLive, "unreact", { conversation_id: cid, seq: 1, emoji: "👍" });
  live.apply(unreact.entry);
  await request(alice, "send_message", { conversation_id: cid, body: "to be deleted" });
  const del = await request(alice, "delete_message", { conversation_id: cid, seq: 1 });
  check(del.message.deleted === true && del.message.body === null, "delete ack", del);
  const again = await request(alice, "delete_message", { conversation_id: cid, seq: 1 });
  check(again.duplicate === true && again.entry.seq === del.entry.seq, "second delete answers the first", again);
  const last = del.entry.seq;
  await withTimeout((async () => { while (live.cursor < last) await new Promise((r) => setTimeout(r, 20)); })(),
    "live events up to the delete");
  steps.push({ step: "live device applied every event", cursor: live.cursor });

  const back = connect(bobToken);
  await connected(back);
  await syncInto(back, offline, cid);
  steps.push({ step: "offline device caught up by sync", cursor: offline.cursor });

  const { messages: history } = await rest("GET", `/api/conversations/${cid}/messages`, bobToken);
  const liveEqual = isDeepStrictEqual(live.view(bobId), history);
  const offlineEqual = isDeepStrictEqual(offline.view(bobId), history);
  check(gaps.length === 0, "no gaps live", gaps);
  check(liveEqual, "live state = history", { live: live.view(bobId), history });
  check(offlineEqual, "synced state = history", { offline: offline.view(bobId), history });
  for (const s of [alice, bobLive, back]) s.disconnect();
  return { ok: true, conversation_id: cid, last_seq: last, history, steps };
}

main().then(
  (result) => { console.log(JSON.stringify(result)); process.exit(0); },
  (err) => { console.log(JSON.stringify({ ok: false, error: err.message, detail: err.detail, steps })); process.exit(1); },
);
