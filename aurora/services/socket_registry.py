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
# It raises ReapIncomplete naming what is left to do (or any exception: all of it is retried).
OnHostGone = Callable[[list[int], list[str]], Awaitable[None]]

REAP_CLAIM_S = 60  # another process may take over a reap after this long without a retry
REAP_RETRY_MIN_S, REAP_RETRY_MAX_S = 0.5, 10.0


class ReapIncomplete(Exception):
    """Part of a reap failed: these users' presence and these call devices still need handling."""

    def __init__(self, user_ids: list[int], call_sids: list[str]) -> None:
        super().__init__(f"{len(user_ids)} users' presence, {len(call_sids)} call devices left")
        self.user_ids = user_ids
        self.call_sids = call_sids


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
        self._reaping: dict[str, asyncio.Task[None]] = {}
        # Told of each failed Redis operation (metrics).
        self.on_error: Callable[[], None] | None = None

    def _user_key(self, namespace: str, user_id: int) -> str:
        return f"{self._prefix}:sockets:{namespace}:{user_id}"

    def _host_key(self, host_id: str) -> str:
        return f"{self._prefix}:host:{host_id}"

    async def start(self, on_host_gone: OnHostGone) -> None:
        self._on_host_gone = on_host_gone
        await self._beat()
        self._task = asyncio.create_task(self._heartbeat_loop(), name="aurora-socket-registry")

    async def stop(self) -> None:
        tasks = ([self._task] if self._task is not None else []) + list(self._reaping.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._forget_host(self.host_id)
        await self._redis.aclose()

    async def _guard(self, action: Callable[[], Awaitable[Any]], fallback: Any) -> Any:
        try:
            result = await action()
        except Exception as exc:  # Redis down: serve from the local index, resync later
            if self.on_error is not None:
                self.on_error()
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
        """Claim dead processes and reap each in its own task: the heartbeat never waits for a reap
        (a slow one would make this process look dead to the others)."""
        dead = await self._redis.zrangebyscore(self._hosts_key, "-inf", time.time() - self._dead_after_s)
        for host_id in dead:
            if host_id == self.host_id or host_id in self._reaping:
                continue
            # Exactly one live process reaps each dead one (the claim expires if that one dies too).
            if not await self._redis.set(self._reap_key(host_id), self.host_id, nx=True, ex=REAP_CLAIM_S):
                continue
            task = asyncio.create_task(self._reap(host_id), name=f"aurora-reap-{host_id[:8]}")
            self._reaping[host_id] = task
            task.add_done_callback(lambda _t, h=host_id: self._reaping.pop(h, None))

    def _reap_key(self, host_id: str) -> str:
        return f"{self._prefix}:reap:{host_id}"

    async def _reap(self, host_id: str) -> None:
        """Take a dead host's sockets out of Redis, then tell presence and calls, retrying until both
        are done. The host's own entry goes last, so if this process dies mid-way another one
        claims the host again and repeats the reap (each step is idempotent)."""
        delay = REAP_RETRY_MIN_S
        users: list[int] | None = None
        call_sids: list[str] = []
        attempt = 0
        while True:
            attempt += 1
            try:
                if users is None:
                    users, call_sids = await self._unlink_host_sockets(host_id)
                    log.warning("Process %s stopped heartbeating; reaping its sockets (%d users now offline, "
                                "%d call devices)", host_id, len(users), len(call_sids))
                if self._on_host_gone is not None and (users or call_sids):
                    await self._on_host_gone(users, call_sids)
                await self._drop_host(host_id)
                if attempt > 1:
                    log.info("Reaped process %s after %d attempts", host_id, attempt)
                return
            except asyncio.CancelledError:
                raise
            except ReapIncomplete as exc:
                users, call_sids = exc.user_ids, exc.call_sids
                log.warning("Reaping process %s incomplete (%s); retrying in %.1fs", host_id, exc, delay)
            except Exception as exc:
                where = "Redis" if users is None else "its users' presence and calls"
                log.warning("Reaping process %s failed in %s (%s: %s); retrying in %.1fs",
                            host_id, where, exc.__class__.__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, REAP_RETRY_MAX_S)
            with contextlib.suppress(Exception):  # keep the claim while retrying
                await self._redis.set(self._reap_key(host_id), self.host_id, ex=REAP_CLAIM_S)

    async def _unlink_host_sockets(self, host_id: str) -> tuple[list[int], list[str]]:
        """Remove a host's sids from the users' sets (not yet the host's own list); returns the /chat
        users left with no socket anywhere, and the host's /calls sids."""
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
        await pipe.execute()
        gone = []
        for ns, uid in sorted(touched):
            if ns == "/chat" and await self._redis.scard(self._user_key(ns, uid)) == 0:
                gone.append(uid)
        return gone, call_sids

    async def _drop_host(self, host_id: str) -> None:
        pipe = self._redis.pipeline()
        pipe.delete(self._host_key(host_id))
        pipe.zrem(self._hosts_key, host_id)
        await pipe.execute()

    async def _forget_host(self, host_id: str) -> tuple[list[int], list[str]]:
        """Remove a host's sockets from Redis entirely (this process at shutdown)."""
        found = await self._unlink_host_sockets(host_id)
        await self._drop_host(host_id)
        return found
