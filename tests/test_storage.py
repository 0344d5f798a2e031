"""Storage on SQLite and PostgreSQL: gapless seq under concurrency, migrations, SQLite durability, off-loop queries."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import peewee
import pytest

from aurora.context import AURORA, Aurora
from aurora.errors import AuroraError
from aurora.settings import load_settings
from aurora.storage import migrations
from aurora.storage import users as user_store
from aurora.storage.database import Storage, current_thread_is_worker, database_proxy, open_database
from aurora.storage.messages import NewMessage, append_entries_txn
from tests.conftest import TEST_SECRET, RunningServer, make_settings, start_server
from tests.support.clients import Account, Api
from tests.support.foundation import AppProcess, raw_query, sqlite_path


def _aurora(server: RunningServer) -> Aurora:
    return server.app[AURORA]


@pytest.fixture
async def wide_server(tmp_path: Path, db_url: str) -> AsyncIterator[RunningServer]:
    """A server with 8 storage threads, so PostgreSQL writes really run side by side."""
    running = await start_server(make_settings(tmp_path, db_url, db_threads=8))
    try:
        yield running
    finally:
        await running.stop()


# -- seq: gapless, never duplicated, never visible out of order -------------------------------------------


async def test_seq_is_gapless_under_concurrent_transactions(wide_server: RunningServer, db_url: str) -> None:
    api = Api(wide_server.url)
    try:
        users = [await api.register() for _ in range(4)]
        group = await api.conversation(users[0], users[1:], title="busy")
        other = await api.conversation(users[0], users[1:3], title="also busy")
    finally:
        await api.close()
    storage = _aurora(wide_server).storage

    # Straight to the storage transaction, many at once: on PostgreSQL each runs in its own
    # connection and thread, so they contend for the conversation row lock for real.
    per_conversation = 120
    jobs = []
    for i in range(per_conversation):
        for conversation in (group, other):
            item = NewMessage(conversation["id"], users[i % 3].id, f"{conversation['id']}-{i}")
            jobs.append(storage.write(append_entries_txn, [item]))
    results = await asyncio.gather(*jobs)

    for conversation in (group, other):
        mine = [r[0].message for r in results if r[0].message and r[0].message["conversation_id"] == conversation["id"]]
        assert all(r[0].error is None for r in results)
        assert sorted(m["seq"] for m in mine) == list(range(1, per_conversation + 1))
        rows = raw_query(db_url, "SELECT seq FROM message WHERE conversation_id = ? ORDER BY seq",
                         (conversation["id"],))
        assert [r[0] for r in rows] == list(range(1, per_conversation + 1))
        assert raw_query(db_url, "SELECT last_seq FROM conversation WHERE id = ?",
                         (conversation["id"],))[0][0] == per_conversation


async def _send_many(session: aiohttp.ClientSession, url: str, account: Account, conversation_id: int,
                     label: str, count: int) -> list[int]:
    seqs = []
    for i in range(count):
        async with session.post(f"{url}/api/conversations/{conversation_id}/messages",
                                json={"body": f"{label}-{i}", "client_id": f"{label}-{i}"},
                                headers={"Authorization": f"Bearer {account.token}"}) as response:
            body = await response.json()
            assert response.status == 201, body
            seqs.append(body["message"]["seq"])
    # One sender's messages get increasing seqs.
    assert seqs == sorted(seqs)
    return seqs


async def _watch_contiguous(session: aiohttp.ClientSession, url: str, account: Account, conversation_id: int,
                            total: int) -> None:
    """Poll after_seq pages; a gap (a seq visible before a lower one) would fail here."""
    cursor = 0
    while cursor < total:
        async with session.get(f"{url}/api/conversations/{conversation_id}/messages",
                               params={"after_seq": str(cursor), "limit": "200"},
                               headers={"Authorization": f"Bearer {account.token}"}) as response:
            body = await response.json()
            assert response.status == 200, body
        seqs = [m["seq"] for m in body["messages"]]
        assert seqs == list(range(cursor + 1, cursor + 1 + len(seqs))), (cursor, seqs)
        if seqs:
            cursor = seqs[-1]
        else:
            await asyncio.sleep(0.01)


async def test_seq_is_gapless_across_two_server_processes(tmp_path: Path, postgres_url: str) -> None:
    """Two `python app.py` processes on one PostgreSQL schema, several senders each, a watcher."""
    env = {"DATABASE_URL": postgres_url, "AURORA_SECRET_KEY": TEST_SECRET, "AURORA_HOST": "127.0.0.1",
           "AURORA_ARGON2_TIME_COST": "1", "AURORA_ARGON2_MEMORY_KIB": "256", "AURORA_LOG_LEVEL": "INFO"}
    servers = [await AppProcess.start(cwd=tmp_path, env={**env, "PORT": "0"}) for _ in range(2)]
    try:
        # Both started on an empty schema at once: the migration ran exactly once.
        await asyncio.gather(*(s.wait_ready() for s in servers))
        versions = [r[0] for r in raw_query(postgres_url, "SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, migrations.latest_version() + 1))

        api = Api(servers[0].url)
        try:
            senders = [await api.register() for _ in range(4)]
            group = await api.conversation(senders[0], senders[1:], title="two processes")
        finally:
            await api.close()

        per_sender, total = 50, 4 * 50
        async with aiohttp.ClientSession() as session:
            sending = [
                _send_many(session, servers[i % 2].url, account, group["id"], f"s{i}", per_sender)
                for i, account in enumerate(senders)
            ]
            watcher = _watch_contiguous(session, servers[1].url, senders[0], group["id"], total)
            # The watcher asserts, page by page, that no seq became visible before a lower one.
            *sent, _ = await asyncio.gather(*sending, watcher)
        all_seqs = sorted(seq for seqs in sent for seq in seqs)
        assert all_seqs == list(range(1, total + 1))
        rows = raw_query(postgres_url, "SELECT seq, body FROM message WHERE conversation_id = ? ORDER BY seq",
                         (group["id"],))
        assert [r[0] for r in rows] == list(range(1, total + 1))
        assert len({r[1] for r in rows}) == total
        assert raw_query(postgres_url, "SELECT last_seq FROM conversation WHERE id = ?", (group["id"],))[0][0] == total
    finally:
        for server in servers:
            await server.stop()


# -- migrations ------------------------------------------------------------------------------------------


def _schema_versions(db_url: str) -> list[int]:
    return [r[0] for r in raw_query(db_url, "SELECT version FROM schema_version ORDER BY version")]


async def test_restart_applies_nothing_new_and_keeps_data(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    first = await start_server(settings)
    api = Api(first.url)
    try:
        alice, bob = await api.register(), await api.register()
        conversation = await api.conversation(alice, [bob])
        status, _ = await api.send(alice, conversation["id"], "survives restarts")
        assert status == 201
    finally:
        await api.close()
        await first.stop()
    assert _schema_versions(db_url) == list(range(1, migrations.latest_version() + 1))

    second = await start_server(settings)
    api = Api(second.url)
    try:
        # Running the migration step again on the live database is a no-op.
        applied = await asyncio.to_thread(migrations.migrate, _aurora(second).storage)
        assert applied == []
        assert _schema_versions(db_url) == list(range(1, migrations.latest_version() + 1))
        status, body = await api.request("POST", "/api/auth/login",
                                         json={"username": bob.username, "password": bob.password})
        assert status == 200
        status, page = await api.request("GET", f"/api/conversations/{conversation['id']}/messages",
                                         token=body["token"])
        assert [m["body"] for m in page["messages"]] == ["survives restarts"]
    finally:
        await api.close()
        await second.stop()


def test_an_older_database_is_upgraded_in_place(tmp_path: Path, db_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A database made by an older release (first migration only) gets the missing steps and keeps its rows."""
    latest = migrations.latest_version()
    if latest < 2:
        pytest.skip("only one migration exists; nothing to upgrade from yet")

    def storage() -> Storage:
        return Storage(open_database(db_url, sqlite_synchronous="NORMAL", base_dir=tmp_path), threads=1)

    old = storage()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
            assert migrations.migrate(old) == [1]
        old.run_sync(user_store.create_user, "veteran", "Veteran", "$argon2id$fake", write=True)
    finally:
        old.close()
    assert _schema_versions(db_url) == [1]

    new = storage()
    try:
        assert migrations.migrate(new) == list(range(2, latest + 1))
        assert migrations.migrate(new) == []
        found = new.run_sync(user_store.get_user_by_name, "VETERAN")
        assert found is not None and found[0]["display_name"] == "Veteran"
    finally:
        new.close()
    assert _schema_versions(db_url) == list(range(1, latest + 1))


