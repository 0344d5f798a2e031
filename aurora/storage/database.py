"""The one way into the database: blocking Peewee work run off the event loop.

A URL picks the backend (playhouse.db_url convention): ``sqlite:///data/aurora.db``
or ``postgresql://user:pass@host:5432/name``; both are opened as pooled databases.
Every call borrows a connection for the length of the function and gives it back
(SQLite's writer thread keeps its own), so no connection is ever shared between
threads. Writes run in one transaction; on SQLite they all go through a single
writer thread (SQLite allows one writer at a time, and queuing in-process beats
spinning on SQLITE_BUSY).

Each Storage owns its database object. Models bind to one module-wide proxy whose
target is per thread: a Storage's worker threads point it at its database once, when
they start, and run_sync for the length of its call, so two applications in one
process (tests, tools) never share a database.
A database outage leaves Storage as AuroraError "unavailable" (aurora/outages.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from aurora.errors import AuroraError
from aurora.outages import database_unavailable, outage_cause
from aurora.storage.async_postgres import AsyncPostgres, connect_arguments
from aurora.storage.loop_executor import LoopExecutor

log = logging.getLogger(__name__)

T = TypeVar("T")

# After a write failed for lack of space, SQLite counts as writable again with this much free.
SQLITE_MIN_FREE_BYTES = 1 << 20
# The SQL that storage runs needs RETURNING (3.35) and UPDATE ... FROM (3.33).
SQLITE_MIN_VERSION = (3, 35, 0)


def require_sqlite_version(version: tuple[int, int, int] = sqlite3.sqlite_version_info) -> None:
    """Refuse, with a message saying what to do, a SQLite library too old for storage's SQL."""
    if version < SQLITE_MIN_VERSION:
        have, need = ".".join(map(str, version)), ".".join(map(str, SQLITE_MIN_VERSION))
        raise RuntimeError(f"Aurora needs SQLite {need} or newer; this Python's sqlite3 module uses {have}. "
                           "Use a Python built against a newer SQLite, or PostgreSQL.")


class ThreadBoundProxy(peewee.DatabaseProxy):
    """A DatabaseProxy whose target is set per thread (peewee's own proxy has one target per process).

    Storage binds it around each call (`bound_to`), so the models, which all bind to this one
    proxy, reach the database of the Storage whose function is running in this thread.
    """

    __slots__ = ("_local",)

    def __init__(self) -> None:
        object.__setattr__(self, "_local", threading.local())
        super().__init__()

    @property  # type: ignore[override]
    def obj(self) -> peewee.Database | None:
        return getattr(self._local, "database", None)

    @obj.setter
    def obj(self, database: peewee.Database | None) -> None:
        self._local.database = database

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr == "obj":
            self._local.database = value
            return
        object.__setattr__(self, attr, value)

    def bind_thread(self, database: peewee.Database) -> None:
        """Point the calling thread at database for good (a worker thread that serves one Storage)."""
        self.obj = database

    @contextmanager
    def bound_to(self, database: peewee.Database) -> Iterator[None]:
        previous = self.obj
        self.obj = database
        try:
            yield
        finally:
            self.obj = previous


