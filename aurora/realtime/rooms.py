"""Room names are built here and nowhere else."""

from aurora.services.ports import CALLS_NAMESPACE, CHAT_NAMESPACE

__all__ = ["CALLS_NAMESPACE", "CHAT_NAMESPACE", "conversation_room", "user_room"]


def user_room(user_id: int) -> str:
    """Every socket of one user (all devices) in a namespace."""
    return f"user:{user_id}"


def conversation_room(conversation_id: int) -> str:
    """Every socket subscribed to one conversation's live events."""
    return f"conversation:{conversation_id}"
