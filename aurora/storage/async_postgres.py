"""A small asyncpg pool beside Peewee's, for the one statement on the hot path (a lone message).

Why a second driver: at everyday load every message is its own batch, and a blocking psycopg2 call
costs the process a thread hand-off each way (the executor's queue, a worker's wake-up, the GIL
taken back twice, the result sent back through the loop's self-pipe): measured, about as much CPU
as the whole message costs at saturation, and milliseconds of latency whenever the worker waits
for the GIL. asyncpg runs the statement on the event loop itself, as a prepared statement (it
caches them per connection, so PostgreSQL plans it once rather than for every message).

Everything else stays on Peewee: this pool only serves statements that commit on their own
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


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release. asyncpg's default runs `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL` after every use: a second round trip per message. Our one statement leaves
    no session state behind (asyncpg still rolls back an open transaction before calling this)."""


class AsyncPostgres:
    """A lazily created asyncpg pool of at most `size` connections (one per writer lane)."""

    def __init__(self, arguments: dict[str, Any], size: int) -> None:
        self._arguments = arguments
        self._size = max(1, size)
        self._pool: asyncpg.Pool | None = None
        self._creating: asyncio.Lock | None = None
        self._down_until = 0.0
        self._closed = False

    @property
    def usable(self) -> bool:
        return not self._closed and time.monotonic() >= self._down_until

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._creating is None:
            self._creating = asyncio.Lock()
        async with self._creating:
            if self._pool is None:
                # min_size 0: connections open on first use, and the pool replaces a broken one by itself.
                self._pool = await asyncpg.create_pool(min_size=0, max_size=self._size, reset=_keep_session,
                                                       max_inactive_connection_lifetime=300, **self._arguments)
        return self._pool

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """Run one statement (autocommitted) and return its first row; raises what asyncpg raises."""
        try:
            pool = await self._get_pool()
            return await pool.fetchrow(sql, *args)
        except (TimeoutError, OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError):
            # Unreachable (or just restarted): let the general path answer for a while.
            self._down_until = time.monotonic() + RETRY_AFTER_S
            raise

    async def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except Exception:  # a connection stuck in a query: do not hold shutdown up
                pool.terminate()

    def terminate(self) -> None:
        """Close at once, from outside the loop (Storage.close)."""
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()
