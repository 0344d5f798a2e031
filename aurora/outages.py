"""One mapping from what went wrong to what the client hears: an outage is `unavailable`, a bug is `internal`.

Storage translates database outages as they happen (Storage.read/write raise AuroraError
"unavailable"); the transport edges (REST middleware, socket acks, connect handlers) pass every
other exception through `client_error`, which also catches a Redis outage. Nothing else in the
code decides this.

An outage is something a retry may cure without a code change: the database server is down,
restarting, refusing connections, out of disk, a hot standby, a lock held too long, the pool is
exhausted; Redis cannot be reached. SQLite reports SQL mistakes with the same exception class as
a locked or full database (sqlite3.OperationalError), so for SQLite the message decides.
"""

from __future__ import annotations

import logging
from typing import Any

from aurora.errors import INTERNAL_MESSAGE, AuroraError

# A client should wait about this long before retrying an `unavailable` answer (REST: Retry-After).
RETRY_AFTER_S = 2

DATABASE_UNAVAILABLE = "the database is unavailable; retry shortly"
DATABASE_CANNOT_WRITE = "the database cannot store anything right now (out of space or read-only); retry later"
QUEUE_UNAVAILABLE = "the message queue (Redis) is unavailable; retry shortly"

# sqlite3.OperationalError messages that mean the file system or a lock, not the SQL.
_SQLITE_CANNOT_WRITE = ("database or disk is full", "disk i/o error", "attempt to write a readonly database")
_SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "unable to open database file",
                       "disk image is malformed")
# PostgreSQL SQLSTATEs outside the OperationalError family that are still outages.
_PG_CANNOT_WRITE_CODES = {"25006", "53100"}  # read-only transaction (a standby), disk full


def driver_error(exc: BaseException) -> BaseException:
    """The database driver's own exception behind a peewee one (peewee passes it as args[0] or chains it)."""
    if exc.args and isinstance(exc.args[0], BaseException):
        return exc.args[0]
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None and not type(linked).__module__.startswith("peewee"):
            return linked
    return exc


def database_outage(exc: BaseException) -> str | None:
    """"cannot_write", "unreachable" or None (not an outage) for an exception from the database layer."""
    found = outage_cause(exc)
    return None if found is None else found[0]


def outage_cause(exc: BaseException) -> tuple[str, BaseException] | None:
    """The outage behind exc and the exception that shows it, following the chain of exceptions:
    when SQLite runs out of space it rolls the transaction back itself, and the ROLLBACK that
    follows ("no transaction is active") hides the cause unless its context is read."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        reason = _classify(current)
        if reason is not None:
            return reason, driver_error(current)
        current = current.__cause__ or current.__context__
    return None


def _classify(exc: BaseException) -> str | None:
    import peewee
    from playhouse.pool import MaxConnectionsExceeded

    if isinstance(exc, MaxConnectionsExceeded):
        return "unreachable"
    if not isinstance(exc, peewee.DatabaseError | peewee.InterfaceError):
        return None
    driver = driver_error(exc)
    module = type(driver).__module__ or ""
    if module.startswith("psycopg"):
        if getattr(driver, "pgcode", None) in _PG_CANNOT_WRITE_CODES:
            return "cannot_write"
        return "unreachable" if isinstance(exc, peewee.OperationalError | peewee.InterfaceError) else None
    # SQLite (or a driver error peewee did not chain): the message tells a full disk or a lock
    # from a mistake in the SQL, which SQLite reports with the same class.
    text = str(driver).lower()
    if any(marker in text for marker in _SQLITE_CANNOT_WRITE):
        return "cannot_write"
    if any(marker in text for marker in _SQLITE_UNAVAILABLE):
        return "unreachable"
    return None


def database_unavailable(reason: str) -> AuroraError:
    return AuroraError("unavailable", DATABASE_CANNOT_WRITE if reason == "cannot_write" else DATABASE_UNAVAILABLE)


def queue_outage(exc: BaseException) -> bool:
    try:
        import redis.exceptions
    except ImportError:  # pragma: no cover - redis is a pinned dependency
        return False
    return isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)


def client_error(exc: BaseException, logger: logging.Logger, what: str, *args: Any) -> AuroraError:
    """The error a client gets for exc; logs outages as one warning line and bugs with their traceback.

    `what` (with args, %-style) says what was being done, for the log.
    """
    if isinstance(exc, AuroraError):
        return exc
    reason = database_outage(exc)
    if reason is not None:
        logger.warning("%s: database %s (%s)", what % args, reason.replace("_", " "), exc.__class__.__name__)
        return database_unavailable(reason)
    if queue_outage(exc):
        logger.warning("%s: Redis unavailable (%s)", what % args, exc.__class__.__name__)
        return AuroraError("unavailable", QUEUE_UNAVAILABLE)
    logger.error("%s failed", what % args, exc_info=exc)
    return AuroraError("internal", INTERNAL_MESSAGE)


def log_failure(exc: BaseException, logger: logging.Logger, what: str, *args: Any) -> None:
    """Background work (timers, sweeps, reaping) that failed: an outage is a warning line, a bug a traceback."""
    if isinstance(exc, AuroraError):
        logger.warning("%s failed: %s (%s)", what % args, exc.message, exc.code)
        return
    client_error(exc, logger, what, *args)
