"""The conversation log (messages and change entries) and read/delivery pointers: blocking
functions, run through Storage.

Sequence numbers: ``UPDATE conversation SET last_seq = last_seq + n`` takes the
conversation's row lock (PostgreSQL) or the database write lock (SQLite) until
the transaction commits, so seq is gapless per conversation and an entry can
never be visible before a lower seq of the same conversation.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from aurora.errors import AuroraError, not_found
from aurora.outages import database_outage
from aurora.storage.conversations import require_member
from aurora.storage.log_rules import NOOP, LogRules, Target, apply_change, stored_reactions
from aurora.storage.models import Membership, Message, User, utcnow
from aurora.storage.records import MESSAGE_KINDS, EntryRow, message_record, reply_record
from aurora.storage.search_backlog import index_if_due, on_sqlite
from aurora.storage.uploads import (
    attach_txn,
    attachment_record,
    attachments_of,
    check_attachable,
    detach_txn,
    uploads_for_attach,
)

log = logging.getLogger(__name__)


@dataclass
class NewMessage:
    """One entry to append: a message (kind text | call) or a change (edit | delete | reaction)."""

    conversation_id: int
    sender_id: int
    body: str
    client_id: str | None = None
    kind: str = "text"
    extra: dict[str, Any] | None = None
    # Written by the server itself (a call summary): the sender may have left the group since.
    system: bool = False
    # Messages: the message this one replies to.
    reply_to_seq: int | None = None
    # Change entries: the message they change; reactions: the emoji and whether it is added.
    target_seq: int | None = None
    emoji: str | None = None
    added: bool = True
    # Messages: upload ids to attach, in order (the sender's own, unattached uploads).
    attachments: list[int] | None = None
    # A delete by an admin (moderation): the same tombstone as the sender's own delete; the entry names
    # the admin as its sender (who need not be a member: set system too).
    moderator: bool = False


@dataclass
class AppendResult:
    # The entry as the API sends it: the new message, or the change entry (None: a no-op change with
    # no earlier entry to show).
    message: dict[str, Any] | None = None
    duplicate: bool = False
    conversation_kind: str = ""
    error: AuroraError | None = field(default=None)
    # Change entries: the target message's state after the batch.
    state: dict[str, Any] | None = None
    # Deletes: blobs the deleted message's files named (the caller removes those now unreferenced).
    released: list[str] = field(default_factory=list)


DEFAULT_RULES = LogRules()
_COLUMNS = ("conversation_id", "seq", "kind", "sender_id", "body", "client_id", "created_at", "extra",
            "target_seq", "emoji", "added", "reply_to_seq")


def _retry_of(earlier: Message | NewMessage, item: NewMessage) -> bool:
    """Whether item repeats the entry stored (or batched) earlier under its client_id: a message for a
    message; the same change (kind, target, and for a reaction its emoji and direction) for a change.
    Anything else reuses a client_id for another request, which is refused: answering the earlier entry
    as a duplicate would tell the client its edit (or reaction) was applied when nothing was."""
    if item.kind in MESSAGE_KINDS:
        return earlier.kind in MESSAGE_KINDS
    if earlier.kind != item.kind or earlier.target_seq != item.target_seq:
        return False
    return item.kind != "reaction" or (earlier.emoji == item.emoji and bool(earlier.added) == item.added)


def _client_id_taken(kind: str) -> AuroraError:
    return AuroraError("conflict", f"client_id was already used for another entry ({kind}) in this conversation; "
                                   "use a new client_id for a new request")


def append_entries_txn(items: list[NewMessage], rules: LogRules = DEFAULT_RULES) -> list[AppendResult]:
    """Append a batch to the log, in a handful of statements whatever its size: membership,
    duplicates, targets (when the batch has changes or replies), one UPDATE reserving a seq block in
    each conversation, one multi-row INSERT, the targets' new state, one UPDATE of the senders'
    pointers. Errors of one item (not a member, refused change) are answered per item; a database
    error escapes, the transaction rolls back whole, and the caller retries with append_each_txn,
    which runs this same function item by item.

    The hot statements are plain parameterised SQL: at one or two messages per batch (a quiet
    server) building them through Peewee's query builder cost more CPU than running them.
    """
    db = Message._meta.database
    p = db.param
    conversation_ids = sorted({i.conversation_id for i in items})
    sender_ids = sorted({i.sender_id for i in items})
    sin = _placeholders(p, sender_ids)
    with_keys, params = _keys(p, "c, u", sorted({(i.conversation_id, i.sender_id) for i in items}))
    members = set(db.execute_sql(
        f'{with_keys}SELECT m.conversation_id, m.user_id FROM keys JOIN "membership" m '
        "ON m.conversation_id = keys.c AND m.user_id = keys.u", params,
    ).fetchall())
    targets = _load_targets(items, conversation_ids)
    wanted_uploads = [u for i in items if i.kind in MESSAGE_KINDS for u in (i.attachments or [])]
    uploads = uploads_for_attach(wanted_uploads) if wanted_uploads else {}
    claimed: set[int] = set()
    retry_keys = sorted({(i.conversation_id, i.sender_id, i.client_id) for i in items if i.client_id is not None})
    stored: dict[tuple[int, int, str], Message] = {}
    if retry_keys:
        # Each key probes the (conversation, sender, client_id) unique index once. Plain SQL for the ids
        # first: it almost always finds nothing, and Peewee's query objects cost ~2 µs per parameter.
        with_keys, params = _keys(p, "c, s, k", retry_keys)
        found = [row[0] for row in db.execute_sql(
            f'{with_keys}SELECT m.id FROM keys JOIN "message" m '
            "ON m.conversation_id = keys.c AND m.sender_id = keys.s AND m.client_id = keys.k", params,
        )]
        for m in Message.select().where(Message.id.in_(found)) if found else ():
            stored[(m.conversation_id, m.sender_id, m.client_id)] = m
    now = utcnow()
    # Decide each item in order: error, duplicate (stored or earlier in this batch), no-op change, or new.
    plan: list[tuple[str, Any]] = []
    # What each item's answer shows of the message it changes or replies to, as of that item.
    states: dict[int, tuple[Target, dict[str, Any]]] = {}
    replies: dict[int, dict[str, Any]] = {}
    first_in_batch: dict[tuple[int, int, str], int] = {}
    new_per_conversation: dict[int, int] = {}
    with_messages: set[int] = set()
    for index, item in enumerate(items):
        key = (item.conversation_id, item.sender_id, item.client_id) if item.client_id is not None else None
        try:
            if (item.conversation_id, item.sender_id) not in members and not item.system:
                raise not_found()
            target = targets.get((item.conversation_id, item.target_seq)) if item.kind not in MESSAGE_KINDS else None
            if key is not None and key in stored:
                if not _retry_of(stored[key], item):
                    raise _client_id_taken(stored[key].kind)
                # A retry: answered with the state as of now (this batch may have changed it already).
                found = target or targets.get((item.conversation_id, stored[key].seq))
                if found is not None:
                    states[index] = (found, found.snapshot())
                plan.append(("stored", stored[key]))
                continue
            if key is not None and key in first_in_batch:
                if not _retry_of(items[first_in_batch[key]], item):
                    raise _client_id_taken(items[first_in_batch[key]].kind)
                if target is not None:
                    states[index] = (target, target.snapshot())
                plan.append(("same", first_in_batch[key]))
                continue
            if item.kind in MESSAGE_KINDS:
                if item.reply_to_seq is not None:
                    replied = targets.get((item.conversation_id, item.reply_to_seq))
                    if replied is None or not replied.is_message:
                        raise not_found("message")
                    replies[index] = reply_record(replied.row, replied.sender_username)
                if item.attachments:
                    check_attachable(item.attachments, item.sender_id, uploads, claimed)
                    claimed.update(item.attachments)
                with_messages.add(item.conversation_id)
            else:
                if target is None or not target.is_message:
                    raise not_found("message")
                actor = target.row.sender_id if item.moderator else item.sender_id
                outcome = apply_change(target, item.kind, actor, rules, now, body=item.body,
                                       emoji=item.emoji, added=item.added)
                if outcome == NOOP:
                    states[index] = (target, target.snapshot())
                    plan.append(("noop", target))
                    continue
                target.changed = True
                target.last_change = index
                states[index] = (target, target.snapshot())
        except AuroraError as exc:
            plan.append(("error", exc))
            continue
        if key is not None:
            first_in_batch[key] = index
        new_per_conversation[item.conversation_id] = new_per_conversation.get(item.conversation_id, 0) + 1
        plan.append(("new", None))
    # One UPDATE reserves a block of seqs in each conversation and holds its row lock until commit.
    # Change entries do not move last_activity_at. On PostgreSQL the rows are locked first, in id
    # order (the order every writer takes them: no deadlock between processes); SQLite's IMMEDIATE
    # transaction holds the whole database already.
    next_seq: dict[int, int] = {}
    kinds: dict[int, str] = {}
    if new_per_conversation:
        reserved = sorted((c, n, c in with_messages) for c, n in new_per_conversation.items())
        if len(reserved) > 1 and not on_sqlite(db):
            _lock_conversations(db, [c for c, _, _ in reserved])
        with_keys, params = _keys(p, "cid, n, act", reserved)
        for conversation_id, last_seq, kind in db.execute_sql(
            f'{with_keys}UPDATE "conversation" SET last_seq = last_seq + keys.n, '
            f"last_activity_at = CASE WHEN keys.act THEN {p} ELSE last_activity_at END "
            'FROM keys WHERE "conversation".id = keys.cid RETURNING id, last_seq, kind', [*params, now],
        ).fetchall():
            next_seq[conversation_id] = last_seq - new_per_conversation[conversation_id] + 1
            kinds[conversation_id] = kind
    missing_kinds = [c for c in conversation_ids if c not in kinds]
    if missing_kinds:
        kinds.update(db.execute_sql(
            f'SELECT id, kind FROM "conversation" WHERE id IN ({_placeholders(p, missing_kinds)})',
            missing_kinds,
        ).fetchall())
    entries: dict[int, EntryRow] = {}
    for index, (item, (decision, _)) in enumerate(zip(items, plan, strict=True)):
        if decision == "new":
            seq = next_seq[item.conversation_id]
            next_seq[item.conversation_id] = seq + 1
            entries[index] = EntryRow(
                item.conversation_id, seq, item.kind, item.sender_id,
                item.body if item.kind in ("text", "call", "edit") else "", item.client_id, now,
                json.dumps(item.extra) if item.extra else None, item.target_seq, item.emoji,
                item.added if item.kind == "reaction" else None, item.reply_to_seq,
            )
    if entries:
        rows = [[getattr(m, c) for c in _COLUMNS] for m in entries.values()]
        values = ", ".join([f"({_placeholders(p, _COLUMNS)})"] * len(rows))
        inserted = db.execute_sql(
            f'INSERT INTO "message" ({", ".join(_COLUMNS)}) VALUES {values} RETURNING id, conversation_id, seq',
            [value for row in rows for value in row],
        ).fetchall()
        ids = {(conversation_id, seq): message_id for message_id, conversation_id, seq in inserted}
        for m in entries.values():
            m.id = ids[(m.conversation_id, m.seq)]
        for index, m in entries.items():
            if items[index].attachments:
                attach_txn(db, m.id, items[index].attachments)
        if on_sqlite(db):  # the full-text index takes new messages in batches (storage/search_backlog.py)
            index_if_due(max(m.id for m in entries.values()))
    _write_targets(db, targets, entries)
    # Attachments of what the results show: new messages from the uploads loaded above; duplicates
    # and changed messages (rare on the hot path) in one query, after this batch's attaches/detaches.
    shown = [v.id for d, v in plan if d == "stored" and v.kind in MESSAGE_KINDS]
    shown += [t.row.id for t in targets.values() if t.is_message]
    attached = attachments_of(shown) if shown else {}
    for index, m in entries.items():
        if items[index].attachments:
            attached[m.id] = [attachment_record(uploads[u]) for u in items[index].attachments]
    # The sender has seen what they wrote: one pointer update per (conversation, sender) of new messages.
    newest: dict[tuple[int, int], int] = {}
    for m in entries.values():
        if m.kind in MESSAGE_KINDS:
            newest[(m.conversation_id, m.sender_id)] = max(newest.get((m.conversation_id, m.sender_id), 0), m.seq)
    if newest:
        # One statement for all of them (the conversations' row locks, held since the seq UPDATE,
        # keep two writers from reaching the same membership rows in different orders).
        with_keys, params = _keys(p, "cid, uid, seq", sorted((c, u, seq) for (c, u), seq in newest.items()))
        db.execute_sql(
            f'{with_keys}UPDATE "membership" SET last_read_seq = keys.seq, last_delivered_seq = keys.seq FROM keys '
            'WHERE "membership".conversation_id = keys.cid AND "membership".user_id = keys.uid', params,
        )
    names = dict(db.execute_sql(f'SELECT id, username FROM "user" WHERE id IN ({sin})', sender_ids).fetchall())
    results: list[AppendResult] = []
    for index, (item, (decision, value)) in enumerate(zip(items, plan, strict=True)):
        kind = kinds.get(item.conversation_id, "")
        if decision == "error":
            results.append(AppendResult(error=value))
            continue
        if decision == "same":
            earlier = results[value]
            state = earlier.state
            if index in states:
                target, snapshot = states[index]
                state = _record(_as_of(target.row, snapshot, entries), names, targets, username=target.sender_username)
            results.append(AppendResult(earlier.message, duplicate=True, conversation_kind=kind, state=state))
            continue
        if decision == "stored":
            entry: Message | EntryRow | None = value
            if item.kind in MESSAGE_KINDS and index in states:
                entry = _as_of(states[index][0].row, states[index][1], entries)
        elif decision == "noop":
            entry = _existing_change(item, entries, items)
        else:
            entry = entries[index]
        record = _record(entry, names, targets, reply=replies.get(index), attached=attached) \
            if entry is not None else None
        state = None
        released: list[str] = []
        if index in states and item.kind not in MESSAGE_KINDS:
            target, snapshot = states[index]
            state = _record(_as_of(target.row, snapshot, entries), names, targets, username=target.sender_username,
                            attached=attached)
        if decision == "new" and item.kind == "delete":
            deleted = targets.get((item.conversation_id, item.target_seq))
            released = deleted.released if deleted is not None else []
        results.append(AppendResult(record, duplicate=decision != "new", conversation_kind=kind, state=state,
                                    released=released))
    return results


def _as_of(row: Message, snapshot: dict[str, Any], entries: dict[int, EntryRow]) -> Message:
    """A copy of a target row holding the state of a snapshot (state_seq: the seq of its last change)."""
    copy = Message(**row.__data__)
    last_change = snapshot["last_change"]
    for name, value in snapshot.items():
        if name == "last_change":
            continue
        setattr(copy, name, value)
    if last_change is not None:
        copy.state_seq = entries[last_change].seq
    return copy


def _load_targets(items: list[NewMessage], conversation_ids: list[int]) -> dict[tuple[int, int], Target]:
    """The messages this batch changes or replies to, read under the conversations' row locks."""
    wanted = {(i.conversation_id, i.target_seq if i.kind not in MESSAGE_KINDS else i.reply_to_seq)
              for i in items if i.kind not in MESSAGE_KINDS or i.reply_to_seq is not None}
    if not wanted:
        return {}
    db = Message._meta.database
    if isinstance(db.obj if isinstance(db, pw.DatabaseProxy) else db, pw.PostgresqlDatabase):
        # Another process's writer may change the same messages: take the conversations' row locks
        # (in id order, the order the seq UPDATEs use) before reading the state we are about to change.
        # SQLite needs nothing: the write transaction began IMMEDIATE and holds the database lock.
        _lock_conversations(db, conversation_ids)
    return {(row.conversation_id, row.seq): Target.of(row, row.username)
            for row in _messages_at(sorted((c, seq) for c, seq in wanted if seq is not None))}


