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


def as_message(entry: dict[str, Any], me: int | None) -> dict[str, Any]:
    """A message entry in the full current-state shape. Room broadcasts leave out `reactions[].me`
    (the same bytes go to every member), so it is computed here for every path alike."""
    message = copy.deepcopy(entry)
    message.setdefault("edited_at", None)
    message.setdefault("deleted", False)
    message.setdefault("reactions", [])
    message.setdefault("reply_to", None)
    message.setdefault("state_seq", message["seq"])
    for reaction in message["reactions"]:
        reaction["me"] = me in reaction.get("user_ids", [])
    return message


def apply_change(messages: dict[int, dict[str, Any]], entry: dict[str, Any],
                 me: int | None) -> list[dict[str, Any]]:
    """Apply a change entry to `messages` (seq -> message, changed in place) by the rules of
    docs/protocol.md "Applying the log"; return the messages it changed (the target first, then
    replies whose excerpt followed). An entry at or below the target's `state_seq` is already in
    that state (a sync page brings messages in their current state, then their change entries)."""
    kind = entry["kind"]
    target_seq = int(entry.get("target_seq") or 0)
    target = messages.get(target_seq)
    changed: list[dict[str, Any]] = []
    if target is not None and int(entry["seq"]) > int(target.get("state_seq", target["seq"])):
        if _apply_to_target(target, entry, me):
            changed.append(target)
        target["state_seq"] = int(entry["seq"])
    if kind in ("edit", "delete"):
        # Replies follow their target's text even when the target itself is not stored here.
        excerpt = None if kind == "delete" else excerpt_of(entry.get("body"))
        for message in messages.values():
            reply_to = message.get("reply_to")
            if reply_to and reply_to.get("seq") == target_seq and reply_to.get("excerpt") != excerpt:
                reply_to["excerpt"] = excerpt
                changed.append(message)
    return changed


def _apply_to_target(target: dict[str, Any], entry: dict[str, Any], me: int | None) -> bool:
    kind = entry["kind"]
    if kind == "edit":
        target["body"] = entry.get("body")
        target["edited_at"] = entry.get("created_at")
        return True
    if kind == "delete":
        # A deleted message carries nothing any more: erased, not hidden.
        target.update(deleted=True, body=None, edited_at=None, reactions=[], reply_to=None)
        if "attachments" in target:
            target["attachments"] = []
        return True
    if kind == "reaction":
        return _apply_reaction(target, entry, me)
    return False


def _apply_reaction(target: dict[str, Any], entry: dict[str, Any], me: int | None) -> bool:
    """One item per emoji in first-reacted order: an emoji joins the end when its count goes from 0
    to 1 and leaves when it drops to 0; user_ids in the order they reacted."""
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


# A reply's excerpt: the first 100 Unicode code points of the target's current body (the server's rule).
EXCERPT_CHARS = 100


def excerpt_of(body: str | None) -> str | None:
    return None if body is None else body[:EXCERPT_CHARS]
