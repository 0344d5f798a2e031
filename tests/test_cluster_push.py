"""Web Push across two real processes (one PostgreSQL, one Redis): a member whose only open app is
on the other process is online and gets no push; the processes share one VAPID key (one data_dir)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.clients import Account, Api
from tests.support.cluster import Node
from tests.support.push_service import Device, StandInPushService


@pytest.fixture
async def standin() -> AsyncIterator[StandInPushService]:
    service = await StandInPushService().start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
def cluster_settings() -> dict[str, str]:
    return {"push_allow_insecure_endpoints": "true", "push_endpoint_hosts": "127.0.0.1", "push_retry_base_s": "0.05"}


async def subscribe(api: Api, account: Account, standin: StandInPushService, name: str) -> Device:
    status, body = await api.request("GET", "/api/push/vapid-public-key", token=account.token)
    assert status == 200, body
    device = standin.device(name, body["public_key"])
    status, body = await api.request("POST", "/api/push/subscriptions", token=account.token,
                                     json=device.subscription())
    assert status == 201, body
    return device


async def settled(node: Node, within: float = 10.0) -> dict[str, int]:
    """The node's push counters once nothing is queued, sending or waiting for a retry."""
    deadline = time.monotonic() + within
    while True:
        status, health = await node.api.request("GET", "/health")
        assert status == 200, health
        if health["push"]["pending"] == 0 or time.monotonic() > deadline:
            assert health["push"]["pending"] == 0, health
            return health["push"]
        await asyncio.sleep(0.05)


async def members_online(node: Node, account: Account, conversation_id: int) -> dict[int, bool]:
    status, body = await node.api.request("GET", f"/api/conversations/{conversation_id}", token=account.token)
    assert status == 200, body
    return {m["id"]: m["online"] for m in body["conversation"]["members"]}


async def test_a_member_online_on_the_other_process_gets_no_push(cluster: list[Node],
                                                                 standin: StandInPushService) -> None:
    one, two = cluster
    alice, bob, carol = await one.api.register(), await one.api.register(), await one.api.register()
    # Subscribed through process two, pushed by process one: both sign with the same VAPID key.
    await subscribe(two.api, bob, standin, "bob")
    await subscribe(two.api, carol, standin, "carol")
    group = await one.api.conversation(alice, [bob, carol], title="Across")
    bob_socket = await two.sockets.connect(bob.token)  # bob's only open app is on process two
    assert (await members_online(one, alice, group["id"]))[bob.id] is True

    status, sent = await one.api.send(alice, group["id"], "who hears this?")
    assert status == 201, sent
    await standin.wait_for(1, "carol")
    stats = await settled(one)
    assert [d.device for d in standin.deliveries] == ["carol"]
    assert stats["sent"] == 1

    await bob_socket.disconnect()
    deadline = time.monotonic() + 10
    while (await members_online(one, alice, group["id"]))[bob.id]:
        assert time.monotonic() < deadline, "bob still online on process one"
        await asyncio.sleep(0.05)
    status, again = await one.api.send(alice, group["id"], "and now?")
    assert status == 201, again
    await standin.wait_for(1, "bob")
    await settled(one)
    assert sorted((d.device, d.payload["seq"]) for d in standin.deliveries) == [
        ("bob", again["message"]["seq"]), ("carol", sent["message"]["seq"]), ("carol", again["message"]["seq"])]
    assert standin.violations == []


async def test_a_mute_or_leave_on_the_other_process_reaches_the_pushing_process(
        cluster: list[Node], standin: StandInPushService) -> None:
    """Process one keeps who could be pushed to in memory; changes made through process two empty that
    copy within about a second (a version key in Redis), so one never pushes to a member who muted
    or left there."""
    one, two = cluster
    alice, bob, carol = await one.api.register(), await one.api.register(), await one.api.register()
    await subscribe(one.api, bob, standin, "bob")
    await subscribe(one.api, carol, standin, "carol")
    group = await one.api.conversation(alice, [bob, carol], title="Moving")

    async def pushed_for(text: str) -> list[str]:
        status, sent = await one.api.send(alice, group["id"], text)
        assert status == 201, sent
        await settled(one)
        return sorted(d.device for d in standin.deliveries if d.payload["seq"] == sent["message"]["seq"])

    async def followed(before: int) -> None:
        """Until process one has emptied its copy after the change made on two."""
        deadline = time.monotonic() + 10
        while (await settled(one))["audience_resets"] == before:
            assert time.monotonic() < deadline, "process one never followed the change made on two"
            await asyncio.sleep(0.05)

    assert await pushed_for("warm") == ["bob", "carol"]  # process one now holds the group's audience
    resets = (await settled(one))["audience_resets"]
    status, _ = await two.api.request("PUT", f"/api/conversations/{group['id']}/mute", token=bob.token)
    assert status == 200
    await followed(resets)
    assert await pushed_for("muted") == ["carol"]

    resets = (await settled(one))["audience_resets"]
    status, _ = await two.api.request("DELETE", f"/api/conversations/{group['id']}/members/me", token=carol.token)
    assert status in (200, 204)
    await followed(resets)
    assert await pushed_for("left") == []
    assert standin.violations == []
