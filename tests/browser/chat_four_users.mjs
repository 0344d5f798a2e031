// The old fix notes' Test 1 and Test 2 at once: four people in four isolated contexts. A clicks B
// and sends; B, who has clicked nothing, sees it live (no reload) with its unread badge; B opens it
// and replies; A sees the reply and the read tick. C and D do the same in parallel.
// Also: typing indicator, edit / react / reply / delete, the diagnostics panel, screenshots.
import {
  args, run, connectBrowser, person, openApp, registerThroughUi, openDirect, type, message, markDocument,
  shot, unique, PASSWORD, PHONE, assert, TIMEOUT_MS,
} from "./lib.mjs";
import { makePng } from "../../clients/js/test/support/png.js";

async function pair(browser, first, second, hello, reply, { screenshots = false } = {}) {
  const a = await person(browser, first.label);
  const b = await person(browser, second.label);
  await Promise.all([openApp(a, args.url), openApp(b, args.url)]);
  if (screenshots) await shot(a, "login");
  await Promise.all([registerThroughUi(a, first.username, PASSWORD), registerThroughUi(b, second.username, PASSWORD)]);
  const bNotReloaded = await markDocument(b);

  // A: click B in the contact list, send.
  await openDirect(a, second.username);
  await type(a, hello);
  await message(a, hello).waitFor();
  await a.page.locator('[data-testid="message"]:not([data-state="pending"])', { hasText: hello }).waitFor();

  // B: clicked nothing; the conversation shows up with its badge, live.
  const item = b.page.locator('[data-testid="conversation"]', { hasText: first.username });
  await item.locator('[data-testid="unread"]', { hasText: /^1$/ }).waitFor();
  assert(await bNotReloaded(), `${second.label}'s page was reloaded`);
  // The delivered tick reaches A as soon as B's client has the message (B has not opened it yet).
  await message(a, hello, "delivered").waitFor();

  // B opens it: the message is there, the badge goes, A gets the read tick.
  await item.click();
  await message(b, hello).waitFor();
  await item.locator('[data-testid="unread"]').waitFor({ state: "detached" });
  await message(a, hello, "read").waitFor();

  // B types (A sees the typing indicator), then Enter sends.
  await b.by("composer").fill(reply);
  await a.page.locator('[data-testid="typing"]', { hasText: second.username }).waitFor();
  await b.by("composer").press("Enter");
  await message(a, reply).waitFor();
  await message(b, reply, "read").waitFor();      // A has it open: read at once
  await a.page.locator('[data-testid="typing"]', { hasText: second.username }).waitFor({ state: "detached" })
    .catch(async () => {
      const text = await a.by("typing").textContent();
      assert(!text.includes(second.username), `typing indicator still shows ${text}`);
    });

  // Shift+Enter is a new line, not a send.
  await a.by("composer").fill("line one");
  await a.by("composer").press("Shift+Enter");
  await a.by("composer").type("line two");
  assert((await a.by("composer").inputValue()) === "line one\nline two", "Shift+Enter must insert a new line");
  await a.by("composer").press("Enter");
  await message(b, "line two").waitFor();

  const seqs = await a.page.$$eval('[data-testid="message"]', (els) => els.map((e) => Number(e.dataset.seq)));
  return { a, b, seqs };
}

async function messageFeatures(a, b, hello, reply) {
  // Edit (A's own message), react (B on A's message), reply (B quotes A), delete (A).
  const mine = message(a, hello).first();
  await mine.hover();
  await mine.getByRole("button", { name: "Edit" }).click();
  const box = a.page.getByRole("textbox", { name: "Edit message" });
  await box.fill(`${hello} (edited)`);
  await box.press("Enter");
  await message(b, `${hello} (edited)`).waitFor();
  await message(b, `${hello} (edited)`).getByText("edited", { exact: true }).waitFor();

  const theirs = message(b, `${hello} (edited)`).first();
  await theirs.hover();
  await theirs.getByRole("button", { name: "React 👍" }).click();
  await message(a, hello).getByRole("button", { name: "👍 1" }).waitFor();

  await theirs.hover();
  await theirs.getByRole("button", { name: "Reply" }).click();
  await b.by("composer").fill("a reply to that");
  await b.by("send").click();
  const quoted = message(a, "a reply to that");
  await quoted.locator(".quote", { hasText: hello }).waitFor();

  a.page.once("dialog", (dialog) => dialog.accept());
  const victim = message(a, reply).first();     // B's message: A cannot delete it (no button)
  await victim.hover();
  assert(await victim.getByRole("button", { name: "Delete" }).count() === 0, "only the sender may delete");
  await type(a, "to be deleted");
  const doomed = message(a, "to be deleted", "read");
  await doomed.waitFor();
  await doomed.hover();
  await doomed.getByRole("button", { name: "Delete" }).click();
  await b.page.locator('[data-testid="message"]', { hasText: "This message was deleted." }).waitFor();
  assert(await message(b, "to be deleted").count() === 0, "deleted text must disappear for B");

  // Search in the conversation (full-text on the server).
  await a.page.getByRole("button", { name: "Search messages" }).click();
  await a.page.getByRole("searchbox", { name: "Search messages" }).fill("edited");
  await a.page.getByRole("searchbox", { name: "Search messages" }).press("Enter");
  await a.page.locator('[data-testid="search-result"]', { hasText: "edited" }).first().waitFor();

  // Attach: A picks a small PNG with the labelled Attach control; B sees its preview (the thumbnail,
  // loaded through its signed URL, no token).
  await a.page.getByLabel("Attach a file or photo").setInputFiles({ name: "dot.png", mimeType: "image/png", buffer: makePng(24, 16) });
  const preview = b.page.locator('[data-testid="message"] img[data-testid="attachment-preview"][alt="dot.png"]');
  await preview.waitFor();
  await b.page.waitForFunction((img) => img.complete && img.naturalWidth > 0, await preview.elementHandle());
  await a.page.locator('[data-testid="message"]:not([data-state="pending"]) img[alt="dot.png"]').waitFor();
}

