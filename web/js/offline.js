// Registers the offline app shell (sw.js). When it is in place, <html data-offline-ready="true">.

export async function enableOfflineShell() {
  if (!("serviceWorker" in navigator)) return false;
  try {
    await navigator.serviceWorker.register(new URL("../sw.js", import.meta.url), { scope: new URL("../", import.meta.url).pathname });
    const registration = await navigator.serviceWorker.ready;
    const urls = [location.href.split("#")[0], ...performance.getEntriesByType("resource").map((e) => e.name)];
    const answer = await new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = (event) => resolve(event.data);
      registration.active.postMessage({ type: "cache-shell", urls }, [channel.port2]);
    });
    if (answer?.ok) document.documentElement.dataset.offlineReady = "true";
    return Boolean(answer?.ok);
  } catch (err) {
    console.warn("offline app shell unavailable:", err?.message ?? err);
    return false;
  }
}
