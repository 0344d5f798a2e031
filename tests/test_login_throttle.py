"""Password guessing is slowed down: after login_max_failures failures a username answers 429."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Api
from tests.support.flood import CPU_TIME, median_round_trip, sustained, unaffected_during


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


async def _server(tmp_path: Path, db_url: str, **overrides: object) -> tuple[RunningServer, Api]:
    running = await start_server(make_settings(tmp_path, db_url, **overrides))
    return running, Api(running.url)


async def test_concurrent_wrong_logins_are_counted_before_the_password_check(tmp_path: Path, db_url: str) -> None:
    """60 guesses at once with login_max_failures = 10: ten are checked, fifty refused at once; an attacker
    who goes on guessing, 30 at a time, gets only refusals, and another user's login meanwhile is not
    slowed down. Hashing costs here about what it costs in production (16 MiB, ~12 ms; the test config's
    costs 0.2 ms), so guesses that reached the hash would show: without the throttle every guess is a
    hash, and bob's logins queue behind them (x20-26 in CPU time, against x3-5 with it) or are refused 503
    by the full hash queue."""
    running, api = await _server(tmp_path, db_url, login_max_failures=10, argon2_memory_kib=16384)
    try:
        alice, bob = await api.register(), await api.register()
        answers = await asyncio.gather(*(_login(api, alice.username, f"guess number {i}") for i in range(60)))
        statuses = sorted(status for status, _ in answers)
        assert statuses.count(401) == 10 and statuses.count(429) == 50, statuses
        refused = next(body for status, body in answers if status == 429)
        assert refused["error"]["code"] == "rate_limited" and refused["error"]["retry_after_ms"] > 0, refused

        async def bob_logs_in() -> None:
            status, body = await _login(api, bob.username, bob.password)
            assert status == 200, body

        async def guesses(_: int) -> list[tuple[int, dict]]:
            return list(await asyncio.gather(*(_login(api, alice.username, "one more guess") for _ in range(30))))

        # CPU time (see tests/support/flood.py): the work done before bob's answer, not the machine's load.
        before = await median_round_trip(bob_logs_in, count=5, clock=CPU_TIME)
        stop = asyncio.Event()
        more = await unaffected_during(sustained(stop, guesses), bob_logs_in, before, clock=CPU_TIME, stop=stop)
        assert {status for status, _ in more} == {429}, sorted({status for status, _ in more})
    finally:
        await api.close()
        await running.stop()


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(tmp_path: Path, sqlite_url: str) -> None:
    """Untrusted peer: X-Forwarded-For is ignored, so rotating it does not escape the address limit.
    Trusted peer (the proxy): each forwarded client has its own address budget."""
    for trusted, expect_refused in (("", True), ("127.0.0.1", False)):
        running, api = await _server(tmp_path / (trusted or "none"), sqlite_url.replace("aurora.db", f"a{trusted}.db"),
                                     login_max_failures=3, trusted_proxies=trusted)
        try:
            statuses = []
            for index in range(16):  # the per-address limit is 5 x 3 = 15
                status, _ = await api.request(
                    "POST", "/api/auth/login", json={"username": f"nobody{index}", "password": "wrong password!"},
                    headers={"X-Forwarded-For": f"198.51.100.{index + 1}"})
                statuses.append(status)
            assert statuses[:15] == [401] * 15, statuses
            assert statuses[15] == (429 if expect_refused else 401), (trusted, statuses)
        finally:
            await api.close()
            await running.stop()
