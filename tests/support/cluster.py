"""Several real Aurora processes sharing one PostgreSQL and one Redis."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.clients import Api, SocketFactory
from tests.support.processes import AuroraProcess


@dataclass
class Node:
    process: AuroraProcess
    api: Api
    sockets: SocketFactory


async def start_cluster(tmp_path: Path, database_url: str, redis_url: str, count: int = 2,
                        **settings: str) -> list[Node]:
    prefix = f"t{uuid.uuid4().hex[:12]}"  # isolates this test's channel and keys on a shared Redis
    nodes: list[Node] = []
    try:
        for index in range(count):
            process = AuroraProcess(database_url, tmp_path / f"aurora-{index}.log", redis_url=redis_url,
                                    redis_prefix=prefix, presence_dead_after_s="2", **settings)
            await process.start()  # a start that fails stops its own process
            nodes.append(Node(process, Api(process.url), SocketFactory(process.url)))
    except BaseException:
        await stop_cluster(nodes)  # the ones already started do not outlive a failed start
        raise
    return nodes


async def stop_cluster(nodes: list[Node]) -> None:
    for node in nodes:
        await node.sockets.close_all()
        await node.api.close()
        node.process.stop()


async def move_clock(node: Node, **body: float | str | int) -> dict:
    """POST /api/test/clock on a node started with test_clock="true": {advance_s} answers once the timers
    it woke have run, {wait_for, count, within_s} once that many timers with the label are armed."""
    status, answer = await node.api.request("POST", "/api/test/clock", json=body)
    assert status == 200, (body, answer)
    return answer


async def advance_all(nodes: list[Node], seconds: float) -> None:
    """Every node's clock moves by the same amount (each answers once its woken timers have run)."""
    for node in nodes:
        await move_clock(node, advance_s=seconds)
