"""sync: nothing is lost across a disconnect, conversations never seen are discovered, paging is gapless."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.clients import Api, SocketFactory, TestSocket


async def send(sock: TestSocket, conversation_id: int, body: str) -> dict[str, Any]:
    ack = await sock.call("send_message", {"conversation_id": conversation_id, "body": body})
    assert ack["ok"] is True, ack
    return ack["message"]


async def sync(sock: TestSocket, cursors: dict[int, int] | None = None, limit: int | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if cursors is not None:
        payload["cursors"] = {str(cid): seq for cid, seq in cursors.items()}
    if limit is not None:
        payload["limit"] = limit
    ack = await sock.call("sync", payload)
    assert ack["ok"] is True, ack
    assert set(ack) == {"ok", "messages", "has_more", "conversations"}, ack
    return ack


async def sync_all(sock: TestSocket, cursors: dict[int, int], limit: int) -> tuple[list[dict[str, Any]], int]:
    """Page through sync the way a client must: advance each cursor to the last seq received."""
    cursors = dict(cursors)
    collected: list[dict[str, Any]] = []
    rounds = 0
    while True:
        rounds += 1
        assert rounds < 100, "sync never finished"
        ack = await sync(sock, cursors, limit)
        assert len(ack["messages"]) <= limit
        for message in ack["messages"]:
            cid = message["conversation_id"]
            assert message["seq"] == cursors[cid] + 1, ("gap or repeat", cursors, message)
            cursors[cid] = message["seq"]
        collected.extend(ack["messages"])
        if not ack["has_more"]:
            return collected, rounds
        assert ack["messages"], "has_more with an empty page would loop forever"


async def test_messages_sent_while_offline_arrive_through_sync(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    seen = await send(alice_socket, cid, "while online")
    assert await bob_socket.wait_for("new_message") == seen
    await bob_socket.disconnect()

    missed = [await send(alice_socket, cid, f"offline {n}") for n in range(5)]
    status, body = await api.send(alice, cid, "offline over http")
    assert status == 201, body
    missed.append(body["message"])

    bob_back = await sockets.connect(bob.token)
    ack = await sync(bob_back, {cid: seen["seq"]})
    assert ack["messages"] == missed
    assert [m["seq"] for m in ack["messages"]] == list(range(2, 8))
    assert ack["has_more"] is False
    assert ack["conversations"] == [{"id": cid, "last_seq": 7}]
    # Live delivery resumes after the catch-up, continuing the sequence without a gap.
    live = await send(alice_socket, cid, "back online")
    assert live["seq"] == 8
    assert await bob_back.wait_for("new_message") == live
    # A cursor at the end returns nothing.
    assert (await sync(bob_back, {cid: 8}))["messages"] == []


async def test_sync_discovers_conversations_never_seen(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    dm = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    # While bob is offline, a group with him is created and used, and an empty one too.
    group = (await api.conversation(carol, [alice, bob], title="made while bob was away"))["id"]
    empty = (await api.conversation(carol, [bob], title="quiet"))["id"]
    unrelated = (await api.conversation(alice, [carol]))["id"]
    in_dm = await send(alice_socket, dm, "dm")
    in_group = [await send(alice_socket, group, f"g{n}") for n in range(3)]
    await send(alice_socket, unrelated, "not for bob")

    bob_socket = await sockets.connect(bob.token)
    ack = await sync(bob_socket, {dm: 0})
    assert ack["messages"] == [in_dm]  # only what the cursors asked for
    assert sorted(ack["conversations"], key=lambda c: c["id"]) == sorted(
        [{"id": dm, "last_seq": 1}, {"id": group, "last_seq": 3}, {"id": empty, "last_seq": 0}],
        key=lambda c: c["id"],
    )
    # Without cursors: the list alone.
    bare = await sync(bob_socket)
    assert bare["messages"] == [] and bare["has_more"] is False
    assert {c["id"] for c in bare["conversations"]} == {dm, group, empty}
    # The discovered conversation is fetched from cursor 0.
    ack = await sync(bob_socket, {dm: 1, group: 0, empty: 0})
    assert ack["messages"] == in_group
    # And it is live on this socket already.
    live = await send(alice_socket, group, "live in the new group")
    assert await bob_socket.wait_for("new_message") == live


async def test_sync_pages_with_limit_and_has_more(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    first = (await api.conversation(alice, [bob]))["id"]
    second = (await api.conversation(alice, [bob, carol], title="g"))["id"]
    alice_socket = await sockets.connect(alice.token)
    sent = {first: [await send(alice_socket, first, f"a{n}") for n in range(7)],
            second: [await send(alice_socket, second, f"b{n}") for n in range(5)]}
    bob_socket = await sockets.connect(bob.token)

    page = await sync(bob_socket, {first: 0, second: 0}, limit=3)
    assert len(page["messages"]) == 3 and page["has_more"] is True
    # Ascending per conversation.
    for cid in (first, second):
        seqs = [m["seq"] for m in page["messages"] if m["conversation_id"] == cid]
        assert seqs == sorted(seqs)

    for limit in (1, 3, 5, 12, 500):
        collected, rounds = await sync_all(bob_socket, {first: 0, second: 0}, limit)
        for cid in (first, second):
            assert [m for m in collected if m["conversation_id"] == cid] == sent[cid], limit
        assert len(collected) == 12
        assert rounds == -(-12 // limit), (limit, rounds)  # has_more is exact: no empty extra round

    # Exactly `limit` left: no has_more.
    exact = await sync(bob_socket, {first: 2, second: 5}, limit=5)
    assert [m["seq"] for m in exact["messages"]] == [3, 4, 5, 6, 7] and exact["has_more"] is False
    # The default limit covers a small backlog in one answer.
    everything = await sync(bob_socket, {first: 0, second: 0})
    assert len(everything["messages"]) == 12 and everything["has_more"] is False


async def test_sync_rejects_foreign_cursors_and_bad_input(api: Api, sockets: SocketFactory) -> None:
    alice, bob, mallory = await api.register(), await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    own = (await api.conversation(mallory, [alice]))["id"]
    mallory_socket = await sockets.connect(mallory.token)
    for cursors in ({str(cid): 0}, {str(own): 0, str(cid): 0}, {"123456789": 0}):
        ack = await mallory_socket.call("sync", {"cursors": cursors})
        assert ack["ok"] is False and ack["error"]["code"] == "not_found", (cursors, ack)
    for payload in (
        {"cursors": [cid]},
        {"cursors": "everything"},
        {"cursors": {"abc": 0}},
        {"cursors": {str(own): -1}},
        {"cursors": {str(own): "x"}},
        {"cursors": {str(own): 0}, "limit": 0},
        {"cursors": {str(own): 0}, "limit": -5},
        {"cursors": {str(own): 0}, "limit": "many"},
        {"cursors": {str(own): 0}, "limit": 10**6},
        "sync please",
        [1, 2],
    ):
        ack = await mallory_socket.call("sync", payload)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid", (payload, ack)
    # Control: a valid sync on her own conversation works.
    ack = await sync(mallory_socket, {own: 0})
    assert ack["conversations"] == [{"id": own, "last_seq": 0}]
    # No payload at all is the same as {}.
    bare = await mallory_socket.call("sync")
    assert bare["ok"] is True and bare["conversations"] == [{"id": own, "last_seq": 0}]


async def test_reconnect_catch_up_then_live_has_no_gap_and_no_duplicate(api: Api, sockets: SocketFactory) -> None:
    """The client recipe: remember the last seq, reconnect, sync from it, then keep taking live messages."""
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    last_seen = 0
    received: list[dict[str, Any]] = []
    for round_no in range(3):
        live = [await send(alice_socket, cid, f"live {round_no}-{n}") for n in range(2)]
        got = await bob_socket.wait_count("new_message", 2)
        received.extend(got)
        last_seen = got[-1]["seq"]
        assert got == live
        await bob_socket.disconnect()
        for n in range(3):
            await send(alice_socket, cid, f"missed {round_no}-{n}")
        bob_socket = await sockets.connect(bob.token)
        ack = await sync(bob_socket, {cid: last_seen})
        received.extend(ack["messages"])
        last_seen = ack["messages"][-1]["seq"]
    assert [m["seq"] for m in received] == list(range(1, 16))
    assert len({m["id"] for m in received}) == 15


async def test_sync_during_a_burst_never_skips_a_seq(api: Api, sockets: SocketFactory) -> None:
    """While three senders write, a reader that syncs over and over only ever sees contiguous runs:
    a message is never visible before every lower seq of its conversation."""
    senders = [await api.register() for _ in range(3)]
    reader = await api.register()
    cid = (await api.conversation(senders[0], [*senders[1:], reader], title="burst"))["id"]
    sender_socks = [await sockets.connect(s.token) for s in senders]
    reader_socket = await sockets.connect(reader.token)
    per_sender = 25
    total = per_sender * len(senders)
    done = asyncio.Event()

    async def burst(sock: TestSocket, index: int) -> None:
        acks = await asyncio.gather(*(sock.call("send_message", {"conversation_id": cid, "body": f"{index}-{n}"})
                                      for n in range(per_sender)))
        assert all(a["ok"] for a in acks), acks

    async def reader_loop() -> list[int]:
        cursor, seen, rounds = 0, [], 0
        while cursor < total:
            rounds += 1
            assert rounds < 5000, "the reader never caught up"
            ack = await sync(reader_socket, {cid: cursor}, limit=7)
            seqs = [m["seq"] for m in ack["messages"]]
            assert seqs == list(range(cursor + 1, cursor + 1 + len(seqs))), (cursor, seqs)
            seen.extend(seqs)
            cursor += len(seqs)
            if not seqs and done.is_set():
                ack = await sync(reader_socket, {cid: cursor})
                assert [m["seq"] for m in ack["messages"]] == list(range(cursor + 1, total + 1))
                seen.extend(m["seq"] for m in ack["messages"])
                cursor = total
        return seen

    async def senders_then_done() -> None:
        await asyncio.gather(*(burst(sock, i) for i, sock in enumerate(sender_socks)))
        done.set()

    seen, _ = await asyncio.gather(reader_loop(), senders_then_done())
    assert seen == list(range(1, total + 1))
