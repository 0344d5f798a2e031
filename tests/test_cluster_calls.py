"""Calls across two real Aurora processes: ringing, accept-elsewhere, signal relay, and timers
(ring timeout, disconnect grace) that fire exactly once, also when a process dies.

The processes run with test_clock: their timers move only when the test moves their clocks
(POST /api/test/clock), and each move answers once the timers it woke have run. So "it fired once"
is checked after every timer that could fire again has run, not after a sleep of hoped-for length.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.clients import Account, TestSocket, round_trip
from tests.support.cluster import Node, advance_all, move_clock

RING_S = GRACE_S = 30.0  # of the processes' clocks, which stand still unless the test moves them


@pytest.fixture
def cluster_settings() -> dict[str, str]:
    return {"test_clock": "true", "ring_timeout_s": str(RING_S), "call_grace_s": str(GRACE_S)}


async def _pair(cluster: list[Node]) -> tuple[Account, Account, dict[str, Any]]:
    one, _ = cluster
    alice = await one.api.register()
    bob = await one.api.register()
    return alice, bob, await one.api.conversation(alice, [bob])


async def _summaries(node: Node, account: Account, conversation_id: int) -> list[dict[str, Any]]:
    status, page = await node.api.request("GET", f"/api/conversations/{conversation_id}/messages",
                                          token=account.token)
    assert status == 200
    return [m for m in page["messages"] if m["kind"] == "call"]


async def _run_out(nodes: list[Node], seconds: float) -> None:
    """Time passes on every live process (their clocks started within moments of each other, so a
    deadline one of them wrote is due on the others too once the skew is covered); then, as long
    again, for a second, wrong firing by another timer or a sweep to have its chance and run."""
    await advance_all(nodes, seconds + 5)
    await advance_all(nodes, 2 * seconds)


async def test_ringing_accept_elsewhere_and_signals_cross_processes(cluster: list[Node]) -> None:
    one, two = cluster
    alice, bob, conversation = await _pair(cluster)
    alice_device = await one.sockets.connect(alice.token, "/calls")
    bob_phone = await two.sockets.connect(bob.token, "/calls")
    bob_laptop = await one.sockets.connect(bob.token, "/calls")

    invite = await alice_device.call("call_invite", {"conversation_id": conversation["id"], "media": "video"})
    assert invite["ok"], invite
    call_id = invite["call"]["id"]
    for device in (bob_phone, bob_laptop):
        incoming = await device.wait_for("call_incoming")
        assert incoming["call"]["id"] == call_id and incoming["from_user"]["id"] == alice.id

    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", "ü": [1, 2.5, None]}
    sent = await alice_device.call("call_signal", {"call_id": call_id, "to_user_id": bob.id,
                                                   "type": "offer", "data": offer})
    assert sent["ok"] and sent["delivered_to"] == 2, sent  # both ringing devices, on both processes
    assert (await bob_phone.wait_for("call_signal"))["data"] == offer

    accepted = await bob_phone.call("call_accept", {"call_id": call_id})
    assert accepted["ok"] and accepted["call"]["state"] == "active", accepted
    assert (await alice_device.wait_for("call_accepted"))["user_id"] == bob.id
    elsewhere = await bob_laptop.wait_for("call_ended")
    assert elsewhere["reason"] == "answered_elsewhere"

    answer = {"type": "answer", "sdp": "v=0\r\n" + "a=x\r\n" * 100}
    replied = await bob_phone.call("call_signal", {"call_id": call_id, "to_user_id": alice.id,
                                                   "type": "answer", "data": answer})
    assert replied["ok"] and replied["delivered_to"] == 1, replied
    assert (await alice_device.wait_for("call_signal"))["data"] == answer

    assert (await alice_device.call("call_hangup", {"call_id": call_id}))["ok"]
    assert (await bob_phone.wait_for("call_ended", lambda e: e["reason"] == "hangup"))["call_id"] == call_id


async def test_ring_timeout_fires_once_even_when_the_ringing_process_dies(cluster: list[Node]) -> None:
    one, two = cluster
    alice, bob, conversation = await _pair(cluster)
    alice_device = await one.sockets.connect(alice.token, "/calls")
    bob_device = await two.sockets.connect(bob.token, "/calls")
    bob_chat = await two.sockets.connect(bob.token)

    invite = await alice_device.call("call_invite", {"conversation_id": conversation["id"], "media": "audio"})
    assert invite["ok"], invite
    await bob_device.wait_for("call_incoming")
    one.process.kill()  # the process holding the ring timer is gone; another must end the call

    await _run_out([two], RING_S)  # process two's sweep finds the ring overdue
    missed = await bob_device.wait_for("call_ended")
    assert missed["reason"] == "missed" and missed["call_id"] == invite["call"]["id"]
    summary = await bob_chat.wait_for("new_message", lambda m: m["kind"] == "call")
    assert summary["body"] == "Missed audio call"
    await round_trip(bob_device)  # everything process two emitted to it has arrived
    assert len(bob_device.events("call_ended")) == 1
    assert len(await _summaries(two, bob, conversation["id"])) == 1


async def test_disconnect_grace_ends_the_call_once(cluster: list[Node]) -> None:
    one, two = cluster
    alice, bob, conversation = await _pair(cluster)
    alice_device = await one.sockets.connect(alice.token, "/calls")
    bob_device = await two.sockets.connect(bob.token, "/calls")
    call_id = await _active_call(alice_device, bob_device, conversation["id"])

    await bob_device.disconnect()  # and never comes back
    await move_clock(two, wait_for="grace")
    await _run_out(cluster, GRACE_S)
    ended = await alice_device.wait_for("call_ended")
    assert ended == {"call_id": call_id, "reason": "disconnected", "call": ended["call"]}
    # Every timer that could end it again has run: a second end would have stored a second summary.
    summaries = await _summaries(one, alice, conversation["id"])
    await round_trip(alice_device)
    assert len(alice_device.events("call_ended")) == 1
    assert len(summaries) == 1 and summaries[0]["call"]["end_reason"] == "disconnected"


async def test_rejoin_on_the_other_process_within_grace(cluster: list[Node]) -> None:
    one, two = cluster
    alice, bob, conversation = await _pair(cluster)
    alice_device = await one.sockets.connect(alice.token, "/calls")
    bob_device = await two.sockets.connect(bob.token, "/calls")
    call_id = await _active_call(alice_device, bob_device, conversation["id"])

    await bob_device.disconnect()
    await move_clock(two, wait_for="grace")  # process two lost bob's device: his grace timer runs there
    bob_again = await one.sockets.connect(bob.token, "/calls")  # reconnects through the other process
    rejoined = await bob_again.call("call_rejoin", {"call_id": call_id})
    assert rejoined["ok"] and rejoined["call"]["state"] == "active", rejoined
    assert await alice_device.wait_for("call_rejoined") == {"call_id": call_id, "user_id": bob.id}
    await _run_out(cluster, GRACE_S)  # process two's timer fired and found him back; so did every sweep
    status, page = await one.api.request("GET", f"/api/calls?conversation_id={conversation['id']}",
                                         token=alice.token)
    assert status == 200 and [c["state"] for c in page["calls"]] == ["active"], page
    await round_trip(alice_device)
    assert alice_device.events("call_ended") == []
    relayed = await alice_device.call("call_signal", {"call_id": call_id, "to_user_id": bob.id,
                                                      "type": "offer", "data": {"renegotiate": True}})
    assert relayed["ok"] and relayed["delivered_to"] == 1
    assert (await bob_again.wait_for("call_signal"))["data"] == {"renegotiate": True}


async def test_call_on_a_killed_process_ends_once_after_grace(cluster: list[Node]) -> None:
    one, two = cluster
    alice, bob, conversation = await _pair(cluster)
    alice_device = await one.sockets.connect(alice.token, "/calls")
    bob_device = await two.sockets.connect(bob.token, "/calls")
    call_id = await _active_call(alice_device, bob_device, conversation["id"])

    two.process.kill()  # bob's device vanishes without a disconnect; the heartbeat reaper notices
    await move_clock(one, wait_for="grace", within_s=30)  # reaped (real heartbeats): bob's grace starts
    await _run_out([one], GRACE_S)
    ended = await alice_device.wait_for("call_ended")
    assert ended["call_id"] == call_id and ended["reason"] == "disconnected"
    await round_trip(alice_device)
    assert len(alice_device.events("call_ended")) == 1
    assert len(await _summaries(one, alice, conversation["id"])) == 1


async def _active_call(caller: TestSocket, callee: TestSocket, conversation_id: int) -> int:
    invite = await caller.call("call_invite", {"conversation_id": conversation_id, "media": "video"})
    assert invite["ok"], invite
    await callee.wait_for("call_incoming")
    accepted = await callee.call("call_accept", {"call_id": invite["call"]["id"]})
    assert accepted["ok"], accepted
    await caller.wait_for("call_accepted")
    return invite["call"]["id"]
