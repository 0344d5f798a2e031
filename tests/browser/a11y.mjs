// Accessibility: axe-core (the engine of Lighthouse's and Chrome DevTools' audits) on each screen a
// person passes through: the login form, the conversation list with an open direct conversation and
// its messages, the search results and the diagnostics panel, on a desktop and a phone viewport.
// Returns every violation with its impact; pytest fails on "serious" and "critical" ones.
import { createRequire } from "node:module";
import fs from "node:fs";
import {
  args, run, connectBrowser, openApp, registerThroughUi, openDirect, type, message, unique, PASSWORD,
  DESKTOP, PHONE, TIMEOUT_MS,
} from "./lib.mjs";

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

async function someone(browser, name, viewport) {
  // The app's CSP allows no inline script; axe is the test's, not the app's, so this context bypasses it.
  const context = await browser.newContext({ viewport, colorScheme: "light", bypassCSP: true });
  context.setDefaultTimeout(TIMEOUT_MS);
  const page = await context.newPage();
  return { name, context, page, problems: [], by: (id) => page.getByTestId(id) };
}

async function audit(p, screen) {
  await p.page.addScriptTag({ content: AXE });
  const found = await p.page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
    }));
  });
  return found.map((v) => ({ screen: `${p.name}: ${screen}`, ...v }));
}

run(async () => {
  const browser = await connectBrowser();
  const violations = [];
  const screens = [];
  for (const [label, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    const a = await someone(browser, `A (${label})`, viewport);
    const b = await someone(browser, `B (${label})`, viewport);
    const names = { a: unique("a11ya"), b: unique("a11yb") };
    await Promise.all([openApp(a, args.url), openApp(b, args.url)]);
    violations.push(...await audit(a, "login"));
    screens.push("login");
    await Promise.all([registerThroughUi(a, names.a, PASSWORD), registerThroughUi(b, names.b, PASSWORD)]);
    violations.push(...await audit(a, "conversation list"));
    await openDirect(a, names.b);
    await type(a, "Hello, can you read this?");
    await message(a, "Hello, can you read this?").waitFor();
    await b.by("conversation").first().click();
    await message(b, "Hello, can you read this?").waitFor();
    await type(b, "Yes, loud and clear");
    await message(a, "Yes, loud and clear").waitFor();
    violations.push(...await audit(a, "open conversation"));
    violations.push(...await audit(b, "open conversation (receiver)"));
    screens.push("conversation list", "open conversation");
    await a.page.getByRole("button", { name: "Diagnostics" }).click();
    await a.by("diagnostics").waitFor({ state: "visible" });
    violations.push(...await audit(a, "diagnostics"));
    screens.push("diagnostics");
    await a.context.close();
    await b.context.close();
  }
  await browser.close();
  return { violations, screens };
});
