"""One writer task that stores messages in batches (group commit) and broadcasts them in order.

Senders enqueue synchronously (so a client's messages keep the order it sent
them) and await their result. While one batch is being committed the next one
gathers, so under load many messages share one transaction and one fsync, and
an idle server still stores a lone message at once. A message is acknowledged
and broadcast only after its transaction has committed; broadcasts go out in
commit order, which is seq order within every conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aurora.errors import AuroraError
from aurora.storage.database import Storage
from aurora.storage.messages import AppendResult, NewMessage, append_each_txn, append_messages_txn

log = logging.getLogger(__name__)

MAX_BATCH = 512

# Called once per newly stored message, in commit order, before the sender is answered.
OnStored = Callable[[AppendResult, Any], Awaitable[None]]


@dataclass
class _Pending:
    item: NewMessage
    context: Any
    future: asyncio.Future[AppendResult]


class MessageWriter:
    def __init__(self, storage: Storage, on_stored: OnStored) -> None:
        self._storage = storage
        self._on_stored = on_stored
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aurora-message-writer")

    async def stop(self) -> None:
        """Finish what was already queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def submit(self, item: NewMessage, context: Any = None) -> asyncio.Future[AppendResult]:
        """Queue a message now (no await, so order is kept); the future resolves after commit."""
        if self._task is None or self._task.done():
            raise AuroraError("unavailable", "the server is shutting down")
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(item, context, future))
        return future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._store(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _store(self, batch: list[_Pending]) -> None:
        items = [p.item for p in batch]
        try:
            results = await self._storage.write(append_messages_txn, items)
        except Exception as exc:
            # Rolled back whole; one item may be at fault (a value the database refuses, a client_id
            # another process stored first): store each on its own so the others still commit.
            log.warning("a batch of %d messages failed as a whole (%s); storing them one by one",
                        len(batch), exc.__class__.__name__)
            try:
                results = await self._storage.write(append_each_txn, items)
            except Exception:
                log.exception("committing a batch of %d messages failed", len(batch))
                results = None
        if results is None:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(AuroraError("internal", "message could not be stored"))
            return
        for pending, result in zip(batch, results, strict=True):
            if result.error is None and not result.duplicate:
                try:
                    await self._on_stored(result, pending.context)
                except Exception:  # the message is stored; a failed push is caught up by sync
                    log.exception("broadcasting message %s failed", result.message and result.message["id"])
            if not pending.future.done():
                if result.error is not None:
                    pending.future.set_exception(result.error)
                else:
                    pending.future.set_result(result)
