"""Engine.IO transport tuning for aiohttp.

python-engineio's aiohttp driver accepts permessage-deflate on every websocket
(browsers always offer it). Each compressed socket keeps zlib state of its own,
about 90 KiB more per idle connection, for almost no gain on small chat
packets. With `websocket_compression = false` (the default) Aurora answers the
upgrade without the extension.

The driver also stops reading a WebSocket whose Engine.IO session the server has closed
(a flooding socket, see realtime/server.py): upstream reads and decodes every frame the client
sends until the client closes, and waits for a client that does not close until its ping
timeout (45 s). Here the read that finds the session closed pauses the TCP transport and ends
the read loop, so frames already received are dropped undecoded and the rest stay in the
kernel's buffers; the packets queued for the client (closing, the close packet) are still
written, and the connection is closed CLOSE_GRACE_S after the close packet unless the client
closed it first.

The session's read and write loop itself is python-engineio's without a task and a timer per packet
(realtime/websocket_loop.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio
from aiohttp import WSCloseCode, WSMsgType
from aiohttp.web import WebSocketResponse
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as engineio_aiohttp
from engineio.async_socket import AsyncSocket
from socketio import packet as socketio_packet

from aurora.realtime.websocket_loop import run_websocket_session
from aurora.services.ops.journal import DeliveryJournal


def record_emit(journal: DeliveryJournal, payload: Any, sids: list[str]) -> None:
    if isinstance(payload, dict) and isinstance(payload.get("seq"), int):
        journal.emitted(payload["conversation_id"], payload["seq"], sids)


# After the server closed an Engine.IO session (its close packet written), the client has this long
# to read what was written and go; then the connection is closed. A client that goes on sending is
# not read meanwhile. A well-behaved client closes at once, and this never waits.
CLOSE_GRACE_S = 1.0
_CLOSE_PACKET = "1"  # Engine.IO's close packet, encoded; the server sends it only when it closes a session


class AuroraWebSocket(engineio_aiohttp.WebSocket):
    compress = False

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=self.compress)
        await self._sock.prepare(request)
        self.environ = environ
        self._transport = request.transport
        # The handler is the Engine.IO socket's bound _websocket_handler: its session.
        self._session = getattr(self.handler, "__self__", None)
        self._stopped = False
        self._deadline: asyncio.TimerHandle | None = None
        self._gone = asyncio.get_running_loop().create_future()
        try:
            if isinstance(self._session, AsyncSocket) and self.handler.__name__ == "_websocket_handler":
                await run_websocket_session(self._session, self)  # no task and timer per packet
            else:
                await self.handler(self)
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
            if self._stopped:
                self._drop_connection()
        return self._sock

    async def send(self, message: Any) -> None:
        # Upstream asks inspect.iscoroutinefunction of aiohttp's send method on every frame; in the
        # aiohttp pinned here both are coroutines (1% of S4's server time went to that question).
        if isinstance(message, bytes):
            await self._sock.send_bytes(message)
        else:
            await self._sock.send_str(message)
        if message == _CLOSE_PACKET and self._deadline is None:
            self._deadline = asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self._drop_connection)

    def _drop_connection(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()  # what is buffered is still written first
        if not self._gone.done():
            self._gone.set_result(None)

    async def wait(self) -> Any:
        if self._session is not None and self._session.closed:
            # Still sending after the server closed its session: nothing more is read. Frames
            # already received are dropped undecoded; the rest waits in the kernel until the close.
            self._stopped = True
            if self._transport is not None and not self._transport.is_closing():
                self._transport.pause_reading()
            raise OSError("the server closed this session")  # ends upstream's read loop
        return await super().wait()

    async def close(self) -> None:
        if not self._stopped:
            await self._sock.close()
            return
        # Not aiohttp's close: it would wait up to 10 s for the client's close frame, reading meanwhile.
        with contextlib.suppress(Exception):
            await self._sock.send_frame(WSCloseCode.OK.to_bytes(2, "big"), WSMsgType.CLOSE)
        if self._deadline is None:
            self._drop_connection()
        await self._gone


class CompressedWebSocket(AuroraWebSocket):
    compress = True


def install_websocket_driver(sio: socketio.AsyncServer, compression: bool) -> None:
    # A copy: the driver table is shared by every Engine.IO server in the process.
    sio.eio._async = {**sio.eio._async, "websocket": CompressedWebSocket if compression else AuroraWebSocket}


class DirectEmitManager(socketio.AsyncManager):
    """Single-process client manager that queues a broadcast straight onto each socket.

    python-socketio's AsyncManager creates one asyncio task per recipient for every
    emit; a group message to 200 sockets costs 200 tasks. The packet is identical for
    everyone, and handing it to a socket is a non-blocking queue put, so a plain loop
    does the same work without the tasks. Emits with a callback keep the stock path.

    With a delivery journal attached, the sids a new_message reached are recorded (one deque append).
    """

    journal: DeliveryJournal | None = None

    async def enter_rooms(self, sid: str, namespace: str, rooms: list[str]) -> None:
        """enter_room for several rooms (the Redis manager subscribes their channels in one go)."""
        for room in rooms:
            await self.enter_room(sid, namespace, room)

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        if callback is not None:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback,
                               to=to, **kwargs)
            return
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        encoded = self.server.packet_class(socketio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        packets = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in (encoded if isinstance(encoded, list)
                                                                       else [encoded])]
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        send = self.server.eio.send_packet
        reached = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid not in skip:
                reached.append(sid)
                for pkt in packets:
                    await send(eio_sid, pkt)
        if self.journal is not None and event == "new_message":
            record_emit(self.journal, data, reached)
