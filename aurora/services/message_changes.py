"""Input checks of the change events (edit, delete, react) and the log items they become."""

from __future__ import annotations

import re
from typing import Any

import emoji as emoji_data

from aurora.errors import invalid
from aurora.services.validation import conversation_id_of, id_of
from aurora.storage.messages import NewMessage

MAX_EMOJI_CHARS = 32
# A short name such as :party_parrot: (custom emoji a client maps to an image).
_SHORT_NAME = re.compile(r":[a-z0-9_+\-]{1,30}:")


def check_emoji(value: Any) -> str:
    """One emoji (as the emoji package knows it: skin tones, ZWJ sequences and flags included) or a
    :short_name:; at most 32 characters either way."""
    if not isinstance(value, str) or not value or len(value) > MAX_EMOJI_CHARS:
        raise invalid(f"emoji must be one emoji or a :short_name: of at most {MAX_EMOJI_CHARS} characters")
    if _SHORT_NAME.fullmatch(value) or emoji_data.is_emoji(value):
        return value
    raise invalid("emoji must be one emoji or a :short_name: (1-30 of a-z 0-9 _ + - between colons)")


def change_item(kind: str, user: dict[str, Any], conversation_id: Any, seq: Any, *, body: str = "",
                client_id: str | None = None, emoji: str | None = None, added: bool = True) -> NewMessage:
    return NewMessage(
        conversation_id=conversation_id_of(conversation_id), sender_id=user["id"], body=body,
        client_id=client_id, kind=kind, target_seq=id_of(seq, "seq"), emoji=emoji, added=added,
    )
