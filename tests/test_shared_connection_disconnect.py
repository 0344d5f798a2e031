"""One Engine.IO connection carrying both /chat and /calls (what a browser's single socket.io Manager
does): when it goes away, each namespace's disconnect still cleans up after its socket.

The Engine.IO session (where python-socketio keeps user sessions) can be gone by the time the second
namespace's disconnect handler runs; the handlers must not depend on it.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import socketio
from aurora_client import AuroraClient

from aurora.context import AURORA
from aurora.realtime.rooms import CALLS_NAMESPACE, CHAT_NAMESPACE
from tests.conftest import QUICK_GRACE_S, RunningServer, advance, clock_of, make_settings, start_server
from tests.support.clients import Account, Api, SocketFactory, TestSocket, acked, for_call, invite_call, round_trip


async def shared_connection(url: str, account: Account) -> tuple[socketio.AsyncClient, TestSocket, TestSocket]:
    client = socketio.AsyncClient(reconnection=False)
    chat, calls = TestSocket(client, "/chat"), TestSocket(client, "/calls")
    client.on("*", chat._record, namespace="/chat")
    client.on("*", calls._record, namespace="/calls")
    await client.connect(url, namespaces=["/chat", "/calls"], transports=["websocket"],
                         auth={"token": account.token}, wait_timeout=10)
    return client, chat, calls


@dataclass
class SharedCall:
    """bob on one connection for /chat and /calls, in an accepted call with alice."""
    alice: Account
    bob: Account
    direct: dict[str, Any]
    call: dict[str, Any]
    a_chat: TestSocket
    a_calls: TestSocket
    client: socketio.AsyncClient
    b_chat: TestSocket
    b_calls: TestSocket


@pytest.fixture
async def shared_call(quick_api: Api, quick_sockets: SocketFactory) -> AsyncIterator[SharedCall]:
    api, sockets = quick_api, quick_sockets
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    a_calls = await sockets.connect(alice.token, "/calls")
    a_chat = await sockets.connect(alice.token, "/chat")
    client, b_chat, b_calls = await shared_connection(sockets.base_url, bob)
    try:
        await a_chat.wait_for("presence", lambda p: p["user_id"] == bob.id and p["online"])
        call = await invite_call(a_calls, direct["id"], "video")
        await b_calls.wait_for("call_incoming", lambda d: d["call"]["id"] == call["id"])
        await acked(b_calls, "call_accept", {"call_id": call["id"]})
        yield SharedCall(alice, bob, direct, call, a_chat, a_calls, client, b_chat, b_calls)
    finally:
        await client.disconnect()


async def gone_from_both(quick: RunningServer, shared: SharedCall) -> None:
    """/chat: bob's last socket is gone, so alice hears him go offline. /calls: bob's device in the call
    was lost (its grace timer is armed); once it runs out the call ends."""
    await shared.a_chat.wait_for("presence", lambda p: p["user_id"] == shared.bob.id and not p["online"])
    await clock_of(quick).wait_for_timer("grace")
    await advance(quick, QUICK_GRACE_S)
    ended = await shared.a_calls.wait_for("call_ended", for_call(shared.call["id"]))
    assert ended["reason"] == "disconnected"


async def test_dropping_a_connection_shared_by_chat_and_calls_cleans_up_both(
        quick: RunningServer, quick_api: Api, shared_call: SharedCall) -> None:
    await round_trip(shared_call.b_chat)
    await shared_call.client.disconnect()
    await gone_from_both(quick, shared_call)
    # And the registry forgot both sockets: bob is offline and has no /calls device anywhere.
    status, body = await quick_api.request("GET", f"/api/conversations/{shared_call.direct['id']}",
                                           token=shared_call.alice.token)
    assert status == 200
    [member] = [m for m in body["conversation"]["members"] if m["id"] == shared_call.bob.id]
    assert member["online"] is False


async def test_the_server_closing_a_shared_connection_cleans_up_both(
        quick: RunningServer, quick_api: Api, shared_call: SharedCall) -> None:
    """Logout closes /chat, then /calls; on the last DISCONNECT the client closes the whole connection
    at once, so the server's own disconnect handler runs after the Engine.IO session is gone."""
    status, _ = await quick_api.request("POST", "/api/auth/logout", token=shared_call.bob.token)
    assert status in (200, 204)
    assert (await shared_call.b_chat.wait_for("closing"))["code"] == "auth_invalid"
    assert (await shared_call.b_calls.wait_for("closing"))["code"] == "auth_invalid"
    await gone_from_both(quick, shared_call)


async def test_a_shared_connection_closing_as_the_server_stops_is_still_forgotten_by_both_namespaces(
        tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Bob's SDK client (/chat and /calls on one connection) sends, closes, and the server shuts down
    at once. Shutdown closes every Engine.IO session and forgets them while /chat's disconnect handler
    is still writing presence, so the session is gone when /calls' handler runs: it raised KeyError
    'Session not found' and left bob's /calls socket registered (and a call device without grace)."""
    server = await start_server(make_settings(tmp_path, sqlite_url))
    api = Api(server.url)
    stopped = False
    try:
        alice, bob = await api.register(), await api.register()
        direct = await api.conversation(alice, [bob])
        bob_client = AuroraClient(server.url, bob.token)
        await bob_client.connect()
        await bob_client.send(direct["id"], "bye")
        registry = server.app[AURORA].registry
        assert len(await registry.sids_of_user(CALLS_NAMESPACE, bob.id)) == 1
        gc.collect()  # garbage of earlier tests (an unclosed aiohttp session) is not logged in the window below
        with caplog.at_level(logging.ERROR):
            await bob_client.close()
            await server.stop()
            stopped = True
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert await registry.sids_of_user(CHAT_NAMESPACE, bob.id) == []
        assert await registry.sids_of_user(CALLS_NAMESPACE, bob.id) == []
    finally:
        await api.close()
        if not stopped:
            await server.stop()
