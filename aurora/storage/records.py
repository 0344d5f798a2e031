"""Rows to plain dicts, shaped as the API sends them.

Storage hands only plain data upward, so no lazy foreign-key access can ever
run a query on the event loop.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from typing import Any

from aurora.storage.models import Conversation, Message, User


def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2026-11-25T20:22:03.123Z."""
    if value is None:
        return None
    return _iso(value)


@functools.lru_cache(maxsize=64)  # a batch of entries shares one created_at
def _iso(value: dt.datetime) -> str:
    # isoformat, not strftime: half the cost, and four-digit years as ISO 8601 has them. Stored times
    # are naive UTC; an aware one is shown in UTC too.
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def user_record(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "created_at": iso(user.created_at),
        "last_seen_at": iso(user.last_seen_at),
    }


@dataclass(slots=True)
class EntryRow:
    """A log entry just written by the writer: the fields of a Message row, without building a Peewee
    model per entry on the hot path (message_record reads either)."""

    conversation_id: int
    seq: int
    kind: str
    sender_id: int
    body: str
    client_id: str | None
    created_at: dt.datetime
    extra: str | None = None
    target_seq: int | None = None
    emoji: str | None = None
    added: bool | None = None
    reply_to_seq: int | None = None
    id: int = 0
    edited_at: dt.datetime | None = None
    deleted: bool | None = None
    reactions: str | None = None
    state_seq: int | None = None


MESSAGE_KINDS = ("text", "call")
CHANGE_KINDS = ("edit", "delete", "reaction")
EXCERPT_CHARS = 100


def excerpt(body: str, deleted: bool) -> str | None:
    """What a reply shows of its target: the first 100 code points of its current text."""
    return None if deleted or not body else body[:EXCERPT_CHARS]


def reply_record(target: Message | EntryRow, sender_username: str) -> dict[str, Any]:
    return {"seq": target.seq, "sender_id": target.sender_id, "sender_username": sender_username,
            "excerpt": excerpt(target.body, bool(target.deleted))}


def message_record(message: Message | EntryRow, sender_username: str, reply_to: dict[str, Any] | None = None,
                   attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A log entry as the API sends it: a message in its current state, or a change entry.

    reply_to is the reply_record of the message's target (None if it replies to nothing); reactions
    carry no `me`: that is per viewer (see for_viewer)."""
    record: dict[str, Any] = {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "kind": message.kind,
        "sender_id": message.sender_id,
        "sender_username": sender_username,
        "client_id": message.client_id,
        "created_at": iso(message.created_at),
    }
    if message.kind in CHANGE_KINDS:
        record["target_seq"] = message.target_seq
        if message.kind == "edit":
            record["body"] = message.body or None  # erased when the target was deleted
        elif message.kind == "reaction":
            record["emoji"] = message.emoji
            record["added"] = bool(message.added)
        return record
    deleted = bool(message.deleted)
    record["body"] = None if deleted else message.body
    record["edited_at"] = iso(message.edited_at)
    record["deleted"] = deleted
    record["reactions"] = [
        {"emoji": emoji, "count": len(user_ids), "user_ids": user_ids}
        for emoji, user_ids in (json.loads(message.reactions) if message.reactions else [])
    ]
    record["reply_to"] = reply_to if message.reply_to_seq is not None else None
    record["state_seq"] = message.state_seq if message.state_seq is not None else message.seq
    # Files (storage/uploads.attachment_record); their url and thumbnail_url are signed per viewer by
    # the service layer for each response (services/files/urls.py).
    record["attachments"] = attachments or []
    if message.extra:
        record.update(json.loads(message.extra))
    return record


def for_viewer(record: dict[str, Any], viewer_id: int) -> dict[str, Any]:
    """The record as one user sees it: each reaction says whether that user is among its reactors."""
    reactions = record.get("reactions")
    if not reactions:
        return record
    return {**record, "reactions": [{**r, "me": viewer_id in r["user_ids"]} for r in reactions]}


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
