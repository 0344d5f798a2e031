"""The hot path's asyncpg connections (storage/async_postgres.py) against a real PostgreSQL: reused last
in, first out; a refused statement keeps its connection, a broken or interrupted one is replaced; never
more than one per lane; an idle one past its lifetime is replaced; closed with the storage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from aurora.storage import async_postgres
from aurora.storage.async_postgres import AsyncPostgres, connect_arguments
from aurora.storage.database import open_database
from tests.support.foundation import raw_query

PID = "SELECT pg_backend_pid()"


@pytest.fixture
async def connections(postgres_url: str) -> AsyncIterator[AsyncPostgres]:
    database = open_database(postgres_url)
    arguments = connect_arguments(database.database, dict(database.connect_params))
    assert arguments is not None
    postgres = AsyncPostgres(arguments, size=2)
    try:
        yield postgres
    finally:
        await postgres.close()


async def _pid(postgres: AsyncPostgres) -> int:
    row = await postgres.fetchrow(PID)
    assert row is not None
    return int(row[0])


async def test_connections_are_reused_last_in_first_out(connections: AsyncPostgres) -> None:
    first = await _pid(connections)
    assert await _pid(connections) == first  # one at a time: always the same session
    both = await asyncio.gather(connections.fetchrow(f"SELECT pg_sleep(0.2), ({PID})"),
                                connections.fetchrow(f"SELECT pg_sleep(0.1), ({PID})"))
    pids = {int(row[1]) for row in both if row is not None}
    assert len(pids) == 2 and first in pids  # two at once: a second session
    # The shorter statement gave its connection back first, so the longer one's is on top now.
    longer = int(both[0][1]) if both[0] is not None else -1
    assert await _pid(connections) == longer


async def test_a_refused_statement_keeps_its_connection_a_broken_one_is_replaced(
        connections: AsyncPostgres, postgres_url: str) -> None:
    first = await _pid(connections)
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await connections.fetchrow("SELEC 1")
    assert await _pid(connections) == first and connections.usable

    assert raw_query(postgres_url, f"SELECT pg_terminate_backend({first})") == [(True,)]
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await connections.fetchrow(PID)
    # The general path answers for a moment, then a new session serves.
    assert not connections.usable
    assert await _pid(connections) != first


async def test_an_interrupted_statement_drops_its_connection(connections: AsyncPostgres) -> None:
    first = await _pid(connections)
    task = asyncio.ensure_future(connections.fetchrow("SELECT pg_sleep(5)"))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert connections.usable  # not an outage: the next statement may run at once
    assert await _pid(connections) != first


async def test_no_more_than_one_connection_per_lane(connections: AsyncPostgres) -> None:
    running = [asyncio.ensure_future(connections.fetchrow("SELECT pg_sleep(0.3)")) for _ in range(2)]
    await asyncio.sleep(0.1)
    with pytest.raises(asyncpg.InterfaceError, match="more than 2 statements at once"):
        await connections.fetchrow(PID)
    await asyncio.gather(*running)
    assert await _pid(connections) > 0


async def test_an_idle_connection_past_its_lifetime_is_replaced(
        connections: AsyncPostgres, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await _pid(connections)
    monkeypatch.setattr(async_postgres, "IDLE_LIFETIME_S", 0.0)
    second = await _pid(connections)
    assert second != first
    monkeypatch.setattr(async_postgres, "IDLE_LIFETIME_S", 300.0)
    assert await _pid(connections) == second


async def test_closed_connections_refuse_and_let_the_general_path_answer(connections: AsyncPostgres) -> None:
    await _pid(connections)
    await connections.close()
    assert not connections.usable
    with pytest.raises(asyncpg.InterfaceError, match="closed"):
        await connections.fetchrow(PID)


async def test_a_statement_that_never_left_says_so(postgres_url: str) -> None:
    """The writer tells "nothing was sent" from "lost mid-statement": only the second may have committed."""
    database = open_database(postgres_url)
    arguments = connect_arguments(database.database, dict(database.connect_params))
    assert arguments is not None
    unreachable = AsyncPostgres({**arguments, "port": 1, "timeout": 2}, size=1)
    with pytest.raises(async_postgres.NotSent) as refused:
        await unreachable.fetchrow(PID)
    assert isinstance(refused.value.__cause__, OSError) and not unreachable.usable
    await unreachable.close()
