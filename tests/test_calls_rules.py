"""/calls rules: outsiders are refused, bad payloads are acked {ok: false, error: {code}}, conflicts.

Real python-socketio clients against the real server on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from tests.support.clients import (
    Api,
    SocketFactory,
    TestSocket,
    acked,
    calls_of,
    for_call,
    invite_call,
    refused,
    round_trip,
    stored_call,
)

CALL_EVENTS = ("call_accept", "call_reject", "call_hangup", "call_rejoin")


def outsider_attempts(call: dict[str, Any], member_id: int) -> list[tuple[str, Any]]:
    cid = call["id"]
    return [
        ("call_invite", {"conversation_id": call["conversation_id"], "media": "audio"}),
        ("call_accept", {"call_id": cid}),
        ("call_reject", {"call_id": cid}),
        ("call_hangup", {"call_id": cid}),
        ("call_rejoin", {"call_id": cid}),
        ("call_signal", {"call_id": cid, "to_user_id": member_id, "type": "offer", "data": {"sdp": "v=0"}}),
    ]


async def assert_quiet(*devices: TestSocket, since: dict[TestSocket, int]) -> None:
    """No event reached these devices after the given counts (checked after a round trip on each)."""
    for device in devices:
        await round_trip(device)
        assert device.received[since[device]:] == [], device.received[since[device]:]


async def test_outsiders_can_neither_invite_accept_reject_hangup_signal_nor_read(
        api: Api, sockets: SocketFactory) -> None:
    alice, bob, mallory = await api.register(), await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    m = await sockets.connect(mallory.token, "/calls")

    # Before any call: mallory cannot ring them.
    await refused(m, "call_invite", {"conversation_id": direct["id"], "media": "video"}, "not_found")
    await round_trip(b)
    assert b.events("call_incoming") == []

    call = await invite_call(a, direct["id"])
    await b.wait_for("call_incoming")
    for state in ("ringing", "active"):
        seen = {a: len(a.received), b: len(b.received)}
        for event, payload in outsider_attempts(call, bob.id):
            await refused(m, event, payload, "not_found")
        await assert_quiet(a, b, since=seen)  # nothing reached the members
        stored = await stored_call(api, alice, call)
        assert stored["state"] == state and sorted(stored["participants"]) == sorted(
            [alice.id] if state == "ringing" else [alice.id, bob.id])
        if state == "ringing":
            await acked(b, "call_accept", {"call_id": call["id"]})
    await round_trip(m)
    assert m.received == []  # and mallory heard nothing of the call

    status, body = await api.request("GET", f"/api/calls?conversation_id={direct['id']}", token=mallory.token)
    assert status == 404 and body["error"]["code"] == "not_found", (status, body)


async def test_a_member_who_left_the_conversation_is_an_outsider(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    call = await invite_call(a, group["id"])
    await c.wait_for("call_incoming")

    status, _ = await api.request("DELETE", f"/api/conversations/{group['id']}/members/me", token=carol.token)
    assert status == 200
    await refused(c, "call_accept", {"call_id": call["id"]}, "not_found")
    await refused(c, "call_signal", {"call_id": call["id"], "to_user_id": alice.id, "type": "offer",
                                     "data": {}}, "not_found")
    status, body = await api.request("GET", f"/api/calls?conversation_id={group['id']}", token=carol.token)
    assert status == 404, (status, body)
    assert (await stored_call(api, bob, call))["state"] == "ringing"


async def test_members_not_in_the_call_are_refused(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    call = await invite_call(a, group["id"], "video")
    await acked(b, "call_accept", {"call_id": call["id"]})
    await acked(c, "call_reject", {"call_id": call["id"]})

    # Carol said no: she is in the conversation but not in the call.
    await refused(c, "call_accept", {"call_id": call["id"]}, "conflict")
    await refused(c, "call_reject", {"call_id": call["id"]}, "conflict")
    await refused(c, "call_hangup", {"call_id": call["id"]}, "conflict")
    await refused(c, "call_rejoin", {"call_id": call["id"]}, "conflict")
    await refused(c, "call_signal", {"call_id": call["id"], "to_user_id": alice.id, "type": "offer",
                                     "data": {"sdp": "v=0"}}, "conflict")
    await refused(c, "call_invite", {"conversation_id": group["id"], "media": "audio"}, "conflict")
    # She can still read the conversation's call history.
    assert [x["id"] for x in await calls_of(api, carol, group["id"])] == [call["id"]]
    stored = await stored_call(api, alice, call)
    assert stored["state"] == "active" and sorted(stored["participants"]) == sorted([alice.id, bob.id])


async def test_accept_reject_rejoin_conflicts(api: Api, sockets: SocketFactory) -> None:
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    call = await invite_call(a, direct["id"])

    await refused(a, "call_accept", {"call_id": call["id"]}, "conflict")  # the caller's own call
    await refused(a, "call_reject", {"call_id": call["id"]}, "conflict")
    await refused(b, "call_rejoin", {"call_id": call["id"]}, "conflict")  # ringing is not being in it
    # Inviting again into the same conversation answers the live call; nobody is rung twice.
    again = await invite_call(a, direct["id"])
    assert again["id"] == call["id"]
    await round_trip(b)
    assert len(b.events("call_incoming")) == 1

    await acked(b, "call_accept", {"call_id": call["id"]})
    await refused(b, "call_accept", {"call_id": call["id"]}, "conflict")
    await refused(b, "call_reject", {"call_id": call["id"]}, "conflict")  # active: hang up instead
    assert (await stored_call(api, alice, call))["state"] == "active"
    await acked(a, "call_hangup", {"call_id": call["id"]})
    assert (await b.wait_for("call_ended", for_call(call["id"])))["reason"] == "hangup"
    for event in CALL_EVENTS:
        await refused(b, event, {"call_id": call["id"]}, "conflict")


async def test_bad_payloads_are_acked_with_an_error_and_change_nothing(api: Api, sockets: SocketFactory) -> None:
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")

    # call_invite: conversation_id and media are checked.
    cid = direct["id"]
    for payload in ({"media": "audio"}, {"conversation_id": None, "media": "audio"},
                    {"conversation_id": "abc", "media": "audio"}, {"conversation_id": 0, "media": "audio"},
                    {"conversation_id": -1, "media": "audio"}, {"conversation_id": True, "media": "audio"},
                    {"conversation_id": 2**63, "media": "audio"},
                    {"conversation_id": cid}, {"conversation_id": cid, "media": "screen"},
                    {"conversation_id": cid, "media": "VIDEO"}, {"conversation_id": cid, "media": None},
                    {"conversation_id": cid, "media": ["audio"]},
                    None, "audio", 42, [cid, "audio"]):
        await refused(a, "call_invite", payload, "invalid")
    await refused(a, "call_invite", {"conversation_id": 10**12, "media": "audio"}, "not_found")
    await round_trip(b)
    assert b.received == []
    assert await calls_of(api, alice, cid) == []  # nothing was stored

    call = await invite_call(a, cid, "video")
    for event in CALL_EVENTS:
        for payload in ({}, {"call_id": None}, {"call_id": "abc"}, {"call_id": 0}, {"call_id": -5},
                        {"call_id": True}, {"call_id": 1.5}, {"call_id": 2**63}, {"id": call["id"]},
                        None, "abc", [call["id"]]):
            await refused(b, event, payload, "invalid")
        await refused(b, event, {"call_id": 10**12}, "not_found")  # an unknown call
    await refused(b, "call_signal", {"to_user_id": alice.id, "type": "answer", "data": {}}, "invalid")
    await refused(b, "call_signal", {"call_id": 10**12, "to_user_id": alice.id, "type": "answer", "data": {}},
                  "not_found")
    # None of it touched the call.
    stored = await stored_call(api, bob, call)
    assert stored["state"] == "ringing" and stored["participants"] == [alice.id]
    await round_trip(a)
    assert [e for e, _ in a.received] == []
    # The ids may come as numeric strings.
    accepted = (await acked(b, "call_accept", {"call_id": str(call["id"])}))["call"]
    assert accepted["state"] == "active"
