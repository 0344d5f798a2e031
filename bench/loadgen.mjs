// Aurora benchmark load generator: socket.io-client 4.8 over websocket only, one Node process.
//
//     node bench/loadgen.mjs SETUP.json RESULT.json
//
// The orchestrator (bench/run.py) starts the server, creates the accounts and conversations,
// and writes SETUP.json: {scenario, target, url, namespace, server_pid, clk_tck, health_url,
// report_acked, params, clients: [{auth}], conversations: [{id, sender, members, start_seq}]}.
// This program connects the clients, drives the scenario, checks correctness while it measures,
// and writes RESULT.json: {ok, error_count, errors, metrics, acked?}. It never runs longer than
// params.hard_timeout_s and exits non-zero when anything was lost, duplicated or out of order.
//
// Correctness, for every conversation (each has exactly one sender):
//   - every message sent is acked ok (not as a duplicate) with the seq that follows the previous
//     message of that sender (the order it was sent in, no gaps);
//   - every other member receives every acked message exactly once, in seq order, with its body;
//   - nobody receives a message that was not sent, and the sender never receives its own.
// The orchestrator then checks the database holds each acked message exactly once.

import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const [setupPath, resultPath] = process.argv.slice(2);
if (!setupPath || !resultPath) {
  console.error("usage: node loadgen.mjs SETUP.json RESULT.json");
  process.exit(2);
}
const setup = JSON.parse(readFileSync(setupPath, "utf8"));
const P = setup.params;
const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const sleepUntil = (t) => sleep(t - now());

// ---------------------------------------------------------------------------------------------
// Errors, results, the hard time limit

const errors = [];
let errorCount = 0;
function fail(message) {
  errorCount += 1;
  if (errors.length < 50) errors.push(message);
}

let finished = false;
function finish(metrics, extra = {}) {
  if (finished) return;
  finished = true;
  const result = { ok: errorCount === 0, error_count: errorCount, errors, metrics, ...extra };
  writeFileSync(resultPath, JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}

setTimeout(() => {
  fail(`hard timeout: the scenario did not finish within ${P.hard_timeout_s}s`);
  finish({ phase });
}, P.hard_timeout_s * 1000);
let phase = "start";

// ---------------------------------------------------------------------------------------------
// The server process, seen through /proc (same machine)

function cpuSeconds(statPath, kernelOnly = false) {
  const stat = readFileSync(statPath, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = kernelOnly ? Number(fields[12]) : Number(fields[11]) + Number(fields[12]); // stime; utime + stime
  return ticks / (setup.clk_tck || 100);
}

function readProc() {
  const pid = setup.server_pid;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    const threads = {};
    const kernel = {};
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        threads[tid] = cpuSeconds(`/proc/${pid}/task/${tid}/stat`);
        kernel[tid] = cpuSeconds(`/proc/${pid}/task/${tid}/stat`, true);
      } catch {
        // the thread ended
      }
    }
    // The process line counts all threads.
    const sysS = cpuSeconds(`/proc/${pid}/stat`, true);
    const cpuS = cpuSeconds(`/proc/${pid}/stat`);
    return { rssKiB: rss, cpuS, sysS, userS: cpuS - sysS, threads, kernel };
  } catch {
    return { rssKiB: NaN, cpuS: NaN, sysS: NaN, userS: NaN, threads: {}, kernel: {} };
  }
}

// The server's PostgreSQL backends (setup.db: found by application_name), their CPU user and system.
let dbClient = null;
// Connected before a scenario's clients (connectDb): loading the pg module and connecting inside
// the measured window stalled this event loop for ~40 ms, which S4 counted as the server's latency.
async function connectDb() {
  if (!setup.db || dbClient) return;
  const pg = (await import("pg")).default;
  dbClient = new pg.Client({ connectionString: setup.db.url, application_name: "aurora-bench-loadgen" });
  await dbClient.connect();
}

async function readDb() {
  if (!setup.db) return null;
  await connectDb();
  const { rows } = await dbClient.query("SELECT pid FROM pg_stat_activity WHERE application_name = $1",
    [setup.db.application_name]);
  const out = {};
  for (const { pid } of rows) {
    try {
      const total = cpuSeconds(`/proc/${pid}/stat`);
      const sys = cpuSeconds(`/proc/${pid}/stat`, true);
      out[pid] = { user: total - sys, sys };
    } catch {
      // the backend ended
    }
  }
  return out;
}

// CPU of the backends between two readings; one that appeared in between counts from its start.
function dbCpu(db0, db1, seconds, acks) {
  if (!db0 || !db1) return {};
  let user = 0;
  let sys = 0;
  for (const [pid, cpu] of Object.entries(db1)) {
    user += cpu.user - (db0[pid]?.user ?? 0);
    sys += cpu.sys - (db0[pid]?.sys ?? 0);
  }
  return {
    db_backends: Object.keys(db1).length,
    db_user_util: user / seconds,
    db_sys_util: sys / seconds,
    db_cpu_util: (user + sys) / seconds,
    db_cpu_us_per_ack: acks ? ((user + sys) * 1e6) / acks : null,
  };
}

