"""Redis goes away and comes back: every process keeps serving its own clients, then the cluster heals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Node, start_cluster, stop_cluster
from tests.support.processes import RedisProcess
from tests.support.services import require_or_skip


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    if not RedisProcess.available():
        require_or_skip("redis-server", "not installed")
    server = RedisProcess(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


async def _health(node: Node) -> tuple[int, dict]:
    return await node.api.request("GET", "/health")


async def _wait_health(node: Node, queue: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = await _health(node)
        if body.get("message_queue") == queue:
            assert status == 200, body  # degraded, never out of the load balancer for a queue outage
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"message_queue never became {queue!r}: {body}")


async def test_redis_outage_degrades_then_heals(tmp_path: Path, postgres_url: str,
                                                private_redis: RedisProcess) -> None:
    nodes = await start_cluster(tmp_path, postgres_url, private_redis.url)
    try:
        one, two = nodes
        alice = await one.api.register()
        bob = await two.api.register()
        carol = await one.api.register()
        with_bob = await one.api.conversation(alice, [bob])
        with_carol = await one.api.conversation(alice, [carol])
        alice_socket = await one.sockets.connect(alice.token)
        bob_socket = await two.sockets.connect(bob.token)
        carol_socket = await one.sockets.connect(carol.token)
        assert (await _health(one))[1]["message_queue"] == "ok"

        private_redis.stop()
        degraded = await _wait_health(one, "error")
        assert degraded["status"] == "degraded" and degraded["database"] == "ok"

        # Same-process delivery and durable acks go on without Redis.
        local = await alice_socket.call("send_message", {"conversation_id": with_carol["id"], "body": "still here"})
        assert local["ok"], local
        assert (await carol_socket.wait_for("new_message"))["id"] == local["message"]["id"]
        during = []
        for body in ("during 1", "during 2"):
            ack = await alice_socket.call("send_message", {"conversation_id": with_bob["id"], "body": body})
            assert ack["ok"], ack  # acked means stored, whatever Redis does
            during.append(ack["message"])

        private_redis.start()  # same port
        await _wait_health(one, "ok")
        await _wait_health(two, "ok")

        # Cross-process delivery resumes by itself (the pub/sub listener reconnects with back-off).
        deadline = time.monotonic() + 30
        live = None
        while live is None and time.monotonic() < deadline:
            ack = await alice_socket.call("send_message", {"conversation_id": with_bob["id"], "body": "after"})
            assert ack["ok"], ack
            try:
                live = await bob_socket.wait_for("new_message", lambda m, i=ack["message"]["id"]: m["id"] == i,
                                                 timeout=1)
            except AssertionError:
                continue
        assert live is not None, "cross-process delivery did not resume"

        # What bob missed while Redis was away comes back through sync, without gaps or doubles.
        synced = await bob_socket.call("sync", {"cursors": {str(with_bob["id"]): 0}})
        seqs = [m["seq"] for m in synced["messages"]]
        assert seqs == list(range(1, len(seqs) + 1))
        assert {m["id"] for m in during} <= {m["id"] for m in synced["messages"]}
        assert seqs[-1] >= live["seq"]
    finally:
        await stop_cluster(nodes)


async def test_registry_is_rewritten_after_redis_loses_its_data(tmp_path: Path, postgres_url: str,
                                                                private_redis: RedisProcess) -> None:
    import redis

    nodes = await start_cluster(tmp_path, postgres_url, private_redis.url)
    try:
        one, two = nodes
        alice = await one.api.register()
        bob = await two.api.register()
        await two.sockets.connect(bob.token)

        async def bob_online_seen_from_one() -> bool:
            status, body = await one.api.request("GET", f"/api/users?q={bob.username}", token=alice.token)
            assert status == 200
            return body["users"][0]["online"]

        assert await bob_online_seen_from_one()
        redis.Redis.from_url(private_redis.url).flushall()  # no command of Aurora's fails: the data is just gone
        deadline = time.monotonic() + 10
        while not await bob_online_seen_from_one():
            assert time.monotonic() < deadline, "process two never wrote its sockets back"
            await asyncio.sleep(0.2)
    finally:
        await stop_cluster(nodes)
