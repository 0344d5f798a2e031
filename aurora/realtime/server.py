"""The Socket.IO server, with two additions to python-socketio's.

An Engine.IO session must join a namespace in time: a client can open Engine.IO sessions (a cheap
HTTP request or WebSocket) and never connect a namespace, or stay after its namespace connect was
refused; each one holds memory and a ping timer. `connect_timeout_s` after the session opens, one
that is in no namespace is closed.

A closed Engine.IO session is freed at once (AuroraEngineServer): python-engineio 4.15 sleeps out
each session's ping interval (25 s) in a task that holds the session, so every session closed in the
last 25 s stayed in memory with its queue, events and task, about 6.5 KiB each (issue 17's churn soak:
~1,500 closed sessions alive at 60 connections/s, ~6,000 at 250/s). The ping wait is cancelled when
the session closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import engineio
import socketio
from engineio.async_socket import AsyncSocket

from aurora.realtime.packets import FastScanPacket

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

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)
        asyncio.get_running_loop().call_later(self._connect_timeout_s, self._close_if_idle, eio_sid)
        return result

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
