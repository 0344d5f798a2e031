"""The Python SDK (clients/python, aurora_client) against the real server: catch-up, sends, events,
automatic `delivered`, gap detection, resync, typed errors, receipts/typing/presence, calls."""

from __future__ import annotations

import asyncio

import pytest
from aurora_client import AuroraClient, AuroraError

from aurora.context import AURORA
from tests.support.clients import Api
from tests.support.sdk import Recorder, SdkFactory, eventually, rest_history, state_of


async def test_connect_catches_up_and_send_reaches_the_other_client_once(api: Api, sdk: SdkFactory) -> None:
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    cid = conversation["id"]
    for i in range(7):
        await api.send(alice, cid, f"before {i}")
    # A small sync page: catching up takes several rounds (has_more) before connect() returns.
    a = await sdk.connected(alice, sync_limit=3)
    assert [m["body"] for m in a.messages(cid)] == [f"before {i}" for i in range(7)]
    assert a.state == {"state": "connected", "reason": "caught_up"}
    b = sdk.client(bob)
    seen: list[int] = []
    b.on("message", lambda m: seen.append(m["seq"]))
    recorder = Recorder(b)
    await asyncio.wait_for(b.connect(), 30)

    sent = await a.send(cid, "  hello  ")
    assert sent["seq"] == 8 and sent["body"] == "hello" and sent["sender_id"] == alice.id
    await eventually(lambda: len(seen) == 8, what="bob got every message")
    assert seen == list(range(1, 9))  # once each, in seq order
    await eventually(lambda: len(recorder.new_message_ids(cid)) == 8, what="the iterator saw them too")
    assert len(set(recorder.new_message_ids(cid))) == 8
    history = await rest_history(api, alice, cid)
    assert state_of(a.messages(cid)) == state_of(history) == state_of(b.messages(cid))
    assert a.pending() == []
    # b's store holds them, so b told the server: delivered moves without b doing anything.
    async def delivered() -> bool:
        _, body = await api.request("GET", "/api/conversations", token=bob.token)
        return next(c for c in body["conversations"] if c["id"] == cid)["delivered_seq"] == 8
    await eventually(delivered, what="delivered_seq reached 8")
    assert b.conversation(cid)["unread_count"] == 8


async def test_a_live_gap_is_detected_and_filled(api: Api, sdk: SdkFactory) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    dropped: list[int] = []

    def lose_seq_2(namespace: str, event: str, data: object) -> bool:
        if event == "new_message" and isinstance(data, dict) and data["seq"] == 2 and not dropped:
            dropped.append(data["seq"])
            return True  # as if the network lost this one event
        return False

    b = await sdk.connected(bob, drop_incoming=lose_seq_2)
    recorder = Recorder(b)
    a = await sdk.connected(alice)
    for i in range(1, 4):
        await a.send(cid, f"m{i}")
    await eventually(lambda: [m["seq"] for m in b.messages(cid)] == [1, 2, 3], what="the gap was filled")
    assert dropped == [2]
    await eventually(lambda: len(recorder.new_message_ids(cid)) == 3)
    assert [m["seq"] for m in recorder.named("message")] == [1, 2, 3]  # in order, once each
    assert state_of(b.messages(cid)) == state_of(await rest_history(api, bob, cid))


async def test_resync_from_the_server_makes_the_client_sync(api: Api, sdk: SdkFactory, server) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    b = await sdk.connected(bob, drop_incoming=lambda ns, event, data: event == "new_message")
    await api.send(alice, cid, "lost live")  # never reaches b live, and nothing follows it
    await server.app[AURORA].sio.emit("resync", {"reason": "test"}, namespace="/chat")
    await eventually(lambda: [m["body"] for m in b.messages(cid)] == ["lost live"], what="resync fetched it")


