"""The Socket.IO side: one python-socketio AsyncClient for /chat and /calls, its reconnects, its
connection state, and requests whose acks fail fast when the socket drops.

python-socketio reconnects by itself after a lost connection, but not after a failed first connect
and not with a useful error for a refused token; this wraps both. Incoming events are handed on
synchronously, in the order they arrived (engine.io runs each packet in its own task, and the part
of each task before its first await runs in arrival order), to one callback that queues them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import socketio

from aurora_client.errors import AuroraError
from aurora_client.types import ConnectionState

log = logging.getLogger(__name__)

AUTH_CODES = frozenset({"auth_required", "auth_invalid", "auth_expired"})
CHAT = "/chat"
CALLS = "/calls"


class Connection:
    def __init__(self, url: str, token: str, *, namespaces: Sequence[str],
                 on_event: Callable[[str, str, Any], None],
                 on_connected: Callable[[str], None],
                 on_state: Callable[[ConnectionState], None],
                 transports: Sequence[str] | None, request_timeout_s: float,
                 reconnection_delay_s: float, reconnection_delay_max_s: float) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.namespaces = list(namespaces)
        self.request_timeout_s = request_timeout_s
        self._transports = list(transports) if transports else None
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_state = on_state
        self._delay = reconnection_delay_s
        self._delay_max = reconnection_delay_max_s
        self.sio = socketio.AsyncClient(
            reconnection=True, reconnection_attempts=0, reconnection_delay=reconnection_delay_s,
            reconnection_delay_max=reconnection_delay_max_s, randomization_factor=0.5,
        )
        self.online = asyncio.Event()  # every namespace connected
        self.closing = False
        self.fatal: AuroraError | None = None
        self.ever_connected = False
        self._connected_namespaces: set[str] = set()
        self._pending: dict[str, set[asyncio.Future[Any]]] = {ns: set() for ns in self.namespaces}
        self._shutdown_task: asyncio.Task[None] | None = None
        self._server_reconnect: asyncio.Task[None] | None = None
        self._closing_code: str | None = None
        self._wake = asyncio.Event()
        for namespace in self.namespaces:
            self._register(namespace)

    def _register(self, namespace: str) -> None:
        def on_connect() -> None:
            self._connected_namespaces.add(namespace)
            if self._connected_namespaces >= set(self.namespaces):
                self.online.set()
                reason = "reconnected" if self.ever_connected else "connected"
                self.ever_connected = True
                self._on_state({"state": "connected", "reason": reason})
            self._on_connected(namespace)

        def on_disconnect(reason: Any = None) -> None:
            was_online = self.online.is_set()
            self._connected_namespaces.discard(namespace)
            self.online.clear()
            self._fail_pending(namespace)
            if was_online and not self.closing and self.fatal is None:
                why, self._closing_code = self._closing_code or reason, None
                self._on_state({"state": "reconnecting", "reason": str(why or "disconnected")})
            if reason == self.sio.reason.SERVER_DISCONNECT and not self.closing and self.fatal is None:
                # python-socketio (like socket.io-client) does not reconnect after the server closed
                # the namespace, e.g. after a logout. Reconnect anyway: the server decides, and a
                # refused token then stops the client with its code.
                if self._server_reconnect is None or self._server_reconnect.done():
                    self._server_reconnect = asyncio.ensure_future(self._reconnect_after_server_disconnect())

        def on_connect_error(data: Any = None) -> None:
            code, message = _error_of(data)
            if code in AUTH_CODES and self.fatal is None:
                # A refused token does not get better by retrying: stop the reconnect loop.
                self.fatal = AuroraError(code, message)
                self._on_state({"state": "offline", "reason": code})
                self._wake.set()
                if self.ever_connected:
                    self._shutdown_task = asyncio.ensure_future(self._stop_reconnecting())

        def on_closing(data: Any = None) -> None:
            # The server says why right before it closes this socket (docs/protocol.md "closing").
            code, message = _error_of(data)
            if code in AUTH_CODES:
                if self.fatal is None:  # the session ended or the token expired: stop, do not reconnect
                    self.fatal = AuroraError(code, message)
                    self._on_state({"state": "offline", "reason": code})
                    self._wake.set()
                    self._shutdown_task = asyncio.ensure_future(self._stop_reconnecting())
            else:
                self._closing_code = code  # e.g. rate_limited: the reason of the disconnect that follows

        def on_any(event: str, *args: Any) -> None:
            self._on_event(namespace, event, args[0] if len(args) == 1 else list(args) if args else None)

        self.sio.on("connect", on_connect, namespace=namespace)
        self.sio.on("disconnect", on_disconnect, namespace=namespace)
        self.sio.on("connect_error", on_connect_error, namespace=namespace)
        self.sio.on("closing", on_closing, namespace=namespace)
        self.sio.on("*", on_any, namespace=namespace)

    async def _stop_reconnecting(self) -> None:
        await asyncio.sleep(0)  # leave the reconnect task's own connect attempt first
        with contextlib.suppress(Exception):
            await self.sio.shutdown()

    async def _reconnect_after_server_disconnect(self) -> None:
        delay = self._delay
        while not self.closing and self.fatal is None:
            await asyncio.sleep(delay * (0.5 + random.random()))
            if self.closing or self.fatal is not None or self.online.is_set():
                return
            with contextlib.suppress(Exception):
                if self.sio.connected:  # another namespace is still up: reconnect them all together
                    await self.sio.disconnect()
            try:
                await self.sio.connect(self.url, namespaces=self.namespaces, auth={"token": self.token},
                                       transports=self._transports, wait_timeout=self.request_timeout_s)
                return
            except socketio.exceptions.ConnectionError as exc:
                log.info("reconnecting to %s failed: %s", self.url, exc)
            delay = min(delay * 2, self._delay_max)

    async def start(self) -> None:
        """Connect; after a failure, retry with backoff until connected (a refused token raises)."""
        self._on_state({"state": "connecting", "reason": "connect"})
        delay = self._delay
        while True:
            if self.closing:
                raise AuroraError("closed", "the client was closed")
            try:
                await self.sio.connect(self.url, namespaces=self.namespaces, auth={"token": self.token},
                                       transports=self._transports, wait_timeout=self.request_timeout_s)
                return
            except socketio.exceptions.ConnectionError as exc:
                if self.fatal is not None:
                    raise self.fatal from None
                log.info("connecting to %s failed: %s", self.url, exc)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay * (0.5 + random.random()))
            delay = min(delay * 2, self._delay_max)

    async def request(self, namespace: str, event: str, payload: Any, timeout_s: float | None = None) -> Any:
        """Emit with an ack; the ack's fields on {ok: true}, AuroraError otherwise. A socket that drops
        before the ack fails at once with `disconnected` (python-socketio would wait out the timeout)."""
        if namespace not in self._connected_namespaces:
            raise AuroraError("disconnected", "not connected")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_ack(*args: Any) -> None:
            if not future.done():
                future.set_result(args[0] if args else None)

        pending = self._pending[namespace]
        pending.add(future)
        try:
            try:
                await self.sio.emit(event, payload, namespace=namespace, callback=on_ack)
            except socketio.exceptions.SocketIOError as exc:
                raise AuroraError("disconnected", str(exc)) from None
            try:
                ack = await asyncio.wait_for(future, timeout_s or self.request_timeout_s)
            except TimeoutError:
                raise AuroraError("timeout", f"no answer to {event} within {timeout_s or self.request_timeout_s}s") \
                    from None
        finally:
            pending.discard(future)
        if not isinstance(ack, dict):
            raise AuroraError("internal", f"unexpected ack to {event}: {ack!r}")
        if ack.get("ok") is not True:
            raise AuroraError.from_payload(ack.get("error"))
        return ack

    async def emit(self, namespace: str, event: str, payload: Any) -> None:
        """Fire and forget (no ack): for hints such as `delivered`; dropped when offline."""
        if namespace in self._connected_namespaces:
            with contextlib.suppress(socketio.exceptions.SocketIOError):
                await self.sio.emit(event, payload, namespace=namespace)

    def _fail_pending(self, namespace: str) -> None:
        for future in list(self._pending.get(namespace, ())):
            if not future.done():
                future.set_exception(AuroraError("disconnected", "the connection dropped before the answer"))

    async def close(self) -> None:
        self.closing = True
        self._wake.set()
        self.online.clear()
        with contextlib.suppress(Exception):
            if self.sio.connected and self.sio.transport() == "polling":
                # python-engineio otherwise waits for the pending long-poll to return.
                await self.sio.eio.disconnect(abort=True)
            await self.sio.shutdown()
        for task in (self._shutdown_task, self._server_reconnect):
            if task is not None and not task.done():
                task.cancel()
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task
        for namespace in self.namespaces:
            self._fail_pending(namespace)
        self._on_state({"state": "offline", "reason": "close()"})


def _error_of(data: Any) -> tuple[str, str]:
    """The {code, message} of a connect_error: python-socketio passes {"message", "data": {code, message}}
    for a refused namespace, or a plain string when the transport failed."""
    if isinstance(data, dict):
        inner = data.get("data") if isinstance(data.get("data"), dict) else data
        return str(inner.get("code") or "unavailable"), str(inner.get("message") or data.get("message") or "")
    return "unavailable", str(data or "connection failed")
