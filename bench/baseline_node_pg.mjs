// Baseline: what a Node user would write instead of Aurora: socket.io 4.8 + node-postgres, one
// `INSERT … RETURNING` per message, the ack after it.
//
// Same events and handshake as bench/baseline_node_relay.mjs (rooms named in the auth; no tokens, no
// membership check), but every message is stored before it is acked and broadcast: one statement
// takes the conversation's next seq under its row lock (UPDATE … RETURNING in a CTE) and inserts the
// message, in one round trip and one implicit transaction (a commit: one WAL flush, synchronous_commit
// as the server has it). Sends of one conversation are chained so seqs follow the order they arrived
// (the order a client sent them); different conversations run in parallel on a pool of connections.
// The tables (bench/harness/node_pg.py creates them) have the columns bench/harness/verify.py reads.
//
//     node bench/baseline_node_pg.mjs --port 3103 --database-url postgresql://... --schema bench_x

import { createServer } from "node:http";
import pg from "pg";
import { Server } from "socket.io";

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const host = option("host", "127.0.0.1");
const port = Number(option("port", "0"));
const databaseUrl = option("database-url", "");
const schema = option("schema", "public");
const poolSize = Number(option("pool", "10"));
if (!Number.isInteger(port) || port <= 0 || !databaseUrl) {
  console.error("usage: node baseline_node_pg.mjs --port PORT --database-url URL [--schema S] [--pool N]");
  process.exit(2);
}

const pool = new pg.Pool({
  connectionString: databaseUrl, max: poolSize, application_name: option("application-name", "node-pg-baseline"),
  options: `-c search_path=${schema}`,
});
const INSERT = `
  WITH next AS (UPDATE conversation SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq)
  INSERT INTO message (conversation_id, seq, sender_id, client_id, body, kind, created_at)
  SELECT $1, next.last_seq, $2, $3, $4, 'text', now() FROM next
  RETURNING id, seq, created_at`;

const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });
const chat = io.of("/chat");
const chains = new Map(); // conversation id -> the promise of its last send

chat.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  const senderId = auth.user_id ?? null;
  const senderUsername = auth.username ?? null;
  for (const conversationId of auth.rooms || []) socket.join(`conversation:${conversationId}`);

  socket.on("send_message", (data, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    if (data === null || typeof data !== "object" || typeof data.body !== "string") {
      reply({ ok: false, error: { code: "invalid", message: "payload must be an object with a body" } });
      return;
    }
    const conversationId = data.conversation_id;
    const store = async () => {
      let row;
      try {
        const result = await pool.query(INSERT, [conversationId, senderId, data.client_id ?? null, data.body]);
        row = result.rows[0];
      } catch (err) {
        reply({ ok: false, error: { code: "internal", message: String(err.message || err) } });
        return;
      }
      if (!row) {
        reply({ ok: false, error: { code: "not_found", message: "conversation not found" } });
        return;
      }
      const message = {
        id: Number(row.id), conversation_id: conversationId, seq: Number(row.seq), // BIGINT arrives as a string kind: "text",
        sender_id: senderId, sender_username: senderUsername, body: data.body,
        client_id: data.client_id ?? null, created_at: row.created_at.toISOString(),
      };
      socket.to(`conversation:${conversationId}`).emit("new_message", message);
      reply({ ok: true, message, duplicate: false });
    };
    const chained = (chains.get(conversationId) || Promise.resolve()).then(store);
    chains.set(conversationId, chained);
    chained.then(() => { if (chains.get(conversationId) === chained) chains.delete(conversationId); });
  });
});

function shutdown() {
  io.close(() => pool.end().finally(() => process.exit(0)));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

httpServer.listen(port, host, () => {
  console.error(`node + postgres baseline listening on ${host}:${port}`);
});
