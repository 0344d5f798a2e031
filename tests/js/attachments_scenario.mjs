// Attachments from a JavaScript client: Node's fetch + FormData (real multipart), socket.io-client.
//
//   node attachments_scenario.mjs <server_url> <alice_token> <bob_token> <photo_path>
//
// Alice uploads a photo (multipart field `file`) and an SVG (raw body with ?filename=), creates a
// group with bob, sends one message with both files and no text; bob receives it live and downloads
// both through their signed URLs without any Authorization header, as an <img src> would. Prints one
// JSON object (the served photo as base64, so the caller can check its metadata); exits non-zero on
// any failure.

import { readFile } from "node:fs/promises";
import { io } from "socket.io-client";

const [url, aliceToken, bobToken, photoPath] = process.argv.slice(2);
const TIMEOUT_MS = 10000;
const SVG = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>';

function check(condition, message, detail) {
  if (!condition) {
    const error = new Error(message);
    error.detail = detail;
    throw error;
  }
}

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function connect(token) {
  const socket = io(url + "/chat", { auth: { token }, transports: ["websocket"], reconnection: false, forceNew: true });
  await withTimeout(new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", (err) => reject(new Error(`connect_error ${JSON.stringify(err.data)}`)));
  }), "connect");
  return socket;
}

async function json(response, what) {
  const body = await response.json();
  check(response.ok, `${what} answered ${response.status}`, body);
  return body;
}

// The upload helper a client needs: multipart field `file`; the server sniffs the type itself.
async function upload(token, blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename);
  const response = await fetch(url + "/api/uploads", { method: "POST", headers: { Authorization: `Bearer ${token}` }, body: form });
  check(response.status === 201, `upload answered ${response.status}`, await response.clone().text());
  return (await response.json()).upload;
}

async function download(path) {
  const response = await fetch(url + path); // no Authorization header
  const bytes = Buffer.from(await response.arrayBuffer());
  const headers = {};
  for (const name of ["content-type", "content-disposition", "x-content-type-options", "content-security-policy"]) {
    headers[name] = response.headers.get(name);
  }
  return { status: response.status, headers, bytes };
}

const sockets = [];
try {
  const me = await json(await fetch(url + "/api/me", { headers: { Authorization: `Bearer ${bobToken}` } }), "me");
  const photo = await upload(aliceToken, new Blob([await readFile(photoPath)], { type: "image/jpeg" }), "holiday.jpg");
  const raw = await fetch(url + "/api/uploads?filename=logo.svg", {
    method: "POST", headers: { Authorization: `Bearer ${aliceToken}`, "Content-Type": "image/svg+xml" }, body: SVG,
  });
  check(raw.status === 201, `raw upload answered ${raw.status}`);
  const svg = (await raw.json()).upload;

  const { conversation } = await json(await fetch(url + "/api/conversations", {
    method: "POST",
    headers: { Authorization: `Bearer ${aliceToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ user_ids: [me.user.id], title: "photos" }),
  }), "create conversation");
  const alice = await connect(aliceToken);
  const bob = await connect(bobToken);
  sockets.push(alice, bob);
  const live = withTimeout(new Promise((resolve) => bob.once("new_message", resolve)), "new_message");
  const ack = await alice.timeout(TIMEOUT_MS).emitWithAck("send_message", {
    conversation_id: conversation.id, attachments: [photo.id, svg.id], client_id: "js-photo-1",
  });
  check(ack.ok, "send_message refused", ack);
  const message = await live;
  check(message.attachments.length === 2, "bob's message has no attachments", message);
  const [photoFile, svgFile] = message.attachments;
  const served = await download(photoFile.url);
  const thumbnail = await download(photoFile.thumbnail_url);
  const script = await download(svgFile.url);
  console.log(JSON.stringify({
    ok: true,
    uploads: [photo, svg],
    conversation_id: conversation.id,
    ack_attachments: ack.message.attachments,
    live_attachments: message.attachments,
    photo: { status: served.status, headers: served.headers, base64: served.bytes.toString("base64") },
    thumbnail: { status: thumbnail.status, headers: thumbnail.headers, size: thumbnail.bytes.length },
    svg: { status: script.status, headers: script.headers, body: script.bytes.toString("utf8") },
  }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error), detail: error.detail ?? null }));
  process.exitCode = 1;
} finally {
  for (const socket of sockets) socket.disconnect();
}
