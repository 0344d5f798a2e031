"""Where a client keeps what must outlive a connection: messages in their current state, the cursor of
every conversation, the conversations, and the outbox. The client holds the working copy in memory
and writes every change through `Store.write` (one batch, atomic in a persistent store) before it
tells anyone about it, so what the store holds is always a state the client has shown.

`MemoryStore` (the default) outlives reconnects and can be handed to a new client in the same
process; `SQLiteStore` (aurora_client.sqlite_store) outlives the process.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Snapshot:
    """Everything a store holds, as loaded when a client opens it."""

    user_id: int | None = None
    conversations: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)  # conversation -> seq -> message
    cursors: dict[int, int] = field(default_factory=dict)  # conversation -> highest log seq applied
    outbox: list[dict[str, Any]] = field(default_factory=list)  # in typed order


@dataclass
class Batch:
    """One atomic change to a store."""

    user_id: int | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)  # upserted by (conversation_id, seq)
    cursors: dict[int, int] = field(default_factory=dict)
    conversations: list[dict[str, Any]] = field(default_factory=list)  # upserted by id
    removed_conversations: list[int] = field(default_factory=list)  # with their messages and cursor
    outbox_added: list[dict[str, Any]] = field(default_factory=list)
    outbox_removed: list[str] = field(default_factory=list)  # client ids

    def empty(self) -> bool:
        return not (self.user_id is not None or self.messages or self.cursors or self.conversations
                    or self.removed_conversations or self.outbox_added or self.outbox_removed)


class Store(Protocol):
    async def load(self) -> Snapshot:
        """What the store holds (an empty Snapshot the first time)."""
        ...

    async def write(self, batch: Batch) -> None:
        """Apply one batch, all or nothing; durable when it returns, for a persistent store."""
        ...

    async def close(self) -> None:
        ...


def apply_batch(snapshot: Snapshot, batch: Batch) -> None:
    """Apply a batch to a Snapshot in place (what MemoryStore does, and what a store's load must match)."""
    if batch.user_id is not None:
        snapshot.user_id = batch.user_id
    for conversation_id in batch.removed_conversations:
        snapshot.conversations.pop(conversation_id, None)
        snapshot.messages.pop(conversation_id, None)
        snapshot.cursors.pop(conversation_id, None)
    for conversation in batch.conversations:
        snapshot.conversations[conversation["id"]] = copy.deepcopy(conversation)
    for message in batch.messages:
        snapshot.messages.setdefault(message["conversation_id"], {})[message["seq"]] = copy.deepcopy(message)
    snapshot.cursors.update(batch.cursors)
    removed = set(batch.outbox_removed)
    snapshot.outbox = [item for item in snapshot.outbox if item["client_id"] not in removed]
    known = {item["client_id"] for item in snapshot.outbox}
    snapshot.outbox.extend(copy.deepcopy(item) for item in batch.outbox_added
                           if item["client_id"] not in known and item["client_id"] not in removed)


class MemoryStore:
    """Keeps everything in this process: give the same instance to a new AuroraClient to resume."""

    def __init__(self) -> None:
        self._snapshot = Snapshot()

    async def load(self) -> Snapshot:
        return copy.deepcopy(self._snapshot)

    async def write(self, batch: Batch) -> None:
        apply_batch(self._snapshot, batch)

    async def close(self) -> None:
        return None
