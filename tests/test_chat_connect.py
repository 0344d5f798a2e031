"""/chat handshake authentication: the three ways to present a token, and every refusal with its code."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import socketio
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from aurora.services.tokens import TOKEN_SALT
from aurora.settings import Settings
from tests.support.clients import Api, SocketFactory


def _signed_at(settings: Settings, payload: dict[str, Any], age_s: int) -> str:
    """A token signed with the server's own key, as if it had been issued age_s seconds ago."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age_s

    serializer = URLSafeTimedSerializer(settings.secret_keys[0], salt=TOKEN_SALT, signer=PastSigner)
    return serializer.dumps(payload)


async def _refused(sockets: SocketFactory, *, auth: Any = None, headers: dict[str, str] | None = None,
                   url_suffix: str = "") -> Any:
    """connect_error data for a handshake made exactly as given (auth, headers, query)."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", lambda data: errors.append(data), namespace="/chat")
    try:
        await client.connect(sockets.base_url + url_suffix, namespaces=["/chat"], transports=["websocket"],
                             auth=auth, headers=headers or {}, wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        pass
    else:
        await client.disconnect()
        raise AssertionError("the connection was accepted")
    assert errors, "no connect_error data received"
    return errors[0]


def _assert_refusal(packet: Any, code: str) -> None:
    """The CONNECT_ERROR payload on the wire is {message, data}; socket.io-client exposes `data` as err.data."""
    assert isinstance(packet, dict), packet
    assert isinstance(packet.get("message"), str) and packet["message"], packet
    data = packet.get("data")
    assert isinstance(data, dict), packet
    assert data["code"] == code, packet
    assert isinstance(data.get("message"), str) and data["message"], packet


async def _proves_identity(api: Api, sockets: SocketFactory, sock: Any, me: Any) -> None:
    """The socket is authenticated as `me`: it is in `me`'s rooms and may send as `me`."""
    other = await api.register()
    conversation = await api.conversation(other, [me])
    await sock.wait_for("conversation_created", lambda d: d["conversation"]["id"] == conversation["id"])
    ack = await sock.call("send_message", {"conversation_id": conversation["id"], "body": "it is me"})
    assert ack["ok"] is True, ack
    assert ack["message"]["sender_id"] == me.id


async def test_auth_token_in_handshake_auth(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    sock = await sockets.connect(alice.token)
    await _proves_identity(api, sockets, sock, alice)


async def test_authorization_bearer_header(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    sock = await sockets.connect(None, use_auth=False, headers={"Authorization": f"Bearer {alice.token}"})
    await _proves_identity(api, sockets, sock, alice)


async def test_token_query_parameter(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    sock = await sockets.connect(None, use_auth=False, url_suffix=f"?token={alice.token}")
    await _proves_identity(api, sockets, sock, alice)


async def test_no_token_is_auth_required(api: Api, sockets: SocketFactory) -> None:
    _assert_refusal(await _refused(sockets), "auth_required")
    _assert_refusal(await _refused(sockets, auth={}), "auth_required")
    _assert_refusal(await _refused(sockets, auth={"token": ""}), "auth_required")


@pytest.mark.parametrize("how", ["auth", "header", "query"])
async def test_garbage_token_is_auth_invalid_on_every_path(api: Api, sockets: SocketFactory, how: str) -> None:
    bad = "not.a.token"
    if how == "auth":
        data = await _refused(sockets, auth={"token": bad})
    elif how == "header":
        data = await _refused(sockets, headers={"Authorization": f"Bearer {bad}"})
    else:
        data = await _refused(sockets, url_suffix=f"?token={bad}")
    _assert_refusal(data, "auth_invalid")


async def test_token_signed_with_another_key_is_auth_invalid(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    forged = URLSafeTimedSerializer("some-other-secret-key-0123456789abcdef", salt=TOKEN_SALT).dumps(
        {"uid": alice.id, "v": 1}
    )
    _assert_refusal(await _refused(sockets, auth={"token": forged}), "auth_invalid")


async def test_token_of_unknown_user_is_auth_invalid(api: Api, sockets: SocketFactory, settings: Settings) -> None:
    token = _signed_at(settings, {"uid": 987654321, "v": 1}, age_s=0)
    _assert_refusal(await _refused(sockets, auth={"token": token}), "auth_invalid")


async def test_expired_token_is_refused_with_auth_expired(api: Api, sockets: SocketFactory,
                                                          settings: Settings) -> None:
    alice = await api.register()
    fresh = _signed_at(settings, {"uid": alice.id, "v": 1}, age_s=0)
    # Control: the same payload signed now is accepted, so only the age differs.
    sock = await sockets.connect(fresh)
    await sock.disconnect()
    old = _signed_at(settings, {"uid": alice.id, "v": 1}, age_s=settings.token_max_age_s + 60)
    _assert_refusal(await _refused(sockets, auth={"token": old}), "auth_expired")
    _assert_refusal(await _refused(sockets, headers={"Authorization": f"Bearer {old}"}), "auth_expired")
    _assert_refusal(await _refused(sockets, url_suffix=f"?token={old}"), "auth_expired")


async def test_token_invalidated_by_logout_is_refused(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    sock = await sockets.connect(alice.token)  # valid before logout
    await sock.disconnect()
    status, body = await api.request("POST", "/api/auth/logout", token=alice.token)
    assert status == 200, body
    _assert_refusal(await _refused(sockets, auth={"token": alice.token}), "auth_invalid")
    _assert_refusal(await _refused(sockets, headers={"Authorization": f"Bearer {alice.token}"}), "auth_invalid")
    # Logging in again gives a token that works.
    status, body = await api.request("POST", "/api/auth/login",
                                     json={"username": alice.username, "password": alice.password})
    assert status == 200, body
    again = await sockets.connect(body["token"])
    await _proves_identity(api, sockets, again, alice)


async def test_refused_connection_joins_nothing(api: Api, sockets: SocketFactory) -> None:
    """A refused socket must not linger in any room: the sender's broadcast count stays exact."""
    alice = await api.register()
    bob = await api.register()
    conversation = await api.conversation(alice, [bob])
    _assert_refusal(await _refused(sockets, auth={"token": "junk"}), "auth_invalid")
    bob_socket = await sockets.connect(bob.token)
    status, body = await api.send(alice, conversation["id"], "hello")
    assert status == 201, body
    got = await bob_socket.wait_for("new_message")
    assert got["body"] == "hello"
    status, health = await api.request("GET", "/health")
    assert health["connections"] == 1, health


async def test_query_token_never_reaches_the_logs(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Legacy ?token= clients: the server, run with its production access logger, never logs the token."""
    from aiohttp import web

    from aurora.application import RedactingAccessLogger, create_app

    caplog.set_level(logging.DEBUG)
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    api = Api(url)
    sockets = SocketFactory(url)
    try:
        alice = await api.register()
        sock = await sockets.connect(None, use_auth=False, url_suffix=f"?token={alice.token}")
        await _proves_identity(api, sockets, sock, alice)
        await sock.disconnect()
        _assert_refusal(await _refused(sockets, url_suffix="?token=secret-looking-junk"), "auth_invalid")
    finally:
        await sockets.close_all()
        await api.close()
        await runner.cleanup()
    assert any("/socket.io/" in r.getMessage() for r in caplog.records), "the access log recorded nothing"
    for record in caplog.records:
        text = record.getMessage()
        assert alice.token not in text, text
        assert "secret-looking-junk" not in text, text
