"""Call lifecycles on /calls with two, three and four real python-socketio clients, on SQLite and PostgreSQL.

accept, reject (direct and group), hangup, a group call ending when fewer than two remain,
answered elsewhere, missed (short ring timeout), busy, glare, disconnect grace, restart.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.conftest import QUICK_GRACE_S, RunningServer, advance, clock_of, make_settings, ring_out, start_server
from tests.support.clients import (
    ISO_TIMESTAMP,
    Api,
    SocketFactory,
    acked,
    calls_of,
    check_call_json,
    for_call,
    messages_of,
    refused,
    round_trip,
    stored_call,
)
from tests.support.clients import invite_call as invite

ISO = re.compile(ISO_TIMESTAMP)




# -- accept ----------------------------------------------------------------------
async def test_invite_rings_every_device_of_every_other_member(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol], title="standup")
    a = await sockets.connect(alice.token, "/calls")
    a_chat = await sockets.connect(alice.token, "/chat")  # /chat sockets are not rung
    b1 = await sockets.connect(bob.token, "/calls")
    b2 = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")

    call = await invite(a, group["id"], "video")
    assert call["caller_id"] == alice.id and call["conversation_id"] == group["id"]
    assert call["state"] == "ringing" and call["media"] == "video"
    assert call["participants"] == [alice.id]
    assert call["answered_at"] is None and call["ended_at"] is None and call["end_reason"] is None

    for device in (b1, b2, c):
        incoming = await device.wait_for("call_incoming")
        assert incoming["call"]["id"] == call["id"]
        assert incoming["call"]["state"] == "ringing" and incoming["call"]["media"] == "video"
        check_call_json(incoming["call"])
        assert incoming["from_user"]["id"] == alice.id
        assert incoming["from_user"]["username"] == alice.username
        assert "password" not in str(incoming["from_user"]).lower()
    # Anything emitted to the caller during the invite arrived before its ack.
    assert a.events("call_incoming") == []
    await round_trip(a_chat)
    assert [e for e, _ in a_chat.received if e.startswith("call_")] == []


async def test_accept_direct_call(api: Api, sockets: SocketFactory) -> None:
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")

    call = await invite(a, direct["id"], "video")
    await b.wait_for("call_incoming", lambda d: d["call"]["id"] == call["id"])
    accepted = (await acked(b, "call_accept", {"call_id": call["id"]}))["call"]
    assert accepted["id"] == call["id"]
    assert accepted["state"] == "active"
    assert ISO.match(accepted["answered_at"]) and accepted["ended_at"] is None
    assert sorted(accepted["participants"]) == sorted([alice.id, bob.id])

    note = await a.wait_for("call_accepted", for_call(call["id"]))
    assert note["user_id"] == bob.id
    assert b.events("call_accepted") == []  # the accepter has its ack
    stored = await stored_call(api, alice, call)
    assert stored["state"] == "active" and stored["answered_at"] == accepted["answered_at"]
    assert sorted(stored["participants"]) == sorted([alice.id, bob.id])
    # Accepting again: the call is no longer ringing for bob.
    await refused(b, "call_accept", {"call_id": call["id"]}, "conflict")
    await round_trip(a)
    await round_trip(b)
    assert a.events("call_ended") == [] and b.events("call_ended") == []


async def test_group_accept_tells_the_caller_and_the_participants(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")

    call = await invite(a, group["id"])
    await acked(c, "call_accept", call["id"])  # a bare id is accepted too
    assert (await a.wait_for("call_accepted", for_call(call["id"])))["user_id"] == carol.id
    joined = (await acked(b, "call_accept", {"call_id": call["id"]}))["call"]
    assert sorted(joined["participants"]) == sorted([alice.id, bob.id, carol.id])
    assert (await c.wait_for("call_accepted", for_call(call["id"])))["user_id"] == bob.id
    assert [e["user_id"] for e in await a.wait_count("call_accepted", 2)] == [carol.id, bob.id]
    stored = await stored_call(api, bob, call)
    assert stored["state"] == "active" and len(stored["participants"]) == 3


# -- reject ----------------------------------------------------------------------
async def test_reject_direct_call_ends_it_for_everyone(api: Api, sockets: SocketFactory) -> None:
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    b1 = await sockets.connect(bob.token, "/calls")
    b2 = await sockets.connect(bob.token, "/calls")

    call = await invite(a, direct["id"])
    await b2.wait_for("call_incoming")
    ended = (await acked(b1, "call_reject", {"call_id": call["id"]}))["call"]
    assert ended["state"] == "ended" and ended["end_reason"] == "rejected"
    for device in (a, b1, b2):
        event = await device.wait_for("call_ended", for_call(call["id"]))
        assert event["reason"] == "rejected"
    stored = await stored_call(api, bob, call)
    assert stored["state"] == "ended" and stored["end_reason"] == "rejected"
    assert stored["answered_at"] is None and ISO.match(stored["ended_at"])
    # Over: nobody can accept, reject or hang it up any more.
    await refused(b2, "call_accept", {"call_id": call["id"]}, "conflict")
    await refused(b2, "call_reject", {"call_id": call["id"]}, "conflict")
    await refused(a, "call_hangup", {"call_id": call["id"]}, "conflict")


async def test_reject_in_group_drops_only_that_user(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")

    call = await invite(a, group["id"], "video")
    await acked(c, "call_accept", {"call_id": call["id"]})
    after = (await acked(b, "call_reject", {"call_id": call["id"]}))["call"]
    assert after["state"] == "active" and sorted(after["participants"]) == sorted([alice.id, carol.id])

    assert (await b.wait_for("call_ended", for_call(call["id"])))["reason"] == "rejected"
    for device in (a, c):
        left = await device.wait_for("call_left", for_call(call["id"]))
        assert left["user_id"] == bob.id
    await round_trip(a)
    await round_trip(c)
    assert a.events("call_ended") == [] and c.events("call_ended") == []
    stored = await stored_call(api, alice, call)
    assert stored["state"] == "active" and stored["end_reason"] is None
    assert sorted(stored["participants"]) == sorted([alice.id, carol.id])
    await refused(b, "call_accept", {"call_id": call["id"]}, "conflict")  # no longer ringing for bob


# -- hangup ----------------------------------------------------------------------
async def test_hangup_ends_a_direct_call(api: Api, sockets: SocketFactory) -> None:
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")

    call = await invite(a, direct["id"])
    await acked(b, "call_accept", {"call_id": call["id"]})
    ended = (await acked(b, "call_hangup", {"call_id": call["id"]}))["call"]
    assert ended["state"] == "ended" and ended["end_reason"] == "hangup"
    for device in (a, b):
        assert (await device.wait_for("call_ended", for_call(call["id"])))["reason"] == "hangup"
    stored = await stored_call(api, alice, call)
    assert stored["state"] == "ended" and stored["end_reason"] == "hangup"
    assert ISO.match(stored["answered_at"]) and ISO.match(stored["ended_at"])
    assert stored["ended_at"] >= stored["answered_at"] >= stored["created_at"]
    await refused(a, "call_hangup", {"call_id": call["id"]}, "conflict")
    # A new call in the same conversation can start once the old one is over.
    again = await invite(a, direct["id"])
    assert again["id"] != call["id"] and again["state"] == "ringing"


async def test_caller_hanging_up_while_ringing_ends_it_for_every_invitee(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")

    call = await invite(a, group["id"])
    await acked(a, "call_hangup", {"call_id": call["id"]})
    for device in (a, b, c):
        assert (await device.wait_for("call_ended", for_call(call["id"])))["reason"] == "hangup"
    stored = await stored_call(api, carol, call)
    assert stored["state"] == "ended" and stored["end_reason"] == "hangup" and stored["answered_at"] is None


async def test_group_call_ends_when_fewer_than_two_remain(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")

    call = await invite(a, group["id"], "video")
    await acked(b, "call_accept", {"call_id": call["id"]})
    await acked(c, "call_accept", {"call_id": call["id"]})

    # The caller leaves: three were in it, two remain, it goes on.
    left_call = (await acked(a, "call_hangup", {"call_id": call["id"]}))["call"]
    assert left_call["state"] == "active" and sorted(left_call["participants"]) == sorted([bob.id, carol.id])
    assert (await a.wait_for("call_ended", for_call(call["id"])))["reason"] == "hangup"
    for device in (b, c):
        left = await device.wait_for("call_left", for_call(call["id"]))
        assert left["user_id"] == alice.id
    await round_trip(b)
    assert b.events("call_ended") == []
    assert (await stored_call(api, bob, call))["state"] == "active"

    # Bob leaves: carol would be alone, so the call ends for her too.
    await acked(b, "call_hangup", {"call_id": call["id"]})
    for device in (b, c):
        assert (await device.wait_for("call_ended", for_call(call["id"])))["reason"] == "hangup"
    stored = await stored_call(api, carol, call)
    assert stored["state"] == "ended" and stored["end_reason"] == "hangup"
    await refused(c, "call_hangup", {"call_id": call["id"]}, "conflict")
    # Alice's call ended when she hung up; she is not told a second time.
    await round_trip(a)
    assert len(a.events("call_ended")) == 1


# -- answered elsewhere ------------------------------------------------------------
async def test_answered_elsewhere_the_call_goes_on_on_the_other_device(api: Api, sockets: SocketFactory) -> None:
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    phone = await sockets.connect(bob.token, "/calls")
    laptop = await sockets.connect(bob.token, "/calls")

    call = await invite(a, direct["id"], "video")
    await phone.wait_for("call_incoming")
    await laptop.wait_for("call_incoming")
    await acked(laptop, "call_accept", {"call_id": call["id"]})

    elsewhere = await phone.wait_for("call_ended", for_call(call["id"]))
    assert elsewhere["reason"] == "answered_elsewhere"
    assert (await a.wait_for("call_accepted", for_call(call["id"])))["user_id"] == bob.id
    await round_trip(laptop)
    await round_trip(a)
    assert laptop.events("call_ended") == [] and a.events("call_ended") == []
    assert (await stored_call(api, bob, call))["state"] == "active"
    # The call goes on on the laptop: alice's signal reaches it, and not the phone.
    data = {"sdp": "v=0 renegotiate", "n": 1}
    ack = await acked(a, "call_signal", {"call_id": call["id"], "to_user_id": bob.id, "type": "offer", "data": data})
    assert ack["delivered_to"] == 1
    assert (await laptop.wait_for("call_signal"))["data"] == data
    await round_trip(phone)
    assert phone.events("call_signal") == []
    # The phone is not in the call: it cannot accept it any more.
    await refused(phone, "call_accept", {"call_id": call["id"]}, "conflict")
    await acked(laptop, "call_hangup", {"call_id": call["id"]})
    assert (await a.wait_for("call_ended", for_call(call["id"])))["reason"] == "hangup"


# -- missed ----------------------------------------------------------------------
async def test_missed_when_nobody_answers(quick: RunningServer, quick_api: Api, quick_sockets: SocketFactory) -> None:
    api, sockets = quick_api, quick_sockets
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")

    call = await invite(a, group["id"], "video")
    await b.wait_for("call_incoming")
    await round_trip(a)
    assert a.events("call_ended") == []  # nothing ends while the clock stands still
    await ring_out(quick)
    for device in (a, b, c):
        assert (await device.wait_for("call_ended", for_call(call["id"])))["reason"] == "missed"
    stored = await stored_call(api, carol, call)
    assert stored["state"] == "ended" and stored["end_reason"] == "missed" and stored["answered_at"] is None
    await refused(b, "call_accept", {"call_id": call["id"]}, "conflict")


async def test_ring_timeout_in_an_active_group_call_drops_only_who_never_answered(
        quick: RunningServer, quick_api: Api, quick_sockets: SocketFactory) -> None:
    api, sockets = quick_api, quick_sockets
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")

    call = await invite(a, group["id"])
    await acked(b, "call_accept", {"call_id": call["id"]})
    await ring_out(quick)
    assert (await c.wait_for("call_ended", for_call(call["id"])))["reason"] == "missed"
    await round_trip(a)
    await round_trip(b)
    assert a.events("call_ended") == [] and b.events("call_ended") == []
    for device in (a, b):  # the participants hear who stopped ringing
        left = await device.wait_for("call_left", for_call(call["id"]))
        assert left["user_id"] == carol.id and left["reason"] == "missed"
    stored = await stored_call(api, alice, call)
    assert stored["state"] == "active" and sorted(stored["participants"]) == sorted([alice.id, bob.id])
    await refused(c, "call_accept", {"call_id": call["id"]}, "conflict")


# -- busy ------------------------------------------------------------------------
async def test_busy_invitee_ends_the_call_as_busy(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    ab = await api.conversation(alice, [bob])
    cb = await api.conversation(carol, [bob])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    first = await invite(a, ab["id"])
    await acked(b, "call_accept", {"call_id": first["id"]})

    busy = await invite(c, cb["id"], "video")  # acked with the call...
    assert busy["caller_id"] == carol.id and busy["conversation_id"] == cb["id"]
    ended = await c.wait_for("call_ended", for_call(busy["id"]))  # ...which then ends at once
    assert ended["reason"] == "busy"
    stored = await stored_call(api, carol, busy)
    assert stored["state"] == "ended" and stored["end_reason"] == "busy" and stored["answered_at"] is None
    # Bob was never rung, and his call goes on.
    await round_trip(b)
    assert [e for e in b.events("call_incoming") if e["call"]["id"] == busy["id"]] == []
    assert b.events("call_ended") == [] and a.events("call_ended") == []
    assert (await stored_call(api, alice, first))["state"] == "active"
    # The caller is free again: a new call to bob (still busy) is busy again.
    again = await invite(c, cb["id"])
    assert (await c.wait_for("call_ended", for_call(again["id"])))["reason"] == "busy"


async def test_busy_member_of_a_group_is_not_rung_the_others_are(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol, dave = [await api.register() for _ in range(4)]
    ab = await api.conversation(alice, [bob])
    group = await api.conversation(carol, [bob, dave])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    d = await sockets.connect(dave.token, "/calls")
    first = await invite(a, ab["id"])
    await acked(b, "call_accept", {"call_id": first["id"]})

    call = await invite(c, group["id"], "video")
    assert (await d.wait_for("call_incoming"))["call"]["id"] == call["id"]
    await round_trip(b)
    assert [e["call"]["id"] for e in b.events("call_incoming")] == [first["id"]]  # bob is busy: not rung
    joined = (await acked(d, "call_accept", {"call_id": call["id"]}))["call"]
    assert joined["state"] == "active" and sorted(joined["participants"]) == sorted([carol.id, dave.id])
    await refused(b, "call_accept", {"call_id": call["id"]}, "conflict")  # it never rang for bob
    await round_trip(c)
    assert c.events("call_ended") == []
    assert (await stored_call(api, alice, first))["state"] == "active"


async def test_caller_already_in_a_call_cannot_start_another(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    ab = await api.conversation(alice, [bob])
    ac = await api.conversation(alice, [carol])
    a = await sockets.connect(alice.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    await invite(a, ab["id"])
    await refused(a, "call_invite", {"conversation_id": ac["id"], "media": "audio"}, "conflict")
    await round_trip(c)
    assert c.events("call_incoming") == []
    assert await calls_of(api, carol, ac["id"]) == []


# -- glare -----------------------------------------------------------------------
async def test_glare_two_invites_crossing_make_one_call(api: Api, sockets: SocketFactory) -> None:
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")

    seen: set[int] = set()
    for media in ("audio", "video", "audio"):
        acks = await asyncio.gather(
            a.call("call_invite", {"conversation_id": direct["id"], "media": media}),
            b.call("call_invite", {"conversation_id": direct["id"], "media": media}),
        )
        assert all(ack["ok"] is True for ack in acks), acks
        call_id = acks[0]["call"]["id"]
        assert acks[1]["call"]["id"] == call_id and call_id not in seen
        seen.add(call_id)
        calls = await calls_of(api, alice, direct["id"])
        assert [c["id"] for c in calls if c["state"] != "ended"] == [call_id]  # one call, not two
        live = calls[0]
        assert live["id"] == call_id and live["state"] == "active"
        assert sorted(live["participants"]) == sorted([alice.id, bob.id])
        # Whoever created it is told the other one joined.
        caller, joiner = (a, bob) if live["caller_id"] == alice.id else (b, alice)
        assert (await caller.wait_for("call_accepted", for_call(call_id)))["user_id"] == joiner.id
        await acked(a, "call_hangup", {"call_id": call_id})
        for device in (a, b):
            assert (await device.wait_for("call_ended", for_call(call_id)))["reason"] == "hangup"
    assert len(await calls_of(api, bob, direct["id"])) == 3


# -- disconnect grace ---------------------------------------------------------------
async def test_disconnect_grace_rejoin_keeps_the_call_and_absence_ends_it(
        quick: RunningServer, quick_api: Api, quick_sockets: SocketFactory) -> None:
    api, sockets = quick_api, quick_sockets
    alice, bob, carol, dave = [await api.register() for _ in range(4)]
    ab = await api.conversation(alice, [bob])
    cd = await api.conversation(carol, [dave])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    d = await sockets.connect(dave.token, "/calls")
    kept = await invite(a, ab["id"], "video")
    await acked(b, "call_accept", {"call_id": kept["id"]})
    dropped = await invite(c, cd["id"])
    await acked(d, "call_accept", {"call_id": dropped["id"]})

    # Bob's device drops and comes back within the grace period (the clock has not moved).
    await b.disconnect()
    await clock_of(quick).wait_for_timer("grace")
    b_again = await sockets.connect(bob.token, "/calls")
    rejoined = (await acked(b_again, "call_rejoin", {"call_id": kept["id"]}))["call"]
    assert rejoined["id"] == kept["id"] and rejoined["state"] == "active"
    note = await a.wait_for("call_rejoined", for_call(kept["id"]))
    assert note["user_id"] == bob.id
    # The new device is bob's device in the call: signals reach it.
    await acked(a, "call_signal", {"call_id": kept["id"], "to_user_id": bob.id, "type": "offer",
                                   "data": {"sdp": "v=0 again"}})
    assert (await b_again.wait_for("call_signal"))["data"] == {"sdp": "v=0 again"}

    # Dave's device drops after bob's and never returns: his call ends as disconnected.
    await d.disconnect()
    await clock_of(quick).wait_for_timer("grace", 2)
    await advance(quick, QUICK_GRACE_S)  # both grace timers fire and finish; bob's device is back
    assert (await c.wait_for("call_ended", for_call(dropped["id"])))["reason"] == "disconnected"
    stored = await stored_call(api, carol, dropped)
    assert stored["state"] == "ended" and stored["end_reason"] == "disconnected"
    # Bob's grace timer fired too, and found him back: his call goes on.
    await round_trip(a)
    await round_trip(b_again)
    assert a.events("call_ended") == [] and b_again.events("call_ended") == []
    assert (await stored_call(api, alice, kept))["state"] == "active"
    # Rejoining an ended call, or one you are not in, is refused.
    d_again = await sockets.connect(dave.token, "/calls")
    await refused(d_again, "call_rejoin", {"call_id": dropped["id"]}, "conflict")
    await refused(d_again, "call_rejoin", {"call_id": kept["id"]}, "not_found")


async def test_group_member_who_does_not_return_leaves_and_the_call_goes_on(
        quick: RunningServer, quick_api: Api, quick_sockets: SocketFactory) -> None:
    api, sockets = quick_api, quick_sockets
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    call = await invite(a, group["id"])
    await acked(b, "call_accept", {"call_id": call["id"]})
    await acked(c, "call_accept", {"call_id": call["id"]})

    await c.disconnect()
    await clock_of(quick).wait_for_timer("grace")
    await advance(quick, QUICK_GRACE_S)
    for device in (a, b):
        left = await device.wait_for("call_left", for_call(call["id"]))
        assert left["user_id"] == carol.id and left["reason"] == "disconnected"
    stored = await stored_call(api, alice, call)
    assert stored["state"] == "active" and sorted(stored["participants"]) == sorted([alice.id, bob.id])
    # Then bob drops too: alice would be alone, so the call ends as disconnected.
    await b.disconnect()
    await clock_of(quick).wait_for_timer("grace")
    await advance(quick, QUICK_GRACE_S)
    assert (await a.wait_for("call_ended", for_call(call["id"])))["reason"] == "disconnected"
    assert (await stored_call(api, alice, call))["end_reason"] == "disconnected"


# -- restart ---------------------------------------------------------------------
async def test_calls_left_live_by_a_previous_process_end_as_server_restart(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    first = await start_server(settings)
    api = Api(first.url)
    sockets = SocketFactory(first.url)
    try:
        alice, bob, carol, dave = [await api.register() for _ in range(4)]
        ab = await api.conversation(alice, [bob])
        cd = await api.conversation(carol, [dave])
        a = await sockets.connect(alice.token, "/calls")
        b = await sockets.connect(bob.token, "/calls")
        c = await sockets.connect(carol.token, "/calls")
        active = await invite(a, ab["id"], "video")
        await acked(b, "call_accept", {"call_id": active["id"]})
        ringing = await invite(c, cd["id"], "audio")
    finally:
        # The process stops with the clients still connected, as a real restart would.
        await first.stop()
        await api.close()
        await sockets.close_all()

    second = await start_server(settings)
    api = Api(second.url)
    sockets = SocketFactory(second.url)
    try:
        for who, call, media in ((alice, active, "video"), (dave, ringing, "audio")):
            stored = await stored_call(api, who, call)
            assert stored["state"] == "ended" and stored["end_reason"] == "server_restart", stored
            assert ISO.match(stored["ended_at"])
            summaries = [m for m in await messages_of(api, who, call["conversation_id"]) if m["kind"] == "call"]
            assert len(summaries) == 1, summaries
            summary = summaries[0]
            assert summary["sender_id"] == call["caller_id"]
            assert summary["call"]["id"] == call["id"] and summary["call"]["media"] == media
            assert summary["call"]["end_reason"] == "server_restart"
        assert (await stored_call(api, bob, active))["answered_at"] is not None
        assert (await stored_call(api, carol, ringing))["answered_at"] is None
        # The conversations are free for new calls on the new process.
        a = await sockets.connect(alice.token, "/calls")
        b = await sockets.connect(bob.token, "/calls")
        fresh = await invite(a, ab["id"])
        assert fresh["state"] == "ringing"
        assert (await b.wait_for("call_incoming"))["call"]["id"] == fresh["id"]
    finally:
        await api.close()
        await sockets.close_all()
        await second.stop()


async def test_rejoin_from_another_device_takes_the_call_over(api: Api, sockets: SocketFactory) -> None:
    alice, bob = await api.register(), await api.register()
    pair = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    phone = await sockets.connect(bob.token, "/calls")
    laptop = await sockets.connect(bob.token, "/calls")
    call = await invite(a, pair["id"])
    await acked(phone, "call_accept", {"call_id": call["id"]})
    assert (await laptop.wait_for("call_ended", for_call(call["id"])))["reason"] == "answered_elsewhere"

    await acked(laptop, "call_rejoin", {"call_id": call["id"]})  # move the call to the laptop
    moved = await phone.wait_for("call_ended", for_call(call["id"]))
    assert moved["reason"] == "answered_elsewhere"
    assert (await a.wait_for("call_rejoined", for_call(call["id"])))["user_id"] == bob.id
    await refused(phone, "call_signal", {"call_id": call["id"], "to_user_id": alice.id, "type": "offer",
                                         "data": {}}, "conflict")
    sent = await acked(laptop, "call_signal", {"call_id": call["id"], "to_user_id": alice.id, "type": "offer",
                                               "data": {"from": "laptop"}})
    assert sent["delivered_to"] == 1
    assert (await a.wait_for("call_signal"))["data"] == {"from": "laptop"}
