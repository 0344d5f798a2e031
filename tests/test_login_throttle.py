"""Password guessing is slowed down: after login_max_failures failures a username answers 429."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Api


@pytest.fixture
async def strict(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Api]:
    running: RunningServer = await start_server(make_settings(tmp_path, sqlite_url, login_max_failures=3))
    api = Api(running.url)
    try:
        yield api
    finally:
        await api.close()
        await running.stop()


async def _login(api: Api, username: str, password: str) -> tuple[int, dict]:
    return await api.request("POST", "/api/auth/login", json={"username": username, "password": password})


async def test_failed_logins_lock_the_username_then_429(strict: Api) -> None:
    alice = await strict.register()
    for _ in range(3):
        status, body = await _login(strict, alice.username, "wrong password!")
        assert status == 401 and body["error"]["code"] == "invalid_credentials"
    status, body = await _login(strict, alice.username.upper(), alice.password)  # even the right one now
    assert status == 429 and body["error"]["code"] == "rate_limited", body
    # Another user is not affected by alice's lock (3 failures < the per-address limit of 15).
    bob = await strict.register()
    status, body = await _login(strict, bob.username, bob.password)
    assert status == 200 and body["user"]["id"] == bob.id


async def test_a_success_clears_the_username_count(strict: Api) -> None:
    alice = await strict.register()
    for _ in range(2):
        assert (await _login(strict, alice.username, "wrong password!"))[0] == 401
    assert (await _login(strict, alice.username, alice.password))[0] == 200
    for _ in range(2):
        assert (await _login(strict, alice.username, "wrong password!"))[0] == 401
    assert (await _login(strict, alice.username, alice.password))[0] == 200


async def test_one_address_guessing_many_usernames_is_limited(strict: Api) -> None:
    for index in range(15):  # 5 x login_max_failures per client address
        status, _ = await _login(strict, f"nobody{index}", "wrong password!")
        assert status == 401
    status, body = await _login(strict, "nobody-else", "wrong password!")
    assert status == 429 and body["error"]["code"] == "rate_limited", body
