"""Room names are built here and nowhere else."""

CHAT_NAMESPACE = "/chat"
CALLS_NAMESPACE = "/calls"


def user_room(user_id: int) -> str:
    """Every socket of one user (all devices) in a namespace."""
    return f"user:{user_id}"


def conversation_room(conversation_id: int) -> str:
    """Every socket subscribed to one conversation's live events."""
    return f"conversation:{conversation_id}"
