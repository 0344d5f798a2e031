"""A lone message on PostgreSQL takes one statement (storage/lone_message.py); its answers are the
general path's: the same message shape, the sender's pointers moved, and what it cannot store
(a retry, a non-member, an unknown conversation) answered by the general path, changing nothing."""

from __future__ import annotations

from aurora.context import AURORA
from tests.conftest import RunningServer
from tests.support.clients import Api, SocketFactory, acked, refused
from tests.support.foundation import raw_query


async def test_a_lone_message_is_one_statement_with_the_general_answers(
        server: RunningServer, api: Api, sockets: SocketFactory, db_url: str) -> None:
    writer = server.app[AURORA].messages.writer
    postgres = db_url.startswith("postgres")
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    a = await sockets.connect(alice.token)
    b = await sockets.connect(bob.token)
    c = await sockets.connect(carol.token)
    before = writer.lone_statements

    ack = await acked(a, "send_message", {"conversation_id": cid, "body": "hello", "client_id": "k1"})
    assert ack["duplicate"] is False and ack["message"]["seq"] == 1
    assert writer.lone_statements == before + (1 if postgres else 0)  # SQLite: the general path
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
