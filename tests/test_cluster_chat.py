"""Two real Aurora processes, one PostgreSQL, one Redis: they behave as one server."""

from __future__ import annotations

from tests.support.cluster import Node


async def test_message_sent_on_one_process_reaches_the_other_live(cluster: list[Node]) -> None:
    one, two = cluster
    alice = await one.api.register()
    bob = await two.api.register()
    conversation = await one.api.conversation(alice, [bob])
    bob_socket = await two.sockets.connect(bob.token)
    alice_socket = await one.sockets.connect(alice.token)

    ack = await alice_socket.call("send_message", {"conversation_id": conversation["id"], "body": "across"})
    assert ack["ok"], ack
    received = await bob_socket.wait_for("new_message")
    assert received == ack["message"]

    status, _ = await two.api.send(bob, conversation["id"], "back over REST")
    assert status == 201
    back = await alice_socket.wait_for("new_message")
    assert back["body"] == "back over REST" and back["seq"] == 2


async def test_conversation_created_on_one_process_subscribes_sockets_on_the_other(cluster: list[Node]) -> None:
    one, two = cluster
    alice = await one.api.register()
    bob = await one.api.register()
    bob_phone = await two.sockets.connect(bob.token)
    bob_laptop = await one.sockets.connect(bob.token)
    alice_socket = await one.sockets.connect(alice.token)

    conversation = await one.api.conversation(alice, [bob])  # created after everyone connected
    created = await bob_phone.wait_for("conversation_created")
    assert created["conversation"]["id"] == conversation["id"]

    ack = await alice_socket.call("send_message", {"conversation_id": conversation["id"], "body": "no reconnect"})
    assert ack["ok"], ack
    for device in (bob_phone, bob_laptop):
        assert (await device.wait_for("new_message"))["id"] == ack["message"]["id"]


async def test_typing_and_receipts_cross_processes(cluster: list[Node]) -> None:
    one, two = cluster
    alice = await one.api.register()
    bob = await two.api.register()
    conversation = await one.api.conversation(alice, [bob])
    alice_socket = await one.sockets.connect(alice.token)
    bob_socket = await two.sockets.connect(bob.token)

    assert (await bob_socket.call("typing", {"conversation_id": conversation["id"], "typing": True}))["ok"]
    typing = await alice_socket.wait_for("typing")
    assert typing == {"conversation_id": conversation["id"], "user_id": bob.id, "typing": True}
    assert bob_socket.events("typing") == []

    sent = await alice_socket.call("send_message", {"conversation_id": conversation["id"], "body": "read me"})
    seq = sent["message"]["seq"]
    assert (await bob_socket.call("mark_read", {"conversation_id": conversation["id"], "seq": seq}))["ok"]
    receipt = await alice_socket.wait_for("receipt", lambda r: r["user_id"] == bob.id)
    assert receipt == {"conversation_id": conversation["id"], "user_id": bob.id,
                       "delivered_seq": seq, "read_seq": seq}


async def test_presence_is_cluster_wide(cluster: list[Node]) -> None:
    one, two = cluster
    alice = await one.api.register()
    bob = await one.api.register()
    await one.api.conversation(alice, [bob])
    alice_socket = await one.sockets.connect(alice.token)

    bob_on_two = await two.sockets.connect(bob.token)
    await alice_socket.wait_for("presence", lambda p: p["user_id"] == bob.id and p["online"])
    bob_on_one = await one.sockets.connect(bob.token)  # a second device: no new "online"
    status, users = await two.api.request("GET", f"/api/users?q={bob.username}", token=alice.token)
    assert status == 200 and users["users"][0]["online"] is True

    await bob_on_two.disconnect()  # still online through the device on process one
    status, users = await one.api.request("GET", f"/api/users?q={bob.username}", token=alice.token)
    assert users["users"][0]["online"] is True
    await bob_on_one.disconnect()
    offline = await alice_socket.wait_for("presence", lambda p: p["user_id"] == bob.id and not p["online"])
    assert offline["last_seen_at"] is not None
    assert len([p for p in alice_socket.events("presence") if p["user_id"] == bob.id and p["online"]]) == 1


async def test_users_of_a_killed_process_go_offline_and_catch_up_elsewhere(cluster: list[Node]) -> None:
    one, two = cluster
    alice = await one.api.register()
    bob = await two.api.register()
    conversation = await one.api.conversation(alice, [bob])
    alice_socket = await one.sockets.connect(alice.token)
    bob_socket = await two.sockets.connect(bob.token)
    await alice_socket.wait_for("presence", lambda p: p["user_id"] == bob.id and p["online"])
    first = await alice_socket.call("send_message", {"conversation_id": conversation["id"], "body": "1"})
    assert (await bob_socket.wait_for("new_message"))["seq"] == first["message"]["seq"]

    two.process.kill()  # no goodbye: its sockets must be reaped through the heartbeat
    offline = await alice_socket.wait_for(
        "presence", lambda p: p["user_id"] == bob.id and not p["online"], timeout=20
    )
    assert offline["user_id"] == bob.id
    for body in ("2", "3"):
        assert (await alice_socket.call("send_message", {"conversation_id": conversation["id"], "body": body}))["ok"]

    bob_again = await one.sockets.connect(bob.token)  # the client reconnects to the surviving process
    synced = await bob_again.call("sync", {"cursors": {str(conversation["id"]): 1}})
    assert synced["ok"], synced
    assert [m["body"] for m in synced["messages"]] == ["2", "3"]
    assert [m["seq"] for m in synced["messages"]] == [2, 3]
