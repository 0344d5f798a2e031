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

A room whose only subscriber is this process costs no Redis at all (room_handshake.py): a publish
that Redis says reached one subscriber, this process's own listener, marks the room *alone*, and
emits to it are delivered locally and not published, until another process subscribes. That process
announces its new subscription on the room's channel (`room_hello`) and waits, before its socket
enters the room, until every process that heard the hello has answered (`room_ack`) — and a process
answers only after it stopped treating the room as alone. So a socket's sync after entering a room
finds everything that was not published to it. Without the answers in time (a stalled process),
the entering sockets get `resync {reason: "room_joined"}` when they come, or after LATE_ACK_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aurora.realtime.resync_manager import REASON_RECONNECTED, RESYNC_EVENT, ResyncingRedisManager
from aurora.realtime.room_handshake import ACK, HELLO, AckWait, Mark, RoomHandshake
from aurora.realtime.room_index import RoomIndexMixin
from aurora.realtime.transport import DirectEmitManager

log = logging.getLogger(__name__)

SHARDED_PREFIXES = ("conversation:", "user:")
REASON_ROOM_JOINED = "room_joined"
SUBSCRIBE_WAIT_S = 2.0
UNSUBSCRIBE_EVERY_S = 30.0
LATE_ACK_S = 30.0  # a hello unanswered in SUBSCRIBE_WAIT_S: its room's sockets resync when answered, or after this


