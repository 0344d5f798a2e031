"""Which sockets each user has open, on this process or across the cluster.

Single process: a local index. With Redis (several processes): the same index
is mirrored into Redis sets so any process can find every socket of a user (to
subscribe it to a new conversation, to know whether the user is online). Each
process heartbeats; when one dies without saying goodbye, another reaps its
sockets after `presence_dead_after_s` and reports the users who went offline.
While Redis is unreachable the local index keeps working, and it is written
back in full once Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

# Called when a process died: the /chat users left with no socket anywhere, and its /calls sids.
OnHostGone = Callable[[list[int], list[str]], Awaitable[None]]


class LocalSocketRegistry:
    """Sockets of this process only: the index everything else builds on."""

    def __init__(self) -> None:
        self.host_id = uuid.uuid4().hex
        self._by_user: dict[tuple[str, int], set[str]] = defaultdict(set)
        self._by_sid: dict[str, tuple[str, int]] = {}

    async def start(self, on_host_gone: OnHostGone) -> None:
        return None

    async def stop(self) -> None:
        return None

    def _add_local(self, namespace: str, user_id: int, sid: str) -> None:
        self._by_user[(namespace, user_id)].add(sid)
        self._by_sid[sid] = (namespace, user_id)

    def _remove_local(self, namespace: str, user_id: int, sid: str) -> None:
        sids = self._by_user.get((namespace, user_id))
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._by_user[(namespace, user_id)]
        self._by_sid.pop(sid, None)

    async def add(self, namespace: str, user_id: int, sid: str) -> bool:
        """Register a socket; True when it is the user's first in this namespace."""
        return (await self.add_counted(namespace, user_id, sid))[0]

    async def add_counted(self, namespace: str, user_id: int, sid: str) -> tuple[bool, int]:
        """Register a socket; (first in this namespace, how many the user has now, this one included).
        Adding and counting are one step, so concurrent connects cannot all see room for one more."""
        self._add_local(namespace, user_id, sid)
        count = len(self._by_user[(namespace, user_id)])
        return count == 1, count

    async def remove(self, namespace: str, user_id: int, sid: str) -> bool:
        """Forget a socket; True when it was the user's last in this namespace."""
        self._remove_local(namespace, user_id, sid)
        return (namespace, user_id) not in self._by_user

    async def sids_of_user(self, namespace: str, user_id: int) -> list[str]:
        return sorted(self._by_user.get((namespace, user_id), ()))

    async def online(self, namespace: str, user_ids: Iterable[int]) -> set[int]:
        return {uid for uid in user_ids if (namespace, uid) in self._by_user}

    def local_count(self) -> int:
        return len(self._by_sid)

    async def status(self) -> str | None:
        """None without a message queue; "ok" or "error" with one."""
        return None


