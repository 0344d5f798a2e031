"""The Python SDK against the server's abuse limits and its `closing` event, on SQLite and PostgreSQL.

The server runs with the limits on and a message bucket of 2 refilled at 2 per second (config/test.toml
turns limits off for feature tests): sends refused with rate_limited are retried after retry_after_ms
and stored exactly once. A device session ended on the server stops the client with that code, the
outbox kept; logout() ends only this device's session unless everywhere=True.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aurora_client import AuroraError

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Account, Api
from tests.support.sdk import SdkFactory, eventually, rest_history

LIMITS = {"rate_limits_enabled": True, "rate_message_burst": 2, "rate_message_per_s": 2.0}


@pytest.fixture
async def limited(tmp_path: Path, db_url: str) -> AsyncIterator[RunningServer]:
    running = await start_server(make_settings(tmp_path, db_url, **LIMITS))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def api(limited: RunningServer) -> AsyncIterator[Api]:
    client = Api(limited.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def sdk(limited: RunningServer) -> AsyncIterator[SdkFactory]:
    factory = SdkFactory(limited.url)
    try:
        yield factory
    finally:
        await factory.close_all()


async def another_login(api: Api, account: Account) -> Account:
    """The same user on another device: its own token and session."""
    status, body = await api.request("POST", "/api/auth/login",
                                     json={"username": account.username, "password": account.password})
    assert status == 200, body
    return Account(account.id, account.username, body["token"], body["user"], account.password)


async def test_rate_limited_sends_are_retried_after_the_delay_and_stored_once(api: Api, sdk: SdkFactory) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    client = await sdk.connected(alice)
    refusals: dict[str, str] = {}  # client_id -> the rate_limited error its last try got

    def on_pending(items: list[dict[str, Any]]) -> None:
        for item in items:
            error = item.get("last_error") or ""
            if error.startswith("rate_limited"):
                refusals[item["client_id"]] = error

    client.on("pending", on_pending)
    bodies = [f"r{i}" for i in range(1, 6)]
    sent = await asyncio.wait_for(asyncio.gather(*(client.send(cid, body) for body in bodies)), 30)
    assert [m["body"] for m in sent] == bodies
    assert len(refusals) >= 2, refusals  # a bucket of 2 cannot take 5 at once
    assert all("retry in" in error for error in refusals.values()), refusals
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
    assert (await laptop.me())["id"] == alice.id and laptop.connected
    await laptop.logout(everywhere=True)
    await eventually(lambda: tablet.state["state"] == "offline", what="the tablet signed out too")
    assert tablet.state["reason"] == "auth_invalid"
