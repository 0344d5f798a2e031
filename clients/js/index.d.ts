// aurora-client: the public API (a contract: the web app and outside tests code against it).
// Implementation: src/*.js (plain ES modules). Wire protocol: docs/protocol.md.

// ---------------------------------------------------------------- wire objects

export interface User {
  id: number;
  username: string;
  display_name: string;
  created_at: string;
  last_seen_at: string | null;
  online?: boolean;
}

export interface Reaction {
  emoji: string;
  count: number;
  user_ids: number[];
  /** true when the signed-in user is among user_ids */
  me: boolean;
}

export interface ReplyTo {
  seq: number;
  sender_id: number;
  sender_username: string;
  /** null when the target was deleted */
  excerpt: string | null;
}

export interface Attachment {
  id: number;
  name: string;
  content_type: string;
  size: number;
  width?: number | null;
  height?: number | null;
  url: string;
  thumbnail_url?: string | null;
}

/** A message in its current state (the shape of REST history). Change entries are never stored as messages. */
export interface Message {
  id: number;
  conversation_id: number;
  seq: number;
  kind: "text" | "call";
  sender_id: number;
  sender_username: string;
  body: string | null;
  client_id: string | null;
  created_at: string;
  edited_at: string | null;
  deleted: boolean;
  reactions: Reaction[];
  reply_to: ReplyTo | null;
  attachments: Attachment[];
  /** seq of the last log entry this state reflects (the message's own seq if never changed) */
  state_seq?: number;
  call?: { id: number; media: "audio" | "video"; end_reason: string | null; duration_s: number };
  [extra: string]: unknown;
}

/** A log entry that changes an earlier message (`message_changed` live, mixed into `sync`). */
export interface ChangeEntry {
  id?: number;
  conversation_id: number;
  seq: number;
  kind: "edit" | "delete" | "reaction";
  target_seq: number;
  sender_id: number;
  body?: string;
  emoji?: string;
  added?: boolean;
  created_at: string;
  [extra: string]: unknown;
}

export interface Receipt {
  conversation_id: number;
  user_id: number;
  delivered_seq: number;
  read_seq: number;
}

export interface Conversation {
  id: number;
  kind: "direct" | "group";
  title: string | null;
  members: User[];
  created_at: string;
  /** highest seq of the conversation's log this client knows of */
  last_seq: number;
  last_activity_at: string;
  /** the latest message (not change entry) in its current state, or null */
  last_message: Message | null;
  /** messages from others after read_seq */
  unread_count: number;
  read_seq: number;
  delivered_seq: number;
}

export interface Call {
  id: number;
  conversation_id: number;
  caller_id: number;
  media: "audio" | "video";
  state: "ringing" | "active" | "ended";
  end_reason: string | null;
  participants: number[];
  ringing: number[];
  invitees: Record<string, "ringing" | "joined" | "left" | "rejected" | "missed" | "busy">;
  created_at: string;
  answered_at: string | null;
  ended_at: string | null;
}

// ---------------------------------------------------------------- errors

export type ErrorCode =
  | "invalid" | "not_found" | "forbidden" | "conflict" | "too_large" | "rate_limited"
  | "internal" | "unavailable" | "auth_required" | "auth_invalid" | "auth_expired"
  | "invalid_credentials" | "timeout" | "closed" | (string & {});

/** Every failure the SDK reports. `code` is the server's code, or `timeout` (no answer in time) / `closed` (client closed). */
export class AuroraError extends Error {
  constructor(code: ErrorCode, message: string, options?: { retryAfterMs?: number | null; status?: number | null; cause?: unknown });
  readonly code: ErrorCode;
  /** for `rate_limited`: how long to wait (from `retry_after_ms` or the HTTP Retry-After header), else null */
  readonly retryAfterMs: number | null;
  /** HTTP status for REST errors, else null */
  readonly status: number | null;
  /** true when retrying the same request may succeed (internal, unavailable, rate_limited, timeout) */
  readonly retryable: boolean;
}

// ---------------------------------------------------------------- stores

/**
 * Where the client keeps its state: messages, conversations, cursors, receipts and the outbox.
 * A key-value store with prefix scans; the client batches writes. Implement it to plug in your own.
 */