def test_a_failing_write_rolls_back_entirely(tmp_path: Path, db_url: str) -> None:
    storage = Storage(open_database(db_url, sqlite_synchronous="NORMAL", base_dir=tmp_path), threads=1)
    try:
        migrations.migrate(storage)

        def create_then_fail() -> None:
            user_store.create_user("halfway", "Halfway", "$argon2id$fake")
            raise RuntimeError("something went wrong after the insert")

        with pytest.raises(RuntimeError):
            storage.run_sync(create_then_fail, write=True)
        assert storage.run_sync(user_store.get_user_by_name, "halfway") is None
    finally:
        storage.close()


# -- SQLite durability settings ---------------------------------------------------------------------------


async def _pragma_on_every_pooled_connection(storage: Storage, pragma: str, threads: int) -> set[Any]:
    """Hold `threads` connections at once (a barrier), read the pragma on each."""
    barrier = threading.Barrier(threads, timeout=10)
    seen: list[tuple[int, Any]] = []

    def read() -> None:
        conn = database_proxy.connection()
        value = database_proxy.execute_sql(f"PRAGMA {pragma}").fetchone()[0]
        barrier.wait()
        seen.append((id(conn), value))

    await asyncio.gather(*(storage.read(read) for _ in range(threads)))
    assert len({conn for conn, _ in seen}) == threads  # really distinct connections
    return {value for _, value in seen}


