"""asyncpg connections beside Peewee's pool, for the one statement on the hot path (a lone message).

Why a second driver: at everyday load every message is its own batch, and a blocking psycopg2 call
costs the process a thread hand-off each way (the executor's queue, a worker's wake-up, the GIL
taken back twice, the result sent back through the loop's self-pipe): measured, about as much CPU
as the whole message costs at saturation, and milliseconds of latency whenever the worker waits
for the GIL. asyncpg runs the statement on the event loop itself, as a prepared statement (it
caches them per connection, so PostgreSQL plans it once rather than for every message).

Everything else stays on Peewee: these connections only serve statements that commit on their own
(asyncpg connections are in autocommit outside a transaction). Its connections carry the same
server settings as Peewee's (search_path through `options`, application_name), so they see the
same schema and are counted as the same application.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

# After a failure to connect, the pool is not tried again for this long: the caller's general path
# (Peewee) answers meanwhile, and tells an outage as it always does.
RETRY_AFTER_S = 1.0
# A connection idle for longer is closed when next taken, and a new one opened (asyncpg's pool closed
# such connections too): no statement goes down a session a firewall or PostgreSQL may have forgotten.
IDLE_LIFETIME_S = 300.0


def connect_arguments(database: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """asyncpg.connect keyword arguments for Peewee's PostgreSQL parameters; None when some parameter
    has no asyncpg equivalent here (then the hot path stays on Peewee)."""
    arguments: dict[str, Any] = {"database": database}
    settings: dict[str, str] = {}
    for name, value in params.items():
        if name in ("host", "port", "user", "password", "passfile"):
            arguments[name] = value
        elif name == "connect_timeout":
            arguments["timeout"] = float(value)
        elif name == "sslmode":
            arguments["ssl"] = value
        elif name == "application_name":
            settings["application_name"] = str(value)
        elif name == "options":
            parsed = _server_options(str(value))
            if parsed is None:
                return None
            settings.update(parsed)
        else:
            return None
    if settings:
        arguments["server_settings"] = settings
    return arguments


def _server_options(options: str) -> dict[str, str] | None:
    """libpq's `options` ("-c name=value -cname=value"), as server settings."""
    found: dict[str, str] = {}
    words = shlex.split(options)
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-c" and index + 1 < len(words):
            word, index = words[index + 1], index + 2
        elif word.startswith("-c"):
            word, index = word[2:], index + 1
        elif word.startswith("--"):
            word, index = word[2:], index + 1
        else:
            return None
        name, sep, value = word.partition("=")
        if not sep:
            return None
        found[name.replace("-", "_")] = value
    return found


class NotSent(asyncpg.InterfaceError):
    """The statement never left: no connection could be had (unreachable, closed, all in use); the
    message and __cause__ say why. Unlike a connection lost mid-statement, nothing can have committed."""


class AsyncPostgres:
    """At most `size` asyncpg connections (one per writer lane), opened on first use and reused last
    in, first out.

    Not asyncpg's pool: it cost the lone message ~30 µs of the loop's CPU per message (py-spy, S4 on
    PostgreSQL: acquiring and releasing a connection holder, a task for `asyncio.shield` around each
    release, the idle timer rescheduled each time) beside ~60 µs for the statement itself. Here a
    connection is taken from and given back to a list, on the loop's one thread. Last in, first out,
    as asyncpg's pool does: at everyday load one or two connections do all the work, and their
    PostgreSQL backends stay warm (one connection per lane, used in turn, cost PostgreSQL ~20% more
    CPU per message in S4). A connection that breaks, or whose statement is interrupted half-way, is
    closed instead of given back."""

    def __init__(self, arguments: dict[str, Any], size: int) -> None:
        self._arguments = arguments
        self._size = max(1, size)
        self._idle: list[tuple[asyncpg.Connection, float]] = []  # with when each was given back
        self._open = 0  # connections opened and not closed: idle ones and those in use
        self._down_until = 0.0
        self._closed = False

    @property
    def usable(self) -> bool:
        return not self._closed and time.monotonic() >= self._down_until

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """Run one statement (autocommitted) and return its first row; raises what asyncpg raises once
        the statement is sent, NotSent before. At most `size` statements at once (the writer's lanes)."""
        try:
            connection = await self._take()
        except Exception as exc:
            raise NotSent(str(exc) or exc.__class__.__name__) from exc
        try:
            row = await connection.fetchrow(sql, *args)
        except asyncpg.PostgresError:
            if connection.is_closed():  # PostgreSQL ended the session (shut down, terminated)
                self._lost(connection)
                raise
            self._give_back(connection)  # it refused the statement: the connection is as good as before
            raise
        except (TimeoutError, OSError, asyncpg.InterfaceError):
            self._lost(connection)  # unreachable, or just restarted: let the general path answer a while
            raise
        except BaseException:
            self._lost(connection, retry_now=True)  # interrupted mid-statement: its state is unknown
            raise
        self._give_back(connection)
        return row

    async def _take(self) -> asyncpg.Connection:
        while self._idle:
            connection, since = self._idle.pop()
            if not connection.is_closed() and time.monotonic() - since < IDLE_LIFETIME_S:
                return connection
            self._open -= 1
            connection.terminate()
        if self._open >= self._size:
            raise asyncpg.InterfaceError(f"more than {self._size} statements at once")
        self._open += 1
        try:
            connection = await asyncpg.connect(**self._arguments)
        except BaseException:
            self._open -= 1
            self._down_until = time.monotonic() + RETRY_AFTER_S
            raise
        if self._closed:  # closed while it connected
            self._open -= 1
            connection.terminate()
            raise asyncpg.InterfaceError("the database connections are closed")
        return connection

    def _give_back(self, connection: asyncpg.Connection) -> None:
        if self._closed:
            self._open -= 1
            connection.terminate()
        else:
            self._idle.append((connection, time.monotonic()))

    def _lost(self, connection: asyncpg.Connection, retry_now: bool = False) -> None:
        self._open -= 1
        connection.terminate()
        if not retry_now:
            self._down_until = time.monotonic() + RETRY_AFTER_S

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            self._open -= 1
            try:
                await asyncio.wait_for(connection.close(), timeout=5)
            except Exception:  # stuck: do not hold shutdown up
                connection.terminate()

    def terminate(self) -> None:
        """Close at once, from outside the loop (Storage.close)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            self._open -= 1
            connection.terminate()
