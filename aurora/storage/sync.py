"""Catching up: the entries after each of a device's cursors, a batch of cursors per query.

(It replaced a version in storage/messages.py that ran one query per conversation: a sync with
10,000 cursors cost 10,000 queries.)
"""

from __future__ import annotations

from typing import Any

import peewee as pw

from aurora.errors import AuroraError
from aurora.storage.messages import records_of
from aurora.storage.models import Membership, Message, User

# Conversations per query: bounds the statement's size (and its parameters) on both databases.
CURSORS_PER_QUERY = 200


def _any_of(conditions: list[pw.Expression]) -> pw.Expression:
    """OR of the conditions as a balanced tree (a left-deep chain of 200 overflows SQLite's parser)."""
    if len(conditions) == 1:
        return conditions[0]
    middle = len(conditions) // 2
    return _any_of(conditions[:middle]) | _any_of(conditions[middle:])


def sync_messages(user_id: int, cursors: dict[int, int], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Messages after each cursor, ascending by (conversation id, seq), at most limit in all;
    has_more tells whether anything lies beyond them."""
    ids = sorted(cursors)
    mine: set[int] = set()
    for start in range(0, len(ids), CURSORS_PER_QUERY * 5):
        chunk = ids[start:start + CURSORS_PER_QUERY * 5]
        mine.update(m.conversation_id for m in Membership.select(Membership.conversation).where(
            (Membership.user == user_id) & Membership.conversation.in_(chunk)))
    missing = [cid for cid in ids if cid not in mine]
    if missing:
        listed = ", ".join(str(cid) for cid in missing)
        raise AuroraError("not_found", f"conversation not found: {listed} (drop these cursors and sync again)")
    messages: list[dict[str, Any]] = []
    for start in range(0, len(ids), CURSORS_PER_QUERY):
        room = limit - len(messages)
        batch = ids[start:start + CURSORS_PER_QUERY]
        # seq is gapless within a conversation (every entry of its log takes the next one), so the
        # first room + 1 entries after a cursor lie within room + 1 of it: the bound lets each
        # conversation's index range stop there instead of reading its whole backlog.
        window = max(room, 0) + 1
        condition = _any_of([
            (Message.conversation == cid) & (Message.seq > cursors[cid]) & (Message.seq <= cursors[cid] + window)
            for cid in batch
        ])
        rows = records_of(list(
            Message.select(Message, User.username)
            .join(User, on=(Message.sender == User.id))
            .where(condition)
            .order_by(Message.conversation, Message.seq)
            .limit(window)
            .objects()
        ))
        if len(rows) > room:
            messages.extend(rows[:room])
            return messages, True
        messages.extend(rows)
    return messages, False
