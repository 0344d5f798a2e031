"""presence: first connection opens / last one closes, told to contacts only; `online` in REST answers."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.clients import Account, Api, SocketFactory


async def wait_connections(api: Api, count: int) -> None:
    """Wait until the server itself counts `count` /chat connections (it has handled every disconnect)."""
    async def settled() -> None:
        while True:
            status, body = await api.request("GET", "/health")
            assert status == 200, body
            if body["connections"] == count:
                return
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(settled(), 5.0)
    except TimeoutError:
        raise AssertionError(f"the server never counted {count} connections") from None


async def online_flags(api: Api, viewer: Account, users: list[Account]) -> dict[int, bool]:
    flags = {}
    for user in users:
        status, body = await api.request("GET", f"/api/users?q={user.username}", token=viewer.token)
        assert status == 200, body
        [found] = [u for u in body["users"] if u["id"] == user.id]
        flags[user.id] = found["online"]
    return flags


async def test_presence_on_first_connect_and_last_disconnect_only(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    await api.conversation(alice, [bob])
    bob_socket = await sockets.connect(bob.token)
    await wait_connections(api, 1)

    alice_phone = await sockets.connect(alice.token)
    online = await bob_socket.wait_for("presence")
    assert online == {"user_id": alice.id, "online": True, "last_seen_at": None}
    alice_laptop = await sockets.connect(alice.token)  # second device: no new presence
    await wait_connections(api, 3)
    await alice_phone.disconnect()  # not the last one: still online
    await wait_connections(api, 2)
    assert (await online_flags(api, bob, [alice]))[alice.id] is True
    await alice_laptop.disconnect()
    offline = await bob_socket.wait_for("presence", lambda p: p["online"] is False)
    assert offline["user_id"] == alice.id
    assert isinstance(offline["last_seen_at"], str) and offline["last_seen_at"].endswith("Z")
    # Everything the second device did came before the offline event on bob's socket: nothing else arrived.
    assert bob_socket.events("presence") == [online, offline]
    assert (await online_flags(api, bob, [alice]))[alice.id] is False

    # Coming back: online again, carrying when she was last seen.
    await sockets.connect(alice.token)
    back = await bob_socket.wait_for("presence", lambda p: p["online"] is True and p["last_seen_at"])
    assert back == {"user_id": alice.id, "online": True, "last_seen_at": offline["last_seen_at"]}
    assert bob_socket.events("presence") == [online, offline, back]
    # The user's own sockets are told nothing about themselves.
    assert [p for p in bob_socket.events("presence") if p["user_id"] == bob.id] == []


async def test_presence_goes_only_to_people_sharing_a_conversation(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol, dave = [await api.register() for _ in range(4)]
    await api.conversation(alice, [bob])
    await api.conversation(carol, [dave])
    group = await api.conversation(bob, [dave], title="b+d")
    bob_socket = await sockets.connect(bob.token)
    carol_socket = await sockets.connect(carol.token)

    alice_socket = await sockets.connect(alice.token)
    assert (await bob_socket.wait_for("presence"))["user_id"] == alice.id
    await alice_socket.disconnect()
    await bob_socket.wait_for("presence", lambda p: p["online"] is False)
    # Control in the same order: dave, carol's contact, connects; carol hears only about dave.
    await sockets.connect(dave.token)
    assert (await carol_socket.wait_for("presence"))["user_id"] == dave.id
    assert [p["user_id"] for p in carol_socket.events("presence")] == [dave.id]
    # Bob shares the group with dave, so he hears it too, after everything about alice.
    await bob_socket.wait_for("presence", lambda p: p["user_id"] == dave.id)
    assert [(p["user_id"], p["online"]) for p in bob_socket.events("presence")] == \
        [(alice.id, True), (alice.id, False), (dave.id, True)]
    assert group["kind"] == "group"


async def test_online_in_users_and_conversation_members(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    carol = await api.register()
    group = await api.conversation(alice, [bob, carol], title="g")
    cid = group["id"]
    await sockets.connect(alice.token)
    carol_socket = await sockets.connect(carol.token)
    await wait_connections(api, 2)

    assert await online_flags(api, bob, [alice, bob, carol]) == {alice.id: True, bob.id: False, carol.id: True}
    status, body = await api.request("GET", f"/api/conversations/{cid}", token=bob.token)
    assert status == 200, body
    assert {m["id"]: m["online"] for m in body["conversation"]["members"]} == \
        {alice.id: True, bob.id: False, carol.id: True}
    status, body = await api.request("GET", "/api/conversations", token=bob.token)
    [listed] = [c for c in body["conversations"] if c["id"] == cid]
    assert {m["id"]: m["online"] for m in listed["members"]} == {alice.id: True, bob.id: False, carol.id: True}
    # The join ack's members carry it too.
    ack = await carol_socket.call("join_conversation", cid)
    assert {m["id"]: m["online"] for m in ack["conversation"]["members"]} == \
        {alice.id: True, bob.id: False, carol.id: True}

    await carol_socket.disconnect()
    await wait_connections(api, 1)
    status, body = await api.request("GET", f"/api/conversations/{cid}", token=bob.token)
    assert {m["id"]: m["online"] for m in body["conversation"]["members"]} == \
        {alice.id: True, bob.id: False, carol.id: False}
    assert await online_flags(api, alice, [carol]) == {carol.id: False}


def _members_online(conversation: dict[str, Any]) -> dict[int, bool]:
    return {m["id"]: m["online"] for m in conversation["members"]}


async def test_created_conversation_reports_online_members(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    await sockets.connect(bob.token)
    await wait_connections(api, 1)
    status, body = await api.request("POST", "/api/conversations", token=alice.token, json={"user_ids": [bob.id]})
    assert status == 201, body
    assert _members_online(body["conversation"]) == {alice.id: False, bob.id: True}


async def test_membership_events_carry_online(api: Api, sockets: SocketFactory) -> None:
    """A new contact learns from the event itself whether the others are online (presence only marks changes)."""
    alice, bob, carol, dave = [await api.register() for _ in range(4)]
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    await sockets.connect(dave.token)
    await wait_connections(api, 3)

    dm = await api.conversation(alice, [bob])
    created = await bob_socket.wait_for("conversation_created")
    assert created["conversation"]["id"] == dm["id"]
    assert _members_online(created["conversation"]) == {alice.id: True, bob.id: True}
    group = await api.conversation(alice, [bob, carol], title="g")
    created = await bob_socket.wait_for("conversation_created", lambda d: d["conversation"]["id"] == group["id"])
    assert _members_online(created["conversation"]) == {alice.id: True, bob.id: True, carol.id: False}

    status, body = await api.request("POST", f"/api/conversations/{group['id']}/members", token=alice.token,
                                     json={"user_ids": [dave.id]})
    assert status == 200, body
    added = await bob_socket.wait_for("member_added")
    assert added["user"]["id"] == dave.id and added["user"]["online"] is True
    assert _members_online(added["conversation"])[dave.id] is True

    status, body = await api.request("DELETE", f"/api/conversations/{group['id']}/members/me", token=alice.token)
    assert status == 200, body
    removed = await bob_socket.wait_for("member_removed")
    assert removed["user"]["id"] == alice.id and removed["user"]["online"] is True
    assert alice_socket.client.connected