export interface Store {
  /** every entry whose key starts with prefix */
  entries(prefix: string): Promise<Array<[string, unknown]>>;
  /** apply puts (value) and deletes (value === undefined) atomically where the backend can */
  write(changes: Array<[string, unknown | undefined]>): Promise<void>;
  /** remove everything (another user signed in) */
  clear(): Promise<void>;
}

/** In memory only: the default. Nothing survives a reload; the outbox survives reconnects. */
export class MemoryStore implements Store {
  constructor();
  entries(prefix: string): Promise<Array<[string, unknown]>>;
  write(changes: Array<[string, unknown | undefined]>): Promise<void>;
  clear(): Promise<void>;
}

/** window.localStorage (or any Web Storage object), keys prefixed with `name`. About 5 MB in browsers. */
export class LocalStorageStore implements Store {
  constructor(options?: { name?: string; storage?: Storage });
  entries(prefix: string): Promise<Array<[string, unknown]>>;
  write(changes: Array<[string, unknown | undefined]>): Promise<void>;
  clear(): Promise<void>;
}

/** IndexedDB database `name` (default "aurora"), one object store. `indexedDB` defaults to globalThis.indexedDB. */
export class IndexedDBStore implements Store {
  constructor(options?: { name?: string; indexedDB?: IDBFactory });
  entries(prefix: string): Promise<Array<[string, unknown]>>;
  write(changes: Array<[string, unknown | undefined]>): Promise<void>;
  clear(): Promise<void>;
  /** closes the database connection (the client does it in close()) */
  close(): void;
}

// ---------------------------------------------------------------- the client

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline";

export interface StateChange {
  state: ConnectionState;
  /** why: "connect", "caught_up", "transport close", "io server disconnect", "auth_expired", "close()", ... */
  reason: string;
  /** set when the state is caused by an error (e.g. connect_error with code auth_invalid) */
  error?: AuroraError;
}

export interface PendingMessage {
  clientId: string;
  conversationId: number;
  body: string;
  replyTo: number | null;
  attachments: number[];
  /** when it was typed (ms since epoch) */
  createdAt: number;
  /** "queued": waiting its turn or the connection; "sending": emitted, waiting for the ack */
  status: "queued" | "sending";
  /** the last retryable error, if a try failed */
  lastError: AuroraError | null;
  attempts: number;
}

export interface SendOptions {
  /** seq of the message this one replies to (sent as reply_to_seq) */
  replyTo?: number;
  /** upload ids (POST /api/uploads) */
  attachments?: number[];
  /** your own idempotency key; default crypto.randomUUID() */
  clientId?: string;
}

export interface TypingEvent { conversation_id: number; user_id: number; typing: boolean }
export interface PresenceInfo { user_id: number; online: boolean; last_seen_at: string | null }

export interface ClientOptions {
  /** server base URL, e.g. "http://localhost:3001" (no namespace) */
  url: string;
  token: string;
  /** default: new MemoryStore() */
  store?: Store;
  /** ack timeout per request, default 10000 */
  timeoutMs?: number;
  /** entries fetched for a conversation this store has never seen: the last N of its log (default 200; Infinity = all) */
  initialHistory?: number;
  /** sync page size (1-1000, default 500) */
  syncLimit?: number;
  /** socket.io-client options merged into every io() call (transports, path, ...) */
  socketOptions?: Record<string, unknown>;
  /** RTCPeerConnection class for calls (default globalThis.RTCPeerConnection) */
  RTCPeerConnection?: unknown;
  /** reconnection delays, ms (default 500 .. 5000, randomized) */
  reconnectDelayMs?: number;
  reconnectDelayMaxMs?: number;
  /**
   * Test hook: called for every server event before the client handles it; return true to drop it
   * (simulates a lost event so gap detection can be tested).
   */
  dropIncoming?: (namespace: "/chat" | "/calls", event: string, payload: unknown) => boolean;
  /** timeout of one upload() (default 120000 ms) */
  uploadTimeoutMs?: number;
}

