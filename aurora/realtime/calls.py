"""/calls: WebRTC signaling relay and the server-kept call lifecycle (see services/calls.py)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aurora.context import Aurora
from aurora.outages import log_failure
from aurora.realtime.base import AuroraNamespace, refusal
from aurora.realtime.rooms import CALLS_NAMESPACE, user_of_rooms, user_room
from aurora.services.validation import payload_dict

log = logging.getLogger(__name__)


class CallsNamespace(AuroraNamespace):
    def __init__(self, app: Aurora) -> None:
        super().__init__(CALLS_NAMESPACE, app)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        user, credentials = await self.authenticate(environ, auth)
        await self.admit(user["id"], sid, credentials)
        try:
            await self.save_session(sid, {"user": user})
            await self.enter_room(sid, user_room(user["id"]))
        except Exception as exc:
            # As on /chat: refuse at once with a code, and leave nothing registered behind
            # (a refused socket gets no disconnect event to clean up after it).
            error = self.setup_failed(sid, exc, "setting up a /calls connection")
            self.app.auth_watch.untrack(sid)
            with contextlib.suppress(Exception):
                await self.app.registry.remove(CALLS_NAMESPACE, user["id"], sid)
            raise refusal(error) from None

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        # Not from the session: with /chat on the same connection it may be gone by now (rooms.py).
        user_id = user_of_rooms(self.rooms(sid))
        if user_id is not None:
            try:
                await self.app.registry.remove(CALLS_NAMESPACE, user_id, sid)
                await self.app.calls.devices_lost([sid])
            except Exception as exc:
                log_failure(exc, log, "handling a /calls disconnect")

    async def on_call_invite(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        user = await self.user_of(sid)
        call = await self.app.calls.invite(user, sid, payload.get("conversation_id"), payload.get("media"))
        return {"call": call}

    async def on_call_accept(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data, bare_key="call_id")
        return {"call": await self.app.calls.accept(await self.user_of(sid), sid, payload.get("call_id"))}

    async def on_call_reject(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data, bare_key="call_id")
        return {"call": await self.app.calls.reject(await self.user_of(sid), payload.get("call_id"))}

    async def on_call_hangup(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data, bare_key="call_id")
        return {"call": await self.app.calls.hangup(await self.user_of(sid), payload.get("call_id"))}

    async def on_call_rejoin(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data, bare_key="call_id")
        return {"call": await self.app.calls.rejoin(await self.user_of(sid), sid, payload.get("call_id"))}

    async def on_call_signal(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        return await self.app.calls.signal(
            await self.user_of(sid), sid, payload.get("call_id"), payload.get("to_user_id"),
            payload.get("type"), payload.get("data"),
        )
