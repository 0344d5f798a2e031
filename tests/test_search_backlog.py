"""SQLite's full-text index takes new messages in batches (storage/search_backlog.py), and no user can
tell: a search finds every message acknowledged before it, an edit or delete of a message the index
has not taken yet is searched as it is now, and the index catches up by itself. The first test runs
on both engines (PostgreSQL's index is part of each commit: the same answers)."""

from __future__ import annotations

from typing import Any

import pytest

from aurora.storage.search_backlog import BATCH
from tests.support.clients import Account, Api, SocketFactory, acked
from tests.support.foundation import raw_query
from tests.support.sdk import eventually
from tests.test_search import found


async def _edit_then_delete(api: Api, author: Account, cid: int, edit: tuple[int, str], delete: int) -> None:
    status, _ = await api.request("PATCH", f"/api/conversations/{cid}/messages/{edit[0]}",
                                  token=author.token, json={"body": edit[1]})
    assert status == 200
    status, _ = await api.request("DELETE", f"/api/conversations/{cid}/messages/{delete}", token=author.token)
    assert status == 200


async def test_edits_and_deletes_before_the_index_took_them(api: Api) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    seqs: dict[str, int] = {}
    for body in ("apple pie", "cherry tart", "date cake", "elder flower"):
        status, sent = await api.send(alice, cid, body)
        assert status == 201
        seqs[body] = sent["message"]["seq"]
    # Changed before any search could have made the index take them.
    await _edit_then_delete(api, alice, cid, (seqs["apple pie"], "banana split"), seqs["cherry tart"])

    assert await found(api, bob, "apple") == []
    assert await found(api, bob, "banana") == ["banana split"]
    assert await found(api, bob, "cherry") == []
    assert await found(api, bob, "cake") == ["date cake"]
    # Taken by the index now: changes go through its triggers, with the same answers.
    await _edit_then_delete(api, alice, cid, (seqs["date cake"], "fig roll"), seqs["elder flower"])
    assert await found(api, bob, "cake") == [] and await found(api, bob, "fig") == ["fig roll"]
    assert await found(api, bob, "elder") == []
    assert await found(api, bob, "banana or fig or cherry") == ["fig roll", "banana split"]


def _covered(db_url: str) -> int:
    return raw_query(db_url, "SELECT upto FROM message_fts_progress WHERE id = 1")[0][0]


def _indexed(db_url: str, word: str) -> list[int]:
    rows = raw_query(db_url, "SELECT rowid FROM message_fts WHERE message_fts MATCH ? ORDER BY rowid", (word,))
    return [r[0] for r in rows]


async def test_the_index_catches_up_by_itself_in_batches(
        api: Api, sockets: SocketFactory, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's full-text index is part of each commit: there is no backlog")
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    a = await sockets.connect(alice.token)
    ids: list[int] = []
    for i in range(2 * BATCH + 3):  # one at a time: each its own writer transaction (the lone path)
        ack: dict[str, Any] = await acked(a, "send_message", {"conversation_id": cid, "body": f"walrus {i}"})
        ids.append(ack["message"]["id"])
    # Indexed without any search: by the writer's own transactions every BATCH messages (or by its
    # catch-up, if the sends took longer than SEARCH_CATCH_UP_S).
    assert _covered(db_url) >= ids[2 * BATCH - 1]
    assert set(ids[: 2 * BATCH]) <= set(_indexed(db_url, "walrus"))
    # The rest a moment later (the writer's catch-up), still without any search.
    await eventually(lambda: _covered(db_url) >= ids[-1], within=5, what="the index covering every message")
    assert _indexed(db_url, "walrus") == ids

    # SQLite may give a deleted highest rowid to the next message: at or below the watermark, the
    # insert trigger indexes it at once (an operator deleted the row by hand; Aurora never does).
    raw_query(db_url, "DELETE FROM message WHERE id = ?", (ids[-1],))
    assert _indexed(db_url, "walrus") == ids[:-1]
    again = await acked(a, "send_message", {"conversation_id": cid, "body": "narwhal"})
    assert again["message"]["id"] == ids[-1]  # the id was reused
    assert _indexed(db_url, "narwhal") == [ids[-1]]
    assert await found(api, bob, "narwhal") == ["narwhal"]
    assert raw_query(db_url, "INSERT INTO message_fts(message_fts) VALUES ('integrity-check')") == []
