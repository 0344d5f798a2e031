"""One writer task that appends log entries (messages and changes) in batches (group commit) and
broadcasts them in order.

Senders enqueue synchronously (so a client's entries keep the order it sent them) and await their
result. While one batch is being committed the next one gathers, so under load many entries share
one transaction and one fsync, and an idle server still stores a lone entry at once. An entry is
acknowledged and broadcast only after its transaction has committed; broadcasts go out in commit
order, which is seq order within every conversation.

The queue is bounded: when it is full, submit() refuses at once with `unavailable` instead of letting
memory and latency grow without limit. The task is supervised: whatever goes wrong with one batch,
that batch's senders are answered, and the task goes on with the next batch (it is restarted if it
ever ends other than by stop()).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aurora.errors import AuroraError
from aurora.outages import client_error
from aurora.services.ops.metrics import Metrics
from aurora.storage.database import Storage
from aurora.storage.log_rules import LogRules
from aurora.storage.messages import AppendResult, NewMessage, append_each_txn, append_entries_txn

log = logging.getLogger(__name__)

MAX_BATCH = 512
DEFAULT_QUEUE_MAX = 10000

# Called once per newly stored entry, in commit order, before the sender is answered.
OnStored = Callable[[AppendResult, Any], Awaitable[None]]
# The storage functions: a batch at once, and item by item after the batch failed.
AppendFn = Callable[[list[NewMessage], LogRules], list[AppendResult]]


def _stored_error() -> AuroraError:
    return AuroraError("internal", "message could not be stored")


@dataclass
class _Pending:
    item: NewMessage
    context: Any
    future: asyncio.Future[AppendResult]


class MessageWriter:
    def __init__(self, storage: Storage, on_stored: OnStored, *, rules: LogRules | None = None,
                 queue_max: int = DEFAULT_QUEUE_MAX, append_batch: AppendFn = append_entries_txn,
                 append_each: AppendFn = append_each_txn, metrics: Metrics | None = None) -> None:
        self._storage = storage
        self._metrics = metrics
        self._on_stored = on_stored
        self._rules = rules or LogRules()
        self._append_batch = append_batch
        self._append_each = append_each
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_max)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._stopping = False
        self._spawn()

    def _spawn(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aurora-message-writer")
        self._task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task is not self._task:
            return
        # The loop only ends by stop(); anything else is a bug: say so and carry on with a new task.
        if task.cancelled():
            log.error("the message writer task was cancelled; restarting it")
        else:
            log.error("the message writer task ended; restarting it", exc_info=task.exception())
        self.restarts += 1
        self._spawn()

    async def stop(self) -> None:
        """Finish what was already queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def submit(self, item: NewMessage, context: Any = None) -> asyncio.Future[AppendResult]:
        """Queue an entry now (no await, so order is kept); the future resolves after commit."""
        if self._task is None or self._stopping:
            raise AuroraError("unavailable", "the server is shutting down")
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(item, context, future))
        except asyncio.QueueFull:
            raise AuroraError("unavailable", "the server is busy storing messages; try again shortly") from None
        return future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._store(batch)
            except asyncio.CancelledError:
                # The commit may or may not have happened: retrying is safe (client ids, idempotent changes).
                self._answer_all(batch, AuroraError("unavailable", "the server is shutting down; retry"))
                raise
            except Exception:
                log.exception("the message writer failed on a batch of %d entries", len(batch))
                self._answer_all(batch, _stored_error())
            finally:
                for _ in batch:
                    self._queue.task_done()

    @staticmethod
    def _answer_all(batch: list[_Pending], error: AuroraError) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(error)

    async def _store(self, batch: list[_Pending]) -> None:
        items = [p.item for p in batch]
        metrics = self._metrics
        started = time.perf_counter()
        try:
            results = await self._storage.write(self._append_batch, items, self._rules)
        except AuroraError as exc:
            # Storage names outages (database unreachable, disk full) `unavailable`: no item is at
            # fault and one by one would fail the same way. The client retries with its client_id.
            log.warning("a batch of %d entries could not be stored: %s", len(batch), exc.message)
            self._answer_all(batch, exc)
            return
        except Exception as exc:
            # Rolled back whole; one item may be at fault (a value the database refuses, a client_id
            # another process stored first): store each on its own so the others still commit.
            log.warning("a batch of %d entries failed as a whole (%s); storing them one by one",
                        len(batch), exc.__class__.__name__)
            try:
                results = await self._storage.write(self._append_each, items, self._rules)
            except Exception as again:
                self._answer_all(batch, client_error(again, log, "committing a batch of %d entries", len(batch)))
                return
        if len(results) != len(batch):
            raise RuntimeError(f"storing {len(batch)} entries returned {len(results)} results")
        if metrics is not None:
            metrics.batch_done(len(batch), time.perf_counter() - started, self._queue.qsize())
            for result in results:
                if result.error is None and not result.duplicate and result.message is not None:
                    metrics.stored.inc(result.message["kind"])
        for pending, result in zip(batch, results, strict=True):
            if result.error is None and not result.duplicate:
                try:
                    await self._on_stored(result, pending.context)
                except Exception:  # the entry is stored; a failed push is caught up by sync
                    log.exception("broadcasting entry %s failed", result.message and result.message["id"])
            if not pending.future.done():
                if result.error is not None:
                    pending.future.set_exception(result.error)
                else:
                    pending.future.set_result(result)
