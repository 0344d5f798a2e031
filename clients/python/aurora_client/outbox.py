"""The outbox: every send is written to the store first, then sent by the lane of its conversation,
one at a time in typed order, and retried with the same client_id until the server has stored it.

A send leaves the outbox when its ack arrives or when the message (same sender, same client_id)
reaches the store by another path (a sync after a lost ack), whichever comes first. A send the server
refuses for good (invalid, too_large, not_found, forbidden, ...) leaves the outbox with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aurora_client.errors import AuroraError
from aurora_client.store import Batch
from aurora_client.types import Message, PendingSend

log = logging.getLogger(__name__)

SendFn = Callable[[PendingSend], Awaitable[Message]]


class Outbox:
    def __init__(self, write: Callable[[Batch], Awaitable[None]], send: SendFn,
                 on_change: Callable[[], None], on_failed: Callable[[PendingSend, AuroraError], None]) -> None:
        self._write = write
        self._send = send
        self._on_change = on_change
        self._on_failed = on_failed
        self._sending: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._last_error: dict[str, str] = {}
        self._items: dict[str, PendingSend] = {}  # client_id -> item, in typed order
        self._futures: dict[str, asyncio.Future[Message]] = {}
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._order = itertools.count(time.time_ns())
        self._closed = False

    def load(self, items: list[dict[str, Any]]) -> None:
        """Items a store kept from an earlier run: sent again, with their client ids, when connected."""
        for item in sorted(items, key=lambda i: i["order"]):
            self._items.setdefault(item["client_id"], item)  # type: ignore[arg-type]
        for conversation_id in {item["conversation_id"] for item in self._items.values()}:
            self._start_lane(conversation_id)

    def pending(self, conversation_id: int | None = None) -> list[PendingSend]:
        items = []
        for client_id, item in self._items.items():
            if conversation_id is not None and item["conversation_id"] != conversation_id:
                continue
            copy = cast(PendingSend, dict(item))
            copy["status"] = "sending" if client_id in self._sending else "queued"
            copy["attempts"] = self._attempts.get(client_id, 0)
            copy["last_error"] = self._last_error.get(client_id)
            items.append(copy)
        return items

    def attempt(self, client_id: str) -> None:
        """An emit of this send is about to go out."""
        self._sending.add(client_id)
        self._attempts[client_id] = self._attempts.get(client_id, 0) + 1
        self._on_change()

    def failed_attempt(self, client_id: str, error: AuroraError) -> None:
        """A retryable failure: the send stays queued and goes again."""
        self._sending.discard(client_id)
        self._last_error[client_id] = str(error)
        self._on_change()

    def _forget(self, client_id: str) -> None:
        self._sending.discard(client_id)
        self._attempts.pop(client_id, None)
        self._last_error.pop(client_id, None)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._items

    async def add(self, item: PendingSend) -> asyncio.Future[Message]:
        if self._closed:
            raise AuroraError("closed", "the client was closed")
        item["order"] = next(self._order)
        await self._write(Batch(outbox_added=[dict(item)]))  # on disk before it is sent
        self._items[item["client_id"]] = item
        future = self._future(item["client_id"])
        self._start_lane(item["conversation_id"])
        self._on_change()
        return future

    def _future(self, client_id: str) -> asyncio.Future[Message]:
        if client_id not in self._futures:
            self._futures[client_id] = asyncio.get_running_loop().create_future()
        return self._futures[client_id]

    def resolved(self, client_id: str, message: Message) -> bool:
        """The message of this send is stored (the caller removes it from the store in the same batch);
        True when it was still pending."""
        if self._items.pop(client_id, None) is None:
            return False
        self._forget(client_id)
        future = self._futures.pop(client_id, None)
        if future is not None and not future.done():
            future.set_result(message)
        self._on_change()
        return True

    def _start_lane(self, conversation_id: int) -> None:
        lane = self._lanes.get(conversation_id)
        if (lane is None or lane.done()) and not self._closed:
            self._lanes[conversation_id] = asyncio.ensure_future(self._run_lane(conversation_id))

    async def _run_lane(self, conversation_id: int) -> None:
        while not self._closed:
            item = next((i for i in self._items.values() if i["conversation_id"] == conversation_id), None)
            if item is None:
                return
            client_id = item["client_id"]
            try:
                message = await self._send(item)
            except AuroraError as exc:
                if exc.code == "closed":
                    return
                if exc.code.startswith("auth_"):
                    # The token was refused: the sends stay in the store for a client with a valid
                    # token; the callers waiting here learn why.
                    for future in self._futures.values():
                        if not future.done():
                            future.set_exception(exc)
                    return
                log.info("send %s refused: %s", client_id, exc)
                await self._fail(client_id, exc)
                continue
            except Exception as exc:
                log.exception("sending %s failed", client_id)
                await self._fail(client_id, AuroraError("internal", f"sending failed: {exc!r}"))
                continue
            if self.resolved(client_id, message):
                await self._write(Batch(outbox_removed=[client_id]))

    async def _fail(self, client_id: str, error: AuroraError) -> None:
        """Refused for good: out of the outbox, its send() raises, `send_failed` tells listeners."""
        item = self._items.pop(client_id, None)
        if item is not None:
            await self._write(Batch(outbox_removed=[client_id]))
            self._on_failed(cast(PendingSend, dict(item)), error)
        self._forget(client_id)
        future = self._futures.pop(client_id, None)
        if future is not None and not future.done():
            future.set_exception(error)
        self._on_change()

    async def close(self) -> None:
        """Stop sending; pending sends stay in the store (a persistent store sends them next time)."""
        self._closed = True
        for lane in self._lanes.values():
            lane.cancel()
        for lane in self._lanes.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await lane
        for future in self._futures.values():
            if not future.done():
                future.set_exception(AuroraError("closed", "the client was closed before the message was stored"))
        self._futures.clear()
