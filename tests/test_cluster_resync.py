"""A message-queue blip must not hide messages (issue 16, target 5).

Two processes, every DM spanning both, a private redis-server SIGKILLed twice under load. Each
receiver syncs only when it has a reason the server gave it (a `resync` event; a reconnect would be
another, but none happens here): every acked message must then reach its receiver live or through
the sync that a `resync` asked for. A client that syncs on its own is not needed and not allowed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.support.cluster import Node, start_cluster, stop_cluster
from tests.support.processes import RedisProcess
from tests.support.services import require_or_skip

PAIRS = 3
OUTAGE_S = 2.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    if not RedisProcess.available():
        require_or_skip("redis-server", "not installed")
    server = RedisProcess(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


class Member:
    """One user's socket: sends, receives live, and syncs only when the server says `resync`."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.client = socketio.AsyncClient(reconnection=False)
        self.live: set[int] = set()
        self.by_resync: set[int] = set()
        self.resyncs: list[str] = []
        self.seqs: dict[int, set[int]] = {}
        self._sync_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.client.on("new_message", self._on_message, namespace="/chat")
        self.client.on("resync", self._on_resync, namespace="/chat")
        self.client.on("disconnect", self._on_disconnect, namespace="/chat")
        self.disconnects = 0

    async def connect(self, url: str, token: str) -> None:
        await self.client.connect(url, namespaces=["/chat"], transports=["websocket"], auth={"token": token},
                                  wait_timeout=10)

    def _on_disconnect(self, *_: Any) -> None:
        self.disconnects += 1

    def _know(self, message: dict[str, Any]) -> None:
        self.seqs.setdefault(message["conversation_id"], set()).add(message["seq"])

    def _on_message(self, message: dict[str, Any]) -> None:
        self.live.add(message["id"])
        self._know(message)

    def _on_resync(self, data: dict[str, Any]) -> None:
        self.resyncs.append(data["reason"])
        # The ack of `sync` arrives on this same connection: sync outside the event handler.
        task = asyncio.ensure_future(self._sync())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cursor(self, conversation_id: int) -> int:
        have, seq = self.seqs.get(conversation_id, set()), 0
        while seq + 1 in have:
            seq += 1
        return seq

    async def _sync(self) -> None:
        async with self._sync_lock:
            listing = await self.call("sync", {})
            cursors = {str(c["id"]): self._cursor(c["id"]) for c in listing["conversations"]}
            while True:
                answer = await self.call("sync", {"cursors": cursors, "limit": 1000})
                for message in answer["messages"]:
                    self.by_resync.add(message["id"])
                    self._know(message)
                    cursors[str(message["conversation_id"])] = max(cursors[str(message["conversation_id"])],
                                                                   message["seq"])
                if not answer["has_more"]:
                    return

    async def call(self, event: str, data: Any) -> dict[str, Any]:
        answer = await self.client.call(event, data, namespace="/chat", timeout=15)
        assert answer["ok"], (event, answer)
        return answer

    async def settle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


async def _send_until(stop: asyncio.Event, sender: Member, conversation_id: int, acked: list[int]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        ack = await sender.call("send_message", {"conversation_id": conversation_id, "body": f"m{n}",
                                                 "client_id": f"{sender.user_id}-{n}"})
        acked.append(ack["message"]["id"])  # acked = stored, whatever the queue did with the emit
        sender._know(ack["message"])
        await asyncio.sleep(0.01)


async def test_every_message_reaches_its_receiver_live_or_by_resync(tmp_path: Path, postgres_url: str,
                                                                   private_redis: RedisProcess) -> None:
    nodes: list[Node] = await start_cluster(tmp_path, postgres_url, private_redis.url,
                                            rate_limits_enabled="false")
    members: list[Member] = []
    try:
        one, two = nodes
        flows = []  # (sender, receiver, conversation_id, acked ids)
        for _ in range(PAIRS):
            alice = await one.api.register()
            bob = await two.api.register()
            cid = (await one.api.conversation(alice, [bob]))["id"]
            a, b = Member(alice.id), Member(bob.id)
            await a.connect(one.process.url, alice.token)
            await b.connect(two.process.url, bob.token)
            members += [a, b]
            flows += [(a, b, cid, []), (b, a, cid, [])]

        stop = asyncio.Event()
        senders = [asyncio.ensure_future(_send_until(stop, s, cid, acked)) for s, _, cid, acked in flows]
        await asyncio.sleep(0.5)
        for outage in (1, 2):
            private_redis.kill()
            await asyncio.sleep(OUTAGE_S)
            private_redis.start()  # same port
            # Two separate blips: the cluster has healed (every member told to resync) before the next.
            deadline = time.monotonic() + 20
            while not all(len(m.resyncs) >= outage for m in members):
                assert time.monotonic() < deadline, [m.resyncs for m in members]
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*senders)

        deadline = time.monotonic() + 30
        while True:
            for member in members:
                await member.settle()
            missing = {id(r): set(acked) - r.live - r.by_resync for _, r, _, acked in flows}
            if not any(missing.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)

        total = sum(len(acked) for *_, acked in flows)
        lost_live = sum(len(set(acked) - r.live) for _, r, _, acked in flows)
        assert not any(missing.values()), (
            f"{sum(map(len, missing.values()))} of {total} acked messages never reached their receiver "
            f"live or by resync; resyncs seen: {[m.resyncs for m in members]}")
        assert all(m.disconnects == 0 for m in members), "no client was disconnected: resync did it all"
        # The outages really hid live messages, and resync is what brought them back.
        assert lost_live > 0, f"the outages cost no live delivery ({total} messages): the test proved nothing"
        assert all(m.resyncs for m in members), [m.resyncs for m in members]
        # Nothing doubled or skipped: each conversation holds exactly its acked messages, seq 1..n.
        sent: dict[int, int] = {}
        for _, _, cid, acked in flows:
            sent[cid] = sent.get(cid, 0) + len(acked)
        for member in members:
            for cid, seqs in member.seqs.items():
                assert seqs == set(range(1, sent[cid] + 1)), (cid, sent[cid], sorted(seqs)[-5:])
    finally:
        for member in members:
            if member.client.connected:
                await member.client.disconnect()
        await stop_cluster(nodes)
