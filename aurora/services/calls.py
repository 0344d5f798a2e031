"""The call lifecycle, kept by the server: ringing -> active -> ended, with timers.

Everything a call is lives in the database: its state, its participants, each
user's device in the call (a Socket.IO sid, routable from any process), the ring
deadline and each dropped device's grace deadline. So any Aurora process can act
on any call. Changes to the calls of one conversation are serialised by
CallLocks (in-process, and across processes through Redis); each re-reads the
call after taking the lock, which makes glare, accept-versus-timeout and timers
that fire on two processes all resolve once.

Timers: the process that starts a ring or a grace period also arms a local
asyncio timer for it (prompt), and every process sweeps the database for
deadlines that have passed (a backstop for a process that died holding them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from aurora.errors import AuroraError, invalid, not_found
from aurora.outages import log_failure
from aurora.services.blocks import Blocks
from aurora.services.call_locks import CallLocks
from aurora.services.call_summary import summary_message
from aurora.services.clock import Clock, SystemClock
from aurora.services.messages import Messages
from aurora.services.ports import CallNotifier
from aurora.services.validation import conversation_id_of, id_of, optional_int
from aurora.settings import Settings
from aurora.storage import calls as store
from aurora.storage.database import Storage

if TYPE_CHECKING:  # push imports nothing of these; only the type is needed here
    from aurora.services.push import Push

log = logging.getLogger(__name__)

MEDIA = ("audio", "video")
SIGNAL_TYPES = ("offer", "answer", "candidate")
HISTORY_DEFAULT, HISTORY_MAX = 50, 200
SWEEP_INTERVAL_S = 1.0


def wire_size(data: Any) -> int:
    """The size of data as compact JSON in UTF-8 (what a client puts on the wire), not \\u-escaped."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _conflict(message: str) -> AuroraError:
    return AuroraError("conflict", message)