def _messages_at(pairs: list[tuple[int, int]]) -> list[Message]:
    """The messages at these (conversation id, seq) pairs, each with its sender's `username`."""
    if not pairs:
        return []
    with_keys, params = _keys(Message._meta.database.param, "c, s", pairs)
    return list(Message.raw(
        f'{with_keys}SELECT m.*, u.username FROM keys JOIN "message" m ON m.conversation_id = keys.c '
        'AND m.seq = keys.s JOIN "user" u ON u.id = m.sender_id', *params,
    ))


def _lock_conversations(db: pw.Database, conversation_ids: list[int]) -> None:
    """PostgreSQL: take these conversations' row locks in id order (held until commit)."""
    db.execute_sql(
        f'SELECT id FROM "conversation" WHERE id IN ({_placeholders(db.param, conversation_ids)}) '
        "ORDER BY id FOR UPDATE", sorted(conversation_ids),
    )


def _write_targets(db: pw.Database, targets: dict[tuple[int, int], Target], entries: dict[int, EntryRow]) -> None:
    p = db.param
    for target in targets.values():
        if not target.changed:
            continue
        row = target.row
        assert target.last_change is not None
        row.state_seq = entries[target.last_change].seq
        row.reactions = stored_reactions(target)
        db.execute_sql(
            f'UPDATE "message" SET body = {p}, edited_at = {p}, deleted = {p}, reactions = {p}, '
            f"reply_to_seq = {p}, state_seq = {p} WHERE id = {p}",
            (row.body, row.edited_at, row.deleted, row.reactions, row.reply_to_seq, row.state_seq, row.id),
        )
        if target.erase_edits:
            # A delete erases the text of every edit too: from storage, not just from view.
            db.execute_sql(
                f"UPDATE \"message\" SET body = '' WHERE conversation_id = {p} AND target_seq = {p} "
                "AND kind = 'edit'",
                (row.conversation_id, row.seq),
            )
            # ...and detaches its files (their bytes go once nothing else names them).
            target.released = detach_txn(db, row.id)


