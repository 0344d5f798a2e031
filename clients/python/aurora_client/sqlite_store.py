"""SQLiteStore: the client's state in one SQLite file, so the outbox and the cursors survive a restart.

The standard library's sqlite3 runs in one dedicated thread (a single-worker executor), so writes
never block the event loop and apply in the order they were made. Each batch is one transaction
(WAL, synchronous=FULL): a send is in the outbox on disk before the SDK emits it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aurora_client.store import Batch, Snapshot

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id INTEGER NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq));
CREATE TABLE IF NOT EXISTS cursors (conversation_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
"""


class SQLiteStore:
    """`SQLiteStore("bot-state.db")`: one file per user and device (it refuses another user's file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aurora-client-store")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(SCHEMA)
            self._conn = conn
        return self._conn

    async def load(self) -> Snapshot:
        return await self._run(self._load)

    def _load(self) -> Snapshot:
        conn = self._connection()
        snapshot = Snapshot()
        row = conn.execute("SELECT value FROM meta WHERE key = 'user_id'").fetchone()
        snapshot.user_id = int(row[0]) if row else None
        for _id, data in conn.execute("SELECT id, data FROM conversations"):
            conversation = json.loads(data)
            snapshot.conversations[conversation["id"]] = conversation
        for conversation_id, seq, data in conn.execute("SELECT conversation_id, seq, data FROM messages"):
            snapshot.messages.setdefault(conversation_id, {})[seq] = json.loads(data)
        snapshot.cursors = dict(conn.execute("SELECT conversation_id, seq FROM cursors").fetchall())
        snapshot.outbox = [json.loads(data) for (data,) in conn.execute("SELECT data FROM outbox ORDER BY position")]
        return snapshot

    async def write(self, batch: Batch) -> None:
        if not batch.empty():
            await self._run(self._write, batch)

    def _write(self, batch: Batch) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if batch.user_id is not None:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('user_id', ?)", (str(batch.user_id),))
            for conversation_id in batch.removed_conversations:
                for table, column in (("conversations", "id"), ("messages", "conversation_id"),
                                      ("cursors", "conversation_id")):
                    conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (conversation_id,))
            conn.executemany("INSERT OR REPLACE INTO conversations (id, data) VALUES (?, ?)",
                             [(c["id"], json.dumps(c)) for c in batch.conversations])
            conn.executemany("INSERT OR REPLACE INTO messages (conversation_id, seq, data) VALUES (?, ?, ?)",
                             [(m["conversation_id"], m["seq"], json.dumps(m)) for m in batch.messages])
            conn.executemany("INSERT OR REPLACE INTO cursors (conversation_id, seq) VALUES (?, ?)",
                             list(batch.cursors.items()))
            conn.executemany("DELETE FROM outbox WHERE client_id = ?", [(c,) for c in batch.outbox_removed])
            removed = set(batch.outbox_removed)
            conn.executemany("INSERT OR IGNORE INTO outbox (client_id, data) VALUES (?, ?)",
                             [(item["client_id"], json.dumps(item)) for item in batch.outbox_added
                              if item["client_id"] not in removed])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        await self._run(close)
        self._executor.shutdown(wait=True)