# Models bind to this proxy; each Storage points it at its own database while its functions run.
database_proxy = ThreadBoundProxy()


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
        require_sqlite_version()
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

    def __init__(self, database: peewee.Database, *, threads: int = 4, writer_threads: int = 0) -> None:
        self.db = database
        self.is_sqlite = isinstance(database, peewee.SqliteDatabase)
        # Why the last write failed for lack of space or a read-only database (None once one succeeds).
        self.write_error: str | None = None
        # PostgreSQL: writers share the pool (row locks order them), with writer_threads more threads
        # (one per message-writer lane) so that busy writers leave reads their `threads`.
        extra = 0 if self.is_sqlite else max(0, writer_threads)
        # Each worker thread serves this Storage only: its proxy target is set once, when it starts
        # (binding and restoring it around every call was ~1.5% of the writer's GIL time in S4).
        bind = functools.partial(database_proxy.bind_thread, database)
        self._readers = LoopExecutor(threads + extra, "aurora-db", initializer=bind)
        # SQLite: one writer thread, which does not preempt the event loop when a job wakes it.
        self._writers = (
            LoopExecutor(1, "aurora-db-writer", background=True, initializer=bind)
            if self.is_sqlite else self._readers
        )
        self._closed = False
        # PostgreSQL: the hot path's one statement runs on asyncpg, on the loop (storage/async_postgres.py).
        self.postgres: AsyncPostgres | None = None
        if isinstance(database, peewee.PostgresqlDatabase):
            arguments = connect_arguments(database.database, dict(database.connect_params))
            if arguments is not None:
                self.postgres = AsyncPostgres(arguments, size=max(1, writer_threads))
        # Told the kind of each failed operation (metrics); storage knows nothing of who listens.
        self.on_error: Callable[[str], None] | None = None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) with a connection, outside any explicit transaction."""
        return await self._readers.submit(self._call_bound, fn, args, False)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) inside one transaction; it commits before this returns."""
        # SQLite's one writer thread keeps its connection: giving it back to the pool and taking it
        # again cost the lone message's write ~4% of its CPU and, in 3 of 3 S4 A/B pairs, tail latency
        # (the pool's locks and bookkeeping, under the GIL, beside the event loop).
        return await self._writers.submit(self._call_bound, fn, args, True, False, self.is_sqlite)

    async def write_sqlite(self, fn: Callable[..., T], *args: Any) -> T:
        """SQLite only: fn(connection, *args) inside one transaction on the writer thread's own sqlite3
        connection, with none of Peewee's transaction and cursor machinery (the lone message's three
        statements: storage/lone_sqlite.py). Errors and outages come out as from write()."""
        return await self._writers.submit(self._call_bound, fn, args, True, False, True, True)

    def wrote(self) -> None:
        """A write went through outside write() (the asyncpg statement): as after a committed transaction."""
        self.write_error = None

    def run_sync(self, fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        """For start-up and command-line tools, which have no loop yet."""
        return self._call(fn, args, write, quiet=True)  # the caller reports a failure its own way

    def _transaction(self) -> Any:
        if self.is_sqlite:
            # Take the write lock at BEGIN, so a read-then-write never has to upgrade.
            return self.db.atomic("IMMEDIATE")
        return self.db.atomic()

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool, quiet: bool = False,
              keep_connection: bool = False, plain_sqlite: bool = False) -> T:
        """On the caller's thread (start-up, tools): the models' proxy points at this database meanwhile."""
        with database_proxy.bound_to(self.db):
            return self._call_bound(fn, args, write, quiet, keep_connection, plain_sqlite)

    def _call_bound(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool, quiet: bool = False,
                    keep_connection: bool = False, plain_sqlite: bool = False) -> T:
        """In a worker thread of this Storage, whose proxy target is this database for good."""
        db = self.db
        try:
            db.connect(reuse_if_open=True)
            try:
                if plain_sqlite:
                    result = _in_sqlite_transaction(db, fn, args)
                    self.write_error = None
                    return result
                if write:
                    with self._transaction():
                        result = fn(*args)
                    self.write_error = None
                    return result
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
                if not db.is_closed() and not keep_connection:
                    db.close()
        except AuroraError:
            raise
        except Exception as exc:
            found = outage_cause(exc)
            if found is None:
                raise  # a bug: the edge logs it with its traceback and answers `internal`
            reason, cause = found
            detail = (str(cause).splitlines() or [""])[0][:200]
            if reason == "cannot_write":
                self.write_error = detail or "cannot write"
            if not quiet:
                log.warning("database %s in %s (%s: %s)", reason.replace("_", " "),
                            getattr(fn, "__name__", "a storage call"), exc.__class__.__name__, detail)
            raise database_unavailable(reason) from exc

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        await self.read(_select_one)

    async def can_write(self) -> bool:
        """False while writes fail for lack of space (or a read-only database).

        Free while writes succeed (the last write's outcome is kept); after a failure, a cheap write
        probe in a transaction tells when space is back, even if no client has written since.
        """
        if self.write_error is None:
            return True
        if self.is_sqlite and not await asyncio.to_thread(self._sqlite_has_room):
            return False
        try:
            await self.write(_write_probe)
        except AuroraError:
            return False
        return self.write_error is None

    def _sqlite_has_room(self) -> bool:
        """A tiny probe fits in WAL space a failed transaction left behind; real writes need room."""
        path = self.db.database
        if path == ":memory:":
            return True
        return shutil.disk_usage(Path(path).parent).free >= SQLITE_MIN_FREE_BYTES

    def close(self) -> None:
        """Stop the worker threads, waiting for running calls; blocking (use aclose on the loop)."""
        if self._closed:
            return
        self._closed = True
        if self.postgres is not None:
            self.postgres.terminate()
        self._readers.shutdown(wait=True)
        if self._writers is not self._readers:
            self._writers.shutdown(wait=True)
        self.db.close_all()

    async def aclose(self) -> None:
        """close() in a thread: waiting for running queries must not stall the event loop."""
        if self.postgres is not None:
            await self.postgres.close()  # on its own loop
        await asyncio.to_thread(self.close)


def _in_sqlite_transaction(db: peewee.Database, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """fn(connection, *args) between BEGIN IMMEDIATE and COMMIT on db's sqlite3 connection (rolled back
    if anything raises); sqlite3's errors come out as Peewee's, as from every other storage call."""
    connection = db.connection()
    with peewee.__exception_wrapper__:
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = fn(connection, *args)
            connection.commit()
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            raise
    return result


def _select_one() -> None:
    database_proxy.execute_sql("SELECT 1").fetchone()


def _write_probe() -> None:
    """Rewrite the newest schema_version row as it is: a real page write (WAL frame) that changes nothing."""
    database_proxy.execute_sql(
        "UPDATE schema_version SET applied_at = applied_at "
        "WHERE version = (SELECT MAX(version) FROM schema_version)"
    )


def current_thread_is_worker() -> bool:
    """True inside a storage worker thread (used by tests of the no-blocking rule)."""
    return threading.current_thread().name.startswith("aurora-db")