export interface ClientEvents {
  message: (message: Message) => void;
  conversation: (conversation: Conversation) => void;
  state: (change: StateChange) => void;
  /** the outbox changed (added, sending, stored, failed) */
  pending: (pending: PendingMessage[]) => void;
  /** a send failed for good (invalid, too_large, not_found, forbidden...): removed from the outbox */
  send_failed: (info: { pending: PendingMessage; error: AuroraError }) => void;
  receipt: (receipt: Receipt) => void;
  typing: (typing: TypingEvent) => void;
  presence: (presence: PresenceInfo) => void;
  /** the signed-in user left or was removed: the conversation and its messages are gone from the store */
  conversation_removed: (info: { conversation_id: number }) => void;
  /** a sync or background task failed (it is retried on the next connect) */
  error: (error: AuroraError) => void;
  /** the store is loaded (once per client, before any connection): render from it now */
  loaded: (info: { user: User | null; conversations: number; pending: number }) => void;
}

/** An upload, before it is attached to a message (send(cid, body, {attachments: [upload.id]})). */
export interface Upload {
  id: number;
  name: string;
  content_type: string;
  size: number;
  sha256: string;
  width?: number;
  height?: number;
}

export interface HistoryPage { messages: Message[]; has_more: boolean }

export class AuroraClient {
  constructor(options: ClientOptions);

  /** static REST helpers (no client needed) */
  static register(url: string, fields: { username: string; password: string; display_name?: string }): Promise<{ token: string; user: User }>;
  static login(url: string, username: string, password: string): Promise<{ token: string; user: User }>;

  /** the signed-in user (after connect(); from the store before that when persisted) */
  readonly user: User | null;
  readonly state: ConnectionState;
  readonly calls: CallsClient;
  /**
   * Resolves when the store is loaded (conversations, messages, outbox, the persisted user), with or
   * without a connection; reading it starts the load if connect() has not. The `loaded` event fires then.
   */
  readonly ready: Promise<void>;
  /** the Engine.IO transport while connected ("polling" until an upgrade, then "websocket"), else null */
  readonly transport: "polling" | "websocket" | null;

  /** loads the store, connects /chat and /calls, syncs until has_more is false; then resolves. Rejects on auth errors. */
  connect(): Promise<void>;
  /** disconnects, flushes the store; pending sends stay in the (persistent) outbox */
  close(): Promise<void>;

  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void;
  off<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): void;
  once<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void;

  /** from the store: most recently active first */
  conversations(): Conversation[];
  conversation(conversationId: number): Conversation | undefined;
  /** from the store, ascending seq, messages only (change entries already applied) */
  messages(conversationId: number): Message[];
  /** outbox, in typed order; optionally one conversation's */
  pending(conversationId?: number): PendingMessage[];

  /** queues in the outbox (persisted first), sends in typed order, retries with the same client_id; resolves with the stored message */
  send(conversationId: number, body: string, options?: SendOptions): Promise<Message>;
  /** each resolves with the message's new state (and it reaches the store and the `message` event) */
  edit(conversationId: number, seq: number, body: string): Promise<Message>;
  delete(conversationId: number, seq: number): Promise<Message>;
  react(conversationId: number, seq: number, emoji: string): Promise<Message>;
  unreact(conversationId: number, seq: number, emoji: string): Promise<Message>;

  /** moves read_seq (fire and forget; errors go to the `error` event); resolves with the pointers */
  markRead(conversationId: number, seq: number): Promise<Receipt | null>;
  /** typing state (throttled by the server) */
  typing(conversationId: number, typing: boolean): void;
  /** last known presence of a user (conversation members and presence events), or undefined */
  presence(userId: number): PresenceInfo | undefined;
  /** known receipt pointers of the members of a conversation (from receipt events since this store began) */
  receipts(conversationId: number): Receipt[];
  /** "stored" | "delivered" | "read" for a message: the furthest any other member got */
  deliveryState(conversationId: number, seq: number): "stored" | "delivered" | "read";

  /** older messages from REST (before the oldest one in the store) into the store; resolves with them */
  loadOlder(conversationId: number, limit?: number): Promise<Message[]>;
  /** true when the store may not hold the conversation's oldest messages */
  hasOlder(conversationId: number): boolean;

  // REST helpers (same token)
  me(): Promise<User>;
  searchUsers(query: string): Promise<User[]>;
  createConversation(userIds: number[], options?: { title?: string }): Promise<Conversation>;
  addMembers(conversationId: number, userIds: number[]): Promise<Conversation>;
  leaveConversation(conversationId: number): Promise<void>;
  history(conversationId: number, options?: { beforeSeq?: number; afterSeq?: number; limit?: number }): Promise<HistoryPage>;
  search(query: string, options?: { conversationId?: number; limit?: number; before?: string }): Promise<{ results: Array<{ message: Message; conversation_id: number; highlight: string }>; next: string | null }>;
  callHistory(conversationId: number, options?: { limit?: number }): Promise<Call[]>;
  iceServers(): Promise<RTCIceServerLike[]>;
  /** ends this device's session (everywhere: every session of the user), then close() */
  logout(options?: { everywhere?: boolean }): Promise<void>;
  /**
   * POST /api/uploads (multipart field `file`, this token): a Blob/File, bytes, or (Node) a file path.
   * Errors: AuroraError too_large (413), invalid (400), rate_limited (429), unavailable (503).
   */
  upload(file: Blob | ArrayBuffer | ArrayBufferView | string, options?: { filename?: string; timeoutMs?: number }): Promise<Upload>;
  /** fresh (signed, expiring) attachment URLs for a conversation's stored messages; resolves with those updated */
  refreshAttachments(conversationId: number): Promise<Message[]>;
  /** any other route: returns the parsed JSON, throws AuroraError */
  request(method: string, path: string, body?: unknown): Promise<any>;
}

