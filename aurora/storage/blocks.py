"""Blocks between users: blocking functions, run through Storage."""

from __future__ import annotations

from typing import Any

import peewee as pw

from aurora.storage.models import User, UserBlock
from aurora.storage.records import user_record


def block_txn(blocker_id: int, blocked_id: int) -> bool:
    """True when the block is new; a repeat changes nothing."""
    try:
        with UserBlock._meta.database.atomic():  # a savepoint: a racing duplicate rolls back only this
            UserBlock.create(blocker=blocker_id, blocked=blocked_id)
    except pw.IntegrityError:
        return False
    return True


def unblock_txn(blocker_id: int, blocked_id: int) -> bool:
    return UserBlock.delete().where((UserBlock.blocker == blocker_id) & (UserBlock.blocked == blocked_id)).execute() > 0


def blocked_users(blocker_id: int) -> list[dict[str, Any]]:
    rows = (User.select().join(UserBlock, on=(UserBlock.blocked == User.id))
            .where(UserBlock.blocker == blocker_id).order_by(UserBlock.id))
    return [user_record(u) for u in rows]


def all_blocks() -> list[tuple[int, int]]:
    """Every (blocker, blocked) pair: the in-memory mirror each process keeps (services/blocks.py)."""
    return [(b.blocker_id, b.blocked_id) for b in UserBlock.select(UserBlock.blocker, UserBlock.blocked)]


def direct_conversations(pairs: list[tuple[int, int]]) -> dict[str, int]:
    """direct_key -> conversation id, for the DMs of these pairs that exist."""
    from aurora.storage.models import Conversation

    keys = list({"{}:{}".format(*sorted(pair)) for pair in pairs})
    found: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        rows = Conversation.select(Conversation.id, Conversation.direct_key).where(
            Conversation.direct_key.in_(keys[start:start + 500]))
        found.update({c.direct_key: c.id for c in rows})
    return found
