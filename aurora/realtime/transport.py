"""Engine.IO transport tuning for aiohttp.

python-engineio's aiohttp driver accepts permessage-deflate on every websocket
(browsers always offer it). Each compressed socket keeps zlib state of its own,
about 90 KiB more per idle connection, for almost no gain on small chat
packets. With `websocket_compression = false` (the default) Aurora answers the
upgrade without the extension.
"""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp.web import WebSocketResponse
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as engineio_aiohttp
from socketio import packet as socketio_packet

from aurora.services.ops.journal import DeliveryJournal


def record_emit(journal: DeliveryJournal, payload: Any, sids: list[str]) -> None:
    if isinstance(payload, dict) and isinstance(payload.get("seq"), int):
        journal.emitted(payload["conversation_id"], payload["seq"], sids)


class JournalingRedisManager(socketio.AsyncRedisManager):
    """The Redis client manager, recording which of this process's sockets each new_message reached.

    Every process (the sender's included) runs _handle_emit for a broadcast; the sids are this
    process's participants of the room, less those skipped, as AsyncManager.emit computes them.
    """

    journal: DeliveryJournal | None = None

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        if self.journal is not None and message.get("event") == "new_message" and message.get("data"):
            namespace = message.get("namespace") or "/"
            skip = message.get("skip_sid")
            skipped = set(skip) if isinstance(skip, list) else {skip}
            sids = [sid for sid, _ in self.get_participants(namespace, message.get("room")) if sid not in skipped]
            record_emit(self.journal, message["data"][0], sids)
        await super()._handle_emit(message)


class UncompressedWebSocket(engineio_aiohttp.WebSocket):
    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def disable_websocket_compression(sio: socketio.AsyncServer) -> None:
    # A copy: the driver table is shared by every Engine.IO server in the process.
    sio.eio._async = {**sio.eio._async, "websocket": UncompressedWebSocket}


class DirectEmitManager(socketio.AsyncManager):
    """Single-process client manager that queues a broadcast straight onto each socket.

    python-socketio's AsyncManager creates one asyncio task per recipient for every
    emit; a group message to 200 sockets costs 200 tasks. The packet is identical for
    everyone, and handing it to a socket is a non-blocking queue put, so a plain loop
    does the same work without the tasks. Emits with a callback keep the stock path.

    With a delivery journal attached, the sids a new_message reached are recorded (one deque append).
    """

    journal: DeliveryJournal | None = None

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
