"""REST: /, /api/me, user search, conversations (direct, group, members, leave, list) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.support.clients import Api, SocketFactory, unique_name
from tests.support.foundation import raw_query

CONVERSATION_KEYS = {"id", "kind", "title", "members", "created_at", "last_seq"}


def _error(body: Any) -> str:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


def _member_ids(conversation: dict[str, Any]) -> set[int]:
    return {m["id"] for m in conversation["members"]}


def _count(db_url: str, table: str) -> int:
    return raw_query(db_url, f'SELECT COUNT(*) FROM "{table}"')[0][0]


async def test_root_is_plain_text(api: Api) -> None:
    async with api.session.get(api.base_url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        assert await response.text() == "Aurora WebSocket Server Running"


async def test_me_returns_the_caller(api: Api) -> None:
    alice = await api.register(display_name="Alice A")
    status, body = await api.request("GET", "/api/me", token=alice.token)
    assert status == 200
    assert body == {"user": {**alice.user, "online": False}}
    assert body["user"]["display_name"] == "Alice A"


async def test_user_search_by_username_or_display_name_prefix(api: Api) -> None:
    tag = unique_name("s")[2:8]
    alice = await api.register(f"zed{tag}_alice", display_name="Wonder Woman")
    bob = await api.register(f"zed{tag}_bob", display_name=f"Zed{tag} Builder")
    carol = await api.register(f"x{tag}_carol", display_name=f"ZED{tag} Carol")
    other = await api.register(f"q{tag}_dave", display_name=f"Dave zed{tag}")  # contains, not a prefix

    status, body = await api.request("GET", f"/api/users?q=zed{tag}", token=alice.token)
    assert status == 200, body
    found = {u["username"] for u in body["users"]}
    assert found == {alice.username, bob.username, carol.username}
    assert other.username not in found
    for user in body["users"]:
        assert user["online"] is False
        assert {"id", "username", "display_name", "created_at", "online"} <= set(user)
        assert "password_hash" not in user

    # Case-insensitive, on display names too.
    status, body = await api.request("GET", "/api/users?q=wonder", token=bob.token)
    assert [u["username"] for u in body["users"]] == [alice.username]
    status, body = await api.request("GET", f"/api/users?q=ZED{tag.upper()}_B", token=bob.token)
    assert [u["username"] for u in body["users"]] == [bob.username]
    # Wildcards are literal.
    status, body = await api.request("GET", "/api/users?q=%25", token=bob.token)
    assert status == 200 and body["users"] == []
    status, body = await api.request("GET", "/api/users?q=z_d", token=bob.token)
    assert status == 200 and body["users"] == []


async def test_user_search_returns_at_most_20(api: Api) -> None:
    tag = unique_name("m")[2:8]
    accounts = [await api.register(f"many{tag}{i:02d}") for i in range(23)]
    status, body = await api.request("GET", f"/api/users?q=many{tag}", token=accounts[0].token)
    assert status == 200
    assert len(body["users"]) == 20
    assert len({u["id"] for u in body["users"]}) == 20


async def test_user_search_rejects_an_overlong_query(api: Api) -> None:
    alice = await api.register()
    status, body = await api.request("GET", "/api/users?q=" + "a" * 65, token=alice.token)
    assert status == 400 and _error(body) == "invalid"


async def test_direct_conversation_is_get_or_create(api: Api, db_url: str) -> None:
    alice, bob = await api.register(), await api.register()
    status, first = await api.request("POST", "/api/conversations", token=alice.token, json={"user_ids": [bob.id]})
    assert status == 201, first
    conversation = first["conversation"]
    assert CONVERSATION_KEYS <= set(conversation)
    assert conversation["kind"] == "direct"
    assert conversation["title"] is None
    assert conversation["last_seq"] == 0
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", conversation["created_at"])
    assert _member_ids(conversation) == {alice.id, bob.id}
    for member in conversation["members"]:
        assert {"id", "username", "display_name", "created_at"} <= set(member)

    status, again = await api.request("POST", "/api/conversations", token=alice.token, json={"user_ids": [bob.id]})
    assert status == 200
    assert again["conversation"]["id"] == conversation["id"]
    # The pair is the same from the other side; naming yourself as well changes nothing.
    status, reverse = await api.request("POST", "/api/conversations", token=bob.token,
                                        json={"user_ids": [alice.id, bob.id]})
    assert status == 200
    assert reverse["conversation"]["id"] == conversation["id"]
    assert _count(db_url, "conversation") == 1


async def test_concurrent_direct_creates_make_one_conversation(api: Api, db_url: str) -> None:
    alice, bob = await api.register(), await api.register()
    requests = []
    for i in range(6):
        me, other = (alice, bob) if i % 2 == 0 else (bob, alice)
        requests.append(api.request("POST", "/api/conversations", token=me.token, json={"user_ids": [other.id]}))
    results = await asyncio.gather(*requests)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 5 + [201], results
    assert len({body["conversation"]["id"] for _, body in results}) == 1
    assert _count(db_url, "conversation") == 1
    assert _count(db_url, "membership") == 2


async def test_group_with_title_and_several_users(api: Api) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    status, body = await api.request("POST", "/api/conversations", token=alice.token,
                                     json={"user_ids": [bob.id, carol.id], "title": "  Team  "})
    assert status == 201, body
    group = body["conversation"]
    assert group["kind"] == "group"
    assert group["title"] == "Team"
    assert _member_ids(group) == {alice.id, bob.id, carol.id}
    # Every member can read it.
    for account in (bob, carol):
        status, seen = await api.request("GET", f"/api/conversations/{group['id']}", token=account.token)
        assert status == 200
        assert seen["conversation"]["id"] == group["id"]


async def test_a_title_makes_a_group_even_with_one_other_user(api: Api) -> None:
    alice, bob = await api.register(), await api.register()
    first = await api.request("POST", "/api/conversations", token=alice.token,
                              json={"user_ids": [bob.id], "title": "Project"})
    second = await api.request("POST", "/api/conversations", token=alice.token,
                               json={"user_ids": [bob.id], "title": "Project"})
    assert first[0] == second[0] == 201
    assert first[1]["conversation"]["kind"] == second[1]["conversation"]["kind"] == "group"
    assert first[1]["conversation"]["id"] != second[1]["conversation"]["id"]
    direct = await api.conversation(alice, [bob])
    assert direct["kind"] == "direct"


async def test_group_without_title_has_null_title(api: Api) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    assert group["kind"] == "group" and group["title"] is None


async def test_unknown_user_is_404_and_nothing_is_created(api: Api, db_url: str) -> None:
    alice, bob = await api.register(), await api.register()
    for user_ids in ([bob.id + 999], [bob.id, bob.id + 999]):
        status, body = await api.request("POST", "/api/conversations", token=alice.token,
                                         json={"user_ids": user_ids})
        assert status == 404, body
        assert _error(body) == "not_found"
    assert _count(db_url, "conversation") == 0


@pytest.mark.parametrize(
    "payload",
    [{}, {"user_ids": []}, {"user_ids": "2"}, {"user_ids": [True]}, {"user_ids": [1.5]}, {"user_ids": [-1]},
     {"user_ids": [{"id": 1}]}, {"user_ids": [None]}, {"user_ids": None}, {"user_ids": ["SELF"]},
     {"user_ids": ["OTHER"], "title": 7}, {"user_ids": ["OTHER"], "title": "   "},
     {"user_ids": ["OTHER"], "title": "t" * 101}, {"user_ids": ["SELF"], "title": "alone"}],
)
async def test_bad_conversation_requests_are_invalid(api: Api, db_url: str, payload: dict[str, Any]) -> None:
    alice, bob = await api.register(), await api.register()
    if "user_ids" in payload and isinstance(payload["user_ids"], list):
        replace = {"SELF": alice.id, "OTHER": bob.id}
        payload = {**payload, "user_ids": [replace.get(v, v) if isinstance(v, str) else v
                                           for v in payload["user_ids"]]}
    status, body = await api.request("POST", "/api/conversations", token=alice.token, json=payload)
    assert status == 400, (payload, body)
    assert _error(body) == "invalid"
    assert _count(db_url, "conversation") == 0


async def test_add_members_to_a_group(api: Api) -> None:
    alice, bob, carol, dave = [await api.register() for _ in range(4)]
    group = await api.conversation(alice, [bob], title="Grow")
    status, body = await api.request("POST", f"/api/conversations/{group['id']}/members", token=bob.token,
                                     json={"user_ids": [carol.id, dave.id, alice.id]})
    assert status == 200, body
    assert _member_ids(body["conversation"]) == {alice.id, bob.id, carol.id, dave.id}
    status, seen = await api.request("GET", f"/api/conversations/{group['id']}", token=dave.token)
    assert status == 200
    assert _member_ids(seen["conversation"]) == {alice.id, bob.id, carol.id, dave.id}
    status, listed = await api.request("GET", "/api/conversations", token=carol.token)
    assert [c["id"] for c in listed["conversations"]] == [group["id"]]


async def test_new_members_do_not_inherit_unread_history(api: Api) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob], title="History")
    for i in range(3):
        await api.send(alice, group["id"], f"before carol {i}")
    status, _ = await api.request("POST", f"/api/conversations/{group['id']}/members", token=alice.token,
                                  json={"user_ids": [carol.id]})
    assert status == 200
    status, listed = await api.request("GET", "/api/conversations", token=carol.token)
    assert listed["conversations"][0]["unread_count"] == 0
    status, listed = await api.request("GET", "/api/conversations", token=bob.token)
    assert listed["conversations"][0]["unread_count"] == 3


async def test_members_cannot_be_added_to_a_direct_conversation(api: Api) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    status, body = await api.request("POST", f"/api/conversations/{direct['id']}/members", token=alice.token,
                                     json={"user_ids": [carol.id]})
    assert status == 400 and _error(body) == "invalid"
    status, seen = await api.request("GET", f"/api/conversations/{direct['id']}", token=alice.token)
    assert _member_ids(seen["conversation"]) == {alice.id, bob.id}


async def test_adding_members_needs_membership_and_known_users(api: Api) -> None:
    alice, bob, mallory = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob], title="Closed")
    status, body = await api.request("POST", f"/api/conversations/{group['id']}/members", token=mallory.token,
                                     json={"user_ids": [mallory.id]})
    assert status == 404 and _error(body) == "not_found"
    status, body = await api.request("POST", f"/api/conversations/{group['id']}/members", token=alice.token,
                                     json={"user_ids": [mallory.id + 999]})
    assert status == 404 and _error(body) == "not_found"
    status, body = await api.request("POST", f"/api/conversations/{group['id']}/members", token=alice.token,
                                     json={"user_ids": []})
    assert status == 400 and _error(body) == "invalid"
    status, seen = await api.request("GET", f"/api/conversations/{group['id']}", token=alice.token)
    assert _member_ids(seen["conversation"]) == {alice.id, bob.id}


async def test_leave_a_group(api: Api) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol], title="Leaving")
    status, body = await api.request("DELETE", f"/api/conversations/{group['id']}/members/me", token=carol.token)
    assert status == 200, body
    status, body = await api.request("GET", f"/api/conversations/{group['id']}", token=carol.token)
    assert status == 404 and _error(body) == "not_found"
    status, body = await api.request("GET", "/api/conversations", token=carol.token)
    assert body["conversations"] == []
    status, body = await api.request("GET", f"/api/conversations/{group['id']}", token=alice.token)
    assert _member_ids(body["conversation"]) == {alice.id, bob.id}
    # Once gone, the group is invisible, so leaving again is not_found.
    status, body = await api.request("DELETE", f"/api/conversations/{group['id']}/members/me", token=carol.token)
    assert status == 404 and _error(body) == "not_found"
    # And sending is refused.
    status, body = await api.send(carol, group["id"], "still here?")
    assert status == 404 and _error(body) == "not_found"


async def test_a_direct_conversation_cannot_be_left(api: Api) -> None:
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    status, body = await api.request("DELETE", f"/api/conversations/{direct['id']}/members/me", token=bob.token)
    assert status == 400 and _error(body) == "invalid"
    status, body = await api.request("GET", f"/api/conversations/{direct['id']}", token=bob.token)
    assert status == 200


async def test_list_is_most_recently_active_first_with_summary(api: Api) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    with_bob = await api.conversation(alice, [bob])
    with_carol = await api.conversation(alice, [carol])
    group = await api.conversation(alice, [bob, carol], title="All")

    status, body = await api.request("GET", "/api/conversations", token=alice.token)
    assert status == 200
    assert [c["id"] for c in body["conversations"]] == [group["id"], with_carol["id"], with_bob["id"]]
    for c in body["conversations"]:
        assert c["last_message"] is None and c["last_seq"] == 0 and c["unread_count"] == 0

    status, sent = await api.send(bob, with_bob["id"], "first")
    status, sent = await api.send(bob, with_bob["id"], "second")
    assert status == 201

    status, body = await api.request("GET", "/api/conversations", token=alice.token)
    assert [c["id"] for c in body["conversations"]] == [with_bob["id"], group["id"], with_carol["id"]]
    top = body["conversations"][0]
    assert CONVERSATION_KEYS | {"last_message", "unread_count"} <= set(top)
    assert top["last_seq"] == 2
    assert top["unread_count"] == 2
    assert top["last_message"] == sent["message"]
    assert _member_ids(top) == {alice.id, bob.id}
    assert all("online" in m for m in top["members"])

    # The sender has nothing unread in the conversation they wrote to.
    status, body = await api.request("GET", "/api/conversations", token=bob.token)
    assert [c["id"] for c in body["conversations"]] == [with_bob["id"], group["id"]]
    assert body["conversations"][0]["unread_count"] == 0

    await api.send(carol, with_carol["id"], "carol here")
    status, body = await api.request("GET", "/api/conversations", token=alice.token)
    assert [c["id"] for c in body["conversations"]] == [with_carol["id"], with_bob["id"], group["id"]]


async def test_non_members_get_404_not_found(api: Api) -> None:
    alice, bob, mallory = await api.register(), await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    await api.send(alice, direct["id"], "private")
    missing_id = direct["id"] + 10_000
    for path in (f"/api/conversations/{direct['id']}", f"/api/conversations/{direct['id']}/messages"):
        status, body = await api.request("GET", path, token=mallory.token)
        assert status == 404 and _error(body) == "not_found"
        # Exactly the answer for a conversation that does not exist: nothing is revealed.
        missing = await api.request("GET", path.replace(str(direct["id"]), str(missing_id)), token=mallory.token)
        assert missing == (status, body)
    status, body = await api.send(mallory, direct["id"], "let me in")
    assert status == 404 and _error(body) == "not_found"
    status, body = await api.request("GET", f"/api/conversations/{direct['id']}/messages", token=alice.token)
    assert [m["body"] for m in body["messages"]] == ["private"]


async def test_a_non_numeric_conversation_id_is_invalid(api: Api) -> None:
    alice = await api.register()
    for path in ("/api/conversations/abc", "/api/conversations/-1/messages", "/api/conversations/0"):
        status, body = await api.request("GET", path, token=alice.token)
        assert status == 400, (path, body)
        assert _error(body) == "invalid"


@pytest.mark.parametrize("bad", ["nul\x00title", "lone\ud800surrogate"])
async def test_unstorable_title_is_invalid(api: Api, db_url: str, bad: str) -> None:
    alice, bob = await api.register(), await api.register()
    status, body = await api.request("POST", "/api/conversations", token=alice.token,
                                     json={"user_ids": [bob.id], "title": bad})
    assert status == 400, body
    assert _error(body) == "invalid"
    assert _count(db_url, "conversation") == 0


async def test_user_search_folds_case_beyond_ascii(api: Api) -> None:
    # Display names are Unicode; typing a name as it is written (or in other letter case) must find it,
    # on SQLite exactly as on PostgreSQL.
    tag = unique_name("e")[2:8]
    elodie = await api.register(f"e{tag}", display_name=f"Élodie{tag} Martin")
    for q in (f"Élodie{tag}", f"élodie{tag}", f"ÉLODIE{tag}", f"éLoDiE{tag} m"):
        status, body = await api.request("GET", f"/api/users?q={q}", token=elodie.token)
        assert status == 200
        assert [u["id"] for u in body["users"]] == [elodie.id], q


async def test_search_and_me_show_who_is_online(api: Api, sockets: SocketFactory) -> None:
    tag = unique_name("o")[2:8]
    alice = await api.register(f"on{tag}_alice")
    bob = await api.register(f"on{tag}_bob")
    socket = await sockets.connect(bob.token)
    status, body = await api.request("GET", f"/api/users?q=on{tag}", token=alice.token)
    assert status == 200
    assert {u["username"]: u["online"] for u in body["users"]} == {alice.username: False, bob.username: True}
    status, body = await api.request("GET", "/api/me", token=bob.token)
    assert body["user"]["online"] is True
    await socket.disconnect()
    for _ in range(100):  # the disconnect is processed by the server asynchronously
        status, body = await api.request("GET", "/api/me", token=bob.token)
        if body["user"]["online"] is False:
            break
        await asyncio.sleep(0.02)
    assert body["user"]["online"] is False
