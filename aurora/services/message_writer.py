"""One writer task that appends log entries (messages and changes) in batches (group commit) and
broadcasts them in order.

Senders enqueue synchronously (so a client's entries keep the order it sent them) and await their
result. While one batch is being committed the next one gathers, so under load many entries share
one transaction and one fsync, and an idle server still stores a lone entry at once. An entry is
acknowledged and broadcast only after its transaction has committed; broadcasts go out in commit
order, which is seq order within every conversation.

On PostgreSQL the writer runs several lanes side by side (`writer_lanes`): a conversation always
takes the same lane, so its entries still commit and broadcast in seq order, while different
conversations no longer wait for each other's round trips. At everyday load a batch of one costs a
round trip or more, so a single lane saturates near 1,000 messages/s and latency grows with its
queue; lanes let PostgreSQL commit them concurrently (its own group commit). Lanes never share a
conversation's rows, so they cannot deadlock each other. SQLite has one writer thread: one lane.

The queue is bounded: when it is full, submit() refuses at once with `unavailable` instead of letting
memory and latency grow without limit. The task is supervised: whatever goes wrong with one batch,
that batch's senders are answered, and the task goes on with the next batch (it is restarted if it
ever ends other than by stop()).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from aurora.storage.lone_message import is_lone_candidate, try_lone_message
from aurora.storage.lone_sqlite import append_lone_sqlite
from aurora.storage.messages import AppendResult, NewMessage, append_each_txn, append_entries_txn
from aurora.storage.search_backlog import index_pending

log = logging.getLogger(__name__)

MAX_BATCH = 512
# Up to this many plain messages in a batch take the one-statement path each (PostgreSQL): at
# everyday load that beats the general path's round trips; larger batches amortise those instead.
LONE_BATCH_MAX = 4
DEFAULT_QUEUE_MAX = 10000
# SQLite: how long after a stored message the full-text index takes what the writer's transactions
# left for a batch (storage/search_backlog.py); a search takes it at once.
SEARCH_CATCH_UP_S = 0.5

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


class _Lane:
    """One queue and the task that drains it, batch after batch."""

    def __init__(self, index: int, queue_max: int) -> None:
        self.index = index
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_max)
        self.task: asyncio.Task[None] | None = None


class MessageWriter:
    def __init__(self, storage: Storage, on_stored: OnStored, *, rules: LogRules | None = None,
                 queue_max: int = DEFAULT_QUEUE_MAX, append_batch: AppendFn = append_entries_txn,
                 append_each: AppendFn = append_each_txn, metrics: Metrics | None = None,
                 lone_statement: bool | None = None, lanes: int = 1) -> None:
        self._storage = storage
        self._metrics = metrics
        self._on_stored = on_stored
        self._rules = rules or LogRules()
        self._append_batch = append_batch
        self._append_each = append_each
        # A batch of plain messages, one statement each (PostgreSQL: storage/lone_message.py), or a batch
        # of one in three statements (SQLite: storage/lone_sqlite.py).
        # (Off when a test hands in its own batch function: that function is what it exercises.)
        if lone_statement is None:
            lone_statement = append_batch is append_entries_txn
        self._lone_statement = lone_statement
        self.lone_statements = 0  # how many messages took that path (tests check it is taken)
        count = 1 if storage.is_sqlite else max(1, lanes)
        # The bound is the whole writer's: each lane holds its share (at least one entry).
        self._lanes = [_Lane(i, max(1, queue_max // count)) for i in range(count)]
        self._stopping = False
        self._started = False
        self.restarts = 0
        self._search_catch_up: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return sum(lane.queue.qsize() for lane in self._lanes)

    def start(self) -> None:
        self._stopping = False
        self._started = True
        for lane in self._lanes:
            self._spawn(lane)

    def _spawn(self, lane: _Lane) -> None:
        lane.task = asyncio.create_task(self._run(lane), name=f"aurora-message-writer-{lane.index}")
        lane.task.add_done_callback(lambda task: self._on_task_done(lane, task))

    def _on_task_done(self, lane: _Lane, task: asyncio.Task[None]) -> None:
        if self._stopping or task is not lane.task:
            return
        # The loop only ends by stop(); anything else is a bug: say so and carry on with a new task.
        if task.cancelled():
            log.error("the message writer task was cancelled; restarting it")
        else:
            log.error("the message writer task ended; restarting it", exc_info=task.exception())
        self.restarts += 1
        self._spawn(lane)

    async def stop(self) -> None:
        """Finish what was already queued, then stop."""
        if not self._started:
            return
        for lane in self._lanes:
            await lane.queue.join()
        self._stopping = True
        self._started = False
        for lane in self._lanes:
            if lane.task is not None:
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.task
                lane.task = None
        if self._search_catch_up is not None:
            self._search_catch_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._search_catch_up
            self._search_catch_up = None
        await self._index_search_quietly()  # a clean stop leaves the index complete

    async def index_search(self) -> None:
        """Bring SQLite's full-text index up to every stored message (nothing to do on PostgreSQL,
        whose index is part of each commit). Search calls it first, so it finds every message
        acknowledged before it."""
        if self._storage.is_sqlite:
            await self._storage.write(index_pending)

    async def _index_search_quietly(self) -> None:
        """The catch-up in the background and at stop: it never raises (a search takes the backlog anyway)."""
        try:
            await self.index_search()
        except AuroraError as exc:  # an outage, named and logged by storage: the next catch-up retries
            log.warning("the full-text index could not catch up: %s", exc.message)
        except Exception:
            log.exception("the full-text index could not catch up")

    def _search_later(self) -> None:
        if self._storage.is_sqlite and (self._search_catch_up is None or self._search_catch_up.done()):
            self._search_catch_up = asyncio.create_task(self._catch_up_search(), name="aurora-search-catch-up")

    async def _catch_up_search(self) -> None:
        await asyncio.sleep(SEARCH_CATCH_UP_S)
        await self._index_search_quietly()

    def submit(self, item: NewMessage, context: Any = None) -> asyncio.Future[AppendResult]:
        """Queue an entry now (no await, so order is kept); the future resolves after commit."""
        if not self._started or self._stopping:
            raise AuroraError("unavailable", "the server is shutting down")
        lane = self._lanes[item.conversation_id % len(self._lanes)]
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        try:
            lane.queue.put_nowait(_Pending(item, context, future))
        except asyncio.QueueFull:
            raise AuroraError("unavailable", "the server is busy storing messages; try again shortly") from None
        return future

    async def _run(self, lane: _Lane) -> None:
        queue = lane.queue
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._store(batch)
                self._search_later()
            except asyncio.CancelledError:
                # The commit may or may not have happened: retrying is safe (client ids, idempotent changes).
                self._answer_all(batch, AuroraError("unavailable", "the server is shutting down; retry"))
                raise
            except Exception:
                log.exception("the message writer failed on a batch of %d entries", len(batch))
                self._answer_all(batch, _stored_error())
            finally:
                for _ in batch:
                    queue.task_done()

    @staticmethod
    def _answer_all(batch: list[_Pending], error: AuroraError) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(error)

    async def _lone(self, item: NewMessage) -> tuple[AppendResult | None, bool]:
        """The one-statement path: (its result or None, whether it may have committed unseen)."""
        if self._storage.is_sqlite:
            try:
                result = await self._storage.write_sqlite(append_lone_sqlite, item)
            except AuroraError as exc:  # an outage (storage named it and logged it): the general path would too
                return AppendResult(error=exc), False
            except Exception as exc:  # rolled back: the general path gives the precise answer
                log.debug("the lone-message path failed (%s); taking the general one", exc.__class__.__name__)
                return None, False
            if result is not None:
                self.lone_statements += 1
            return result, False
        postgres = self._storage.postgres
        if postgres is None or not postgres.usable:
            return None, False
        result, unheard = await try_lone_message(postgres, item)
        if result is not None:
            self._storage.wrote()
            self.lone_statements += 1
        return result, unheard

    def _lone_fits(self, items: list[NewMessage]) -> bool:
        # On SQLite only a batch of one: there each statement is a commit of its own (an fsync), and
        # the general path stores a larger batch in one.
        most = 1 if self._storage.is_sqlite else LONE_BATCH_MAX
        return (self._lone_statement and len(items) <= most
                and all(is_lone_candidate(item) for item in items))

    async def _store(self, batch: list[_Pending]) -> None:
        items = [p.item for p in batch]
        started = time.perf_counter()
        if self._lone_fits(items):
            # A few plain messages: one statement each, each answered and broadcast as it commits
            # (cheaper than the general path's round trips until batches grow).
            for pending in batch:
                result, unheard = await self._lone(pending.item)
                if result is None:
                    (result,) = await self._general([pending.item])
                    if unheard and result.duplicate and pending.item.client_id is not None:
                        # The lost statement did commit: this is its first answer; its broadcast is due.
                        result = dataclasses.replace(result, duplicate=False)
                await self._finish(pending, result)
            self._count(batch, started)
            return
        results = await self._general(items)
        if len(results) != len(batch):
            raise RuntimeError(f"storing {len(batch)} entries returned {len(results)} results")
        for pending, result in zip(batch, results, strict=True):
            await self._finish(pending, result)
        self._count(batch, started)

    async def _general(self, items: list[NewMessage]) -> list[AppendResult]:
        """The general path: the batch in one transaction; after a failure, entry by entry."""
        try:
            return await self._storage.write(self._append_batch, items, self._rules)
        except AuroraError as exc:
            # Storage names outages (database unreachable, disk full) `unavailable`: no item is at
            # fault and one by one would fail the same way. The client retries with its client_id.
            log.warning("a batch of %d entries could not be stored: %s", len(items), exc.message)
            return [AppendResult(error=exc) for _ in items]
        except Exception as exc:
            # Rolled back whole; one item may be at fault (a value the database refuses, a client_id
            # another process stored first): store each on its own so the others still commit.
            log.warning("a batch of %d entries failed as a whole (%s); storing them one by one",
                        len(items), exc.__class__.__name__)
            try:
                return await self._storage.write(self._append_each, items, self._rules)
            except Exception as again:
                error = client_error(again, log, "committing a batch of %d entries", len(items))
                return [AppendResult(error=error) for _ in items]

    async def _finish(self, pending: _Pending, result: AppendResult) -> None:
        """Broadcast a newly stored entry (in commit order), then answer its sender."""
        if result.error is None and not result.duplicate:
            if self._metrics is not None and result.message is not None:
                self._metrics.stored.inc(result.message["kind"])
            try:
                await self._on_stored(result, pending.context)
            except Exception:  # the entry is stored; a failed push is caught up by sync
                log.exception("broadcasting entry %s failed", result.message and result.message["id"])
        if not pending.future.done():
            if result.error is not None:
                pending.future.set_exception(result.error)
            else:
                pending.future.set_result(result)

    def _count(self, batch: list[_Pending], started: float) -> None:
        if self._metrics is not None:
            self._metrics.batch_done(len(batch), time.perf_counter() - started, self.queued)
