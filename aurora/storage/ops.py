"""Reads behind the delivery trace: blocking functions, run through Storage."""

from __future__ import annotations

from typing import Any

import peewee as pw

from aurora.storage.models import Call, Membership, Message, User


def entry_facts(conversation_id: int, seq: int) -> dict[str, Any] | None:
    """The log entry at (conversation, seq) with its sender; None when there is none."""
    row = (Message.select(Message, User.username).join(User, on=(Message.sender == User.id))
           .where((Message.conversation == conversation_id) & (Message.seq == seq)).first())
    if row is None:
        return None
    return {"conversation_id": conversation_id, "seq": seq, "kind": row.kind, "sender_id": row.sender_id,
            "sender_username": row.sender.username, "created_at": row.created_at, "target_seq": row.target_seq}


def member_pointers(conversation_id: int) -> list[dict[str, Any]]:
    query = (Membership.select(Membership, User.username).join(User)
             .where(Membership.conversation == conversation_id).order_by(User.username_key))
    return [{"user_id": m.user_id, "username": m.user.username, "joined_at": m.joined_at,
             "delivered_seq": m.last_delivered_seq, "read_seq": m.last_read_seq} for m in query]


def count_live_calls() -> dict[str, int]:
    """Calls not yet ended, by state (ringing | active): one GROUP BY on an indexed column."""
    query = (Call.select(Call.state, pw.fn.COUNT(Call.id).alias("n")).where(Call.state != "ended")
             .group_by(Call.state))
    return {row.state: row.n for row in query}
