"""Blocks across two real processes (one PostgreSQL, one Redis): each keeps the blocks in memory and
follows changes made on the other within about a second."""

from __future__ import annotations

import asyncio

from tests.support.cluster import Node


async def test_a_block_made_on_one_process_holds_on_the_other(cluster: list[Node]) -> None:
    """Each process keeps the blocks in memory; one made (and one lifted) through process two is
    followed by process one within about a second (services/cluster_version.py)."""
    one, two = cluster
    bob, mallory = await one.api.register(), await one.api.register()
    dm = await one.api.conversation(mallory, [bob])
    status, body = await one.api.send(mallory, dm["id"], "before the block")
    assert status == 201, body  # process one has loaded its (empty) copy of the blocks

    async def sends_on_one(text: str, expected: int) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            status, body = await one.api.send(mallory, dm["id"], text)
            if status == expected:
                return
            assert asyncio.get_running_loop().time() < deadline, (expected, status, body)
            await asyncio.sleep(0.05)

    status, _ = await two.api.request("POST", f"/api/users/{mallory.id}/block", token=bob.token)
    assert status == 201
    await sends_on_one("after the block", 403)
    status, body = await one.api.send(mallory, dm["id"], "still blocked")
    assert status == 403 and body["error"]["code"] == "forbidden", body
    status, _ = await two.api.request("DELETE", f"/api/users/{mallory.id}/block", token=bob.token)
    assert status == 200
    await sends_on_one("unblocked", 201)
