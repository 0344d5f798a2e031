"""What this process did with each message, kept for a while: the delivery journal behind the trace.

Bounded ring buffers (collections.deque with maxlen) of recent events, in this process's memory:
- sockets of /chat: open now (a dict, as large as the connections) and recently closed (a ring);
- entries this process stored, and the live emits it handed to its own sockets (which sids);
- history served: a sync or a page of messages, which seqs went to which user's device.

Recording is one append to a deque (no I/O, no lock), so the send path does not slow down. A trace
asks every process for what it remembers of one message (trace_exchange.py); whatever fell off the
rings is reported as unknown, never guessed.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

DEFAULT_CAPACITY = 10000
MAX_DEVICE_CHARS = 60


def process_name() -> str:
    """How a process is named in traces: host and pid (what an operator finds with ps)."""
    return f"{socket.gethostname()}/{os.getpid()}"


def device_label(environ: dict[str, Any], auth: Any) -> str:
    """A short name for a client: the `device` it gives in its auth, else a summary of its User-Agent."""
    if isinstance(auth, dict) and isinstance(auth.get("device"), str) and auth["device"].strip():
        return auth["device"].strip()[:MAX_DEVICE_CHARS]
    agent = str(environ.get("HTTP_USER_AGENT", ""))
    lowered = agent.lower()
    for needle, label in (("iphone", "phone"), ("android", "phone"), ("mobile", "phone"), ("ipad", "tablet"),
                          ("electron", "desktop app"), ("node", "node client"), ("python", "python client"),
                          ("mozilla", "browser")):
        if needle in lowered:
            return label
    return agent[:MAX_DEVICE_CHARS] or "unknown device"


@dataclass
class SocketSession:
    sid: str
    user_id: int
    device: str
    transport: str
    opened_at: float
    process: str
    closed_at: float | None = None
    reason: str | None = None


class Emit(NamedTuple):
    """A plain tuple: made on the send path, where a dataclass costs several times more."""

    conversation_id: int
    seq: int
    at: float
    sids: list[str]


class Stored(NamedTuple):
    conversation_id: int
    seq: int
    at: float


@dataclass(frozen=True)
class Fetch:
    user_id: int
    sid: str | None
    device: str
    how: str  # sync | history
    conversation_id: int
    first_seq: int
    last_seq: int
    at: float


class DeliveryJournal:
    def __init__(self, process: str | None = None, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], float] = time.time) -> None:
        self.process = process or process_name()
        self.capacity = capacity
        self._clock = clock
        self.started_at = clock()
        self.open: dict[str, SocketSession] = {}
        self.closed: deque[SocketSession] = deque(maxlen=capacity)
        self.emits: deque[Emit] = deque(maxlen=capacity)
        self.stored: deque[Stored] = deque(maxlen=capacity)
        self.fetches: deque[Fetch] = deque(maxlen=capacity)

    # -- recording (cheap: called on hot paths) -----------------------------------
    def socket_opened(self, sid: str, user_id: int, device: str, transport: str) -> None:
        self.open[sid] = SocketSession(sid, user_id, device, transport, self._clock(), self.process)

    def socket_closed(self, sid: str, reason: str | None) -> None:
        session = self.open.pop(sid, None)
        if session is not None:
            session.closed_at, session.reason = self._clock(), reason
            self.closed.append(session)

    def entry_stored(self, conversation_id: int, seq: int) -> None:
        self.stored.append(Stored(conversation_id, seq, self._clock()))

    def emitted(self, conversation_id: int, seq: int, sids: list[str]) -> None:
        """`sids` is kept as given (the caller's fresh list, never changed afterwards)."""
        self.emits.append(Emit(conversation_id, seq, self._clock(), sids))

    def served(self, user_id: int, sid: str | None, how: str, messages: list[dict[str, Any]]) -> None:
        """History went to a user's device: one record per conversation, with the seqs it covered."""
        if not messages:
            return
        ranges: dict[int, list[int]] = {}
        for message in messages:
            cid, seq = message.get("conversation_id"), message.get("seq")
            if isinstance(cid, int) and isinstance(seq, int):
                low_high = ranges.setdefault(cid, [seq, seq])
                low_high[0], low_high[1] = min(low_high[0], seq), max(low_high[1], seq)
        session = self.open.get(sid) if sid else None
        device = session.device if session else "REST client"
        now = self._clock()
        for cid, (low, high) in ranges.items():
            self.fetches.append(Fetch(user_id, sid, device, how, cid, low, high, now))

    # -- answering a trace ---------------------------------------------------------
    def _covers_from(self) -> float:
        """The oldest moment this process's rings still describe."""
        oldest = self.started_at
        for ring in (self.closed, self.emits, self.stored, self.fetches):
            if len(ring) == ring.maxlen and ring:
                oldest = max(oldest, _time_of(ring[0]))
        return oldest

    def answer(self, conversation_id: int, seq: int, user_ids: list[int], since: float,
               transport_of: Callable[[str], str | None]) -> dict[str, Any]:
        """What this process knows of one entry and of the members' sockets since `since` (JSON-able)."""
        members = set(user_ids)
        sessions = []
        for session in self.open.values():
            if session.user_id in members:
                live = transport_of(session.sid) or session.transport
                sessions.append({**asdict(session), "transport": live})
        sessions += [asdict(s) for s in self.closed
                     if s.user_id in members and s.closed_at is not None and s.closed_at >= since]
        return {
            "process": self.process,
            "started_at": self.started_at,
            "covers_from": self._covers_from(),
            "stored": [s.at for s in self.stored if s.conversation_id == conversation_id and s.seq == seq],
            "emits": [{"at": e.at, "sids": list(e.sids)} for e in self.emits
                      if e.conversation_id == conversation_id and e.seq == seq],
            "sessions": sessions,
            "fetches": [asdict(f) for f in self.fetches
                        if f.user_id in members and f.conversation_id == conversation_id
                        and f.first_seq <= seq <= f.last_seq],
        }


def _time_of(record: SocketSession | Emit | Stored | Fetch) -> float:
    if isinstance(record, SocketSession):
        return record.closed_at or record.opened_at
    return record.at
