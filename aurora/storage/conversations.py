"""Conversations and memberships: blocking functions, run through Storage.

Functions named ``*_txn`` must run inside Storage.write (one transaction).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import peewee as pw

from aurora.errors import AuroraError, not_found
from aurora.storage.models import Conversation, Membership, Message, User, utcnow
from aurora.storage.records import MESSAGE_KINDS, conversation_record, for_viewer, user_record


def _members_by_conversation(conversation_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not conversation_ids:
        return found
    rows = (
        Membership.select(Membership.conversation, User)
        .join(User)
        .where(Membership.conversation.in_(conversation_ids))
        .order_by(Membership.joined_at, Membership.id)
    )
    for row in rows:
        found[row.conversation_id].append(user_record(row.user))
    return found


def _record(conversation: Conversation) -> dict[str, Any]:
    members = _members_by_conversation([conversation.id])[conversation.id]
    return conversation_record(conversation, members)


def _membership(conversation_id: int, user_id: int) -> Membership | None:
    return Membership.get_or_none(
        (Membership.conversation == conversation_id) & (Membership.user == user_id)
    )


def require_member(conversation_id: int, user_id: int) -> Conversation:
    """The conversation, if user_id belongs to it; otherwise not_found (never forbidden)."""
    conversation = (
        Conversation.select()
        .join(Membership)
        .where((Conversation.id == conversation_id) & (Membership.user == user_id))
        .first()
    )
    if conversation is None:
        raise not_found()
    return conversation


def get_for_member(conversation_id: int, user_id: int) -> dict[str, Any]:
    record = _record(require_member(conversation_id, user_id))
    membership = _membership(conversation_id, user_id)
    return _with_mute(record, membership.muted_until if membership else None)


def _with_mute(record: dict[str, Any], muted_until: Any) -> dict[str, Any]:
    """The viewer's mute of the conversation (push notifications): muted, muted_until."""
    from aurora.storage.mutes import mute_record

    mute = mute_record(record["id"], muted_until)
    return {**record, "muted": mute["muted"], "muted_until": mute["muted_until"]}


def get_or_create_direct_txn(user_id: int, other_id: int) -> tuple[dict[str, Any], bool]:
    """The one direct conversation of a pair; created if missing, also under races."""
    low, high = sorted((user_id, other_id))
    key = f"{low}:{high}"
    existing = Conversation.get_or_none(Conversation.direct_key == key)
    if existing is not None:
        return _record(existing), False
    try:
        with Conversation._meta.database.atomic():  # a savepoint: a lost race rolls back only this
            conversation = Conversation.create(kind="direct", direct_key=key)
            Membership.insert_many(
                [{"user": low, "conversation": conversation.id},
                 {"user": high, "conversation": conversation.id}]
            ).execute()
    except pw.IntegrityError:
        return _record(Conversation.get(Conversation.direct_key == key)), False
    return _record(conversation), True


def create_group_txn(creator_id: int, member_ids: list[int], title: str | None) -> dict[str, Any]:
    conversation = Conversation.create(kind="group", title=title)
    everyone = [creator_id] + [m for m in member_ids if m != creator_id]
    now = utcnow()
    Membership.insert_many(
        [{"user": uid, "conversation": conversation.id, "joined_at": now} for uid in everyone]
    ).execute()
    return _record(conversation)


