"""Call signaling on /calls, for bots: invite/accept/reject/hangup/rejoin/signal and the events.
No media: a Python bot can ring, answer, decline and relay signals, not run WebRTC.

After a reconnect the client sends `call_rejoin` for every live call this device is in, so a short
drop within the server's grace period keeps the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

from aurora_client.connection import CALLS
from aurora_client.errors import AuroraError
from aurora_client.events import Emitter, Event

if TYPE_CHECKING:
    from aurora_client.client import AuroraClient

log = logging.getLogger(__name__)

# Server event -> SDK event name.
EVENT_NAMES = {
    "call_incoming": "incoming",
    "call_accepted": "accepted",
    "call_ended": "ended",
    "call_left": "left",
    "call_rejoined": "rejoined",
    "call_signal": "signal",
}


class Calls:
    """`client.calls`: `await invite(cid, "audio")`, `accept/reject/hangup/rejoin(call_id)`,
    `signal(call_id, to_user_id, type, data)`; events `incoming`, `accepted`, `ended`, `left`,
    `rejoined`, `signal` (the server's payloads, docs/protocol.md#calls)."""

    def __init__(self, client: AuroraClient) -> None:
        self._client = client
        self._emitter = Emitter()
        self._live: dict[int, dict[str, Any]] = {}  # calls this device is in: rejoined after a reconnect
        self._rejoin_task: asyncio.Task[None] | None = None

    def on(self, name: str, callback: Callable[..., Any]) -> Callable[[], None]:
        return self._emitter.on(name, callback)

    def events(self, *names: str) -> AsyncIterator[Event]:
        return self._emitter.events(*names)

    def live(self) -> list[dict[str, Any]]:
        """The calls this device is in (as last heard)."""
        return [dict(call) for call in self._live.values()]

    async def _call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Signaling is time-bound: no resend after a lost connection, but rate_limited waits its delay."""
        while True:
            try:
                return cast(dict[str, Any], await self._client._conn.request(CALLS, event, payload))
            except AuroraError as exc:
                if exc.code != "rate_limited":
                    raise
                await asyncio.sleep((exc.retry_after_ms or 1000) / 1000)

    def _track(self, call: dict[str, Any]) -> dict[str, Any]:
        if call.get("state") == "ended":
            self._live.pop(int(call["id"]), None)
        else:
            self._live[int(call["id"])] = call
        return call

    async def invite(self, conversation_id: int, media: str = "audio") -> dict[str, Any]:
        ack = await self._call("call_invite", {"conversation_id": int(conversation_id), "media": media})
        return self._track(ack["call"])

    async def accept(self, call_id: int) -> dict[str, Any]:
        return self._track((await self._call("call_accept", {"call_id": int(call_id)}))["call"])

    async def reject(self, call_id: int) -> dict[str, Any]:
        call = (await self._call("call_reject", {"call_id": int(call_id)}))["call"]
        self._live.pop(int(call_id), None)
        return cast(dict[str, Any], call)

    async def hangup(self, call_id: int) -> dict[str, Any]:
        call = (await self._call("call_hangup", {"call_id": int(call_id)}))["call"]
        self._live.pop(int(call_id), None)
        return cast(dict[str, Any], call)

    async def rejoin(self, call_id: int) -> dict[str, Any]:
        return self._track((await self._call("call_rejoin", {"call_id": int(call_id)}))["call"])

    async def signal(self, call_id: int, to_user_id: int, type: str, data: Any) -> int:
        """Relay an offer/answer/candidate; returns how many sockets it reached."""
        ack = await self._call("call_signal", {"call_id": int(call_id), "to_user_id": int(to_user_id),
                                               "type": type, "data": data})
        return int(ack.get("delivered_to", 0))

    async def history(self, conversation_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._client.rest.calls(conversation_id, limit)

    def _handle(self, event: str, data: Any) -> None:
        name = EVENT_NAMES.get(event)
        if name is None:
            return
        if event == "call_ended" and isinstance(data, dict):
            self._live.pop(int(data.get("call_id", 0)), None)
        elif event == "call_left" and isinstance(data, dict) and data.get("user_id") == self._client.user_id:
            self._live.pop(int(data.get("call_id", 0)), None)
        self._emitter.emit(name, data)

    def _reconnected(self) -> None:
        if self._live and (self._rejoin_task is None or self._rejoin_task.done()):
            self._rejoin_task = asyncio.ensure_future(self._rejoin_all())

    async def _rejoin_all(self) -> None:
        for call_id in list(self._live):
            try:
                await self.rejoin(call_id)
            except AuroraError as exc:
                log.info("call %s could not be rejoined: %s", call_id, exc)
                self._live.pop(call_id, None)

    def _end(self) -> None:
        if self._rejoin_task is not None:
            self._rejoin_task.cancel()
            with contextlib.suppress(Exception):
                self._rejoin_task = None
        self._emitter.end()
