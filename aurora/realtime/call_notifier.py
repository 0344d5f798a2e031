"""What the calls service pushes to /calls devices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import socketio

from aurora.realtime.rooms import CALLS_NAMESPACE, user_room
from aurora.services.socket_registry import LocalSocketRegistry


class CallNotifier:
    """Implements aurora.services.ports.CallNotifier on python-socketio."""

    def __init__(self, sio: socketio.AsyncServer, registry: LocalSocketRegistry) -> None:
        self.sio = sio
        self.registry = registry

    async def sids_of_user(self, user_id: int) -> list[str]:
        """Every /calls device of the user, on any process."""
        return await self.registry.sids_of_user(CALLS_NAMESPACE, user_id)

    async def to_users(self, event: str, data: dict[str, Any], user_ids: Iterable[int],
                       skip_sids: list[str] | None = None) -> None:
        rooms = [user_room(uid) for uid in user_ids]
        if rooms:
            await self.sio.emit(event, data, to=rooms, skip_sid=skip_sids or [], namespace=CALLS_NAMESPACE)

    async def to_sids(self, event: str, data: dict[str, Any], sids: Iterable[str]) -> None:
        for sid in sids:
            await self.sio.emit(event, data, to=sid, namespace=CALLS_NAMESPACE)
