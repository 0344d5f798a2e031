// Baseline: a bare Node socket.io 4.8 relay with the same events as Aurora's /chat and nothing else.
//
// No authentication, no storage, no membership check: on connect a socket joins the rooms its
// client names in the handshake auth ({rooms: [conversation ids], user_id, username});
// `send_message {conversation_id, body, client_id}` takes the next in-memory seq of the
// conversation, emits `new_message` to the room skipping the sender, and acks {ok: true, message}.
// socket.io runs with its default settings.
//
//     node bench/baseline_node_relay.mjs --port 3102

import { createServer } from "node:http";
import { Server } from "socket.io";

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const host = option("host", "127.0.0.1");
const port = Number(option("port", "0"));
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node baseline_node_relay.mjs --port PORT [--host HOST]");
  process.exit(2);
}

const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });
const chat = io.of("/chat");
const seqs = new Map();
let nextId = 0;

chat.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  const senderId = auth.user_id ?? null;
  const senderUsername = auth.username ?? null;
  for (const conversationId of auth.rooms || []) socket.join(`conversation:${conversationId}`);

  socket.on("send_message", (data, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    if (data === null || typeof data !== "object") {
      reply({ ok: false, error: { code: "invalid", message: "payload must be an object" } });
      return;
    }
    const conversationId = data.conversation_id;
    const seq = (seqs.get(conversationId) || 0) + 1;
    seqs.set(conversationId, seq);
    nextId += 1;
    const message = {
      id: nextId, conversation_id: conversationId, seq, kind: "text",
      sender_id: senderId, sender_username: senderUsername, body: data.body,
      client_id: data.client_id ?? null, created_at: new Date().toISOString(),
    };
    socket.to(`conversation:${conversationId}`).emit("new_message", message);
    reply({ ok: true, message, duplicate: false });
  });
});

function shutdown() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

httpServer.listen(port, host, () => {
  console.error(`node relay listening on ${host}:${port}`);
});
