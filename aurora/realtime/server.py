"""The Socket.IO server, with three additions to python-socketio's.

An Engine.IO session must join a namespace in time: a client can open Engine.IO sessions (a cheap
HTTP request or WebSocket) and never connect a namespace, or stay after its namespace connect was
refused; each one holds memory and a ping timer. `connect_timeout_s` after the session opens, one
that is in no namespace is closed.

A closed Engine.IO session is freed at once (AuroraEngineServer): python-engineio 4.15 sleeps out
each session's ping interval (25 s) in a task that holds the session, so every session closed in the
last 25 s stayed in memory with its queue, events and task, about 6.5 KiB each (issue 17's churn soak:
~1,500 closed sessions alive at 60 connections/s, ~6,000 at 250/s). The ping wait is cancelled when
the session closes.

An event whose bucket this socket already found dry, and that cannot have refilled yet, is refused
before its packet is decoded (`_handle_eio_message`, the namespace's `refuse_early`): no JSON
decoding, no task, no handler; the ack is the one the handler path would have sent.

A flooding session can be closed at once (`close_flooding`): from that moment its packets are
dropped before they are decoded, and once the Engine.IO session is closed its WebSocket is not
read any more (realtime/transport.py), so the rest of the flood costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import engineio
import socketio
from engineio.async_socket import AsyncSocket
from socketio import packet as socketio_packet

from aurora.realtime.packets import FastScanPacket, event_head

log = logging.getLogger(__name__)


class AuroraEngineServer(engineio.AsyncServer):
    """python-engineio's server, cancelling a session's ping wait when the session closes.

    A session's next ping is `start_background_task(socket._send_ping)`, a task that sleeps
    ping_interval and then looks whether the socket is still open: it is the only thing that keeps a
    closed session alive. Those tasks are kept by session id here (one at a time per session: the next
    is started when the client answers the ping) and cancelled on the session's `disconnect` event,
    which python-engineio raises on every close (client gone, server disconnect, ping timeout).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ping_waits: dict[str, asyncio.Task[Any]] = {}

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = super().start_background_task(target, *args, **kwargs)
        socket = getattr(target, "__self__", None)
        if isinstance(socket, AsyncSocket) and getattr(target, "__name__", None) == "_send_ping":
            sid = socket.sid
            self.ping_waits[sid] = task
            task.add_done_callback(lambda done: self._forget_ping_wait(sid, done))
        return task

    def _forget_ping_wait(self, sid: str, task: asyncio.Task[Any]) -> None:
        if self.ping_waits.get(sid) is task:
            del self.ping_waits[sid]

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "disconnect" and args:
            task = self.ping_waits.pop(args[0], None)
            # Not the task that is closing the session itself (a ping that found the client gone).
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        return await super()._trigger_event(event, *args, **kwargs)


class AuroraServer(socketio.AsyncServer):
    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return AuroraEngineServer

    def __init__(self, *args: Any, connect_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.packet_class = FastScanPacket  # the same packets, a cheaper binary scan (packets.py)
        self._connect_timeout_s = connect_timeout_s
        self._closing: set[asyncio.Task[None]] = set()
        self._dropping: set[str] = set()  # Engine.IO sessions being closed for flooding
        self._refused: set[str] = set()  # Engine.IO sessions refused once: their events are looked at early

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)
        asyncio.get_running_loop().call_later(self._connect_timeout_s, self._close_if_idle, eio_sid)
        return result

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid in self._dropping:
            return  # being closed for flooding: not even decoded
        eio_socket = self.eio.sockets.get(eio_sid)
        if eio_socket is None or eio_socket.closing:
            return  # closed or closing (by either side): no namespace would take it
        if eio_sid in self._refused and eio_sid not in self._binary_packet:
            head = event_head(data)
            if head is not None and await self._refused_early(eio_sid, *head):
                return
        await super()._handle_eio_message(eio_sid, data)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self._refused.discard(eio_sid)

    def look_early(self, sid: str, namespace: str) -> None:
        """Socket `sid` was refused an event: from now on its event packets are offered to its
        namespace's refuse_early before they are decoded (until the Engine.IO session ends)."""
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        if eio_sid is not None:
            self._refused.add(eio_sid)

    async def _refused_early(self, eio_sid: str, namespace: str, ack_id: int | None, event: str) -> bool:
        refuse_early = getattr(self.namespace_handlers.get(namespace), "refuse_early", None)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace) if refuse_early is not None else None
        if sid is None or not self.manager.is_connected(sid, namespace):
            return False
        answer = await refuse_early(sid, event)
        if answer is None:
            return False
        if ack_id is not None:
            await self._send_packet(eio_sid, self.packet_class(socketio_packet.ACK, namespace=namespace, id=ack_id,
                                                               data=[answer]))
        return True

    def close_flooding(self, sid: str, namespace: str) -> None:
        """Close the Engine.IO session under socket `sid`. From now on nothing it sends is decoded; the
        closing itself runs as a task of its own, so the answer being sent (the refusal that made the
        socket go over the line) still reaches it: then the namespace's disconnect packet (as for any
        server disconnect), then the session's close, with any other namespace on it."""
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        if eio_sid is None or eio_sid in self._dropping:
            return
        self._dropping.add(eio_sid)
        task = asyncio.ensure_future(self._close_flooding(sid, namespace, eio_sid))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_flooding(self, sid: str, namespace: str, eio_sid: str) -> None:
        try:
            await self.disconnect(sid, namespace=namespace)
            await self.eio.disconnect(eio_sid)
        finally:
            self._dropping.discard(eio_sid)

    def in_a_namespace(self, eio_sid: str) -> bool:
        # sid_from_eio_sid also finds a socket whose connect handler is still running.
        return any(self.manager.sid_from_eio_sid(eio_sid, ns) is not None for ns in list(self.manager.rooms))

    def _close_if_idle(self, eio_sid: str) -> None:
        if eio_sid not in self.eio.sockets or self.in_a_namespace(eio_sid):
            return
        log.info("closing Engine.IO session %s: no namespace connected within %.0f s", eio_sid,
                 self._connect_timeout_s)
        task = asyncio.ensure_future(self.eio.disconnect(eio_sid))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
