"""A lone message takes one statement on PostgreSQL (storage/lone_message.py), three on SQLite
(storage/lone_sqlite.py); its answers are the general path's: the same message shape, the sender's
pointers moved, and what it cannot store (a retry, a non-member, an unknown conversation) answered
by the general path, changing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from aurora.context import AURORA
from aurora.storage.async_postgres import connect_arguments
from tests.conftest import RunningServer
from tests.support.clients import Api, SocketFactory, acked, refused
from tests.support.foundation import raw_query
from tests.support.sdk import eventually


async def test_a_lone_message_is_one_statement_with_the_general_answers(
        server: RunningServer, api: Api, sockets: SocketFactory, db_url: str) -> None:
    writer = server.app[AURORA].messages.writer
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    a = await sockets.connect(alice.token)
    b = await sockets.connect(bob.token)
    c = await sockets.connect(carol.token)
    before = writer.lone_statements

    ack = await acked(a, "send_message", {"conversation_id": cid, "body": "hello", "client_id": "k1"})
    assert ack["duplicate"] is False and ack["message"]["seq"] == 1
    assert writer.lone_statements == before + 1  # SQLite: three statements (storage/lone_sqlite.py)
    live = await b.wait_for("new_message")
    assert live == ack["message"]
    status, history = await api.request("GET", f"/api/conversations/{cid}/messages", token=alice.token)
    assert status == 200 and history["messages"] == [ack["message"]]

    # The sender's pointers moved to the new seq, the receiver's did not; last_seq follows.
    status, listing = await api.request("GET", "/api/conversations", token=alice.token)
    mine = next(x for x in listing["conversations"] if x["id"] == cid)
    assert mine["unread_count"] == 0 and mine["last_message"]["id"] == ack["message"]["id"]
    status, listing = await api.request("GET", "/api/conversations", token=bob.token)
    assert next(x for x in listing["conversations"] if x["id"] == cid)["unread_count"] == 1

    # A retry of the stored client_id: the original, flagged duplicate, nothing new stored.
    lone_so_far = writer.lone_statements
    again = await acked(a, "send_message", {"conversation_id": cid, "body": "hello", "client_id": "k1"})
    assert again["duplicate"] is True and again["message"] == ack["message"]
    assert writer.lone_statements == lone_so_far
    # A non-member: not_found, nothing stored, no seq taken.
    await refused(c, "send_message", {"conversation_id": cid, "body": "let me in"}, "not_found")
    await refused(c, "send_message", {"conversation_id": 10**9, "body": "nowhere"}, "not_found")
    assert raw_query(db_url, "SELECT seq FROM message WHERE conversation_id = ?", (cid,)) == [(1,)]
    assert raw_query(db_url, "SELECT last_seq FROM conversation WHERE id = ?", (cid,)) == [(1,)]

    follow = await acked(a, "send_message", {"conversation_id": cid, "body": "next"})
    assert follow["message"]["seq"] == 2 and follow["message"]["client_id"] is None


def test_peewee_parameters_become_asyncpg_arguments() -> None:
    arguments = connect_arguments("test", {
        "host": "127.0.0.1", "port": 5432, "user": "postgres", "connect_timeout": 5,
        "options": "-csearch_path=bench_1 -c statement_timeout=5000", "application_name": "aurora_app"})
    assert arguments == {"database": "test", "host": "127.0.0.1", "port": 5432, "user": "postgres", "timeout": 5.0,
                         "server_settings": {"search_path": "bench_1", "statement_timeout": "5000",
                                             "application_name": "aurora_app"}}
    # What asyncpg cannot be told the same way keeps the hot path on Peewee.
    assert connect_arguments("test", {"options": "-v 3"}) is None
    assert connect_arguments("test", {"keepalives": 1}) is None


POSTGRES_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # the statement is PostgreSQL's


@POSTGRES_ONLY
async def test_an_answer_lost_after_the_commit_is_answered_and_broadcast_once(
        server: RunningServer, api: Api, sockets: SocketFactory, db_url: str) -> None:
    storage = server.app[AURORA].storage
    postgres = storage.postgres
    assert postgres is not None
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    a = await sockets.connect(alice.token)
    b = await sockets.connect(bob.token)
    real = postgres.fetchrow

    async def commits_then_loses_the_answer(sql: str, *args: Any) -> Any:
        await real(sql, *args)
        raise ConnectionResetError("the connection broke after the commit")

    postgres.fetchrow = commits_then_loses_the_answer  # type: ignore[method-assign]
    try:
        ack = await acked(a, "send_message", {"conversation_id": cid, "body": "once", "client_id": "lost-1"})
    finally:
        postgres.fetchrow = real  # type: ignore[method-assign]
    assert ack["duplicate"] is False and ack["message"]["seq"] == 1
    live = await b.wait_for("new_message")
    assert live == ack["message"]
    assert raw_query(db_url, "SELECT seq, body FROM message WHERE conversation_id = ?", (cid,)) == [(1, "once")]
    follow = await acked(a, "send_message", {"conversation_id": cid, "body": "next"})
    assert follow["message"]["seq"] == 2
    live = await b.wait_count("new_message", 2)
    assert [m["seq"] for m in live] == [1, 2]  # nothing doubled in between


@POSTGRES_ONLY
async def test_a_killed_connection_falls_back_then_the_pool_reconnects(
        server: RunningServer, api: Api, sockets: SocketFactory, db_url: str) -> None:
    writer = server.app[AURORA].messages.writer
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    a = await sockets.connect(alice.token)
    b = await sockets.connect(bob.token)
    await acked(a, "send_message", {"conversation_id": cid, "body": "warm"})
    assert (await b.wait_for("new_message"))["seq"] == 1
    postgres = server.app[AURORA].storage.postgres
    assert postgres is not None
    (pid,) = await postgres.fetchrow("SELECT pg_backend_pid()")  # the pool's connection in use (LIFO)
    assert raw_query(db_url, f"SELECT pg_terminate_backend({int(pid)})") == [(True,)]
    ack = await acked(a, "send_message", {"conversation_id": cid, "body": "after the kill"})
    assert ack["message"]["seq"] == 2
    assert [m["seq"] for m in await b.wait_count("new_message", 2)] == [1, 2]
    before = writer.lone_statements
    await eventually(lambda: _send_counts_lone(a, cid, writer, before), within=10, what="the one-statement path")
    seqs = raw_query(db_url, "SELECT seq FROM message WHERE conversation_id = ? ORDER BY seq", (cid,))
    assert [s for (s,) in seqs] == list(range(1, len(seqs) + 1))  # no gap, nothing doubled


async def _send_counts_lone(socket: Any, cid: int, writer: Any, before: int) -> bool:
    await acked(socket, "send_message", {"conversation_id": cid, "body": "again"})
    return writer.lone_statements > before
