"""User rows: blocking functions, run through Storage."""

from __future__ import annotations

from typing import Any

import peewee as pw

from aurora.errors import AuroraError
from aurora.storage.models import User, utcnow
from aurora.storage.records import iso, user_record


def create_user(username: str, display_name: str, password_hash: str) -> dict[str, Any]:
    """Insert a user; raise conflict when the name is taken (any letter case)."""
    try:
        with User._meta.database.atomic():
            user = User.create(
                username=username, username_key=username.lower(),
                display_name=display_name, password_hash=password_hash,
            )
    except pw.IntegrityError:
        raise AuroraError("conflict", "username is taken") from None
    return user_record(user)


def credentials_for(username: str) -> tuple[dict[str, Any], str, int, bool] | None:
    """(user, password hash, token version, deactivated) for a username, case-insensitively."""
    user = User.get_or_none(User.username_key == username.lower())
    if user is None:
        return None
    return user_record(user), user.password_hash, user.token_version, user.deactivated_at is not None


def get_user_by_name(username: str) -> tuple[dict[str, Any], int] | None:
    user = User.get_or_none(User.username_key == username.lower())
    return None if user is None else (user_record(user), user.token_version)


def get_admin(username: str | None) -> tuple[dict[str, Any], int] | None:
    """An active admin: the one named, or the first by id."""
    query = User.select().where(User.is_admin & User.deactivated_at.is_null()).order_by(User.id)
    if username:
        query = query.where(User.username_key == username.lower())
    user = query.first()
    return None if user is None else (user_record(user), user.token_version)


def get_user_with_version(user_id: int) -> tuple[dict[str, Any], int] | None:
    """The user behind a token; None for an unknown or deactivated user (their tokens stop working)."""
    user = User.get_or_none(User.id == user_id)
    if user is None or user.deactivated_at is not None:
        return None
    return user_record(user), user.token_version


def bump_token_version(user_id: int) -> int:
    User.update(token_version=User.token_version + 1).where(User.id == user_id).execute()
    return User.get_by_id(user_id).token_version


def existing_user_ids(user_ids: list[int]) -> set[int]:
    return {u.id for u in User.select(User.id).where(User.id.in_(user_ids))}


def search_users(prefix: str, limit: int) -> list[dict[str, Any]]:
    """Users whose username or display name starts with prefix (case-insensitive)."""
    query = User.select().order_by(User.username_key).limit(limit)
    if prefix:
        # SUBSTR, not LIKE: a prefix with % or _ in it must match literally.
        key, n = prefix.lower(), len(prefix)
        query = query.where(
            (pw.fn.SUBSTR(User.username_key, 1, n) == key)
            | (pw.fn.LOWER(pw.fn.SUBSTR(User.display_name, 1, n)) == key)
        )
    return [user_record(u) for u in query]


def touch_last_seen(user_ids: list[int]) -> dict[int, str]:
    """These users were last seen now (one statement for a batch of them): {user id: the stamp}."""
    now = utcnow()
    User.update(last_seen_at=now).where(User.id.in_(user_ids)).execute()
    stamp = iso(now) or ""
    return dict.fromkeys(user_ids, stamp)


def is_active_admin(user_id: int) -> bool:
    return User.select().where((User.id == user_id) & User.is_admin & User.deactivated_at.is_null()).exists()
