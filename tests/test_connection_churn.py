"""Connections that come and go leave nothing behind (issue 17's churn soak, bench/soak.py).

After connect / send / sync / disconnect cycles, on /chat alone and on /chat + /calls over one
connection, every per-socket structure is back where it was, and the closed Engine.IO sessions
themselves are freed: python-engineio's ping wait used to hold each closed session for the ping
interval (25 s; ~6.5 KiB a session, ~40 MB at 250 connections/s). The server's ping interval is set
to an hour here, so a session still held by its ping wait cannot be mistaken for one freed in time.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable
from typing import Any

import socketio

from aurora.context import AURORA
from aurora.realtime.rooms import CHAT_NAMESPACE
from aurora.realtime.server import AuroraEngineServer
from tests.conftest import RunningServer
from tests.support.clients import Account, Api

CYCLES = 12


def per_socket_sizes(server: RunningServer) -> dict[str, int]:
    """Every structure of this process that has an entry per open socket (or per user with one)."""
    aurora = server.app[AURORA]
    sio = aurora.sio
    eio = sio.eio
    assert isinstance(eio, AuroraEngineServer)
    manager: Any = sio.manager
    return {
        "engineio sockets": len(eio.sockets),
        "engineio ping waits": len(eio.ping_waits),
        "socketio environ": len(sio.environ),
        "socketio rooms": sum(len(room) for rooms in manager.rooms.values() for room in rooms.values()),
        "room index": len(manager._rooms_of),
        "ack callbacks": len(manager.callbacks),
        "registry by sid": len(aurora.registry._by_sid),
        "registry by user": len(aurora.registry._by_user),
        "auth watch": len(aurora.auth_watch._sockets),
        "journal open": len(aurora.journal.open),
        "receipt locks": len(aurora.messages._receipt_locks),
    }


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Poll a server-side state (bounded): the disconnect is handled after the client has left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.01)


async def churn(server: RunningServer, user: Account, conversation_id: int, namespaces: list[str]) -> list[Any]:
    """CYCLES connect-send-sync-disconnect cycles; weak references to the server's Engine.IO sessions."""
    eio = server.app[AURORA].sio.eio
    sessions: list[Any] = []
    for i in range(CYCLES):
        before = set(eio.sockets)
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(server.url, namespaces=namespaces, transports=["websocket"],
                             auth={"token": user.token}, wait_timeout=10)
        try:
            new = set(eio.sockets) - before
            assert len(new) == 1, new
            sessions.append(weakref.ref(eio.sockets[new.pop()]))
            ack = await client.call("send_message", {"conversation_id": conversation_id, "body": f"churn {i}",
                                                     "client_id": f"churn-{namespaces[-1]}-{i}"},
                                    namespace=CHAT_NAMESPACE, timeout=10)
            assert ack["ok"] is True, ack
            seq = ack["message"]["seq"]
            synced = await client.call("sync", {"cursors": {str(conversation_id): seq - 1}},
                                       namespace=CHAT_NAMESPACE, timeout=10)
            assert synced["ok"] is True, synced
            assert [m["seq"] for m in synced["messages"]] == [seq], synced
        finally:
            await client.disconnect()
    return sessions


async def check_churn_leaves_nothing(server: RunningServer, api: Api, namespaces: list[str]) -> None:
    eio = server.app[AURORA].sio.eio
    eio.ping_interval = 3600  # read by each session's ping wait when it starts
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    # A socket that stays open through the churn: its entries must stay, and only its.
    stayer = socketio.AsyncClient(reconnection=False)
    await stayer.connect(server.url, namespaces=[CHAT_NAMESPACE], transports=["websocket"],
                         auth={"token": bob.token}, wait_timeout=10)
    try:
        baseline = per_socket_sizes(server)
        assert baseline["engineio sockets"] == 1 and baseline["engineio ping waits"] == 1, baseline
        sessions = await churn(server, alice, conversation["id"], namespaces)
        await until(lambda: per_socket_sizes(server) == baseline,
                    f"per-socket structures back to {baseline} (now {per_socket_sizes(server)})")
        gc.collect()
        alive = [ref() for ref in sessions if ref() is not None]
        assert not alive, f"{len(alive)} of {CYCLES} closed Engine.IO sessions still in memory: {alive[:1]}"
        assert len(server.app[AURORA].journal.closed) == CYCLES  # the bounded ring of closed sockets
        assert stayer.connected
    finally:
        await stayer.disconnect()


async def test_chat_churn_leaves_no_per_socket_state(server: RunningServer, api: Api) -> None:
    await check_churn_leaves_nothing(server, api, [CHAT_NAMESPACE])


async def test_chat_and_calls_churn_on_one_connection_leaves_no_per_socket_state(
        server: RunningServer, api: Api) -> None:
    await check_churn_leaves_nothing(server, api, [CHAT_NAMESPACE, "/calls"])


async def test_open_sessions_keep_being_pinged(server: RunningServer, api: Api) -> None:
    """Freeing closed sessions must not stop the pings of open ones: each answered ping arms the next wait."""
    eio = server.app[AURORA].sio.eio
    eio.ping_interval, eio.ping_timeout = 0.05, 5
    alice = await api.register()
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, namespaces=[CHAT_NAMESPACE], transports=["websocket"],
                         auth={"token": alice.token}, wait_timeout=10)
    try:
        (sid,) = eio.sockets
        seen: list[Any] = []

        def another_wait() -> bool:
            task = eio.ping_waits.get(sid)
            if task is not None and all(task is not t for t in seen):
                seen.append(task)
            return len(seen) >= 4

        await until(another_wait, "four successive ping waits of an open session")
        assert client.connected and sid in eio.sockets
        ack = await client.call("sync", {}, namespace=CHAT_NAMESPACE, timeout=10)
        assert ack["ok"] is True, ack
    finally:
        await client.disconnect()
    await until(lambda: not eio.ping_waits and not eio.sockets, "the session and its ping wait gone")
