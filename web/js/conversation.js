// The conversation view: live messages with their ticks, edit / delete / react / reply, search,
// the typing indicator and the composer (Enter sends, Shift+Enter is a new line).
import { h, clear, displayName, timeOf } from "./dom.js";

const QUICK_REACTIONS = ["👍", "❤️", "😂"];
const TICKS = {
  pending: ["◷", "Not sent yet: waiting for the server"],
  stored: ["✓", "Sent (stored by the server)"],
  delivered: ["✓✓", "Delivered"],
  read: ["✓✓", "Read"],
};
const TYPING_IDLE_MS = 4000;
const TYPING_REPEAT_MS = 3000;

export class ConversationView {
  constructor({ client, me, titleOf, onBack, onCall, onError }) {
    this.client = client;
    this.me = me;
    this.titleOf = titleOf;
    this.onError = onError;
    this.conversationId = null;
    this.replyTo = null;        // a Message
    this.editingSeq = null;
    this.cache = new Map();     // key -> {sig, el}
    this.typingSent = 0;
    this.typingTimer = null;
    this.lastMarked = new Map();

    this.title = h("h2", { id: "conversation-title" });
    this.dot = h("span", { className: "dot", "aria-hidden": "true" });
    this.searchToggle = h("button", { type: "button", className: "icon", "aria-label": "Search messages",
      "aria-expanded": "false", onclick: () => this.toggleSearch() }, "Search");
    // The test ids are spelled out (call-audio, call-video): outside tests look for them by name.
    const callButton = (media, testid, label, text) => h("button", { type: "button", className: "icon",
      testid, "aria-label": label, onclick: () => onCall(this.conversationId, media) }, text);
    this.head = h("header", { className: "conv-head" },
      h("button", { type: "button", className: "back icon", "aria-label": "Back to conversations", onclick: onBack }, "‹ Back"),
      this.dot, this.title, this.searchToggle,
      callButton("audio", "call-audio", "Voice call", "Call"),
      callButton("video", "call-video", "Video call", "Video"));

    this.searchInput = h("input", { type: "search", id: "message-search", placeholder: "Search this conversation",
      "aria-label": "Search messages", maxLength: 200,
      onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); this.runSearch(); } } });
    this.searchBar = h("div", { className: "searchbar", role: "search", hidden: true }, this.searchInput,
      h("button", { type: "button", onclick: () => this.runSearch() }, "Search"));
    this.searchResults = h("ul", { className: "list search-results", "aria-label": "Search results", hidden: true });

    this.older = h("button", { type: "button", hidden: true, onclick: () => this.loadOlder() }, "Load older messages");
    this.list = h("div", { className: "messages", role: "log", "aria-live": "polite", "aria-label": "Messages",
      tabindex: "0" });
    this.typing = h("div", { className: "typing", testid: "typing", "aria-live": "polite" });
    this.replyLabel = h("span");
    this.replying = h("div", { className: "replying", hidden: true }, this.replyLabel,
      h("button", { type: "button", className: "icon", "aria-label": "Cancel reply", onclick: () => this.setReply(null) }, "Cancel"));
    this.composer = h("textarea", { id: "composer", testid: "composer", rows: 1, maxLength: 4000,
      placeholder: "Write a message", "aria-describedby": "composer-hint",
      onkeydown: (e) => this.onComposerKey(e), oninput: () => this.onComposerInput() });
    this.sendButton = h("button", { type: "submit", className: "primary", testid: "send" }, "Send");
    // Attach: the label is the visible button; the file input stays reachable by keyboard.
    this.fileInput = h("input", { type: "file", id: "attach-file", testid: "attach", className: "visually-hidden",
      multiple: true, onchange: () => this.attach() });
    this.attachLabel = h("label", { for: "attach-file", className: "button attach", title: "Attach a file or photo" },
      "Attach", h("span", { className: "visually-hidden" }, " a file or photo"));
    this.form = h("form", { className: "composer", onsubmit: (e) => { e.preventDefault(); this.send(); } },
      h("label", { for: "composer", className: "visually-hidden" }, "Message"),
      this.composer,
      h("span", { id: "composer-hint", className: "visually-hidden" }, "Enter sends, Shift+Enter starts a new line."),
      this.attachLabel, this.fileInput, this.sendButton);
    this.notice = h("p", { className: "error", role: "alert" });

    this.empty = h("div", { className: "empty" },
      h("p", {}, "Pick a contact or a conversation to start."),
      h("p", { className: "muted" }, "Messages arrive live in every conversation you are in, no need to open it."));
    this.body = h("div", { className: "conversation", hidden: true },
      this.head, this.searchBar, this.searchResults, this.list, this.typing, this.notice, this.replying, this.form);
    this.el = h("section", { className: "main", "aria-labelledby": "conversation-title" }, this.empty, this.body);
  }

  show(conversationId) {
    if (this.conversationId !== conversationId) {
      this.stopTyping();
      this.conversationId = conversationId;
      this.replyTo = null;
      this.editingSeq = null;
      this.cache.clear();
      clear(this.list);
      this.notice.textContent = "";
      this.searchResults.hidden = true;
      this.searchBar.hidden = true;
      this.searchToggle.setAttribute("aria-expanded", "false");
      this.composer.value = this.drafts?.get(conversationId) ?? "";
    }
    this.empty.hidden = conversationId != null;
    this.body.hidden = conversationId == null;
    this.render({ scroll: true });
    if (conversationId != null) this.composer.focus();
  }

  // ---------------------------------------------------------------- rendering
  render({ scroll = false, typingUsers = [] } = {}) {
    const cid = this.conversationId;
    if (cid == null) return;
    const conversation = this.client.conversation(cid);
    this.title.textContent = conversation ? this.titleOf(conversation) : "Conversation";
    const other = conversation?.kind === "direct" ? conversation.members.find((m) => m.id !== this.me.id) : null;
    this.dot.hidden = !other;
    if (other) {
      const online = Boolean(this.client.presence(other.id)?.online ?? other.online);
      this.dot.dataset.online = String(online);
      this.dot.title = online ? "online" : "offline";
    }

    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    // Before the store is loaded this is empty; chat.js renders again when client.ready resolves.
    const messages = this.client.messages(cid);
    const storedIds = new Set(messages.map((m) => m.client_id).filter(Boolean));
    const pending = this.client.pending(cid).filter((p) => !storedIds.has(p.clientId));
    const wanted = [];
    for (const message of messages) wanted.push(this.messageElement(message));
    for (const item of pending) wanted.push(this.pendingElement(item));
    this.older.hidden = !this.client.hasOlder(cid);
    const children = [this.older, ...wanted];
    children.forEach((el, i) => {
      if (this.list.children[i] !== el) this.list.insertBefore(el, this.list.children[i] || null);
    });
    while (this.list.children.length > children.length) this.list.lastChild.remove();
    const keep = new Set(wanted);
    for (const [key, entry] of this.cache) if (!keep.has(entry.el)) this.cache.delete(key);

    this.typing.textContent = typingUsers.length
      ? `${typingUsers.map(displayName).join(", ")} ${typingUsers.length > 1 ? "are" : "is"} typing…` : "";
    if (scroll || atBottom) this.list.scrollTop = this.list.scrollHeight;
    this.markRead(conversation, messages);
  }

  markRead(conversation, messages) {
    if (!conversation || document.visibilityState !== "visible") return;
    const last = messages.at(-1);
    if (!last || (conversation.unread_count === 0 && conversation.read_seq >= last.seq)) return;
    if ((this.lastMarked.get(conversation.id) ?? 0) >= last.seq) return;
    this.lastMarked.set(conversation.id, last.seq);
    this.client.markRead(conversation.id, last.seq);
  }

  stateOf(message) {
    if (message.sender_id === this.me.id) return this.client.deliveryState(message.conversation_id, message.seq);
    // Someone else's message: it reached this device (delivered); read once this user read it.
    const conversation = this.client.conversation(message.conversation_id);
    return conversation && conversation.read_seq >= message.seq ? "read" : "delivered";
  }

  cached(key, sig, build) {
    const hit = this.cache.get(key);
    if (hit && hit.sig === sig) return hit.el;
    const el = build();
    if (hit) hit.el.replaceWith(el);
    this.cache.set(key, { sig, el });
    return el;
  }

  messageElement(m) {
    const state = this.stateOf(m);
    const editing = this.editingSeq === m.seq;
    const sig = JSON.stringify([m.body, m.edited_at, m.deleted, m.reactions, m.reply_to, m.attachments, state, editing]);
    return this.cached(`s${m.seq}`, sig, () => {
      const mine = m.sender_id === this.me.id;
      const el = h("article", { className: `message${mine ? " mine" : ""}${m.kind === "call" ? " call" : ""}`,
        testid: "message", dataset: { seq: String(m.seq), state, sender: m.sender_username },
        "aria-label": `${mine ? "You" : m.sender_username}, ${timeOf(m.created_at)}` });
      if (!mine && m.kind !== "call") el.append(h("div", { className: "who" }, m.sender_username));
      if (m.reply_to) el.append(quote(m.reply_to));
      if (editing) el.append(this.editBox(m));
      else if (m.deleted) el.append(h("div", { className: "body deleted" }, "This message was deleted."));
      else if (m.body || !m.attachments?.length) el.append(h("div", { className: "body" }, m.body ?? ""));
      if (!m.deleted && m.attachments?.length) {
        // Signed URLs expire: an image that no longer loads asks the SDK for fresh ones (once per render).
        el.append(attachments(m.attachments, () => this.client.refreshAttachments(m.conversation_id).catch(() => {})));
      }
      if (m.reactions?.length) {
        el.append(h("div", { className: "reactions" }, m.reactions.map((r) => h("button", {
          type: "button", "aria-pressed": String(Boolean(r.me)), "aria-label": `${r.emoji} ${r.count}`,
          onclick: () => this.toggleReaction(m, r.emoji, r.me) }, `${r.emoji} ${r.count}`))));
      }
      const [tick, tickLabel] = TICKS[state];
      el.append(h("div", { className: "meta" },
        m.edited_at && !m.deleted ? h("span", {}, "edited") : null,
        h("time", { datetime: m.created_at }, timeOf(m.created_at)),
        mine ? h("span", { className: "tick", title: tickLabel, "aria-label": tickLabel }, tick) : null));
      if (!m.deleted && m.kind !== "call") el.append(this.actions(m, mine));
      return el;
    });
  }

  pendingElement(p) {
    const sig = JSON.stringify([p.body, p.status, p.attempts]);
    return this.cached(`p${p.clientId}`, sig, () => {
      const [tick, tickLabel] = TICKS.pending;
      return h("article", { className: "message mine", testid: "message",
        dataset: { seq: "", state: "pending", clientId: p.clientId }, "aria-label": "You, not sent yet" },
        h("div", { className: "body" }, p.body),
        h("div", { className: "meta" }, h("span", {}, p.status === "sending" ? "sending…" : "waiting"),
          h("span", { className: "tick", title: tickLabel, "aria-label": tickLabel }, tick)));
    });
  }

  actions(m, mine) {
    const button = (label, text, onclick) => h("button", { type: "button", "aria-label": label, onclick }, text);
    return h("div", { className: "actions" },
      button("Reply", "Reply", () => this.setReply(m)),
      QUICK_REACTIONS.map((emoji) => button(`React ${emoji}`, emoji, () => this.toggleReaction(m, emoji,
        m.reactions?.some((r) => r.emoji === emoji && r.me)))),
      mine ? button("Edit", "Edit", () => { this.editingSeq = m.seq; this.render(); }) : null,
      mine ? button("Delete", "Delete", () => this.remove(m)) : null);
  }

  editBox(m) {
    const box = h("textarea", { "aria-label": "Edit message", rows: 2, maxLength: 4000 });
    box.value = m.body ?? "";
    const save = () => {
      const body = box.value.trim();
      this.editingSeq = null;
      if (body && body !== m.body) this.guard(this.client.edit(m.conversation_id, m.seq, body), "Could not edit");
      this.render();
    };
    box.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); save(); }
      if (e.key === "Escape") { this.editingSeq = null; this.render(); }
    });
    queueMicrotask(() => box.focus());
    return h("div", { className: "edit-box" }, box, h("div", {},
      h("button", { type: "button", className: "primary", onclick: save }, "Save"), " ",
      h("button", { type: "button", onclick: () => { this.editingSeq = null; this.render(); } }, "Cancel")));
  }

  // ---------------------------------------------------------------- actions
  guard(promise, what) {
    return promise.catch((err) => { this.notice.textContent = `${what}: ${err.message || err.code}`; });
  }

  toggleReaction(m, emoji, mine) {
    const action = mine ? this.client.unreact(m.conversation_id, m.seq, emoji)
      : this.client.react(m.conversation_id, m.seq, emoji);
    this.guard(action, "Could not react");
  }

  remove(m) {
    if (!confirm("Delete this message for everyone?")) return;
    this.guard(this.client.delete(m.conversation_id, m.seq), "Could not delete");
  }

  setReply(message) {
    this.replyTo = message;
    this.replying.hidden = !message;
    this.replyLabel.textContent = message ? `Replying to ${message.sender_username}: ${message.body ?? ""}` : "";
    if (message) this.composer.focus();
  }

  onComposerKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.send();
    }
  }

  onComposerInput() {
    const cid = this.conversationId;
    if (cid == null) return;
    (this.drafts ??= new Map()).set(cid, this.composer.value);
    if (!this.composer.value) { this.stopTyping(); return; }
    const now = Date.now();
    if (now - this.typingSent > TYPING_REPEAT_MS) {
      this.typingSent = now;
      this.client.typing(cid, true);
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (this.typingSent && this.conversationId != null) this.client.typing(this.conversationId, false);
    this.typingSent = 0;
  }

  send() {
    const cid = this.conversationId;
    const body = this.composer.value.trim();
    if (cid == null || !body) return;
    const options = this.replyTo ? { replyTo: this.replyTo.seq } : {};
    this.composer.value = "";
    this.drafts?.delete(cid);
    this.setReply(null);
    this.stopTyping();
    this.notice.textContent = "";
    // The SDK puts it in the (IndexedDB) outbox first; it shows as pending until the server stores it.
    this.client.send(cid, body, options).catch((err) => {
      this.notice.textContent = `Not sent: ${err.message || err.code}`;
    });
    this.render({ scroll: true });
  }

  /** Upload the chosen files, then send them in one message with what the composer holds (may be empty). */
  async attach() {
    const cid = this.conversationId;
    const files = [...this.fileInput.files];
    this.fileInput.value = "";
    if (cid == null || !files.length) return;
    this.notice.textContent = files.length > 1 ? `Uploading ${files.length} files…` : `Uploading ${files[0].name}…`;
    try {
      const uploads = [];
      for (const file of files) uploads.push(await this.client.upload(file));
      const body = this.composer.value.trim();
      this.composer.value = "";
      this.drafts?.delete(cid);
      this.notice.textContent = "";
      this.client.send(cid, body, { attachments: uploads.map((u) => u.id) }).catch((err) => {
        this.notice.textContent = `Not sent: ${err.message || err.code}`;
      });
      this.render({ scroll: true });
    } catch (err) {
      this.notice.textContent = `Could not upload: ${err.message || err.code}`;
    }
  }

  async loadOlder() {
    const top = this.list.scrollHeight;
    await this.guard(this.client.loadOlder(this.conversationId), "Could not load older messages");
    this.render();
    this.list.scrollTop = this.list.scrollHeight - top;
  }

  // ---------------------------------------------------------------- search
  toggleSearch() {
    const open = this.searchBar.hidden;
    this.searchBar.hidden = !open;
    this.searchResults.hidden = true;
    this.searchToggle.setAttribute("aria-expanded", String(open));
    if (open) this.searchInput.focus();
  }

  async runSearch() {
    const q = this.searchInput.value.trim();
    if (!q) return;
    clear(this.searchResults).hidden = false;
    try {
      const { results } = await this.client.search(q, { conversationId: this.conversationId });
      if (!results.length) this.searchResults.append(h("li", { className: "muted" }, "No messages found."));
      for (const result of results) {
        this.searchResults.append(h("li", { testid: "search-result", dataset: { seq: String(result.message.seq) } },
          h("button", { type: "button", className: "item", onclick: () => this.reveal(result.message.seq) },
            h("span", { className: "grow" }, h("span", { className: "name" }, result.message.sender_username, ": "),
              highlighted(result.highlight ?? result.message.body ?? "")))));
      }
    } catch (err) {
      this.searchResults.append(h("li", { className: "error" },
        err.status === 404 ? "Search is not available on this server." : `Search failed: ${err.message || err.code}`));
    }
  }

  reveal(seq) {
    const el = this.list.querySelector(`[data-seq="${seq}"]`);
    if (!el) return;
    el.scrollIntoView({ block: "center" });
    el.tabIndex = -1;
    el.focus();
  }
}

