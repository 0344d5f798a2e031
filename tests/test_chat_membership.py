"""Rooms follow memberships at once: new conversations, added and leaving members, isolation, join/leave."""

from __future__ import annotations

from typing import Any

from tests.support.clients import Account, Api, SocketFactory, TestSocket


async def send(sock: TestSocket, conversation_id: int, body: str) -> dict[str, Any]:
    ack = await sock.call("send_message", {"conversation_id": conversation_id, "body": body})
    assert ack["ok"] is True, ack
    return ack["message"]


def error_code(ack: Any) -> str:
    assert isinstance(ack, dict) and ack.get("ok") is False, ack
    assert isinstance(ack["error"].get("message"), str), ack
    return ack["error"]["code"]


async def add_members(api: Api, actor: Account, conversation_id: int, users: list[Account]) -> dict[str, Any]:
    status, body = await api.request("POST", f"/api/conversations/{conversation_id}/members", token=actor.token,
                                     json={"user_ids": [u.id for u in users]})
    assert status == 200, body
    return body["conversation"]


async def test_conversation_created_after_connect_delivers_live_to_both(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    alice_phone = await sockets.connect(alice.token)
    alice_laptop = await sockets.connect(alice.token)
    bob_phone = await sockets.connect(bob.token)
    bob_laptop = await sockets.connect(bob.token)
    conversation = await api.conversation(alice, [bob])
    cid = conversation["id"]
    for sock in (alice_phone, alice_laptop, bob_phone, bob_laptop):
        created = await sock.wait_for("conversation_created")
        assert created["conversation"]["id"] == cid
        assert created["conversation"]["kind"] == "direct"
        assert {m["id"] for m in created["conversation"]["members"]} == {alice.id, bob.id}
    from_alice = await send(alice_phone, cid, "no reconnect needed")
    for sock in (bob_phone, bob_laptop, alice_laptop):
        assert await sock.wait_for("new_message") == from_alice
    from_bob = await send(bob_laptop, cid, "indeed")
    for sock in (alice_phone, alice_laptop, bob_phone):
        assert await sock.wait_for("new_message", lambda m: m["seq"] == 2) == from_bob
    # Getting the existing direct conversation again creates nothing and announces nothing.
    again = await api.conversation(bob, [alice])
    assert again["id"] == cid
    group = await api.conversation(alice, [bob], title="later group")
    created = await bob_phone.wait_for("conversation_created", lambda d: d["conversation"]["id"] == group["id"])
    assert created["conversation"]["title"] == "later group"
    assert [d["conversation"]["id"] for d in bob_phone.events("conversation_created")] == [cid, group["id"]]
    in_group = await send(alice_phone, group["id"], "group too")
    assert await bob_phone.wait_for("new_message", lambda m: m["conversation_id"] == group["id"]) == in_group


async def test_added_member_is_subscribed_on_every_device_at_once(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob], title="team")
    cid = group["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    carol_phone = await sockets.connect(carol.token)
    carol_laptop = await sockets.connect(carol.token)
    before = await send(alice_socket, cid, "before carol")
    await add_members(api, alice, cid, [carol])
    for sock in (carol_phone, carol_laptop, alice_socket, bob_socket):
        event = await sock.wait_for("member_added")
        assert event["conversation_id"] == cid
        assert event["user"]["id"] == carol.id
    after = await send(bob_socket, cid, "welcome carol")
    for sock in (carol_phone, carol_laptop):
        assert await sock.wait_for("new_message") == after
        # Only what was sent after she joined arrived live.
        assert sock.events("new_message") == [after]
    assert await alice_socket.wait_for("new_message") == after
    assert before["seq"] == 1 and after["seq"] == 2
    # What came before her arrival does not count as unread; what came after does.
    status, body = await api.request("GET", "/api/conversations", token=carol.token)
    assert status == 200, body
    assert [(c["id"], c["unread_count"]) for c in body["conversations"]] == [(cid, 1)]
    # Adding someone already in is a no-op: no second member_added.
    await add_members(api, alice, cid, [carol])
    dave = await api.register()
    await add_members(api, bob, cid, [dave])
    await carol_phone.wait_for("member_added", lambda e: e["user"]["id"] == dave.id)
    assert [e["user"]["id"] for e in carol_phone.events("member_added")] == [carol.id, dave.id]


async def test_member_who_leaves_stops_receiving_at_once(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol], title="team")
    cid = group["id"]
    dm = (await api.conversation(alice, [carol]))["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    carol_phone = await sockets.connect(carol.token)
    carol_laptop = await sockets.connect(carol.token)
    first = await send(alice_socket, cid, "before")
    for sock in (carol_phone, carol_laptop):
        assert await sock.wait_for("new_message") == first

    status, body = await api.request("DELETE", f"/api/conversations/{cid}/members/me", token=carol.token)
    assert status == 200, body
    for sock in (carol_phone, carol_laptop, alice_socket, bob_socket):
        event = await sock.wait_for("member_removed")
        assert event == {"conversation_id": cid, "user": event["user"]}
        assert event["user"]["id"] == carol.id

    after = await send(alice_socket, cid, "after carol left")
    await send(bob_socket, cid, "typing too")
    assert (await bob_socket.call("typing", {"conversation_id": cid, "typing": True}))["ok"] is True
    assert await bob_socket.wait_for("new_message", lambda m: m["seq"] == after["seq"]) == after
    # Control: a message in a conversation carol is still in arrives, and it is the only new one.
    control = await send(alice_socket, dm, "still talking to you")
    for sock in (carol_phone, carol_laptop):
        assert await sock.wait_for("new_message", lambda m: m["conversation_id"] == dm) == control
        assert sock.events("new_message") == [first, control]
        assert sock.events("typing") == []
    # And she can no longer act in it.
    assert error_code(await carol_phone.call("send_message", {"conversation_id": cid, "body": "x"})) == "not_found"
    assert error_code(await carol_phone.call("join_conversation", {"conversation_id": cid})) == "not_found"
    sync = await carol_phone.call("sync", {})
    assert sync["ok"] is True and [c["id"] for c in sync["conversations"]] == [dm]


async def test_outsider_never_receives_and_cannot_act(api: Api, sockets: SocketFactory) -> None:
    alice, bob, mallory = await api.register(), await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    mallory_dm = (await api.conversation(alice, [mallory]))["id"]
    mallory_socket = await sockets.connect(mallory.token)
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)

    secret = await send(alice_socket, cid, "secret")
    await bob_socket.wait_for("new_message")
    assert (await bob_socket.call("typing", {"conversation_id": cid, "typing": True}))["ok"] is True
    assert (await bob_socket.call("mark_read", {"conversation_id": cid, "seq": 1}))["ok"] is True
    await alice_socket.wait_for("typing")
    await alice_socket.wait_for("receipt")

    for event, payload in [
        ("join_conversation", {"conversation_id": cid}),
        ("join_conversation", cid),
        ("leave_conversation", {"conversation_id": cid}),
        ("send_message", {"conversation_id": cid, "body": "let me in"}),
        ("typing", {"conversation_id": cid, "typing": True}),
        ("delivered", {"conversation_id": cid, "seq": 1}),
        ("mark_read", {"conversation_id": cid, "seq": 1}),
        ("sync", {"cursors": {str(cid): 0}}),
        ("sync", {"cursors": {str(cid): 0, str(mallory_dm): 0}}),
    ]:
        assert error_code(await mallory_socket.call(event, payload)) == "not_found", (event, payload)
    # A conversation that does not exist answers the same (nothing to learn from the difference).
    assert error_code(await mallory_socket.call("join_conversation", {"conversation_id": 999999})) == "not_found"
    assert error_code(await mallory_socket.call("send_message", {"conversation_id": 999999, "body": "x"})) \
        == "not_found"
    status, body = await api.send(mallory, cid, "over http")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await api.request("GET", f"/api/conversations/{cid}/messages", token=mallory.token)
    assert (status, body["error"]["code"]) == (404, "not_found")

    # Nothing mallory did was stored or relayed.
    status, body = await api.request("GET", f"/api/conversations/{cid}/messages", token=alice.token)
    assert [m["id"] for m in body["messages"]] == [secret["id"]]
    # Control, later in the same order: mallory's own conversation reaches her; nothing else ever did.
    control = await send(alice_socket, mallory_dm, "hi mallory")
    assert await mallory_socket.wait_for("new_message") == control
    assert (await alice_socket.call("typing", {"conversation_id": mallory_dm, "typing": True}))["ok"] is True
    await mallory_socket.wait_for("typing")
    leaked = [(name, data) for name, data in mallory_socket.received
              if isinstance(data, dict) and data.get("conversation_id") == cid]
    assert leaked == []
    assert all(name in ("new_message", "typing", "presence") for name, _ in mallory_socket.received), \
        mallory_socket.received
    # Presence only of the one user she shares a conversation with, never of bob.
    assert {p["user_id"] for p in mallory_socket.events("presence")} <= {alice.id}
    assert bob_socket.events("new_message") == [secret]
    assert alice_socket.events("typing") == [{"conversation_id": cid, "user_id": bob.id, "typing": True}]