async def test_sqlite_defaults_are_wal_and_synchronous_full(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/data/aurora.db"
    # The shipped defaults only (no test config): what `make run` gets.
    settings = load_settings(None, environ={}, overrides={
        "database_url": url, "data_dir": str(tmp_path / "data"), "secret_key": TEST_SECRET,
        "host": "127.0.0.1", "port": 0,
    })
    assert settings.sqlite_synchronous == "FULL"
    running = await start_server(settings)
    try:
        path = Path(sqlite_path(url))
        assert await asyncio.to_thread(path.exists)  # created on first start, directory included
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()
        # synchronous is per connection: check the server's own pooled connections.
        values = await _pragma_on_every_pooled_connection(_aurora(running).storage, "synchronous",
                                                          settings.db_threads)
        assert values == {2}  # FULL
        foreign_keys = await _pragma_on_every_pooled_connection(_aurora(running).storage, "foreign_keys",
                                                                settings.db_threads)
        assert foreign_keys == {1}
    finally:
        await running.stop()


async def test_sqlite_synchronous_setting_is_honoured(tmp_path: Path, sqlite_url: str) -> None:
    running = await start_server(make_settings(tmp_path, sqlite_url, sqlite_synchronous="normal"))
    try:
        assert await _pragma_on_every_pooled_connection(_aurora(running).storage, "synchronous", 2) == {1}
    finally:
        await running.stop()


# -- blocking work never runs on the event loop -----------------------------------------------------------


def _slow_query() -> bool:
    if isinstance(database_proxy.obj, peewee.SqliteDatabase):
        database_proxy.execute_sql(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
            "SELECT SUM(x) FROM c"
        ).fetchone()
    else:
        database_proxy.execute_sql("SELECT pg_sleep(1)").fetchone()
    return current_thread_is_worker()


async def _loop_runs_during(run: Any) -> None:
    """run(fn) starts a storage call whose query waits until the event loop releases it: it can only
    finish (released in time) if the loop keeps running while the query is in progress."""
    started, release = threading.Event(), threading.Event()

    def query() -> tuple[bool, bool]:
        started.set()
        released = release.wait(10)  # set from the loop below; a blocked loop never gets there
        database_proxy.execute_sql("SELECT 1").fetchone()
        return released, current_thread_is_worker()

    call = asyncio.create_task(run(query))
    assert await asyncio.to_thread(started.wait, 10), "the query never started"
    release.set()
    released, in_worker = await call
    assert released is True, "the loop was blocked while the query ran"
    assert in_worker is True


async def test_the_loop_keeps_running_during_a_read(server: RunningServer) -> None:
    await _loop_runs_during(_aurora(server).storage.read)


async def test_the_loop_keeps_running_during_a_write(server: RunningServer) -> None:
    await _loop_runs_during(_aurora(server).storage.write)


async def test_requests_are_served_while_a_slow_query_runs(server: RunningServer, api: Api) -> None:
    alice = await api.register()
    slow = asyncio.create_task(_aurora(server).storage.read(_slow_query))
    answered = 0
    while not slow.done():
        status, _ = await api.request("GET", "/api/me", token=alice.token)
        assert status == 200
        answered += 1
    await slow
    assert answered >= 2, answered


async def test_every_query_of_the_api_runs_in_a_storage_thread(server: RunningServer, api: Api,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Watch every SQL statement the real handlers send (the statements still run for real)."""
    db = _aurora(server).storage.db
    threads: list[tuple[str, bool, str]] = []
    original = db.execute_sql

    def watched(sql: str, *args: Any, **kwargs: Any) -> Any:
        threads.append((threading.current_thread().name, current_thread_is_worker(), sql[:60]))
        return original(sql, *args, **kwargs)

    monkeypatch.setattr(db, "execute_sql", watched)

    alice, bob = await api.register(), await api.register()
    await api.request("POST", "/api/auth/login", json={"username": alice.username, "password": alice.password})
    await api.request("POST", "/api/auth/login", json={"username": "nobody-at-all", "password": "whatever1"})
    await api.request("GET", "/api/me", token=alice.token)
    await api.request("GET", "/api/users?q=u_", token=alice.token)
    conversation = await api.conversation(alice, [bob])
    group = await api.conversation(alice, [bob], title="g")
    carol = await api.register()
    await api.request("POST", f"/api/conversations/{group['id']}/members", token=alice.token,
                      json={"user_ids": [carol.id]})
    await api.request("DELETE", f"/api/conversations/{group['id']}/members/me", token=carol.token)
    await api.send(alice, conversation["id"], "hello", client_id="x")
    await api.send(alice, conversation["id"], "hello", client_id="x")
    await api.request("GET", "/api/conversations", token=bob.token)
    await api.request("GET", f"/api/conversations/{conversation['id']}", token=bob.token)
    await api.request("GET", f"/api/conversations/{conversation['id']}/messages", token=bob.token)
    await api.request("GET", "/health")
    await api.request("POST", "/api/auth/logout", token=bob.token)

    assert len(threads) > 20
    on_loop = [t for t in threads if not t[1]]
    assert on_loop == [], on_loop


async def test_one_unstorable_item_fails_alone_in_a_batch(server: RunningServer, db_url: str) -> None:
    """The writer commits batches; an item the driver cannot even encode must not sink its neighbours."""
    api = Api(server.url)
    try:
        alice, bob = await api.register(), await api.register()
        conversation = await api.conversation(alice, [bob])
    finally:
        await api.close()
    items = [NewMessage(conversation["id"], alice.id, "before"),
             NewMessage(conversation["id"], bob.id, "lone \ud800 surrogate"),
             NewMessage(conversation["id"], alice.id, "after")]
    writer = _aurora(server).messages.writer
    # Queued without an await in between, so the writer takes them as one batch.
    futures = [writer.submit(item) for item in items]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(results[1], AuroraError) and results[1].code == "internal"
    assert [r.message["seq"] for r in (results[0], results[2])] == [1, 2]
    rows = raw_query(db_url, "SELECT seq, body FROM message WHERE conversation_id = ? ORDER BY seq",
                     (conversation["id"],))
    assert rows == [(1, "before"), (2, "after")]


def test_a_sqlite_library_too_old_for_storages_sql_is_refused_with_what_to_do() -> None:
    from aurora.storage.database import SQLITE_MIN_VERSION, require_sqlite_version

    with pytest.raises(RuntimeError, match=r"needs SQLite 3\.35\.0 or newer; .* uses 3\.31\.1"):
        require_sqlite_version((3, 31, 1))
    require_sqlite_version(SQLITE_MIN_VERSION)
    require_sqlite_version(sqlite3.sqlite_version_info)  # this machine's: the suite runs on it


def test_times_are_shown_as_iso_8601_utc_with_milliseconds() -> None:
    import datetime as dt

    from aurora.storage.records import iso

    assert iso(None) is None
    assert iso(dt.datetime(2026, 11, 25, 20, 22, 3, 123999)) == "2026-11-25T20:22:03.123Z"  # truncated
    assert iso(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"
    assert iso(dt.datetime(999, 5, 5, 5, 5, 5, 1000)) == "0999-05-05T05:05:05.001Z"  # four-digit year
    paris = dt.timezone(dt.timedelta(hours=1))
    assert iso(dt.datetime(2026, 12, 6, 22, 0, 0, 5000, tzinfo=paris)) == "2026-12-06T21:00:00.005Z"