async def test_refused_sends_raise_typed_errors_and_leave_the_outbox(api: Api, sdk: SdkFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    not_mine = (await api.conversation(bob, [carol]))["id"]
    cid = (await api.conversation(alice, [bob]))["id"]
    a = await sdk.connected(alice)
    failed: list[dict] = []
    a.on("send_failed", failed.append)
    with pytest.raises(AuroraError) as missing:
        await a.send(not_mine, "hi")
    assert missing.value.code == "not_found"
    with pytest.raises(AuroraError) as large:
        await a.send(cid, "x" * 5000)
    assert large.value.code == "too_large"
    with pytest.raises(AuroraError) as empty:
        await a.send(cid, "   ")
    assert empty.value.code == "invalid"
    assert a.pending() == []
    assert [(f["pending"]["body"][:3], f["error"].code) for f in failed] == [
        ("hi", "not_found"), ("xxx", "too_large"), ("   ", "invalid")]
    assert await rest_history(api, alice, cid) == []
    # The next send in the same conversation is not held up by the refused ones.
    assert (await a.send(cid, "ok"))["seq"] == 1


async def test_a_refused_token_raises_auth_errors(api: Api, server) -> None:
    client = AuroraClient(server.url, "not-a-token")
    try:
        with pytest.raises(AuroraError) as refused:
            await client.connect()
        assert refused.value.code == "auth_invalid"
    finally:
        await client.close()


async def test_receipts_typing_presence_and_conversations_created_live(api: Api, sdk: SdkFactory) -> None:
    alice, bob = await api.register(), await api.register()
    a = await sdk.connected(alice)
    recorder = Recorder(a)
    b = await sdk.connected(bob)
    conversation = await b.create_conversation([alice.id])
    cid = conversation["id"]
    await eventually(lambda: a.conversation(cid) is not None, what="alice learned of the new conversation")
    assert {m["id"] for m in a.conversation(cid)["members"]} == {alice.id, bob.id}
    await eventually(lambda: (a.presence(bob.id) or {}).get("online") is True, what="bob is online for alice")

    sent = await a.send(cid, "read me")
    await eventually(lambda: b.messages(cid), what="bob has it")
    assert b.conversation(cid)["unread_count"] == 1
    await b.mark_read(cid, sent["seq"])
    assert b.conversation(cid)["unread_count"] == 0 and b.conversation(cid)["read_seq"] == sent["seq"]
    await eventually(lambda: any(r["user_id"] == bob.id and r["read_seq"] == sent["seq"]
                                 for r in recorder.named("receipt")), what="alice saw bob's read receipt")
    await b.typing(cid, True)
    await eventually(lambda: any(t["user_id"] == bob.id and t["typing"] for t in recorder.named("typing")),
                     what="alice saw bob typing")
    users = await a.search_users(bob.username[:6])
    assert bob.id in [u["id"] for u in users]
    page = await a.history(cid)
    assert [m["body"] for m in page["messages"]] == ["read me"]
    await b.close()
    await eventually(lambda: (a.presence(bob.id) or {}).get("online") is False, what="bob went offline")


async def test_call_signaling_for_bots(api: Api, sdk: SdkFactory) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    a = await sdk.connected(alice)
    b = await sdk.connected(bob)
    incoming: asyncio.Queue[dict] = asyncio.Queue()
    b.calls.on("incoming", incoming.put_nowait)
    accepted: asyncio.Queue[dict] = asyncio.Queue()
    a.calls.on("accepted", accepted.put_nowait)
    signals: asyncio.Queue[dict] = asyncio.Queue()
    b.calls.on("signal", signals.put_nowait)
    ended: asyncio.Queue[dict] = asyncio.Queue()
    b.calls.on("ended", ended.put_nowait)

    call = await a.calls.invite(cid, "audio")
    ring = await asyncio.wait_for(incoming.get(), 10)
    assert ring["call"]["id"] == call["id"] and ring["from_user"]["id"] == alice.id
    assert (await b.calls.accept(call["id"]))["state"] == "active"
    assert (await asyncio.wait_for(accepted.get(), 10))["user_id"] == bob.id
    assert await a.calls.signal(call["id"], bob.id, "offer", {"sdp": "v=0"}) == 1
    signal = await asyncio.wait_for(signals.get(), 10)
    assert signal["type"] == "offer" and signal["data"] == {"sdp": "v=0"} and signal["from_user_id"] == alice.id
    assert [c["id"] for c in a.calls.live()] == [call["id"]]
    await a.calls.hangup(call["id"])
    assert (await asyncio.wait_for(ended.get(), 10))["reason"] == "hangup"
    assert a.calls.live() == [] and b.calls.live() == []
    with pytest.raises(AuroraError) as over:
        await b.calls.hangup(call["id"])
    assert over.value.code == "conflict"
    # The call summary reaches both stores like any message.
    await eventually(lambda: [m["kind"] for m in b.messages(cid)] == ["call"], what="the summary arrived")


async def test_rate_limited_errors_carry_the_delay() -> None:
    error = AuroraError.from_payload({"code": "rate_limited", "message": "slow down", "retry_after_ms": 250})
    assert (error.code, error.retry_after_ms, error.retryable) == ("rate_limited", 250, True)
    rest = AuroraError.from_payload({"code": "rate_limited", "message": "slow down"}, status=429, retry_after_s="2")
    assert (rest.retry_after_ms, rest.status) == (2000, 429)
    assert AuroraError.from_payload({"code": "forbidden", "message": "no"}).retryable is False


async def test_initial_history_limits_what_a_new_store_fetches(api: Api, sdk: SdkFactory) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    for i in range(5):
        await api.send(alice, cid, f"m{i}")
    b = await sdk.connected(bob, initial_history=2)
    assert [m["body"] for m in b.messages(cid)] == ["m3", "m4"]
    assert b.cursor(cid) == 5
    older = await b.history(cid, before_seq=4)
    assert [m["body"] for m in older["messages"]] == ["m0", "m1", "m2"]
