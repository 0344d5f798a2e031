"""What services push to clients, in one place: wraps sio.emit and room changes.

The REST path and the socket path both broadcast through this class, so a
message sent over HTTP reaches sockets exactly like one sent over a socket.
Room changes here act on this process's sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import socketio

from aurora.realtime.rooms import CALLS_NAMESPACE, CHAT_NAMESPACE, conversation_room, user_room
from aurora.services.socket_registry import LocalSocketRegistry

log = logging.getLogger(__name__)


class Notifier:
    """Implements aurora.services.ports.Notifier on python-socketio."""

    def __init__(self, sio: socketio.AsyncServer, registry: LocalSocketRegistry) -> None:
        self.sio = sio
        self.registry = registry

    # -- who is where ---------------------------------------------------
    async def sids_of_user(self, user_id: int, namespace: str = CHAT_NAMESPACE) -> list[str]:
        """Every socket of the user, on any process (room changes to remote sids go through the queue)."""
        return await self.registry.sids_of_user(namespace, user_id)

    async def subscribe_users(self, user_ids: Iterable[int], conversation_id: int) -> None:
        room = conversation_room(conversation_id)
        for user_id in user_ids:
            for sid in await self.sids_of_user(user_id):
                await self.sio.enter_room(sid, room, namespace=CHAT_NAMESPACE)

    async def unsubscribe_user(self, user_id: int, conversation_id: int) -> None:
        room = conversation_room(conversation_id)
        for sid in await self.sids_of_user(user_id):
            await self.sio.leave_room(sid, room, namespace=CHAT_NAMESPACE)

    async def disconnect_user(self, user_id: int) -> None:
        """Close every socket of the user, in both namespaces, on every process (after logout)."""
        for namespace in (CHAT_NAMESPACE, CALLS_NAMESPACE):
            for sid in await self.sids_of_user(user_id, namespace):
                await self.sio.disconnect(sid, namespace=namespace)

    # -- chat events ----------------------------------------------------
    async def new_message(self, message: dict[str, Any], skip_sid: str | None = None) -> int:
        """Emit new_message to the conversation's room; returns how many sockets here get it."""
        room = conversation_room(message["conversation_id"])
        count = sum(1 for sid, _ in self.sio.manager.get_participants(CHAT_NAMESPACE, room) if sid != skip_sid)
        await self.sio.emit("new_message", message, to=room, skip_sid=skip_sid, namespace=CHAT_NAMESPACE)
        return count

    async def emit_per_member(self, event: str, conversation_id: int, payloads: dict[int, dict[str, Any]],
                              skip_sid: str | None = None) -> int:
        """One payload per member (attachment URLs are signed per viewer), to each member's user room.

        A socket of this process that left the conversation's room (leave_conversation) is skipped, as a
        room emit would; returns how many sockets of this process get it."""
        manager = self.sio.manager
        in_room = {sid for sid, _ in manager.get_participants(CHAT_NAMESPACE, conversation_room(conversation_id))}
        count = 0
        for user_id, payload in payloads.items():
            room = user_room(user_id)
            mine = [sid for sid, _ in manager.get_participants(CHAT_NAMESPACE, room)]
            skip = [sid for sid in mine if sid not in in_room or sid == skip_sid]
            if skip_sid is not None and skip_sid not in skip:
                skip.append(skip_sid)
            count += sum(1 for sid in mine if sid not in skip)
            await self.sio.emit(event, payload, to=room, skip_sid=skip or None, namespace=CHAT_NAMESPACE)
        return count

    async def message_changed(self, entry: dict[str, Any], message: dict[str, Any],
                              skip_sid: str | None = None) -> None:
        """Emit message_changed {conversation_id, entry, message} to the conversation's room."""
        conversation_id = entry["conversation_id"]
        await self.sio.emit(
            "message_changed", {"conversation_id": conversation_id, "entry": entry, "message": message},
            to=conversation_room(conversation_id), skip_sid=skip_sid, namespace=CHAT_NAMESPACE,
        )

    async def conversation_created(self, conversation: dict[str, Any]) -> None:
        member_ids = [m["id"] for m in conversation["members"]]
        await self.subscribe_users(member_ids, conversation["id"])
        await self.sio.emit(
            "conversation_created", {"conversation": conversation},
            to=[user_room(uid) for uid in member_ids], namespace=CHAT_NAMESPACE,
        )

    async def members_added(self, conversation: dict[str, Any], added: list[dict[str, Any]]) -> None:
        await self.subscribe_users([u["id"] for u in added], conversation["id"])
        room = conversation_room(conversation["id"])
        for user in added:
            await self.sio.emit(
                "member_added", {"conversation_id": conversation["id"], "user": user, "conversation": conversation},
                to=room, namespace=CHAT_NAMESPACE,
            )

    async def member_removed(self, conversation_id: int, user: dict[str, Any]) -> None:
        # The leaver's devices hear it too (their other tabs must drop the conversation), then stop.
        await self.sio.emit(
            "member_removed", {"conversation_id": conversation_id, "user": user},
            to=[conversation_room(conversation_id), user_room(user["id"])], namespace=CHAT_NAMESPACE,
        )
        await self.unsubscribe_user(user["id"], conversation_id)

    async def receipt(self, conversation_id: int, user_id: int, delivered_seq: int, read_seq: int) -> None:
        await self.sio.emit(
            "receipt",
            {"conversation_id": conversation_id, "user_id": user_id,
             "delivered_seq": delivered_seq, "read_seq": read_seq},
            to=conversation_room(conversation_id), namespace=CHAT_NAMESPACE,
        )

    async def typing(self, conversation_id: int, user_id: int, typing: bool, not_to: Iterable[int] = ()) -> None:
        """To the conversation, except the typist's own sockets and those of the users in not_to."""
        skip = await self.sids_of_user(user_id)
        for other in not_to:
            skip += await self.sids_of_user(other)
        await self.sio.emit(
            "typing", {"conversation_id": conversation_id, "user_id": user_id, "typing": typing},
            to=conversation_room(conversation_id), skip_sid=skip, namespace=CHAT_NAMESPACE,
        )

    async def presence(self, user_id: int, online: bool, last_seen_at: str | None,
                       contact_ids: list[int]) -> None:
        if not contact_ids:
            return
        await self.sio.emit(
            "presence", {"user_id": user_id, "online": online, "last_seen_at": last_seen_at},
            to=[user_room(uid) for uid in contact_ids], namespace=CHAT_NAMESPACE,
        )
