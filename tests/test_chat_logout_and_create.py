"""Logout closes the user's open sockets; conversations can be created over the socket too."""

from __future__ import annotations

import asyncio

from tests.support.clients import Api, SocketFactory


async def test_logout_disconnects_every_open_socket(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    chat_phone = await sockets.connect(alice.token)
    chat_laptop = await sockets.connect(alice.token)
    calls = await sockets.connect(alice.token, "/calls")
    bystander = await sockets.connect(bob.token)

    status, _ = await api.request("POST", "/api/auth/logout", token=alice.token)
    assert status == 200
    for _ in range(50):
        if not any(s.client.connected for s in (chat_phone, chat_laptop, calls)):
            break
        await asyncio.sleep(0.1)
    assert not chat_phone.client.connected and not chat_laptop.client.connected and not calls.client.connected
    assert bystander.client.connected
    refused = await sockets.connect_error(alice.token)
    assert refused["data"]["code"] == "auth_invalid"  # python-socketio passes {message, data}


async def test_create_conversation_over_the_socket(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    carol = await api.register()
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)

    direct = await alice_socket.call("create_conversation", {"user_ids": [bob.id]})
    assert direct["ok"] and direct["created"] is True and direct["conversation"]["kind"] == "direct", direct
    again = await alice_socket.call("create_conversation", {"user_ids": [bob.id]})
    assert again["ok"] and again["created"] is False and again["conversation"]["id"] == direct["conversation"]["id"]
    announced = await bob_socket.wait_for("conversation_created")
    assert announced["conversation"]["id"] == direct["conversation"]["id"]

    group = await alice_socket.call("create_conversation", {"user_ids": [bob.id, carol.id], "title": "trio"})
    assert group["ok"] and group["conversation"]["kind"] == "group", group
    sent = await alice_socket.call("send_message", {"conversation_id": group["conversation"]["id"], "body": "hi"})
    assert (await bob_socket.wait_for("new_message"))["id"] == sent["message"]["id"]

    bad = await alice_socket.call("create_conversation", {"user_ids": "nope"})
    assert bad == {"ok": False, "error": {"code": "invalid", "message": bad["error"]["message"]}}
    unknown = await alice_socket.call("create_conversation", {"user_ids": [987654]})
    assert unknown["ok"] is False and unknown["error"]["code"] == "not_found"