// CPU seconds each server thread spent between two readings (threads that used any).
function threadCpu(proc0, proc1, which = "threads") {
  const out = {};
  for (const [tid, cpu] of Object.entries(proc1[which])) {
    const used = cpu - (proc0[which][tid] ?? 0);
    if (used > 0) out[tid] = Math.round(used * 1000) / 1000;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sockets

const sockets = new Array(setup.clients.length).fill(null);
const closing = new Set();
let connectFailures = 0;

function describe(err) {
  if (!err) return String(err);
  const data = err.data ? ` ${JSON.stringify(err.data)}` : "";
  return `${err.message || err}${data}`;
}

function openSocket(i) {
  return new Promise((resolve, reject) => {
    // Several Aurora processes (bench/run.py --workers N): client i talks to process i mod N.
    const base = setup.urls ? setup.urls[i % setup.urls.length] : setup.url;
    const socket = io(base + setup.namespace, {
      transports: ["websocket"],
      auth: setup.clients[i].auth,
      reconnection: false,
      forceNew: true,
      timeout: P.connect_timeout_s * 1000,
    });
    closing.delete(i);
    if (MIXED) {
      socket.on("new_message", (message) => onMixedEntry(i, message));
      socket.on("message_changed", ({ entry }) => onMixedEntry(i, entry));
    } else {
      socket.on("new_message", (message) => onNewMessage(i, message));
    }
    socket.on("disconnect", (reason) => {
      if (storming) reconnectSoon(i, socket);
      else if (!closing.has(i)) fail(`client ${i}: disconnected by ${reason}`);
    });
    let settled = false;
    socket.once("connect", () => {
      settled = true;
      sockets[i] = socket;
      resolve(socket);
    });
    socket.once("connect_error", (err) => {
      if (settled) return;
      settled = true;
      connectFailures += 1;
      socket.close();
      reject(new Error(`client ${i}: connect_error: ${describe(err)}`));
    });
  });
}

function closeSocket(i) {
  closing.add(i);
  if (sockets[i]) sockets[i].disconnect();
  sockets[i] = null;
}

async function pool(indices, limit, fn) {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, indices.length) }, async () => {
    while (next < indices.length) {
      const i = indices[next++];
      await fn(i);
    }
  });
  await Promise.all(workers);
}

async function connectAll(indices, limit = P.connect_concurrency) {
  await pool(indices, limit, openSocket);
}

// ---------------------------------------------------------------------------------------------
// Messages: one log per conversation, in typed arrays (millions of messages stay cheap)

class Log {
  constructor() {
    this.n = 0;
    this.grow(1024);
  }
  grow(capacity) {
    const copy = (Type, old) => {
      const next = new Type(capacity);
      if (old) next.set(old.subarray(0, this.n));
      return next;
    };
    this.sentAt = copy(Float64Array, this.sentAt);
    this.seq = copy(Float64Array, this.seq); // 0 until acked ok
    this.dseq = copy(Float64Array, this.dseq); // seq seen by the first receiver, 0 until then
    this.deliveries = copy(Int32Array, this.deliveries);
    this.expect = copy(Int32Array, this.expect); // live receivers expected to get it
    this.capacity = capacity;
  }
  add(sentAt, expect) {
    if (this.n === this.capacity) this.grow(this.capacity * 2);
    const k = this.n++;
    this.sentAt[k] = sentAt;
    this.expect[k] = expect;
    return k;
  }
}

const conversations = setup.conversations.map((c, j) => ({
  j,
  id: c.id,
  sender: c.sender,
  receivers: c.members.filter((m) => m !== c.sender),
  start: c.start_seq || 0,
  log: new Log(),
  inflight: 0,
  acked: 0,
  live: true, // receivers are connected and must get each message
  recv: new Map(c.members.filter((m) => m !== c.sender).map((m) => [m, { last: c.start_seq || 0, count: 0 }])),
}));
const byId = new Map(conversations.map((c) => [c.id, c]));

const win = { start: Infinity, end: Infinity };
const inWindow = (t) => t >= win.start && t < win.end;
const ackLatencies = [];
const deliveryLatencies = [];
let acksInWindow = 0;
let deliveriesInWindow = 0;
let totalAcked = 0;
let totalDeliveries = 0;
let expectedDeliveries = 0;
let liveForbidden = false;

const clientId = (j, k) => `${j}.${k}`;
function bodyFor(id) {
  const head = `m ${id} `;
  return head.length >= P.body_bytes ? head : head + "x".repeat(P.body_bytes - head.length);
}

function send(c, scheduledAt, onAcked) {
  const k = c.log.add(scheduledAt ?? now(), c.live ? c.receivers.length : 0);
  const id = clientId(c.j, k);
  c.inflight += 1;
  const payload = { conversation_id: c.id, body: bodyFor(id), client_id: id };
  sockets[c.sender].timeout(P.ack_timeout_s * 1000).emit("send_message", payload, (err, ack) => {
    const t = now();
    c.inflight -= 1;
    if (err) {
      fail(`conversation ${c.id}: no ack for ${id} within ${P.ack_timeout_s}s`);
    } else if (!ack || ack.ok !== true) {
      fail(`conversation ${c.id}: ${id} refused: ${JSON.stringify(ack)}`);
    } else if (ack.duplicate) {
      fail(`conversation ${c.id}: ${id} acked as a duplicate`);
    } else if (!ack.message || ack.message.client_id !== id || ack.message.conversation_id !== c.id) {
      fail(`conversation ${c.id}: ack for ${id} carries another message: ${JSON.stringify(ack.message)}`);
    } else {
      const seq = ack.message.seq;
      const log = c.log;
      if (log.dseq[k] !== 0 && log.dseq[k] !== seq) fail(`${id}: acked as seq ${seq}, delivered as ${log.dseq[k]}`);
      log.seq[k] = seq;
      c.acked += 1;
      totalAcked += 1;
      expectedDeliveries += log.expect[k];
      if (inWindow(log.sentAt[k])) ackLatencies.push(t - log.sentAt[k]);
      if (inWindow(t)) acksInWindow += 1;
    }
    if (onAcked) onAcked(c);
  });
}

