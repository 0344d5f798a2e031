// LocalStorageStore: Web Storage (window.localStorage by default), JSON values under "<name>:" keys.

export class LocalStorageStore {
  constructor({ name = "aurora", storage } = {}) {
    this._storage = storage ?? globalThis.localStorage;
    if (!this._storage) throw new TypeError("LocalStorageStore: no localStorage here; pass { storage }");
    this._prefix = `${name}:`;
  }

  async entries(prefix) {
    const full = this._prefix + prefix;
    const out = [];
    for (let i = 0; i < this._storage.length; i++) {
      const key = this._storage.key(i);
      if (key !== null && key.startsWith(full)) {
        out.push([key.slice(this._prefix.length), JSON.parse(this._storage.getItem(key))]);
      }
    }
    return out;
  }

  async write(changes) {
    for (const [key, value] of changes) {
      if (value === undefined) this._storage.removeItem(this._prefix + key);
      else this._storage.setItem(this._prefix + key, JSON.stringify(value));
    }
  }

  async clear() {
    const mine = [];
    for (let i = 0; i < this._storage.length; i++) {
      const key = this._storage.key(i);
      if (key !== null && key.startsWith(this._prefix)) mine.push(key);
    }
    for (const key of mine) this._storage.removeItem(key);
  }
}
