// Shared helpers of the browser scenarios. A scenario is run by pytest as
// `node SCENARIO.mjs '<json args>'`; it connects to the module's one Chromium (browser_server.mjs),
// may ask pytest to act on the server ({"ask": ...} on stdout, the answer on stdin), and ends by
// printing {"result": ...}. It fails by throwing: the stack goes to stderr and the exit code is 1.
import { chromium } from "playwright-core";
import readline from "node:readline";

export const args = JSON.parse(process.argv[2] || "{}");
export const TIMEOUT_MS = args.timeoutMs ?? 20000;
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

export async function ask(what, data = {}) {
  console.log(JSON.stringify({ ask: what, ...data }));
  const { value, done } = await lines.next();
  if (done) throw new Error(`pytest closed stdin instead of answering ${what}`);
  return JSON.parse(value);
}

export function finish(result) {
  console.log(JSON.stringify({ result }));
  process.exit(0);
}

export async function run(scenario) {
  try {
    finish(await scenario());
  } catch (err) {
    console.error(err?.stack || String(err));
    process.exit(1);
  }
}

export async function connectBrowser() {
  return chromium.connect(args.wsEndpoint, { timeout: TIMEOUT_MS });
}

export const DESKTOP = { width: 1200, height: 760 };
export const PHONE = { width: 390, height: 780 };

/** One person: an isolated context (own cookies, localStorage, IndexedDB) with one page. */
export async function person(browser, name, { viewport = DESKTOP } = {}) {
  const context = await browser.newContext({ viewport, colorScheme: "light" });
  context.setDefaultTimeout(TIMEOUT_MS);
  const page = await context.newPage();
  const problems = [];
  page.on("console", (msg) => { if (msg.type() === "error") problems.push(`${name} console: ${msg.text()}`); });
  page.on("pageerror", (err) => problems.push(`${name} page error: ${err.message}`));
  return { name, context, page, problems, by: (id) => page.getByTestId(id) };
}

export async function openApp(p, url) {
  await p.page.goto(url);
  await p.by("login-username").waitFor();
}

/** Registers through the login screen and waits until the app is connected. */
export async function registerThroughUi(p, username, password) {
  await p.by("login-username").fill(username);
  await p.by("login-password").fill(password);
  await p.by("register-submit").click();
  await connected(p);
}

export async function loginThroughUi(p, username, password) {
  await p.by("login-username").fill(username);
  await p.by("login-password").fill(password);
  await p.by("login-password").press("Enter");
  await connected(p);
}

export async function connected(p) {
  await p.page.locator('[data-testid="connection-state"]', { hasText: /^connected$/ }).waitFor();
}

export async function bannerIs(p, text) {
  await p.page.waitForFunction((t) =>
    document.querySelector('[data-testid="connection-state"]')?.textContent === t, text, { timeout: TIMEOUT_MS });
}

/** A message bubble by its text, optionally in a given state. */
export function message(p, text, state) {
  const selector = state ? `[data-testid="message"][data-state="${state}"]` : '[data-testid="message"]';
  return p.page.locator(selector, { hasText: text });
}

export async function openDirect(p, username) {
  await p.by("user-search").fill(username);
  await p.page.locator(`[data-testid="contact"][data-username="${username}"]`).click();
  await p.by("composer").waitFor({ state: "visible" });
}

export async function type(p, text) {
  await p.by("composer").fill(text);
  await p.by("composer").press("Enter");
}

/** Marks the document so a later check can prove no reload happened. */
export async function markDocument(p) {
  const mark = Math.random().toString(36).slice(2);
  await p.page.evaluate((m) => { window.__auroraTestMark = m; }, mark);
  return async () => p.page.evaluate((m) => window.__auroraTestMark === m, mark);
}

export async function shot(p, name) {
  if (!args.screenshots) return null;
  const path = `${args.screenshots}/${name}.png`;
  await p.page.screenshot({ path });
  return path;
}

export function unique(prefix) {
  return `${prefix}_${Math.random().toString(36).slice(2, 8)}`;
}

export const PASSWORD = "correct horse battery";

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
