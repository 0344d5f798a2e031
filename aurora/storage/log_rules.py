"""What a change entry does to the message it targets: the rules, on an in-memory copy of its state.

The writer loads each target once per batch, applies the batch's changes to it in order with these
functions (so an edit then a delete of the same message in one batch behave as if sent one by one),
then writes the final state back with the new entries, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from aurora.errors import AuroraError
from aurora.storage.models import Message
from aurora.storage.records import MESSAGE_KINDS


@dataclass(frozen=True)
class LogRules:
    edit_window_s: int = 0  # 0: no limit
    max_reactions: int = 50  # distinct emoji per message


@dataclass
class Target:
    """A message's row, the state the batch is changing."""

    row: Message
    sender_username: str
    reactions: list[list[Any]] = field(default_factory=list)  # [[emoji, [user ids]], ...]
    changed: bool = False
    erase_edits: bool = False
    # Index in the batch of the last item that changed it (its seq becomes the state_seq).
    last_change: int | None = None
    # A delete: the blobs of the files it detached.
    released: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, row: Message, sender_username: str) -> Target:
        return cls(row, sender_username, json.loads(row.reactions) if row.reactions else [])

    @property
    def is_message(self) -> bool:
        return self.row.kind in MESSAGE_KINDS

    def snapshot(self) -> dict[str, Any]:
        """The state as it is now, for the answer of the item that made (or found) it: a batch answers
        each item with the state after that item, as if the items had been stored one by one."""
        row = self.row
        return {"body": row.body, "edited_at": row.edited_at, "deleted": row.deleted,
                "reply_to_seq": row.reply_to_seq, "reactions": stored_reactions(self),
                "state_seq": row.state_seq, "last_change": self.last_change}

    def reactors(self, emoji: str) -> list[int] | None:
        for name, user_ids in self.reactions:
            if name == emoji:
                return user_ids
        return None


# What applying a change decided: "apply" (a new entry), "noop" (ok, nothing added), or an error.
APPLY, NOOP = "apply", "noop"


def _forbidden(message: str) -> AuroraError:
    return AuroraError("forbidden", message)


def _conflict(message: str) -> AuroraError:
    return AuroraError("conflict", message)


def apply_change(target: Target, kind: str, actor_id: int, rules: LogRules, now: dt.datetime, *,
                 body: str = "", emoji: str | None = None, added: bool = True) -> str:
    """Apply one change to target (in memory); returns APPLY or NOOP, or raises the refusal."""
    row = target.row
    if kind in ("edit", "delete"):
        if row.kind == "call":
            raise _forbidden("call summaries cannot be edited or deleted")
        if row.sender_id != actor_id:
            raise _forbidden("only the sender can edit or delete a message")
    if kind == "delete":
        if row.deleted:
            return NOOP
        row.deleted = True
        row.body, row.edited_at, row.reply_to_seq = "", None, None
        target.reactions = []
        target.erase_edits = True
        return APPLY
    if row.deleted:
        raise _conflict("the message has been deleted")
    if kind == "edit":
        if rules.edit_window_s and (now - row.created_at).total_seconds() > rules.edit_window_s:
            raise _conflict(f"messages can only be edited within {rules.edit_window_s} s of sending")
        row.body, row.edited_at = body, now
        return APPLY
    assert emoji is not None
    user_ids = target.reactors(emoji)
    if added:
        if user_ids is not None and actor_id in user_ids:
            return NOOP
        if user_ids is None:
            if len(target.reactions) >= rules.max_reactions:
                raise _conflict(f"a message can have at most {rules.max_reactions} different reactions")
            target.reactions.append([emoji, [actor_id]])
        else:
            user_ids.append(actor_id)
        return APPLY
    if user_ids is None or actor_id not in user_ids:
        return NOOP
    user_ids.remove(actor_id)
    if not user_ids:
        target.reactions = [r for r in target.reactions if r[0] != emoji]
    return APPLY


def stored_reactions(target: Target) -> str | None:
    return json.dumps(target.reactions, ensure_ascii=False) if target.reactions else None
