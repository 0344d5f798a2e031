"""The Socket.IO server, with one addition: an Engine.IO session must join a namespace in time.

A client can open Engine.IO sessions (a cheap HTTP request or WebSocket) and never connect a
namespace, or stay after its namespace connect was refused; each one holds memory and a ping
timer. `connect_timeout_s` after the session opens, one that is in no namespace is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio

log = logging.getLogger(__name__)


class AuroraServer(socketio.AsyncServer):
    def __init__(self, *args: Any, connect_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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
