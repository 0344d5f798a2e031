"""REST messages on SQLite and PostgreSQL: validation, limits, idempotency, paging, JSON shape, error bodies."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings, start_server
from tests.support.clients import Account, Api
from tests.support.foundation import raw_query

MESSAGE_KEYS = {"id", "conversation_id", "seq", "kind", "sender_id", "sender_username", "body", "client_id",
                "created_at", "edited_at", "deleted", "reactions", "reply_to", "state_seq", "attachments"}
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _error(body: Any) -> str:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["code"]


def _stored(db_url: str, conversation_id: int) -> list[tuple[int, str]]:
    return [(r[0], r[1]) for r in raw_query(
        db_url, "SELECT seq, body FROM message WHERE conversation_id = ? ORDER BY seq", (conversation_id,))]


def _last_seq(db_url: str, conversation_id: int) -> int:
    return raw_query(db_url, "SELECT last_seq FROM conversation WHERE id = ?", (conversation_id,))[0][0]


async def _pair(api: Api) -> tuple[Account, Account, dict[str, Any]]:
    alice, bob = await api.register(), await api.register()
    return alice, bob, await api.conversation(alice, [bob])


def _path(conversation: dict[str, Any], query: str = "") -> str:
    return f"/api/conversations/{conversation['id']}/messages" + (f"?{query}" if query else "")


async def test_send_returns_201_with_the_message(api: Api, db_url: str) -> None:
    alice, bob, conversation = await _pair(api)
    status, body = await api.send(alice, conversation["id"], "  hello bob \n", client_id="c-1")
    assert status == 201, body
    assert set(body) == {"message"}
    message = body["message"]
    assert set(message) == MESSAGE_KEYS
    assert message["conversation_id"] == conversation["id"]
    assert message["seq"] == 1
    assert message["kind"] == "text"
    assert message["sender_id"] == alice.id
    assert message["sender_username"] == alice.username
    assert message["body"] == "hello bob"  # trimmed
    assert message["client_id"] == "c-1"
    assert isinstance(message["id"], int)
    assert ISO_MS_Z.match(message["created_at"]), message["created_at"]
    assert _stored(db_url, conversation["id"]) == [(1, "hello bob")]

    status, body = await api.send(bob, conversation["id"], "hi alice")
    assert status == 201
    assert body["message"]["seq"] == 2
    assert body["message"]["client_id"] is None
    status, page = await api.request("GET", _path(conversation), token=bob.token)
    assert [m["seq"] for m in page["messages"]] == [1, 2]
    assert page["messages"][0] == message
    assert all(set(m) == MESSAGE_KEYS for m in page["messages"])


async def test_body_length_limits(api: Api, db_url: str) -> None:
    alice, _, conversation = await _pair(api)
    status, body = await api.send(alice, conversation["id"], "x" * 4000)
    assert status == 201, body
    # Surrounding whitespace does not count.
    status, body = await api.send(alice, conversation["id"], "  " + "y" * 4000 + "\n\n")
    assert status == 201, body
    assert body["message"]["body"] == "y" * 4000
    # One character too many is refused as too large, and nothing is stored.
    status, body = await api.send(alice, conversation["id"], "z" * 4001)
    assert status == 413, body
    assert _error(body) == "too_large"
    assert "4000" in body["error"]["message"]
    # Characters, not bytes: 4000 two-byte characters fit.
    status, body = await api.send(alice, conversation["id"], "é" * 4000)
    assert status == 201, body
    assert [seq for seq, _ in _stored(db_url, conversation["id"])] == [1, 2, 3]
    assert _last_seq(db_url, conversation["id"]) == 3


@pytest.mark.parametrize(
    "payload",
    [{}, {"body": ""}, {"body": "   \n\t "}, {"body": None}, {"body": 42}, {"body": ["hi"]}, {"body": {"t": "hi"}},
     {"body": True}, {"text": "wrong field name"}, {"body": "ok", "client_id": 5}, {"body": "ok", "client_id": ""},
     {"body": "ok", "client_id": "c" * 65}, {"body": "ok", "client_id": ["c"]}],
)
async def test_bad_message_payloads_are_invalid_and_store_nothing(api: Api, db_url: str,
                                                                  payload: dict[str, Any]) -> None:
    alice, _, conversation = await _pair(api)
    status, body = await api.request("POST", _path(conversation), token=alice.token, json=payload)
    assert status == 400, (payload, body)
    assert _error(body) == "invalid"
    assert _stored(db_url, conversation["id"]) == []
    assert _last_seq(db_url, conversation["id"]) == 0


@pytest.mark.parametrize("raw", ["{not json", '{"body": "unterminated', "[]", '"just a string"', "null", "42", "",
                                 b"\xff\xfe{}", '{"body": "x", "client_id": ' + "[" * 100_000 + "]" * 100_000 + "}"],
                         ids=["unparsable", "unterminated", "array", "string", "null", "number", "empty", "not-utf8",
                              "nested-100k-deep"])
async def test_malformed_json_is_invalid_and_stores_nothing(api: Api, db_url: str, raw: str | bytes) -> None:
    alice, _, conversation = await _pair(api)
    status, body = await api.request("POST", _path(conversation), token=alice.token, data=raw,
                                     headers={"Content-Type": "application/json"})
    assert status == 400, (raw, body)
    assert _error(body) == "invalid"
    assert _stored(db_url, conversation["id"]) == []


async def test_a_body_over_one_mebibyte_is_413(api: Api, db_url: str) -> None:
    alice, _, conversation = await _pair(api)
    huge = '{"body": "' + "a" * (1024 * 1024 + 10) + '"}'
    status, body = await api.request("POST", _path(conversation), token=alice.token, data=huge,
                                     headers={"Content-Type": "application/json"})
    assert status == 413, body
    assert _error(body) == "too_large"
    assert _stored(db_url, conversation["id"]) == []
    # The same goes for any JSON endpoint, before authentication matters.
    status, body = await api.request("POST", "/api/auth/register", data=huge,
                                     headers={"Content-Type": "application/json"})
    assert status == 413 and _error(body) == "too_large"
    # A chunked upload (no Content-Length) is cut off just the same.
    async def chunks() -> Any:
        for _ in range(17):
            yield b"a" * 65536
    status, body = await api.request("POST", _path(conversation), token=alice.token, data=chunks(),
                                     headers={"Content-Type": "application/json"})
    assert status == 413 and _error(body) == "too_large"
    # Just under the limit is parsed normally (and then refused for its length, not its size).
    under = '{"body": "' + "a" * (1024 * 1024 - 100) + '"}'
    status, body = await api.request("POST", _path(conversation), token=alice.token, data=under,
                                     headers={"Content-Type": "application/json"})
    assert status == 413 and _error(body) == "too_large"
    assert "characters" in body["error"]["message"]


async def test_unknown_api_routes_are_404_json(api: Api) -> None:
    alice = await api.register()
    for method, path in (("GET", "/api/nope"), ("POST", "/api/conversations/1/nope"), ("GET", "/api"),
                         ("GET", "/api/users/1/whatever")):
        status, body = await api.request(method, path, token=alice.token)
        assert status == 404, (method, path, body)
        assert _error(body) == "not_found"
    # Without a token as well: the route does not exist either way.
    status, body = await api.request("GET", "/api/does/not/exist")
    assert status == 404 and _error(body) == "not_found"


async def test_wrong_method_on_an_api_route_is_a_json_error(api: Api) -> None:
    alice = await api.register()
    status, body = await api.request("PUT", "/api/me", token=alice.token)
    assert status == 405
    assert _error(body) == "invalid"


async def test_client_id_makes_sends_idempotent(api: Api, db_url: str) -> None:
    alice, bob, conversation = await _pair(api)
    status, first = await api.send(alice, conversation["id"], "once", client_id="retry-1")
    assert status == 201
    status, again = await api.send(alice, conversation["id"], "once", client_id="retry-1")
    assert status == 200
    assert again == first
    # Even with a different body the original is returned: the client is retrying, not editing.
    status, changed = await api.send(alice, conversation["id"], "twice?", client_id="retry-1")
    assert status == 200
    assert changed == first
    assert _stored(db_url, conversation["id"]) == [(1, "once")]
    assert _last_seq(db_url, conversation["id"]) == 1

    # The key is per sender and per conversation.
    status, from_bob = await api.send(bob, conversation["id"], "mine", client_id="retry-1")
    assert status == 201 and from_bob["message"]["seq"] == 2
    carol = await api.register()
    other = await api.conversation(alice, [carol])
    status, elsewhere = await api.send(alice, other["id"], "other room", client_id="retry-1")
    assert status == 201 and elsewhere["message"]["seq"] == 1
    assert _stored(db_url, conversation["id"]) == [(1, "once"), (2, "mine")]


async def test_concurrent_repeats_of_one_client_id_store_one_message(api: Api, db_url: str) -> None:
    alice, _, conversation = await _pair(api)
    results = await asyncio.gather(*(api.send(alice, conversation["id"], "burst", client_id="same")
                                     for _ in range(8)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 7 + [201], results
    assert len({body["message"]["id"] for _, body in results}) == 1
    assert _stored(db_url, conversation["id"]) == [(1, "burst")]


async def _fill(api: Api, account: Account, conversation: dict[str, Any], count: int) -> None:
    for i in range(1, count + 1):
        status, body = await api.send(account, conversation["id"], f"m{i}")
        assert status == 201 and body["message"]["seq"] == i, body


async def _page(api: Api, account: Account, conversation: dict[str, Any], query: str = "") -> tuple[list[int], bool]:
    status, body = await api.request("GET", _path(conversation, query), token=account.token)
    assert status == 200, (query, body)
    assert set(body) == {"messages", "has_more"}
    seqs = [m["seq"] for m in body["messages"]]
    assert [m["body"] for m in body["messages"]] == [f"m{s}" for s in seqs]
    return seqs, body["has_more"]


async def test_paging(api: Api) -> None:
    alice, bob, conversation = await _pair(api)
    assert await _page(api, bob, conversation) == ([], False)
    await _fill(api, alice, conversation, 60)

    def span(a: int, b: int) -> list[int]:
        return list(range(a, b + 1))

    # Without cursors: the latest page, default 50, ascending.
    assert await _page(api, bob, conversation) == (span(11, 60), True)
    assert await _page(api, bob, conversation, "limit=10") == (span(51, 60), True)
    assert await _page(api, bob, conversation, "limit=60") == (span(1, 60), False)
    assert await _page(api, bob, conversation, "limit=200") == (span(1, 60), False)
    # Backwards from a cursor.
    assert await _page(api, bob, conversation, "before_seq=51&limit=10") == (span(41, 50), True)
    assert await _page(api, bob, conversation, "before_seq=11&limit=10") == (span(1, 10), False)
    assert await _page(api, bob, conversation, "before_seq=11") == (span(1, 10), False)
    assert await _page(api, bob, conversation, "before_seq=1") == ([], False)
    # Forwards from a cursor.
    assert await _page(api, bob, conversation, "after_seq=0&limit=10") == (span(1, 10), True)
    assert await _page(api, bob, conversation, "after_seq=50&limit=10") == (span(51, 60), False)
    assert await _page(api, bob, conversation, "after_seq=50") == (span(51, 60), False)
    assert await _page(api, bob, conversation, "after_seq=5") == (span(6, 55), True)
    assert await _page(api, bob, conversation, "after_seq=60") == ([], False)
    # Both: a window.
    assert await _page(api, bob, conversation, "after_seq=5&before_seq=10") == (span(6, 9), False)
    # Walking forward page by page visits every message exactly once.
    seen: list[int] = []
    cursor, more = 0, True
    while more:
        seqs, more = await _page(api, bob, conversation, f"after_seq={cursor}&limit=7")
        seen += seqs
        cursor = seqs[-1] if seqs else cursor
    assert seen == span(1, 60)


@pytest.mark.parametrize("query", ["limit=201", "limit=0", "limit=-1", "limit=abc", "limit=1.5", "before_seq=0",
                                   "before_seq=x", "after_seq=-1", "after_seq=1e3"])
async def test_bad_paging_parameters_are_invalid(api: Api, query: str) -> None:
    alice, _, conversation = await _pair(api)
    status, body = await api.request("GET", _path(conversation, query), token=alice.token)
    assert status == 400, (query, body)
    assert _error(body) == "invalid"


async def test_internal_errors_never_leak_details(api: Api) -> None:
    # An integer too large for any id is refused cleanly, not with a database error.
    alice = await api.register()
    status, body = await api.request("GET", "/api/conversations/99999999999999999999999/messages",
                                     token=alice.token)
    assert status == 400 and _error(body) == "invalid"
    status, body = await api.request("POST", "/api/conversations", token=alice.token,
                                     json={"user_ids": [2**70]})
    assert status == 400 and _error(body) == "invalid"


@pytest.mark.parametrize("bad", ["nul \x00 inside", "lone \ud800 surrogate", "\udfff"])
async def test_unstorable_text_is_invalid_on_every_backend(api: Api, db_url: str, bad: str) -> None:
    # NUL cannot be stored by PostgreSQL and a lone surrogate is not UTF-8: both are bad input (400), never a 500,
    # and the answer is the same whichever database runs underneath.
    alice, _, conversation = await _pair(api)
    for payload in ({"body": bad}, {"body": "fine", "client_id": bad}):
        status, body = await api.request("POST", _path(conversation), token=alice.token, json=payload)
        assert status == 400, (payload, body)
        assert _error(body) == "invalid"
    assert _stored(db_url, conversation["id"]) == []


async def test_one_bad_send_does_not_fail_the_others_in_flight(api: Api, db_url: str) -> None:
    alice, bob, conversation = await _pair(api)
    good = [api.send(bob, conversation["id"], f"good {i}") for i in range(12)]
    bad = [api.send(alice, conversation["id"], "poison \x00 \ud800") for _ in range(3)]
    results = await asyncio.gather(*good[:6], *bad, *good[6:])
    statuses = [status for status, _ in results]
    assert statuses[6:9] == [400, 400, 400], results[6:9]
    assert statuses[:6] + statuses[9:] == [201] * 12, results
    assert sorted(seq for seq, _ in _stored(db_url, conversation["id"])) == list(range(1, 13))


async def test_size_limits_follow_the_settings(tmp_path: Path, db_url: str) -> None:
    running = await start_server(make_settings(tmp_path, db_url, max_message_chars=10, max_http_body_bytes=4096))
    client = Api(running.url)
    try:
        alice, bob = await client.register(), await client.register()
        conversation = await client.conversation(alice, [bob])
        status, _ = await client.send(alice, conversation["id"], "0123456789")
        assert status == 201
        status, body = await client.send(alice, conversation["id"], "0123456789X")
        assert status == 413 and _error(body) == "too_large"
        assert "10" in body["error"]["message"]
        status, body = await client.request("POST", _path(conversation), token=alice.token,
                                            data='{"body": "' + " " * 5000 + 'x"}',
                                            headers={"Content-Type": "application/json"})
        assert status == 413 and _error(body) == "too_large"
        assert _stored(db_url, conversation["id"]) == [(1, "0123456789")]
    finally:
        await client.close()
        await running.stop()
