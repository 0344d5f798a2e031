"""Rows to plain dicts, shaped as the API sends them.

Storage hands only plain data upward, so no lazy foreign-key access can ever
run a query on the event loop.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aurora.storage.models import Conversation, Message, User


def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2026-11-25T20:22:03.123Z."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def user_record(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "created_at": iso(user.created_at),
        "last_seen_at": iso(user.last_seen_at),
    }


def message_record(message: Message, sender_username: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "kind": message.kind,
        "sender_id": message.sender_id,
        "sender_username": sender_username,
        "body": message.body,
        "client_id": message.client_id,
        "created_at": iso(message.created_at),
    }
    if message.extra:
        record.update(json.loads(message.extra))
    return record


def conversation_record(conversation: Conversation, members: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "kind": conversation.kind,
        "title": conversation.title,
        "members": members,
        "created_at": iso(conversation.created_at),
        "last_seq": conversation.last_seq,
        "last_activity_at": iso(conversation.last_activity_at),
    }
