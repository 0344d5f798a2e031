"""Blocks: a user stops another from reaching them (DMs, group adds, calls, typing, presence).

Every process keeps the whole block table in memory (pairs are few; each check is a set look-up, so
the send path pays nothing), plus the ids of the direct conversations between blocked pairs. The
process that changes a block updates its copy at once; with Redis the others follow within
BLOCKS_POLL_S (aurora/services/cluster_version.py). Messages of a blocked user in
a group the two share are delivered unchanged: clients hide them by sender with GET /api/blocks.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from aurora.errors import AuroraError, invalid
from aurora.services.cluster_version import ClusterVersion
from aurora.services.validation import id_of
from aurora.storage import blocks as store
from aurora.storage import users as user_store
from aurora.storage.database import Storage

log = logging.getLogger(__name__)

BLOCKS_POLL_S = 1.0


class Blocks:
    def __init__(self, storage: Storage, redis_url: str = "", prefix: str = "aurora") -> None:
        self._storage = storage
        self._blockers_of: dict[int, set[int]] = defaultdict(set)
        # direct conversation id -> the member(s) of it that are blocked by the other
        self._blocked_in_direct: dict[int, set[int]] = {}
        self._version = ClusterVersion("blocks", self._reload, redis_url=redis_url, prefix=prefix,
                                       poll_s=BLOCKS_POLL_S)

    # -- the in-memory copy ----------------------------------------------------
    async def start(self) -> None:
        await self._reload()
        self._version.start()

    async def stop(self) -> None:
        await self._version.stop()

    async def _reload(self) -> None:
        pairs = await self._storage.read(store.all_blocks)
        direct = await self._storage.read(store.direct_conversations, pairs) if pairs else {}
        blockers_of: dict[int, set[int]] = defaultdict(set)
        blocked_in_direct: dict[int, set[int]] = defaultdict(set)
        for blocker, blocked in pairs:
            blockers_of[blocked].add(blocker)
            conversation_id = direct.get("{}:{}".format(*sorted((blocker, blocked))))
            if conversation_id is not None:
                blocked_in_direct[conversation_id].add(blocked)
        self._blockers_of, self._blocked_in_direct = blockers_of, dict(blocked_in_direct)

    async def _changed(self) -> None:
        await self._version.changed()

    # -- checks (no awaiting: usable on the send path) ---------------------------
    def blockers_of(self, user_id: int) -> set[int]:
        """Users who blocked user_id."""
        return self._blockers_of.get(user_id, set())

    def between(self, a: int, b: int) -> bool:
        """Either of the two blocked the other."""
        return a in self.blockers_of(b) or b in self.blockers_of(a)

    def check_send(self, sender_id: int, conversation_id: int) -> None:
        """A blocked user cannot write into the direct conversation with the blocker."""
        if sender_id in self._blocked_in_direct.get(conversation_id, ()):
            raise AuroraError("forbidden", "this user does not accept messages from you")

    def check_reach(self, user_id: int, others: list[int]) -> None:
        """Refuse a DM, group or member add that would reach someone who blocked user_id
        (or, for a DM, someone user_id blocked)."""
        blockers = self.blockers_of(user_id)
        if any(o in blockers for o in others):
            raise AuroraError("forbidden", "a user you named does not accept conversations from you")

    # -- the routes ----------------------------------------------------------------
    async def block(self, user: dict[str, Any], target: Any) -> bool:
        target_id = self._target(user, target)
        if not await self._storage.read(user_store.existing_user_ids, [target_id]):
            raise AuroraError("not_found", "user not found")
        created = await self._storage.write(store.block_txn, user["id"], target_id)
        if created:
            await self._changed()
        return created

    async def unblock(self, user: dict[str, Any], target: Any) -> bool:
        removed = await self._storage.write(store.unblock_txn, user["id"], self._target(user, target))
        if removed:
            await self._changed()
        return removed

    async def listed(self, user: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._storage.read(store.blocked_users, user["id"])

    @staticmethod
    def _target(user: dict[str, Any], target: Any) -> int:
        target_id = id_of(target, "user id")
        if target_id == user["id"]:
            raise invalid("you cannot block yourself")
        return target_id
