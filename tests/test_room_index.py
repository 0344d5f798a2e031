"""The sid -> rooms index (aurora/realtime/room_index.py) keeps python-socketio's room table exactly as
upstream does, and answers get_rooms as upstream would, through any sequence of room changes."""

from __future__ import annotations

import random

from socketio.base_manager import BaseManager

from aurora.realtime.room_index import RoomIndexMixin


class Indexed(RoomIndexMixin, BaseManager):
    pass


def _pair() -> tuple[BaseManager, Indexed]:
    plain, indexed = BaseManager(), Indexed()
    return plain, indexed


def test_random_room_changes_leave_both_tables_equal() -> None:
    rng = random.Random(16)
    plain, indexed = _pair()
    sids: dict[str, list[str]] = {"/chat": [], "/calls": []}
    for step in range(3000):
        namespace = rng.choice(["/chat", "/calls"])
        action = rng.random()
        if action < 0.25 or not sids[namespace]:
            eio, sid = f"e{step}", f"s{step}"
            for manager in (plain, indexed):  # what BaseManager.connect does, with a known sid
                manager.basic_enter_room(sid, namespace, None, eio_sid=eio)
                manager.basic_enter_room(sid, namespace, sid, eio_sid=eio)
            sids[namespace].append(sid)
        elif action < 0.6:
            sid = rng.choice(sids[namespace])
            room = f"conversation:{rng.randrange(40)}"
            plain.basic_enter_room(sid, namespace, room)
            indexed.basic_enter_room(sid, namespace, room)
        elif action < 0.8:
            sid = rng.choice(sids[namespace])
            room = f"conversation:{rng.randrange(40)}"
            plain.basic_leave_room(sid, namespace, room)
            indexed.basic_leave_room(sid, namespace, room)
        elif action < 0.85:
            room = f"conversation:{rng.randrange(40)}"
            plain.basic_close_room(room, namespace)
            indexed.basic_close_room(room, namespace)
        else:
            sid = sids[namespace].pop(rng.randrange(len(sids[namespace])))
            plain.basic_disconnect(sid, namespace)
            indexed.basic_disconnect(sid, namespace)
        assert plain.rooms == indexed.rooms, step
        for sid in sids[namespace][-5:]:
            assert sorted(plain.get_rooms(sid, namespace)) == sorted(indexed.get_rooms(sid, namespace)), step
    assert plain.get_rooms("nobody", "/chat") == indexed.get_rooms("nobody", "/chat") == []
