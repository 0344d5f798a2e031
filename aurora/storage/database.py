"""The one way into the database: blocking Peewee work run off the event loop.

A URL picks the backend (playhouse.db_url convention): ``sqlite:///data/aurora.db``
or ``postgresql://user:pass@host:5432/name``; both are opened as pooled databases.
Every call borrows a connection for the length of the function and gives it back,
so no connection is ever shared between threads. Writes run in one transaction;
on SQLite they all go through a single writer thread (SQLite allows one writer
at a time, and queuing in-process beats spinning on SQLITE_BUSY).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

log = logging.getLogger(__name__)

T = TypeVar("T")

# Models bind to this proxy; Storage initialises it with the real database.
database_proxy = peewee.DatabaseProxy()


def _resolve_sqlite_path(path: str, base_dir: Path) -> str:
    if path == ":memory:" or Path(path).is_absolute():
        return path
    return str(base_dir / path)


def open_database(url: str, *, sqlite_synchronous: str = "FULL", base_dir: Path | None = None,
                  max_connections: int = 32) -> peewee.Database:
    """Open a pooled database for a URL; relative SQLite paths are taken from base_dir."""
    parsed = urlparse(url)
    params = db_url.parse(url)
    name = params.pop("database")
    if parsed.scheme.startswith("sqlite"):
        path = _resolve_sqlite_path(name, base_dir or Path.cwd())
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pragmas = {
            "journal_mode": "wal",
            "synchronous": sqlite_synchronous.upper(),
            "foreign_keys": 1,
            "busy_timeout": 10000,
        }
        database = PooledSqliteDatabase(
            path, pragmas=pragmas, max_connections=max_connections, timeout=30,
            check_same_thread=False,
        )
        # SQLite's built-in lower() folds ASCII only; PostgreSQL's folds every letter. Use Python's on
        # SQLite so case-insensitive look-ups (user search by display name) agree on both backends.
        database.register_function(_unicode_lower, "lower", 1, deterministic=True)
        return database
    params.setdefault("connect_timeout", 5)
    return PooledPostgresqlDatabase(
        name, max_connections=max_connections, stale_timeout=300, timeout=30, **params
    )


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class Storage:
    """Runs blocking storage functions in worker threads, each with its own connection."""

    def __init__(self, database: peewee.Database, *, threads: int = 4) -> None:
        self.db = database
        self.is_sqlite = isinstance(database, peewee.SqliteDatabase)
        database_proxy.initialize(database)
        self._readers = ThreadPoolExecutor(threads, thread_name_prefix="aurora-db")
        # SQLite: one writer thread. PostgreSQL: writers share the pool (row locks order them).
        self._writers = (
            ThreadPoolExecutor(1, thread_name_prefix="aurora-db-writer")
            if self.is_sqlite else self._readers
        )
        self._closed = False
        # Told the kind of each failed operation (metrics); storage knows nothing of who listens.
        self.on_error: Callable[[str], None] | None = None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) with a connection, outside any explicit transaction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._call, fn, args, False)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) inside one transaction; it commits before this returns."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writers, self._call, fn, args, True)

    def run_sync(self, fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        """For start-up and command-line tools, which have no loop yet."""
        return self._call(fn, args, write)

    def _transaction(self) -> Any:
        if self.is_sqlite:
            # Take the write lock at BEGIN, so a read-then-write never has to upgrade.
            return self.db.atomic("IMMEDIATE")
        return self.db.atomic()

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        db = self.db
        db.connect(reuse_if_open=True)
        try:
            if write:
                with self._transaction():
                    return fn(*args)
            return fn(*args)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            if self.on_error is not None:
                self.on_error("operational" if isinstance(exc, peewee.OperationalError) else "interface")
            # The connection may be broken (server restarted): never give it back to the pool.
            try:
                db.manual_close()
            except Exception:
                log.debug("closing a failed connection raised", exc_info=True)
            raise
        finally:
            if not db.is_closed():
                db.close()

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        await self.read(_select_one)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._readers.shutdown(wait=True)
        if self._writers is not self._readers:
            self._writers.shutdown(wait=True)
        self.db.close_all()


def _select_one() -> None:
    database_proxy.execute_sql("SELECT 1").fetchone()


def current_thread_is_worker() -> bool:
    """True inside a storage worker thread (used by tests of the no-blocking rule)."""
    return threading.current_thread().name.startswith("aurora-db")
