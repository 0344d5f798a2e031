"""sync reads a batch of cursors per query (not one query per conversation), with the same answer."""

from __future__ import annotations

import logging

import pytest

from aurora.context import AURORA
from aurora.storage.models import Conversation, Membership, Message, utcnow
from tests.conftest import RunningServer
from tests.support.clients import Api, SocketFactory

CONVERSATIONS = 450


def _seed(user_ids: list[int], count: int) -> list[int]:
    """count direct-free groups of these users, each with one message (seq 1): fast, through the models."""
    now = utcnow()
    ids = []
    for _ in range(count):
        conversation = Conversation.create(kind="group", title="bulk", last_seq=1, last_activity_at=now)
        ids.append(conversation.id)
    Membership.insert_many([{"user": uid, "conversation": cid} for cid in ids for uid in user_ids]).execute()
    Message.insert_many([{"conversation": cid, "seq": 1, "sender": user_ids[0], "body": f"m{cid}"}
                         for cid in ids]).execute()
    return ids


async def test_sync_of_hundreds_of_cursors_takes_a_few_queries(
        server: RunningServer, api: Api, sockets: SocketFactory, caplog: pytest.LogCaptureFixture) -> None:
    alice = await api.register()
    bob = await api.register()
    ids = await server.app[AURORA].storage.write(_seed, [alice.id, bob.id], CONVERSATIONS)
    sock = await sockets.connect(bob.token)
    cursors = {str(cid): 0 for cid in ids}

    caplog.set_level(logging.DEBUG, logger="peewee")
    caplog.clear()
    ack = await sock.call("sync", {"cursors": cursors, "limit": 1000})
    message_queries = [r for r in caplog.records if r.name == "peewee" and '"message"' in str(r.msg)]
    assert ack["ok"] is True, ack
    assert [m["conversation_id"] for m in ack["messages"]] == ids
    assert ack["has_more"] is False
    # One query per 200 cursors (the old code ran one per conversation: 450).
    assert len(message_queries) <= 3, len(message_queries)

    # A limit that falls inside the second batch: exactly that many, in order, and has_more.
    ack = await sock.call("sync", {"cursors": cursors, "limit": 250})
    assert [m["conversation_id"] for m in ack["messages"]] == ids[:250] and ack["has_more"] is True
    # A limit that ends exactly at a batch boundary still knows more lies beyond.
    ack = await sock.call("sync", {"cursors": cursors, "limit": 200})
    assert [m["conversation_id"] for m in ack["messages"]] == ids[:200] and ack["has_more"] is True
    caught_up = {str(cid): 1 for cid in ids}
    caplog.clear()
    ack = await sock.call("sync", {"cursors": caught_up})
    assert ack["messages"] == [] and ack["has_more"] is False
    assert {c["id"]: c["last_seq"] for c in ack["conversations"]} == {cid: 1 for cid in ids}
    # Caught up everywhere (a reconnect's usual case): the conversations' read is the only query;
    # it also proved every cursor's membership, so no message or membership query runs.
    queries = [str(r.msg) for r in caplog.records if r.name == "peewee" and "SELECT" in str(r.msg)]
    assert len(queries) == 1 and '"conversation"' in queries[0], queries
