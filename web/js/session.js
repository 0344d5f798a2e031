// The signed-in session (token + user) kept in localStorage, so a reload stays signed in. The
// messages, cursors and the outbox are the SDK's, in IndexedDB (IndexedDBStore).

const KEY = "aurora.session";

export function loadSession() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) || "null");
    return value && value.token && value.user ? value : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  localStorage.setItem(KEY, JSON.stringify({ token: session.token, user: session.user }));
}

export function clearSession() {
  localStorage.removeItem(KEY);
}
