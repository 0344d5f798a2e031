"""A lone message on PostgreSQL in one statement and one round trip (issue 16, target 1).

At everyday load the writer's batches hold one message, and the general path (append_entries_txn)
costs a round trip per check: BEGIN, membership, duplicate, seq, INSERT, the sender's pointers, the
sender's name, COMMIT. For the common case (a text message: no reply, no attachments, not written by
the server) this data-modifying CTE does all of it in one statement, which outside a transaction
block commits on its own (Peewee runs psycopg2 in autocommit mode):

- the conversation's row is updated (last_seq + 1, last_activity_at) only if the sender is a member
  and the client_id is not stored yet; the UPDATE takes the row lock that orders seqs across
  processes, exactly like the general path (same lock order: conversation, message, membership);
- the INSERT takes the seq that UPDATE returned; the sender's pointers move to it;
- the sender's username comes back with the row.

When it inserts nothing (not a member, a retry of a stored client_id, no such conversation), it has
changed nothing, and the caller runs the general path, which gives the precise answer. A duplicate
that another process commits at the same instant fails the unique index: an exception, and the
caller's general path answers it the same way.
"""

from __future__ import annotations

import json

from aurora.storage.messages import _COLUMNS, AppendResult, NewMessage, _record
from aurora.storage.models import Message, utcnow
from aurora.storage.records import EntryRow

_LONE_SQL = f"""
WITH c AS (
    UPDATE "conversation" SET last_seq = last_seq + 1, last_activity_at = %(now)s
    WHERE id = %(cid)s
      AND EXISTS (SELECT 1 FROM "membership" WHERE conversation_id = %(cid)s AND user_id = %(uid)s)
      AND NOT EXISTS (SELECT 1 FROM "message"
                      WHERE conversation_id = %(cid)s AND sender_id = %(uid)s AND client_id = %(client)s)
    RETURNING last_seq, kind
), ins AS (
    INSERT INTO "message" ({", ".join(_COLUMNS)})
    SELECT %(cid)s, c.last_seq, %(kind)s, %(uid)s, %(body)s, %(client)s, %(now)s, %(extra)s,
           NULL, NULL, NULL, NULL
    FROM c
    RETURNING id, seq
), pointers AS (
    UPDATE "membership" SET last_read_seq = ins.seq, last_delivered_seq = ins.seq
    FROM ins WHERE conversation_id = %(cid)s AND user_id = %(uid)s
)
SELECT ins.id, ins.seq, c.kind, (SELECT username FROM "user" WHERE id = %(uid)s) FROM ins, c
"""


def is_lone_candidate(item: NewMessage) -> bool:
    """What the one statement can store: a plain message a member sends."""
    return (item.kind in ("text", "call") and item.reply_to_seq is None and not item.attachments
            and not item.system)


def append_lone_message(item: NewMessage) -> AppendResult | None:
    """Store one message in one autocommitted statement; None when it stored nothing (see module doc).

    Runs outside a transaction block (Storage.autocommit), PostgreSQL only."""
    db = Message._meta.database
    now = utcnow()
    extra = json.dumps(item.extra) if item.extra else None
    row = db.execute_sql(_LONE_SQL, {
        "cid": item.conversation_id, "uid": item.sender_id, "client": item.client_id, "kind": item.kind,
        "body": item.body, "now": now, "extra": extra,
    }).fetchone()
    if row is None:
        return None
    message_id, seq, conversation_kind, username = row
    entry = EntryRow(item.conversation_id, seq, item.kind, item.sender_id, item.body, item.client_id, now,
                     extra, id=message_id)
    return AppendResult(_record(entry, {item.sender_id: username}, {}), duplicate=False,
                        conversation_kind=conversation_kind)
