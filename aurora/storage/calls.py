"""Calls and their participants: blocking functions, run through Storage.

Functions named ``*_txn`` must run inside Storage.write.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aurora.errors import AuroraError, not_found
from aurora.storage.conversations import member_ids, require_member
from aurora.storage.models import Call, CallParticipant, utcnow
from aurora.storage.records import iso

LIVE_STATES = ("ringing", "active")


def _record(call: Call, participants: list[CallParticipant]) -> dict[str, Any]:
    if call.state == "ended":
        # Everyone has left an ended call: its participants are who took part in it (for the history).
        joined = [p.user_id for p in participants if p.joined_at is not None]
    else:
        joined = [p.user_id for p in participants if p.state == "joined"]
    return {
        "id": call.id,
        "conversation_id": call.conversation_id,
        "caller_id": call.caller_id,
        "media": call.media,
        "state": call.state,
        "end_reason": call.end_reason,
        "participants": joined,
        "ringing": [p.user_id for p in participants if p.state == "ringing"],
        "invitees": {str(p.user_id): p.state for p in participants if p.user_id != call.caller_id},
        "created_at": iso(call.created_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
    }


def _participants(call_id: int) -> list[CallParticipant]:
    return list(CallParticipant.select().where(CallParticipant.call == call_id).order_by(CallParticipant.id))


def get_call(call_id: int) -> dict[str, Any] | None:
    call = Call.get_or_none(Call.id == call_id)
    return None if call is None else _record(call, _participants(call_id))


def get_call_for_member(call_id: int, user_id: int) -> dict[str, Any]:
    """The call, if user_id belongs to its conversation; not_found otherwise."""
    call = Call.get_or_none(Call.id == call_id)
    if call is None:
        raise not_found("call")
    try:
        require_member(call.conversation_id, user_id)
    except AuroraError as exc:
        # Not a member: the call does not exist for them. Anything else (an outage) is not a "no".
        if exc.code != "not_found":
            raise
        raise not_found("call") from None
    return _record(call, _participants(call_id))


def members_for_caller(conversation_id: int, user_id: int) -> list[int]:
    """Member ids of a conversation the caller belongs to (not_found otherwise)."""
    require_member(conversation_id, user_id)
    return member_ids(conversation_id)


def live_call_in_conversation(conversation_id: int) -> dict[str, Any] | None:
    call = (Call.select().where((Call.conversation == conversation_id) & Call.state.in_(LIVE_STATES))
            .order_by(Call.id.desc()).first())
    return None if call is None else _record(call, _participants(call.id))


def busy_user_ids(user_ids: list[int]) -> set[int]:
    """Users who are joined to a live call right now."""
    if not user_ids:
        return set()
    rows = (CallParticipant.select(CallParticipant.user).join(Call)
            .where(CallParticipant.user.in_(user_ids) & (CallParticipant.state == "joined")
                   & Call.state.in_(LIVE_STATES)))
    return {r.user_id for r in rows}


def create_call_txn(conversation_id: int, caller_id: int, media: str, invitee_ids: list[int],
                    busy_ids: set[int], caller_sid: str, ring_s: float,
                    now: dt.datetime | None = None) -> dict[str, Any]:
    """now: the services' clock (deadlines are compared with it by overdue())."""
    now = now or utcnow()
    ringing = [uid for uid in invitee_ids if uid not in busy_ids]
    call = Call.create(conversation=conversation_id, caller=caller_id, media=media, created_at=now,
                       ring_deadline=now + dt.timedelta(seconds=ring_s) if ringing else None)
    rows = [{"call": call.id, "user": caller_id, "state": "joined", "joined_at": now, "device_sid": caller_sid}]
    rows += [{"call": call.id, "user": uid, "state": "busy" if uid in busy_ids else "ringing"}
             for uid in invitee_ids]
    CallParticipant.insert_many(rows).execute()
    return _record(call, _participants(call.id))


def set_participant_txn(call_id: int, user_id: int, state: str, device_sid: str | None = None) -> dict[str, Any]:
    """Move a participant to `state`; joining binds device_sid as the user's device in the call."""
    now = utcnow()
    changes: dict[str, Any] = {"state": state, "device_sid": device_sid, "grace_deadline": None}
    if state == "joined":
        changes["joined_at"] = now
    else:
        changes["left_at"] = now
    CallParticipant.update(**changes).where(
        (CallParticipant.call == call_id) & (CallParticipant.user == user_id)
    ).execute()
    if state == "joined":
        Call.update(state="active", answered_at=now).where(
            (Call.id == call_id) & (Call.state == "ringing")
        ).execute()
    still_ringing = CallParticipant.select().where(
        (CallParticipant.call == call_id) & (CallParticipant.state == "ringing")
    ).exists()
    if not still_ringing:
        Call.update(ring_deadline=None).where(Call.id == call_id).execute()
    return _record(Call.get_by_id(call_id), _participants(call_id))


