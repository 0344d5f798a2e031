// IndexedDBStore: one object store "kv" in database `name`; a write is one readwrite transaction.

const OBJECT_STORE = "kv";

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

export class IndexedDBStore {
  constructor({ name = "aurora", indexedDB } = {}) {
    this._factory = indexedDB ?? globalThis.indexedDB;
    if (!this._factory) throw new TypeError("IndexedDBStore: no indexedDB here; pass { indexedDB }");
    this._name = name;
    this._db = null;
  }

  _open() {
    if (!this._db) {
      const request = this._factory.open(this._name, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(OBJECT_STORE);
      this._db = promised(request);
    }
    return this._db;
  }

  async entries(prefix) {
    const db = await this._open();
    const tx = db.transaction(OBJECT_STORE, "readonly");
    const store = tx.objectStore(OBJECT_STORE);
    // Both lists come from one transaction, in key order, so they line up.
    const [keys, values] = await Promise.all([promised(store.getAllKeys()), promised(store.getAll())]);
    const out = [];
    keys.forEach((key, i) => { if (String(key).startsWith(prefix)) out.push([key, values[i]]); });
    return out;
  }

  async write(changes) {
    if (changes.length === 0) return;
    const db = await this._open();
    const tx = db.transaction(OBJECT_STORE, "readwrite");
    const store = tx.objectStore(OBJECT_STORE);
    for (const [key, value] of changes) {
      if (value === undefined) store.delete(key);
      else store.put(value, key);
    }
    await done(tx);
  }

  async clear() {
    const db = await this._open();
    const tx = db.transaction(OBJECT_STORE, "readwrite");
    tx.objectStore(OBJECT_STORE).clear();
    await done(tx);
  }

  close() {
    if (this._db) this._db.then((db) => db.close(), () => {});
    this._db = null;
  }
}

