"""Serialise call state changes per conversation: in this process, and across processes with Redis.

Every change re-reads the call after taking the lock, so whoever takes it first
wins (glare, accept against timeout) and a timer that fires on two processes
acts once. If Redis is unreachable the local lock still holds; the database's
conditional updates (a call ends only while it is live) keep the outcome sane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator

from aurora.errors import AuroraError

log = logging.getLogger(__name__)

LOCK_TTL_S = 15  # a process that dies holding the lock frees it after this long
LOCK_WAIT_S = 10


class CallLocks:
    def __init__(self, redis_url: str = "", prefix: str = "aurora") -> None:
        self._local: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._prefix = prefix
        self._redis = None
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)

    def _local_lock(self, conversation_id: int) -> asyncio.Lock:
        lock = self._local.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self._local[conversation_id] = lock
        return lock

    @contextlib.asynccontextmanager
    async def hold(self, conversation_id: int) -> AsyncIterator[None]:
        local = self._local_lock(conversation_id)
        async with local:
            if self._redis is None:
                yield
                return
            shared = self._redis.lock(f"{self._prefix}:call-lock:{conversation_id}", timeout=LOCK_TTL_S,
                                      blocking_timeout=LOCK_WAIT_S)
            try:
                acquired = await shared.acquire()
            except Exception as exc:
                log.warning("Redis lock for conversation %s unavailable (%s); using the local lock only",
                            conversation_id, exc.__class__.__name__)
                acquired = False
                shared = None
            else:
                if not acquired:
                    raise AuroraError("unavailable", "the call is busy changing state; try again")
            try:
                yield
            finally:
                if shared is not None and acquired:
                    with contextlib.suppress(Exception):
                        await shared.release()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
