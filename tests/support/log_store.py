"""A client-side store that applies a conversation log by the rules of docs/protocol.md
("Applying the log"): what an SDK does, used to check state + events = re-fetched state."""

from __future__ import annotations

import copy
from typing import Any

MESSAGE_KINDS = ("text", "call")
EXCERPT_CHARS = 100


class LogStore:
    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.cursors: dict[int, int] = {}
        self.applied: list[int] = []  # seqs applied, in order (for gap checks)

    def apply(self, entry: dict[str, Any]) -> str:
        """Apply one entry (from new_message, message_changed's entry, or sync); returns what happened."""
        cid, seq = entry["conversation_id"], entry["seq"]
        have = self.cursors.get(cid, 0)
        if seq <= have:
            return "duplicate"
        if seq > have + 1:
            return "gap"
        self.cursors[cid] = seq
        self.applied.append(seq)
        if entry["kind"] in MESSAGE_KINDS:
            self.messages[(cid, seq)] = copy.deepcopy(entry)
            return "applied"
        target = self.messages.get((cid, entry["target_seq"]))
        if entry["kind"] in ("edit", "delete"):
            excerpt = None if entry["kind"] == "delete" or not entry.get("body") else entry["body"][:EXCERPT_CHARS]
            for message in self.messages.values():
                if (message["conversation_id"] == cid and message.get("reply_to")
                        and message["reply_to"]["seq"] == entry["target_seq"]):
                    message["reply_to"]["excerpt"] = excerpt
        if target is None or seq <= target["state_seq"]:
            return "skipped"
        if entry["kind"] == "edit":
            target["body"] = entry["body"]
            target["edited_at"] = entry["created_at"]
        elif entry["kind"] == "delete":
            target.update(deleted=True, body=None, edited_at=None, reactions=[], reply_to=None)
        else:
            reactions = target["reactions"]
            item = next((r for r in reactions if r["emoji"] == entry["emoji"]), None)
            if entry["added"]:
                if item is None:
                    item = {"emoji": entry["emoji"], "count": 0, "user_ids": []}
                    reactions.append(item)
                if entry["sender_id"] not in item["user_ids"]:
                    item["user_ids"].append(entry["sender_id"])
            elif item is not None and entry["sender_id"] in item["user_ids"]:
                item["user_ids"].remove(entry["sender_id"])
                if not item["user_ids"]:
                    reactions.remove(item)
            for r in reactions:
                r["count"] = len(r["user_ids"])
        target["state_seq"] = seq
        return "applied"

    def view(self, conversation_id: int) -> list[dict[str, Any]]:
        """The messages of a conversation, as REST history shows them to this user (me filled in)."""
        out = []
        for (cid, _), message in sorted(self.messages.items()):
            if cid != conversation_id:
                continue
            shown = copy.deepcopy(message)
            for r in shown["reactions"]:
                r["me"] = self.user_id in r["user_ids"]
            out.append(shown)
        return out