// ---------------------------------------------------------------- calls

export interface RTCIceServerLike { urls: string | string[]; username?: string; credential?: string }

export interface CallOptions {
  /** tracks of this stream are added to every peer connection */
  localStream?: { getTracks(): unknown[] } | null;
}

export interface CallsEvents {
  incoming: (info: { call: Call; fromUser: User; session: CallSession }) => void;
  ended: (info: { callId: number; reason: string; call: Call | null }) => void;
}

export class CallsClient {
  /** starts a call; resolves with its session once the server has it (ringing) */
  invite(conversationId: number, media: "audio" | "video", options?: CallOptions): Promise<CallSession>;
  accept(callId: number, options?: CallOptions): Promise<CallSession>;
  reject(callId: number): Promise<Call>;
  hangup(callId: number): Promise<Call>;
  /** the live session of a call (ringing or active), if any */
  session(callId: number): CallSession | undefined;
  sessions(): CallSession[];
  on<E extends keyof CallsEvents>(event: E, listener: CallsEvents[E]): () => void;
  off<E extends keyof CallsEvents>(event: E, listener: CallsEvents[E]): void;
}

export interface CallSessionEvents {
  /** a remote track arrived on the connection with userId */
  track: (info: { userId: number; track: unknown; streams: unknown[] }) => void;
  /** the call object changed (accepted, left, rejoined) */
  call: (call: Call) => void;
  /** an RTCPeerConnection's connectionState changed */
  connection: (info: { userId: number; state: string }) => void;
  ended: (info: { reason: string; call: Call | null }) => void;
}

/**
 * One call on this device. Owns one RTCPeerConnection per remote participant (one in a direct call),
 * each negotiated with MDN's perfect-negotiation pattern (the peer with the lower user id is polite),
 * ICE servers from /api/ice-servers, candidates relayed with call_signal, ICE restarted when a
 * connection fails, and call_rejoin sent after a /calls reconnect within the grace period.
 */
export class CallSession {
  readonly id: number;
  readonly conversationId: number;
  readonly media: "audio" | "video";
  /** the latest Call object from the server */
  readonly call: Call;
  /** "ringing" | "active" | "ended" as this device sees it */
  readonly state: "ringing" | "active" | "ended";
  /** the peer connection to the remote user (direct call: the only one) */
  peerConnection(userId?: number): any;
  peerConnections(): Map<number, any>;
  hangup(): Promise<Call>;
  on<E extends keyof CallSessionEvents>(event: E, listener: CallSessionEvents[E]): () => void;
  off<E extends keyof CallSessionEvents>(event: E, listener: CallSessionEvents[E]): void;
}