async def test_join_conversation_is_idempotent_and_accepts_a_bare_id(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    for payload in ({"conversation_id": cid}, cid, str(cid), {"conversation_id": cid}):
        ack = await bob_socket.call("join_conversation", payload)
        assert ack["ok"] is True, (payload, ack)
        assert ack["conversation"]["id"] == cid
        assert {m["id"] for m in ack["conversation"]["members"]} == {alice.id, bob.id}
    # Joining several times does not multiply deliveries.
    first = await send(alice_socket, cid, "once")
    second = await send(alice_socket, cid, "twice")
    assert await bob_socket.wait_count("new_message", 2) == [first, second]


async def test_leave_conversation_stops_live_events_for_that_socket_only(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_phone = await sockets.connect(bob.token)
    bob_laptop = await sockets.connect(bob.token)
    ack = await bob_phone.call("leave_conversation", {"conversation_id": cid})
    assert ack == {"ok": True, "conversation_id": cid}

    quiet = await send(alice_socket, cid, "phone should not see this")
    assert (await alice_socket.call("typing", {"conversation_id": cid, "typing": True}))["ok"] is True
    assert await bob_laptop.wait_for("new_message") == quiet
    await bob_laptop.wait_for("typing")
    # The user is still a member: the phone can read, and a sync does not silently re-subscribe it.
    sync = await bob_phone.call("sync", {"cursors": {str(cid): 0}})
    assert sync["ok"] is True and [m["id"] for m in sync["messages"]] == [quiet["id"]]
    still_quiet = await send(alice_socket, cid, "still not on the phone")
    await bob_laptop.wait_for("new_message", lambda m: m["id"] == still_quiet["id"])

    # Control in the same order: after joining again the phone gets the next message, and only that.
    rejoin = await bob_phone.call("join_conversation", {"conversation_id": cid})
    assert rejoin["ok"] is True
    back = await send(alice_socket, cid, "welcome back")
    assert await bob_phone.wait_for("new_message") == back
    assert bob_phone.events("new_message") == [back]
    assert bob_phone.events("typing") == []
    assert [m["id"] for m in bob_laptop.events("new_message")] == [quiet["id"], still_quiet["id"], back["id"]]
