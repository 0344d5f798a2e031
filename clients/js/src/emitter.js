// A small event emitter (browsers have EventTarget, but listeners here take plain payloads).

export class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  on(event, listener) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(listener);
    return () => this.off(event, listener);
  }

  once(event, listener) {
    const off = this.on(event, (...args) => {
      off();
      listener(...args);
    });
    return off;
  }

  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
  }

  emit(event, ...args) {
    for (const listener of [...(this._listeners.get(event) ?? [])]) {
      try {
        listener(...args);
      } catch (err) {
        // A listener's bug must not break the client's bookkeeping; report it asynchronously.
        queueMicrotask(() => { throw err; });
      }
    }
  }
}
