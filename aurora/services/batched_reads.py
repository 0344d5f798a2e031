"""Concurrent reads of one kind coalesced into one query (what a reconnect storm does to connect).

Every /chat connect reads the user and session behind its token, the user's conversation ids (its
rooms) and, for a user's first socket, their contacts (presence). One at a time that is three
thread hops and four queries per connect. A BatchedRead gathers the keys asked for while no batch is
running (the current loop tick) or while one is running (its round trip), and reads them all in one
query, group-commit style: at idle a lone connect waits one loop tick, in a storm hundreds share a
query.

Nothing is cached: each batch's query starts after every request in it was made, so it sees at least
what a read of its own would have seen (a conversation created before the request is in the result;
one created after reaches the socket through its user room, as before). So no invalidation is needed,
and the membership and session tests hold unchanged.

With write=True a batch runs as one write transaction instead (storage.write): the last_seen stamps
of a storm of disconnects are one UPDATE and one commit, not one commit (an fsync on SQLite) each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from aurora.storage.database import Storage

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_MAX_BATCH = 500


class BatchedRead(Generic[K, V]):
    def __init__(self, storage: Storage, read_many: Callable[[list[K]], dict[K, V]], missing: Callable[[], V],
                 *, max_batch: int = DEFAULT_MAX_BATCH, write: bool = False) -> None:
        """read_many(keys) runs in a storage thread and returns a value per key it found; a key it did
        not return gets missing() (e.g. an empty list, or None). write=True: in a write transaction."""
        self._storage = storage
        self._run_batch = storage.write if write else storage.read
        self._read_many = read_many
        self._missing = missing
        self._max_batch = max_batch
        self._waiting: dict[K, list[asyncio.Future[V]]] = {}
        self._runner: asyncio.Task[None] | None = None
        self.batches = 0  # how many queries ran (tests check that concurrent reads share them)

    async def get(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this tick's requests join the first batch
            while self._waiting:
                keys = list(self._waiting)[: self._max_batch]
                futures = {key: self._waiting.pop(key) for key in keys}
                self.batches += 1
                try:
                    found = await self._run_batch(self._read_many, keys)
                except Exception as exc:  # every waiter gets the error, as its own read would have
                    for waiters in futures.values():
                        for future in waiters:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for key, waiters in futures.items():
                    value = found[key] if key in found else self._missing()
                    for future in waiters:
                        if not future.done():  # a connect that was cancelled meanwhile
                            future.set_result(value)
        finally:
            self._runner = None
            if self._waiting:  # asked for while the last batch was being answered
                self._runner = asyncio.ensure_future(self._run())
