"""A sid -> rooms index beside python-socketio's room table (issue 16: reconnect storms).

python-socketio 5.18.1's BaseManager finds a socket's rooms by scanning every room of the namespace:
`get_rooms` (what `sync` and typing use to see which rooms a socket is in) and `basic_disconnect`
(every disconnect, after copying the whole room table). With N sockets each in a few rooms that is
O(N) per call and O(N²) for a storm of N reconnects: at 2,000 sockets it was the largest single
cost in a profile of S6. This mixin keeps the reverse index up to date in `basic_enter_room` /
`basic_leave_room` (every other change goes through those two) and answers both from it. The rest
of `basic_disconnect` is upstream's, line for line.

Upstream note: the same index in BaseManager (socketio/base_manager.py) would make get_rooms and
basic_disconnect O(rooms of the socket) for every application.
"""

from __future__ import annotations

from typing import Any

from aurora.realtime.transport import DirectEmitManager


class RoomIndexMixin:
    rooms: dict[str, dict[Any, Any]]
    callbacks: dict[str, Any]
    pending_connect: dict[str, set[str]]
    pending_disconnect: dict[str, set[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        mine = self._rooms_of.get((namespace, sid))
        if mine is not None:
            mine.discard(room)
            if not mine:
                del self._rooms_of[(namespace, sid)]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [room for room in self._rooms_of.get((namespace, sid), ()) if room is not None]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        if sid in self.callbacks:
            del self.callbacks[sid]
        if namespace in self.pending_connect and sid in self.pending_connect[namespace]:
            self.pending_connect[namespace].remove(sid)
            if len(self.pending_connect[namespace]) == 0:
                del self.pending_connect[namespace]
        if namespace in self.pending_disconnect and sid in self.pending_disconnect[namespace]:
            self.pending_disconnect[namespace].remove(sid)
            if len(self.pending_disconnect[namespace]) == 0:
                del self.pending_disconnect[namespace]


class IndexedDirectEmitManager(RoomIndexMixin, DirectEmitManager):
    """The single-process manager: DirectEmitManager with the room index."""
