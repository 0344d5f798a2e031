// The chat user story through the SDK (aurora-client), the way an app should do it: nothing about
// sync, cursors, delivered or retries is hand-written here. (chat_scenario.mjs keeps the raw-protocol
// checks of the server itself: ack shapes, duplicate flags, the exact sync answer.)
//
//   node sdk_chat_scenario.mjs <server_url> <alice_token> <bob_token> [transports]
//
// Prints one JSON object; exits non-zero on any failure.

import { AuroraClient, MemoryStore } from "aurora-client";

const [url, aliceToken, bobToken, transportList = "websocket"] = process.argv.slice(2);
const transports = transportList.split(",");
const steps = [];

function check(condition, message, detail) {
  if (!condition) throw Object.assign(new Error(message), { detail });
}

async function until(predicate, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function client(token, store) {
  return new AuroraClient({ url, token, store, socketOptions: { transports } });
}

async function main() {
  const bobStore = new MemoryStore();
  const alice = client(aliceToken);
  let bob = client(bobToken, bobStore);
  const bobEvents = [];
  const record = (c) => c.on("message", (m) => bobEvents.push(m.seq));
  record(bob);
  await Promise.all([alice.connect(), bob.connect()]);
  step("connected");

  // Created after both connected: bob learns it live, with no join.
  const conversation = await alice.createConversation([bob.user.id]);
  const cid = conversation.id;
  await until(() => bob.conversation(cid), "bob's conversation event");
  step("conversation_created");

  const first = await alice.send(cid, "hello from the SDK");
  check(first.seq === 1 && first.body === "hello from the SDK", "send resolved with the wrong message", first);
  await until(() => bob.messages(cid).length === 1, "bob receives live");
  // delivered is automatic: alice sees it.
  await until(() => alice.deliveryState(cid, 1) === "delivered", "alice sees delivered");
  step("delivered");

  // Bob goes away (his store stays); alice sends 3; bob comes back on the same store and catches up.
  await bob.close();
  for (let n = 0; n < 3; n++) await alice.send(cid, `while away ${n}`);
  bob = client(bobToken, bobStore);
  record(bob);
  await bob.connect(); // resolves caught up
  const caughtUp = bob.messages(cid).map((m) => m.seq);
  check(JSON.stringify(caughtUp) === "[1,2,3,4]", "bob did not catch up exactly", caughtUp);
  step("caught_up");

  await alice.send(cid, "welcome back");
  await until(() => bob.messages(cid).length === 5, "bob's live message after the catch-up");
  await bob.markRead(cid, 5);
  await until(() => alice.deliveryState(cid, 5) === "read", "alice sees read");
  step("read");

  const result = {
    ok: true,
    transports,
    conversation_id: cid,
    bob_messages: bob.messages(cid),
    alice_messages: alice.messages(cid),
    bob_events: bobEvents,
    bob_unread: bob.conversation(cid).unread_count,
    steps,
  };
  await Promise.all([alice.close(), bob.close()]);
  return result;
}

function step(name) {
  steps.push(name);
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
