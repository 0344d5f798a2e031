"""call_signal on /calls: WebRTC offers, answers and candidates relayed unchanged to the right device.

Real python-socketio clients against the real server on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

from aurora.settings import Settings
from tests.support.clients import (
    Account,
    Api,
    SocketFactory,
    TestSocket,
    acked,
    for_call,
    invite_call,
    refused,
    round_trip,
)

SDP_LINE = "a=candidate:842163049 1 udp 1677729535 203.0.113.7 49203 typ srflx raddr 10.0.0.2 rport 49203\r\n"


def big_sdp(size: int) -> str:
    """An SDP-like string of exactly `size` characters."""
    text = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    while len(text) < size:
        text += SDP_LINE
    return text[:size]


def nested_data() -> dict[str, Any]:
    return {
        "sdp": big_sdp(60 * 1024),
        "type": "offer",
        "meta": {
            "unicode": "Grüße, 你好, Ζεύς, emoji 🎥📞👩‍💻, rtl שלום, nbsp\u00a0, quote \" backslash \\ tab\t",
            "control": "line1\nline2\r\n\u0001\u001f",
            "numbers": [0, -1, 2**53 + 1, 3.5, -0.25, 1e-7, 1.5e300],
            "flags": [True, False, None],
            "empty": {"list": [], "object": {}, "string": ""},
            "deep": {"a": {"b": {"c": {"d": [{"e": ["ünïcödé", {"f": 1}]}]}}}},
            "ключ": "значение",
        },
        "z_last_key": "order of keys is kept",
        "a_after_z": 1,
    }


async def direct_call(api: Api, sockets: SocketFactory, callee_devices: int = 1
                      ) -> tuple[Account, Account, TestSocket, list[TestSocket], dict[str, Any]]:
    """Alice calls bob (on callee_devices /calls sockets); the call is ringing."""
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    bs = [await sockets.connect(bob.token, "/calls") for _ in range(callee_devices)]
    call = await invite_call(a, direct["id"], "video")
    for b in bs:
        await b.wait_for("call_incoming", lambda d: d["call"]["id"] == call["id"])
    return alice, bob, a, bs, call


def signal(call: dict[str, Any], to: Account, kind: str, data: Any) -> dict[str, Any]:
    return {"call_id": call["id"], "to_user_id": to.id, "type": kind, "data": data}


def same_bytes(received: Any, sent: Any) -> bool:
    """Equal as JSON text, key order included (what a relay that changes nothing delivers)."""
    return json.dumps(received, ensure_ascii=False) == json.dumps(sent, ensure_ascii=False)


async def test_offer_while_ringing_reaches_every_callee_device_then_only_the_accepting_one(
        api: Api, sockets: SocketFactory) -> None:
    alice, bob, a, (phone, laptop), call = await direct_call(api, sockets, callee_devices=2)

    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
    ack = await acked(a, "call_signal", signal(call, bob, "offer", offer))
    assert ack["delivered_to"] == 2
    for device in (phone, laptop):
        got = await device.wait_for("call_signal", for_call(call["id"]))
        assert got == {"call_id": call["id"], "from_user_id": alice.id, "type": "offer", "data": offer}
    # A ringing callee is not in the call yet: it cannot signal back before accepting.
    await refused(phone, "call_signal", signal(call, alice, "answer", {"sdp": "x"}), "conflict")

    await acked(laptop, "call_accept", {"call_id": call["id"]})
    answer = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}
    assert (await acked(laptop, "call_signal", signal(call, alice, "answer", answer)))["delivered_to"] == 1
    got = await a.wait_for("call_signal", for_call(call["id"]))
    assert got == {"call_id": call["id"], "from_user_id": bob.id, "type": "answer", "data": answer}

    # From now on alice's signals go to the laptop only, in the order she sent them.
    candidates = [{"candidate": f"candidate:{i} 1 udp 2122260223 192.0.2.{i} 5000{i} typ host",
                   "sdpMid": "0", "sdpMLineIndex": 0} for i in range(5)]
    for candidate in candidates:
        assert (await acked(a, "call_signal", signal(call, bob, "candidate", candidate)))["delivered_to"] == 1
    relayed = await laptop.wait_count("call_signal", 6)
    assert [r["data"] for r in relayed[1:]] == candidates
    assert all(r["type"] == "candidate" and r["from_user_id"] == alice.id for r in relayed[1:])
    await round_trip(phone)
    assert len(phone.events("call_signal")) == 1  # only the offer it got while ringing
    # Bob's phone is not his device in the call (it was answered elsewhere): it cannot signal.
    await refused(phone, "call_signal", signal(call, alice, "candidate", candidates[0]), "conflict")
    # Candidates flow the other way too.
    mine = {"candidate": "candidate:9 1 udp 1 198.51.100.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    await acked(laptop, "call_signal", signal(call, alice, "candidate", mine))
    assert (await a.wait_count("call_signal", 2))[1]["data"] == mine


async def test_signal_data_arrives_byte_for_byte(api: Api, sockets: SocketFactory) -> None:
    alice, bob, a, (b,), call = await direct_call(api, sockets)
    await acked(b, "call_accept", {"call_id": call["id"]})

    offer = nested_data()
    assert len(offer["sdp"]) == 60 * 1024
    await acked(a, "call_signal", signal(call, bob, "offer", offer))
    got = await b.wait_for("call_signal", for_call(call["id"]))
    assert got["type"] == "offer" and got["from_user_id"] == alice.id and got["call_id"] == call["id"]
    assert got["data"] == offer and same_bytes(got["data"], offer)
    assert list(got["data"]) == list(offer) and list(got["data"]["meta"]) == list(offer["meta"])

    answer = nested_data()
    answer["type"] = "answer"
    answer["sdp"] = big_sdp(59 * 1024) + "a=ünïcödé-läst-line 🎧\r\n"
    await acked(b, "call_signal", signal(call, alice, "answer", answer))
    got = await a.wait_for("call_signal", for_call(call["id"]))
    assert got["type"] == "answer" and got["from_user_id"] == bob.id
    assert same_bytes(got["data"], answer)

    # data needs not be an object: a bare string or a list is relayed unchanged as well.
    for candidate in ("candidate:1 1 UDP 2122252543 192.0.2.1 54400 typ host", ["ü", 1, None, {"k": []}]):
        await acked(a, "call_signal", signal(call, bob, "candidate", candidate))
    relayed = await b.wait_count("call_signal", 3)
    assert same_bytes(relayed[1]["data"], "candidate:1 1 UDP 2122252543 192.0.2.1 54400 typ host")
    assert same_bytes(relayed[2]["data"], ["ü", 1, None, {"k": []}])


async def test_signal_size_limit(api: Api, sockets: SocketFactory, settings: Settings) -> None:
    _alice, bob, a, (b,), call = await direct_call(api, sockets)
    await acked(b, "call_accept", {"call_id": call["id"]})
    limit = settings.signal_max_bytes
    assert limit == 64 * 1024  # the default

    # A JSON string of n ASCII characters is n + 2 bytes: exactly at the limit passes, one byte more is refused.
    at_limit = "x" * (limit - 2)
    await acked(a, "call_signal", signal(call, bob, "offer", at_limit))
    assert (await b.wait_for("call_signal", for_call(call["id"])))["data"] == at_limit
    error = await refused(a, "call_signal", signal(call, bob, "offer", at_limit + "x"), "too_large")
    assert str(limit) in error["message"]
    await refused(a, "call_signal", signal(call, bob, "offer", {"sdp": big_sdp(70 * 1024)}), "too_large")
    # The limit counts UTF-8 bytes: 30 000 "é" are 60 000 bytes and pass (as \\u00e9 escapes they would not).
    accented = {"sdp": "é" * 30_000}
    await acked(a, "call_signal", signal(call, bob, "offer", accented))
    # ...and 33 000 are 66 000 bytes, over the limit.
    await refused(a, "call_signal", signal(call, bob, "offer", {"sdp": "é" * 33_000}), "too_large")
    relayed = await b.wait_count("call_signal", 2)
    assert relayed[1]["data"] == accented
    await round_trip(b)
    assert len(b.events("call_signal")) == 2  # nothing too large was relayed


async def test_signal_refusals(api: Api, sockets: SocketFactory) -> None:
    alice, bob, a, (b,), call = await direct_call(api, sockets)
    stranger = await api.register()
    await acked(b, "call_accept", {"call_id": call["id"]})
    data = {"sdp": "v=0"}

    # To someone who is not in the call (not even in the conversation), to oneself, to nobody.
    await refused(a, "call_signal", signal(call, stranger, "offer", data), "not_found")
    await refused(a, "call_signal", signal(call, alice, "offer", data), "not_found")
    await refused(a, "call_signal", {**signal(call, bob, "offer", data), "to_user_id": 10**9}, "not_found")
    # A bad type, missing fields, bad ids, an unknown call, a payload that is not an object.
    for kind in ("bye", "OFFER", "", None, 1):
        await refused(a, "call_signal", signal(call, bob, "offer", data) | {"type": kind}, "invalid")
    await refused(a, "call_signal", {"call_id": call["id"], "type": "offer", "data": data}, "invalid")
    await refused(a, "call_signal", {"to_user_id": bob.id, "type": "offer", "data": data}, "invalid")
    await refused(a, "call_signal", signal(call, bob, "offer", data) | {"call_id": "abc"}, "invalid")
    await refused(a, "call_signal", signal(call, bob, "offer", data) | {"to_user_id": -3}, "invalid")
    await refused(a, "call_signal", signal(call, bob, "offer", data) | {"call_id": 10**9}, "not_found")
    await refused(a, "call_signal", "offer", "invalid")
    await refused(a, "call_signal", None, "invalid")
    await round_trip(b)
    assert b.events("call_signal") == []  # nothing refused was relayed

    # Once the call is over nobody may signal in it.
    await acked(a, "call_hangup", {"call_id": call["id"]})
    await refused(a, "call_signal", signal(call, bob, "offer", data), "conflict")
    await refused(b, "call_signal", signal(call, alice, "answer", data), "conflict")


async def test_group_signal_goes_to_the_target_only(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol, dave = [await api.register() for _ in range(4)]
    group = await api.conversation(alice, [bob, carol, dave])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    d = await sockets.connect(dave.token, "/calls")
    call = await invite_call(a, group["id"])
    await acked(b, "call_accept", {"call_id": call["id"]})
    await acked(c, "call_accept", {"call_id": call["id"]})
    await acked(d, "call_reject", {"call_id": call["id"]})  # dave drops out; the call goes on

    offer = {"type": "offer", "sdp": "v=0 for carol"}
    await acked(b, "call_signal", signal(call, carol, "offer", offer))
    got = await c.wait_for("call_signal", for_call(call["id"]))
    assert got["from_user_id"] == bob.id and got["data"] == offer
    await round_trip(a)
    await round_trip(d)
    assert a.events("call_signal") == [] and d.events("call_signal") == []
    # Dave is in the conversation but no longer in the call: he can neither signal nor be signalled.
    await refused(d, "call_signal", signal(call, alice, "offer", offer), "conflict")
    await refused(a, "call_signal", signal(call, dave, "offer", offer), "not_found")
