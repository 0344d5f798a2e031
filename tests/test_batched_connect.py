"""Connect work read in batches (services/batched_reads.py): concurrent connects share the queries for
token look-ups, rooms and contacts, and every socket still gets exactly its own rooms and presence."""

from __future__ import annotations

import asyncio

from aurora.context import AURORA
from aurora.services.batched_reads import BatchedRead
from tests.conftest import RunningServer
from tests.support.clients import Api, SocketFactory, acked, round_trip


async def test_concurrent_connects_share_queries_and_each_gets_its_own_rooms(
        server: RunningServer, api: Api, sockets: SocketFactory) -> None:
    aurora = server.app[AURORA]
    hub = await api.register()
    users = [await api.register() for _ in range(12)]
    cids = [(await api.conversation(hub, [u]))["id"] for u in users]
    outsider = await api.register()
    reads = aurora.conversations._ids_reads
    before = reads.batches
    socks = await asyncio.gather(*(sockets.connect(u.token) for u in [*users, outsider]))
    assert reads.batches - before < len(socks)  # shared: fewer queries than connects
    hub_socket = await sockets.connect(hub.token)
    for cid, sock in zip(cids, socks, strict=False):
        sent = await acked(hub_socket, "send_message", {"conversation_id": cid, "body": f"to {cid}"})
        got = await sock.wait_for("new_message", lambda m, i=sent["message"]["id"]: m["id"] == i)
        assert got["conversation_id"] == cid
    # Nobody got another's message: each socket's rooms are exactly its memberships.
    for cid, sock in zip(cids, socks, strict=False):
        assert {m["conversation_id"] for m in sock.events("new_message")} == {cid}
    await round_trip(socks[-1])  # anything emitted to the outsider with those has arrived by now
    assert socks[-1].events("new_message") == []
    # The hub's first socket told every contact it is online (contacts read in a batch too).
    for sock in socks[:-1]:
        presence = await sock.wait_for("presence", lambda p: p["user_id"] == hub.id and p["online"])
        assert presence["online"] is True
    await round_trip(socks[-1])
    assert socks[-1].events("presence") == []


async def test_a_failed_batch_fails_each_waiter_and_the_next_batch_runs(server: RunningServer) -> None:
    storage = server.app[AURORA].storage
    calls: list[list[int]] = []

    def read_many(keys: list[int]) -> dict[int, int]:
        calls.append(sorted(keys))
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return {k: k * 10 for k in keys if k != 3}

    batched: BatchedRead[int, int | None] = BatchedRead(storage, read_many, lambda: None)
    first = await asyncio.gather(*(batched.get(k) for k in (1, 2, 2)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in first) and calls == [[1, 2]]
    assert await asyncio.gather(batched.get(1), batched.get(3), batched.get(1)) == [10, None, 10]
    assert calls[1] == [1, 3]  # one query for the three reads, the repeated key asked once


async def test_concurrent_disconnects_share_one_last_seen_commit_and_each_contact_hears_it(
        server: RunningServer, api: Api, sockets: SocketFactory) -> None:
    aurora = server.app[AURORA]
    hub = await api.register()
    users = [await api.register() for _ in range(12)]
    for user in users:
        await api.conversation(hub, [user])
    hub_socket = await sockets.connect(hub.token)
    socks = await asyncio.gather(*(sockets.connect(u.token) for u in users))
    writes = aurora.presence._last_seen_writes
    before = writes.batches
    await asyncio.gather(*(sock.disconnect() for sock in socks))
    offline = {}
    for user in users:
        event = await hub_socket.wait_for("presence", lambda p, u=user.id: p["user_id"] == u and not p["online"])
        offline[user.id] = event["last_seen_at"]
    assert writes.batches - before < len(users)  # shared: fewer commits than disconnects
    # Each stamp was stored: a user's next first socket announces the same last_seen_at.
    again = await sockets.connect(users[0].token)
    back = await hub_socket.wait_for("presence", lambda p: p["user_id"] == users[0].id and p["online"]
                                     and p["last_seen_at"] is not None)  # not the first connect's
    assert back["last_seen_at"] == offline[users[0].id]
    await again.disconnect()
