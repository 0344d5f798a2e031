// A real Aurora server for the SDK's tests: `python app.py` on a free port, on its own SQLite file
// (or the PostgreSQL URL in AURORA_JS_DATABASE_URL). SIGKILL and restart on the same port and database.
//
// Environment (set by tests/test_js_sdk.py): AURORA_JS_PYTHON (the venv's python), AURORA_JS_ROOT (the
// repository), AURORA_JS_TMP (a directory for databases and logs).

import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = process.env.AURORA_JS_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const PYTHON = process.env.AURORA_JS_PYTHON ?? path.join(ROOT, ".venv/bin/python");
export const SECRET = "test-secret-key-that-is-long-enough-0123456789";

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class AuroraServer {
  constructor({ settings = {} } = {}) {
    this.dir = mkdtempSync(path.join(process.env.AURORA_JS_TMP ?? tmpdir(), "aurora-js-"));
    this.databaseUrl = process.env.AURORA_JS_DATABASE_URL || `sqlite:///${this.dir}/aurora.db`;
    this.settings = settings;
    this.logPath = path.join(this.dir, "server.log");
    this.child = null;
    this.port = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (this.port === null) this.port = await freePort();
    const env = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith("AURORA_")) delete env[key];
    Object.assign(env, {
      AURORA_CONFIG: path.join(ROOT, "config/test.toml"),
      AURORA_SECRET_KEY: SECRET,
      AURORA_DATA_DIR: path.join(this.dir, "data"),
      AURORA_LOG_LEVEL: "WARNING",
      PYTHONUNBUFFERED: "1",
    });
    for (const [key, value] of Object.entries(this.settings)) env[`AURORA_${key.toUpperCase()}`] = String(value);
    const log = openSync(this.logPath, "a");
    this.child = spawn(PYTHON, ["app.py", "--host", "127.0.0.1", "--port", String(this.port), "--database-url", this.databaseUrl], {
      cwd: ROOT, env, stdio: ["ignore", log, log],
    });
    const child = this.child;
    let exited = null;
    child.once("exit", (code, signal) => { exited = { code, signal }; });
    child.once("error", (err) => { exited = { error: err.message }; });
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`server exited (${JSON.stringify(exited)}) before answering; log:\n${this.log()}`);
      try {
        const res = await fetch(this.url + "/", { signal: AbortSignal.timeout(1000) });
        if (res.status < 500) return this;
      } catch {
        // not up yet
      }
      await sleep(100);
    }
    throw new Error(`server did not answer within 20 s; log:\n${this.log()}`);
  }

  /** SIGKILL: no goodbye, no graceful disconnect; the port stays ours for start(). */
  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(timer);
  }

  log() {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }
}

let counter = 0;

/** Register a fresh user over REST: {id, username, token, user}. */
export async function register(url, prefix = "js") {
  const username = `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  const res = await fetch(`${url}/api/auth/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password: "correct horse battery" }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(body)}`);
  return { id: body.user.id, username, token: body.token, user: body.user };
}

export async function rest(url, token, method, pathName, body) {
  const res = await fetch(url + pathName, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json();
  if (!res.ok) throw new Error(`${method} ${pathName}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

/** The whole REST history of a conversation, ascending seq. */
export async function restHistory(url, token, conversationId) {
  const out = [];
  let after = 0;
  for (;;) {
    const page = await rest(url, token, "GET", `/api/conversations/${conversationId}/messages?after_seq=${after}&limit=200`);
    out.push(...page.messages);
    if (!page.has_more || page.messages.length === 0) return out;
    after = page.messages[page.messages.length - 1].seq;
  }
}

/** Poll `check` until it returns a truthy value (or throw after timeoutMs with `what`). */
export async function eventually(check, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(50);
  }
}
