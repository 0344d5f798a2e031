"""A client that goes while the server is still answering it (it gave up waiting in a reconnect
storm, or its network went) is the client's absence, not a bug: one INFO line, no ERROR with a
traceback, nothing left registered. Bench S6 with 10,000 clients logged 100 tracebacks of
"KeyError: 'Session not found'" (save_session during a /chat connect) and 187 of "Cannot write to
closing transport" (a WebSocket upgrade) before these were told apart.

The server's own steps are held at a gate (a wrapper that waits, then calls the real step) so the
client is gone exactly while they run: no timing to race."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aurora.context import AURORA
from tests.support.clients import Api
from tests.support.raw_socket import RawSocket, ws_frame

UPGRADE = ("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


class Gate:
    """Wraps an async step: callers wait at the gate until it opens, then run the real step."""

    def __init__(self, step: Callable[..., Awaitable[Any]]) -> None:
        self.step = step
        self.entered = asyncio.Event()
        self.open = asyncio.Event()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.args = args
        self.entered.set()
        await self.open.wait()
        return await self.step(*args, **kwargs)


def _capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="aurora")


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """The records that hold `text`, once there is one (within 2 s)."""
    for _ in range(200):
        found = [r for r in caplog.records if text in r.getMessage()]
        if found:
            return found
        await asyncio.sleep(0.01)
    return []


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("namespace", ["/chat", "/calls"])
async def test_leaving_during_the_connect_is_one_info_line(api: Api, server, namespace: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    alice = await api.register()
    _capture(caplog)
    aurora = server.app[AURORA]
    gate = Gate(aurora.accounts.authenticate_credentials)
    aurora.accounts.authenticate_credentials = gate
    try:
        sock = await RawSocket.open(server.port)
        await sock.text_until(b"0{")
        sock.writer.write(ws_frame(f"40{namespace}," + json.dumps({"token": alice.token})))
        await asyncio.wait_for(gate.entered.wait(), 10)  # the connect handler is running
        # The Engine.IO session ends meanwhile, as a ping timeout ends a client that went: (the read
        # loop of a session is held while its namespace CONNECT is handled, so a client's own close
        # is only read afterwards).
        (eio_sid,) = list(aurora.sio.eio.sockets)
        await aurora.sio.eio.disconnect(eio_sid)
        sock.close()
    finally:
        gate.open.set()
        aurora.accounts.authenticate_credentials = gate.step
    left = await _logged(caplog, "the client left while it was set up")
    assert [r.levelno for r in left] == [logging.INFO]
    assert _errors(caplog) == []
    assert await aurora.registry.sids_of_user(namespace, alice.id) == []  # nothing stays registered
    if namespace == "/chat":
        assert alice.id not in await aurora.registry.online("/chat", [alice.id])


async def test_a_websocket_upgrade_whose_client_went_is_one_info_line(server, caplog: pytest.LogCaptureFixture) -> None:
    _capture(caplog)
    eio = server.app[AURORA].sio.eio
    gate = Gate(eio._handle_connect)
    eio._handle_connect = gate  # the handshake, before the 101 is written
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(UPGRADE.encode())
        await asyncio.wait_for(gate.entered.wait(), 10)
        writer.close()  # gone before the 101 is written
        await writer.wait_closed()
        request = gate.args[0]["aiohttp.request"]
        for _ in range(500):  # until the server's side has seen the connection go
            if request.transport is None or request.transport.is_closing():
                break
            await asyncio.sleep(0.01)
        assert request.transport is None or request.transport.is_closing()
    finally:
        gate.open.set()
        del eio._handle_connect
    gone = await _logged(caplog, "the client closed the connection first")
    assert [r.levelno for r in gone] == [logging.INFO]
    assert _errors(caplog) == []
