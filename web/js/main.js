// Boot: signed in (a token in localStorage) -> the chat; otherwise the login screen.
import { SERVER_URL } from "../config.js";
import { showLogin } from "./login.js";
import { startChat } from "./chat.js";
import { clearSession, loadSession, saveSession } from "./session.js";
import { setBanner } from "./banner.js";
import { enableOfflineShell } from "./offline.js";

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
      login(notice);
    },
  });
}

const session = loadSession();
if (session) chat(session);
else login();
enableOfflineShell();
