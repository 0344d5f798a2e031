"""Messages and read/delivery pointers: blocking functions, run through Storage.

Sequence numbers: ``UPDATE conversation SET last_seq = last_seq + 1`` takes the
conversation's row lock (PostgreSQL) or the database write lock (SQLite) until
the transaction commits, so seq is gapless per conversation and a message can
never be visible before a lower seq of the same conversation.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from aurora.errors import AuroraError, not_found
from aurora.storage.conversations import require_member
from aurora.storage.models import Conversation, Membership, Message, User, utcnow
from aurora.storage.records import iso, message_record

log = logging.getLogger(__name__)


@dataclass
class NewMessage:
    conversation_id: int
    sender_id: int
    body: str
    client_id: str | None = None
    kind: str = "text"
    extra: dict[str, Any] | None = None
    # Written by the server itself (a call summary): the sender may have left the group since.
    system: bool = False


@dataclass
class AppendResult:
    message: dict[str, Any] | None = None
    duplicate: bool = False
    conversation_kind: str = ""
    error: AuroraError | None = field(default=None)


def _existing(item: NewMessage) -> Message | None:
    if item.client_id is None:
        return None
    return Message.get_or_none(
        (Message.conversation == item.conversation_id)
        & (Message.sender == item.sender_id)
        & (Message.client_id == item.client_id)
    )


def _username(user_id: int, cache: dict[int, str]) -> str:
    if user_id not in cache:
        cache[user_id] = User.select(User.username).where(User.id == user_id).scalar()
    return cache[user_id]


def _append_one(item: NewMessage, names: dict[int, str]) -> AppendResult:
    if item.system:
        conversation = Conversation.get_or_none(Conversation.id == item.conversation_id)
        if conversation is None:
            raise not_found()
    else:
        conversation = require_member(item.conversation_id, item.sender_id)
    existing = _existing(item)
    if existing is not None:
        return AppendResult(message_record(existing, _username(existing.sender_id, names)),
                            duplicate=True, conversation_kind=conversation.kind)
    now = utcnow()
    Conversation.update(last_seq=Conversation.last_seq + 1, last_activity_at=now).where(
        Conversation.id == item.conversation_id
    ).execute()
    seq = Conversation.select(Conversation.last_seq).where(Conversation.id == item.conversation_id).scalar()
    message = Message.create(
        conversation=item.conversation_id, seq=seq, kind=item.kind, sender=item.sender_id,
        body=item.body, client_id=item.client_id, created_at=now,
        extra=json.dumps(item.extra) if item.extra else None,
    )
    # The sender has seen what they wrote.
    Membership.update(last_read_seq=seq, last_delivered_seq=seq).where(
        (Membership.conversation == item.conversation_id) & (Membership.user == item.sender_id)
    ).execute()
    return AppendResult(message_record(message, _username(item.sender_id, names)),
                        conversation_kind=conversation.kind)


def append_messages_txn(items: list[NewMessage]) -> list[AppendResult]:
    """The fast path: a batch in a handful of statements (membership, duplicates, one seq block per
    conversation, one multi-row INSERT, one pointer update per sender). Any database error escapes,
    the transaction rolls back whole, and the caller retries with append_each_txn.

    The statements are plain parameterised SQL: at one or two messages per batch (a quiet server)
    building them through Peewee's query builder cost more CPU than running them.
    """
    db = Message._meta.database
    p = db.param
    conversation_ids = sorted({i.conversation_id for i in items})
    sender_ids = sorted({i.sender_id for i in items})
    cin, sin = _placeholders(p, conversation_ids), _placeholders(p, sender_ids)
    members = set(db.execute_sql(
        f'SELECT conversation_id, user_id FROM "membership" WHERE conversation_id IN ({cin}) AND user_id IN ({sin})',
        (*conversation_ids, *sender_ids),
    ).fetchall())
    client_ids = sorted({i.client_id for i in items if i.client_id is not None})
    stored: dict[tuple[int, int, str], Message] = {}
    if client_ids:
        # The sender condition lets the (conversation, sender, client_id) unique index answer.
        for m in Message.select().where(
            Message.conversation.in_(conversation_ids) & Message.sender.in_(sender_ids)
            & Message.client_id.in_(client_ids)
        ):
            stored[(m.conversation_id, m.sender_id, m.client_id)] = m
    # Decide each item: error, duplicate of a stored message, duplicate within this batch, or new.
    plan: list[tuple[str, Any]] = []
    first_in_batch: dict[tuple[int, int, str], int] = {}
    new_per_conversation: dict[int, int] = {}
    for index, item in enumerate(items):
        key = (item.conversation_id, item.sender_id, item.client_id) if item.client_id is not None else None
        if (item.conversation_id, item.sender_id) not in members and not item.system:
            plan.append(("error", not_found()))
        elif key is not None and key in stored:
            plan.append(("stored", stored[key]))
        elif key is not None and key in first_in_batch:
            plan.append(("same", first_in_batch[key]))
        else:
            if key is not None:
                first_in_batch[key] = index
            new_per_conversation[item.conversation_id] = new_per_conversation.get(item.conversation_id, 0) + 1
            plan.append(("new", None))
    # One UPDATE per conversation reserves a block of seqs (and holds the row lock until commit).
    now = utcnow()
    next_seq: dict[int, int] = {}
    kinds: dict[int, str] = {}
    for conversation_id, count in new_per_conversation.items():
        last_seq, kind = db.execute_sql(
            f'UPDATE "conversation" SET last_seq = last_seq + {p}, last_activity_at = {p} WHERE id = {p} '
            "RETURNING last_seq, kind",
            (count, now, conversation_id),
        ).fetchone()
        next_seq[conversation_id] = last_seq - count + 1
        kinds[conversation_id] = kind
    missing_kinds = [c for c in conversation_ids if c not in kinds]
    if missing_kinds:
        kinds.update(db.execute_sql(
            f'SELECT id, kind FROM "conversation" WHERE id IN ({_placeholders(p, missing_kinds)})',
            missing_kinds,
        ).fetchall())
    rows = []
    for item, (decision, _) in zip(items, plan, strict=True):
        if decision == "new":
            seq = next_seq[item.conversation_id]
            next_seq[item.conversation_id] = seq + 1
            rows.append((item.conversation_id, seq, item.kind, item.sender_id, item.body, item.client_id, now,
                         json.dumps(item.extra) if item.extra else None))
    ids: dict[tuple[int, int], int] = {}
    if rows:
        values = ", ".join([f"({_placeholders(p, range(8))})"] * len(rows))
        inserted = db.execute_sql(
            'INSERT INTO "message" (conversation_id, seq, kind, sender_id, body, client_id, created_at, extra) '
            f"VALUES {values} RETURNING id, conversation_id, seq",
            [value for row in rows for value in row],
        ).fetchall()
        ids = {(conversation_id, seq): message_id for message_id, conversation_id, seq in inserted}
    # The sender has seen what they wrote: one pointer update per (conversation, sender).
    newest: dict[tuple[int, int], int] = {}
    for row in rows:
        newest[(row[0], row[3])] = max(newest.get((row[0], row[3]), 0), row[1])
    for (conversation_id, sender_id), seq in newest.items():
        db.execute_sql(
            f'UPDATE "membership" SET last_read_seq = {p}, last_delivered_seq = {p} '
            f"WHERE conversation_id = {p} AND user_id = {p}",
            (seq, seq, conversation_id, sender_id),
        )
    names = dict(db.execute_sql(f'SELECT id, username FROM "user" WHERE id IN ({sin})', sender_ids).fetchall())
    created_at = iso(now)
    results: list[AppendResult] = []
    new_rows = iter(rows)
    for item, (decision, value) in zip(items, plan, strict=True):
        kind = kinds.get(item.conversation_id, "")
        if decision == "error":
            results.append(AppendResult(error=value))
        elif decision == "stored":
            results.append(AppendResult(message_record(value, names[value.sender_id]), duplicate=True,
                                        conversation_kind=kind))
        elif decision == "same":
            results.append(AppendResult(results[value].message, duplicate=True, conversation_kind=kind))
        else:
            conversation_id, seq, message_kind, sender_id, body, client_id, _, _ = next(new_rows)
            record: dict[str, Any] = {
                "id": ids[(conversation_id, seq)], "conversation_id": conversation_id, "seq": seq,
                "kind": message_kind, "sender_id": sender_id, "sender_username": names[sender_id],
                "body": body, "client_id": client_id, "created_at": created_at,
            }
            if item.extra:
                record.update(item.extra)
            results.append(AppendResult(record, conversation_kind=kind))
    return results


def _placeholders(param: str, values: Any) -> str:
    return ", ".join([param] * len(values))


def append_each_txn(items: list[NewMessage]) -> list[AppendResult]:
    """The careful path: each item in its own savepoint, so one bad item fails alone."""
    db = Message._meta.database
    names: dict[int, str] = {}
    results = []
    for item in items:
        try:
            with db.atomic():
                results.append(_append_one(item, names))
        except AuroraError as exc:
            results.append(AppendResult(error=exc))
        except pw.IntegrityError:
            # Another process stored the same client_id first: answer its message.
            existing = _existing(item)
            if existing is None:
                log.exception("storing a message failed")
                results.append(AppendResult(error=AuroraError("internal", "message could not be stored")))
            else:
                results.append(AppendResult(message_record(existing, _username(existing.sender_id, names)),
                                            duplicate=True))
        except (pw.DatabaseError, ValueError):  # ValueError: the driver cannot encode a value (NUL, surrogate)
            log.exception("storing a message failed")
            results.append(AppendResult(error=AuroraError("internal", "message could not be stored")))
    return results


def _page(query: pw.ModelSelect) -> list[dict[str, Any]]:
    return [message_record(m, m.username) for m in query.objects()]


def list_messages(conversation_id: int, user_id: int, before_seq: int | None,
                  after_seq: int | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """A page ascending by seq; has_more tells whether more lie beyond it in the paging direction."""
    require_member(conversation_id, user_id)
    query = (
        Message.select(Message, User.username)
        .join(User, on=(Message.sender == User.id))
        .where(Message.conversation == conversation_id)
    )
    if before_seq is not None:
        query = query.where(Message.seq < before_seq)
    if after_seq is not None:
        query = query.where(Message.seq > after_seq)
    if after_seq is not None and before_seq is None:
        rows = _page(query.order_by(Message.seq).limit(limit + 1))
        return rows[:limit], len(rows) > limit
    rows = _page(query.order_by(Message.seq.desc()).limit(limit + 1))
    has_more = len(rows) > limit
    return list(reversed(rows[:limit])), has_more


def sync_messages(user_id: int, cursors: dict[int, int], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Messages after each cursor, ascending per conversation, at most limit in all."""
    mine = set(
        m.conversation_id
        for m in Membership.select(Membership.conversation).where(
            (Membership.user == user_id) & (Membership.conversation.in_(list(cursors)))
        )
    ) if cursors else set()
    missing = [cid for cid in cursors if cid not in mine]
    if missing:
        ids = ", ".join(str(cid) for cid in sorted(missing))
        raise AuroraError("not_found", f"conversation not found: {ids} (drop these cursors and sync again)")
    messages: list[dict[str, Any]] = []
    has_more = False
    for conversation_id in sorted(cursors):
        room = limit - len(messages)
        if room <= 0:
            has_more = has_more or Message.select().where(
                (Message.conversation == conversation_id) & (Message.seq > cursors[conversation_id])
            ).exists()
            if has_more:
                break
            continue
        rows = _page(
            Message.select(Message, User.username)
            .join(User, on=(Message.sender == User.id))
            .where((Message.conversation == conversation_id) & (Message.seq > cursors[conversation_id]))
            .order_by(Message.seq)
            .limit(room + 1)
        )
        if len(rows) > room:
            has_more = True
            rows = rows[:room]
        messages.extend(rows)
    return messages, has_more


def advance_pointers_txn(conversation_id: int, user_id: int, delivered_seq: int | None,
                         read_seq: int | None) -> tuple[int, int, bool]:
    """Move a member's delivered/read pointers forward only, clamped to last_seq.

    Read implies delivered. Returns (delivered_seq, read_seq, changed).
    """
    conversation = require_member(conversation_id, user_id)
    query = Membership.select().where(
        (Membership.conversation == conversation_id) & (Membership.user == user_id)
    )
    if isinstance(Membership._meta.database.obj, pw.PostgresqlDatabase):
        query = query.for_update()  # concurrent receipts must not move a pointer backwards
    membership = query.get()
    top = conversation.last_seq
    delivered = membership.last_delivered_seq
    read = membership.last_read_seq
    if read_seq is not None:
        read = max(read, min(read_seq, top))
    if delivered_seq is not None:
        delivered = max(delivered, min(delivered_seq, top))
    delivered = max(delivered, read)
    changed = (delivered, read) != (membership.last_delivered_seq, membership.last_read_seq)
    if changed:
        Membership.update(last_delivered_seq=delivered, last_read_seq=read).where(
            Membership.id == membership.id
        ).execute()
    return delivered, read, changed
