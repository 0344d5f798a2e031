"""AuroraClient: the asyncio SDK. It keeps the client half of Aurora's guarantees:

- an outbox (written to the store before sending, retried with the same client_id, typed order);
- a cursor per conversation, a sync on every (re)connect until nothing is missing, and on `resync`;
- the log applied in seq order: a live seq that skips ahead triggers a sync of that conversation,
  anything at or below the cursor is a duplicate and dropped; change entries (edit, delete,
  reaction) update the message they target;
- `delivered` sent when a message from someone else reaches the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, cast

from aurora_client.calls import Calls
from aurora_client.catch_up import CatchUp
from aurora_client.connection import CALLS, CHAT, Connection
from aurora_client.errors import AuroraError
from aurora_client.events import Emitter, Event
from aurora_client.log import apply_change, as_message, is_change
from aurora_client.outbox import Outbox
from aurora_client.rest import Rest, login, register
from aurora_client.store import Batch, MemoryStore, Store
from aurora_client.types import (
    Auth,
    ConnectionState,
    Conversation,
    HistoryPage,
    Message,
    PendingSend,
    Presence,
    Receipt,
    Upload,
    User,
)

log = logging.getLogger(__name__)

# `internal` may be a bug that never heals: give up after this many tries (outages, `unavailable`,
# and lost connections are retried for as long as the client runs).
INTERNAL_RETRIES = 10
DropIncoming = Callable[[str, str, Any], bool]


class AuroraClient:
    """`AuroraClient(url, token=..., store=MemoryStore())`; `await client.connect()`; `await client.close()`.

    - `store`: MemoryStore() (default) or SQLiteStore(path) to outlive the process.
    - `initial_history`: how many log entries to fetch of a conversation this store has never seen
      (None, the default: all of it; older messages are then in `history()`).
    - `calls`: also connect /calls (default True).
    - `drop_incoming(namespace, event, payload) -> bool` is a test hook: returning True drops an
      incoming event as if the network had lost it (used to prove gap detection)."""

    def __init__(self, url: str, token: str, *, store: Store | None = None, calls: bool = True,
                 transports: Sequence[str] | None = ("websocket",), request_timeout_s: float = 10.0,
                 reconnection_delay_s: float = 0.5, reconnection_delay_max_s: float = 5.0,
                 sync_limit: int = 500, initial_history: int | None = None, auto_delivered: bool = True,
                 drop_incoming: DropIncoming | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.store: Store = store if store is not None else MemoryStore()
        self.rest = Rest(self.url, token)
        self.calls = Calls(self)
        self._emitter = Emitter()
        self._sync_limit = sync_limit
        self._auto_delivered = auto_delivered
        self._drop_incoming = drop_incoming
        self._initial_history = initial_history
        self._conn = Connection(
            self.url, token, namespaces=[CHAT, CALLS] if calls else [CHAT], on_event=self._on_socket_event,
            on_connected=self._on_namespace_connected, on_state=self._on_state, transports=transports,
            request_timeout_s=request_timeout_s, reconnection_delay_s=reconnection_delay_s,
            reconnection_delay_max_s=reconnection_delay_max_s,
        )
        self._me: User | None = None
        self._conversations: dict[int, Conversation] = {}
        self._messages: dict[int, dict[int, Message]] = {}
        self._cursors: dict[int, int] = {}
        self._presence: dict[int, Presence] = {}
        self._pending_reads: dict[int, int] = {}
        self._state: ConnectionState = {"state": "offline", "reason": "not connected"}
        self._lock = asyncio.Lock()  # state changes + their store write + their events, one at a time
        self._inbox: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
        self._inbox_task: asyncio.Task[None] | None = None
        self._outbox = Outbox(self._write, self._send_pending,
                              on_change=lambda: self._emitter.emit("pending", self._outbox.pending()),
                              on_failed=lambda item, error: self._emitter.emit("send_failed",
                                                                               {"pending": item, "error": error}))
        self._catch_up = CatchUp(self._sync_round, lambda: self._conn.online.is_set(),
                                 on_error=lambda error: self._emitter.emit("error", error))
        self._generation = 0  # /chat connects so far
        self._caught_up = 0  # the generation of the last finished full catch-up
        self._caught_up_changed = asyncio.Event()
        self._opened = False
        self._started = False
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        """Load the store (connect() does it too): pending sends and stored messages become visible,
        and send() may queue before the first connection."""
        if self._opened:
            return
        self._opened = True
        snapshot = await self.store.load()
        self._conversations = cast(dict[int, Conversation], snapshot.conversations)
        self._messages = cast(dict[int, dict[int, Message]], snapshot.messages)
        self._cursors = snapshot.cursors
        self._store_user = snapshot.user_id
        self._outbox.load(snapshot.outbox)
        self._inbox_task = asyncio.ensure_future(self._run_inbox())

    async def connect(self) -> None:
        """Connect and catch up: resolves once the socket is connected and a full sync after that
        connect has finished (`has_more` false). A server that cannot be reached is retried with
        backoff (wrap the call in `asyncio.timeout(...)` to give up); a refused token raises
        AuroraError("auth_invalid" | "auth_expired" | "auth_required")."""
        if self._closed:
            raise AuroraError("closed", "the client was closed")
        await self.open()
        if self._started:  # connect() again: the connection is already kept up
            await self._wait_caught_up()
            return
        if self._me is None:
            self._me = await self.me()
            if self._store_user is not None and self._store_user != self._me["id"]:
                raise AuroraError("invalid", f"this store belongs to user {self._store_user}, not {self._me['id']}")
            if self._store_user is None:
                await self._write(Batch(user_id=self._me["id"]))
                self._store_user = self._me["id"]
        self._started = True
        try:
            await self._conn.start()
        except BaseException:
            self._started = False
            raise
        await self._wait_caught_up()

    async def _wait_caught_up(self) -> None:
        while self._caught_up < self._generation or self._generation == 0:
            if self._conn.fatal is not None:
                raise self._conn.fatal
            if self._closed:
                raise AuroraError("closed", "the client was closed")
            self._caught_up_changed.clear()
            await self._caught_up_changed.wait()

    async def sync(self) -> None:
        """A full catch-up now (the SDK does this by itself after every connect and on `resync`)."""
        generation = self._generation
        self._catch_up.request(full=True)
        await self._catch_up.wait_idle()
        if self._caught_up < generation:
            raise AuroraError("disconnected", "the sync did not finish; it runs again on the next connect")

    async def close(self) -> None:
        """Disconnect and stop. Pending sends stay in the store; their send() calls raise `closed`.
        Again after that, it closes the REST session a later `client.rest` call opened."""
        if self._closed:
            await self.rest.close()
            return
        self._closed = True
        self._caught_up_changed.set()
        await self._conn.close()
        await self._outbox.close()
        await self._catch_up.close()
        if self._inbox_task is not None:
            self._inbox_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._inbox_task
        await self.rest.close()
        async with self._lock:
            await self.store.close()
        self._emitter.end()
        self.calls._end()

    async def __aenter__(self) -> AuroraClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- reading state ------------------------------------------------------------------------
    @property
    def user(self) -> User | None:
        """The signed-in user (known after connect())."""
        return self._me

    @property
    def user_id(self) -> int | None:
        return self._me["id"] if self._me else None

    @property
    def state(self) -> ConnectionState:
        return dict(self._state)  # type: ignore[return-value]

    @property
    def connected(self) -> bool:
        return self._conn.online.is_set()

    def conversations(self) -> list[Conversation]:
        """Every conversation, most recently active first."""
        items = [copy.deepcopy(c) for c in self._conversations.values()]
        return sorted(items, key=lambda c: (c.get("last_activity_at") or "", c["id"]), reverse=True)

    def conversation(self, conversation_id: int) -> Conversation | None:
        found = self._conversations.get(int(conversation_id))
        return copy.deepcopy(found) if found else None

    def messages(self, conversation_id: int) -> list[Message]:
        """The conversation's messages in their current state, ascending seq."""
        stored = self._messages.get(int(conversation_id), {})
        return [copy.deepcopy(stored[seq]) for seq in sorted(stored)]

    def pending(self, conversation_id: int | None = None) -> list[PendingSend]:
        """The outbox: sends not yet stored by the server, in typed order (of one conversation, if given)."""
        return self._outbox.pending(None if conversation_id is None else int(conversation_id))

    def presence(self, user_id: int) -> Presence | None:
        """What this client last heard about a user's presence (members' `online`, `presence` events)."""
        found = self._presence.get(int(user_id))
        return dict(found) if found else None  # type: ignore[return-value]

    def cursor(self, conversation_id: int) -> int:
        """The highest log seq applied for this conversation."""
        return self._cursors.get(int(conversation_id), 0)

    # -- events -------------------------------------------------------------------------------
    def on(self, name: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """`message` (a new or changed Message, current state, once per change, seq order per
        conversation), `conversation`, `conversation_removed`, `state` ({state, reason}), `pending`
        (the outbox changed), `send_failed` ({pending, error}), `receipt`, `typing`, `presence`,
        `error` (a background sync failed; it is retried). Returns a function that removes the callback."""
        return self._emitter.on(name, callback)

    def off(self, name: str, callback: Callable[..., Any]) -> None:
        self._emitter.off(name, callback)

    def once(self, name: str, callback: Callable[..., Any]) -> Callable[[], None]:
        return self._emitter.once(name, callback)

    def events(self, *names: str) -> AsyncIterator[Event]:
        """`async for event in client.events("message"): event.name, event.data, event.change`."""
        return self._emitter.events(*names)

    # -- writing ------------------------------------------------------------------------------
    async def send(self, conversation_id: int, body: str, reply_to: int | None = None,
                   attachments: list[Any] | None = None, client_id: str | None = None) -> Message:
        """Queue a message and wait until the server has stored it; returns the stored message.
        `reply_to` is the seq of the message this one answers; `attachments` are upload ids;
        `client_id` your own idempotency key (default: a fresh uuid4)."""
        if not self._opened:
            await self.open()
        item: PendingSend = {
            "client_id": client_id or uuid.uuid4().hex, "conversation_id": int(conversation_id), "body": body,
            "reply_to": reply_to, "attachments": list(attachments or []), "created_at": time.time(), "order": 0,
        }
        future = await self._outbox.add(item)
        return await future

    async def _send_pending(self, item: PendingSend) -> Message:
        payload: dict[str, Any] = {"conversation_id": item["conversation_id"], "body": item["body"],
                                   "client_id": item["client_id"]}
        if item.get("reply_to") is not None:
            payload["reply_to_seq"] = item["reply_to"]
        if item.get("attachments"):
            payload["attachments"] = item["attachments"]
        client_id = item["client_id"]
        ack = await self._request_retrying(CHAT, "send_message", payload,
                                           on_attempt=lambda: self._outbox.attempt(client_id),
                                           on_retry=lambda error: self._outbox.failed_attempt(client_id, error))
        message = cast(Message, ack["message"])
        await self._apply_entries([message])
        await self._until_stored(int(message["conversation_id"]), int(message["seq"]))
        return message

    async def _until_stored(self, conversation_id: int, seq: int) -> None:
        """An ack that arrived ahead of a gap (or of the conversation itself) waits for the catch-up that
        stores it, so a send leaves pending() only once it is in messages(). Bounded: offline, closed, or
        a conversation still unknown after two rounds (it is gone) ends the wait; the next connect's full
        sync stores what the server acked."""
        for _ in range(2):
            known = conversation_id in self._conversations
            if (known and self._cursors.get(conversation_id, 0) >= seq) or self._closed or not self.connected:
                return
            self._catch_up.request(full=not known, conversations={conversation_id} if known else None)
            await self._catch_up.wait_idle()

    async def edit(self, conversation_id: int, seq: int, body: str) -> Message:
        """Edit your message; returns its new state."""
        return await self._change("edit_message", {"conversation_id": int(conversation_id), "seq": int(seq),
                                                   "body": body, "client_id": uuid.uuid4().hex})

    async def delete(self, conversation_id: int, seq: int) -> Message:
        return await self._change("delete_message", {"conversation_id": int(conversation_id), "seq": int(seq)})

    async def react(self, conversation_id: int, seq: int, emoji: str) -> Message:
        return await self._change("react", {"conversation_id": int(conversation_id), "seq": int(seq),
                                            "emoji": emoji})

    async def unreact(self, conversation_id: int, seq: int, emoji: str) -> Message:
        return await self._change("unreact", {"conversation_id": int(conversation_id), "seq": int(seq),
                                              "emoji": emoji})

    async def _change(self, event: str, payload: dict[str, Any]) -> Message:
        """A change request, retried (same client_id for edits; deletes and reactions are idempotent)
        across reconnects; its entry is applied like a live one."""
        ack = await self._request_retrying(CHAT, event, payload)
        conversation_id, entry = payload["conversation_id"], ack.get("entry")
        if isinstance(entry, dict):
            await self._apply_entries([entry])
        local = self._messages.get(conversation_id, {}).get(payload["seq"])
        applied = not isinstance(entry, dict) or self.cursor(conversation_id) >= int(entry["seq"])
        if local is not None and applied:
            return copy.deepcopy(local)
        return cast(Message, ack.get("message") or local)

    async def mark_read(self, conversation_id: int, seq: int) -> Receipt | None:
        """Move your read pointer (only forward); returns your pointers. Offline, it is remembered and
        sent after the next catch-up (and None is returned)."""
        conversation_id, seq = int(conversation_id), int(seq)
        if not self.connected:
            self._pending_reads[conversation_id] = max(seq, self._pending_reads.get(conversation_id, 0))
            return None
        try:
            ack = await self._conn.request(CHAT, "mark_read", {"conversation_id": conversation_id, "seq": seq})
        except AuroraError as exc:
            if exc.code not in ("disconnected", "timeout"):
                raise
            self._pending_reads[conversation_id] = max(seq, self._pending_reads.get(conversation_id, 0))
            return None
        await self._own_pointers(ack)
        return {key: ack[key] for key in ("conversation_id", "user_id", "delivered_seq", "read_seq")}  # type: ignore[return-value]

    async def typing(self, conversation_id: int, typing: bool = True) -> None:
        """Tell the others you are typing (dropped while offline; repeats are throttled by the server)."""
        with contextlib.suppress(AuroraError):
            await self._conn.request(CHAT, "typing", {"conversation_id": int(conversation_id), "typing": typing})

    # -- REST helpers -------------------------------------------------------------------------
    @staticmethod
    async def register(url: str, username: str, password: str, display_name: str | None = None) -> Auth:
        return await register(url, username, password, display_name)

    @staticmethod
    async def login(url: str, username: str, password: str) -> Auth:
        return await login(url, username, password)

    async def me(self) -> User:
        """The signed-in user, from the server (GET /api/me)."""
        return await self.rest.me()

    async def search_users(self, query: str = "") -> list[User]:
        return await self.rest.search_users(query)

    async def add_members(self, conversation_id: int, user_ids: list[int]) -> Conversation:
        conversation = await self.rest.add_members(conversation_id, user_ids)
        await self._upsert_conversation(dict(conversation))
        return self.conversation(conversation["id"]) or conversation

    async def leave_conversation(self, conversation_id: int) -> None:
        """Leave a group (its messages leave this store)."""
        await self.rest.leave_conversation(conversation_id)
        await self._remove_conversations({int(conversation_id)})

    async def search(self, query: str, *, conversation_id: int | None = None, limit: int | None = None,
                     before: int | None = None) -> dict[str, Any]:
        """Full-text search (GET /api/search): {results: [{message, conversation_id, highlight}], next}."""
        return await self.rest.search(query, conversation_id=conversation_id, limit=limit, before=before)

    async def call_history(self, conversation_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        return await self.rest.calls(conversation_id, limit)

    async def ice_servers(self) -> list[dict[str, Any]]:
        return await self.rest.ice_servers()

    async def logout(self, everywhere: bool = False) -> None:
        """End this token's device session (the server closes its sockets), or with `everywhere=True`
        every session of the user; then close the client."""
        await self.rest.request("POST", "/api/auth/logout", json={"everywhere": True} if everywhere else None)
        await self.close()

    async def upload(self, file: str | os.PathLike[str] | bytes, filename: str | None = None) -> Upload:
        """Upload a file (a path, or bytes with a `filename`) to POST /api/uploads; returns {id, name,
        content_type, size, sha256, width?, height?}. Attach it: `send(cid, "", attachments=[upload["id"]])`.
        Errors: AuroraError too_large (413), invalid (400), unavailable (503); rate_limited is retried."""
        return await self.rest.upload(file, filename)

    async def refresh_attachments(self, conversation_id: int, *, only_missing: bool = False) -> list[Message]:
        """Fresh attachment URLs for a conversation's stored messages (they are signed per viewer and
        expire; the store never keeps them). Done by itself after each catch-up for messages without
        URLs; call it in a session longer than `attachment_url_ttl_s`. Returns the messages updated."""
        cid = int(conversation_id)
        wanted = [m for m in self.messages(cid) if m.get("attachments") and not m.get("deleted")
                  and (not only_missing or any(not a.get("url") for a in m["attachments"]))]
        if not wanted:
            return []
        seqs = {m["seq"] for m in wanted}
        fresh: list[Message] = []
        after, last = wanted[0]["seq"] - 1, wanted[-1]["seq"]
        while after < last:
            page = await self.rest.history(cid, after_seq=after, limit=200)
            fresh.extend(m for m in page["messages"] if m["seq"] in seqs)
            if not page["has_more"] or not page["messages"]:
                break
            after = page["messages"][-1]["seq"]
        updated: list[Message] = []
        async with self._lock:
            stored = self._messages.get(cid, {})
            for message in fresh:
                if message["seq"] in stored:
                    stored[message["seq"]]["attachments"] = copy.deepcopy(message.get("attachments", []))
                    updated.append(copy.deepcopy(stored[message["seq"]]))
        for message in updated:
            self._emitter.emit("message", message, "attachments")
        return updated

    async def _refresh_missing_urls(self) -> None:
        for conversation_id in list(self._conversations):
            stored = self._messages.get(conversation_id, {}).values()
            if not any(not m.get("deleted") and any(not a.get("url") for a in m.get("attachments") or ())
                       for m in stored):
                continue  # the common case: nothing to fetch, and no copy of the store made
            try:
                await self.refresh_attachments(conversation_id, only_missing=True)
            except AuroraError as exc:
                self._emitter.emit("error", exc)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Any other REST route with this token: the parsed JSON, or AuroraError."""
        return await self.rest.request(method, path, json=body)

    async def create_conversation(self, user_ids: list[int], title: str | None = None) -> Conversation:
        """Create a group, or get-or-create the direct conversation with one user (no title)."""
        conversation = await self.rest.create_conversation(user_ids, title)
        await self._upsert_conversation(conversation)
        return self.conversation(conversation["id"]) or conversation

    async def history(self, conversation_id: int, *, before_seq: int | None = None, after_seq: int | None = None,
                      limit: int | None = None) -> HistoryPage:
        """One page of REST history (current state), straight from the server."""
        return await self.rest.history(conversation_id, before_seq=before_seq, after_seq=after_seq, limit=limit)

    # -- requests -----------------------------------------------------------------------------
    async def _request_retrying(self, namespace: str, event: str, payload: dict[str, Any], *,
                                on_attempt: Callable[[], None] | None = None,
                                on_retry: Callable[[AuroraError], None] | None = None) -> dict[str, Any]:
        """Until answered: waits while offline, resends after a lost connection or a timeout, waits
        `retry_after_ms` on rate_limited, backs off on unavailable/internal."""
        backoff = 0.25
        internal_failures = 0
        while True:
            if self._closed:
                raise AuroraError("closed", "the client was closed")
            if self._conn.fatal is not None:
                raise self._conn.fatal
            if not self._conn.online.is_set():
                await self._wait_online()
                continue
            if on_attempt is not None:
                on_attempt()
            try:
                return cast(dict[str, Any], await self._conn.request(namespace, event, payload))
            except AuroraError as exc:
                if exc.retryable and on_retry is not None:
                    on_retry(exc)
                if exc.code in ("disconnected", "timeout"):
                    continue
                if exc.code == "rate_limited":
                    await asyncio.sleep((exc.retry_after_ms or 1000) / 1000)
                    continue
                if exc.code == "internal":
                    internal_failures += 1
                    if internal_failures > INTERNAL_RETRIES:
                        raise
                elif exc.code != "unavailable":
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _wait_online(self) -> None:
        closed = asyncio.ensure_future(self._closed_or_fatal())
        online = asyncio.ensure_future(self._conn.online.wait())
        try:
            await asyncio.wait({closed, online}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            online.cancel()

    async def _closed_or_fatal(self) -> None:
        while not self._closed and self._conn.fatal is None:
            self._caught_up_changed.clear()
            await self._caught_up_changed.wait()

    # -- connection callbacks -----------------------------------------------------------------
    def _on_state(self, state: ConnectionState) -> None:
        if state["state"] == "connected":
            return  # announced once caught up (_sync_round), not when the socket opens
        self._set_state(state)

    def _set_state(self, state: ConnectionState) -> None:
        self._state = state
        self._emitter.emit("state", dict(state))
        if state["state"] == "offline":
            self._caught_up_changed.set()  # wake connect() and waiting requests

    def _on_namespace_connected(self, namespace: str) -> None:
        if namespace == CHAT:
            self._generation += 1
            self._catch_up.request(full=True)
        elif namespace == CALLS:
            self.calls._reconnected()

    def _on_socket_event(self, namespace: str, event: str, data: Any) -> None:
        if self._drop_incoming is not None and self._drop_incoming(namespace, event, data):
            return
        self._inbox.put_nowait((namespace, event, data))

    async def _run_inbox(self) -> None:
        while True:
            namespace, event, data = await self._inbox.get()
            try:
                if namespace == CALLS:
                    self.calls._handle(event, data)
                else:
                    await self._handle_chat_event(event, data)
            except Exception:
                log.exception("handling %s %s failed", namespace, event)

    async def _handle_chat_event(self, event: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if event == "new_message":
            await self._apply_entries([data])
        elif event == "message_changed":
            entry = data.get("entry") if isinstance(data.get("entry"), dict) else data
            await self._apply_entries([entry])
        elif event == "conversation_created":
            await self._upsert_conversation(data["conversation"])
            self._catch_up.request(conversations={data["conversation"]["id"]})
        elif event == "member_added":
            await self._member_added(data)
        elif event == "member_removed":
            await self._member_removed(data)
        elif event == "receipt":
            if data.get("user_id") == self.user_id:
                await self._own_pointers(data)
            self._emitter.emit("receipt", data)
        elif event == "typing":
            self._emitter.emit("typing", data)
        elif event == "presence":
            self._presence[int(data["user_id"])] = {"user_id": int(data["user_id"]), "online": bool(data["online"]),
                                                    "last_seen_at": data.get("last_seen_at")}
            self._emitter.emit("presence", data)
        elif event == "resync":
            log.info("server asked for a resync: %s", data.get("reason"))
            self._catch_up.request(full=True)

    # -- applying the log ---------------------------------------------------------------------
    async def _write(self, batch: Batch) -> None:
        if not batch.empty():
            await self.store.write(_without_urls(batch))

    async def _apply_entries(self, entries: list[dict[str, Any]]) -> None:
        """Apply log entries in order; write the batch; then tell listeners, send `delivered`, and
        sync the conversations where an entry skipped ahead."""
        async with self._lock:
            batch = Batch()
            events: list[tuple[str, Any, str | None]] = []
            gaps: set[int] = set()
            unknown: set[int] = set()
            delivered: dict[int, int] = {}
            touched: set[int] = set()
            for entry in entries:
                conversation_id = int(entry["conversation_id"])
                if conversation_id not in self._conversations:
                    unknown.add(conversation_id)
                    continue
                seq = int(entry["seq"])
                have = self._cursors.get(conversation_id, 0)
                if seq <= have:
                    continue  # a duplicate (live and sync overlap, a retried send)
                if seq > have + 1:
                    gaps.add(conversation_id)  # something before it is missing: sync returns it in order
                    continue
                self._cursors[conversation_id] = seq
                batch.cursors[conversation_id] = seq
                touched.add(conversation_id)
                stored = self._messages.setdefault(conversation_id, {})
                if is_change(entry):
                    for changed in apply_change(stored, entry, self.user_id):
                        batch.messages.append(changed)
                        events.append(("message", copy.deepcopy(changed), entry["kind"]))
                    continue
                message = cast(Message, as_message(entry, self.user_id))
                stored[seq] = message
                batch.messages.append(message)
                events.append(("message", copy.deepcopy(message), "new"))
                if message["sender_id"] == self.user_id:
                    client_id = message.get("client_id")
                    if client_id and self._outbox.resolved(client_id, message):
                        batch.outbox_removed.append(client_id)
                    self._move_own_pointers(conversation_id, seq)
                else:
                    delivered[conversation_id] = seq
            for conversation_id in touched:
                batch.conversations.append(self._refresh_conversation(conversation_id))
            await self._write(batch)
            for name, data, change in events:
                self._emitter.emit(name, data, change)
            for conversation in batch.conversations:
                self._emitter.emit("conversation", copy.deepcopy(conversation))
        if self._auto_delivered:
            for conversation_id, seq in delivered.items():
                await self._conn.emit(CHAT, "delivered", {"conversation_id": conversation_id, "seq": seq})
        if gaps:
            self._catch_up.request(conversations=gaps)
        if unknown:
            self._catch_up.request(full=True)

    def _move_own_pointers(self, conversation_id: int, seq: int) -> None:
        """Sending moves the sender's own pointers to that message (docs/protocol.md)."""
        conversation = self._conversations[conversation_id]
        conversation["read_seq"] = max(conversation.get("read_seq", 0), seq)
        conversation["delivered_seq"] = max(conversation.get("delivered_seq", 0), seq)

    def _refresh_conversation(self, conversation_id: int) -> Conversation:
        """last_seq, last_message and unread_count from what the store holds."""
        conversation = self._conversations[conversation_id]
        stored = self._messages.get(conversation_id, {})
        conversation["last_seq"] = max(conversation.get("last_seq", 0), self._cursors.get(conversation_id, 0))
        if stored:
            last = stored[max(stored)]
            conversation["last_message"] = copy.deepcopy(last)
            if (conversation.get("last_activity_at") or "") < last["created_at"]:
                conversation["last_activity_at"] = last["created_at"]
        read_seq = conversation.get("read_seq", 0)
        conversation["unread_count"] = sum(1 for seq, m in stored.items()
                                           if seq > read_seq and m["sender_id"] != self.user_id)
        return conversation

    async def _own_pointers(self, pointers: dict[str, Any]) -> None:
        async with self._lock:
            conversation = self._conversations.get(int(pointers["conversation_id"]))
            if conversation is None:
                return
            for key in ("read_seq", "delivered_seq"):
                if isinstance(pointers.get(key), int):
                    conversation[key] = max(conversation.get(key, 0), pointers[key])  # type: ignore[literal-required]
            refreshed = self._refresh_conversation(conversation["id"])
            await self._write(Batch(conversations=[refreshed]))
            self._emitter.emit("conversation", copy.deepcopy(refreshed))

    async def _upsert_conversation(self, incoming: dict[str, Any]) -> None:
        """A conversation's server fields (members, title, pointers) over what the client computed."""
        async with self._lock:
            conversation_id = int(incoming["id"])
            known = self._conversations.get(conversation_id)
            known_before = copy.deepcopy(known)
            merged = dict(known or {})
            merged.update({k: v for k, v in incoming.items() if k not in ("last_message", "unread_count")})
            for key in ("read_seq", "delivered_seq"):
                if known and key in known:
                    merged[key] = max(known[key], incoming.get(key, 0))  # type: ignore[literal-required]
            if known:
                merged["last_seq"] = max(known.get("last_seq", 0), incoming.get("last_seq", 0))
            self._conversations[conversation_id] = cast(Conversation, merged)
            for member in incoming.get("members", []):
                if "online" in member:
                    self._presence[member["id"]] = {"user_id": member["id"], "online": bool(member["online"]),
                                                    "last_seen_at": member.get("last_seen_at")}
            refreshed = self._refresh_conversation(conversation_id)
            if refreshed != known_before:
                await self._write(Batch(conversations=[refreshed]))
                self._emitter.emit("conversation", copy.deepcopy(refreshed))

    async def _member_added(self, data: dict[str, Any]) -> None:
        conversation = data.get("conversation")
        if isinstance(conversation, dict):
            await self._upsert_conversation(conversation)
        if data.get("user", {}).get("id") == self.user_id:
            self._catch_up.request(conversations={int(data["conversation_id"])})

    async def _member_removed(self, data: dict[str, Any]) -> None:
        conversation_id = int(data["conversation_id"])
        if data.get("user", {}).get("id") == self.user_id:
            await self._remove_conversations({conversation_id})
            return
        async with self._lock:
            conversation = self._conversations.get(conversation_id)
            if conversation is None:
                return
            conversation["members"] = [m for m in conversation.get("members", []) if m["id"] != data["user"]["id"]]
            await self._write(Batch(conversations=[conversation]))
            self._emitter.emit("conversation", copy.deepcopy(conversation))

    async def _remove_conversations(self, conversation_ids: set[int]) -> None:
        async with self._lock:
            gone = [cid for cid in conversation_ids if cid in self._conversations or cid in self._cursors]
            for conversation_id in gone:
                self._conversations.pop(conversation_id, None)
                self._messages.pop(conversation_id, None)
                self._cursors.pop(conversation_id, None)
            await self._write(Batch(removed_conversations=gone))
            for conversation_id in gone:
                self._emitter.emit("conversation_removed", {"conversation_id": conversation_id})

    # -- catch-up -----------------------------------------------------------------------------
    async def _sync_round(self, full: bool, conversations: set[int]) -> None:
        """Sync until every targeted cursor reached the conversation's last_seq. A full round first
        refreshes the conversation list (REST) and drops conversations the user is no longer in."""
        generation = self._generation
        if full:
            for conversation in await self.rest.conversations():
                await self._upsert_conversation(dict(conversation))
            answer = await self._conn.request(CHAT, "sync", {})
        else:
            answer = None
        targets: set[int] | None = None if full else set(conversations)
        while True:
            if answer is not None:
                last_seqs = {int(c["id"]): int(c["last_seq"]) for c in answer["conversations"]}
                if full:
                    stale = set(self._cursors) | set(self._conversations)
                    await self._remove_conversations(stale - set(last_seqs))
                for conversation_id in set(last_seqs) - set(self._conversations):
                    await self._upsert_conversation(dict(await self.rest.conversation(conversation_id)))
                scope = set(last_seqs) if targets is None else targets & set(last_seqs)
                self._start_cursors(last_seqs)
                wanted = {cid: self.cursor(cid) for cid in scope if self.cursor(cid) < last_seqs[cid]}
            else:
                wanted = {cid: self.cursor(cid) for cid in conversations if cid in self._conversations}
            if not wanted:
                break
            try:
                answer = await self._conn.request(CHAT, "sync", {"cursors": {str(k): v for k, v in wanted.items()},
                                                                 "limit": self._sync_limit})
            except AuroraError as exc:
                if exc.code == "not_found":  # a conversation we were removed from: start over
                    self._catch_up.request(full=True)
                    return
                raise
            await self._apply_entries(answer["messages"])
            # Entries of known conversations are applied or were already (live events overlap);
            # one still beyond its cursor would mean the loop cannot advance: stop rather than spin.
            if any(self._cursors.get(int(e["conversation_id"]), 0) < int(e["seq"]) for e in answer["messages"]
                   if int(e["conversation_id"]) in self._conversations):
                log.warning("sync made no progress; stopping this round")
                break
        if full:
            self._caught_up = max(self._caught_up, generation)
            self._caught_up_changed.set()
            if generation == self._generation and self.connected and self._state["state"] != "connected":
                self._set_state({"state": "connected", "reason": "caught_up"})
            await self._flush_pending_reads()
            await self._refresh_missing_urls()  # messages loaded from the store carry no URLs

    def _start_cursors(self, last_seqs: dict[int, int]) -> None:
        """A conversation this store has never seen starts `initial_history` entries before its end."""
        if self._initial_history is None:
            return
        for conversation_id, last_seq in last_seqs.items():
            if conversation_id not in self._cursors and not self._messages.get(conversation_id):
                self._cursors[conversation_id] = max(0, last_seq - self._initial_history)

    async def _flush_pending_reads(self) -> None:
        reads, self._pending_reads = self._pending_reads, {}
        for conversation_id, seq in reads.items():
            if conversation_id in self._conversations:
                with contextlib.suppress(AuroraError):
                    await self.mark_read(conversation_id, seq)


def _strip_urls(message: dict[str, Any]) -> dict[str, Any]:
    if not message.get("attachments"):
        return message
    return {**message, "attachments": [{k: v for k, v in a.items() if k not in ("url", "thumbnail_url")}
                                       for a in message["attachments"]]}


def _without_urls(batch: Batch) -> Batch:
    """What the store keeps: attachments without their URLs (signed for this viewer, they expire)."""
    if not any(m.get("attachments") for m in batch.messages) and \
            not any((c.get("last_message") or {}).get("attachments") for c in batch.conversations):
        return batch
    conversations = [cast(Conversation, {**c, "last_message": _strip_urls(c["last_message"])})
                     if c.get("last_message") else c for c in batch.conversations]
    return dataclasses.replace(batch, messages=[_strip_urls(m) for m in batch.messages],
                               conversations=conversations)
