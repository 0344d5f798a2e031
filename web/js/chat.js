// The signed-in app: contacts (user search), conversations with unread badges and presence dots,
// group creation, the conversation view, calls and diagnostics. Everything goes through the SDK.
import { AuroraClient, IndexedDBStore } from "aurora-client";
import { h, clear, displayName } from "./dom.js";
import { setBanner } from "./banner.js";
import { ConversationView } from "./conversation.js";
import { CallPanel } from "./calls.js";
import { Diagnostics } from "./diagnostics.js";

const SEARCH_DEBOUNCE_MS = 200;
const TYPING_SHOWN_MS = 6000;
const AUTH_ERRORS = new Set(["auth_required", "auth_invalid", "auth_expired"]);
const OPEN_KEY = "aurora.openConversation";

export function startChat(root, { serverUrl, session, onSignedOut }) {
  const me = session.user;
  // One IndexedDB database per user: messages, cursors and the outbox survive a reload.
  const store = new IndexedDBStore({ name: `aurora-user-${me.id}` });
  const client = new AuroraClient({ url: serverUrl, token: session.token, store });
  const typing = new Map();      // conversationId -> Map(userId -> timer)
  const usersById = new Map([[me.id, me]]);
  let contacts = [];
  let currentId = null;
  let closed = false;

  const titleOf = (c) => {
    if (c.kind === "group") return c.title || c.members.filter((m) => m.id !== me.id).map(displayName).join(", ") || "Group";
    return displayName(c.members.find((m) => m.id !== me.id) ?? me);
  };
  const onlineOf = (user) => Boolean(client.presence(user.id)?.online ?? user.online);

  // ---------------------------------------------------------------- layout
  const search = h("input", { type: "search", id: "user-search", testid: "user-search", placeholder: "Find people",
    autocomplete: "off", maxLength: 64, oninput: () => searchSoon() });
  const contactList = h("ul", { className: "list", "aria-label": "Contacts" });
  const conversationList = h("ul", { className: "list", "aria-label": "Conversations" });
  const groupForm = h("form", { className: "group-form", hidden: true, onsubmit: (e) => { e.preventDefault(); createGroup(); } });
  const groupToggle = h("button", { type: "button", "aria-expanded": "false", "aria-controls": "group-form",
    onclick: () => toggleGroupForm() }, "New group");
  groupForm.id = "group-form";
  const sidebarError = h("p", { className: "error", role: "alert" });
  const sidebar = h("nav", { className: "sidebar", "aria-label": "Contacts and conversations" },
    h("section", {}, h("label", { for: "user-search", className: "visually-hidden" }, "Find people"), search),
    h("div", { className: "lists" },
      h("section", {}, h("h2", {}, "Contacts"), contactList),
      h("section", {}, h("h2", {}, "Conversations"), groupToggle, groupForm, sidebarError,
        conversationList)));

  const view = new ConversationView({
    client, me, titleOf,
    onBack: () => {
      currentId = null;
      sessionStorage.removeItem(OPEN_KEY);
      shell.classList.remove("conversation-open");
      render();
    },
    onCall: (cid, media) => calls.start(cid, media),
  });
  const calls = new CallPanel({ client, nameOf: (cid) => { const c = client.conversation(cid); return c ? titleOf(c) : ""; } });
  const diagnostics = new Diagnostics({ client, serverUrl });
  const diagButton = h("button", { type: "button", "aria-expanded": "false", "aria-controls": "diagnostics",
    onclick: () => diagnostics.toggle(diagButton) }, "Diagnostics");
  const topbar = h("header", { className: "topbar" }, h("h1", {}, "Aurora"),
    h("span", { className: "me" }, `Signed in as ${me.username}`), diagButton,
    h("button", { type: "button", onclick: () => logout() }, "Log out"));
  const shell = h("div", { className: "shell" }, sidebar, view.el);
  clear(root).append(topbar, shell, calls.el, diagnostics.el);

  // ---------------------------------------------------------------- rendering (coalesced)
  let scheduled = false;
  function render() {
    if (scheduled || closed) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      if (closed) return;
      renderContacts();
      renderConversations();
      view.render({ typingUsers: typingUsers(currentId) });
      diagnostics.render();
    }, 0);
  }

  // A list's buttons are rebuilt only when what they show changed: every render (a presence change, a
  // message) replaced them before, and a click whose press and release straddled that was lost.
  const shownLists = new WeakMap();
  function renderList(list, signature, build, empty) {
    if (shownLists.get(list) === signature) return;
    shownLists.set(list, signature);
    const items = build();
    clear(list).append(...(items.length ? items : [h("li", { className: "muted" }, empty)]));
  }

  function renderContacts() {
    const shown = contacts.filter((u) => u.id !== me.id);
    const signature = JSON.stringify(shown.map((u) => [u.id, u.username, displayName(u), onlineOf(u)]));
    renderList(contactList, signature, () => shown.map((user) => h("li", {},
      h("button", { type: "button", className: "item", testid: "contact", dataset: { username: user.username },
        onclick: () => openDirect(user) },
        presenceDot(onlineOf(user)),
        h("span", { className: "grow" }, h("span", { className: "name" }, displayName(user)),
          h("span", { className: "sub" }, `@${user.username}`))))), "Nobody found.");
  }

  function renderConversations() {
    const rows = client.conversations().map((c) => {
      const other = c.kind === "direct" ? c.members.find((m) => m.id !== me.id) : null;
      const last = c.last_message;
      const preview = !last ? "No messages yet" : last.deleted ? "Message deleted"
        : `${last.sender_id === me.id ? "You: " : ""}${last.body || (last.attachments ?? []).map((a) => `📎 ${a.name}`).join(" ")}`;
      const unread = c.id === currentId ? 0 : c.unread_count;
      return { id: c.id, title: titleOf(c), preview, unread, current: c.id === currentId,
        online: other ? onlineOf(other) : null };
    });
    renderList(conversationList, JSON.stringify(rows), () => rows.map((row) => h("li", {}, h("button", {
      type: "button", className: "item", testid: "conversation",
      dataset: { conversationId: String(row.id) }, "aria-current": String(row.current),
      onclick: () => open(row.id) },
      row.online !== null ? presenceDot(row.online) : h("span", { className: "dot", "aria-hidden": "true" }),
      h("span", { className: "grow" }, h("span", { className: "name" }, row.title),
        h("span", { className: "sub" }, row.preview)),
      row.unread > 0 ? h("span", { className: "badge", testid: "unread", "aria-label": `${row.unread} unread` }, String(row.unread)) : null))),
    "No conversations yet.");
  }

  function presenceDot(online) {
    return h("span", { className: "dot", dataset: { online: String(online) }, title: online ? "online" : "offline",
      role: "img", "aria-label": online ? "online" : "offline" });
  }

  function typingUsers(cid) {
    const users = typing.get(cid);
    if (!users) return [];
    const conversation = client.conversation(cid);
    return [...users.keys()].map((id) => usersById.get(id) ?? conversation?.members.find((m) => m.id === id) ?? { username: `user ${id}` });
  }

  // ---------------------------------------------------------------- actions
  async function open(cid) {
    currentId = cid;
    sessionStorage.setItem(OPEN_KEY, String(cid));  // a reload reopens it
    shell.classList.add("conversation-open");
    view.show(cid);
    render();
  }

  async function openDirect(user) {
    sidebarError.textContent = "";
    try {
      const conversation = await client.createConversation([user.id]);
      open(conversation.id);
    } catch (err) {
      sidebarError.textContent = `Could not open the conversation: ${err.message || err.code}`;
    }
  }

  let searchTimer = null;
  function searchSoon() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, SEARCH_DEBOUNCE_MS);
  }
  let searchRun = 0;
  async function runSearch() {
    const run = ++searchRun;
    try {
      const users = await client.searchUsers(search.value.trim());
      if (run !== searchRun) return;
      contacts = users;
      for (const u of users) usersById.set(u.id, u);
      render();
    } catch (err) {
      if (run === searchRun) sidebarError.textContent = `Search failed: ${err.message || err.code}`;
    }
  }

  function toggleGroupForm() {
    const show = groupForm.hidden;
    groupForm.hidden = !show;
    groupToggle.setAttribute("aria-expanded", String(show));
    if (!show) return;
    const title = h("input", { id: "group-title", name: "title", maxLength: 100, required: true, placeholder: "Group name" });
    const choices = contacts.filter((u) => u.id !== me.id).map((u) =>
      h("label", {}, h("input", { type: "checkbox", value: String(u.id), name: "member" }), displayName(u)));
    clear(groupForm).append(
      h("label", { for: "group-title" }, "Group name"), title,
      h("fieldset", { className: "choices" }, h("legend", {}, "Members (from Contacts; search to find more)"), choices),
      h("button", { type: "submit", className: "primary" }, "Create group"));
    title.focus();
  }

  async function createGroup() {
    const title = groupForm.querySelector("#group-title").value.trim();
    const ids = [...groupForm.querySelectorAll('input[name="member"]:checked')].map((i) => Number(i.value));
    if (!title || !ids.length) {
      sidebarError.textContent = "A group needs a name and at least one member.";
      return;
    }
    try {
      const conversation = await client.createConversation(ids, { title });
      toggleGroupForm();
      sidebarError.textContent = "";
      open(conversation.id);
    } catch (err) {
      sidebarError.textContent = `Could not create the group: ${err.message || err.code}`;
    }
  }

  async function logout() {
    try { await client.logout(); } catch { /* the token dies with the session anyway */ }
    await shutdown();
    try { await store.clear(); } catch { /* nothing left to protect */ }
    onSignedOut("You are logged out.");
  }

  async function shutdown() {
    closed = true;
    sessionStorage.removeItem(OPEN_KEY);
    try { await client.close(); } catch { /* closing anyway */ }
  }

  // ---------------------------------------------------------------- SDK events
  client.on("state", ({ state, reason, error }) => {
    setBanner(state, error && !AUTH_ERRORS.has(error.code) ? `${error.message || error.code}` : undefined);
    render();
    // The server ended this device's session (logged out elsewhere, token expired): back to the login.
    if (state === "offline" && AUTH_ERRORS.has(error?.code) && !closed) signedOutByServer();
  });
  for (const event of ["message", "conversation", "pending", "receipt", "presence", "conversation_removed"]) {
    client.on(event, () => render());
  }
  client.on("conversation_removed", ({ conversation_id: cid }) => {
    if (cid === currentId) { currentId = null; view.show(null); }
  });
  client.on("send_failed", ({ error }) => { view.notice.textContent = `Not sent: ${error.message || error.code}`; });
  client.on("typing", ({ conversation_id: cid, user_id: uid, typing: on }) => {
    if (uid === me.id) return;
    const users = typing.get(cid) ?? new Map();
    clearTimeout(users.get(uid));
    if (on) users.set(uid, setTimeout(() => { users.delete(uid); render(); }, TYPING_SHOWN_MS));
    else users.delete(uid);
    typing.set(cid, users);
    render();
  });
  client.on("message", (m) => {
    // A message from someone ends their typing indicator.
    const users = typing.get(m.conversation_id);
    if (users?.has(m.sender_id)) { clearTimeout(users.get(m.sender_id)); users.delete(m.sender_id); }
  });
  document.addEventListener("visibilitychange", () => render());

  setBanner("connecting");
  const reopen = Number(sessionStorage.getItem(OPEN_KEY));
  if (reopen > 0) open(reopen);
  else view.show(null);
  // The store (IndexedDB) is loaded before any connection: an offline start shows it at once.
  client.ready.then(() => render(), () => { /* connect() reports it */ });
  async function signedOutByServer() {
    if (closed) return;
    await shutdown();
    onSignedOut("Your session has ended; log in again.");
  }
  client.connect().then(() => {
    render();
  }).catch(async (err) => {
    if (AUTH_ERRORS.has(err?.code)) await signedOutByServer();
    else setBanner("offline", err?.message);
  });
  runSearch();
  render();
}
