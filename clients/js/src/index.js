export { AuroraClient } from "./client.js";
export { AuroraError } from "./errors.js";
export { CallsClient, CallSession } from "./calls.js";
export { MemoryStore } from "./stores/memory.js";
export { LocalStorageStore } from "./stores/local-storage.js";
export { IndexedDBStore } from "./stores/indexeddb.js";
