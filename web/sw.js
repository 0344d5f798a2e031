// Offline app shell: the app's own files (page, CSS, modules, vendored socket.io-client, the SDK)
// come from the network first and from this cache when the server cannot be reached, so a reload
// during an outage still opens the app, with its outbox (IndexedDB) intact. Nothing else is touched:
// /api/, /socket.io/ and other origins always go to the network.
const CACHE = "aurora-app-shell-v1";
const SCOPE = new URL("./", self.location).pathname;  // /app/

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil((async () => {
  for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
  await self.clients.claim();
})()));

function ours(url) {
  return url.origin === self.location.origin && url.pathname.startsWith(SCOPE);
}

// The page lists what it loaded before this worker controlled it; cache those files once.
self.addEventListener("message", (event) => {
  if (event.data?.type !== "cache-shell") return;
  const urls = (event.data.urls || []).filter((u) => ours(new URL(u)));
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(urls))
    .then(() => event.ports[0]?.postMessage({ ok: true, count: urls.length }),
      (err) => event.ports[0]?.postMessage({ ok: false, error: String(err) })));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || !ours(url)) return;
  event.respondWith((async () => {
    try {
      const response = await fetch(request);
      if (response.ok) {
        const copy = response.clone();
        event.waitUntil(caches.open(CACHE).then((cache) => cache.put(request, copy)));
      }
      return response;
    } catch (err) {
      const cached = await caches.match(request, { ignoreSearch: request.mode === "navigate" });
      if (cached) return cached;
      throw err;
    }
  })());
});

// Web Push (docs/protocol.md#web-push-notifications-for-members-with-no-open-app): the server pushes
// only while no tab of this user is connected. Show who wrote where (the excerpt when the server
// sends one); a newer push of the same conversation replaces the notification (tag).
self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { /* not ours: show a generic line */ }
  const call = `${data.call?.media ? `${data.call.media} ` : ""}call`;  // "video call"
  const generic = data.type === "call_incoming" ? `Incoming ${call}`
    : data.type === "call_missed" ? `Missed ${call}` : "New message";
  const group = data.conversation_kind === "group" && data.sender?.display_name;
  const body = data.excerpt ? (group ? `${data.sender.display_name}: ${data.excerpt}` : data.excerpt) : generic;
  event.waitUntil(self.registration.showNotification(data.title || "Aurora", {
    body,
    tag: data.conversation_id ? `c${data.conversation_id}` : undefined,
    renotify: data.type !== "message",
    data: { conversation_id: data.conversation_id ?? null },
    icon: new URL("icon.svg", self.registration.scope).href,
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = event.notification.data?.conversation_id;
  const target = new URL(self.registration.scope);
  if (id) target.hash = `conversation=${id}`;
  event.waitUntil((async () => {
    for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
      if (new URL(client.url).pathname.startsWith(target.pathname)) {
        await client.focus();
        if (id) client.postMessage({ type: "open-conversation", conversation_id: id });
        return;
      }
    }
    await self.clients.openWindow(target.href);
  })());
});
