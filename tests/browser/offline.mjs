// Offline: the server stops; A types two messages (shown pending), reloads the page (the app shell
// comes from the service worker's cache, the outbox from IndexedDB: both still pending, in order);
// the server starts again on the same port and database: both are stored once, in typed order, and
// B sees them live.
import {
  args, ask, run, connectBrowser, person, openApp, registerThroughUi, openDirect, type, message, bannerIs,
  connected, unique, PASSWORD, assert,
} from "./lib.mjs";

async function bodies(p) {
  return p.page.$$eval('[data-testid="message"]', (els) => els.map((e) => ({
    body: e.querySelector(".body")?.textContent, state: e.dataset.state, seq: e.dataset.seq })));
}

run(async () => {
  const browser = await connectBrowser();
  const a = await person(browser, "A");
  const b = await person(browser, "B");
  const names = { a: unique("offa"), b: unique("offb") };
  await Promise.all([openApp(a, args.url), openApp(b, args.url)]);
  await Promise.all([registerThroughUi(a, names.a, PASSWORD), registerThroughUi(b, names.b, PASSWORD)]);
  await openDirect(a, names.b);
  await type(a, "before the outage");
  await b.by("conversation").first().click();
  await message(b, "before the outage").waitFor();
  await a.page.locator("html[data-offline-ready='true']").waitFor({ state: "attached" });

  await ask("stop_server");
  await bannerIs(a, "reconnecting");
  await type(a, "offline one");
  await type(a, "offline two");
  await message(a, "offline one", "pending").waitFor();
  await message(a, "offline two", "pending").waitFor();
  const beforeReload = await bodies(a);

  // Reload while the server is down.
  await a.page.reload();
  // From IndexedDB with no connection (client.ready): the stored message and the outbox.
  await message(a, "before the outage").waitFor();
  await message(a, "offline two", "pending").waitFor();
  await message(a, "offline one", "pending").waitFor();
  const afterReload = await bodies(a);
  assert(await a.by("connection-state").textContent() !== "connected", "cannot be connected: the server is down");

  await ask("start_server");
  await connected(a);
  await message(a, "offline two", "read").or(message(a, "offline two", "delivered")).first().waitFor({ timeout: 30000 });
  await message(b, "offline two").waitFor({ timeout: 30000 });
  await message(b, "offline one").waitFor();
  const final = { a: await bodies(a), b: await bodies(b) };
  const problems = [...a.problems, ...b.problems].filter((p) => !/Failed to load resource|ERR_CONNECTION_REFUSED|WebSocket connection/.test(p));
  await browser.close();
  return { names, beforeReload, afterReload, final, problems };
});