class RedisSocketRegistry(LocalSocketRegistry):
    def __init__(self, redis_url: str, *, prefix: str = "aurora", dead_after_s: float = 10.0) -> None:
        super().__init__()
        self._prefix = prefix
        self._hosts_key = f"{prefix}:hosts"
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=2, decode_responses=True
        )
        self._heartbeat_s = max(0.2, dead_after_s / 4)
        self._dead_after_s = dead_after_s
        self._dirty = True  # the Redis copy must be (re)written from the local index
        self._healthy = False
        self._task: asyncio.Task[None] | None = None
        self._on_host_gone: OnHostGone | None = None

    def _user_key(self, namespace: str, user_id: int) -> str:
        return f"{self._prefix}:sockets:{namespace}:{user_id}"

    def _host_key(self, host_id: str) -> str:
        return f"{self._prefix}:host:{host_id}"

    async def start(self, on_host_gone: OnHostGone) -> None:
        self._on_host_gone = on_host_gone
        await self._beat()
        self._task = asyncio.create_task(self._heartbeat_loop(), name="aurora-socket-registry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._forget_host(self.host_id)
        await self._redis.aclose()

    async def _guard(self, action: Callable[[], Awaitable[Any]], fallback: Any) -> Any:
        try:
            result = await action()
        except Exception as exc:  # Redis down: serve from the local index, resync later
            if self._healthy:
                log.warning("Redis unreachable (%s); presence falls back to this process", exc.__class__.__name__)
            self._healthy = False
            self._dirty = True
            return fallback
        return result

    async def add_counted(self, namespace: str, user_id: int, sid: str) -> tuple[bool, int]:
        local = await super().add_counted(namespace, user_id, sid)

        async def write() -> tuple[bool, int]:
            pipe = self._redis.pipeline()  # MULTI/EXEC: the count includes exactly the adds before it
            pipe.sadd(self._user_key(namespace, user_id), sid)
            pipe.sadd(self._host_key(self.host_id), f"{namespace}|{user_id}|{sid}")
            pipe.scard(self._user_key(namespace, user_id))
            count = (await pipe.execute())[2]
            return count == 1, count
        return await self._guard(write, local)

    async def remove(self, namespace: str, user_id: int, sid: str) -> bool:
        local_last = await super().remove(namespace, user_id, sid)

        async def write() -> bool:
            pipe = self._redis.pipeline()
            pipe.srem(self._user_key(namespace, user_id), sid)
            pipe.srem(self._host_key(self.host_id), f"{namespace}|{user_id}|{sid}")
            pipe.scard(self._user_key(namespace, user_id))
            return (await pipe.execute())[2] == 0
        return await self._guard(write, local_last)

    async def sids_of_user(self, namespace: str, user_id: int) -> list[str]:
        local = await super().sids_of_user(namespace, user_id)

        async def read() -> list[str]:
            return sorted(set(local) | set(await self._redis.smembers(self._user_key(namespace, user_id))))
        return await self._guard(read, local)

    async def online(self, namespace: str, user_ids: Iterable[int]) -> set[int]:
        ids = list(user_ids)
        local = await super().online(namespace, ids)

        async def read() -> set[int]:
            pipe = self._redis.pipeline()
            for uid in ids:
                pipe.scard(self._user_key(namespace, uid))
            counts = await pipe.execute()
            return local | {uid for uid, n in zip(ids, counts, strict=True) if n > 0}
        return await self._guard(read, local)

    async def status(self) -> str | None:
        try:
            await self._redis.ping()
        except Exception:
            return "error"
        return "ok"

    # -- heartbeat, resync and reaping of dead processes ---------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self._beat()
            except Exception:
                log.exception("socket registry heartbeat failed")

    async def _beat(self) -> None:
        async def beat() -> None:
            await self._redis.zadd(self._hosts_key, {self.host_id: time.time()})
            # A Redis that restarted between two beats lost our entries without any command failing.
            lost = bool(self._by_sid) and not await self._redis.exists(self._host_key(self.host_id))
            if self._dirty or lost:
                await self._resync()
            if not self._healthy:
                log.info("Redis reachable; cluster presence is in sync")
            self._healthy = True
            await self._reap_dead_hosts()
        await self._guard(beat, None)

    async def _resync(self) -> None:
        """Write the local index to Redis in full (after start-up or an outage)."""
        entries = {f"{ns}|{uid}|{sid}" for sid, (ns, uid) in self._by_sid.items()}
        previous = await self._redis.smembers(self._host_key(self.host_id))
        pipe = self._redis.pipeline()
        for stale in previous - entries:
            ns, uid, sid = stale.split("|", 2)
            pipe.srem(self._user_key(ns, int(uid)), sid)
            pipe.srem(self._host_key(self.host_id), stale)
        for entry in entries:
            ns, uid, sid = entry.split("|", 2)
            pipe.sadd(self._user_key(ns, int(uid)), sid)
            pipe.sadd(self._host_key(self.host_id), entry)
        await pipe.execute()
        self._dirty = False

    async def _reap_dead_hosts(self) -> None:
        dead = await self._redis.zrangebyscore(self._hosts_key, "-inf", time.time() - self._dead_after_s)
        for host_id in dead:
            if host_id == self.host_id:
                continue
            # Exactly one live process reaps each dead one.
            if not await self._redis.set(f"{self._prefix}:reap:{host_id}", self.host_id, nx=True, ex=60):
                continue
            gone, call_sids = await self._forget_host(host_id)
            log.warning("Process %s stopped heartbeating; reaped its sockets (%d users now offline)",
                        host_id, len(gone))
            if self._on_host_gone is not None and (gone or call_sids):
                await self._on_host_gone(gone, call_sids)

    async def _forget_host(self, host_id: str) -> tuple[list[int], list[str]]:
        """Remove a host's sockets from Redis; returns the /chat users left with no socket anywhere,
        and the host's /calls sids."""
        entries = await self._redis.smembers(self._host_key(host_id))
        touched: set[tuple[str, int]] = set()
        call_sids = []
        pipe = self._redis.pipeline()
        for entry in entries:
            ns, uid, sid = entry.split("|", 2)
            pipe.srem(self._user_key(ns, int(uid)), sid)
            touched.add((ns, int(uid)))
            if ns == "/calls":
                call_sids.append(sid)
        pipe.delete(self._host_key(host_id))
        pipe.zrem(self._hosts_key, host_id)
        await pipe.execute()
        gone = []
        for ns, uid in touched:
            if ns == "/chat" and await self._redis.scard(self._user_key(ns, uid)) == 0:
                gone.append(uid)
        return gone, call_sids
