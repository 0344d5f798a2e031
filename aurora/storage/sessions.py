"""Device sessions: blocking functions, run through Storage."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aurora.storage.models import DeviceSession, User, utcnow
from aurora.storage.records import iso, user_record

MAX_USER_AGENT_CHARS = 200
MAX_ADDRESS_CHARS = 64


def session_record(session: DeviceSession) -> dict[str, Any]:
    return {"id": session.id, "created_at": iso(session.created_at), "user_agent": session.user_agent,
            "address": session.address}


def create_session_txn(user_id: int, user_agent: str | None, address: str | None) -> dict[str, Any]:
    session = DeviceSession.create(
        user=user_id, user_agent=(user_agent or None) and user_agent[:MAX_USER_AGENT_CHARS],
        address=(address or None) and address[:MAX_ADDRESS_CHARS],
    )
    return session_record(session)


def auth_lookup(user_id: int, session_id: int | None) -> tuple[dict[str, Any], int, bool] | None:
    """(user, token version, session still open) in one go; None when the user is gone or deactivated."""
    user = User.get_or_none(User.id == user_id)
    if user is None or user.deactivated_at is not None:  # a deactivated user's tokens are refused
        return None
    live = True
    if session_id is not None:
        live = DeviceSession.select(DeviceSession.id).where(
            (DeviceSession.id == session_id) & (DeviceSession.user == user_id) & DeviceSession.revoked_at.is_null()
        ).exists()
    return user_record(user), user.token_version, live


def list_sessions(user_id: int) -> list[dict[str, Any]]:
    rows = (DeviceSession.select()
            .where((DeviceSession.user == user_id) & DeviceSession.revoked_at.is_null())
            .order_by(DeviceSession.id))
    return [session_record(s) for s in rows]


def revoke_session_txn(user_id: int, session_id: int) -> bool:
    """End one of the user's open sessions; False when there is no such open session."""
    changed = (DeviceSession.update(revoked_at=utcnow())
               .where((DeviceSession.id == session_id) & (DeviceSession.user == user_id)
                      & DeviceSession.revoked_at.is_null())
               .execute())
    return changed > 0


def revoke_sessions_txn(user_id: int, keep_id: int | None) -> int:
    """End every open session of the user except keep_id; returns how many ended."""
    query = DeviceSession.update(revoked_at=utcnow()).where(
        (DeviceSession.user == user_id) & DeviceSession.revoked_at.is_null())
    if keep_id is not None:
        query = query.where(DeviceSession.id != keep_id)
    return query.execute()


def revoked_since(since: dt.datetime) -> set[int]:
    rows = DeviceSession.select(DeviceSession.id).where(DeviceSession.revoked_at >= since)
    return {r.id for r in rows}


def prune_revoked_txn(before: dt.datetime) -> int:
    """Forget sessions that ended before `before` (their tokens have expired by then)."""
    return DeviceSession.delete().where(DeviceSession.revoked_at < before).execute()


def token_versions(user_ids: list[int]) -> dict[int, int]:
    return {u.id: u.token_version for u in User.select(User.id, User.token_version).where(User.id.in_(user_ids))}


def set_password_txn(user_id: int, password_hash: str) -> int:
    """New hash and a new token version (every older token stops working); returns the version."""
    User.update(password_hash=password_hash, token_version=User.token_version + 1).where(User.id == user_id).execute()
    return User.get_by_id(user_id).token_version


def password_hash_of(user_id: int) -> str | None:
    user = User.get_or_none(User.id == user_id)
    return None if user is None else user.password_hash
