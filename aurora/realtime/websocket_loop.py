"""An Engine.IO session's WebSocket loop without a task and a timer per packet.

python-engineio 4.15's `AsyncSocket._websocket_handler` wraps every frame it reads in a new task
(`ensure_future(websocket_wait())`) and awaits it through `asyncio.wait_for`, which makes a
timer and a waiter future too; its writer awaits each batch of outgoing packets through
`wait_for(queue.get(), ...)`, another task and timer. Both timeouts only matter for a connection
that has gone silent: pings make a live client answer every ping interval, and a session that
ends puts `None` on the writer's queue. In a reconnect storm of 10,000 clients those per-packet
tasks and timers were about a quarter of the server's time (py-spy, docs/performance.md).

`run_websocket_session` is the same loop, with the same upgrade handshake, the same exits and the
same close, but one deadline per session: a timer that fires `ping_interval + ping_timeout` after
the last frame read and is pushed back lazily (one `loop.time()` per frame). When it fires while
the loop waits for a frame, it cancels that wait, as upstream's `wait_for` does; the writer waits
for its queue without a timeout, since the read loop always ends and then unblocks it. After each
frame the loop yields once (`sleep(0)`, a bare yield), as upstream's task per frame made it do.

To propose upstream: the deadline in place of `wait_for`, and `queue.get()` in the writer (the read
loop's exit already ends it).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket


class ReadDeadline:
    """Cancels `task` when no frame was read for `timeout` seconds while it waits for one."""

    __slots__ = ("_handle", "_loop", "_task", "_timeout", "expired", "last_read", "waiting")

    def __init__(self, task: asyncio.Task[Any], timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._task = task
        self.last_read = self._loop.time()
        self.waiting = False
        self.expired = False
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(self.last_read + timeout, self._check)

    def read(self) -> None:
        self.last_read = self._loop.time()

    def _check(self) -> None:
        due = self.last_read + self._timeout
        if self.waiting and self._loop.time() >= due:
            self._handle = None
            self.expired = True
            self._task.cancel()
            return
        # A frame came meanwhile, or the loop is busy with one (a handler is running): later.
        self._handle = self._loop.call_at(max(due, self._loop.time() + 1.0), self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def _next_packets(session: AsyncSocket) -> list[eio_packet.Packet]:
    """The queued packets, waiting for the first; [] once the session's end (None) is queued."""
    queue = session.queue
    first = await queue.get()
    queue.task_done()
    if first is None:
        return []
    packets = [first]
    while True:
        try:
            pkt = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        queue.task_done()
        if pkt is None:
            queue.put_nowait(None)  # the end, for the next call
            break
        packets.append(pkt)
    return packets


async def _write_until_closed(session: AsyncSocket, ws: Any) -> None:
    while True:
        packets = await _next_packets(session)
        if not packets:
            break
        try:
            for pkt in packets:
                await ws.send(pkt.encode())
        except Exception:
            break
    await ws.close()


async def _read_frame(session: AsyncSocket, ws: Any) -> Any:
    data = await ws.wait()
    if data and len(data) > session.server.max_http_buffer_size:
        raise ValueError("packet is too large")
    return data


async def _upgrade(session: AsyncSocket, ws: Any) -> bool:
    """The polling → websocket probe exchange, as upstream; False when the upgrade failed."""
    session.upgrading = True  # hold packet sends during the upgrade
    try:
        pkt = await _read_frame(session, ws)
    except OSError:
        return False
    decoded = eio_packet.Packet(encoded_packet=pkt)
    if decoded.packet_type != eio_packet.PING or decoded.data != "probe":
        session.server.logger.info("%s: Failed websocket upgrade, no PING packet", session.sid)
        session.upgrading = False
        return False
    await ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
    await session.queue.put(eio_packet.Packet(eio_packet.NOOP))  # end the poll
    try:
        pkt = await _read_frame(session, ws)
    except OSError:
        session.upgrading = False
        return False
    decoded = eio_packet.Packet(encoded_packet=pkt)
    if decoded.packet_type != eio_packet.UPGRADE:
        session.upgraded = False
        session.server.logger.info("%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                                   session.sid, pkt)
        session.upgrading = False
        return False
    session.upgraded = True
    session.upgrading = False
    return True


async def run_websocket_session(session: AsyncSocket, ws: Any) -> None:
    """`AsyncSocket._websocket_handler(ws)` of python-engineio 4.15, one deadline per session."""
    if session.connected:  # already connected over polling: this is an upgrade
        if not await _upgrade(session, ws):
            return
    else:
        session.connected = True
        session.upgraded = True
    writer = asyncio.ensure_future(_write_until_closed(session, ws))
    session.server.logger.info("%s: Upgrade to websocket successful", session.sid)
    task = asyncio.current_task()
    assert task is not None
    deadline = ReadDeadline(task, session.server.ping_interval + session.server.ping_timeout)
    try:
        while True:
            deadline.waiting = True
            try:
                data = await _read_frame(session, ws)
            except asyncio.CancelledError:
                if deadline.expired:
                    task.uncancel()  # the deadline's own cancel: the client went silent
                break  # as upstream: a cancelled wait ends the session's loop
            except Exception:
                break
            finally:
                deadline.waiting = False
            if data is None:
                break  # connection closed by client
            deadline.read()
            try:
                await session.receive(eio_packet.Packet(encoded_packet=data))
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                session.server.logger.info("Receive error -- socket is closed")
                break
            except Exception:
                # An unexpected error is logged and the loop goes on, as upstream.
                session.server.logger.exception("Unknown receive error")
            # Let the handler just started, and every other socket, run before the next frame: a read
            # of buffered frames does not yield, and a flood would otherwise be read to its end before
            # its first refusal could close the session (upstream yielded in its task per frame).
            await asyncio.sleep(0)
    finally:
        deadline.cancel()
    await session.queue.put(None)  # unblock the writer so it can exit
    with contextlib.suppress(Exception):
        await writer
    await session.close(wait=False, abort=True, reason=session.server.reason.TRANSPORT_CLOSE)
