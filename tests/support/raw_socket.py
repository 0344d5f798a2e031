"""An Engine.IO v4 WebSocket session over plain asyncio streams: a client that frames its packets
itself, writes a whole flood in one go and never answers a close unless told to, as an attacker's
script would (bench/flood_cost.py, tests/test_flood_close.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

CLOSE_OPCODE = 8


def ws_frame(text: str) -> bytes:
    """One masked text frame, as a client must send it."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = bytes([0x81, 0x80 | size])
    elif size < 65536:
        head = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    repeated = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")
    return head + mask + masked


def event_frame(namespace: str, ack_id: int, event: str, payload: Any) -> bytes:
    """A Socket.IO EVENT packet with an ack id, framed."""
    return ws_frame(f"42{namespace},{ack_id}" + json.dumps([event, payload]))


class RawSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        return cls(reader, writer)

    @classmethod
    async def connected(cls, port: int, token: str, namespace: str = "/chat") -> RawSocket:
        """Open, then connect `namespace` with the token (the server's answer is awaited)."""
        sock = await cls.open(port)
        await sock.text_until(b"0{")
        sock.writer.write(ws_frame(f"40{namespace}," + json.dumps({"token": token})))
        while True:  # the namespace's answer: CONNECT (40) or CONNECT_ERROR (44)
            got = await sock.frame()
            assert got is not None, "closed before the namespace answered"
            if got[1].startswith((f"40{namespace},".encode(), f"44{namespace},".encode())):
                assert got[1].startswith(b"40"), got[1]
                return sock

    async def frame(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next server frame; None at EOF."""
        try:
            b0, b1 = await self.reader.readexactly(2)
            size = b1 & 0x7F
            if size == 126:
                size = int.from_bytes(await self.reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await self.reader.readexactly(8), "big")
            return b0 & 0x0F, await self.reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def text_until(self, prefix: bytes) -> bytes:
        while True:
            got = await self.frame()
            assert got is not None, f"closed before {prefix!r}"
            if got[1].startswith(prefix):
                return got[1]

    def close(self) -> None:
        self.writer.close()
