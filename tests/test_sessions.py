"""Device sessions: every login is one; list, end one, change the password (ends the others);
sockets of an ended session or an expired token are closed with closing within seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aurora.context import AURORA
from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Account, Api, SocketFactory, TestSocket


@pytest.fixture
async def watched(tmp_path: Path, db_url: str) -> AsyncIterator[RunningServer]:
    running = await start_server(make_settings(tmp_path, db_url, auth_check_interval_s=0.2))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def api(watched: RunningServer) -> AsyncIterator[Api]:
    client = Api(watched.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def sockets(watched: RunningServer) -> AsyncIterator[SocketFactory]:
    factory = SocketFactory(watched.url)
    try:
        yield factory
    finally:
        await factory.close_all()


async def login(api: Api, account: Account, agent: str = "test-device") -> str:
    status, body = await api.request("POST", "/api/auth/login", headers={"User-Agent": agent},
                                     json={"username": account.username, "password": account.password})
    assert status == 200, body
    return body["token"]


async def sessions_of(api: Api, token: str) -> list[dict[str, Any]]:
    status, body = await api.request("GET", "/api/sessions", token=token)
    assert status == 200, body
    return body["sessions"]


async def closed_with(sock: TestSocket, code: str) -> None:
    error = await sock.wait_for("closing", timeout=10)
    assert error["code"] == code and error["message"], error
    for _ in range(100):
        if not sock.client.connected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the socket was not disconnected")


async def test_each_login_is_a_session_that_can_be_listed_and_ended(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    phone = await login(api, alice, "phone")
    listed = await sessions_of(api, phone)
    assert len(listed) == 2 and [s["current"] for s in listed] == [False, True], listed
    assert listed[1]["user_agent"] == "phone" and listed[1]["address"] == "127.0.0.1"
    assert set(listed[0]) == {"id", "created_at", "user_agent", "address", "current"}

    phone_chat = await sockets.connect(phone)
    phone_calls = await sockets.connect(phone, "/calls")
    laptop_chat = await sockets.connect(alice.token)
    status, body = await api.request("DELETE", f"/api/sessions/{listed[1]['id']}", token=alice.token)
    assert status == 200, body
    await closed_with(phone_chat, "auth_invalid")
    await closed_with(phone_calls, "auth_invalid")
    assert laptop_chat.client.connected  # the other session's socket stays
    status, body = await api.request("GET", "/api/me", token=phone)
    assert status == 401 and body["error"]["code"] == "auth_invalid"
    assert (await sockets.connect_error(phone))["data"]["code"] == "auth_invalid"
    assert [s["id"] for s in await sessions_of(api, alice.token)] == [listed[0]["id"]]


async def test_ending_sessions_with_bad_input_changes_nothing(api: Api) -> None:
    alice, bob = await api.register(), await api.register()
    bob_session = (await sessions_of(api, bob.token))[0]["id"]
    for bad, status_code, code in (("abc", 400, "invalid"), ("0", 400, "invalid"), ("99999999", 404, "not_found"),
                                   (str(bob_session), 404, "not_found")):
        status, body = await api.request("DELETE", f"/api/sessions/{bad}", token=alice.token)
        assert status == status_code and body["error"]["code"] == code, (bad, body)
    status, body = await api.request("GET", "/api/sessions")
    assert status == 401 and body["error"]["code"] == "auth_required"
    assert (await api.request("GET", "/api/me", token=bob.token))[0] == 200
    assert len(await sessions_of(api, alice.token)) == 1


async def test_logout_closes_the_sockets_of_its_session_only(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    phone = await login(api, alice)
    phone_socket, laptop_socket = await sockets.connect(phone), await sockets.connect(alice.token)
    status, _ = await api.request("POST", "/api/auth/logout", token=phone)
    assert status == 200
    await closed_with(phone_socket, "auth_invalid")
    assert laptop_socket.client.connected
    status, body = await api.request("POST", "/api/auth/logout", token=alice.token, json={"everywhere": "yes"})
    assert status == 400 and body["error"]["code"] == "invalid", body
    assert (await api.request("GET", "/api/me", token=alice.token))[0] == 200


async def test_password_change_ends_the_other_sessions(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    phone = await login(api, alice)
    phone_socket, laptop_socket = await sockets.connect(phone), await sockets.connect(alice.token)
    path = "/api/auth/password"
    for body, status_code, code in (
        ({"current_password": "wrong password!", "new_password": "a new password"}, 403, "forbidden"),
        ({"current_password": alice.password, "new_password": "short"}, 400, "invalid"),
        ({"current_password": 5, "new_password": "a new password"}, 400, "invalid"),
        ({"new_password": "a new password"}, 400, "invalid"),
    ):
        status, answer = await api.request("POST", path, token=alice.token, json=body)
        assert status == status_code and answer["error"]["code"] == code, (body, answer)
    assert (await api.request("GET", "/api/me", token=phone))[0] == 200  # nothing changed so far

    status, body = await api.request("POST", path, token=alice.token,
                                     json={"current_password": alice.password, "new_password": "a new password"})
    assert status == 200 and body["ended_sessions"] == 1, body
    await closed_with(phone_socket, "auth_invalid")
    assert laptop_socket.client.connected  # this device stays, and gets a fresh token
    for token in (phone, alice.token):
        assert (await api.request("GET", "/api/me", token=token))[0] == 401
    assert (await api.request("GET", "/api/me", token=body["token"]))[0] == 200
    status, _ = await api.request("POST", "/api/auth/login",
                                  json={"username": alice.username, "password": alice.password})
    assert status == 401
    status, _ = await api.request("POST", "/api/auth/login",
                                  json={"username": alice.username, "password": "a new password"})
    assert status == 200


async def test_a_socket_is_closed_when_its_token_expires(tmp_path: Path, db_url: str) -> None:
    running = await start_server(make_settings(tmp_path, db_url, auth_check_interval_s=0.2, token_max_age_s=1))
    api, sockets = Api(running.url), SocketFactory(running.url)
    try:
        alice = await api.register()
        sock = await sockets.connect(alice.token)
        await closed_with(sock, "auth_expired")
        assert (await sockets.connect_error(alice.token))["data"]["code"] == "auth_expired"
    finally:
        await sockets.close_all()
        await api.close()
        await running.stop()


async def test_a_token_from_before_sessions_keeps_working_until_logout(api: Api, sockets: SocketFactory,
                                                                      watched: RunningServer) -> None:
    """Tokens issued before migration 6 carry no session id: valid as before; logout ends them all."""
    alice = await api.register()
    legacy = watched.app[AURORA].signer.issue(alice.id, 1)  # what login issued before sessions: no "s"
    assert (await api.request("GET", "/api/me", token=legacy))[0] == 200
    sock = await sockets.connect(legacy)
    status, _ = await api.request("POST", "/api/auth/logout", token=legacy)
    assert status == 200
    for _ in range(100):
        if not sock.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not sock.client.connected
    for token in (legacy, alice.token):  # like the old logout: every token of the user
        assert (await api.request("GET", "/api/me", token=token))[0] == 401
