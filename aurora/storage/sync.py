"""Catching up: the user's conversations with their last seqs, and the entries after each of a
device's cursors that is behind, a batch of cursors per query; all of it in one call on a storage
thread (one hop for a `sync`).

(It replaced a version in storage/messages.py that ran one query per conversation: a sync with
10,000 cursors cost 10,000 queries.)
"""

from __future__ import annotations

from typing import Any

import peewee as pw

from aurora.errors import AuroraError
from aurora.storage.conversations import last_seqs_for_user
from aurora.storage.messages import records_of
from aurora.storage.models import Message, User

# Conversations per query: bounds the statement's size (and its parameters) on both databases.
CURSORS_PER_QUERY = 200


def _any_of(conditions: list[pw.Expression]) -> pw.Expression:
    """OR of the conditions as a balanced tree (a left-deep chain of 200 overflows SQLite's parser)."""
    if len(conditions) == 1:
        return conditions[0]
    middle = len(conditions) // 2
    return _any_of(conditions[:middle]) | _any_of(conditions[middle:])


def catch_up(user_id: int, cursors: dict[int, int],
             limit: int) -> tuple[list[dict[str, Any]], bool, list[dict[str, int]]]:
    """(messages after each cursor, ascending by (conversation id, seq), at most limit in all;
    has_more: whether anything lies beyond them; every conversation of the user with its last_seq).

    The conversations are read first: they prove that every cursor names one of the user's
    conversations, and a cursor at its conversation's last_seq needs no query at all (after a
    reconnect most are). A message stored after that read may still be among the messages; its
    conversation's last_seq is raised to it, so the answer never says less than it holds. One stored
    later than the whole answer reaches the socket live: its rooms were entered before it could sync.
    """
    conversations = last_seqs_for_user(user_id)
    last_seq = {c["id"]: c["last_seq"] for c in conversations}
    missing = [cid for cid in sorted(cursors) if cid not in last_seq]
    if missing:
        listed = ", ".join(str(cid) for cid in missing)
        raise AuroraError("not_found", f"conversation not found: {listed} (drop these cursors and sync again)")
    behind = {cid: seq for cid, seq in cursors.items() if seq < last_seq[cid]}
    messages, has_more = _entries_after(behind, limit)
    for message in messages:
        conversation_id = message["conversation_id"]
        if message["seq"] > last_seq[conversation_id]:
            last_seq[conversation_id] = message["seq"]
    for conversation in conversations:
        conversation["last_seq"] = last_seq[conversation["id"]]
    return messages, has_more, conversations


def _entries_after(cursors: dict[int, int], limit: int) -> tuple[list[dict[str, Any]], bool]:
    ids = sorted(cursors)
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
