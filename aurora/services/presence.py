"""Who is online: a user is online while at least one /chat socket of theirs is connected."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aurora.realtime.notifier import Notifier
from aurora.storage import conversations as conversation_store
from aurora.storage import users as user_store
from aurora.storage.database import Storage


class Presence:
    def __init__(self, storage: Storage, notifier: Notifier) -> None:
        self._storage = storage
        self._notifier = notifier
        # Sockets per user on this process (rebuilt naturally: it counts live connections).
        self._sockets: Counter[int] = Counter()

    def is_online(self, user_id: int) -> bool:
        return self._sockets[user_id] > 0

    def annotate_user(self, user: dict[str, Any]) -> dict[str, Any]:
        return {**user, "online": self.is_online(user["id"])}

    def annotate(self, conversation: dict[str, Any]) -> dict[str, Any]:
        return {**conversation, "members": [self.annotate_user(m) for m in conversation["members"]]}

    async def socket_connected(self, user: dict[str, Any]) -> None:
        self._sockets[user["id"]] += 1
        if self._sockets[user["id"]] == 1:
            contacts = await self._storage.read(conversation_store.contact_ids, user["id"])
            await self._notifier.presence(user["id"], True, user.get("last_seen_at"), contacts)

    async def socket_disconnected(self, user: dict[str, Any]) -> None:
        self._sockets[user["id"]] -= 1
        if self._sockets[user["id"]] <= 0:
            del self._sockets[user["id"]]
            last_seen = await self._storage.write(user_store.touch_last_seen, user["id"])
            if self.is_online(user["id"]):  # came back while we were writing
                return
            contacts = await self._storage.read(conversation_store.contact_ids, user["id"])
            await self._notifier.presence(user["id"], False, last_seen, contacts)

    def connection_count(self) -> int:
        return sum(self._sockets.values())