def add_members_txn(
    conversation_id: int, actor_id: int, user_ids: list[int], max_members: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Add users to a group; returns the conversation and the users actually added."""
    conversation = require_member(conversation_id, actor_id)
    if conversation.kind != "group":
        raise AuroraError("invalid", "members can only be added to a group conversation")
    present = {
        m.user_id for m in Membership.select(Membership.user).where(Membership.conversation == conversation_id)
    }
    new_ids = [uid for uid in dict.fromkeys(user_ids) if uid not in present]
    if max_members is not None and len(present) + len(new_ids) > max_members:
        raise AuroraError("too_large", f"a group can have at most {max_members} members")
    if new_ids:
        # New members start with everything before their arrival counted as read.
        Membership.insert_many(
            [{"user": uid, "conversation": conversation_id,
              "last_read_seq": conversation.last_seq, "last_delivered_seq": conversation.last_seq}
             for uid in new_ids]
        ).execute()
    added = [user_record(u) for u in User.select().where(User.id.in_(new_ids))] if new_ids else []
    return _record(Conversation.get_by_id(conversation_id)), added


def leave_txn(conversation_id: int, user_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Remove user_id from a group; returns the conversation (as before leaving) and the user."""
    conversation = require_member(conversation_id, user_id)
    if conversation.kind != "group":
        raise AuroraError("invalid", "only a group conversation can be left")
    record = _record(conversation)
    Membership.delete().where(
        (Membership.conversation == conversation_id) & (Membership.user == user_id)
    ).execute()
    return record, user_record(User.get_by_id(user_id))


def conversation_ids_for_user(user_id: int) -> list[int]:
    return [m.conversation_id for m in Membership.select(Membership.conversation).where(Membership.user == user_id)]


def conversation_ids_for_users(user_ids: list[int]) -> dict[int, list[int]]:
    """conversation_ids_for_user for many users in one query (the connect path, batched)."""
    out: dict[int, list[int]] = {}
    rows = Membership.select(Membership.user, Membership.conversation).where(Membership.user.in_(user_ids))
    for m in rows.tuples():
        out.setdefault(m[0], []).append(m[1])
    return out


def contact_ids_for_users(user_ids: list[int]) -> dict[int, list[int]]:
    """contact_ids for many users in one query."""
    theirs = Membership.alias()
    rows = (Membership.select(Membership.user, theirs.user).distinct()
            .join(theirs, on=(theirs.conversation == Membership.conversation))
            .where(Membership.user.in_(user_ids) & (theirs.user != Membership.user)))
    out: dict[int, list[int]] = {}
    for user_id, contact_id in rows.tuples():
        out.setdefault(user_id, []).append(contact_id)
    return out


def member_ids(conversation_id: int) -> list[int]:
    return [m.user_id for m in Membership.select(Membership.user).where(Membership.conversation == conversation_id)]


def contact_ids(user_id: int) -> list[int]:
    """Everyone who shares at least one conversation with user_id (not user_id itself)."""
    mine = Membership.select(Membership.conversation).where(Membership.user == user_id)
    rows = (
        Membership.select(Membership.user).distinct()
        .where(Membership.conversation.in_(mine) & (Membership.user != user_id))
    )
    return [m.user_id for m in rows]


def _members_shown(conversation_ids: list[int], per_conversation: int) -> dict[int, list[dict[str, Any]]]:
    """The first members (by joining order) of each conversation, at most per_conversation each:
    one query, whatever the size of the groups (a window function numbers each one's members)."""
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not conversation_ids:
        return found
    position = pw.fn.ROW_NUMBER().over(
        partition_by=[Membership.conversation], order_by=[Membership.joined_at, Membership.id]
    ).alias("position")
    numbered = (Membership.select(Membership.conversation, Membership.user, Membership.joined_at,
                                  Membership.id.alias("membership_id"), position)
                .where(Membership.conversation.in_(conversation_ids)).alias("numbered"))
    rows = (User.select(User, numbered.c.conversation_id.alias("conversation_ref"))
            .join(numbered, on=(numbered.c.user_id == User.id))
            .where(numbered.c.position <= per_conversation)
            .order_by(numbered.c.conversation_id, numbered.c.joined_at, numbered.c.membership_id)
            .objects())
    for user in rows:
        found[user.conversation_ref].append(user_record(user))
    return found


def _member_counts(conversation_ids: list[int]) -> dict[int, int]:
    if not conversation_ids:
        return {}
    rows = (Membership.select(Membership.conversation, pw.fn.COUNT(Membership.id).alias("n"))
            .where(Membership.conversation.in_(conversation_ids)).group_by(Membership.conversation))
    return {r.conversation_id: r.n for r in rows}


def list_for_user(user_id: int, limit: int, after: tuple[dt.datetime, int] | None = None,
                  members_shown: int = 50) -> tuple[list[dict[str, Any]], tuple[dt.datetime, int] | None]:
    """A page of the user's conversations, most recently active first, with last message and unread
    count, and the position to continue after (None on the last page).

    Each shows at most members_shown members (member_count has them all).
    """
    query = (
        Conversation.select(Conversation, Membership.last_read_seq, Membership.last_delivered_seq,
                            Membership.muted_until)
        .join(Membership)
        .where(Membership.user == user_id)
    )
    if after is not None:
        at, cid = after
        query = query.where((Conversation.last_activity_at < at)
                            | ((Conversation.last_activity_at == at) & (Conversation.id < cid)))
    rows = list(query.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
                .limit(limit + 1).objects())
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [c.id for c in rows]
    members = _members_shown(ids, members_shown)
    member_counts = _member_counts(ids)
    last_messages: dict[int, dict[str, Any]] = {}
    unread: dict[int, int] = {}
    if ids:
        from aurora.storage.messages import records_of  # messages imports this module

        # The latest message (not change entry) of each conversation, in its current state.
        latest = (
            Message.select(Message.conversation, pw.fn.MAX(Message.seq).alias("top"))
            .where(Message.conversation.in_(ids) & Message.kind.in_(MESSAGE_KINDS))
            .group_by(Message.conversation)
        )
        query = (
            Message.select(Message, User.username)
            .join(User, on=(Message.sender == User.id))
            .switch(Message)
            .join(latest, on=((Message.conversation == latest.c.conversation_id) & (Message.seq == latest.c.top)))
            .objects()
        )
        for record in records_of(list(query)):
            last_messages[record["conversation_id"]] = for_viewer(record, user_id)
        # Unread: messages from others after the read pointer (change entries and own messages do not count).
        counts = (
            Message.select(Message.conversation, pw.fn.COUNT(Message.id).alias("n"))
            .join(Membership, on=((Membership.conversation == Message.conversation) & (Membership.user == user_id)))
            .where(Message.conversation.in_(ids) & (Message.seq > Membership.last_read_seq)
                   & Message.kind.in_(MESSAGE_KINDS) & (Message.sender != user_id))
            .group_by(Message.conversation)
            .tuples()
        )
        unread = dict(counts)
    result = []
    for c in rows:
        record = conversation_record(c, members[c.id])
        record["member_count"] = member_counts.get(c.id, 0)
        record["last_message"] = last_messages.get(c.id)
        record["unread_count"] = unread.get(c.id, 0)
        record["read_seq"] = c.last_read_seq
        record["delivered_seq"] = c.last_delivered_seq
        result.append(_with_mute(record, c.muted_until))
    following = (rows[-1].last_activity_at, rows[-1].id) if more and rows else None
    return result, following


def last_seqs_for_user(user_id: int) -> list[dict[str, int]]:
    rows = (
        Conversation.select(Conversation.id, Conversation.last_seq)
        .join(Membership)
        .where(Membership.user == user_id)
        .order_by(Conversation.id)
    )
    return [{"id": c.id, "last_seq": c.last_seq} for c in rows]
