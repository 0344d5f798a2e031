"""GET /api/conversations in pages (cursor `next`), members shown per conversation capped (member_count)."""

from __future__ import annotations

from aurora.context import AURORA
from aurora.services.conversations import LIST_MAX, MEMBERS_SHOWN
from aurora.storage.models import Membership, User
from tests.conftest import RunningServer
from tests.support.clients import Api


async def test_conversations_come_in_pages_without_gaps_or_repeats(api: Api) -> None:
    alice = await api.register()
    others = [await api.register() for _ in range(3)]
    created = [(await api.conversation(alice, others, title=f"g{i}"))["id"] for i in range(7)]
    pages, cursor = [], None
    while True:
        path = "/api/conversations?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, body = await api.request("GET", path, token=alice.token)
        assert status == 200, body
        pages.append([c["id"] for c in body["conversations"]])
        cursor = body["next"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [cid for page in pages for cid in page] == list(reversed(created))  # newest activity first
    # Without parameters: the first page of the default size, with the key clients already read.
    status, body = await api.request("GET", "/api/conversations", token=alice.token)
    assert [c["id"] for c in body["conversations"]] == list(reversed(created)) and body["next"] is None


async def test_bad_page_parameters_answer_invalid(api: Api) -> None:
    alice = await api.register()
    for query in ("cursor=nonsense", "cursor=1.0", "cursor=99999999999999999999999.1", "limit=0",
                  f"limit={LIST_MAX + 1}", "limit=x"):
        status, body = await api.request("GET", f"/api/conversations?{query}", token=alice.token)
        assert (status, body["error"]["code"]) == (400, "invalid"), (query, body)


def _add_members(conversation_id: int, count: int) -> None:
    users = [User.create(username=f"bulk{conversation_id}_{i}", username_key=f"bulk{conversation_id}_{i}",
                         display_name="bulk", password_hash="x") for i in range(count)]
    Membership.insert_many([{"user": u.id, "conversation": conversation_id} for u in users]).execute()


async def test_a_big_group_shows_its_first_members_and_counts_them_all(server: RunningServer, api: Api) -> None:
    alice = await api.register()
    bob = await api.register()
    group = await api.conversation(alice, [bob], title="big")
    await server.app[AURORA].storage.write(_add_members, group["id"], MEMBERS_SHOWN + 10)
    status, body = await api.request("GET", "/api/conversations", token=alice.token)
    assert status == 200, body
    [listed] = body["conversations"]
    assert listed["member_count"] == MEMBERS_SHOWN + 12
    assert len(listed["members"]) == MEMBERS_SHOWN
    assert [m["id"] for m in listed["members"][:2]] == [alice.id, bob.id]  # joining order
