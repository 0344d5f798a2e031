"""The Engine.IO WebSocket loop without a task and a timer per packet (realtime/websocket_loop.py).

The same behaviour as python-engineio's loop: frames flow both ways, a polling session still
upgrades, a client that goes silent is closed; but reading a frame or writing a packet creates no
task (upstream made one for each, with a timer).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import aiohttp
import socketio

from aurora.context import AURORA
from aurora.realtime.rooms import CHAT_NAMESPACE
from aurora.realtime.websocket_loop import ReadDeadline
from tests.conftest import RunningServer
from tests.support.clients import Api
from tests.support.sdk import eventually


async def test_the_deadline_cancels_a_wait_only_after_the_timeout_without_frames() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wait_forever() -> str:
        deadline.waiting = True
        try:
            await never
        except asyncio.CancelledError:
            return "expired" if deadline.expired else "cancelled"
        return "done"

    task = asyncio.ensure_future(wait_forever())
    deadline = ReadDeadline(task, 0.2)
    start = asyncio.get_running_loop().time()
    assert await task == "expired"
    assert asyncio.get_running_loop().time() - start >= 0.19


async def test_frames_read_in_time_push_the_deadline_back() -> None:
    gate: asyncio.Event = asyncio.Event()

    async def reader() -> int:
        reads = 0
        while not gate.is_set():
            deadline.waiting = True
            await asyncio.sleep(0.05)  # a frame arrives every 50 ms
            deadline.waiting = False
            deadline.read()
            reads += 1
        return reads

    task = asyncio.ensure_future(reader())
    deadline = ReadDeadline(task, 0.2)
    await asyncio.sleep(0.8)  # four deadlines' worth
    gate.set()
    assert await task >= 8  # never cancelled
    assert not deadline.expired
    deadline.cancel()


async def test_a_busy_loop_is_not_cancelled_by_the_deadline() -> None:
    """While a frame is being handled (not waiting for the next), the deadline waits too."""
    async def busy() -> str:
        deadline.waiting = False
        await asyncio.sleep(0.5)  # a long handler: 2.5 deadlines
        return "finished"

    task = asyncio.ensure_future(busy())
    deadline = ReadDeadline(task, 0.2)
    assert await task == "finished"
    assert not deadline.expired
    deadline.cancel()


def _count_tasks(counts: Counter[str], queue_gets: list[Any]) -> Any:
    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        name = getattr(coro, "__qualname__", type(coro).__name__)
        counts[name] += 1
        if name == "Queue.get":  # whose queue: the clients (same loop) have one too
            queue_gets.append(coro.cr_frame.f_locals.get("self"))
        return asyncio.Task(coro, loop=loop, **kwargs)
    return factory


async def test_frames_both_ways_create_no_task_per_packet(server: RunningServer, api: Api) -> None:
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    sender, receiver = socketio.AsyncClient(reconnection=False), socketio.AsyncClient(reconnection=False)
    received: list[Any] = []
    receiver.on("new_message", lambda message: received.append(message), namespace=CHAT_NAMESPACE)
    for client, who in ((sender, alice), (receiver, bob)):
        await client.connect(server.url, namespaces=[CHAT_NAMESPACE], transports=["websocket"],
                             auth={"token": who.token}, wait_timeout=10)
    loop = asyncio.get_running_loop()
    counts: Counter[str] = Counter()
    queue_gets: list[Any] = []
    server_queues = [session.queue for session in server.app[AURORA].sio.eio.sockets.values()]
    assert len(server_queues) == 2
    previous = loop.get_task_factory()
    loop.set_task_factory(_count_tasks(counts, queue_gets))
    try:
        for n in range(20):
            ack = await sender.call("send_message", {"conversation_id": conversation["id"], "body": f"m{n}",
                                                     "client_id": f"c{n}"}, namespace=CHAT_NAMESPACE, timeout=10)
            assert ack["ok"] is True, ack
        await eventually(lambda: len(received) == 20, what="20 messages delivered live")
    finally:
        loop.set_task_factory(previous)
        await sender.disconnect()
        await receiver.disconnect()
    # Upstream's loop made a websocket_wait task for every frame read and a Queue.get task for
    # every batch written (through wait_for); 20 sends are 20 frames read and 40+ written.
    reads = {name: n for name, n in counts.items() if "websocket_wait" in name}
    writes = sum(1 for queue in queue_gets if any(queue is q for q in server_queues))
    assert not reads and not writes, (reads, writes)
    assert counts, "the task counter saw nothing: it did not measure the server"


async def test_a_polling_session_still_upgrades_and_talks(server: RunningServer, api: Api) -> None:
    alice = await api.register()
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, namespaces=[CHAT_NAMESPACE], transports=["polling", "websocket"],
                         auth={"token": alice.token}, wait_timeout=10)
    try:
        eio = server.app[AURORA].sio.eio
        (session,) = eio.sockets.values()
        await eventually(lambda: session.upgraded, what="the polling session upgraded to a websocket")
        assert client.transport() == "websocket"
        ack = await client.call("sync", {}, namespace=CHAT_NAMESPACE, timeout=10)
        assert ack["ok"] is True, ack
    finally:
        await client.disconnect()


async def test_a_client_that_goes_silent_is_closed_and_freed(server: RunningServer, api: Api) -> None:
    """It never answers a ping: the server closes the connection and frees the session."""
    eio = server.app[AURORA].sio.eio
    eio.ping_interval, eio.ping_timeout = 0.2, 0.3
    alice = await api.register()
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(server.url + "/socket.io/?EIO=4&transport=websocket") as ws:
        opened = await ws.receive(timeout=10)
        assert opened.type == aiohttp.WSMsgType.TEXT and opened.data.startswith("0{"), opened
        await ws.send_str("40" + CHAT_NAMESPACE + "," + json.dumps({"token": alice.token}))
        frames: list[str] = []
        while True:  # read what comes, answer nothing (no pong)
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frames.append(msg.data)
        assert any(f.startswith("40" + CHAT_NAMESPACE) for f in frames), frames  # it was connected
        assert "2" in frames, frames  # and pinged
    await eventually(lambda: not eio.sockets, what="the silent session freed")


def test_the_pinned_aiohttp_sends_frames_with_coroutines() -> None:
    """AuroraWebSocket.send awaits send_str / send_bytes without asking each time (transport.py)."""
    import inspect

    from aiohttp.web import WebSocketResponse

    assert inspect.iscoroutinefunction(WebSocketResponse.send_str)
    assert inspect.iscoroutinefunction(WebSocketResponse.send_bytes)
