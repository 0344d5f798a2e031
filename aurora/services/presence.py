"""Who is online: a user is online while at least one /chat socket of theirs is connected anywhere."""

from __future__ import annotations

import logging
from typing import Any

from aurora.outages import log_failure
from aurora.services.batched_reads import BatchedRead
from aurora.services.blocks import Blocks
from aurora.services.ports import CHAT_NAMESPACE, Notifier
from aurora.services.socket_registry import LocalSocketRegistry
from aurora.storage import conversations as conversation_store
from aurora.storage import users as user_store
from aurora.storage.database import Storage

log = logging.getLogger(__name__)


class Presence:
    def __init__(self, storage: Storage, notifier: Notifier, registry: LocalSocketRegistry) -> None:
        self._storage = storage
        self._notifier = notifier
        self._registry = registry
        # A user's first socket tells their contacts: batched with concurrent connects (services/batched_reads.py).
        self._contact_reads: BatchedRead[int, list[int]] = BatchedRead(
            storage, conversation_store.contact_ids_for_users, list)
        # A user's last socket closing stamps last_seen: a storm of disconnects shares one commit.
        self._last_seen_writes: BatchedRead[int, str] = BatchedRead(
            storage, user_store.touch_last_seen, str, write=True)
        self.blocks: Blocks | None = None  # set by create_app: who blocked a user does not hear their presence

    async def annotate_users(self, users: list[dict[str, Any]]) -> list[dict[str, Any]]:
        online = await self._registry.online(CHAT_NAMESPACE, [u["id"] for u in users])
        return [{**u, "online": u["id"] in online} for u in users]

    async def annotate_user(self, user: dict[str, Any]) -> dict[str, Any]:
        return (await self.annotate_users([user]))[0]

    async def annotate(self, conversation: dict[str, Any]) -> dict[str, Any]:
        return {**conversation, "members": await self.annotate_users(conversation["members"])}

    async def socket_connected(self, user: dict[str, Any], first: bool) -> None:
        """After the socket was counted in the registry (realtime/base.py admit): tell the contacts
        when it is the user's first."""
        if first:
            contacts = await self._contacts(user["id"])
            await self._notifier.presence(user["id"], True, user.get("last_seen_at"), contacts)

    async def socket_disconnected(self, user: dict[str, Any], sid: str) -> None:
        if await self._registry.remove(CHAT_NAMESPACE, user["id"], sid):
            await self._went_offline(user["id"])

    async def users_gone(self, user_ids: list[int]) -> list[int]:
        """Users whose last sockets were on a process that died; returns those that failed (to retry)."""
        failed = []
        for user_id in user_ids:
            try:
                await self._went_offline(user_id)
            except Exception as exc:
                log_failure(exc, log, "reporting user %s offline", user_id)
                failed.append(user_id)
        return failed

    async def _went_offline(self, user_id: int) -> None:
        last_seen = await self._last_seen_writes.get(user_id)
        if await self._registry.online(CHAT_NAMESPACE, [user_id]):  # came back meanwhile
            return
        contacts = await self._contacts(user_id)
        await self._notifier.presence(user_id, False, last_seen, contacts)

    async def _contacts(self, user_id: int) -> list[int]:
        contacts = await self._contact_reads.get(user_id)
        blockers = self.blocks.blockers_of(user_id) if self.blocks is not None else set()
        return [c for c in contacts if c not in blockers]

    def connection_count(self) -> int:
        return self._registry.local_count()
