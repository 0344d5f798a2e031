"""Sockets outlive the check of their token at connect; this closes the ones whose right to stay has ended.

Each process watches its own sockets. Every `auth_check_interval_s` it closes, with an
`closing` event ({code, message}) right before the disconnect:
- sockets whose token has expired (`auth_expired`), without asking anyone;
- sockets of device sessions that ended since the last look, anywhere in the cluster (`auth_invalid`):
  one indexed query for sessions revoked since then, so the cost does not grow with the sockets;
- sockets opened with a token from before sessions existed, when the user's token version moved on
  (logout everywhere, password change) (`auth_invalid`).
The process that ends a session closes that session's sockets at once (`end_sessions_now`);
the others follow within the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass

import socketio

from aurora.services.tokens import Credentials
from aurora.storage import sessions as session_store
from aurora.storage.database import Storage
from aurora.storage.models import utcnow

log = logging.getLogger(__name__)

# Sessions revoked this long before the previous look are looked for again (clock skew between processes).
LOOK_BACK = dt.timedelta(seconds=60)
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Watched:
    namespace: str
    credentials: Credentials


class AuthWatch:
    def __init__(self, sio: socketio.AsyncServer, storage: Storage, interval_s: float, token_max_age_s: int) -> None:
        self._sio = sio
        self._storage = storage
        self._interval_s = interval_s
        self._token_max_age_s = token_max_age_s
        self._sockets: dict[str, Watched] = {}
        self._since = utcnow() - LOOK_BACK
        self._pruned_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def track(self, namespace: str, sid: str, credentials: Credentials) -> None:
        self._sockets[sid] = Watched(namespace, credentials)

    def untrack(self, sid: str) -> None:
        self._sockets.pop(sid, None)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="aurora-auth-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except Exception:  # the database may be down; try again next round
                log.warning("checking open sockets' sessions failed", exc_info=True)

    async def check(self) -> None:
        now = time.time()
        expired = [sid for sid, w in self._sockets.items() if w.credentials.expires_at <= now]
        await self._close(expired, "auth_expired", "the token has expired; log in again")
        looked_at = utcnow()
        revoked = await self._storage.read(session_store.revoked_since, self._since)
        self._since = looked_at - LOOK_BACK
        await self.end_sessions_now(revoked)
        legacy = {w.credentials.user_id for w in self._sockets.values() if w.credentials.session_id is None}
        if legacy:
            versions = await self._storage.read(session_store.token_versions, sorted(legacy))
            stale = [sid for sid, w in self._sockets.items() if w.credentials.session_id is None
                     and versions.get(w.credentials.user_id) != w.credentials.version]
            await self._close(stale, "auth_invalid", "the token is no longer valid; log in again")
        if now - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = now
            before = utcnow() - dt.timedelta(seconds=self._token_max_age_s) - LOOK_BACK
            await self._storage.write(session_store.prune_revoked_txn, before)

    async def end_sessions_now(self, session_ids: set[int]) -> None:
        """Close this process's sockets of these sessions."""
        if not session_ids:
            return
        ended = [sid for sid, w in self._sockets.items() if w.credentials.session_id in session_ids]
        await self._close(ended, "auth_invalid", "this session has ended; log in again")

    async def _close(self, sids: list[str], code: str, message: str) -> None:
        for sid in sids:
            watched = self._sockets.pop(sid, None)
            if watched is None:
                continue
            try:
                await self._sio.emit("closing", {"code": code, "message": message}, to=sid,
                                     namespace=watched.namespace)
                await self._sio.disconnect(sid, namespace=watched.namespace, ignore_queue=True)
            except Exception:
                log.exception("closing socket %s (%s) failed", sid, code)
