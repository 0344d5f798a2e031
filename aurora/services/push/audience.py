"""Who of a conversation's members could be pushed to: an in-memory copy, so a stored message costs no
database read when nobody of its conversation has a push subscription (the common case) or everyone
who has one is online.

Per conversation the copy holds the members with a subscription in an open session and when their
mute ends. It may hold too many (a subscription deleted since: the send finds none, nothing is
pushed), never too few or a member who left, so every change that could add a candidate or remove a
member goes through `changed()`: a member added, a member leaving, a mute or unmute, a subscription
saved. That empties this process's copy at once and, with Redis, the other processes' within
AUDIENCE_POLL_S (services/cluster_version.py); while Redis does not answer the copy is not trusted
(every dispatch reads the database) until a poll succeeds. Each conversation's entry also expires
after AUDIENCE_TTL_S, bounding how long a change whose announcement was lost can go unseen, and at
most AUDIENCE_MAX conversations are kept (least recently used go first).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable

from aurora.services.cluster_version import ClusterVersion
from aurora.storage import push as push_store
from aurora.storage.database import Storage

AUDIENCE_POLL_S = 1.0
AUDIENCE_TTL_S = 60.0
AUDIENCE_MAX = 10_000

Audience = dict[int, dt.datetime | None]  # member id -> end of their mute (None: not muted)


class PushAudience:
    def __init__(self, storage: Storage, redis_url: str = "", prefix: str = "aurora",
                 clock: Callable[[], float] = time.monotonic, ttl_s: float = AUDIENCE_TTL_S,
                 capacity: int = AUDIENCE_MAX) -> None:
        self._storage = storage
        self._clock = clock
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._entries: OrderedDict[int, tuple[float, Audience]] = OrderedDict()  # id -> (expires at, audience)
        # Moves whenever the copy is emptied: a read that began before must not store what it found.
        self._generation = 0
        self._trusted = True
        self.reads = 0  # database reads made (shown in /health: a steady count means the copy serves)
        self.resets = 0  # times the copy was emptied by a change, here or announced by another process
        self.version = ClusterVersion("push-audience", self._forget_all, redis_url=redis_url, prefix=prefix,
                                      poll_s=AUDIENCE_POLL_S, on_unsure=self._distrust)

    def start(self) -> None:
        self.version.start()

    async def stop(self) -> None:
        await self.version.stop()

    async def changed(self) -> None:
        """After a committed change that could add a push candidate or remove a member."""
        await self.version.changed()

    def known(self, conversation_id: int) -> Audience | None:
        """The copy's audience of a conversation, without reading anything; None when not held."""
        entry = self._entries.get(conversation_id)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    async def of(self, conversation_ids: list[int]) -> dict[int, Audience]:
        """Each conversation's members with a subscription; the database is read only for the
        conversations the copy does not hold."""
        now = self._clock()
        found: dict[int, Audience] = {}
        missing: list[int] = []
        for cid in conversation_ids:
            entry = self._entries.get(cid)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(cid)
                found[cid] = entry[1]
            else:
                missing.append(cid)
        if not missing:
            return found
        generation = self._generation
        self.reads += 1
        loaded = await self._storage.read(push_store.subscribed_members, missing)
        keep = generation == self._generation and self._trusted
        expires = self._clock() + self._ttl_s
        for cid in missing:
            audience = dict(loaded.get(cid, {}))
            found[cid] = audience
            if keep:
                self._entries[cid] = (expires, audience)
                self._entries.move_to_end(cid)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return found

    async def _forget_all(self) -> None:
        self.resets += 1
        self._generation += 1
        self._entries.clear()
        self._trusted = True  # the counter was read (or this process made the change): in step again

    def _distrust(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._trusted = False
