"""One catch-up at a time: a full sync after every (re)connect and on `resync`, a sync of some
conversations after a gap. Requests made while one runs are merged into the next round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aurora_client.errors import AuroraError

log = logging.getLogger(__name__)

RoundFn = Callable[[bool, set[int]], Awaitable[None]]


class CatchUp:
    def __init__(self, run_round: RoundFn, online: Callable[[], bool],
                 on_error: Callable[[AuroraError], None]) -> None:
        self._run_round = run_round
        self._online = online
        self._on_error = on_error
        self._full = False
        self._conversations: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.full_rounds_done = 0  # full rounds that finished without error

    def request(self, *, full: bool = False, conversations: set[int] | None = None) -> None:
        self._full = self._full or full
        self._conversations |= conversations or set()
        if self._task is None or self._task.done():
            self._idle.clear()
            self._task = asyncio.ensure_future(self._run())

    @property
    def wanted(self) -> bool:
        return self._full or bool(self._conversations)

    async def _run(self) -> None:
        try:
            while self.wanted:
                full, conversations = self._full, self._conversations
                self._full, self._conversations = False, set()
                try:
                    await self._run_round(full, conversations)
                except AuroraError as exc:
                    if not self._online() or exc.code in ("disconnected", "closed") or exc.code.startswith("auth_"):
                        # The next connect asks for a full round again.
                        log.info("catch-up stopped: %s", exc)
                        return
                    log.warning("catch-up failed, retrying: %s", exc)
                    self._on_error(exc)
                    self._full = self._full or full
                    self._conversations |= conversations
                    await asyncio.sleep(1.0)
                    continue
                if full:
                    self.full_rounds_done += 1
        finally:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._idle.set()
