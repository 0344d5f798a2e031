// One Chromium for a whole pytest module: launched once (Debian's /usr/bin/chromium, never a
// downloaded build), its endpoint printed as one JSON line; each scenario connects to it and opens
// its own isolated contexts. Ends when stdin closes (the pytest fixture's teardown) or on SIGTERM.
import { chromium } from "playwright-core";

export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  // Calls: a fake camera and microphone, and no permission prompt.
  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
];

const server = await chromium.launchServer({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: CHROMIUM_ARGS,
});
console.log(JSON.stringify({ wsEndpoint: server.wsEndpoint() }));

let closing = false;
async function shutdown() {
  if (closing) return;
  closing = true;
  await server.close();
  process.exit(0);
}
process.stdin.on("end", shutdown);
process.stdin.on("close", shutdown);
process.stdin.resume();
process.on("SIGTERM", shutdown);
