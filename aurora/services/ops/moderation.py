"""Admin and moderation: the admin role, users, deactivation, deleting any message, reports, audit.

Every admin action writes an audit entry (who, what, on what, when): in the same transaction as the
change where the change is a plain row update; right after the commit for a message delete, which goes
through the one log writer like a sender's delete.
"""

from __future__ import annotations

import logging
from typing import Any

from aurora.errors import AuroraError, invalid
from aurora.services.messages import Messages
from aurora.services.ports import Notifier
from aurora.services.validation import conversation_id_of, id_of, optional_int, seq_of, storable_text
from aurora.storage import moderation as store
from aurora.storage import users as user_store
from aurora.storage.database import Storage

log = logging.getLogger(__name__)

PAGE_DEFAULT, PAGE_MAX = 50, 200
MAX_REASON_CHARS = 1000


class Moderation:
    def __init__(self, storage: Storage, notifier: Notifier, messages: Messages) -> None:
        self._storage = storage
        self._notifier = notifier
        self._messages = messages

    async def require_admin(self, user: dict[str, Any]) -> None:
        """Asked of the database each time (admin routes are rare): a revoked admin stops at once."""
        if not await self._storage.read(user_store.is_active_admin, user["id"]):
            raise AuroraError("forbidden", "this needs an admin account")

    async def users(self, admin: dict[str, Any], q: Any, limit: Any, offset: Any) -> list[dict[str, Any]]:
        await self.require_admin(admin)
        if q is not None and (not isinstance(q, str) or len(q) > 64):
            raise invalid("q must be a string of at most 64 characters")
        size = optional_int(limit, "limit", minimum=1, maximum=PAGE_MAX) or PAGE_DEFAULT
        skip = optional_int(offset, "offset", minimum=0) or 0
        return await self._storage.read(store.list_users, storable_text((q or "").strip(), "q"), size, skip)

    async def set_deactivated(self, admin: dict[str, Any], user_id: Any, deactivated: bool) -> dict[str, Any]:
        await self.require_admin(admin)
        uid = id_of(user_id, "user_id")
        user = await self._storage.write(store.set_deactivated_txn, uid, deactivated, admin["id"])
        if deactivated:
            # Like logout: every socket of theirs, on every process, closes now.
            await self._notifier.disconnect_user(uid)
            log.info("Admin %s deactivated user %s", admin["id"], uid)
        return user

    async def delete_message(self, admin: dict[str, Any], conversation_id: Any, seq: Any) -> dict[str, Any]:
        await self.require_admin(admin)
        cid, number = conversation_id_of(conversation_id), seq_of(seq, "seq")
        ack = await self._messages.moderate_delete(admin, cid, number)
        await self._storage.write(store.audit_txn, admin["id"], "message.delete", f"message:{cid}/{number}",
                                  {"duplicate": ack["duplicate"]})
        return ack

    async def reports(self, admin: dict[str, Any], limit: Any, before: Any) -> list[dict[str, Any]]:
        await self.require_admin(admin)
        size = optional_int(limit, "limit", minimum=1, maximum=PAGE_MAX) or PAGE_DEFAULT
        return await self._storage.read(store.list_reports, size, optional_int(before, "before", minimum=1))

    async def audit_log(self, admin: dict[str, Any], limit: Any, before: Any) -> list[dict[str, Any]]:
        await self.require_admin(admin)
        size = optional_int(limit, "limit", minimum=1, maximum=PAGE_MAX) or PAGE_DEFAULT
        return await self._storage.read(store.list_audit, size, optional_int(before, "before", minimum=1))

    async def report(self, user: dict[str, Any], conversation_id: Any, seq: Any,
                     reason: Any) -> tuple[dict[str, Any], bool]:
        cid, number = conversation_id_of(conversation_id), seq_of(seq, "seq")
        if reason is None:
            reason = ""
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            raise invalid(f"reason must be a string of at most {MAX_REASON_CHARS} characters")
        return await self._storage.write(store.add_report_txn, cid, number, user["id"],
                                         storable_text(reason.strip(), "reason"))

    # Command line (no event loop).
    def set_admin_sync(self, username: str, admin: bool) -> dict[str, Any]:
        return self._storage.run_sync(store.set_admin_txn, username, admin, None, write=True)
