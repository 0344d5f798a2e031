"""The call lifecycle, kept by the server: ringing -> active -> ended, with timers.

The database holds every call and participant state; this object holds what
only lives while the process does: which device of each user is in a call,
the ring timers and the disconnect-grace timers. One lock serialises every
state change of this process, which makes glare (two invites crossing) and
accept/reject/timeout races simple: whoever takes the lock first wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aurora.errors import AuroraError, invalid, not_found
from aurora.realtime.call_notifier import CallNotifier
from aurora.services.call_summary import summary_message
from aurora.services.messages import Messages
from aurora.services.validation import conversation_id_of, id_of, optional_int
from aurora.settings import Settings
from aurora.storage import calls as store
from aurora.storage.database import Storage

log = logging.getLogger(__name__)

MEDIA = ("audio", "video")
SIGNAL_TYPES = ("offer", "answer", "candidate")
HISTORY_DEFAULT, HISTORY_MAX = 50, 200


def _conflict(message: str) -> AuroraError:
    return AuroraError("conflict", message)


class Calls:
    def __init__(self, settings: Settings, storage: Storage, notifier: CallNotifier, messages: Messages) -> None:
        self._settings = settings
        self._storage = storage
        self._notifier = notifier
        self._messages = messages
        self._lock = asyncio.Lock()
        self._devices: dict[int, dict[int, str]] = {}  # call id -> user id -> sid of the device in the call
        self._ring_timers: dict[int, asyncio.Task[None]] = {}
        self._grace_timers: dict[tuple[int, int], asyncio.Task[None]] = {}

    # -- queries -------------------------------------------------------------
    async def history(self, user: dict[str, Any], conversation_id: Any, limit: Any = None) -> list[dict[str, Any]]:
        cid = conversation_id_of(conversation_id)
        size = optional_int(limit, "limit", minimum=1, maximum=HISTORY_MAX) or HISTORY_DEFAULT
        return await self._storage.read(store.list_calls, cid, user["id"], size)

    async def _call_for(self, user: dict[str, Any], call_id: Any) -> dict[str, Any]:
        return await self._storage.read(store.get_call_for_member, id_of(call_id, "call_id"), user["id"])

    # -- client actions ------------------------------------------------------
    async def invite(self, user: dict[str, Any], sid: str, conversation_id: Any, media: Any) -> dict[str, Any]:
        cid = conversation_id_of(conversation_id)
        if media not in MEDIA:
            raise invalid('media must be "audio" or "video"')
        async with self._lock:
            members = await self._storage.read(store.members_for_caller, cid, user["id"])
            live = await self._storage.read(store.live_call_in_conversation, cid)
            if live is not None:
                return await self._join_live_call(user, sid, live)
            if await self._storage.read(store.busy_user_ids, [user["id"]]):
                raise _conflict("you are already in a call")
            others = [m for m in members if m != user["id"]]
            busy = await self._storage.read(store.busy_user_ids, others)
            call = await self._storage.write(store.create_call_txn, cid, user["id"], media, others, busy)
            self._devices[call["id"]] = {user["id"]: sid}
            if not call["ringing"]:
                # Everyone is in another call: answer the invite with the call, then end it as busy.
                self._ring_timers[call["id"]] = asyncio.create_task(self._end_soon(call["id"], "busy"))
                return call
            await self._notifier.to_users("call_incoming", {"call": call, "from_user": user}, call["ringing"])
            self._ring_timers[call["id"]] = asyncio.create_task(self._ring_timeout(call["id"]))
            return call

    async def _join_live_call(self, user: dict[str, Any], sid: str, live: dict[str, Any]) -> dict[str, Any]:
        """An invite into a conversation that already has a live call."""
        if user["id"] in live["ringing"]:
            return await self._accept_locked(user, sid, live)  # glare: both sides end up in one call
        if user["id"] in live["participants"]:
            return live
        raise _conflict("a call is already in progress in this conversation")

    async def accept(self, user: dict[str, Any], sid: str, call_id: Any) -> dict[str, Any]:
        call = await self._call_for(user, call_id)
        async with self._lock:
            call = await self._storage.read(store.get_call, call["id"]) or call
            return await self._accept_locked(user, sid, call)

    async def _accept_locked(self, user: dict[str, Any], sid: str, call: dict[str, Any]) -> dict[str, Any]:
        if call["state"] == "ended" or user["id"] not in call["ringing"]:
            raise _conflict("this call is not ringing for you")
        call = await self._storage.write(store.set_participant_txn, call["id"], user["id"], "joined")
        self._devices.setdefault(call["id"], {})[user["id"]] = sid
        if not call["ringing"]:
            self._cancel_ring_timer(call["id"])
        accepted = {"call_id": call["id"], "user_id": user["id"], "call": call}
        await self._notifier.to_sids("call_accepted", accepted, self._device_sids(call, exclude=user["id"]))
        await self._notifier.to_users(
            "call_ended", {"call_id": call["id"], "reason": "answered_elsewhere", "call": call},
            [user["id"]], skip_sids=[sid],
        )
        return call

    async def reject(self, user: dict[str, Any], call_id: Any) -> dict[str, Any]:
        call = await self._call_for(user, call_id)
        async with self._lock:
            call = await self._storage.read(store.get_call, call["id"]) or call
            if call["state"] == "ended" or user["id"] not in call["ringing"]:
                raise _conflict("this call is not ringing for you")
            return await self._leave_locked(call, user["id"], "rejected", participant_state="rejected")

    async def hangup(self, user: dict[str, Any], call_id: Any) -> dict[str, Any]:
        call = await self._call_for(user, call_id)
        async with self._lock:
            call = await self._storage.read(store.get_call, call["id"]) or call
            if call["state"] == "ended":
                raise _conflict("this call has already ended")
            if user["id"] in call["ringing"]:
                return await self._leave_locked(call, user["id"], "rejected", participant_state="rejected")
            if user["id"] not in call["participants"]:
                raise _conflict("you are not in this call")
            return await self._leave_locked(call, user["id"], "hangup")

    async def rejoin(self, user: dict[str, Any], sid: str, call_id: Any) -> dict[str, Any]:
        call = await self._call_for(user, call_id)
        async with self._lock:
            call = await self._storage.read(store.get_call, call["id"]) or call
            if call["state"] == "ended" or user["id"] not in call["participants"]:
                raise _conflict("you are not in this call")
            self._cancel_grace_timer(call["id"], user["id"])
            self._devices.setdefault(call["id"], {})[user["id"]] = sid
            await self._notifier.to_sids(
                "call_rejoined", {"call_id": call["id"], "user_id": user["id"]},
                self._device_sids(call, exclude=user["id"]),
            )
            return call

    async def signal(self, user: dict[str, Any], sid: str, call_id: Any, to_user_id: Any, kind: Any,
                     data: Any) -> dict[str, Any]:
        target = id_of(to_user_id, "to_user_id")
        if kind not in SIGNAL_TYPES:
            raise invalid('type must be "offer", "answer" or "candidate"')
        # The size of data as compact JSON in UTF-8 (what a client puts on the wire), not \u-escaped.
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
        if size > self._settings.signal_max_bytes:
            raise AuroraError("too_large", f"signal data must be at most {self._settings.signal_max_bytes} bytes")
        call = await self._call_for(user, call_id)
        call = await self._storage.read(store.get_call, call["id"]) or call
        if call["state"] == "ended" or user["id"] not in call["participants"]:
            raise _conflict("only members of a live call may signal")
        if self._devices.get(call["id"], {}).get(user["id"]) != sid:
            # Another device of the user is the one in the call (answered elsewhere, or not rejoined yet).
            raise _conflict("this device is not in the call; send call_rejoin first")
        if target == user["id"] or (target not in call["participants"] and target not in call["ringing"]):
            raise not_found("call member")
        payload = {"call_id": call["id"], "from_user_id": user["id"], "type": kind, "data": data}
        device = self._devices.get(call["id"], {}).get(target)
        if target in call["participants"] and device is not None:
            sids = [device]
        elif target in call["ringing"]:
            sids = self._notifier.sids_of_user(target)  # every ringing device may take the offer
        else:
            sids = []
        await self._notifier.to_sids("call_signal", payload, sids)
        return {"delivered_to": len(sids)}

    async def device_disconnected(self, user: dict[str, Any], sid: str) -> None:
        """The device in a call dropped: leave the call unless it rejoins within the grace period."""
        for call_id, devices in list(self._devices.items()):
            if devices.get(user["id"]) == sid:
                self._cancel_grace_timer(call_id, user["id"])
                self._grace_timers[(call_id, user["id"])] = asyncio.create_task(
                    self._grace_expired(call_id, user["id"], sid)
                )

    # -- lifecycle -----------------------------------------------------------
    async def _leave_locked(self, call: dict[str, Any], user_id: int, reason: str,
                            participant_state: str = "left") -> dict[str, Any]:
        """user_id drops out; a direct call, or a group call left with too few people, ends."""
        direct = len(call["invitees"]) == 1
        updated = await self._storage.write(store.set_participant_txn, call["id"], user_id, participant_state)
        if direct:
            # The leaver hears call_ended too: they were in the call until now.
            return await self._end_locked(call["id"], reason, live_for=call["participants"] + call["ringing"]) \
                or updated
        self._cancel_grace_timer(call["id"], user_id)
        self._devices.get(call["id"], {}).pop(user_id, None)
        await self._notifier.to_users("call_ended", {"call_id": call["id"], "reason": reason, "call": updated},
                                      [user_id])
        left = {"call_id": call["id"], "user_id": user_id, "reason": reason, "call": updated}
        await self._notifier.to_sids("call_left", left, self._device_sids(updated))
        too_few = len(updated["participants"]) < 2 if updated["state"] == "active" \
            else not updated["participants"] or not updated["ringing"]
        if too_few:
            return await self._end_locked(call["id"], reason) or updated
        return updated

    async def _end_locked(self, call_id: int, reason: str,
                          live_for: list[int] | None = None) -> dict[str, Any] | None:
        """End the call; call_ended goes to the users it was still live for (joined or ringing).

        Those who already dropped out (left, rejected, missed) had their call_ended then, and a busy
        invitee was never rung, so none of them hears about this call again.
        """
        if live_for is None:
            before = await self._storage.read(store.get_call, call_id)
            live_for = [] if before is None else before["participants"] + before["ringing"]
        call = await self._storage.write(store.end_call_txn, call_id, reason)
        self._cancel_ring_timer(call_id)
        for (cid, uid) in [k for k in self._grace_timers if k[0] == call_id]:
            self._cancel_grace_timer(cid, uid)
        self._devices.pop(call_id, None)
        if call is None:
            return None
        await self._notifier.to_users("call_ended", {"call_id": call_id, "reason": reason, "call": call},
                                      list(dict.fromkeys(live_for)))
        try:
            await self._messages.store_system_message(summary_message(call))
        except Exception:
            log.exception("storing the summary of call %s failed", call_id)
        log.info("Call %s in conversation %s ended: %s", call_id, call["conversation_id"], reason)
        return call

    async def _end_soon(self, call_id: int, reason: str) -> None:
        await asyncio.sleep(0)
        await self._locked(lambda: self._end_locked(call_id, reason))

    async def _locked(self, action: Callable[[], Awaitable[Any]]) -> None:
        try:
            async with self._lock:
                await action()
        except Exception:
            log.exception("a call timer action failed")

    async def _ring_timeout(self, call_id: int) -> None:
        await asyncio.sleep(self._settings.ring_timeout_s)
        self._ring_timers.pop(call_id, None)

        async def expire() -> None:
            call = await self._storage.read(store.get_call, call_id)
            if call is None or call["state"] == "ended" or not call["ringing"]:
                return
            if call["state"] == "ringing":
                await self._end_locked(call_id, "missed")
                return
            # An active group call: stop ringing the ones who never answered.
            for uid in call["ringing"]:
                call = await self._storage.write(store.set_participant_txn, call_id, uid, "missed")
                await self._notifier.to_users("call_ended", {"call_id": call_id, "reason": "missed", "call": call},
                                              [uid])
        await self._locked(expire)

    async def _grace_expired(self, call_id: int, user_id: int, sid: str) -> None:
        await asyncio.sleep(self._settings.call_grace_s)
        self._grace_timers.pop((call_id, user_id), None)

        async def drop() -> None:
            if self._devices.get(call_id, {}).get(user_id) != sid:
                return  # rejoined from a device, or the call already ended
            call = await self._storage.read(store.get_call, call_id)
            if call is not None and call["state"] != "ended" and user_id in call["participants"]:
                await self._leave_locked(call, user_id, "disconnected")
        await self._locked(drop)

    def _device_sids(self, call: dict[str, Any], exclude: int | None = None) -> list[str]:
        devices = self._devices.get(call["id"], {})
        return [sid for uid, sid in devices.items() if uid != exclude and uid in call["participants"]]

    def _cancel_ring_timer(self, call_id: int) -> None:
        timer = self._ring_timers.pop(call_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    def _cancel_grace_timer(self, call_id: int, user_id: int) -> None:
        timer = self._grace_timers.pop((call_id, user_id), None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def end_calls_left_by_previous_process(self) -> int:
        """On start-up: calls still ringing or active belong to a process that is gone."""
        ids = await self._storage.read(store.live_call_ids)
        async with self._lock:
            for call_id in ids:
                await self._end_locked(call_id, "server_restart")
        return len(ids)

    async def stop(self) -> None:
        timers = list(self._ring_timers.values()) + list(self._grace_timers.values())
        for timer in timers:
            timer.cancel()
        for timer in timers:
            with contextlib.suppress(asyncio.CancelledError):
                await timer
