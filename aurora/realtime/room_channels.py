"""Emits to a room travel on that room's own Redis channel, heard only by processes with a member there.

python-socketio's Redis manager publishes every emit on one channel that every process reads, so each
process pays for the whole cluster's traffic (decoding and discarding what it has no socket for).
Socket.IO's sharded Redis adapter, in its "dynamic" mode, gives each room a channel instead; this does
the same for Aurora's own rooms (`conversation:<id>`, `user:<id>`, the prefixes in SHARDED_PREFIXES):

* an emit to exactly one such room is published on `<channel>#<namespace>#<room>`; everything else
  (emits to several rooms or to a whole namespace, room changes and disconnects of remote sockets,
  callbacks, resyncs) stays on the main channel, which every process still reads;
* a process subscribes to a room's channel when the first of its sockets enters the room, and waits
  for Redis to confirm the SUBSCRIBE before enter_room returns, so an emit published after that
  reaches it; rooms left empty are unsubscribed lazily (every UNSUBSCRIBE_EVERY_S at most); the first
  connect to a process starts its listener, so a room entered before the listener is up waits for it
  (a channel added while the listener's first SUBSCRIBE was on its way was left out of it, and that
  room was never heard: seen as a flaky cluster test);
* a socket of this process put in a room by another process (an enter_room that came over the main
  channel: a conversation created or a member added there) gets `resync {reason: "room_joined"}`
  once the new subscription is confirmed, when this process had no subscription to that room yet: an
  emit the other process published on the room's channel before that moment reached nobody here.
  (When the subscription existed, order holds: both messages left the other process in one pipeline
  and arrive here on one connection.)
* after the listener reconnects, every channel is subscribed again and the base class's resync to
  all local sockets covers the gap, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aurora.realtime.resync_manager import RESYNC_EVENT, ResyncingRedisManager
from aurora.realtime.room_index import RoomIndexMixin

log = logging.getLogger(__name__)

SHARDED_PREFIXES = ("conversation:", "user:")
REASON_ROOM_JOINED = "room_joined"
SUBSCRIBE_WAIT_S = 2.0
UNSUBSCRIBE_EVERY_S = 30.0


class RoomChannelRedisManager(RoomIndexMixin, ResyncingRedisManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._room_channels: set[str] = set()  # subscribed (or to subscribe on the next reconnect)
        self._confirming: dict[bytes, asyncio.Future[None]] = {}
        self._last_sweep = time.monotonic()
        self._prefix = f"{self.channel}#".encode()
        self._listening = asyncio.Event()  # set once the listener's first SUBSCRIBE is confirmed
        self._listener_late = False  # it was not up within SUBSCRIBE_WAIT_S: rooms stop waiting for it

    # -- which channel ---------------------------------------------------------
    def room_channel(self, namespace: str, room: str) -> str:
        return f"{self.channel}#{namespace}#{room}"

    @staticmethod
    def sharded(room: Any) -> bool:
        return isinstance(room, str) and room.startswith(SHARDED_PREFIXES)

    def _channel_for(self, data: dict[str, Any]) -> str:
        if data.get("method") == "emit" and data.get("callback") is None and self.sharded(data.get("room")):
            return self.room_channel(data.get("namespace") or "/", data["room"])
        return self.channel

    def _accepts(self, channel: bytes) -> bool:
        return channel.startswith(self._prefix)

    def _channels_to_subscribe(self) -> list[str]:
        return [self.channel, *sorted(self._room_channels)]

    # -- subscriptions -----------------------------------------------------------
    async def _subscribe_room(self, namespace: str, room: str) -> bool:
        """Subscribed (confirmed) to the room's channel; True when this call had to subscribe."""
        channel = self.room_channel(namespace, room)
        key = channel.encode()
        if not self._listening.is_set() and not self._listener_late:
            # The first connect to this process starts the listener: wait for it (bounded, and only until
            # it has once been late), so that this channel is subscribed and confirmed here instead of
            # being left out of its first SUBSCRIBE.
            try:
                await asyncio.wait_for(self._listening.wait(), SUBSCRIBE_WAIT_S)
            except TimeoutError:
                self._listener_late = True  # Redis is down: the listener's (re)connect subscribes and resyncs
                log.warning("the Redis listener was not up within %.0f s", SUBSCRIBE_WAIT_S)
        pending = self._confirming.get(key)
        if channel in self._room_channels:
            if pending is not None:  # another socket's enter_room is still waiting for the confirmation
                await _bounded(pending)
            return False
        self._room_channels.add(channel)
        pubsub = self._listener_pubsub
        if pubsub is None:  # the listener is reconnecting: it subscribes every channel, then resyncs
            return True
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirming[key] = confirmed
        try:
            await pubsub.subscribe(channel)
            await _bounded(confirmed)
        except Exception as exc:  # the connection broke: the reconnect subscribes it again and resyncs
            log.debug("subscribing to %s failed (%s)", channel, exc)
        finally:
            if self._confirming.get(key) is confirmed:
                del self._confirming[key]
        self._maybe_sweep()
        return True

    def _on_subscribed(self, pubsub: Any, channel: bytes) -> None:
        if channel == self.channel.encode():
            self._listening.set()
        waiting = self._confirming.get(channel)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _on_listener_lost(self) -> None:
        for waiting in self._confirming.values():
            if not waiting.done():
                waiting.set_result(None)  # no point waiting: the resync after the reconnect covers it

    def _maybe_sweep(self) -> None:
        """Unsubscribe from the channels of rooms that have no local socket any more."""
        now = time.monotonic()
        pubsub = self._listener_pubsub
        if now - self._last_sweep < UNSUBSCRIBE_EVERY_S or pubsub is None:
            return
        self._last_sweep = now
        empty = []
        for channel in list(self._room_channels):
            _, namespace, room = channel.split("#", 2)
            if not self.rooms.get(namespace, {}).get(room):
                empty.append(channel)
        if empty:
            self._room_channels.difference_update(empty)
            task = asyncio.ensure_future(pubsub.unsubscribe(*empty))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # -- room changes ------------------------------------------------------------
    def _is_local(self, sid: str, namespace: str) -> bool:
        return self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)

    async def enter_room(self, sid: str, namespace: str, room: str, eio_sid: str | None = None) -> None:
        # Subscribed before the socket is in the room: from then on every emit to it reaches it here.
        if self.sharded(room) and self._is_local(sid, namespace):
            await self._subscribe_room(namespace, room)
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)

    async def _handle_enter_room(self, message: dict[str, Any]) -> None:
        sid, namespace, room = message.get("sid"), message.get("namespace"), message.get("room")
        if not (self.sharded(room) and isinstance(sid, str) and isinstance(namespace, str)
                and self._is_local(sid, namespace)):
            await super()._handle_enter_room(message)
            return
        had_to_subscribe = await self._subscribe_room(namespace, room)
        await super()._handle_enter_room(message)
        if had_to_subscribe and namespace in self.resync_namespaces:
            await self.emit(RESYNC_EVENT, {"reason": REASON_ROOM_JOINED}, namespace=namespace, room=sid,
                            ignore_queue=True)


async def _bounded(future: asyncio.Future[None]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(future), SUBSCRIBE_WAIT_S)
    except TimeoutError:
        log.warning("Redis did not confirm a SUBSCRIBE within %.0f s", SUBSCRIBE_WAIT_S)
