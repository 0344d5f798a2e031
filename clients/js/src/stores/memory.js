// MemoryStore: the default. The outbox survives reconnects (the client lives on), not reloads.

export class MemoryStore {
  constructor() {
    this._data = new Map();
  }

  async entries(prefix) {
    const out = [];
    for (const [key, value] of this._data) if (key.startsWith(prefix)) out.push([key, structuredClone(value)]);
    return out;
  }

  async write(changes) {
    for (const [key, value] of changes) {
      if (value === undefined) this._data.delete(key);
      else this._data.set(key, structuredClone(value));
    }
  }

  async clear() {
    this._data.clear();
  }
}
