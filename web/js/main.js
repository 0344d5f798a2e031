// Boot: signed in (a token in localStorage) -> the chat; otherwise the login screen.
import { SERVER_URL } from "../config.js";
import { showLogin } from "./login.js";
import { startChat } from "./chat.js";
import { clearSession, loadSession, saveSession } from "./session.js";
import { setBanner } from "./banner.js";
import { enableOfflineShell } from "./offline.js";
import { disablePush, enablePush } from "./push.js";

const serverUrl = (SERVER_URL || location.origin).replace(/\/+$/, "");
const root = document.getElementById("root");

function login(notice) {
  setBanner("offline", "Not signed in.");
  showLogin(root, {
    serverUrl,
    notice,
    onSignedIn(session) {
      saveSession(session);
      chat(session);
    },
  });
}

function chat(session) {
  startChat(root, {
    serverUrl,
    session,
    onSignedOut(notice) {
      clearSession();
      disablePush();
      login(notice);
    },
  });
  // Push needs the browser's permission, asked from a click: the first click in the app asks once.
  enablePush({ serverUrl, token: session.token });
  root.addEventListener("click", () => enablePush({ serverUrl, token: session.token, prompt: true }), { once: true });
}

const session = loadSession();
if (session) chat(session);
else login();
enableOfflineShell();
