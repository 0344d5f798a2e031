"""What the calls service pushes to /calls devices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import socketio

from aurora.realtime.rooms import CALLS_NAMESPACE, user_room


class CallNotifier:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    def sids_of_user(self, user_id: int) -> list[str]:
        return [sid for sid, _ in self.sio.manager.get_participants(CALLS_NAMESPACE, user_room(user_id))]

    async def to_users(self, event: str, data: dict[str, Any], user_ids: Iterable[int],
                       skip_sids: list[str] | None = None) -> None:
        rooms = [user_room(uid) for uid in user_ids]
        if rooms:
            await self.sio.emit(event, data, to=rooms, skip_sid=skip_sids or [], namespace=CALLS_NAMESPACE)

    async def to_sids(self, event: str, data: dict[str, Any], sids: Iterable[str]) -> None:
        for sid in sids:
            await self.sio.emit(event, data, to=sid, namespace=CALLS_NAMESPACE)
