"""A first end-to-end check on both databases: register, converse, receive live without joining."""

from __future__ import annotations

from tests.support.clients import Api, SocketFactory


async def test_receiver_gets_message_live_without_joining(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    bob_socket = await sockets.connect(bob.token)
    alice_socket = await sockets.connect(alice.token)
    conversation = await api.conversation(alice, [bob])
    created = await bob_socket.wait_for("conversation_created")
    assert created["conversation"]["id"] == conversation["id"]

    ack = await alice_socket.call("send_message", {"conversation_id": conversation["id"], "body": "hi bob",
                                                   "client_id": "c1"})
    assert ack["ok"] is True, ack
    assert ack["message"]["seq"] == 1
    received = await bob_socket.wait_for("new_message")
    assert received == ack["message"]
    assert alice_socket.events("new_message") == []
