"""A member's mute of a conversation's push notifications: blocking functions, run through Storage."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aurora.errors import not_found
from aurora.storage.models import Membership, utcnow
from aurora.storage.records import iso

# "Until unmuted": one column answers "muted now?" with a single comparison.
MUTED_FOREVER = dt.datetime(9999, 12, 31)


def mute_record(conversation_id: int, muted_until: dt.datetime | None,
                now: dt.datetime | None = None) -> dict[str, Any]:
    """{muted, muted_until}: muted_until is null when not muted, or when muted until unmuted."""
    muted = muted_until is not None and muted_until > (now or utcnow())
    return {"conversation_id": conversation_id, "muted": muted,
            "muted_until": iso(muted_until) if muted and muted_until != MUTED_FOREVER else None}


def set_mute_txn(conversation_id: int, user_id: int, until: dt.datetime | None) -> dict[str, Any]:
    """Mute until a time (MUTED_FOREVER: until unmuted), or unmute with None."""
    updated = Membership.update(muted_until=until).where(
        (Membership.conversation == conversation_id) & (Membership.user == user_id)).execute()
    if not updated:
        raise not_found()
    return mute_record(conversation_id, until)
