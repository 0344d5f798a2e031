// End-to-end scenario with the official socket.io-client against a running Aurora server.
//
//   node chat_scenario.mjs <server_url> <alice_token> <bob_token> [transports]
//
// transports: comma-separated, default "websocket"; "polling,websocket" is what browsers do by
// default (HTTP long-polling first, then the upgrade).
//
// Two users connect to /chat with `auth: {token}`; alice creates their conversation over REST
// after both are connected; alice sends with an ack (emitWithAck) and bob receives without ever
// joining; bob confirms delivery with a callback ack; bob disconnects, alice sends 3 more, bob
// reconnects and catches up with `sync` (no gaps, no duplicates), then receives live again; and a
// refused connect shows `err.data.code`. Prints one JSON object; exits non-zero on any failure.

import { io } from "socket.io-client";

const [url, aliceToken, bobToken, transportList = "websocket"] = process.argv.slice(2);
const transports = transportList.split(",");
const TIMEOUT_MS = 10000;
const steps = [];

function fail(message, detail) {
  const error = new Error(message);
  error.detail = detail;
  throw error;
}

function check(condition, message, detail) {
  if (!condition) fail(message, detail);
}

function step(name, data = {}) {
  steps.push({ step: name, ...data });
}

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

function connect(token, extra = {}) {
  return io(url + "/chat", {
    auth: token === undefined ? undefined : { token },
    transports,
    reconnection: false,
    forceNew: true,
    ...extra,
  });
}

function once(socket, event) {
  return withTimeout(new Promise((resolve) => socket.once(event, resolve)), `${event}`);
}