def _existing_change(item: NewMessage, entries: dict[int, EntryRow],
                     items: list[NewMessage]) -> Message | EntryRow | None:
    """For a change that changed nothing: the entry that made the state it found (this batch's, else
    the latest stored one): the delete entry of a deleted message, the user's last reaction entry."""
    def same(m: EntryRow, sender: int) -> bool:
        if item.kind == "delete":
            return m.kind == "delete"
        return m.kind == "reaction" and sender == item.sender_id and m.emoji == item.emoji

    for index in sorted(entries, reverse=True):
        entry = entries[index]
        if (entry.conversation_id, entry.target_seq) == (item.conversation_id, item.target_seq) \
                and same(entry, entry.sender_id):
            return entry
    query = Message.select().where(
        (Message.conversation == item.conversation_id) & (Message.target_seq == item.target_seq)
        & (Message.kind == item.kind)
    )
    if item.kind == "reaction":
        query = query.where((Message.sender == item.sender_id) & (Message.emoji == item.emoji))
    return query.order_by(Message.seq.desc()).first()


def _record(entry: Message | EntryRow, names: dict[int, str], targets: dict[tuple[int, int], Target],
            username: str | None = None, reply: dict[str, Any] | None = None,
            attached: dict[int, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    if username is None:
        if entry.sender_id not in names:
            names[entry.sender_id] = User.select(User.username).where(User.id == entry.sender_id).scalar()
        username = names[entry.sender_id]
    if reply is None and entry.kind in MESSAGE_KINDS and entry.reply_to_seq is not None:
        target = targets.get((entry.conversation_id, entry.reply_to_seq))
        reply = reply_record(target.row, target.sender_username) if target else _reply_map(
            {(entry.conversation_id, entry.reply_to_seq)}).get((entry.conversation_id, entry.reply_to_seq))
    return message_record(entry, username, reply, (attached or {}).get(entry.id))


def _placeholders(param: str, values: Any) -> str:
    return ", ".join([param] * len(values))


def _keys(param: str, columns: str, keys: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """A `WITH keys(columns)` clause listing exactly these key tuples, to join on an index, and its
    parameters.

    `a IN (...) AND b IN (...)` asks for every combination: at saturation (50 conversations, 50
    senders, 200 client ids a batch) SQLite probed the unique index once per combination, 24 µs per
    stored message; a join on the listed tuples probes it once per tuple (docs/performance.md).
    """
    row = "(" + ", ".join([param] * len(keys[0])) + ")"
    return f"WITH keys({columns}) AS (VALUES {', '.join([row] * len(keys))}) ", [v for key in keys for v in key]


def append_each_txn(items: list[NewMessage], rules: LogRules = DEFAULT_RULES) -> list[AppendResult]:
    """The careful path, after a batch failed as a whole: each item through append_entries_txn on its
    own, in its own savepoint, so one bad item fails alone and the others commit."""
    db = Message._meta.database
    results = []
    for item in items:
        for attempt in (1, 2):
            try:
                with db.atomic():
                    results.extend(append_entries_txn([item], rules))
                break
            except pw.IntegrityError:
                # Another process stored the same client_id first: the second attempt finds it stored.
                if attempt == 2:
                    log.exception("storing a log entry failed")
                    results.append(AppendResult(error=AuroraError("internal", "message could not be stored")))
            # ValueError: the driver cannot encode a value (NUL, surrogate).
            except (pw.DatabaseError, ValueError) as exc:
                if database_outage(exc) is not None:
                    raise  # an outage, not this item: the whole batch answers unavailable
                log.exception("storing a log entry failed")
                results.append(AppendResult(error=AuroraError("internal", "message could not be stored")))
                break
    return results


def _reply_map(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
    """reply_records of the messages at these (conversation id, seq) pairs."""
    return {(m.conversation_id, m.seq): reply_record(m, m.username) for m in _messages_at(sorted(pairs))}


def _page(query: pw.ModelSelect) -> list[dict[str, Any]]:
    return records_of(list(query.objects()))


def records_of(rows: list[Message]) -> list[dict[str, Any]]:
    """Records of rows selected with their sender's username, replies resolved in one more query."""
    replies = _reply_map({(m.conversation_id, m.reply_to_seq) for m in rows
                          if m.reply_to_seq is not None and m.kind in MESSAGE_KINDS})
    attached = attachments_of(m.id for m in rows if m.kind in MESSAGE_KINDS)
    return [message_record(m, m.username, replies.get((m.conversation_id, m.reply_to_seq)), attached.get(m.id))
            for m in rows]


def list_messages(conversation_id: int, user_id: int, before_seq: int | None,
                  after_seq: int | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """A page ascending by seq; has_more tells whether more lie beyond it in the paging direction."""
    require_member(conversation_id, user_id)
    query = (
        Message.select(Message, User.username)
        .join(User, on=(Message.sender == User.id))
        .where((Message.conversation == conversation_id) & Message.kind.in_(MESSAGE_KINDS))
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
