"""Blocks: a blocked user cannot open a DM with, add, call, or send typing/presence to the blocker;
their messages in a shared group reach the blocker unchanged (clients hide them with GET /api/blocks).
Also the maximum group size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Api, SocketFactory, acked, refused, round_trip


@pytest.fixture
async def small_groups(tmp_path: Path, db_url: str) -> AsyncIterator[RunningServer]:
    running = await start_server(make_settings(tmp_path, db_url, max_group_members=3))
    try:
        yield running
    finally:
        await running.stop()


async def test_block_routes_and_their_bad_inputs(api: Api) -> None:
    alice, bob = await api.register(), await api.register()
    for target, status_code, code in (("abc", 400, "invalid"), ("0", 400, "invalid"), (str(alice.id), 400, "invalid"),
                                      ("999999", 404, "not_found")):
        status, body = await api.request("POST", f"/api/users/{target}/block", token=alice.token)
        assert status == status_code and body["error"]["code"] == code, (target, body)
    status, body = await api.request("POST", f"/api/users/{bob.id}/block")
    assert status == 401 and body["error"]["code"] == "auth_required"
    assert (await api.request("GET", "/api/blocks", token=alice.token))[1] == {"blocks": []}  # nothing changed

    status, body = await api.request("POST", f"/api/users/{bob.id}/block", token=alice.token)
    assert status == 201 and body == {"ok": True, "created": True}, body
    status, body = await api.request("POST", f"/api/users/{bob.id}/block", token=alice.token)
    assert status == 200 and body["created"] is False
    status, body = await api.request("GET", "/api/blocks", token=alice.token)
    assert [u["id"] for u in body["blocks"]] == [bob.id] and body["blocks"][0]["username"] == bob.username
    assert (await api.request("GET", "/api/blocks", token=bob.token))[1] == {"blocks": []}
    status, body = await api.request("DELETE", f"/api/users/{bob.id}/block", token=alice.token)
    assert status == 200 and body["removed"] is True
    status, body = await api.request("DELETE", f"/api/users/{bob.id}/block", token=alice.token)
    assert status == 200 and body["removed"] is False
    assert (await api.request("GET", "/api/blocks", token=alice.token))[1] == {"blocks": []}


async def test_a_blocked_user_cannot_reach_the_blocker(api: Api, sockets: SocketFactory) -> None:
    bob, mallory, carol = await api.register(), await api.register(), await api.register()
    old_dm = await api.conversation(mallory, [bob])  # from before the block
    group = await api.conversation(carol, [bob, mallory], title="shared")
    bob_chat = await sockets.connect(bob.token)
    carol_chat = await sockets.connect(carol.token)
    bob_calls = await sockets.connect(bob.token, "/calls")
    carol_calls = await sockets.connect(carol.token, "/calls")
    status, _ = await api.request("POST", f"/api/users/{mallory.id}/block", token=bob.token)
    assert status == 201

    # No DM (either way), no group with bob, no adding bob, no writing into the old DM.
    for account, others in ((mallory, [bob]), (bob, [mallory])):
        status, body = await api.request("POST", "/api/conversations", token=account.token,
                                         json={"user_ids": [o.id for o in others]})
        assert status == 403 and body["error"]["code"] == "forbidden", body
    mallory_chat = await sockets.connect(mallory.token)
    await refused(mallory_chat, "create_conversation", {"user_ids": [bob.id, carol.id], "title": "x"}, "forbidden")
    own = await api.conversation(mallory, [carol], title="mallory's")
    status, body = await api.request("POST", f"/api/conversations/{own['id']}/members", token=mallory.token,
                                     json={"user_ids": [bob.id]})
    assert status == 403 and body["error"]["code"] == "forbidden", body
    await refused(mallory_chat, "send_message", {"conversation_id": old_dm["id"], "body": "hello?"}, "forbidden")
    status, _ = await api.send(mallory, old_dm["id"], "hello over REST?")
    assert status == 403
    await acked(bob_chat, "send_message", {"conversation_id": old_dm["id"], "body": "bob may still write"})

    # Presence and typing skip bob; carol gets both.
    await carol_chat.wait_for("presence", lambda p: p["user_id"] == mallory.id and p["online"])
    await acked(mallory_chat, "typing", {"conversation_id": group["id"], "typing": True})
    await carol_chat.wait_for("typing", lambda t: t["user_id"] == mallory.id)
    # A group message from mallory reaches bob unchanged: his client hides it by sender (GET /api/blocks).
    sent = await acked(mallory_chat, "send_message", {"conversation_id": group["id"], "body": "in the group"})
    assert (await bob_chat.wait_for("new_message", lambda m: m["sender_id"] == mallory.id)) == sent["message"]
    await round_trip(bob_chat)
    assert not [p for p in bob_chat.events("presence") if p["user_id"] == mallory.id]
    assert not [t for t in bob_chat.events("typing") if t["user_id"] == mallory.id]
    assert [u["id"] for u in (await api.request("GET", "/api/blocks", token=bob.token))[1]["blocks"]] == [mallory.id]

    # Calls: not in the DM; in the group only carol rings.
    mallory_calls = await sockets.connect(mallory.token, "/calls")
    await refused(mallory_calls, "call_invite", {"conversation_id": old_dm["id"], "media": "audio"}, "forbidden")
    call = (await acked(mallory_calls, "call_invite", {"conversation_id": group["id"], "media": "audio"}))["call"]
    await carol_calls.wait_for("call_incoming", lambda c: c["call"]["id"] == call["id"])
    await round_trip(bob_calls)
    assert bob_calls.events("call_incoming") == []
    await acked(mallory_calls, "call_hangup", {"call_id": call["id"]})

    # Unblocking restores everything.
    assert (await api.request("DELETE", f"/api/users/{mallory.id}/block", token=bob.token))[0] == 200
    await acked(mallory_chat, "send_message", {"conversation_id": old_dm["id"], "body": "friends again"})


async def test_group_size_is_capped(small_groups: RunningServer) -> None:
    api = Api(small_groups.url)
    try:
        a, b, c, d = [await api.register() for _ in range(4)]
        status, body = await api.request("POST", "/api/conversations", token=a.token,
                                         json={"user_ids": [b.id, c.id, d.id], "title": "four"})
        assert status == 413 and body["error"]["code"] == "too_large" and "at most 3" in body["error"]["message"]
        group = await api.conversation(a, [b], title="two")
        status, body = await api.request("POST", f"/api/conversations/{group['id']}/members", token=a.token,
                                         json={"user_ids": [c.id, d.id]})
        assert status == 413 and body["error"]["code"] == "too_large", body
        status, body = await api.request("GET", f"/api/conversations/{group['id']}", token=a.token)
        assert len(body["conversation"]["members"]) == 2  # nothing added
        status, body = await api.request("POST", f"/api/conversations/{group['id']}/members", token=a.token,
                                         json={"user_ids": [c.id]})
        assert status == 200 and len(body["conversation"]["members"]) == 3
    finally:
        await api.close()
