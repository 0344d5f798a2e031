"""Call history (GET /api/calls), the kind "call" summary message, and GET /api/ice-servers.

Real server, real HTTP and Socket.IO clients, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

from aurora.services.call_summary import describe
from tests.conftest import RunningServer, make_settings, ring_out, start_server
from tests.support.clients import (
    ISO_TIMESTAMP,
    Account,
    Api,
    SocketFactory,
    TestSocket,
    acked,
    calls_of,
    check_call_json,
    for_call,
    invite_call,
    messages_of,
    round_trip,
)

SUMMARY_CALL_KEYS = {"id", "media", "end_reason", "duration_s"}




async def ended_call(a: TestSocket, b: TestSocket, conversation_id: int, media: str, how: str) -> dict[str, Any]:
    """One call alice (a) -> bob (b) that ends by `how`: "rejected" or "hangup"."""
    call = await invite_call(a, conversation_id, media)
    await b.wait_for("call_incoming", lambda d: d["call"]["id"] == call["id"])
    if how == "rejected":
        await acked(b, "call_reject", {"call_id": call["id"]})
    else:
        await acked(b, "call_accept", {"call_id": call["id"]})
        await acked(b, "call_hangup", {"call_id": call["id"]})
    await a.wait_for("call_ended", for_call(call["id"]))
    return call


def summaries(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["kind"] == "call"]


def check_summary(message: dict[str, Any], call: dict[str, Any], caller: Account, end_reason: str) -> None:
    assert message["kind"] == "call"
    assert message["conversation_id"] == call["conversation_id"]
    assert message["sender_id"] == caller.id and message["sender_username"] == caller.username
    assert set(message["call"]) == SUMMARY_CALL_KEYS, message
    assert message["call"]["id"] == call["id"] and message["call"]["media"] == call["media"]
    assert message["call"]["end_reason"] == end_reason
    assert isinstance(message["call"]["duration_s"], int) and message["call"]["duration_s"] >= 0


# -- history ---------------------------------------------------------------------
async def test_history_lists_the_conversation_calls_newest_first(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    ab = await api.conversation(alice, [bob])
    ac = await api.conversation(alice, [carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")

    declined = await ended_call(a, b, ab["id"], "audio", "rejected")
    talked = await ended_call(a, b, ab["id"], "video", "hangup")
    elsewhere = await ended_call(a, c, ac["id"], "audio", "hangup")  # another conversation
    ringing = await invite_call(b, ab["id"], "audio")  # bob calls back; still ringing

    calls = await calls_of(api, bob, ab["id"])
    assert [x["id"] for x in calls] == [ringing["id"], talked["id"], declined["id"]]
    assert elsewhere["id"] not in [x["id"] for x in calls]
    for listed in calls:
        check_call_json(listed)
        assert listed["conversation_id"] == ab["id"]
    newest, middle, oldest = calls
    assert newest["state"] == "ringing" and newest["caller_id"] == bob.id and newest["media"] == "audio"
    assert newest["end_reason"] is None and newest["answered_at"] is None and newest["ended_at"] is None
    assert newest["participants"] == [bob.id]

    assert middle["state"] == "ended" and middle["end_reason"] == "hangup" and middle["media"] == "video"
    assert middle["caller_id"] == alice.id
    assert re.match(ISO_TIMESTAMP, middle["answered_at"]) and re.match(ISO_TIMESTAMP, middle["ended_at"])
    assert middle["created_at"] <= middle["answered_at"] <= middle["ended_at"]
    assert sorted(middle["participants"]) == sorted([alice.id, bob.id])  # who took part

    assert oldest["state"] == "ended" and oldest["end_reason"] == "rejected" and oldest["media"] == "audio"
    assert oldest["answered_at"] is None and re.match(ISO_TIMESTAMP, oldest["ended_at"])
    assert oldest["participants"] == [alice.id]  # bob never joined
    assert oldest["created_at"] <= middle["created_at"] <= newest["created_at"]

    # Both members read the same history; limit keeps the newest.
    assert await calls_of(api, alice, ab["id"]) == calls
    status, body = await api.request("GET", f"/api/calls?conversation_id={ab['id']}&limit=2", token=alice.token)
    assert status == 200 and [x["id"] for x in body["calls"]] == [ringing["id"], talked["id"]]
    assert [x["id"] for x in await calls_of(api, carol, ac["id"])] == [elsewhere["id"]]


async def test_history_refuses_non_members_and_bad_ids(api: Api, sockets: SocketFactory) -> None:
    alice, bob, eve = await api.register(), await api.register(), await api.register()
    ab = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, "/calls")
    await invite_call(a, ab["id"])

    status, body = await api.request("GET", f"/api/calls?conversation_id={ab['id']}", token=eve.token)
    assert status == 404 and body["error"]["code"] == "not_found", (status, body)
    status, body = await api.request("GET", "/api/calls?conversation_id=999999999", token=alice.token)
    assert status == 404 and body["error"]["code"] == "not_found", (status, body)
    for query in ("", "?conversation_id=", "?conversation_id=abc", "?conversation_id=0", "?conversation_id=-1",
                  "?conversation_id=1.5", f"?conversation_id={ab['id']}&limit=0",
                  f"?conversation_id={ab['id']}&limit=abc", f"?conversation_id={ab['id']}&limit=100000"):
        status, body = await api.request("GET", f"/api/calls{query}", token=alice.token)
        assert status == 400 and body["error"]["code"] == "invalid", (query, status, body)
    status, body = await api.request("GET", f"/api/calls?conversation_id={ab['id']}")
    assert status == 401, (status, body)
    status, body = await api.request("GET", f"/api/calls?conversation_id={ab['id']}", token="not-a-token")
    assert status == 401, (status, body)


# -- the summary message -----------------------------------------------------------
async def test_summary_message_reaches_chat_sockets_live(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    chats = [await sockets.connect(who.token, "/chat") for who in (alice, bob, carol)]
    status, _ = await api.send(alice, group["id"], "shall we talk?")
    assert status == 201

    call = await invite_call(a, group["id"], "video")
    await acked(b, "call_accept", {"call_id": call["id"]})
    await acked(b, "call_hangup", {"call_id": call["id"]})  # bob leaves: alice is alone, the call ends
    ended = await a.wait_for("call_ended", for_call(call["id"]))
    assert ended["reason"] == "hangup"

    for chat in chats:  # everyone in the conversation, carol (who never answered) included
        live = await chat.wait_for("new_message", lambda m: m["kind"] == "call")
        check_summary(live, call, alice, "hangup")  # sender the caller, though bob hung up
        seconds = live["call"]["duration_s"]
        length = f"{seconds} s" if seconds < 60 else f"{round(seconds / 60)} min"
        assert live["body"] == f"Video call, {length}"
        assert live["seq"] == 2
    stored = summaries(await messages_of(api, carol, group["id"]))
    assert stored == [chats[2].events("new_message")[-1]]  # the stored message is the one pushed live
    await round_trip(a)
    await round_trip(b)
    assert b.events("new_message") == [] and a.events("new_message") == []  # /calls sockets get no chat events


async def test_declined_and_busy_summaries(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    ab = await api.conversation(alice, [bob])
    cb = await api.conversation(carol, [bob])
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    b_chat = await sockets.connect(bob.token, "/chat")

    declined = await ended_call(a, b, ab["id"], "audio", "rejected")
    summary = await b_chat.wait_for("new_message", lambda m: m["kind"] == "call" and m["call"]["id"] == declined["id"])
    check_summary(summary, declined, alice, "rejected")
    assert summary["body"] == "Declined audio call" and summary["call"]["duration_s"] == 0

    live = await invite_call(a, ab["id"], "video")
    await acked(b, "call_accept", {"call_id": live["id"]})
    busy = await invite_call(c, cb["id"], "video")
    await c.wait_for("call_ended", for_call(busy["id"]))
    summary = await b_chat.wait_for("new_message", lambda m: m["kind"] == "call" and m["call"]["id"] == busy["id"])
    check_summary(summary, busy, carol, "busy")
    assert summary["body"].startswith("Missed video call") and summary["call"]["duration_s"] == 0
    # One summary per ended call, none for the live one.
    assert [m["call"]["id"] for m in summaries(await messages_of(api, alice, ab["id"]))] == [declined["id"]]
    assert [m["call"]["id"] for m in summaries(await messages_of(api, bob, cb["id"]))] == [busy["id"]]


async def test_missed_call_summary(quick: RunningServer) -> None:
    api, sockets = Api(quick.url), SocketFactory(quick.url)
    try:
        alice, bob = await api.register(), await api.register()
        ab = await api.conversation(alice, [bob])
        a = await sockets.connect(alice.token, "/calls")
        chats = [await sockets.connect(who.token, "/chat") for who in (alice, bob)]
        call = await invite_call(a, ab["id"], "video")
        await ring_out(quick)
        assert (await a.wait_for("call_ended", for_call(call["id"])))["reason"] == "missed"
        for chat in chats:
            summary = await chat.wait_for("new_message", lambda m: m["kind"] == "call")
            check_summary(summary, call, alice, "missed")
            assert summary["body"] == "Missed video call" and summary["call"]["duration_s"] == 0
        assert len(summaries(await messages_of(api, bob, ab["id"]))) == 1
    finally:
        await sockets.close_all()
        await api.close()


def test_summary_body_reads_well() -> None:
    def call(reason: str, media: str = "video", answered: str | None = None, ended: str = "") -> dict[str, Any]:
        return {"media": media, "end_reason": reason, "answered_at": answered,
                "ended_at": ended or "2026-01-01T10:00:00.000Z"}

    assert describe(call("missed")) == "Missed video call"
    assert describe(call("missed", "audio")) == "Missed audio call"
    assert describe(call("rejected", "audio")) == "Declined audio call"
    assert describe(call("busy")).startswith("Missed video call")
    assert describe(call("hangup", "video", "2026-01-01T10:00:00.000Z", "2026-01-01T10:00:00.400Z")) == \
        "Video call, 0 s"
    assert describe(call("hangup", "audio", "2026-01-01T10:00:00.000Z", "2026-01-01T10:00:42.000Z")) == \
        "Audio call, 42 s"
    assert describe(call("hangup", "video", "2026-01-01T10:00:00.000Z", "2026-01-01T10:03:05.000Z")) == \
        "Video call, 3 min"


# -- ICE servers -------------------------------------------------------------------
async def test_ice_servers_default_to_stun_only(api: Api) -> None:
    alice = await api.register()
    status, body = await api.request("GET", "/api/ice-servers", token=alice.token)
    assert status == 200, (status, body)
    assert body == {"ice_servers": [{"urls": ["stun:stun.l.google.com:19302"]}]}
    status, body = await api.request("GET", "/api/ice-servers")
    assert status == 401, (status, body)


async def test_ice_servers_with_turn_rest_credentials(tmp_path: Path, db_url: str) -> None:
    secret = "turn-shared-secret-ü"
    turn = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"]
    server = await start_server(make_settings(
        tmp_path, db_url, stun_urls="stun:stun.example.org:3478", turn_urls=",".join(turn), turn_secret=secret,
        turn_ttl_s=600,
    ))
    api = Api(server.url)
    try:
        alice, bob = await api.register(), await api.register()
        usernames = []
        for who in (alice, bob):
            before = time.time()
            status, body = await api.request("GET", "/api/ice-servers", token=who.token)
            after = time.time()
            assert status == 200, (status, body)
            stun, relay = body["ice_servers"]
            assert stun == {"urls": ["stun:stun.example.org:3478"]}
            assert relay["urls"] == turn and set(relay) == {"urls", "username", "credential"}
            expiry, user_id = relay["username"].split(":")
            assert user_id == str(who.id)
            assert int(before + 600) <= int(expiry) <= int(after + 600)  # valid for turn_ttl_s from now
            expected = base64.b64encode(hmac.new(secret.encode(), relay["username"].encode(), hashlib.sha1).digest())
            assert relay["credential"] == expected.decode()
            usernames.append(relay["username"])
        assert usernames[0] != usernames[1]
    finally:
        await api.close()
        await server.stop()


async def test_turn_needs_its_secret(tmp_path: Path, db_url: str) -> None:
    server = await start_server(make_settings(tmp_path, db_url, stun_urls="", turn_urls="turn:turn.example.org"))
    api = Api(server.url)
    try:
        alice = await api.register()
        status, body = await api.request("GET", "/api/ice-servers", token=alice.token)
        assert status == 200 and body == {"ice_servers": []}, (status, body)
    finally:
        await api.close()
        await server.stop()

