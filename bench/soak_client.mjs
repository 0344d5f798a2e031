// The churn soak's load client: socket.io-client 4.8 over websocket, one Node process.
//
//     node bench/soak_client.mjs SETUP.json RESULT.json
//
// The orchestrator (bench/soak.py) starts the server, registers the users (in pairs, one direct
// conversation per pair) and writes SETUP.json: {url, users: [{id, token, conversation}],
// workers, duration_s, rate, timeout_s, report_every_s, fault_every}. This program runs `workers` concurrent
// loops until duration_s has passed; each loop, over and over, with a random user:
//   connect a fresh /chat socket (auth {token}, forceNew: its own Engine.IO connection),
//   send_message with a client_id of its own, sync from the seq before the one the ack gave,
//   disconnect.
// `rate` (cycles/s, 0 = as fast as the loops go) paces the starts across all loops.
//
// Every cycle is checked: the connect succeeds; the ack is ok, not a duplicate, and carries this
// message (client_id, conversation_id, body) with an integer seq; the sync is ok and its messages
// hold that seq with this client_id and body. Anything else is a failed cycle, counted and the
// first 50 described. A line of JSON per report_every_s goes to stdout ({t, cycles, failed,
// p50_ms, p99_ms} for that interval, total: cycles so far); RESULT.json gets {ok, cycles, failed, errors, elapsed_s, cpu_s,
// cycle_ms: {p50, p90, p99, max}}. Exit 1 when any cycle failed.

import { readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const [setupPath, resultPath] = process.argv.slice(2);
if (!setupPath || !resultPath) {
  console.error("usage: node soak_client.mjs SETUP.json RESULT.json");
  process.exit(2);
}
const setup = JSON.parse(readFileSync(setupPath, "utf8"));
const users = setup.users;
const timeoutMs = (setup.timeout_s ?? 10) * 1000;
const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

const errors = [];
let failed = 0;
let cycles = 0;
function fail(message) {
  failed += 1;
  if (errors.length < 50) errors.push(message);
}

// Cycle durations (ms): all of them for the whole run (a Float64Array that grows), and the
// interval's for the progress lines.
let durations = new Float64Array(1 << 16);
let nDurations = 0;
let interval = [];
function record(ms) {
  if (nDurations === durations.length) {
    const next = new Float64Array(durations.length * 2);
    next.set(durations);
    durations = next;
  }
  durations[nDurations++] = ms;
  interval.push(ms);
}
function quantile(sorted, q) {
  if (!sorted.length) return null;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] * 10) / 10;
}

function connect(user) {
  return new Promise((resolve, reject) => {
    const socket = io(setup.url + "/chat", {
      transports: ["websocket"],
      auth: { token: user.token },
      reconnection: false,
      forceNew: true,
      timeout: timeoutMs,
    });
    // socket.io-client's `timeout` covers the Engine.IO handshake, not the namespace's answer.
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no connect within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      socket.close();
      const data = err && err.data ? ` ${JSON.stringify(err.data)}` : "";
      reject(new Error(`connect_error: ${(err && err.message) || err}${data}`));
    });
  });
}

const call = (socket, event, payload) => socket.timeout(timeoutMs).emitWithAck(event, payload);

async function cycle(worker, n) {
  const user = users[Math.floor(Math.random() * users.length)];
  const clientId = `soak-${worker}-${n}`;
  const body = `soak ${clientId}`;
  const started = now();
  let socket = null;
  let step = "connect";
  try {
    socket = await connect(user);
    step = "send_message";
    const ack = await call(socket, "send_message", { conversation_id: user.conversation, body, client_id: clientId });
    const m = ack && ack.message;
    if (!ack || ack.ok !== true) throw new Error(`refused: ${JSON.stringify(ack)}`);
    if (ack.duplicate) throw new Error("acked as a duplicate");
    if (!m || m.client_id !== clientId || m.conversation_id !== user.conversation || m.body !== body
        || !Number.isInteger(m.seq)) {
      throw new Error(`the ack carries another message: ${JSON.stringify(m)}`);
    }
    step = "sync";
    // --fault-every N (a self-check of these checks): every Nth cycle syncs from the acked seq itself,
    // so the answer lacks the message and the cycle must fail.
    const faulty = setup.fault_every > 0 && n % setup.fault_every === setup.fault_every - 1;
    const synced = await call(socket, "sync", { cursors: { [user.conversation]: faulty ? m.seq : m.seq - 1 } });
    if (!synced || synced.ok !== true) throw new Error(`refused: ${JSON.stringify(synced)}`);
    const found = (synced.messages || []).find((x) => x.conversation_id === user.conversation && x.seq === m.seq);
    if (!found || found.client_id !== clientId || found.body !== body) {
      throw new Error(`seq ${m.seq} of conversation ${user.conversation} missing or different: ${JSON.stringify(found)}`);
    }
    cycles += 1;
    record(now() - started);
  } catch (err) {
    fail(`worker ${worker} cycle ${n} (user ${user.id}) ${step}: ${(err && err.message) || err}`);
  } finally {
    if (socket) socket.disconnect();
  }
}

const cpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return Math.round((user + system) / 1e4) / 100;
};

const t0 = now();
const deadline = t0 + setup.duration_s * 1000;
const gap = setup.rate > 0 ? 1000 / setup.rate : 0;
let nextStart = t0;

async function loop(worker) {
  for (let n = 0; ; n++) {
    if (gap) {
      const at = Math.max(now(), nextStart);
      nextStart = at + gap;
      await sleep(at - now());
    }
    if (now() >= deadline) return;
    await cycle(worker, n);
  }
}

let lastCycles = 0;
let lastFailed = 0;
const reporter = setInterval(() => {
  const sorted = interval.sort((a, b) => a - b);
  console.log(JSON.stringify({
    t: Math.round((now() - t0) / 100) / 10, cycles: cycles - lastCycles, failed: failed - lastFailed,
    total: cycles, p50_ms: quantile(sorted, 0.5), p99_ms: quantile(sorted, 0.99),
  }));
  interval = [];
  lastCycles = cycles;
  lastFailed = failed;
}, (setup.report_every_s ?? 10) * 1000);

// Every step has its timeout, so the loops end within a cycle's timeouts of the deadline; if they
// did not, the run fails rather than hangs.
const hardLimitMs = setup.duration_s * 1000 + 4 * timeoutMs;
let running = setup.workers;
const loops = Array.from({ length: setup.workers }, (_, w) => loop(w).finally(() => { running -= 1; }));
await Promise.race([Promise.all(loops), sleep(hardLimitMs)]);
if (running > 0) fail(`${running} loops still in a cycle ${4 * timeoutMs} ms after the deadline`);
clearInterval(reporter);
const elapsed = (now() - t0) / 1000;
const all = durations.subarray(0, nDurations).sort();
const result = {
  ok: failed === 0, cycles, failed, errors, elapsed_s: Math.round(elapsed * 10) / 10, cpu_s: cpuSeconds(),
  cycle_ms: { p50: quantile(all, 0.5), p90: quantile(all, 0.9), p99: quantile(all, 0.99), max: quantile(all, 1) },
};
writeFileSync(resultPath, JSON.stringify(result));
// Sockets still closing must not keep the process alive.
process.exit(result.ok ? 0 : 1);
