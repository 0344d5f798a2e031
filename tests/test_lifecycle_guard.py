"""No handshake is accepted without on_connect (authentication) having run, whatever order
python-socketio uses: with `always_connect` the server marks a socket connected before its
connect handler runs (as older python-socketio versions did), which a guard based on "is it
connected yet?" would mistake for a client faking a `connect` event."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from aurora.context import AURORA
from aurora.storage.database import database_proxy
from tests.conftest import RunningServer
from tests.support.clients import Api, SocketFactory


async def _unauthenticated_sids(server: RunningServer, namespace: str) -> list[str]:
    """Sockets the server counts as connected in namespace whose session has no user."""
    sio = server.app[AURORA].sio
    bad = []
    for sid, _eio_sid in list(sio.manager.get_participants(namespace, None)):
        if not sio.manager.is_connected(sid, namespace):
            continue
        session = await sio.get_session(sid, namespace=namespace)
        if "user" not in (session or {}):
            bad.append(sid)
    return bad


async def _settled(server: RunningServer, namespace: str, within: float = 5.0) -> None:
    """Every connected socket has its user (polled with a bound: on_connect may still be running)."""
    for _ in range(int(within / 0.02)):
        bad = await _unauthenticated_sids(server, namespace)
        if not bad:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"connected without authentication: {bad}")


async def _try(url: str, namespace: str, auth: object) -> tuple[socketio.AsyncClient, asyncio.Event]:
    """Handshake and wait until the server has decided (connect_error, or connect then disconnect)."""
    client = socketio.AsyncClient(reconnection=False)
    decided = asyncio.Event()
    client.on("connect_error", lambda *_: decided.set(), namespace=namespace)
    client.on("disconnect", lambda *_: decided.set(), namespace=namespace)
    try:
        await client.connect(url, namespaces=[namespace], transports=["websocket"], auth=auth, wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        decided.set()
    return client, decided


@pytest.mark.parametrize("always_connect", [False, True])
@pytest.mark.parametrize("namespace", ["/chat", "/calls"])
async def test_no_handshake_is_accepted_without_authentication(
        server: RunningServer, api: Api, sockets: SocketFactory, namespace: str, always_connect: bool) -> None:
    server.app[AURORA].sio.always_connect = always_connect
    alice = await api.register()
    good = await sockets.connect(alice.token, namespace)
    # With always_connect the client hears "connected" before on_connect has finished: wait for it.
    await _settled(server, namespace)
    for auth in (None, {"token": "forged"}, {"token": alice.token + "x"}):
        client, decided = await _try(server.url, namespace, auth)
        try:
            await asyncio.wait_for(decided.wait(), 10)
            assert namespace not in client.namespaces, (auth, "the server kept an unauthenticated socket")
        finally:
            await client.disconnect()
    await _settled(server, namespace)
    # The authenticated socket is there, with its user.
    sio = server.app[AURORA].sio
    sids = [sid for sid, _ in sio.manager.get_participants(namespace, None) if sio.manager.is_connected(sid, namespace)]
    assert len(sids) == 1
    assert (await sio.get_session(sids[0], namespace=namespace))["user"]["id"] == alice.id
    assert good.client.connected


async def test_a_calls_connect_that_fails_is_refused_at_once_with_a_code(
        server: RunningServer, api: Api, sockets: SocketFactory) -> None:
    """Like /chat: an exception while setting up a /calls socket refuses it with a coded connect_error
    at once, and leaves nothing registered (here: the users table is gone during authentication)."""
    alice = await api.register()

    def run(statement: str) -> None:
        database_proxy.execute_sql(statement)
    storage = server.app[AURORA].storage
    await storage.write(run, 'ALTER TABLE "user" RENAME TO user_away')
    try:
        refused = await sockets.connect_error(alice.token, "/calls")
    finally:
        await storage.write(run, 'ALTER TABLE user_away RENAME TO "user"')
    assert refused["data"]["code"] == "internal", refused
    assert server.app[AURORA].presence.connection_count() == 0
    sock = await sockets.connect(alice.token, "/calls")
    assert sock.client.connected
