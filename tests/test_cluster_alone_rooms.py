"""A room whose only subscriber is one process is not published to Redis (aurora/realtime/room_handshake.py),
and a process that subscribes later misses nothing: its hello is answered before its socket's connect
completes, so the socket's sync and its live messages leave no gap, with no `resync` needed."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.clients import Account, TestSocket
from tests.support.cluster import Node
from tests.support.metrics import scrape, value


async def _room_emits(node: Node) -> tuple[float, float]:
    samples = await scrape(node.api)
    return (value(samples, "aurora_redis_room_emits_total", route="published"),
            value(samples, "aurora_redis_room_emits_total", route="local"))


async def _send(sock: TestSocket, conversation_id: int, body: str) -> dict[str, Any]:
    ack = await sock.call("send_message", {"conversation_id": conversation_id, "body": body})
    assert ack["ok"], ack
    return ack["message"]


async def _synced_seqs(sock: TestSocket, conversation_id: int) -> set[int]:
    seqs: set[int] = set()
    cursor = 0
    while True:
        answer = await sock.call("sync", {"cursors": {str(conversation_id): cursor}, "limit": 1000})
        assert answer["ok"], answer
        for message in answer["messages"]:
            if message["conversation_id"] == conversation_id:
                seqs.add(message["seq"])
                cursor = max(cursor, message["seq"])
        if not answer["has_more"]:
            return seqs


async def test_a_room_heard_only_here_is_delivered_locally_until_another_process_joins(cluster: list[Node]) -> None:
    one, two = cluster
    alice, bob = await one.api.register(), await one.api.register()
    cid = (await one.api.conversation(alice, [bob]))["id"]
    alice_socket = await one.sockets.connect(alice.token)
    bob_socket = await one.sockets.connect(bob.token)
    before = await _room_emits(one)
    for n in range(6):
        sent = await _send(alice_socket, cid, f"alone {n}")
        assert (await bob_socket.wait_for("new_message", lambda m, i=sent["id"]: m["id"] == i))["body"] == f"alone {n}"
    after = await _room_emits(one)
    # The first emits are published (Redis answers: one subscriber, this process); after that the room
    # is alone here and its emits stay local.
    assert after[1] - before[1] >= 3, (before, after)

    bob_phone = await two.sockets.connect(bob.token)  # process two subscribes, says hello, is answered
    sent = await _send(alice_socket, cid, "to both devices")
    assert (await bob_phone.wait_for("new_message", lambda m: m["id"] == sent["id"]))["body"] == "to both devices"
    later = await _room_emits(one)
    assert later[0] > after[0], (after, later)  # published again: process two hears the room now
    assert bob_phone.events("resync") == []
    assert len(bob_socket.events("new_message")) == 7


async def _second_device_misses_nothing(one: Node, two: Node, sender: TestSocket, alice: Account,
                                        index: int) -> None:
    member = await one.api.register()
    cid = (await one.api.conversation(alice, [member]))["id"]
    first_device = await one.sockets.connect(member.token)
    sent_seqs: list[int] = []
    stop = asyncio.Event()

    async def keep_sending() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sent_seqs.append((await _send(sender, cid, f"{index}:{n}"))["seq"])
            await asyncio.sleep(0.002)

    sending = asyncio.ensure_future(keep_sending())
    try:
        await first_device.wait_count("new_message", 5)  # the room is alone on process one by now
        second_device = await two.sockets.connect(member.token)  # while messages keep coming
        synced = await _synced_seqs(second_device, cid)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await sending
    last = sent_seqs[-1]
    await second_device.wait_for("new_message", lambda m: m["seq"] == last)
    live = {m["seq"] for m in second_device.events("new_message") if m["conversation_id"] == cid}
    assert second_device.events("resync") == []  # it needed none: the handshake left no gap
    missing = set(sent_seqs) - synced - live
    assert not missing, f"conversation {index}: {sorted(missing)} neither synced nor live"
    assert live, "the second device got nothing live"


async def test_a_device_joining_on_another_process_while_messages_flow_misses_nothing(cluster: list[Node]) -> None:
    """Each round: a DM alone on process one (both devices there), messages flowing, and the member's
    second device connects to process two. Without the hello and its answers, process one would go on
    keeping the room's emits local and the second device would see nothing live after its sync."""
    one, two = cluster
    alice = await one.api.register()
    sender = await one.sockets.connect(alice.token)
    before = await _room_emits(one)
    for index in range(4):
        await _second_device_misses_nothing(one, two, sender, alice, index)
    after = await _room_emits(one)
    assert after[1] > before[1], (before, after)  # the rooms were alone on process one before each join
