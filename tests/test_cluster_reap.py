"""Reaping a dead process survives a database failure: the reap is retried until presence and calls
are updated, and the log says what failed (not "Redis unreachable")."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.cluster import Node
from tests.support.foundation import raw_query


@pytest.fixture
def cluster_settings() -> dict[str, str]:
    return {"call_grace_s": "1"}


async def _wait_log(node: Node, needle: str, timeout: float = 20) -> str:
    for _ in range(int(timeout / 0.1)):
        text = node.process.log_text()
        if needle in text:
            return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{needle!r} never logged:\n{node.process.log_text()[-3000:]}")


async def test_a_reap_that_meets_a_database_failure_is_retried_until_done(
        cluster: list[Node], postgres_url: str) -> None:
    one, two = cluster
    alice = await one.api.register()
    bob = await one.api.register()
    cid = (await one.api.conversation(alice, [bob]))["id"]
    alice_chat = await one.sockets.connect(alice.token)
    alice_device = await one.sockets.connect(alice.token, "/calls")
    await two.sockets.connect(bob.token)
    bob_device = await two.sockets.connect(bob.token, "/calls")
    await alice_chat.wait_for("presence", lambda p: p["user_id"] == bob.id and p["online"])
    invite = await alice_device.call("call_invite", {"conversation_id": cid, "media": "audio"})
    assert invite["ok"], invite
    await bob_device.wait_for("call_incoming")
    assert (await bob_device.call("call_accept", {"call_id": invite["call"]["id"]}))["ok"]
    await alice_device.wait_for("call_accepted")

    # The database fails what the reap needs: call participants (grace periods), users (last seen).
    raw_query(postgres_url, "ALTER TABLE call_participant RENAME TO call_participant_away")
    raw_query(postgres_url, 'ALTER TABLE "user" RENAME TO user_away')
    try:
        two.process.kill()  # bob's sockets vanish without a goodbye
        log = await _wait_log(one, "incomplete")
        assert "retrying" in log
        assert "Redis unreachable" not in log
    finally:
        raw_query(postgres_url, "ALTER TABLE call_participant_away RENAME TO call_participant")
        raw_query(postgres_url, 'ALTER TABLE user_away RENAME TO "user"')

    # Once the database works again the retried reap finishes: bob goes offline, and the call that
    # lost his device ends after its grace period instead of staying live forever.
    offline = await alice_chat.wait_for("presence", lambda p: p["user_id"] == bob.id and not p["online"],
                                        timeout=30)
    assert offline["last_seen_at"] is not None
    ended = await alice_device.wait_for("call_ended", timeout=30)
    assert ended["call_id"] == invite["call"]["id"] and ended["reason"] == "disconnected"
    await _wait_log(one, "after")  # "Reaped process ... after N attempts"
