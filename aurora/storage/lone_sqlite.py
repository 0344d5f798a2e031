"""A lone message on SQLite in three statements instead of the general path's six (issue 16, target 1).

At everyday load each writer transaction holds one message, and on SQLite every statement is paid in
CPU on this process (there is no server to share the work with): the general path
(append_entries_txn) plans a batch in Python and runs membership, duplicate, seq, INSERT, pointer and
name statements. For the common case (a text message: no reply, no attachments, not written by the
server) this does the same in three, inside the writer's transaction (BEGIN IMMEDIATE holds the write
lock, so nothing can come between them):

- the conversation's row is updated (last_seq + 1, last_activity_at) only if the sender is a member
  and the client_id is not stored yet, and returns the new seq, the conversation's kind and the
  sender's username;
- the INSERT takes that seq; the sender's pointers move to it;
- every storage/search_backlog.BATCH messages, the full-text index takes the ones it has not yet
  (the UPDATE returns its watermark too).

When the UPDATE changes nothing (not a member, a retry of a stored client_id, no such conversation),
nothing was written and the caller takes the general path, which gives the precise answer. The same
statements as storage/lone_message.py's CTE on PostgreSQL, as SQLite (which has no data-modifying CTE)
runs them.

They run on the writer thread's sqlite3 connection itself (Storage.write_sqlite): Peewee's
transaction, proxy and cursor bookkeeping around three statements cost ~30 µs of the writer's CPU
per message, as much as two of the statements (docs/performance.md).
"""

from __future__ import annotations

import json
import sqlite3

from aurora.storage.messages import _COLUMNS, AppendResult, NewMessage, _record
from aurora.storage.models import utcnow
from aurora.storage.records import EntryRow
from aurora.storage.search_backlog import index_if_due

_TAKE_SEQ = (
    'UPDATE "conversation" SET last_seq = last_seq + 1, last_activity_at = ? WHERE id = ? '
    'AND EXISTS (SELECT 1 FROM "membership" WHERE conversation_id = ? AND user_id = ?) '
    'AND NOT EXISTS (SELECT 1 FROM "message" WHERE conversation_id = ? AND sender_id = ? AND client_id = ?) '
    'RETURNING last_seq, kind, (SELECT username FROM "user" WHERE id = ?), '
    '(SELECT upto FROM message_fts_progress WHERE id = 1)'
)
_INSERT = (
    f'INSERT INTO "message" ({", ".join(_COLUMNS)}) VALUES ({", ".join("?" * len(_COLUMNS))}) RETURNING id'
)
_POINTERS = (
    'UPDATE "membership" SET last_read_seq = ?, last_delivered_seq = ? WHERE conversation_id = ? AND user_id = ?'
)


def append_lone_sqlite(connection: sqlite3.Connection, item: NewMessage) -> AppendResult | None:
    """Store one plain message (see storage/lone_message.is_lone_candidate); None when it stored
    nothing. Runs in the writer's transaction on its connection (Storage.write_sqlite)."""
    execute = connection.execute
    cid, uid = item.conversation_id, item.sender_id
    now = utcnow()
    row = execute(_TAKE_SEQ, (now, cid, cid, uid, cid, uid, item.client_id, uid)).fetchone()
    if row is None:
        return None
    seq, conversation_kind, username, search_upto = row
    extra = json.dumps(item.extra) if item.extra else None
    entry = EntryRow(cid, seq, item.kind, uid, item.body, item.client_id, now, extra)
    (entry.id,) = execute(_INSERT, [getattr(entry, c) for c in _COLUMNS]).fetchone()
    execute(_POINTERS, (seq, seq, cid, uid))
    index_if_due(entry.id, search_upto, execute)
    return AppendResult(_record(entry, {uid: username}, {}), duplicate=False, conversation_kind=conversation_kind)