class Calls:
    def __init__(self, settings: Settings, storage: Storage, notifier: CallNotifier, messages: Messages,
                 locks: CallLocks, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock: Clock = clock or SystemClock()
        self._storage = storage
        self._notifier = notifier
        self._messages = messages
        self._locks = locks
        # Web Push (aurora.services.push.Push) for invitees with no open app; None: no pushes.
        self.push: Push | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.blocks: Blocks | None = None  # set by create_app: who blocked the caller is not rung

    # -- queries -------------------------------------------------------------
    async def history(self, user: dict[str, Any], conversation_id: Any, limit: Any = None) -> list[dict[str, Any]]:
        cid = conversation_id_of(conversation_id)
        size = optional_int(limit, "limit", minimum=1, maximum=HISTORY_MAX) or HISTORY_DEFAULT
        return await self._storage.read(store.list_calls, cid, user["id"], size)

    async def _call_for(self, user: dict[str, Any], call_id: Any) -> dict[str, Any]:
        return await self._storage.read(store.get_call_for_member, id_of(call_id, "call_id"), user["id"])

    async def _fresh(self, call_id: int) -> dict[str, Any]:
        call = await self._storage.read(store.get_call, call_id)
        if call is None:
            raise not_found("call")
        return call

    # -- client actions ------------------------------------------------------
    async def invite(self, user: dict[str, Any], sid: str, conversation_id: Any, media: Any) -> dict[str, Any]:
        cid = conversation_id_of(conversation_id)
        if media not in MEDIA:
            raise invalid('media must be "audio" or "video"')
        members = await self._storage.read(store.members_for_caller, cid, user["id"])
        async with self._locks.hold(cid):
            live = await self._storage.read(store.live_call_in_conversation, cid)
            if live is not None:
                return await self._join_live_call(user, sid, live)
            if await self._storage.read(store.busy_user_ids, [user["id"]]):
                raise _conflict("you are already in a call")
            others = [m for m in members if m != user["id"]]
            if self.blocks is not None:
                blockers = self.blocks.blockers_of(user["id"])
                if others and all(o in blockers for o in others):
                    raise AuroraError("forbidden", "this user does not accept calls from you")
                others = [o for o in others if o not in blockers]
            busy = await self._storage.read(store.busy_user_ids, others)
            call = await self._storage.write(store.create_call_txn, cid, user["id"], media, others, busy, sid,
                                             self._settings.ring_timeout_s, self._clock.utcnow())
            if not call["ringing"]:
                # Everyone is in another call: answer the invite with the call, then end it as busy.
                self._spawn(self._end_soon(call, "busy"))
                return call
            ring_ends = self._clock.monotonic() + self._settings.ring_timeout_s
            await self._notifier.to_users("call_incoming", {"call": call, "from_user": user}, call["ringing"])
            if self.push is not None:
                self.push.call_incoming(call, user)
            self._spawn(self._ring_timeout(call, ring_ends))
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
        async with self._locks.hold(call["conversation_id"]):
            return await self._accept_locked(user, sid, await self._fresh(call["id"]))

    async def _accept_locked(self, user: dict[str, Any], sid: str, call: dict[str, Any]) -> dict[str, Any]:
        if call["state"] == "ended" or user["id"] not in call["ringing"]:
            raise _conflict("this call is not ringing for you")
        if await self._storage.read(store.busy_user_ids, [user["id"]]):
            raise _conflict("you are already in another call; hang up first")
        call = await self._storage.write(store.set_participant_txn, call["id"], user["id"], "joined", sid)
        accepted = {"call_id": call["id"], "user_id": user["id"], "call": call}
        await self._notifier.to_sids("call_accepted", accepted, await self._device_sids(call, exclude=user["id"]))
        await self._notifier.to_users(
            "call_ended", {"call_id": call["id"], "reason": "answered_elsewhere", "call": call},
            [user["id"]], skip_sids=[sid],
        )
        return call

    async def reject(self, user: dict[str, Any], call_id: Any) -> dict[str, Any]:
        call = await self._call_for(user, call_id)
        async with self._locks.hold(call["conversation_id"]):
            call = await self._fresh(call["id"])
            if call["state"] == "ended" or user["id"] not in call["ringing"]:
                raise _conflict("this call is not ringing for you")
            return await self._leave_locked(call, user["id"], "rejected", participant_state="rejected")

    async def hangup(self, user: dict[str, Any], call_id: Any) -> dict[str, Any]:
        call = await self._call_for(user, call_id)
        async with self._locks.hold(call["conversation_id"]):
            call = await self._fresh(call["id"])
            if call["state"] == "ended":
                raise _conflict("this call has already ended")
            if user["id"] in call["ringing"]:
                return await self._leave_locked(call, user["id"], "rejected", participant_state="rejected")
            if user["id"] not in call["participants"]:
                raise _conflict("you are not in this call")
            return await self._leave_locked(call, user["id"], "hangup")

    async def rejoin(self, user: dict[str, Any], sid: str, call_id: Any) -> dict[str, Any]:
        call = await self._call_for(user, call_id)
        async with self._locks.hold(call["conversation_id"]):
            call = await self._fresh(call["id"])
            if call["state"] == "ended" or user["id"] not in call["participants"]:
                raise _conflict("you are not in this call")
            previous = (await self._storage.read(store.device_map, call["id"])).get(user["id"])
            await self._storage.write(store.set_device_txn, call["id"], user["id"], sid)
            if previous is not None and previous != sid:
                # Taken over by another device while the old one may still be connected: it is out.
                await self._notifier.to_sids(
                    "call_ended", {"call_id": call["id"], "reason": "answered_elsewhere", "call": call}, [previous]
                )
            await self._notifier.to_sids(
                "call_rejoined", {"call_id": call["id"], "user_id": user["id"]},
                await self._device_sids(call, exclude=user["id"]),
            )
            return call

    async def signal(self, user: dict[str, Any], sid: str, call_id: Any, to_user_id: Any, kind: Any,
                     data: Any) -> dict[str, Any]:
        target = id_of(to_user_id, "to_user_id")
        if kind not in SIGNAL_TYPES:
            raise invalid('type must be "offer", "answer" or "candidate"')
        # Serialising up to a packet's worth (1 MiB) takes milliseconds: off the loop.
        size = await asyncio.to_thread(wire_size, data)
        if size > self._settings.signal_max_bytes:
            raise AuroraError("too_large", f"signal data must be at most {self._settings.signal_max_bytes} bytes")
        call = await self._call_for(user, call_id)
        call = await self._fresh(call["id"])
        if call["state"] == "ended" or user["id"] not in call["participants"]:
            raise _conflict("only members of a live call may signal")
        devices = await self._storage.read(store.device_map, call["id"])
        if devices.get(user["id"]) != sid:
            # Another device of the user is the one in the call (answered elsewhere, or not rejoined yet).
            raise _conflict("this device is not in the call; send call_rejoin first")
        if target == user["id"] or (target not in call["participants"] and target not in call["ringing"]):
            raise not_found("call member")
        payload = {"call_id": call["id"], "from_user_id": user["id"], "type": kind, "data": data}
        if target in call["participants"]:
            sids = [devices[target]] if target in devices else []
        else:
            sids = await self._notifier.sids_of_user(target)  # every ringing device may take the offer
        await self._notifier.to_sids("call_signal", payload, sids)
        return {"delivered_to": len(sids)}

    async def devices_lost(self, sids: list[str]) -> None:
        """Devices dropped (a disconnect here, or sockets of a dead process): their grace period starts."""
        grace_ends = self._clock.monotonic() + self._settings.call_grace_s
        lost = await self._storage.write(store.devices_lost_txn, sids, self._settings.call_grace_s,
                                         self._clock.utcnow())
        for call_id, user_id, sid in lost:
            self._spawn(self._grace_timer(call_id, user_id, sid, grace_ends))

    # -- lifecycle -----------------------------------------------------------
    async def _device_sids(self, call: dict[str, Any], exclude: int | None = None) -> list[str]:
        devices = await self._storage.read(store.device_map, call["id"])
        return [sid for uid, sid in devices.items() if uid != exclude and uid in call["participants"]]

    async def _leave_locked(self, call: dict[str, Any], user_id: int, reason: str,
                            participant_state: str = "left") -> dict[str, Any]:
        """user_id drops out; a direct call, or a group call left with too few people, ends."""
        direct = len(call["invitees"]) == 1
        updated = await self._storage.write(store.set_participant_txn, call["id"], user_id, participant_state)
        if direct:
            # The leaver hears call_ended too: they were in the call until now.
            return await self._end_locked(call["id"], reason, live_for=call["participants"] + call["ringing"]) \
                or updated
        await self._notifier.to_users("call_ended", {"call_id": call["id"], "reason": reason, "call": updated},
                                      [user_id])
        left = {"call_id": call["id"], "user_id": user_id, "reason": reason, "call": updated}
        await self._notifier.to_sids("call_left", left, await self._device_sids(updated))
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
        if call is None:
            return None
        await self._notifier.to_users("call_ended", {"call_id": call_id, "reason": reason, "call": call},
                                      list(dict.fromkeys(live_for)))
        # Rung and never answered (not those who declined or were busy): a missed call, pushed.
        missed = [int(uid) for uid, state in call["invitees"].items()
                  if state == "missed" and int(uid) not in call["participants"]]
        try:
            await self._messages.store_system_message(summary_message(call), push_to=missed)
        except Exception as exc:
            log_failure(exc, log, "storing the summary of call %s", call_id)
        log.info("Call %s in conversation %s ended: %s", call_id, call["conversation_id"], reason)
        return call

    async def _end_soon(self, call: dict[str, Any], reason: str) -> None:
        await asyncio.sleep(0)  # after the invite's ack
        async with self._locks.hold(call["conversation_id"]):
            await self._end_locked(call["id"], reason)

    async def _ring_timeout(self, call: dict[str, Any], deadline: float) -> None:
        await self._clock.sleep_until(deadline, "ring")
        await self._expire_ring(call["id"])

    async def _expire_ring(self, call_id: int) -> None:
        """Stop ringing once the ring deadline has passed (at most once, whoever gets here first)."""
        call = await self._storage.read(store.get_call, call_id)
        if call is None:
            return
        async with self._locks.hold(call["conversation_id"]):
            call = await self._fresh(call_id)
            if call["state"] == "ended" or not call["ringing"]:
                return
            if call["state"] == "ringing":
                await self._end_locked(call_id, "missed")
                return
            # An active group call: stop ringing the ones who never answered.
            for uid in call["ringing"]:
                call = await self._storage.write(store.set_participant_txn, call_id, uid, "missed")
                await self._notifier.to_users("call_ended", {"call_id": call_id, "reason": "missed", "call": call},
                                              [uid])
                left = {"call_id": call_id, "user_id": uid, "reason": "missed", "call": call}
                await self._notifier.to_sids("call_left", left, await self._device_sids(call))

    async def _grace_timer(self, call_id: int, user_id: int, sid: str, deadline: float) -> None:
        await self._clock.sleep_until(deadline, "grace")
        await self._expire_grace(call_id, user_id, sid)

    async def _expire_grace(self, call_id: int, user_id: int, sid: str) -> None:
        call = await self._storage.read(store.get_call, call_id)
        if call is None:
            return
        async with self._locks.hold(call["conversation_id"]):
            if not await self._storage.read(store.grace_pending, call_id, user_id, sid):
                return  # rejoined from a device, or the call already ended
            call = await self._fresh(call_id)
            if call["state"] != "ended" and user_id in call["participants"]:
                await self._leave_locked(call, user_id, "disconnected")

    async def _sweep_forever(self) -> None:
        while True:
            await self._clock.sleep_until(self._clock.monotonic() + SWEEP_INTERVAL_S, "sweep")
            try:
                rings, graces = await self._storage.read(store.overdue, self._clock.utcnow())
                for call_id in rings:
                    await self._expire_ring(call_id)
                for call_id, user_id, sid in graces:
                    await self._expire_grace(call_id, user_id, sid)
            except Exception as exc:
                log_failure(exc, log, "sweeping call deadlines")

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    @staticmethod
    async def _guarded(work: Any) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_failure(exc, log, "a call timer")

    async def start(self, *, end_live_calls: bool) -> int:
        """Start the deadline sweeper. A single process also ends calls a previous run left live
        (in a cluster other processes may own them; their deadlines take care of them)."""
        ended = 0
        if end_live_calls:
            for call_id in await self._storage.read(store.live_call_ids):
                call = await self._fresh(call_id)
                async with self._locks.hold(call["conversation_id"]):
                    if await self._end_locked(call_id, "server_restart"):
                        ended += 1
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="aurora-call-sweeper")
        return ended

    async def stop(self) -> None:
        tasks = list(self._timers) + ([self._sweeper] if self._sweeper else [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._locks.close()