class RoomChannelRedisManager(RoomIndexMixin, ResyncingRedisManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._room_channels: set[str] = set()  # subscribed (or to subscribe on the next reconnect)
        self._confirming: dict[bytes, asyncio.Future[None]] = {}
        self._last_sweep = time.monotonic()
        self._prefix = f"{self.channel}#".encode()
        self._listening = asyncio.Event()  # set once the listener's first SUBSCRIBE is confirmed
        self._listener_late = False  # it was not up within SUBSCRIBE_WAIT_S: rooms stop waiting for it
        self._handshake = RoomHandshake(self.host_id, self.channel)
        self._entering: dict[str, asyncio.Future[None]] = {}  # channel -> its subscribe and hello, under way
        self._leaving: dict[str, asyncio.Future[Any]] = {}  # channel -> the sweep's UNSUBSCRIBE, not yet sent
        self._heard_changed = asyncio.Event()
        self._background: set[asyncio.Future[Any]] = set()

    # -- emitting --------------------------------------------------------------------
    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        room = to or room
        if (callback is None and isinstance(room, str) and not kwargs.get("ignore_queue")
                and self.room_channel(namespace or "/", room) in self._handshake.alone):
            # Nobody else is subscribed to this room (room_handshake.py): local delivery only.
            self._handshake.local_emits += 1
            await DirectEmitManager.emit(self, event, data, namespace or "/", room=room, skip_sid=skip_sid)
            return
        await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback,
                           **kwargs)

    def room_channel_stats(self) -> dict[str, int]:
        handshake = self._handshake
        return {"subscribed": len(handshake.heard), "alone": len(handshake.alone),
                "published": handshake.published_emits, "local": handshake.local_emits}

    def _before_publish(self, channels: list[str]) -> list[Mark]:
        return self._handshake.marks(channels)

    def _after_publish(self, batch: list[dict[str, Any]], channels: list[str], receivers: list[int],
                       marks: list[Mark]) -> None:
        self._handshake.published(batch, channels, receivers, marks)

    def _handled_on_room_channel(self, channel: bytes, data: Any) -> bool:
        handled, ack = self._handshake.on_room_message(channel.decode(), data)
        if ack is not None:
            self._queue(ack)  # after the room left `alone`: every emit queued from now on is published
        return handled

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- which channel ---------------------------------------------------------
    def room_channel(self, namespace: str, room: str) -> str:
        return f"{self.channel}#{namespace}#{room}"

    @staticmethod
    def sharded(room: Any) -> bool:
        return isinstance(room, str) and room.startswith(SHARDED_PREFIXES)

    def _channel_for(self, data: dict[str, Any]) -> str:
        method = data.get("method")
        if method == "emit" and data.get("callback") is None and self.sharded(data.get("room")):
            return self.room_channel(data.get("namespace") or "/", data["room"])
        if method in (HELLO, ACK):
            return self.room_channel(data["namespace"], data["room"])
        return self.channel

    def _accepts(self, channel: bytes) -> bool:
        return channel.startswith(self._prefix)

    def _channels_to_subscribe(self) -> list[str]:
        return [self.channel, *sorted(self._room_channels)]

    # -- subscriptions -----------------------------------------------------------
    async def _subscribe_room(self, namespace: str, room: str) -> bool:
        """Subscribed (confirmed) to the room's channel and announced to the other subscribers; True when
        this call had to subscribe."""
        return bool(await self._subscribe_rooms(namespace, [room]))

    async def _subscribe_rooms(self, namespace: str, rooms: list[str]) -> list[str]:
        """_subscribe_room for several rooms at once: the new channels in one SUBSCRIBE, their hellos
        in one pipeline, one wait for both (a connect enters all of a user's rooms). The rooms whose
        channels this call subscribed."""
        if not self._listening.is_set() and not self._listener_late:
            # The first connect to this process starts the listener: wait for it (bounded, and only until
            # it has once been late), so that these channels are subscribed and confirmed here instead of
            # being left out of its first SUBSCRIBE.
            try:
                await asyncio.wait_for(self._listening.wait(), SUBSCRIBE_WAIT_S)
            except TimeoutError:
                self._listener_late = True  # Redis is down: the listener's (re)connect subscribes and resyncs
                log.warning("the Redis listener was not up within %.0f s", SUBSCRIBE_WAIT_S)
        fresh: list[str] = []
        others: list[asyncio.Future[None]] = []  # channels another enter_room is subscribing and announcing
        for room in dict.fromkeys(rooms):
            channel = self.room_channel(namespace, room)
            if channel in self._room_channels:
                entering = self._entering.get(channel)
                if entering is not None:
                    others.append(entering)
            else:
                self._room_channels.add(channel)
                fresh.append(room)
        pubsub = self._listener_pubsub
        if fresh and pubsub is not None:  # (None: reconnecting; it subscribes every channel, then resyncs)
            await self._subscribe_fresh(pubsub, namespace, fresh)
        for entering in others:
            await _bounded(entering)
        return fresh

    async def _subscribe_fresh(self, pubsub: Any, namespace: str, rooms: list[str]) -> None:
        loop = asyncio.get_running_loop()
        channels = [self.room_channel(namespace, room) for room in rooms]
        entered: asyncio.Future[None] = loop.create_future()
        for channel in channels:
            self._entering[channel] = entered
        confirming = {channel.encode(): loop.create_future() for channel in channels}
        try:
            for leaving in {self._leaving[c] for c in channels if c in self._leaving}:
                # Swept a moment ago: its UNSUBSCRIBE must reach Redis before this SUBSCRIBE, not after it.
                with contextlib.suppress(Exception):
                    await asyncio.shield(leaving)
            self._confirming.update(confirming)
            try:
                await pubsub.subscribe(*channels)
                await _bounded(asyncio.gather(*confirming.values()))
            except Exception as exc:  # the connection broke: the reconnect subscribes them again and resyncs
                log.debug("subscribing to %d room channel(s) failed (%s)", len(channels), exc)
            finally:
                for key, future in confirming.items():
                    if self._confirming.get(key) is future:
                        del self._confirming[key]
            await self._announce([(namespace, room) for room in rooms])
        finally:
            for channel in channels:
                if self._entering.get(channel) is entered:
                    del self._entering[channel]
            entered.set_result(None)
        self._maybe_sweep()

    async def _announce(self, rooms: list[tuple[str, str]]) -> None:
        """Tell the other subscribers of these (confirmed) room channels that this process hears them
        now, and wait (bounded) until they have answered, so that none still treats a room as alone."""
        waits: list[AckWait] = []
        for namespace, room in rooms:
            if self.room_channel(namespace, room) not in self._handshake.heard:
                continue  # not confirmed: the listener's reconnect announces it again and resyncs
            hello, wait = self._handshake.hello(namespace, room)
            self._queue(hello)
            waits.append(wait)
        late = await self._handshake.unanswered(waits, SUBSCRIBE_WAIT_S)
        if late:
            log.warning("%d room hello(s) unanswered within %.0f s; their sockets will resync", len(late),
                        SUBSCRIBE_WAIT_S)
            self._spawn(self._resync_when_answered(late))

    async def _resync_when_answered(self, late: list[AckWait]) -> None:
        await self._handshake.unanswered(late, LATE_ACK_S)
        for wait in late:
            if wait.namespace in self.resync_namespaces:
                await DirectEmitManager.emit(self, RESYNC_EVENT, {"reason": REASON_ROOM_JOINED},
                                             wait.namespace, room=wait.room)

    async def _after_gap(self) -> None:
        # The resync must follow the hellos' answers, and those arrive on the listener, which reads only
        # once this returns: in the background.
        self._spawn(self._announce_all_then_resync())

    async def _announce_all_then_resync(self) -> None:
        wanted = set(self._room_channels)
        deadline = time.monotonic() + SUBSCRIBE_WAIT_S
        while not wanted <= self._handshake.heard and time.monotonic() < deadline:
            self._heard_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._heard_changed.wait(), deadline - time.monotonic())
        rooms = [(namespace, room) for _, namespace, room in (c.split("#", 2) for c in wanted)]
        await self._announce(rooms)
        await self._resync_local(REASON_RECONNECTED)

    def _on_subscribed(self, pubsub: Any, channel: bytes) -> None:
        if channel == self.channel.encode():
            self._listening.set()
        else:
            self._handshake.subscribed(channel.decode())
            self._heard_changed.set()
        waiting = self._confirming.get(channel)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _on_listener_lost(self) -> None:
        self._handshake.listener_lost()
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
            if channel in self._entering:
                continue  # its socket enters once subscribed and announced
            _, namespace, room = channel.split("#", 2)
            if not self.rooms.get(namespace, {}).get(room):
                empty.append(channel)
        if empty:
            self._room_channels.difference_update(empty)
            for channel in empty:
                self._handshake.unsubscribed(channel)
            task = asyncio.ensure_future(pubsub.unsubscribe(*empty))
            for channel in empty:
                self._leaving[channel] = task
            task.add_done_callback(lambda t, gone=empty: self._left(t, gone))

    def _left(self, task: asyncio.Future[Any], channels: list[str]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: a broken connection is the listener's to handle
        for channel in channels:
            if self._leaving.get(channel) is task:
                del self._leaving[channel]

    # -- room changes ------------------------------------------------------------
    def _is_local(self, sid: str, namespace: str) -> bool:
        return self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)

    async def enter_room(self, sid: str, namespace: str, room: str, eio_sid: str | None = None) -> None:
        # Subscribed before the socket is in the room: from then on every emit to it reaches it here.
        if self.sharded(room) and self._is_local(sid, namespace):
            await self._subscribe_room(namespace, room)
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)

    async def enter_rooms(self, sid: str, namespace: str, rooms: list[str]) -> None:
        """enter_room for several rooms (a connect's conversations): the new channels in one SUBSCRIBE and
        one pipeline of hellos, so a connect costs two round trips to Redis, not two per room."""
        if not self._is_local(sid, namespace):
            for room in rooms:
                await self.enter_room(sid, namespace, room)
            return
        await self._subscribe_rooms(namespace, [room for room in rooms if self.sharded(room)])
        for room in rooms:
            await super().enter_room(sid, namespace, room)  # subscribed: upstream's local enter

    async def _handle_enter_room(self, message: dict[str, Any]) -> None:
        sid, namespace, room = message.get("sid"), message.get("namespace"), message.get("room")
        if not (self.sharded(room) and isinstance(sid, str) and isinstance(namespace, str)
                and self._is_local(sid, namespace)):
            await super()._handle_enter_room(message)
            return
        channel = self.room_channel(namespace, room)
        await super()._handle_enter_room(message)
        if channel in self._handshake.heard and channel not in self._entering:
            return  # subscribed and announced: order holds (see the module's docstring)
        # Not heard here yet. This runs on the listener, which must go on reading (the SUBSCRIBE's
        # confirmation and the hello's answers arrive through it): subscribe in the background, then
        # tell the socket to resync, since what was emitted to the room until then reached nobody here.
        self._spawn(self._subscribe_then_resync(sid, namespace, room))

    async def _subscribe_then_resync(self, sid: str, namespace: str, room: str) -> None:
        await self._subscribe_room(namespace, room)
        if namespace in self.resync_namespaces:
            await self.emit(RESYNC_EVENT, {"reason": REASON_ROOM_JOINED}, namespace=namespace, room=sid,
                            ignore_queue=True)


async def _bounded(future: asyncio.Future[Any]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(future), SUBSCRIBE_WAIT_S)
    except TimeoutError:
        log.warning("Redis did not confirm a SUBSCRIBE within %.0f s", SUBSCRIBE_WAIT_S)
