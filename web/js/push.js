// Web Push: subscribe this browser with the server's VAPID key and register the subscription
// (POST /api/push/subscriptions), so the server can reach it while no tab is open. It never asks
// for permission by itself: call enablePush({prompt: true}) from a click (browsers require one);
// without it, a browser that already granted permission is (re)subscribed at every start.

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function sameKey(buffer, bytes) {
  if (!buffer) return false;
  const have = new Uint8Array(buffer);
  return have.length === bytes.length && have.every((b, i) => b === bytes[i]);
}

async function api(serverUrl, token, method, path, body) {
  const response = await fetch(serverUrl + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status}`);
  return response.json();
}

export async function enablePush({ serverUrl, token, prompt = false }) {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) return false;
  try {
    if (Notification.permission === "default" && prompt) await Notification.requestPermission();
    if (Notification.permission !== "granted") return false;
    const registration = await navigator.serviceWorker.ready;
    const { public_key: publicKey } = await api(serverUrl, token, "GET", "/api/push/vapid-public-key");
    const key = keyBytes(publicKey);
    let subscription = await registration.pushManager.getSubscription();
    if (subscription && !sameKey(subscription.options?.applicationServerKey, key)) {
      await subscription.unsubscribe();  // the server rotated its VAPID key
      subscription = null;
    }
    subscription ||= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    await api(serverUrl, token, "POST", "/api/push/subscriptions", subscription.toJSON());
    return true;
  } catch (err) {
    console.warn("push notifications unavailable:", err?.message ?? err);
    return false;
  }
}

// On logout: this browser stops hearing this user (the server also forgets the session's subscriptions).
export async function disablePush() {
  try {
    const registration = await navigator.serviceWorker?.getRegistration();
    const subscription = await registration?.pushManager?.getSubscription();
    await subscription?.unsubscribe();
  } catch (err) {
    console.warn("could not unsubscribe from push:", err?.message ?? err);
  }
}
