"""Room names are built here and nowhere else."""

from collections.abc import Iterable

from aurora.services.ports import CALLS_NAMESPACE, CHAT_NAMESPACE

__all__ = ["CALLS_NAMESPACE", "CHAT_NAMESPACE", "conversation_room", "user_of_rooms", "user_room"]


def user_room(user_id: int) -> str:
    """Every socket of one user (all devices) in a namespace."""
    return f"user:{user_id}"


def user_of_rooms(rooms: Iterable[str]) -> int | None:
    """The user whose room a socket is in (every connected socket is in exactly one), else None.

    Disconnect handlers read the user here rather than from the socket's session: python-socketio
    keeps sessions in the Engine.IO session, which can be gone before the last namespace of a
    shared connection is handled, while a socket's rooms last until its disconnect handler returns."""
    for room in rooms:
        if room.startswith("user:") and room[5:].isdigit():
            return int(room[5:])
    return None


def conversation_room(conversation_id: int) -> str:
    """Every socket subscribed to one conversation's live events."""
    return f"conversation:{conversation_id}"
