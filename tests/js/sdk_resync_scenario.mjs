// The SDK syncs when the server says `resync`: every live new_message is dropped by the test hook, so
// the only way the message can reach bob's store is the sync that `resync` starts.
//
//   node sdk_resync_scenario.mjs <server_url> <bob_token> <conversation_id> <body>
//
// Prints {"ready": true} once connected and caught up, then one JSON result line; exits non-zero on failure.

import { AuroraClient } from "aurora-client";

const [url, bobToken, cidText, body] = process.argv.slice(2);
const cid = Number(cidText);
const seen = [];

async function main() {
  const bob = new AuroraClient({
    url, token: bobToken, socketOptions: { transports: ["websocket"] },
    dropIncoming: (ns, event, payload) => {
      seen.push(event === "resync" ? `resync:${payload.reason}` : event);
      return event === "new_message";
    },
  });
  await bob.connect();
  console.log(JSON.stringify({ ready: true }));
  const deadline = Date.now() + 15000;
  while (!bob.messages(cid).some((m) => m.body === body)) {
    if (Date.now() > deadline) throw new Error(`message never arrived; events: ${seen.join(",")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await bob.close();
  console.log(JSON.stringify({ ok: true, events: seen, bodies: bob.messages(cid).map((m) => m.body) }));
}

main().catch((err) => {
  console.log(JSON.stringify({ ok: false, error: String(err?.stack ?? err) }));
  process.exit(1);
});
