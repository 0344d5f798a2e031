"""Reads behind the delivery trace: blocking functions, run through Storage."""

from __future__ import annotations

from typing import Any

import peewee as pw

from aurora.storage.models import Call, Membership, Message, User


def entry_facts(conversation_id: int, seq: int) -> dict[str, Any] | None:
    """The log entry at (conversation, seq) with its sender; None when there is none."""
    row = (Message.select(Message.kind, Message.sender, User.username, Message.created_at, Message.target_seq)
           .join(User, on=(Message.sender == User.id))
           .where((Message.conversation == conversation_id) & (Message.seq == seq)).tuples().first())
    if row is None:
        return None
    kind, sender_id, username, created_at, target_seq = row
    return {"conversation_id": conversation_id, "seq": seq, "kind": kind, "sender_id": sender_id,
            "sender_username": username, "created_at": created_at, "target_seq": target_seq}


def member_pointers(conversation_id: int) -> list[dict[str, Any]]:
    query = (Membership.select(Membership.user, User.username, Membership.joined_at, Membership.last_delivered_seq,
                               Membership.last_read_seq)
             .join(User, on=(Membership.user == User.id))
             .where(Membership.conversation == conversation_id).order_by(User.username_key).tuples())
    return [{"user_id": uid, "username": name, "joined_at": joined, "delivered_seq": delivered, "read_seq": read}
            for uid, name, joined, delivered, read in query]


def count_live_calls() -> dict[str, int]:
    """Calls not yet ended, by state (ringing | active): one GROUP BY on an indexed column."""
    query = (Call.select(Call.state, pw.fn.COUNT(Call.id).alias("n")).where(Call.state != "ended")
             .group_by(Call.state))
    return {row.state: row.n for row in query}