async function connected(socket) {
  if (socket.connected) return;
  await withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message} ${JSON.stringify(err.data)}`)));
    }),
    "connect",
  );
}

/** Collects every `event` a socket receives, and lets the test wait for a condition on them. */
function recorder(socket, event) {
  const items = [];
  const waiters = [];
  socket.on(event, (data) => {
    items.push(data);
    for (const waiter of [...waiters]) {
      if (waiter.test(items)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(items);
      }
    }
  });
  return {
    items,
    until(test, what) {
      if (test(items)) return Promise.resolve(items);
      return withTimeout(new Promise((resolve) => waiters.push({ test, resolve })), what);
    },
  };
}

async function api(method, path, token, body) {
  const response = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  check(response.ok, `${method} ${path} answered ${response.status}`, json);
  return json;
}

async function refusedCode(options) {
  const socket = io(url + "/chat", { transports, reconnection: false, forceNew: true, ...options });
  try {
    const err = await withTimeout(
      new Promise((resolve) => {
        socket.once("connect_error", resolve);
        socket.once("connect", () => resolve(null));
      }),
      "connect_error",
    );
    check(err !== null, "a bad token was accepted");
    check(err instanceof Error && typeof err.message === "string", "connect_error is not an Error", String(err));
    check(err.data && typeof err.data.message === "string", "connect_error has no err.data.message", err.data);
    return err.data.code;
  } finally {
    socket.disconnect();
  }
}

async function main() {
  check(url && aliceToken && bobToken, "usage: node chat_scenario.mjs <server_url> <alice_token> <bob_token>");
  const alice = (await api("GET", "/api/me", aliceToken)).user;
  const bob = (await api("GET", "/api/me", bobToken)).user;

  const bobSocket = connect(bobToken);
  const bobMessages = recorder(bobSocket, "new_message");
  const bobCreated = recorder(bobSocket, "conversation_created");
  await connected(bobSocket);
  const aliceSocket = connect(aliceToken);
  const aliceMessages = recorder(aliceSocket, "new_message");
  const aliceReceipts = recorder(aliceSocket, "receipt");
  await connected(aliceSocket);
  step("connected", { alice: aliceSocket.id, bob: bobSocket.id, transport: aliceSocket.io.engine.transport.name });

  // The conversation is created after both connected: bob is subscribed without reconnecting.
  const { conversation } = await api("POST", "/api/conversations", aliceToken, { user_ids: [bob.id] });
  const cid = conversation.id;
  await bobCreated.until((items) => items.some((c) => c.conversation.id === cid), "conversation_created");
  step("conversation_created", { conversation_id: cid });

  // Send with an ack; check its shape.
  const ack = await withTimeout(
    aliceSocket.emitWithAck("send_message", { conversation_id: cid, body: "hello from node", client_id: "js-1" }),
    "send_message ack",
  );
  check(ack && ack.ok === true, "send_message was not acknowledged ok", ack);
  check(ack.duplicate === false, "first send reported duplicate", ack);
  const first = ack.message;
  for (const [key, want] of [["conversation_id", cid], ["seq", 1], ["sender_id", alice.id],
    ["body", "hello from node"], ["client_id", "js-1"], ["kind", "text"]]) {
    check(first[key] === want, `ack.message.${key} is ${JSON.stringify(first[key])}, expected ${JSON.stringify(want)}`, ack);
  }
  check(Number.isInteger(first.id) && typeof first.created_at === "string", "ack.message lacks id/created_at", ack);
  step("send_ack", { ack });

  // Bob never joined anything and receives it live.
  await bobMessages.until((items) => items.length >= 1, "bob's first new_message");
  check(JSON.stringify(bobMessages.items[0]) === JSON.stringify(first), "bob got a different message", bobMessages.items);
  step("bob_received_without_join", { seq: bobMessages.items[0].seq });

  // A retry with the same client_id is the original, flagged duplicate.
  const retry = await withTimeout(
    aliceSocket.emitWithAck("send_message", { conversation_id: cid, body: "hello from node", client_id: "js-1" }),
    "retry ack",
  );
  check(retry.ok === true && retry.duplicate === true && retry.message.id === first.id, "retry was not idempotent", retry);

  // Bob confirms delivery with a classic callback ack; alice sees the receipt.
  const delivered = await withTimeout(
    new Promise((resolve) => bobSocket.emit("delivered", { conversation_id: cid, seq: 1 }, resolve)),
    "delivered ack",
  );
  check(delivered.ok === true && delivered.delivered_seq === 1, "delivered ack is wrong", delivered);
  await aliceReceipts.until((items) => items.some((r) => r.user_id === bob.id && r.delivered_seq === 1), "receipt");
  step("receipt", { receipt: aliceReceipts.items.at(-1) });

  // An unknown event is answered, not ignored.
  const unknown = await withTimeout(aliceSocket.emitWithAck("no_such_event", {}), "unknown event ack");
  check(unknown.ok === false && unknown.error.code === "invalid", "unknown event not answered invalid", unknown);

  // Bob goes offline; alice sends 3 more.
  let lastSeen = bobMessages.items.at(-1).seq;
  bobSocket.disconnect();
  const offlineAcks = [];
  for (let n = 0; n < 3; n += 1) {
    offlineAcks.push(
      await withTimeout(aliceSocket.emitWithAck("send_message", { conversation_id: cid, body: `while away ${n}` }), "ack"),
    );
  }
  check(offlineAcks.every((a) => a.ok === true), "an offline send failed", offlineAcks);
  const offlineSeqs = offlineAcks.map((a) => a.message.seq);
  check(JSON.stringify(offlineSeqs) === JSON.stringify([2, 3, 4]), "offline seqs are not 2,3,4", offlineSeqs);
  step("sent_while_bob_offline", { seqs: offlineSeqs });

  // Bob reconnects (same Socket object) and catches up with sync from the last seq he saw.
  const reconnected = once(bobSocket, "connect");
  bobSocket.connect();
  await reconnected;
  const sync = await withTimeout(
    bobSocket.emitWithAck("sync", { cursors: { [String(cid)]: lastSeen } }), "sync ack",
  );
  check(sync.ok === true, "sync failed", sync);
  check(sync.has_more === false, "sync has_more should be false", sync);
  check(Array.isArray(sync.conversations) && sync.conversations.some((c) => c.id === cid && c.last_seq === 4),
    "sync conversations lack {id, last_seq: 4}", sync.conversations);
  const synced = sync.messages.map((m) => m.seq);
  check(JSON.stringify(synced) === JSON.stringify([2, 3, 4]), "sync did not return exactly seqs 2,3,4", synced);
  check(JSON.stringify(sync.messages) === JSON.stringify(offlineAcks.map((a) => a.message)),
    "synced messages differ from what alice stored", sync.messages);
  lastSeen = synced.at(-1);
  step("sync", { seqs: synced, conversations: sync.conversations });

  // Live again after the catch-up.
  const live = await withTimeout(aliceSocket.emitWithAck("send_message", { conversation_id: cid, body: "welcome back" }), "ack");
  check(live.ok === true && live.message.seq === 5, "the message after sync is not seq 5", live);
  await bobMessages.until((items) => items.some((m) => m.seq === 5), "bob's live message after reconnect");
  const all = [...bobMessages.items.filter((m) => m.seq <= 1), ...sync.messages, ...bobMessages.items.filter((m) => m.seq > 1)];
  const seqs = all.map((m) => m.seq);
  check(JSON.stringify(seqs) === JSON.stringify([1, 2, 3, 4, 5]), "bob's messages have a gap or a duplicate", seqs);
  check(new Set(all.map((m) => m.id)).size === 5, "duplicate message ids", all);
  check(JSON.stringify(bobMessages.items.map((m) => m.seq)) === JSON.stringify([1, 5]),
    "bob received live messages while disconnected, or twice", bobMessages.items.map((m) => m.seq));
  check(aliceMessages.items.length === 0, "the sending socket received its own messages", aliceMessages.items);
  step("live_after_sync", { seqs });

  // Refused connects carry err.data.code.
  const invalidCode = await refusedCode({ auth: { token: "not-a-token" } });
  check(invalidCode === "auth_invalid", `bad token gave ${invalidCode}`);
  const requiredCode = await refusedCode({});
  check(requiredCode === "auth_required", `no token gave ${requiredCode}`);
  step("refused", { bad_token: invalidCode, no_token: requiredCode });

  aliceSocket.disconnect();
  bobSocket.disconnect();
  return {
    ok: true,
    transports,
    conversation_id: cid,
    ack,
    bob_seqs: seqs,
    synced_seqs: synced,
    refused_codes: { bad_token: invalidCode, no_token: requiredCode },
    steps,
  };
}

main().then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(0);
  },
  (error) => {
    process.stdout.write(JSON.stringify({ ok: false, error: error.message, detail: error.detail ?? null, steps }) + "\n");
    process.exit(1);
  },
);
