// A stand-in for window.localStorage in Node: the Web Storage interface over a Map, with string
// values like the real one (setItem stores String(value); a quota makes setItem throw like a full store).

export class MemoryWebStorage {
  constructor({ quotaChars = 5 * 1024 * 1024 } = {}) {
    this._items = new Map();
    this._quota = quotaChars;
  }

  get length() {
    return this._items.size;
  }

  key(index) {
    return [...this._items.keys()][index] ?? null;
  }

  getItem(key) {
    return this._items.has(String(key)) ? this._items.get(String(key)) : null;
  }

  setItem(key, value) {
    const used = [...this._items].reduce((n, [k, v]) => n + k.length + v.length, 0);
    if (used + String(key).length + String(value).length > this._quota) {
      throw new DOMException("quota exceeded", "QuotaExceededError");
    }
    this._items.set(String(key), String(value));
  }

  removeItem(key) {
    this._items.delete(String(key));
  }

  clear() {
    this._items.clear();
  }
}
