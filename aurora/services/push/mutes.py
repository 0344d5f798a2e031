"""Muting a conversation's push notifications, for one member, forever or until a time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aurora.errors import invalid
from aurora.services.push.audience import PushAudience
from aurora.services.validation import conversation_id_of
from aurora.storage import mutes as store
from aurora.storage.database import Storage
from aurora.storage.models import utcnow


def parse_until(value: Any) -> dt.datetime:
    """An ISO-8601 time with a zone (2030-01-01T08:00:00Z), in the future; None: until unmuted."""
    if value is None:
        return store.MUTED_FOREVER
    if not isinstance(value, str) or len(value) > 40:
        raise invalid("until must be an ISO-8601 time with a time zone, e.g. 2030-01-01T08:00:00Z")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise invalid("until must be an ISO-8601 time with a time zone, e.g. 2030-01-01T08:00:00Z") from None
    if parsed.tzinfo is None:
        raise invalid("until must carry a time zone (Z or +hh:mm)")
    try:
        until = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:
        # Past the datetime range once in UTC: late on 9999-12-31 west of UTC (the far future: muted for
        # good) or early on 0001-01-01 east of it (the past).
        if parsed.year == dt.MAXYEAR:
            return store.MUTED_FOREVER
        raise invalid("until must be in the future") from None
    if until <= utcnow():
        raise invalid("until must be in the future")
    return min(until, store.MUTED_FOREVER)


class Mutes:
    def __init__(self, storage: Storage, audience: PushAudience | None) -> None:
        self._storage = storage
        self._audience = audience

    async def mute(self, user: dict[str, Any], conversation_id: Any, until: Any = None) -> dict[str, Any]:
        cid = conversation_id_of(conversation_id)
        state = await self._storage.write(store.set_mute_txn, cid, user["id"], parse_until(until))
        if self._audience is not None:
            await self._audience.changed()
        return state

    async def unmute(self, user: dict[str, Any], conversation_id: Any) -> dict[str, Any]:
        state = await self._storage.write(store.set_mute_txn, conversation_id_of(conversation_id), user["id"], None)
        if self._audience is not None:
            await self._audience.changed()
        return state