function quote(reply) {
  return h("div", { className: "quote" }, `↪ ${reply.sender_username}: `,
    reply.excerpt == null ? h("em", {}, "deleted message") : reply.excerpt);
}

function attachments(list, onExpired) {
  let asked = false;
  const expired = () => { if (!asked) { asked = true; onExpired(); } };
  return h("div", { className: "attachments" }, list.map((a) => {
    // No URL yet (loaded from the store, offline): the name only, until the SDK has fresh URLs.
    if (!a.url) return h("span", { className: "file" }, `📎 ${a.name}`);
    if (a.content_type?.startsWith("image/")) {
      const img = h("img", { src: a.thumbnail_url || a.url, alt: a.name, testid: "attachment-preview",
        width: a.width ?? undefined, height: a.height ?? undefined });
      img.addEventListener("error", expired);
      return h("a", { href: a.url, target: "_blank", rel: "noopener" }, img);
    }
    return h("a", { href: a.url, target: "_blank", rel: "noopener", download: a.name }, `📎 ${a.name}`);
  }));
}

/** The server's highlight is HTML-escaped text with <mark>…</mark> around matches. Rebuild it as
 * text nodes and <mark> elements (never innerHTML), unescaping the three entities it uses. */
function highlighted(text) {
  const unescape = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  const parts = String(text).split(/<mark>(.*?)<\/mark>/s).map(unescape);
  return parts.map((part, i) => (i % 2 ? h("mark", {}, part) : part));
}
