"""Web Push subscriptions, and who a stored entry should be pushed to: blocking functions, run
through Storage. Functions named ``*_txn`` must run inside Storage.write."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aurora.storage.models import Conversation, DeviceSession, Membership, PushSubscription, User, utcnow
from aurora.storage.records import iso


def subscription_record(sub: PushSubscription) -> dict[str, Any]:
    return {"id": sub.id, "endpoint": sub.endpoint, "session_id": sub.session_id, "created_at": iso(sub.created_at)}


def _open_session() -> Any:
    """Subscriptions worth pushing to: made in a session that has not ended (or before sessions)."""
    ended = DeviceSession.select(DeviceSession.id).where(DeviceSession.revoked_at.is_null(False))
    return PushSubscription.session.is_null() | PushSubscription.session.not_in(ended)


def save_subscription_txn(user_id: int, session_id: int | None, endpoint: str, p256dh: str, auth: str,
                          vapid_key: str, max_per_user: int) -> tuple[dict[str, Any], bool]:
    """Keep a subscription (a repeated POST updates it and moves it to this session; an endpoint
    another user had moves to this one: the browser is now theirs). Beyond max_per_user, the user's
    oldest are dropped."""
    existing = PushSubscription.get_or_none(PushSubscription.endpoint == endpoint)
    created = existing is None or existing.user_id != user_id
    if existing is None:
        sub = PushSubscription.create(user=user_id, session=session_id, endpoint=endpoint, p256dh=p256dh, auth=auth,
                                      vapid_key=vapid_key)
    else:
        if created:
            existing.created_at = utcnow()
        existing.user, existing.session = user_id, session_id
        existing.p256dh, existing.auth, existing.vapid_key = p256dh, auth, vapid_key
        existing.save()
        sub = existing
    surplus = (PushSubscription.select(PushSubscription.id).where(PushSubscription.user == user_id)
               .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc()).offset(max_per_user))
    stale = [s.id for s in surplus]
    if stale:
        PushSubscription.delete().where(PushSubscription.id.in_(stale)).execute()
    return subscription_record(sub), created


def delete_subscription_txn(user_id: int, endpoint: str) -> bool:
    return bool(PushSubscription.delete().where(
        (PushSubscription.user == user_id) & (PushSubscription.endpoint == endpoint)).execute())


def delete_user_subscriptions_txn(user_id: int, session_id: int | None = None) -> int:
    """All of the user's subscriptions, or those of one session (and those made before sessions)."""
    condition = PushSubscription.user == user_id
    if session_id is not None:
        condition &= (PushSubscription.session == session_id) | PushSubscription.session.is_null()
    return PushSubscription.delete().where(condition).execute()


def forget_gone_txn(subscription_id: int, endpoint: str) -> bool:
    """The push service said the subscription is gone (404/410)."""
    return bool(PushSubscription.delete().where(
        (PushSubscription.id == subscription_id) & (PushSubscription.endpoint == endpoint)).execute())


def list_subscriptions(user_id: int) -> list[dict[str, Any]]:
    """The user's subscriptions in open sessions (an ended session's are never pushed to again)."""
    rows = (PushSubscription.select().where((PushSubscription.user == user_id) & _open_session())
            .order_by(PushSubscription.id))
    return [subscription_record(s) for s in rows]


def subscribed_members(conversation_ids: list[int]) -> dict[int, dict[int, dt.datetime | None]]:
    """conversation id -> {member with a subscription in an open session: the end of their mute, or None}."""
    found: dict[int, dict[int, dt.datetime | None]] = defaultdict(dict)
    if not conversation_ids:
        return found
    subscribed = PushSubscription.select(PushSubscription.user).where(_open_session())
    for conversation_id, user_id, muted_until in (
            Membership.select(Membership.conversation, Membership.user, Membership.muted_until)
            .where(Membership.conversation.in_(conversation_ids) & Membership.user.in_(subscribed))
            .tuples()):
        found[conversation_id][user_id] = muted_until
    return found


@dataclass
class PushDetails:
    """What sending needs, read only once somebody is to be pushed to."""

    subscriptions: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # user id -> subscriptions
    conversations: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # id -> (kind, title)
    display_names: dict[int, str] = field(default_factory=dict)  # sender id -> display name


def push_details(user_ids: list[int], conversation_ids: list[int], sender_ids: list[int]) -> PushDetails:
    found = PushDetails(subscriptions=subscriptions_of(user_ids))
    if not found.subscriptions:
        return found
    found.conversations = {cid: (kind, title) for cid, kind, title in (
        Conversation.select(Conversation.id, Conversation.kind, Conversation.title)
        .where(Conversation.id.in_(conversation_ids)).tuples())}
    if sender_ids:
        found.display_names = dict(User.select(User.id, User.display_name).where(User.id.in_(sender_ids)).tuples())
    return found


def subscriptions_of(user_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each user's subscriptions with their keys, for sending."""
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not user_ids:
        return found
    for sub in (PushSubscription.select().where(PushSubscription.user.in_(user_ids) & _open_session())
                .order_by(PushSubscription.id)):
        found[sub.user_id].append({"id": sub.id, "endpoint": sub.endpoint, "p256dh": sub.p256dh,
                                   "auth": sub.auth, "vapid_key": sub.vapid_key})
    return found