function onNewMessage(i, m) {
  const t = now();
  if (liveForbidden) {
    fail(`client ${i}: unexpected live new_message ${m && m.client_id} while catching up (sent twice?)`);
    return;
  }
  const c = m && byId.get(m.conversation_id);
  if (!c) {
    fail(`client ${i}: new_message for unknown conversation ${m && m.conversation_id}`);
    return;
  }
  const state = c.recv.get(i);
  if (!state) {
    fail(`client ${i}: the sender received its own message ${m.client_id}`);
    return;
  }
  if (m.seq !== state.last + 1) {
    if (m.seq <= state.last) fail(`client ${i}, conversation ${c.id}: seq ${m.seq} after ${state.last} (duplicate or out of order)`);
    else fail(`client ${i}, conversation ${c.id}: seq ${m.seq} after ${state.last} (gap)`);
  }
  if (m.seq > state.last) state.last = m.seq;
  state.count += 1;
  const id = typeof m.client_id === "string" ? m.client_id : "";
  const dot = id.indexOf(".");
  const j = Number(id.slice(0, dot));
  const k = Number(id.slice(dot + 1));
  if (dot < 0 || j !== c.j || !(k >= 0 && k < c.log.n)) {
    fail(`client ${i}, conversation ${c.id}: delivered a message nobody sent: ${JSON.stringify(m).slice(0, 200)}`);
    return;
  }
  if (m.body !== bodyFor(id)) fail(`client ${i}: ${id} delivered with another body`);
  const log = c.log;
  if (log.seq[k] !== 0 && log.seq[k] !== m.seq) fail(`${id}: acked as seq ${log.seq[k]}, delivered as ${m.seq}`);
  if (log.dseq[k] !== 0 && log.dseq[k] !== m.seq) fail(`${id}: delivered as seq ${log.dseq[k]} and ${m.seq}`);
  log.dseq[k] = m.seq;
  log.deliveries[k] += 1;
  totalDeliveries += 1;
  if (inWindow(log.sentAt[k])) deliveryLatencies.push(t - log.sentAt[k]);
  if (inWindow(t)) deliveriesInWindow += 1;
}

async function drain() {
  phase = "drain";
  const deadline = now() + P.drain_timeout_s * 1000;
  while (conversations.some((c) => c.inflight > 0) && now() < deadline) await sleep(5);
  while (totalDeliveries < expectedDeliveries && now() < deadline) await sleep(5);
  await sleep(P.settle_ms); // late duplicates would show up here
}

// Each sender's messages got consecutive seqs in the order they were sent; every live one
// reached every receiver exactly once (the per-delivery checks saw order and gaps).
function checkConversations({ liveOnly = false } = {}) {
  for (const c of conversations) {
    const log = c.log;
    let expected = c.start + 1;
    let unacked = 0;
    for (let k = 0; k < log.n; k++) {
      if (log.seq[k] === 0) {
        unacked += 1;
        continue;
      }
      if (log.seq[k] !== expected) {
        fail(`conversation ${c.id}: message ${clientId(c.j, k)} got seq ${log.seq[k]}, expected ${expected}`);
      }
      expected = log.seq[k] + 1;
      if (log.deliveries[k] !== log.expect[k]) {
        fail(`${clientId(c.j, k)} (seq ${log.seq[k]}) delivered ${log.deliveries[k]} times to ${log.expect[k]} receivers`);
      }
    }
    if (unacked) fail(`conversation ${c.id}: ${unacked} message(s) never acked ok`);
    if (liveOnly) {
      const top = c.start + c.acked;
      for (const [r, state] of c.recv) {
        if (state.last !== top || state.count !== c.acked) {
          fail(`client ${r}, conversation ${c.id}: received ${state.count} up to seq ${state.last}; ${c.acked} acked up to ${top}`);
        }
      }
    }
  }
}

