"""Which room channels this process alone subscribes to, and the handshake that keeps that knowledge true.

With room channels (room_channels.py) most of a small cluster's rooms have one subscriber: the process
where all of the room's sockets are. Publishing their emits costs that process the publish and the echo
Redis sends back to its own listener (~35-50 us per message, issue 16) for nobody. Redis answers every
PUBLISH with the number of subscribers it reached; when that number is 1 and this process's listener
was subscribed to the channel throughout, nobody else is, and the room is marked *alone*: its emits are
delivered locally and not published.

It stays true only while no other process subscribes. A process that subscribes to a room channel
publishes `room_hello` on it once Redis confirmed the SUBSCRIBE, and waits for a `room_ack` from each
process the hello reached (PUBLISH's answer less its own listener). A process takes the room out of
*alone* before it queues its ack, so an emit it decides on after that is published; one it decided
on before belongs to a message already stored, which the new subscriber's sync (after the ack) reads.

An answer to a publish sent before a hello was heard here must not mark the room alone: each channel
has an epoch, bumped by every hello and unsubscribe, and the listener a generation, bumped when it is
lost; a publish's answer counts only if both are what they were when the publish was sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

HELLO = "room_hello"
ACK = "room_ack"
CONTROL_PREFIX = b'{"method":"room_'  # how the manager's JSON (compact, keys in order) of both begins
Mark = tuple[int, int] | None


@dataclass
class AckWait:
    """A hello of this process: answered once as many acks came as other processes heard it."""

    namespace: str
    room: str
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    expected: int | None = None  # known when Redis answers the hello's PUBLISH
    acked: int = 0

    def check(self) -> None:
        if self.expected is not None and self.acked >= self.expected and not self.done.done():
            self.done.set_result(None)

    def give_up(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class RoomHandshake:
    def __init__(self, host_id: str, main_channel: str) -> None:
        self.host_id = host_id
        self.main_channel = main_channel
        self.alone: set[str] = set()  # room channels whose only subscriber is this process
        self.heard: set[str] = set()  # room channels confirmed subscribed on the listener's connection
        self.generation = 0
        self._epochs: dict[str, int] = {}
        self._waits: dict[str, AckWait] = {}
        self._tokens = itertools.count()
        self.published_emits = 0  # emits to one room published on its channel
        self.local_emits = 0  # emits to a room alone here, delivered locally only

    # -- the listener's subscriptions ------------------------------------------------
    def subscribed(self, channel: str) -> None:
        self.heard.add(channel)

    def unsubscribed(self, channel: str) -> None:
        self.heard.discard(channel)
        self.alone.discard(channel)
        self._epochs[channel] = self._epochs.get(channel, 0) + 1

    def listener_lost(self) -> None:
        """Nothing is known any more (hellos may be lost too); waiting sockets are resynced after the
        reconnect, which announces every channel again."""
        self.generation += 1
        self.heard.clear()
        self.alone.clear()
        self._epochs.clear()
        for wait in self._waits.values():
            wait.give_up()
        self._waits.clear()

    # -- publishing --------------------------------------------------------------------
    def marks(self, channels: list[str]) -> list[Mark]:
        heard, generation, epochs = self.heard, self.generation, self._epochs
        return [(generation, epochs.get(c, 0)) if c in heard else None for c in channels]

    def published(self, batch: list[dict[str, Any]], channels: list[str], receivers: list[int],
                  marks: list[Mark]) -> None:
        for data, channel, count, mark in zip(batch, channels, receivers, marks, strict=True):
            method = data.get("method")
            if method == "emit":
                if channel != self.main_channel:
                    self.published_emits += 1
                if count == 1 and mark is not None and mark == (self.generation, self._epochs.get(channel, 0)):
                    self.alone.add(channel)
            elif method == HELLO:
                wait = self._waits.get(data["token"])
                if wait is not None:
                    wait.expected = max(count - 1, 0)  # less this process's own listener
                    wait.check()

    # -- the handshake ----------------------------------------------------------------
    def hello(self, namespace: str, room: str) -> tuple[dict[str, Any], AckWait]:
        token = f"{self.host_id}:{next(self._tokens)}"
        wait = AckWait(namespace, room)
        self._waits[token] = wait
        wait.done.add_done_callback(lambda _: self._waits.pop(token, None))
        return {"method": HELLO, "token": token, "namespace": namespace, "room": room,
                "host_id": self.host_id}, wait

    def on_room_message(self, channel: str, data: Any) -> tuple[bool, dict[str, Any] | None]:
        """(whether it was a handshake message, the ack to publish for a hello)."""
        if not (isinstance(data, bytes) and data.startswith(CONTROL_PREFIX)):
            return False, None
        message = json.loads(data)
        if message.get("method") == HELLO:
            self.alone.discard(channel)
            self._epochs[channel] = self._epochs.get(channel, 0) + 1
            return True, {"method": ACK, "token": message.get("token"), "namespace": message.get("namespace"),
                          "room": message.get("room"), "host_id": self.host_id}
        if message.get("method") == ACK:
            wait = self._waits.get(message.get("token"))
            if wait is not None:
                wait.acked += 1
                wait.check()
        return True, None

    @staticmethod
    async def unanswered(waits: list[AckWait], within_s: float) -> list[AckWait]:
        """Wait (bounded) for the hellos' answers; those still unanswered."""
        pending = [w.done for w in waits if not w.done.done()]
        if pending:
            await asyncio.wait(pending, timeout=within_s)
        return [w for w in waits if not w.done.done()]