run(async () => {
  const browser = await connectBrowser();
  const users = Object.fromEntries(["A", "B", "C", "D"].map((label) => [label, { label, username: unique(label.toLowerCase()) }]));
  const [ab, cd] = await Promise.all([
    pair(browser, users.A, users.B, "Hello from A", "Hi from B", { screenshots: true }),
    pair(browser, users.C, users.D, "Hello from C", "Hi from D"),
  ]);

  // Isolation: neither pair saw the other's messages.
  for (const p of [ab.a, ab.b]) assert(await message(p, "from C").count() + await message(p, "from D").count() === 0,
    `${p.name} saw C/D's messages`);
  for (const p of [cd.a, cd.b]) assert(await message(p, "from A").count() + await message(p, "from B").count() === 0,
    `${p.name} saw A/B's messages`);

  // A group: A creates "Team" with B from the contact list; it appears on B's side live.
  await ab.a.by("user-search").fill(users.B.username);
  await ab.a.page.locator(`[data-testid="contact"][data-username="${users.B.username}"]`).waitFor();
  await ab.a.page.getByRole("button", { name: "New group" }).click();
  await ab.a.page.getByLabel("Group name").fill("Team");
  await ab.a.page.getByRole("checkbox", { name: users.B.username }).check();
  await ab.a.page.getByRole("button", { name: "Create group" }).click();
  await ab.a.page.locator("#conversation-title", { hasText: "Team" }).waitFor();
  await ab.a.by("composer").fill("welcome to the team");
  await ab.a.by("send").click();
  await ab.b.page.locator('[data-testid="conversation"]', { hasText: "Team" })
    .locator('[data-testid="unread"]', { hasText: /^1$/ }).waitFor();
  await ab.b.page.locator('[data-testid="conversation"]', { hasText: users.A.username }).click();
  await ab.a.page.locator('[data-testid="conversation"]', { hasText: users.B.username }).click();
  await message(ab.a, "Hello from A").waitFor();

  // Presence: D closes the app; C sees D's dot go grey.
  const dOnC = cd.a.page.locator('[data-testid="conversation"]', { hasText: users.D.username }).locator(".dot");
  await cd.a.page.waitForFunction((el) => el.dataset.online === "true", await dOnC.elementHandle());
  await cd.b.context.close();
  await cd.a.page.locator('[data-testid="conversation"] .dot[data-online="false"]').waitFor();

  await messageFeatures(ab.a, ab.b, "Hello from A", "Hi from B");

  // Diagnostics: the notes' checklist, live.
  await ab.a.page.getByRole("button", { name: "Diagnostics" }).click();
  const diagnostics = ab.a.by("diagnostics");
  await diagnostics.getByText(/^yes, as /).waitFor();
  const diag = await diagnostics.locator("dd").allTextContents();
  await shot(ab.a, "conversation-diagnostics");
  await ab.a.page.getByRole("button", { name: "Diagnostics" }).click();
  await shot(ab.a, "conversation");
  await shot(ab.b, "conversation-other-side");

  // Phone width: one pane at a time, the back button returns to the list.
  await ab.a.page.setViewportSize(PHONE);
  await shot(ab.a, "phone-conversation");
  await ab.a.page.getByRole("button", { name: "Back to conversations" }).click();
  await ab.a.by("conversation").first().waitFor({ state: "visible" });
  assert(!(await ab.a.by("composer").isVisible()), "on a phone the list replaces the conversation");
  await shot(ab.a, "phone-list");
  const overflow = await ab.a.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert(!overflow, "no horizontal scrolling at phone width");

  const problems = [ab, cd].flatMap(({ a, b }) => [...a.problems, ...b.problems]);
  const result = {
    users: Object.fromEntries(Object.entries(users).map(([k, v]) => [k, v.username])),
    seqs: { ab: ab.seqs, cd: cd.seqs }, diagnostics: diag, problems, timeoutMs: TIMEOUT_MS,
  };
  await browser.close();
  return result;
});
