"""Emits to a room travel on the room's own Redis channel (aurora/realtime/room_channels.py): a process
with no member in a room is not subscribed to it (pays nothing for its traffic), one that gains a
member subscribes, and a socket put in a room by another process is told to resync once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import socketio

from aurora.realtime.room_channels import RoomChannelRedisManager
from tests.support.cluster import Node


def _room_channel(node: Node, room: str) -> str:
    return f"{node.process.env['AURORA_REDIS_PREFIX']}:socketio#/chat#{room}"


async def _subscribers(url: str, channel: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return dict(await client.pubsub_numsub(channel))[channel.encode()]
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _listening_manager(url: str) -> AsyncIterator[RoomChannelRedisManager]:
    """A manager of this test process on its own channel prefix, its listener started (and stopped after)."""
    manager = RoomChannelRedisManager(url, channel=f"t{uuid.uuid4().hex[:12]}:socketio")
    socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)  # the manager's server (tasks)
    manager.initialize()
    try:
        yield manager
    finally:
        manager.thread.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await manager.thread
        if manager._listener_pubsub is not None:
            await manager._listener_pubsub.aclose()


async def test_only_processes_with_members_hear_a_room(cluster: list[Node], shared_redis_url: str) -> None:
    one, two = cluster
    alice, bob, carol = await one.api.register(), await one.api.register(), await two.api.register()
    cid = (await one.api.conversation(alice, [bob]))["id"]
    alice_socket = await one.sockets.connect(alice.token)
    bob_socket = await one.sockets.connect(bob.token)
    carol_socket = await two.sockets.connect(carol.token)  # on process two, in no busy room
    channel = _room_channel(one, f"conversation:{cid}")
    assert await _subscribers(shared_redis_url, channel) == 1  # process one only, from the connects

    for n in range(5):
        ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": f"local {n}"})
        assert ack["ok"], ack
        assert (await bob_socket.wait_for("new_message", lambda m, i=ack["message"]["id"]: m["id"] == i))

    # bob opens a second device on process two: process two subscribes, and hears the room from then on.
    bob_phone = await two.sockets.connect(bob.token)
    assert await _subscribers(shared_redis_url, channel) == 2
    ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": "to both devices"})
    assert (await bob_phone.wait_for("new_message"))["id"] == ack["message"]["id"]
    # Checked after process two delivered a later message of the room (published after the five local
    # ones): none of those reached carol.
    assert carol_socket.events("new_message") == []
    assert bob_phone.events("resync") == []  # joined by its own connect: its sync covers the rest
    # carol's user room lives on process two only.
    assert await _subscribers(shared_redis_url, _room_channel(two, f"user:{carol.id}")) == 1


async def test_a_socket_put_in_a_new_room_by_another_process_is_told_to_resync(cluster: list[Node]) -> None:
    one, two = cluster
    alice, carol = await one.api.register(), await two.api.register()
    alice_socket = await one.sockets.connect(alice.token)
    carol_socket = await two.sockets.connect(carol.token)
    conversation = await one.api.conversation(alice, [carol])  # process one puts carol's socket in the room
    assert (await carol_socket.wait_for("conversation_created"))["conversation"]["id"] == conversation["id"]
    resync = await carol_socket.wait_for("resync")
    assert resync == {"reason": "room_joined"}
    ack = await alice_socket.call("send_message", {"conversation_id": conversation["id"], "body": "first"})
    assert (await carol_socket.wait_for("new_message"))["id"] == ack["message"]["id"]
    assert len(carol_socket.events("resync")) == 1


async def test_a_room_entered_while_the_listener_starts_is_still_heard(shared_redis_url: str) -> None:
    """The first connect to a process starts its Redis listener, and that connect enters the user's room
    at once. A room channel added while the listener's first SUBSCRIBE was on its way was left out of
    it: that room was never heard on that process (seen as a flaky run of the test above)."""
    async with _listening_manager(shared_redis_url) as manager:  # the listener task starts...
        await asyncio.sleep(0)  # ...builds its first SUBSCRIBE and waits for Redis
        await manager._subscribe_room("/chat", "user:1")
        channel = manager.room_channel("/chat", "user:1")
        for _ in range(100):  # bounded: the SUBSCRIBE reaches Redis
            if await _subscribers(shared_redis_url, channel) == 1:
                break
            await asyncio.sleep(0.05)
        assert await _subscribers(shared_redis_url, channel) == 1


async def test_a_room_entered_again_just_after_its_sweep_stays_subscribed(shared_redis_url: str) -> None:
    """The sweep unsubscribes rooms left empty in a task of its own; a socket entering such a room in
    the same moment subscribed it first, and the late UNSUBSCRIBE then silently took it away."""
    async with _listening_manager(shared_redis_url) as manager:
        await manager._subscribe_room("/chat", "user:1")  # no socket enters it: empty at the next sweep
        manager._last_sweep = 0.0  # the next subscription sweeps
        await manager._subscribe_room("/chat", "user:2")  # ...and queues the UNSUBSCRIBE of user:1
        await manager._subscribe_room("/chat", "user:1")  # entered again at once
        channel = manager.room_channel("/chat", "user:1")
        await asyncio.sleep(0.2)  # whatever was queued has reached Redis
        assert await _subscribers(shared_redis_url, channel) == 1


async def test_a_connect_subscribes_all_its_rooms_at_once_and_hears_each(cluster: list[Node],
                                                                         shared_redis_url: str) -> None:
    one, two = cluster
    alice, bob = await one.api.register(), await one.api.register()
    others = [await one.api.register() for _ in range(4)]
    cids = [(await one.api.conversation(alice, [bob]))["id"]]
    cids += [(await one.api.conversation(alice, [bob, other]))["id"] for other in others]
    alice_socket = await one.sockets.connect(alice.token)
    bob_socket = await two.sockets.connect(bob.token)  # process two subscribes the five rooms in one go
    for cid in cids:
        assert await _subscribers(shared_redis_url, _room_channel(two, f"conversation:{cid}")) == 2
    for cid in cids:
        ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": f"to {cid}"})
        assert ack["ok"], ack
        got = await bob_socket.wait_for("new_message", lambda m, i=ack["message"]["id"]: m["id"] == i)
        assert got["conversation_id"] == cid
    assert bob_socket.events("resync") == []