function ackedList() {
  if (!setup.report_acked) return undefined;
  const out = {};
  for (const c of conversations) {
    const rows = [];
    for (let k = 0; k < c.log.n; k++) if (c.log.seq[k] !== 0) rows.push([c.log.seq[k], clientId(c.j, k)]);
    if (c.changeSeqs) for (const seq of c.changeSeqs) rows.push([seq, null]);
    out[c.id] = rows;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// S7 mixed log: S1's closed loop, but every params.change_every-th operation of a sender is a change
// entry (edit to the same text, or a reaction toggle) of its latest acked message. Checks: every operation
// acked ok; the conversation's acked seqs (messages and changes) are 1..N without gaps; every receiver
// gets every entry (new_message or message_changed) exactly once, in seq order.

const MIXED = setup.scenario === "s7";
let changesInWindow = 0;

function onMixedEntry(i, e) {
  const c = e && byId.get(e.conversation_id);
  if (!c) return fail(`client ${i}: entry for unknown conversation ${e && e.conversation_id}`);
  const state = c.recv.get(i);
  if (!state) return fail(`client ${i}: the sender received its own entry ${e.seq}`);
  if (e.seq !== state.last + 1) fail(`client ${i}, conversation ${c.id}: seq ${e.seq} after ${state.last}`);
  if (e.seq > state.last) state.last = e.seq;
  state.count += 1;
  totalDeliveries += 1;
  const t = now();
  if (inWindow(t)) deliveriesInWindow += 1;
  let sentAt;
  if (e.kind === "text") {
    const k = Number(String(e.client_id).slice(String(e.client_id).indexOf(".") + 1));
    sentAt = c.log.sentAt[k];
  } else {
    sentAt = c.sentAtBySeq.get(e.seq); // set at emit time, keyed once the ack gives the seq
    c.sentAtBySeq.delete(e.seq);
  }
  if (sentAt !== undefined && inWindow(sentAt)) deliveryLatencies.push(t - sentAt);
}

function mixedOp(c, onDone) {
  const op = c.ops++;
  if (op % P.change_every !== P.change_every - 1 || !c.lastMessage) {
    return send(c, undefined, onDone);
  }
  const target = c.lastMessage;
  // Alternate edits and reaction toggles (react if not reacted yet, else unreact): each adds an entry.
  let event = "edit_message";
  if (Math.floor(op / P.change_every) % 2) {
    event = c.reacted.has(target.seq) ? "unreact" : "react";
    if (event === "react") c.reacted.add(target.seq);
    else c.reacted.delete(target.seq);
  }
  const payload = event === "edit_message"
    ? { conversation_id: c.id, seq: target.seq, body: target.body }
    : { conversation_id: c.id, seq: target.seq, emoji: "👍" };
  const sentAt = now();
  c.inflight += 1;
  sockets[c.sender].timeout(P.ack_timeout_s * 1000).emit(event, payload, (err, ack) => {
    const t = now();
    c.inflight -= 1;
    if (err) fail(`conversation ${c.id}: no ack for ${event} within ${P.ack_timeout_s}s`);
    else if (!ack || ack.ok !== true) fail(`conversation ${c.id}: ${event} refused: ${JSON.stringify(ack)}`);
    else if (ack.entry && !ack.duplicate) {
      c.changeSeqs.push(ack.entry.seq);
      c.sentAtBySeq.set(ack.entry.seq, sentAt);
      totalAcked += 1;
      expectedDeliveries += c.receivers.length;
      if (inWindow(sentAt)) ackLatencies.push(t - sentAt);
      if (inWindow(t)) { acksInWindow += 1; changesInWindow += 1; }
    }
    onDone(c);
  });
}

async function mixedLoop() {
  for (const c of conversations) Object.assign(c, { ops: 0, changeSeqs: [], sentAtBySeq: new Map(), lastMessage: null, reacted: new Set() });
  phase = "connect";
  await connectDb();
  await connectAll(allClients());
  phase = "run";
  const t0 = now();
  win.start = t0 + P.warmup_s * 1000;
  win.end = win.start + P.duration_s * 1000;
  let running = true;
  const next = (c) => {
    // The latest acked message is the target of the next changes (its body is known: bodyFor).
    for (let k = c.log.n - 1; k >= 0; k--) {
      if (c.log.seq[k] !== 0) {
        c.lastMessage = { seq: c.log.seq[k], body: bodyFor(clientId(c.j, k)) };
        break;
      }
    }
    if (running) mixedOp(c, next);
  };
  for (const c of conversations) for (let w = 0; w < P.inflight; w++) mixedOp(c, next);
  await sleepUntil(win.start);
  const proc0 = readProc();
  const cpu0 = process.cpuUsage();
  await sleepUntil(win.end);
  const proc1 = readProc();
  const cpu1 = process.cpuUsage();
  await untilJudged();
  running = false;
  await drain();
  requireJudged();
  for (const c of conversations) {
    const seqs = [...c.changeSeqs];
    for (let k = 0; k < c.log.n; k++) {
      if (c.log.seq[k] !== 0) seqs.push(c.log.seq[k]);
      else fail(`conversation ${c.id}: message ${clientId(c.j, k)} never acked ok`);
    }
    seqs.sort((a, b) => a - b);
    seqs.forEach((seq, index) => { if (seq !== c.start + index + 1) fail(`conversation ${c.id}: acked seqs have a gap at ${seq}`); });
    for (const [r, state] of c.recv) {
      if (state.last !== c.start + seqs.length || state.count !== seqs.length) {
        fail(`client ${r}, conversation ${c.id}: received ${state.count} up to ${state.last}; ${seqs.length} acked`);
      }
    }
  }
  const stats = windowStats(proc0, proc1, cpu0, cpu1, P.duration_s);
  stats.changes_per_s = changesInWindow / P.duration_s;
  return stats;
}

// ---------------------------------------------------------------------------------------------
// S6 reconnect storm (issue 16): every client connected, the server restarted by the orchestrator,
// everyone reconnects at once and syncs from its cursor. Reconnects back off from
// params.reconnect_delay_ms, doubling to params.reconnect_max_ms, each delay jittered by ±50% (as
// socket.io-client does, with shorter delays so the server, not the back-off, sets the pace).

let storming = false;
const stormAttempts = new Map();

function reconnectSoon(i, socket) {
  const n = stormAttempts.get(i) ?? 0;
  stormAttempts.set(i, n + 1);
  const delay = Math.min(P.reconnect_max_ms, P.reconnect_delay_ms * 2 ** Math.min(n, 10)) * (0.5 + Math.random());
  setTimeout(() => { if (!finished && !socket.connected) socket.connect(); }, delay);
}

async function requestRestart() {
  const request = `${resultPath}.restart`;
  const done = `${resultPath}.restarted`;
  writeFileSync(request, String(Date.now()));
  const deadline = now() + 120000;
  while (!existsSync(done)) {
    if (now() > deadline) throw new Error("the orchestrator never restarted the server");
    await sleep(5);
  }
  return JSON.parse(readFileSync(done, "utf8"));
}

async function reconnectStorm() {
  phase = "connect";
  await connectDb();
  await connectAll(allClients());
  phase = "prime"; // every client has seen the conversation's messages live: its cursor
  for (const c of conversations) for (let n = 0; n < P.messages; n++) send(c);
  await drain();
  checkConversations({ liveOnly: true });
  const memberOf = new Map();
  for (const c of conversations) for (const m of [c.sender, ...c.receivers]) memberOf.set(m, c);

  phase = "restart";
  storming = true;
  const connectedAt = new Array(setup.clients.length).fill(0);
  const caughtUpAt = new Array(setup.clients.length).fill(0);
  let syncCalls = 0;
  let synced = 0;
  let tReady = Infinity;
  const catchUp = async (i) => {
    const c = memberOf.get(i);
    const socket = sockets[i];
    if (!c) {
      caughtUpAt[i] = now();
      return;
    }
    const cursor = () => (i === c.sender ? c.start + c.acked : c.recv.get(i).last);
    const top = c.start + c.acked;
    if (!setup.report_acked) { // a relay keeps no history: connected is caught up
      caughtUpAt[i] = now();
      return;
    }
    for (let call = 0; call < 20; call++) {
      let ack;
      try {
        ack = await socket.timeout(P.ack_timeout_s * 1000).emitWithAck("sync", { cursors: { [c.id]: cursor() } });
      } catch {
        if (!socket.connected) return; // dropped again: the next connect syncs
        fail(`client ${i}: no answer to sync within ${P.ack_timeout_s}s`);
        return;
      }
      syncCalls += 1;
      if (!ack || ack.ok !== true) {
        fail(`client ${i}: sync refused: ${JSON.stringify(ack)}`);
        return;
      }
      for (const m of ack.messages) {
        synced += 1;
        if (m.seq !== cursor() + 1) fail(`client ${i}, conversation ${c.id}: synced seq ${m.seq} after ${cursor()} (missing or twice)`);
        if (i !== c.sender) c.recv.get(i).last = m.seq;
      }
      if (!ack.has_more) break;
    }
    if (cursor() !== top) fail(`client ${i}, conversation ${c.id}: caught up to ${cursor()}, last seq is ${top}`);
    else caughtUpAt[i] = now();
  };
  sockets.forEach((socket, i) => {
    socket.on("connect_error", () => { if (storming) reconnectSoon(i, socket); });
    socket.on("connect", () => {
      if (!storming) return;
      connectedAt[i] = now();
      catchUp(i);
    });
  });
  const tRequest = now();
  const restarted = await requestRestart();
  tReady = now();
  setup.server_pid = restarted.pid;
  const proc0 = readProc();
  const cpu0 = process.cpuUsage();
  const deadline = now() + P.storm_timeout_s * 1000;
  const everyone = () => caughtUpAt.every((t) => t > 0);
  while (!everyone() && now() < deadline) await sleep(20);
  const proc1 = readProc();
  const cpu1 = process.cpuUsage();
  storming = false;
  const missing = caughtUpAt.filter((t) => t === 0).length;
  if (missing) {
    // What the stuck ones were doing: connected but not caught up, or a connect that never ended.
    const stuck = [];
    caughtUpAt.forEach((t, i) => { if (t === 0) stuck.push(i); });
    const states = new Map();
    for (const i of stuck) {
      const s = sockets[i];
      const key = `connected=${s.connected} active=${s.active} engine=${s.io.engine ? s.io.engine.readyState : "none"} ` +
        `manager=${s.io._readyState} attempts>0=${(stormAttempts.get(i) ?? 0) > 0} connectedAt>0=${connectedAt[i] > 0}`;
      states.set(key, (states.get(key) ?? 0) + 1);
    }
    fail(`${missing} of ${caughtUpAt.length} clients never connected and caught up within ${P.storm_timeout_s}s ` +
         `(their states: ${[...states].map(([k, n]) => `${n}× ${k}`).join("; ")})`);
  }
  const early = connectedAt.filter((t) => t > 0 && t < tReady).length;
  const lastConnect = Math.max(...connectedAt) - tReady;
  const lastCaughtUp = Math.max(...caughtUpAt) - tReady;
  for (const c of conversations) for (const [r, state] of c.recv) {
    if (state.last !== c.start + c.acked) fail(`client ${r}, conversation ${c.id}: at seq ${state.last}, last is ${c.start + c.acked}`);
  }
  const seconds = Math.max(1e-3, lastCaughtUp / 1000);
  // The storm's shape: how long until half, 90% and 99% of the clients were back (a long tail of
  // clients waiting out a back-off or a dropped SYN shows as p99 far from p50).
  const sortedConnects = connectedAt.filter((t) => t > 0).map((t) => (t - tReady) / 1000).sort((a, b) => a - b);
  const connectedBy = (q) => sortedConnects.length
    ? sortedConnects[Math.min(sortedConnects.length - 1, Math.floor(q * setup.clients.length))] : null;
  return {
    clients: setup.clients.length,
    conversations: conversations.length,
    down_s: (tReady - tRequest) / 1000,
    server_restart_s: restarted.restart_s,
    all_connected_s: lastConnect / 1000,
    half_connected_s: connectedBy(0.5),
    p90_connected_s: connectedBy(0.9),
    p99_connected_s: connectedBy(0.99),
    all_caught_up_s: lastCaughtUp / 1000,
    connects_per_s: setup.clients.length / Math.max(1e-3, lastConnect / 1000),
    connected_before_ready: early,
    reconnect_attempts: [...stormAttempts.values()].reduce((a, b) => a + b, 0),
    sync_calls: syncCalls,
    synced_messages: synced,
    server_cpu_s: proc1.cpuS - proc0.cpuS,
    server_cpu_util: (proc1.cpuS - proc0.cpuS) / seconds,
    server_cpu_us_per_connect: ((proc1.cpuS - proc0.cpuS) * 1e6) / setup.clients.length,
    loadgen_cpu_util: ((cpu1.user - cpu0.user + cpu1.system - cpu0.system) / 1e6) / seconds,
    server_rss_kib: proc1.rssKiB,
  };
}

// ---------------------------------------------------------------------------------------------
// Statistics

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
function latencyStats(prefix, values) {
  const sorted = Float64Array.from(values).sort();
  const r3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  return {
    [`${prefix}_p50_ms`]: r3(percentile(sorted, 0.5)),
    [`${prefix}_p99_ms`]: r3(percentile(sorted, 0.99)),
    [`${prefix}_max_ms`]: r3(sorted.length ? sorted[sorted.length - 1] : null),
    [`${prefix}_samples`]: sorted.length,
  };
}

function windowStats(proc0, proc1, cpu0, cpu1, seconds, db0 = null, db1 = null) {
  const serverCpu = proc1.cpuS - proc0.cpuS;
  const db = dbCpu(db0, db1, seconds, acksInWindow);
  const loadgenCpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / 1e6;
  return {
    duration_s: seconds,
    acked: acksInWindow,
    acked_per_s: acksInWindow / seconds,
    delivered: deliveriesInWindow,
    delivered_per_s: deliveriesInWindow / seconds,
    ...latencyStats("ack", ackLatencies),
    ...latencyStats("delivery", deliveryLatencies),
    server_cpu_util: serverCpu / seconds,
    server_user_util: (proc1.userS - proc0.userS) / seconds,
    server_sys_util: (proc1.sysS - proc0.sysS) / seconds,
    ...db,
    ...(db.db_cpu_util !== undefined ? {
      server_db_cpu_util: serverCpu / seconds + db.db_cpu_util,
      server_db_cpu_us_per_ack: acksInWindow ? ((serverCpu + db.db_cpu_util * seconds) * 1e6) / acksInWindow : null,
    } : {}),
    server_cpu_us_per_ack: acksInWindow ? (serverCpu * 1e6) / acksInWindow : null,
    server_cpu_us_per_delivery: deliveriesInWindow ? (serverCpu * 1e6) / deliveriesInWindow : null,
    server_rss_kib: proc1.rssKiB,
    server_thread_cpu_s: threadCpu(proc0, proc1),
    server_thread_kernel_s: threadCpu(proc0, proc1, "kernel"),
    loadgen_cpu_util: loadgenCpu / seconds,
    total_sent: conversations.reduce((a, c) => a + c.log.n, 0),
    total_acked: totalAcked,
    total_deliveries: totalDeliveries,
  };
}

const allClients = () => setup.clients.map((_, i) => i);

// Correctness needs evidence. A run that acked (and so judged) fewer than min_judged messages, for
// example because a loaded machine left it no time, proves nothing: it is inconclusive, which fails
// the run, never a pass. The closed loops keep sending past the window until they have enough.
const minJudged = () => Number(P.min_judged ?? 0);
async function untilJudged() {
  const deadline = now() + P.drain_timeout_s * 1000;
  while (totalAcked < minJudged() && now() < deadline) await sleep(5);
}
function requireJudged() {
  if (totalAcked < minJudged()) {
    fail(`inconclusive: only ${totalAcked} message(s) acked and judged, fewer than min_judged ${minJudged()}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

// S1 pairs and S2 fan-out: each sender keeps params.inflight messages in flight (closed loop).
async function closedLoop() {
  phase = "connect";
  await connectDb();
  await connectAll(allClients());
  phase = "run";
  const t0 = now();
  win.start = t0 + P.warmup_s * 1000;
  win.end = win.start + P.duration_s * 1000;
  let running = true;
  const next = (c) => {
    if (running) send(c, undefined, next);
  };
  for (const c of conversations) for (let w = 0; w < P.inflight; w++) send(c, undefined, next);
  await sleepUntil(win.start);
  const proc0 = readProc();
  const cpu0 = process.cpuUsage();
  const db0 = await readDb();
  await sleepUntil(win.end);
  const proc1 = readProc();
  const cpu1 = process.cpuUsage();
  const db1 = await readDb();
  await untilJudged(); // outside the measured window: figures unchanged
  running = false;
  await drain();
  checkConversations({ liveOnly: true });
  requireJudged();
  return windowStats(proc0, proc1, cpu0, cpu1, P.duration_s, db0, db1);
}

// S4: an open loop at params.rate messages/s over all conversations; latency from the scheduled time.
async function openLoop() {
  phase = "connect";
  await connectDb();
  await connectAll(allClients());
  phase = "run";
  const interval = 1000 / P.rate;
  const total = Math.floor((P.warmup_s + P.duration_s) * P.rate);
  const t0 = now() + 20;
  win.start = t0 + P.warmup_s * 1000;
  win.end = win.start + P.duration_s * 1000;
  // A server that cannot keep up would build an endless backlog: stop sending once more than
  // max_backlog_s seconds of messages wait for their ack, and report the rate as not sustained.
  const maxBacklog = Math.max(10, P.rate * P.max_backlog_s);
  const inflight = () => conversations.reduce((a, c) => a + c.inflight, 0);
  let k = 0;
  let maxLag = 0;
  let overloaded = false;
  let proc0;
  let cpu0;
  const db0Reading = sleepUntil(win.start).then(readDb);
  await new Promise((resolve) => {
    const tick = () => {
      const t = now();
      if (!proc0 && t >= win.start) {
        proc0 = readProc();
        cpu0 = process.cpuUsage();
      }
      if (inflight() > maxBacklog) {
        overloaded = true;
        resolve();
        return;
      }
      while (k < total && t0 + k * interval <= t) {
        const at = t0 + k * interval;
        maxLag = Math.max(maxLag, t - at);
        send(conversations[k % conversations.length], at);
        k += 1;
      }
      if (k < total) setTimeout(tick, Math.min(5, Math.max(0, t0 + k * interval - now())));
      else resolve();
    };
    setTimeout(tick, Math.max(0, t0 - now()));
  });
  if (overloaded) win.end = Math.max(win.start, now());
  await sleepUntil(win.end);
  const proc1 = readProc();
  const cpu1 = process.cpuUsage();
  const db1 = await readDb();
  const db0 = await db0Reading;
  proc0 = proc0 || proc1;
  cpu0 = cpu0 || cpu1;
  const seconds = Math.max(1e-3, (win.end - win.start) / 1000);
  await drain();
  checkConversations({ liveOnly: true });
  requireJudged(); // an open loop sends its schedule: min_judged must fit in it
  // Sustained: never overloaded, and acks kept pace with the schedule in the window (within 10%).
  const keptPace = acksInWindow >= 0.9 * P.rate * seconds;
  return {
    rate: P.rate,
    sustained: !overloaded && keptPace ? 1 : 0,
    sent_of_schedule: k / total,
    max_send_lag_ms: maxLag,
    ...windowStats(proc0, proc1, cpu0, cpu1, seconds, db0, db1),
  };
}

// S3: N idle connections; server RSS growth per connection.
async function idle() {
  const clients = allClients();
  phase = "connect";
  const before = readProc();
  const t0 = now();
  await connectAll(clients);
  const connectS = (now() - t0) / 1000;
  phase = "idle";
  await sleep(P.settle_s * 1000);
  const after = readProc();
  const connected = sockets.filter((s) => s && s.connected).length;
  if (connected !== clients.length) fail(`${clients.length - connected} of ${clients.length} idle connections dropped`);
  return {
    connections: clients.length,
    connect_s: connectS,
    connects_per_s: clients.length / connectS,
    rss_before_kib: before.rssKiB,
    rss_after_kib: after.rssKiB,
    kib_per_connection: (after.rssKiB - before.rssKiB) / clients.length,
    server_cpu_us_per_connect: ((after.cpuS - before.cpuS) * 1e6) / clients.length,
  };
}

// S5: clients miss params.messages messages each, then reconnect at once and sync until has_more is false.
async function catchUp() {
  const senders = new Set(conversations.map((c) => c.sender));
  const readers = allClients().filter((i) => !senders.has(i));
  const mine = new Map(readers.map((i) => [i, []]));
  for (const c of conversations) for (const r of c.receivers) mine.get(r).push(c);

  phase = "connect";
  await connectDb();
  await connectAll(allClients());
  // One live message per conversation: everyone is in the room and has seen seq start+1.
  phase = "prime";
  for (const c of conversations) send(c);
  await drain();
  checkConversations({ liveOnly: true });
  const primeSeq = new Map(conversations.map((c) => [c.id, c.start + c.acked]));

  phase = "disconnect";
  for (const i of readers) closeSocket(i);
  await waitForConnections(senders.size);

  // The backlog: nobody but the sender is connected, so nothing is delivered live.
  phase = "backlog";
  for (const c of conversations) c.live = false;
  const tb = now();
  await Promise.all(conversations.map((c) => new Promise((resolve) => {
    let sent = 0;
    const next = () => {
      if (sent < P.messages) {
        sent += 1;
        send(c, undefined, next);
      } else if (c.inflight === 0) resolve();
    };
    for (let w = 0; w < Math.min(P.inflight, P.messages); w++) next();
  })));
  const backlogS = (now() - tb) / 1000;
  checkConversations();
  const seqToClient = new Map(conversations.map((c) => {
    const m = new Map();
    for (let k = 0; k < c.log.n; k++) if (c.log.seq[k]) m.set(c.log.seq[k], clientId(c.j, k));
    return [c.id, m];
  }));

  // Everyone reconnects at once and catches up.
  phase = "catch-up";
  liveForbidden = true;
  let syncCalls = 0;
  let synced = 0;
  const connectTimes = [];
  const doneTimes = [];
  const t0 = now();
  const proc0 = readProc();
  await Promise.all(readers.map(async (i) => {
    try {
      await openSocket(i);
    } catch (err) {
      fail(String(err.message || err));
      return;
    }
    connectTimes.push(now() - t0);
    const convs = mine.get(i);
    const cursors = Object.fromEntries(convs.map((c) => [c.id, primeSeq.get(c.id)]));
    let last = null;
    for (let call = 0; ; call++) {
      if (call > 10 + (P.messages * convs.length) / Math.max(1, P.page)) {
        fail(`client ${i}: sync never ended (has_more stayed true)`);
        return;
      }
      let ack;
      try {
        ack = await sockets[i].timeout(P.ack_timeout_s * 1000).emitWithAck("sync", { cursors, limit: P.page });
      } catch {
        fail(`client ${i}: no answer to sync within ${P.ack_timeout_s}s`);
        return;
      }
      syncCalls += 1;
      if (!ack || ack.ok !== true) {
        fail(`client ${i}: sync refused: ${JSON.stringify(ack)}`);
        return;
      }
      for (const m of ack.messages) {
        synced += 1;
        const cursor = cursors[m.conversation_id];
        if (cursor === undefined) {
          fail(`client ${i}: sync returned conversation ${m.conversation_id} it did not ask for`);
        } else if (m.seq !== cursor + 1) {
          fail(`client ${i}, conversation ${m.conversation_id}: synced seq ${m.seq} after ${cursor}`);
        } else if (seqToClient.get(m.conversation_id).get(m.seq) !== m.client_id || m.body !== bodyFor(m.client_id)) {
          fail(`client ${i}, conversation ${m.conversation_id}: seq ${m.seq} is not the message acked with it`);
        }
        if (cursor !== undefined && m.seq > cursor) cursors[m.conversation_id] = m.seq;
      }
      last = ack;
      if (!ack.has_more) break;
    }
    doneTimes.push(now() - t0);
    for (const c of convs) {
      const top = c.start + c.acked;
      if (cursors[c.id] !== top) fail(`client ${i}, conversation ${c.id}: caught up to ${cursors[c.id]}, last seq is ${top}`);
      const listed = (last.conversations || []).find((x) => x.id === c.id);
      if (listed && listed.last_seq !== top) fail(`client ${i}: sync lists last_seq ${listed.last_seq} for ${c.id}, expected ${top}`);
    }
  }));
  const proc1 = readProc();
  const sortedDone = Float64Array.from(doneTimes).sort();
  const sortedConnect = Float64Array.from(connectTimes).sort();
  if (doneTimes.length !== readers.length) fail(`${readers.length - doneTimes.length} of ${readers.length} clients never caught up`);
  const expected = readers.length * P.messages;
  if (synced !== expected) fail(`synced ${synced} messages in all, expected ${expected}`);
  await sleep(P.settle_ms);
  return {
    clients: readers.length,
    missed_per_client: P.messages,
    backlog_messages: conversations.length * P.messages,
    backlog_store_s: backlogS,
    catchup_s: sortedDone.length ? sortedDone[sortedDone.length - 1] / 1000 : null,
    caught_up: doneTimes.length,
    connect_p50_ms: percentile(sortedConnect, 0.5),
    connect_max_ms: sortedConnect.length ? sortedConnect[sortedConnect.length - 1] : null,
    done_p50_ms: percentile(sortedDone, 0.5),
    sync_calls: syncCalls,
    synced_messages: synced,
    server_cpu_s: proc1.cpuS - proc0.cpuS,
  };
}

async function waitForConnections(count) {
  const deadline = now() + 15000;
  if (!setup.health_url) {
    await sleep(1000);
    return;
  }
  while (now() < deadline) {
    try {
      const response = await fetch(setup.health_url);
      const body = await response.json();
      if (body.connections === count) return;
    } catch {
      // the server is busy; try again
    }
    await sleep(50);
  }
  fail(`the server still counts connections that were closed 15s ago (expected ${count})`);
}

// ---------------------------------------------------------------------------------------------

const scenarios = { s1: closedLoop, s2: closedLoop, s3: idle, s4: openLoop, s5: catchUp, s6: reconnectStorm, s7: mixedLoop };

async function main() {
  const run = scenarios[setup.scenario];
  if (!run) throw new Error(`unknown scenario ${setup.scenario}`);
  const metrics = await run();
  metrics.connect_failures = connectFailures;
  if (dbClient) await dbClient.end().catch(() => {});
  finish(metrics, { acked: ackedList() });
}

main().catch((err) => {
  fail(`${phase}: ${err && err.stack ? err.stack.split("\n").slice(0, 3).join(" | ") : err}`);
  finish({ phase, connect_failures: connectFailures });
});
