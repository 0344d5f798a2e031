"""Redis client manager that tells sockets to `resync` when the message queue may have lost emits.

python-socketio's AsyncRedisManager is fire-and-forget pub/sub: an emit published while a process's
listener is disconnected never reaches that process, and an emit whose publish fails is dropped after
one retry. The database still has every acknowledged message, but a receiver that got nothing live
has no reason to look. This subclass knows when that may have happened and says so:

* **Listener gap.** When the subscription drops and is re-established, every local socket of the
  resync namespaces (``/chat``) gets ``resync {reason: "queue_reconnected"}``. It is emitted after
  the new SUBSCRIBE succeeded, so whatever was published before is in the database (emits follow
  commits) and the client's sync finds it, and whatever is published after arrives live.
* **Failed publish.** When a publish gives up, the rooms it was meant for are remembered (a whole
  namespace once too many are owed), room changes for remote sockets are kept to replay, and a
  background task publishes them, then ``resync {reason: "publish_failed"}`` to those rooms on the
  other processes, as soon as Redis takes a publish again. (This process's own sockets got the emit
  locally: it is handled here before it is published.)

The listener uses its own Redis client: upstream shares ``self.pubsub`` with ``_publish``, whose
reconnect replaces it under a running subscription. Back-off between subscription attempts is capped
low (``max_retry_s``) so a blip costs seconds of live delivery, not a minute.

Upstream note: a ``on_reconnect``/``on_publish_failed`` hook in AsyncPubSubManager (and a listener
client separate from the publisher's) would make this a few lines; see docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import urlparse

import socketio
from socketio.redis_manager import parse_redis_sentinel_url

from aurora.realtime.transport import DirectEmitManager

log = logging.getLogger(__name__)

RESYNC_EVENT = "resync"
REASON_RECONNECTED = "queue_reconnected"
REASON_PUBLISH_FAILED = "publish_failed"
# Past this many owed rooms in a namespace, the whole namespace is told to resync (bounded memory).
MAX_OWED_ROOMS = 10_000
MAX_OWED_ROOM_CHANGES = 10_000
ROOM_CHANGES = frozenset({"enter_room", "leave_room", "disconnect", "close_room"})
ALL = None  # marks "every socket of the namespace" in the owed map
MAX_PIPELINE = 1000


class ResyncingRedisManager(socketio.AsyncRedisManager, DirectEmitManager):
    """(DirectEmitManager after the pub/sub classes in the MRO: the local half of every emit, this
    process's own and those arriving from Redis, is queued straight onto each socket, without a task
    per recipient, as in single-process mode.)"""

    def __init__(self, *args: Any, resync_namespaces: Iterable[str] = ("/chat",), max_retry_s: float = 4.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resync_namespaces = tuple(resync_namespaces)
        self.max_retry_s = max_retry_s
        self._owed_rooms: dict[str, set[str] | None] = {}
        self._owed_changes: list[dict[str, Any]] = []
        self._settler: asyncio.Task[None] | None = None
        self._outbox: list[dict[str, Any]] = []
        self._listener_pubsub: Any = None
        self._publisher: asyncio.Task[None] | None = None

    # -- publishing ------------------------------------------------------------
    async def _try_publish(self, data: dict[str, Any]) -> Exception | None:
        """None once published; the last error after two attempts (the second on a new connection)."""
        error: Exception | None = None
        for _ in (1, 2):
            try:
                if not self.connected:
                    self._redis_connect()
                await self.redis.publish(self._channel_for(data), self.json.dumps(data))
                return None
            except Exception as exc:  # any failure of the queue: reconnect once, then owe it
                self.connected = False
                error = exc
        return error

    async def _publish(self, data: dict[str, Any]) -> None:
        """Queue for the publisher task: the caller (the message writer's broadcast) does not wait for a
        Redis round trip per emit, and what is queued together goes out in one pipeline, in order."""
        self._queue(data)

    def _queue(self, data: dict[str, Any]) -> None:
        self._outbox.append(data)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.ensure_future(self._publish_queued())

    async def _publish_queued(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox[:MAX_PIPELINE], self._outbox[MAX_PIPELINE:]
            error = await self._try_publish_many(batch)
            if error is None:
                continue
            if not (self._owed_rooms or self._owed_changes):  # once per outage, not once per emit
                log.warning("cannot publish to the message queue (%s); the receivers will be told to resync",
                            error)
            for data in batch:
                self._owe(data)
            if self._settler is None or self._settler.done():
                self._settler = asyncio.ensure_future(self._settle())

    async def _try_publish_many(self, batch: list[dict[str, Any]]) -> Exception | None:
        """One pipeline. Not retried: part of it may have been published, and a resync is better than a
        duplicate. (A stale idle connection is caught before use by health_check_interval.)"""
        try:
            if not self.connected:
                self._redis_connect()
            pipe = self.redis.pipeline(transaction=False)
            channels = [self._channel_for(data) for data in batch]
            marks = self._before_publish(channels)
            for channel, data in zip(channels, batch, strict=True):
                pipe.publish(channel, self.json.dumps(data))
            receivers = await pipe.execute()
        except Exception as exc:
            self.connected = False
            return exc
        self._after_publish(batch, channels, receivers, marks)
        return None

    def _before_publish(self, channels: list[str]) -> Any:
        """Called as a pipeline is built (hook for room_channels.py); what it returns reaches _after_publish."""
        return None

    def _after_publish(self, batch: list[dict[str, Any]], channels: list[str], receivers: list[int],
                       marks: Any) -> None:
        """Redis's answer to a pipeline: how many subscribers each publish reached (hook for room_channels.py)."""

    def _owe(self, data: dict[str, Any]) -> None:
        method = data.get("method")
        if method == "emit":
            namespace = data.get("namespace") or "/"
            if namespace not in self.resync_namespaces:
                return
            room = data.get("room")
            owed = self._owed_rooms.setdefault(namespace, set())
            if owed is ALL:
                return
            if room is None:
                self._owed_rooms[namespace] = ALL
                return
            owed.update([room] if isinstance(room, str) else room)
            if len(owed) > MAX_OWED_ROOMS:
                self._owed_rooms[namespace] = ALL
        elif method in ROOM_CHANGES and len(self._owed_changes) < MAX_OWED_ROOM_CHANGES:
            self._owed_changes.append(data)
        # callbacks to other hosts are not owed: Aurora emits none across processes.

    async def _settle(self) -> None:
        """Replay owed room changes, then publish the owed resyncs, once Redis takes publishes again."""
        delay = 0.25
        while self._owed_rooms or self._owed_changes:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_s)
            changes, self._owed_changes = self._owed_changes, []
            rooms, self._owed_rooms = self._owed_rooms, {}
            pending = [*changes, *(self._resync_message(ns, owed) for ns, owed in rooms.items())]
            for index, message in enumerate(pending):
                if await self._try_publish(message) is not None:
                    for unsent in pending[index:]:
                        self._owe(unsent)  # a resync to rooms is owed like the emit it stands for
                    break
            else:
                if rooms:
                    log.info("message queue back: resync published for %s", {
                        ns: ("all" if owed is ALL else len(owed)) for ns, owed in rooms.items()})

    def _resync_message(self, namespace: str, owed: set[str] | None) -> dict[str, Any]:
        return {"method": "emit", "event": RESYNC_EVENT, "data": [{"reason": REASON_PUBLISH_FAILED}],
                "binary": False, "namespace": namespace, "room": None if owed is ALL else sorted(owed),
                "skip_sid": None, "callback": None, "host_id": self.host_id}

    def _channel_for(self, data: dict[str, Any]) -> str:
        """The channel a message goes to (every process listens to self.channel; see room_channels.py)."""
        return self.channel

    # -- listening -------------------------------------------------------------
    def _channels_to_subscribe(self) -> list[str]:
        return [self.channel]

    def _on_subscribed(self, pubsub: Any, channel: bytes) -> None:
        """A SUBSCRIBE was confirmed on the listener's connection (hook for room_channels.py)."""

    def _on_listener_lost(self) -> None:
        """The listener's connection is gone (hook for room_channels.py)."""

    def _listener_client(self) -> Any:
        module = self._get_redis_module()
        if "sentinel" in urlparse(self.redis_url).scheme:
            sentinels, service_name, connection_kwargs = parse_redis_sentinel_url(self.redis_url)
            sentinel = module.sentinel.Sentinel(sentinels, **{**self.redis_options, **connection_kwargs})
            return sentinel.master_for(service_name or self.channel)
        return module.Redis.from_url(self.redis_url, **self.redis_options)

    async def _redis_listen_with_retries(self) -> AsyncIterator[dict[str, Any]]:
        retry_s = 0.25
        gap = False
        while True:
            client = self._listener_client()
            pubsub = client.pubsub()
            try:
                channels = self._channels_to_subscribe()
                await pubsub.subscribe(*channels)
                self._listener_pubsub = pubsub
                # Channels added while that SUBSCRIBE was on its way (a room entered before the listener
                # was up: the first connect to a process starts it) were not in it: subscribe them now,
                # or that room's emits from other processes would never be heard here.
                late = [c for c in self._channels_to_subscribe() if c not in channels]
                if late:
                    await pubsub.subscribe(*late)
                    gap = True  # and their sockets resync: an emit before this SUBSCRIBE reached nobody here
                retry_s = 0.25
                if gap:
                    await self._after_gap()
                    gap = False
                async for message in pubsub.listen():
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                (log.debug if gap else log.warning)("message queue subscription lost (%s); retrying in %.2f s",
                                                    exc, retry_s)
            gap = True  # from here until the next SUBSCRIBE, emits of other processes are lost to us
            self._listener_pubsub = None
            self._on_listener_lost()
            await _close_quietly(pubsub, client)
            await asyncio.sleep(retry_s)
            retry_s = min(retry_s * 2, self.max_retry_s)

    async def _listen(self) -> AsyncIterator[bytes]:
        channel = self.channel.encode("utf-8")
        # Every process hears its own publishes too; upstream parses each one to find its host_id and
        # drop it. Our messages end with it (the manager builds them with host_id last, callbacks
        # excepted, which put it first and are kept): skip them unparsed.
        own = self.json.dumps({"host_id": self.host_id})[1:].encode()
        async for message in self._redis_listen_with_retries():
            if message["type"] == "subscribe":
                self._on_subscribed(self._listener_pubsub, message["channel"])
                continue
            if message["type"] == "message" and "data" in message:
                data = message["data"]
                if message["channel"] != channel and not self._accepts(message["channel"]):
                    continue
                if isinstance(data, bytes) and data.endswith(own):
                    continue
                if message["channel"] != channel and self._handled_on_room_channel(message["channel"], data):
                    continue
                yield data

    def _accepts(self, channel: bytes) -> bool:
        return False

    def _handled_on_room_channel(self, channel: bytes, data: Any) -> bool:
        """True for a message of the manager's own protocol, handled here (hook for room_channels.py)."""
        return False

    async def _after_gap(self) -> None:
        """The listener is subscribed again after a gap: the local sockets may have missed emits."""
        await self._resync_local(REASON_RECONNECTED)

    async def _resync_local(self, reason: str) -> None:
        for namespace in self.resync_namespaces:
            if namespace in self.rooms:
                log.info("message queue subscription back: resync to this process's %s sockets", namespace)
                await DirectEmitManager.emit(self, RESYNC_EVENT, {"reason": reason}, namespace=namespace)


async def _close_quietly(pubsub: Any, client: Any) -> None:
    for closing in (pubsub.aclose, client.aclose):
        try:
            await closing()
        except Exception:  # already broken: nothing to release cleanly
            pass
