"""The message a finished call leaves in its conversation (kind "call")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aurora.storage.messages import NewMessage


def _parse(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


def duration_s(call: dict[str, Any]) -> int:
    answered, ended = _parse(call["answered_at"]), _parse(call["ended_at"])
    if answered is None or ended is None:
        return 0
    return max(0, round((ended - answered).total_seconds()))


def describe(call: dict[str, Any]) -> str:
    """A readable line: "Missed video call", "Declined audio call", "Video call, 3 min"."""
    media = call["media"]
    if call["answered_at"] is None:
        if call["end_reason"] == "rejected":
            return f"Declined {media} call"
        if call["end_reason"] == "busy":
            return f"Missed {media} call (busy)"
        return f"Missed {media} call"
    seconds = duration_s(call)
    length = f"{seconds} s" if seconds < 60 else f"{round(seconds / 60)} min"
    return f"{media.capitalize()} call, {length}"


def summary_message(call: dict[str, Any]) -> NewMessage:
    return NewMessage(
        conversation_id=call["conversation_id"],
        sender_id=call["caller_id"],
        body=describe(call),
        client_id=f"call:{call['id']}",  # ending the same call twice never leaves two summaries
        kind="call",
        system=True,
        extra={"call": {"id": call["id"], "media": call["media"], "end_reason": call["end_reason"],
                        "duration_s": duration_s(call)}},
    )
