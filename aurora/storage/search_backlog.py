"""SQLite's full-text index filled a few messages at a time (issue 16, target 1; migration 10).

FTS5 writes a segment of its own, its structure record and its averages in every transaction that
touches it, and merges segments as they pile up: indexing one message per commit cost ~6 of the
~12 WAL pages a lone message wrote, and ~65 µs of the server's CPU per message at 1,000 msg/s.
So the insert trigger no longer indexes new messages; a watermark (`message_fts_progress.upto`)
says which ids the index covers, and the messages above it are indexed together:

- inside a writer transaction, once `BATCH` of them wait (the lone path and the general path call
  `index_if_due`): no commit or fsync of its own, and a stall of a fraction of a millisecond;
- by the message writer, a moment after the last stored message, so a quiet server catches up;
- before every search (`index_pending`), so a search still finds every message acknowledged
  before it: the backlog is invisible to users.

The edit and delete triggers act only on ids the index covers (an id above the watermark is indexed
later from its current text, or never if it is gone), and the insert trigger indexes at once an id
at or below it (SQLite may reuse the highest rowid after a delete), so the index never holds text a
message no longer has, nor misses text of an id it claims to cover.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import peewee as pw

from aurora.storage.models import Message

BATCH = 16
# Runs one statement with its parameters and returns the cursor: Peewee's execute_sql, or a plain
# sqlite3 connection's execute (the lone message: storage/lone_sqlite.py).
Execute = Callable[[str, Sequence[Any]], Any]
_COVERED = "(SELECT upto FROM message_fts_progress WHERE id = 1)"


def create_sqlite_backlog(db: pw.Database) -> None:
    """Migration 10: the watermark, and triggers that respect it. Everything stored so far is indexed."""
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS message_fts_progress (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "upto INTEGER NOT NULL)"
    )
    db.execute_sql(
        "INSERT OR REPLACE INTO message_fts_progress (id, upto) VALUES (1, COALESCE((SELECT max(id) FROM message), 0))"
    )
    for name in ("message_fts_insert", "message_fts_delete", "message_fts_update"):
        db.execute_sql(f"DROP TRIGGER IF EXISTS {name}")
    db.execute_sql(
        "CREATE TRIGGER message_fts_insert AFTER INSERT ON message "
        f"WHEN new.kind = 'text' AND new.body != '' AND new.id <= {_COVERED} BEGIN "
        "INSERT INTO message_fts(rowid, body) VALUES (new.id, new.body); END"
    )
    db.execute_sql(
        "CREATE TRIGGER message_fts_delete AFTER DELETE ON message "
        f"WHEN old.kind = 'text' AND old.body != '' AND old.id <= {_COVERED} BEGIN "
        "INSERT INTO message_fts(message_fts, rowid, body) VALUES ('delete', old.id, old.body); END"
    )
    db.execute_sql(
        "CREATE TRIGGER message_fts_update AFTER UPDATE OF body ON message "
        f"WHEN old.kind = 'text' AND old.body != new.body AND old.id <= {_COVERED} BEGIN "
        "INSERT INTO message_fts(message_fts, rowid, body) SELECT 'delete', old.id, old.body WHERE old.body != ''; "
        "INSERT INTO message_fts(rowid, body) SELECT new.id, new.body WHERE new.body != ''; END"
    )


def index_pending(execute: Execute | None = None) -> int:
    """Index every message above the watermark and move it up; how many ids it covered. Runs in a
    writer transaction (Storage.write, or one the caller holds; `execute` runs its SQL, Peewee's
    database by default)."""
    execute = execute or _database().execute_sql
    upto, newest = execute(
        "SELECT upto, (SELECT max(id) FROM message) FROM message_fts_progress WHERE id = 1", ()
    ).fetchone()
    if newest is None or newest <= upto:
        return 0
    execute(
        "INSERT INTO message_fts(rowid, body) SELECT id, body FROM message "
        "WHERE id > ? AND id <= ? AND kind = 'text' AND body != ''",
        (upto, newest),
    )
    execute("UPDATE message_fts_progress SET upto = ? WHERE id = 1", (newest,))
    return newest - upto


def index_if_due(newest_id: int, upto: int | None = None, execute: Execute | None = None) -> None:
    """In a writer transaction that just stored `newest_id`: index the backlog once BATCH ids wait.
    `upto` is the watermark when the caller already read it in this transaction."""
    execute = execute or _database().execute_sql
    if upto is None:
        upto = execute("SELECT upto FROM message_fts_progress WHERE id = 1", ()).fetchone()[0]
    if newest_id - upto >= BATCH:
        index_pending(execute)


def on_sqlite(db: pw.Database) -> bool:
    return isinstance(db.obj if isinstance(db, pw.DatabaseProxy) else db, pw.SqliteDatabase)


def _database() -> pw.Database:
    return Message._meta.database