def set_device_txn(call_id: int, user_id: int, sid: str) -> None:
    """A device (re)joins: it becomes the user's device in the call and any grace period ends."""
    CallParticipant.update(device_sid=sid, grace_deadline=None).where(
        (CallParticipant.call == call_id) & (CallParticipant.user == user_id)
        & (CallParticipant.state == "joined")
    ).execute()


def device_map(call_id: int) -> dict[int, str]:
    """user id -> sid of that user's device in the call (joined participants with a device)."""
    rows = CallParticipant.select(CallParticipant.user, CallParticipant.device_sid).where(
        (CallParticipant.call == call_id) & (CallParticipant.state == "joined")
        & CallParticipant.device_sid.is_null(False)
    )
    return {r.user_id: r.device_sid for r in rows}


def devices_lost_txn(sids: list[str], grace_s: float,
                     now: dt.datetime | None = None) -> list[tuple[int, int, str]]:
    """Devices that dropped: start their grace period. Returns (call id, user id, sid) per live call."""
    if not sids:
        return []
    deadline = (now or utcnow()) + dt.timedelta(seconds=grace_s)
    live = Call.select(Call.id).where(Call.state.in_(LIVE_STATES))
    # One conditional UPDATE: a device that rejoined meanwhile (another sid now) is left alone.
    CallParticipant.update(grace_deadline=deadline).where(
        CallParticipant.device_sid.in_(sids) & (CallParticipant.state == "joined")
        & CallParticipant.grace_deadline.is_null() & CallParticipant.call.in_(live)
    ).execute()
    rows = CallParticipant.select(CallParticipant.call, CallParticipant.user, CallParticipant.device_sid).where(
        CallParticipant.device_sid.in_(sids) & (CallParticipant.grace_deadline == deadline)
    )
    return [(r.call_id, r.user_id, r.device_sid) for r in rows]


def overdue(now: dt.datetime | None = None) -> tuple[list[int], list[tuple[int, int, str]]]:
    """Ring timeouts and grace periods that have run out (a process that owned the timer may be gone)."""
    now = now or utcnow()
    rings = [c.id for c in Call.select(Call.id).where(
        Call.state.in_(LIVE_STATES) & (Call.ring_deadline <= now))]
    graces = [
        (p.call_id, p.user_id, p.device_sid)
        for p in CallParticipant.select(CallParticipant.call, CallParticipant.user, CallParticipant.device_sid)
        .join(Call)
        .where((CallParticipant.grace_deadline <= now) & (CallParticipant.state == "joined")
               & Call.state.in_(LIVE_STATES))
    ]
    return rings, graces


def grace_pending(call_id: int, user_id: int, sid: str) -> bool:
    """Is that device still the user's device in the call, dropped and not rejoined?"""
    return CallParticipant.select().where(
        (CallParticipant.call == call_id) & (CallParticipant.user == user_id)
        & (CallParticipant.state == "joined") & (CallParticipant.device_sid == sid)
        & CallParticipant.grace_deadline.is_null(False)
    ).exists()


def end_call_txn(call_id: int, reason: str) -> dict[str, Any] | None:
    """End a live call (None if it had already ended): ringing invitees missed, the joined left."""
    now = utcnow()
    updated = Call.update(state="ended", end_reason=reason, ended_at=now, ring_deadline=None).where(
        (Call.id == call_id) & Call.state.in_(LIVE_STATES)
    ).execute()
    if not updated:
        return None
    CallParticipant.update(state="missed", left_at=now).where(
        (CallParticipant.call == call_id) & (CallParticipant.state == "ringing")
    ).execute()
    CallParticipant.update(state="left", left_at=now).where(
        (CallParticipant.call == call_id) & (CallParticipant.state == "joined")
    ).execute()
    CallParticipant.update(device_sid=None, grace_deadline=None).where(CallParticipant.call == call_id).execute()
    return _record(Call.get_by_id(call_id), _participants(call_id))


def live_call_ids() -> list[int]:
    return [c.id for c in Call.select(Call.id).where(Call.state.in_(LIVE_STATES))]


def list_calls(conversation_id: int, user_id: int, limit: int) -> list[dict[str, Any]]:
    require_member(conversation_id, user_id)
    calls = list(Call.select().where(Call.conversation == conversation_id)
                 .order_by(Call.created_at.desc(), Call.id.desc()).limit(limit))
    by_call: dict[int, list[CallParticipant]] = {c.id: [] for c in calls}
    if calls:
        for p in CallParticipant.select().where(CallParticipant.call.in_(list(by_call))).order_by(CallParticipant.id):
            by_call[p.call_id].append(p)
    return [_record(c, by_call[c.id]) for c in calls]
