"""A change counter every process of a cluster watches, for in-memory copies of data that rarely changes.

The process that changes the data calls `changed()`: its own copy is refreshed at once (`on_change`)
and the counter in Redis is bumped; the other processes poll the counter every `poll_s` and run
`on_change` when it moved, so they follow within about `poll_s`. Without Redis there are no other
processes and the local refresh is all there is. While Redis does not answer, `on_unsure` runs on
every failed poll: a copy that must never be wrong can stop trusting itself until a poll answers
(the first one that does runs `on_change`).
(Used by blocks and by the push audience; the pattern is a poll, not pub/sub, so a Redis blip can
delay a change but never lose it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 1.0


class ClusterVersion:
    def __init__(self, name: str, on_change: Callable[[], Awaitable[None]], *, redis_url: str = "",
                 prefix: str = "aurora", poll_s: float = DEFAULT_POLL_S,
                 on_unsure: Callable[[], None] | None = None) -> None:
        self.name = name
        self._on_change = on_change
        self._on_unsure = on_unsure
        self._poll_s = poll_s
        self._key = f"{prefix}:{name}:version"
        self._seen: int | None = None  # the counter this process's copy follows (None: not read yet)
        self._task: asyncio.Task[None] | None = None
        self._redis: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)

    @property
    def clustered(self) -> bool:
        return self._redis is not None

    def start(self) -> None:
        if self._redis is not None and self._task is None:
            self._task = asyncio.create_task(self._poll(), name=f"aurora-{self.name}-version")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._redis is not None:
            await self._redis.aclose()

    async def changed(self) -> None:
        """After this process committed a change: refresh here, then tell the others."""
        await self._on_change()
        if self._redis is None:
            return
        try:
            bumped = int(await self._redis.incr(self._key))
        except Exception:
            log.warning("could not tell the other processes about a %s change (Redis unreachable): they "
                        "follow it once their own polls fail and recover, or their copies expire", self.name)
            self._seen = None  # the next poll that answers refreshes the copy
            if self._on_unsure is not None:
                self._on_unsure()
            return
        if self._seen is not None and bumped == self._seen + 1:
            self._seen = bumped  # only this change since the copy was last in step: nothing more to load
        # else another process changed something too: the next poll sees the counter moved and refreshes

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                version = int(await self._redis.get(self._key) or 0)
                if version != self._seen:
                    await self._on_change()
                    self._seen = version  # only once the copy follows it: a failed refresh is tried again
            except Exception as exc:  # Redis or the database away: try again at the next poll
                log.debug("following the %s version failed: %s", self.name, exc.__class__.__name__)
                self._seen = None  # the next poll that answers refreshes the copy
                if self._on_unsure is not None:
                    self._on_unsure()
