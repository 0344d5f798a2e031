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
