// The old fix notes' checklist ("open the console for BOTH users…"), live: connected, authenticated,
// transport, conversations subscribed, last sync, server version.
import { h, clear, timeOf } from "./dom.js";

export class Diagnostics {
  constructor({ client, serverUrl }) {
    this.client = client;
    this.serverUrl = serverUrl;
    this.lastSync = null;
    this.lastReason = "";
    this.version = "…";
    this.list = h("dl", {});
    this.el = h("section", { className: "diagnostics", id: "diagnostics", hidden: true, testid: "diagnostics",
      "aria-labelledby": "diagnostics-title" }, h("h2", { id: "diagnostics-title" }, "Diagnostics"), this.list);
    client.on("state", ({ state, reason }) => {
      this.lastReason = reason || "";
      if (state === "connected") {
        this.lastSync = new Date();
        this.fetchVersion();
      }
      this.render();
    });
  }

  async fetchVersion() {
    try {
      const health = await this.client.request("GET", "/health");
      this.version = health?.version ?? "unknown";
    } catch {
      this.version = "unknown";
    }
    this.render();
  }

  toggle(button) {
    this.el.hidden = !this.el.hidden;
    button.setAttribute("aria-expanded", String(!this.el.hidden));
    this.render();
  }

  render() {
    if (this.el.hidden) return;
    const client = this.client;
    const connected = client.state === "connected";
    const rows = [
      ["Server", this.serverUrl, null],
      ["Connected", connected ? "yes" : `no (${client.state}${this.lastReason ? `: ${this.lastReason}` : ""})`, connected],
      ["Authenticated", client.user ? `yes, as ${client.user.username}` : "not yet", Boolean(client.user)],
      ["Transport", client.transport ?? "none (not connected)", null],
      ["Conversations subscribed", `${client.conversations().length} (all of yours, no join needed)`, connected],
      ["Last sync", this.lastSync ? `${timeOf(this.lastSync.toISOString())} (${this.lastSync.toLocaleDateString()})` : "never", Boolean(this.lastSync)],
      ["Outbox", `${client.pending().length} pending`, null],
      ["Server version", this.version, null],
    ];
    clear(this.list).append(...rows.flatMap(([name, value, ok]) => [
      h("dt", {}, name), h("dd", { dataset: ok == null ? {} : { ok: String(ok) } }, value)]));
  }
}
