"""A flooding socket costs the server little: refusals of a bucket it already found dry are answered
before the packet is decoded, and once it is closed for flooding the rest of its flood is not even
read (realtime/server.py, realtime/transport.py). The client here is a raw WebSocket that writes its
whole flood at once and never closes, as an attacker's script would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Api, SocketFactory, acked, messages_of
from tests.support.flood import SMALL_LIMITS, check_refusal, codes
from tests.support.metrics import scrape, value
from tests.support.raw_socket import CLOSE_OPCODE, RawSocket, event_frame

FLOOD = 1000
REFUSALS = 20


@pytest.fixture
async def server(tmp_path: Path, db_url: str) -> AsyncIterator[RunningServer]:
    running = await start_server(make_settings(tmp_path, db_url, **{
        **SMALL_LIMITS, "flood_disconnect_refusals": REFUSALS, "rate_typing_burst": 2, "rate_typing_per_s": 10}))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def api(server: RunningServer) -> AsyncIterator[Api]:
    client = Api(server.url)
    try:
        yield client
    finally:
        await client.close()


async def test_the_rest_of_a_flood_is_not_read_once_the_socket_is_closed(server: RunningServer, api: Api) -> None:
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    sock = await RawSocket.connected(server.port, alice.token)
    sock.writer.write(b"".join(event_frame("/chat", i, "send_message", {"conversation_id": conversation["id"],
                                                                         "body": f"spam {i}"}) for i in range(FLOOD)))
    acks, seen = [], []
    while True:  # the client never closes: the server must
        got = await asyncio.wait_for(sock.frame(), 10)
        if got is None:
            break
        opcode, data = got
        if opcode == CLOSE_OPCODE:
            seen.append("ws close")
        elif data.startswith(b"43/chat,"):
            acks.append(json.loads(data[data.index(b"["):])[0])
        elif data.startswith(b'42/chat,["closing"'):
            seen.append(json.loads(data[data.index(b"["):])[1]["code"])
        elif data in (b"41/chat,", b"1"):
            seen.append(data.decode())
    sock.close()
    # Told why, then the namespace and the Engine.IO session closed, in that order (and a WebSocket close
    # frame when the server was still reading the flood when it closed), then the connection.
    assert seen in (["rate_limited", "41/chat,", "1"], ["rate_limited", "41/chat,", "1", "ws close"]), seen
    counted = codes(acks)
    assert counted.get("ok", 0) <= 3 and REFUSALS <= counted["rate_limited"] < 2 * REFUSALS, counted
    # The burst was stored (a store still in progress when the socket closed has no ack to go to).
    assert len(await messages_of(api, bob, conversation["id"])) == 3
    check_refusal(next(a for a in acks if not a["ok"]))
    # The rest was never handled (a few already on their way when the line was crossed may be counted).
    samples = await scrape(api)
    assert counted["rate_limited"] <= value(samples, "aurora_rate_limited_total", event="send_message") < 2 * REFUSALS
    # Still up, and another user's sends go through.
    sockets = SocketFactory(server.url)
    try:
        bob_socket = await sockets.connect(bob.token)
        await acked(bob_socket, "send_message", {"conversation_id": conversation["id"], "body": "unaffected"})
    finally:
        await sockets.close_all()


async def test_an_early_refusal_answers_like_the_handler_path_and_lapses_with_retry_after(
        server: RunningServer, api: Api) -> None:
    """Once a bucket refused a socket, its next events for that bucket are refused before they are
    decoded; the answer is the same, and once retry_after_ms has passed the event goes through."""
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    sockets = SocketFactory(server.url)
    try:
        sock = await sockets.connect(alice.token)
        typing = {"conversation_id": conversation["id"], "typing": True}
        for _ in range(2):  # rate_typing_burst
            await acked(sock, "typing", typing)
        handler_path = await sock.call("typing", typing)
        check_refusal(handler_path)
        early = await sock.call("typing", {"not even": "valid"})  # refused before the payload is looked at
        check_refusal(early)
        assert early["error"].keys() == handler_path["error"].keys()
        assert early["error"]["message"].split(";")[0] == handler_path["error"]["message"].split(";")[0]
        assert early["error"]["retry_after_ms"] <= handler_path["error"]["retry_after_ms"]
        await asyncio.sleep(handler_path["error"]["retry_after_ms"] / 1000)
        await acked(sock, "typing", typing)  # a token is there again: not refused by the lapsed note
        # Other events are not refused by the typing bucket's note.
        await acked(sock, "send_message", {"conversation_id": conversation["id"], "body": "hi"})
    finally:
        await sockets.close_all()
