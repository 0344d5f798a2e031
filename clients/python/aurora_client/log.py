"""Applying a conversation's ordered log to message state: the client half of "state + events =
re-fetched state". Pure functions over plain dicts, so every store and every path (live, sync,
acks) applies an entry the same way.

An entry is a message (kind "text", "call", ...) or a change entry (kind "edit", "delete",
"reaction") whose `target_seq` names the message it changes.
"""

from __future__ import annotations

import copy
from typing import Any

CHANGE_KINDS = frozenset({"edit", "delete", "reaction"})


def is_change(entry: dict[str, Any]) -> bool:
    return entry.get("kind") in CHANGE_KINDS


def as_message(entry: dict[str, Any]) -> dict[str, Any]:
    """A message entry in the full current-state shape (fields a fresh message has by default)."""
    message = copy.deepcopy(entry)
    message.setdefault("edited_at", None)
    message.setdefault("deleted", False)
    message.setdefault("reactions", [])
    message.setdefault("reply_to", None)
    return message


def apply_change(messages: dict[int, dict[str, Any]], entry: dict[str, Any],
                 me: int | None) -> list[dict[str, Any]]:
    """Apply a change entry to `messages` (seq -> message, changed in place); return the messages
    it changed (the target first, then replies whose excerpt followed), empty when it changed nothing
    (unknown target, a repeated reaction)."""
    target = messages.get(int(entry.get("target_seq") or 0))
    if target is None:
        return []
    kind = entry["kind"]
    if kind == "edit":
        if target.get("deleted"):
            return []
        target["body"] = entry.get("body")
        target["edited_at"] = entry.get("created_at")
        return [target, *_refresh_reply_excerpts(messages, target)]
    if kind == "delete":
        if target.get("deleted"):
            return []
        target["deleted"] = True
        target["body"] = None
        # A deleted message carries nothing any more (docs/protocol.md, message state).
        target["reactions"] = []
        if "attachments" in target:
            target["attachments"] = []
        return [target, *_refresh_reply_excerpts(messages, target)]
    if kind == "reaction":
        return [target] if _apply_reaction(target, entry, me) else []
    return []


def _apply_reaction(target: dict[str, Any], entry: dict[str, Any], me: int | None) -> bool:
    emoji = entry.get("emoji")
    user_id = entry.get("sender_id")
    reactions: list[dict[str, Any]] = target.setdefault("reactions", [])
    found = next((r for r in reactions if r["emoji"] == emoji), None)
    if entry.get("added", True):
        if found is None:
            found = {"emoji": emoji, "count": 0, "user_ids": [], "me": False}
            reactions.append(found)
        if user_id in found["user_ids"]:
            return False
        found["user_ids"].append(user_id)
    else:
        if found is None or user_id not in found["user_ids"]:
            return False
        found["user_ids"].remove(user_id)
        if not found["user_ids"]:
            reactions.remove(found)
    found["count"] = len(found["user_ids"])
    found["me"] = me in found["user_ids"]
    return True


def excerpt_of(message: dict[str, Any]) -> str | None:
    """The excerpt a reply shows of its target: None once the target is deleted."""
    if message.get("deleted") or message.get("body") is None:
        return None
    body = str(message["body"])
    return body[:EXCERPT_CHARS]


# How many characters of the target a reply's excerpt keeps (the server's rule).
EXCERPT_CHARS = 100


def _refresh_reply_excerpts(messages: dict[int, dict[str, Any]], target: dict[str, Any]) -> list[dict[str, Any]]:
    """Replies show the target's current text: follow an edit, blank on a delete."""
    changed = []
    excerpt = excerpt_of(target)
    for message in messages.values():
        reply_to = message.get("reply_to")
        if reply_to and reply_to.get("seq") == target["seq"] and reply_to.get("excerpt") != excerpt:
            reply_to["excerpt"] = excerpt
            changed.append(message)
    return changed
