"""Argon2 in its own bounded executor.

Hashing is deliberately expensive (19 MiB and tens of milliseconds per password). It runs in
`hash_threads` threads of its own, never in the database threads or the loop's default executor,
so a login or registration storm uses at most that many cores and database work goes on. At most
`hash_queue_max` checks wait for a thread; beyond that the request is answered `unavailable` at once
instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from aurora.errors import AuroraError
from aurora.settings import Settings

T = TypeVar("T")


class PasswordHashing:
    def __init__(self, settings: Settings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._pool = ThreadPoolExecutor(settings.hash_threads, thread_name_prefix="aurora-hash")
        self._max_waiting = settings.hash_threads + settings.hash_queue_max
        self._in_flight = 0

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._in_flight >= self._max_waiting:
            raise AuroraError("unavailable", "too many password checks in progress; retry in a moment")
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        finally:
            self._in_flight -= 1

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self.hasher.hash(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False
        return await self._run(check)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
