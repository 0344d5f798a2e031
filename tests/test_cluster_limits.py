"""Two real Aurora processes sharing Redis: one user has one budget, wherever their sockets are;
the login throttle, the socket cap and ended sessions hold across processes."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.cluster import Node
from tests.support.flood import check_refusal, codes, flood
from tests.support.raw_socket import RawSocket, event_frame


@pytest.fixture
def cluster_settings() -> dict[str, str]:
    return {"rate_limits_enabled": "true", "rate_message_burst": "6", "rate_message_per_s": "0.01",
            "login_max_failures": "4", "max_sockets_per_user": "2", "auth_check_interval_s": "0.3"}


async def test_limits_are_cluster_wide(cluster: list[Node]) -> None:
    one, two = cluster
    alice, bob = await one.api.register(), await two.api.register()
    conversation = await one.api.conversation(alice, [bob])

    # One budget of 6 messages over sockets on both processes, flooded at once.
    on_one, on_two = await one.sockets.connect(alice.token), await two.sockets.connect(alice.token)
    payload = {"conversation_id": conversation["id"], "body": "spam"}
    acks = [a for batch in await asyncio.gather(flood(on_one, "send_message", [payload] * 40),
                                                flood(on_two, "send_message", [payload] * 40)) for a in batch]
    counted = codes(acks)
    assert counted == {"ok": 6, "rate_limited": 74}, counted
    check_refusal(next(a for a in acks if not a["ok"]))

    # The socket cap counts both processes: alice already has one /chat socket on each.
    refused = await one.sockets.connect_error(alice.token)
    assert refused["data"]["code"] == "rate_limited", refused
    assert (await two.sockets.connect_error(alice.token))["data"]["code"] == "rate_limited"

    # Failed logins for one username are counted once for the cluster, reserved before the check.
    wrong = {"username": bob.username, "password": "wrong password!"}
    answers = await asyncio.gather(*(node.api.request("POST", "/api/auth/login", json=wrong)
                                     for node in (one, two) for _ in range(6)))
    assert sorted(status for status, _ in answers) == [401] * 4 + [429] * 8, answers


async def test_a_session_ended_on_one_process_closes_its_sockets_on_the_other(cluster: list[Node]) -> None:
    one, two = cluster
    alice = await one.api.register()
    status, body = await two.api.request("POST", "/api/auth/login",
                                         json={"username": alice.username, "password": alice.password})
    assert status == 200
    phone = body["token"]
    phone_socket = await two.sockets.connect(phone)
    laptop_socket = await two.sockets.connect(alice.token)
    status, sessions = await one.api.request("GET", "/api/sessions", token=alice.token)
    phone_session = next(s["id"] for s in sessions["sessions"] if not s["current"])
    status, body = await one.api.request("DELETE", f"/api/sessions/{phone_session}", token=alice.token)
    assert status == 200, body
    error = await phone_socket.wait_for("closing", timeout=10)  # within auth_check_interval_s
    assert error["code"] == "auth_invalid", error
    for _ in range(100):
        if not phone_socket.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not phone_socket.client.connected
    assert laptop_socket.client.connected


async def test_a_flooding_socket_is_closed_and_frees_its_cluster_wide_slot(cluster: list[Node]) -> None:
    """One process closes a socket that floods past flood_disconnect_refusals (200): the rest of its flood
    is not read, its connection is closed although the client never closes it, and its slot in the
    cluster-wide socket cap is free again for the other process."""
    one, two = cluster
    alice, bob = await one.api.register(), await two.api.register()
    conversation = await one.api.conversation(alice, [bob])
    flooder = await RawSocket.connected(one.process.port, alice.token)
    await two.sockets.connect(alice.token)  # the cap (2) is now full, across both processes
    assert (await one.sockets.connect_error(alice.token))["data"]["code"] == "rate_limited"
    flooder.writer.write(b"".join(event_frame("/chat", i, "send_message", {"conversation_id": conversation["id"],
                                                                          "body": f"spam {i}"}) for i in range(600)))
    answers = []
    while (got := await asyncio.wait_for(flooder.frame(), 15)) is not None:
        if got[1].startswith(b"43/chat,"):
            answers.append(got[1])
    flooder.close()
    assert len(answers) < 300, len(answers)  # 6 stored, 200 refused, then nothing more was answered
    # The closed socket left the registry (before its connection was closed): a new one fits under the cap.
    fresh = await two.sockets.connect(alice.token)
    assert fresh.client.connected
