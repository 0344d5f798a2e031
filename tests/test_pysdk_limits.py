"""The Python SDK against the server's abuse limits and its `closing` event, on SQLite and PostgreSQL.

The server runs with the limits on and a message bucket of 2 refilled at 2 per second of its clock, a
ManualClock the test moves (config/test.toml turns limits off for feature tests): sends refused with
rate_limited are retried after retry_after_ms and stored exactly once. A device session ended on the
server stops the client with that code, the outbox kept; logout() ends only this device's session
unless everywhere=True.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aurora_client import AuroraError

from tests.conftest import RunningServer, clock_of
from tests.support.clients import Account, Api
from tests.support.sdk import SdkFactory, eventually, rest_history

LIMITS = {"rate_limits_enabled": True, "rate_message_burst": 2, "rate_message_per_s": 2.0}
pytestmark = pytest.mark.settings(**LIMITS)  # conftest's `server` (on a ManualClock), `api` and `sdk`


async def another_login(api: Api, account: Account) -> Account:
    """The same user on another device: its own token and session."""
    status, body = await api.request("POST", "/api/auth/login",
                                     json={"username": account.username, "password": account.password})
    assert status == 200, body
    return Account(account.id, account.username, body["token"], body["user"], account.password)


async def test_rate_limited_sends_are_retried_after_the_delay_and_stored_once(
        server: RunningServer, api: Api, sdk: SdkFactory) -> None:
    """The bucket refills only when the test moves the server's clock: by one token (1 / rate) for
    each refusal the client reports, so every outcome below is decided, not raced."""
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    client = await sdk.connected(alice)
    refusals: dict[str, list[str]] = {}  # client_id -> the rate_limited errors its tries got
    seen: set[tuple[str, int]] = set()

    def on_pending(items: list[dict[str, Any]]) -> None:
        for item in items:
            error = item.get("last_error") or ""
            attempt = (item["client_id"], item["attempts"])
            if error.startswith("rate_limited") and item["status"] == "queued" and attempt not in seen:
                seen.add(attempt)
                refusals.setdefault(item["client_id"], []).append(error)
                clock_of(server).advance(1 / LIMITS["rate_message_per_s"])  # one token, for its retry

    client.on("pending", on_pending)
    bodies = [f"r{i}" for i in range(1, 6)]
    sent = await asyncio.wait_for(asyncio.gather(*(client.send(cid, body) for body in bodies)), 30)
    assert [m["body"] for m in sent] == bodies
    by_body = {m["client_id"]: m["body"] for m in sent}
    # One conversation's sends go one at a time: a bucket of 2 takes r1 and r2, and each later one is
    # refused once, then taken by its retry after the delay the refusal named (the token it waited for).
    assert {by_body[c]: len(errors) for c, errors in refusals.items()} == {"r3": 1, "r4": 1, "r5": 1}, refusals
    assert all("retry in 0.5 s" in e for errors in refusals.values() for e in errors), refusals
    history = await rest_history(api, alice, cid)
    assert [m["body"] for m in history] == bodies  # each once, in typed order
    assert len({m["client_id"] for m in history}) == len(bodies)
    assert client.pending() == []


async def test_closing_auth_invalid_stops_the_client_with_the_code_and_keeps_the_outbox(
        api: Api, sdk: SdkFactory) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    device = await another_login(api, alice)
    client = await sdk.connected(device)
    states: list[dict[str, Any]] = []
    client.on("state", states.append)
    status, _ = await api.request("POST", "/api/auth/logout", token=device.token)  # "log out that device"
    assert status == 200
    await eventually(lambda: client.state["state"] == "offline", what="offline after closing")
    assert client.state == {"state": "offline", "reason": "auth_invalid"}
    assert not any(s["state"] == "reconnecting" for s in states), states  # closing said why: no retry
    with pytest.raises(AuroraError) as refused:
        await asyncio.wait_for(client.send(cid, "after the logout"), 10)
    assert refused.value.code == "auth_invalid"
    assert [p["body"] for p in client.pending()] == ["after the logout"]  # kept for a client with a new token


async def test_logout_ends_this_device_only_unless_everywhere(api: Api, sdk: SdkFactory) -> None:
    alice = await api.register()
    phone, laptop, tablet = [await sdk.connected(await another_login(api, alice)) for _ in range(3)]
    await phone.logout()
    with pytest.raises(AuroraError) as gone:
        await phone.rest.me()
    assert gone.value.code == "auth_invalid"
    # That call opened a REST session after close(): close() again releases it. (It used to leak, and its
    # "Unclosed client session" was logged when collected, in whatever test ran then.)
    await phone.close()
    assert phone.rest._session is None
    assert (await laptop.me())["id"] == alice.id and laptop.connected
    await laptop.logout(everywhere=True)
    await eventually(lambda: tablet.state["state"] == "offline", what="the tablet signed out too")
    assert tablet.state["reason"] == "auth_invalid"
