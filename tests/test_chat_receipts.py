"""delivered / mark_read receipts and unread counts; typing indicators."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

from aurora.context import AURORA
from tests.conftest import RunningServer, clock_of
from tests.support.clients import Account, Api, SocketFactory, TestSocket


async def send(sock: TestSocket, conversation_id: int, body: str) -> dict[str, Any]:
    ack = await sock.call("send_message", {"conversation_id": conversation_id, "body": body})
    assert ack["ok"] is True, ack
    return ack["message"]


async def listed(api: Api, account: Account, conversation_id: int) -> dict[str, Any]:
    status, body = await api.request("GET", "/api/conversations", token=account.token)
    assert status == 200, body
    [found] = [c for c in body["conversations"] if c["id"] == conversation_id]
    return found


def receipt(cid: int, user_id: int, delivered: int, read: int) -> dict[str, Any]:
    return {"conversation_id": cid, "user_id": user_id, "delivered_seq": delivered, "read_seq": read}


async def test_pointers_move_forward_only_and_receipts_go_to_the_room(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_phone = await sockets.connect(bob.token)
    bob_laptop = await sockets.connect(bob.token)
    for n in range(3):
        await send(alice_socket, cid, f"m{n}")
    await bob_phone.wait_count("new_message", 3)
    assert (await listed(api, bob, cid))["unread_count"] == 3
    assert (await listed(api, alice, cid))["unread_count"] == 0  # the sender has read what they wrote

    steps = [
        # (event, seq, expected pointers after, whether a receipt goes out)
        ("delivered", 2, (2, 0), True),
        ("delivered", 1, (2, 0), False),   # backwards: ignored
        ("delivered", 2, (2, 0), False),   # same: no receipt
        ("mark_read", 1, (2, 1), True),    # read behind delivered: delivered stays
        ("mark_read", 0, (2, 1), False),
        ("mark_read", 3, (3, 3), True),    # read implies delivered
        ("delivered", 2, (3, 3), False),
    ]
    for event, seq, (delivered, read), _ in steps:
        ack = await bob_phone.call(event, {"conversation_id": cid, "seq": seq})
        assert ack == {"ok": True, **receipt(cid, bob.id, delivered, read)}, (event, seq, ack)
        if event == "mark_read":
            assert (await listed(api, bob, cid))["unread_count"] == 3 - read
    expected = [receipt(cid, bob.id, d, r) for _, _, (d, r), sent in steps if sent]
    # Everyone in the room hears it (the sender, and the reader's other devices too).
    for sock in (alice_socket, bob_laptop, bob_phone):
        assert await sock.wait_count("receipt", len(expected)) == expected
    listing = await listed(api, bob, cid)
    assert (listing["read_seq"], listing["delivered_seq"], listing["unread_count"]) == (3, 3, 0)

    # A later message makes it unread again; only the receiver's count moves.
    await send(alice_socket, cid, "one more")
    assert (await listed(api, bob, cid))["unread_count"] == 1
    assert (await listed(api, alice, cid))["unread_count"] == 0
    # Control in the same order: a changing receipt arrives, and nothing came in between.
    ack = await bob_laptop.call("mark_read", {"conversation_id": cid, "seq": 4})
    assert ack["read_seq"] == 4
    final = await alice_socket.wait_count("receipt", len(expected) + 1)
    assert final == [*expected, receipt(cid, bob.id, 4, 4)]


async def test_seq_beyond_last_seq_is_clamped(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    await send(alice_socket, cid, "one")
    await send(alice_socket, cid, "two")
    ack = await bob_socket.call("delivered", {"conversation_id": cid, "seq": 10**12})
    assert ack == {"ok": True, **receipt(cid, bob.id, 2, 0)}
    ack = await bob_socket.call("mark_read", {"conversation_id": cid, "seq": 50})
    assert ack == {"ok": True, **receipt(cid, bob.id, 2, 2)}
    # A clamped pointer does not swallow later messages: the third is unread.
    await send(alice_socket, cid, "three")
    assert (await listed(api, bob, cid))["unread_count"] == 1
    assert await alice_socket.wait_count("receipt", 2) == [receipt(cid, bob.id, 2, 0), receipt(cid, bob.id, 2, 2)]
    # On an empty conversation everything clamps to 0 and nothing moves.
    carol = await api.register()
    empty = (await api.conversation(carol, [bob]))["id"]
    ack = await bob_socket.call("mark_read", {"conversation_id": empty, "seq": 5})
    assert ack == {"ok": True, **receipt(empty, bob.id, 0, 0)}


async def test_concurrent_receipts_never_move_a_pointer_backwards(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    devices = [await sockets.connect(bob.token) for _ in range(3)]
    for n in range(30):
        await send(alice_socket, cid, f"m{n}")
    rng = random.Random(7)
    calls = [(rng.choice(devices), rng.choice(["delivered", "mark_read"]), rng.randint(0, 30)) for _ in range(150)]
    acks = await asyncio.gather(*(sock.call(event, {"conversation_id": cid, "seq": seq})
                                  for sock, event, seq in calls))
    assert all(a["ok"] for a in acks), acks
    top_read = max(seq for _, event, seq in calls if event == "mark_read")
    top_delivered = max(top_read, *(seq for _, event, seq in calls if event == "delivered"))
    listing = await listed(api, bob, cid)
    assert (listing["delivered_seq"], listing["read_seq"]) == (top_delivered, top_read)
    # Each ack reports pointers that already include its own move.
    for (_, event, seq), ack in zip(calls, acks, strict=True):
        assert ack["delivered_seq"] >= ack["read_seq"]
        assert (ack["read_seq"] if event == "mark_read" else ack["delivered_seq"]) >= seq
    # Receipts the sender sees never go backwards.
    ack = await devices[0].call("mark_read", {"conversation_id": cid, "seq": 30})
    assert ack["read_seq"] == 30
    receipts = await alice_socket.wait_for("receipt", lambda r: r["read_seq"] == 30)
    assert receipts == receipt(cid, bob.id, 30, 30)
    seen = alice_socket.events("receipt")
    for before, after in itertools.pairwise(seen):
        assert after["delivered_seq"] >= before["delivered_seq"] and after["read_seq"] >= before["read_seq"], seen


async def test_receipt_payload_errors(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    await send(alice_socket, cid, "hi")
    for event in ("delivered", "mark_read"):
        for payload in ({"conversation_id": cid}, {"conversation_id": cid, "seq": -1},
                        {"conversation_id": cid, "seq": "one"}, {"conversation_id": cid, "seq": True},
                        {"conversation_id": cid, "seq": 1.5}, {"seq": 1}, {"conversation_id": "x", "seq": 1},
                        "1", [cid, 1], None):
            ack = await bob_socket.call(event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid", (event, payload, ack)
    listing = await listed(api, bob, cid)
    assert (listing["delivered_seq"], listing["read_seq"]) == (0, 0)
    ack = await bob_socket.call("delivered", {"conversation_id": cid, "seq": 1})
    assert ack["delivered_seq"] == 1
    assert await alice_socket.wait_count("receipt", 1) == [receipt(cid, bob.id, 1, 0)]


# -- typing ------------------------------------------------------------------------------------
async def test_typing_is_relayed_to_other_members_only_and_not_stored(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob, carol], title="g"))["id"]
    alice_phone = await sockets.connect(alice.token)
    alice_laptop = await sockets.connect(alice.token)
    bob_phone = await sockets.connect(bob.token)
    bob_laptop = await sockets.connect(bob.token)
    carol_socket = await sockets.connect(carol.token)

    ack = await alice_phone.call("typing", {"conversation_id": cid, "typing": True})
    assert ack == {"ok": True, "throttled": False}
    expected = {"conversation_id": cid, "user_id": alice.id, "typing": True}
    for sock in (bob_phone, bob_laptop, carol_socket):
        assert await sock.wait_for("typing") == expected
    # Control in the same order: bob types; alice's devices get exactly that, never their own.
    assert (await bob_phone.call("typing", {"conversation_id": cid, "typing": True}))["ok"] is True
    for sock in (alice_phone, alice_laptop):
        assert await sock.wait_for("typing") == {"conversation_id": cid, "user_id": bob.id, "typing": True}
        assert sock.events("typing") == [{"conversation_id": cid, "user_id": bob.id, "typing": True}]
    assert bob_laptop.events("typing") == [expected]
    # Not stored.
    status, body = await api.request("GET", f"/api/conversations/{cid}/messages", token=alice.token)
    assert status == 200 and body["messages"] == []
    assert (await listed(api, alice, cid))["last_seq"] == 0
    assert bob_phone.events("new_message") == []


async def test_typing_is_throttled_per_socket(server: RunningServer, api: Api, sockets: SocketFactory) -> None:
    """The throttle runs on the server's ManualClock: it lets go when the test moves time, never
    because the machine was slow between two calls."""
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_phone = await sockets.connect(alice.token)
    alice_laptop = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    interval_s = server.app[AURORA].settings.typing_throttle_ms / 1000

    def typing(state: bool) -> dict[str, Any]:
        return {"conversation_id": cid, "user_id": alice.id, "typing": state}

    async def flip(sock: TestSocket, state: bool) -> bool:
        ack = await sock.call("typing", {"conversation_id": cid, "typing": state})
        assert ack["ok"] is True, ack
        return ack["throttled"]

    assert await flip(alice_phone, True) is False
    # The same state again within the interval: acknowledged, throttled, not relayed.
    for _ in range(3):
        assert await flip(alice_phone, True) is True
    # Just short of the interval it still is.
    clock_of(server).advance(interval_s * 0.999)
    assert await flip(alice_phone, True) is True
    # Another socket has its own throttle.
    assert await flip(alice_laptop, True) is False
    # A change of state is never throttled (the "stopped typing" must get through).
    assert await flip(alice_phone, False) is False
    got = await bob_socket.wait_count("typing", 3)
    assert got == [typing(True), typing(True), typing(False)]
    # Once the interval has passed since the last relayed one, the same state gets through again.
    assert await flip(alice_phone, False) is True
    clock_of(server).advance(interval_s)
    assert await flip(alice_phone, False) is False
    # Control, later in the same order: a new state gets through and nothing throttled arrived before it.
    assert await flip(alice_phone, True) is False
    assert await bob_socket.wait_count("typing", 5) == [typing(True), typing(True), typing(False), typing(False),
                                                        typing(True)]


async def test_typing_without_ack_and_with_bad_payloads(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_socket = await sockets.connect(alice.token)
    bob_socket = await sockets.connect(bob.token)
    for payload in ({"typing": True}, {"conversation_id": "abc", "typing": True},
                    {"conversation_id": cid, "typing": "no"}, {"conversation_id": cid, "typing": 1},
                    "typing", None):
        ack = await alice_socket.call("typing", payload)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid", (payload, ack)
    # Without an ack callback the effect is the same.
    await alice_socket.emit("typing", {"conversation_id": cid, "typing": False})
    assert await bob_socket.wait_for("typing") == {"conversation_id": cid, "user_id": alice.id, "typing": False}
    # The refused payloads were answered before it: had any been relayed, it would have arrived first.
    assert bob_socket.events("typing") == [{"conversation_id": cid, "user_id": alice.id, "typing": False}]
