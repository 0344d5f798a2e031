"""Real clients for tests: an HTTP client for the REST API and recording Socket.IO clients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import socketio

DEFAULT_PASSWORD = "correct horse battery"


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass
class Account:
    id: int
    username: str
    token: str
    user: dict[str, Any]
    password: str = DEFAULT_PASSWORD


class Api:
    """A thin JSON client: every call returns (status, parsed body)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def request(self, method: str, path: str, *, token: str | None = None, json: Any = None,
                      data: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.base_url + path, json=json, data=data,
                                        headers=all_headers) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def request_with_headers(self, method: str, path: str, *, token: str | None = None,
                                   json: Any = None) -> tuple[int, Any, Any]:
        """request(), plus the response headers."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.base_url + path, json=json, headers=headers) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body, response.headers

    async def register(self, username: str | None = None, password: str = DEFAULT_PASSWORD,
                       display_name: str | None = None) -> Account:
        body: dict[str, Any] = {"username": username or unique_name(), "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        status, data = await self.request("POST", "/api/auth/register", json=body)
        assert status == 201, (status, data)
        return Account(data["user"]["id"], data["user"]["username"], data["token"], data["user"], password)

    async def conversation(self, account: Account, others: list[Account], title: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"user_ids": [o.id for o in others]}
        if title is not None:
            body["title"] = title
        status, data = await self.request("POST", "/api/conversations", token=account.token, json=body)
        assert status in (200, 201), (status, data)
        return data["conversation"]

    async def send(self, account: Account, conversation_id: int, body: str,
                   client_id: str | None = None) -> tuple[int, Any]:
        payload: dict[str, Any] = {"body": body}
        if client_id is not None:
            payload["client_id"] = client_id
        return await self.request("POST", f"/api/conversations/{conversation_id}/messages",
                                  token=account.token, json=payload)


class TestSocket:
    """A python-socketio AsyncClient that records every event it receives."""

    __test__ = False  # not a pytest test class

    def __init__(self, client: socketio.AsyncClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.received: list[tuple[str, Any]] = []
        self._changed = asyncio.Condition()

    async def _record(self, event: str, *args: Any) -> None:
        self.received.append((event, args[0] if len(args) == 1 else list(args)))
        async with self._changed:
            self._changed.notify_all()

    def events(self, name: str) -> list[Any]:
        return [data for event, data in self.received if event == name]

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        """Emit with an ack callback and return the ack."""
        return await self.client.call(event, data, namespace=self.namespace, timeout=timeout)

    async def emit(self, event: str, data: Any = None) -> None:
        """Emit without an ack callback."""
        await self.client.emit(event, data, namespace=self.namespace)

    async def wait_for(self, name: str, predicate: Callable[[Any], bool] = lambda _: True,
                       timeout: float = 5.0) -> Any:
        """The first recorded `name` event matching predicate (already received or arriving)."""
        async def find() -> Any:
            async with self._changed:
                while True:
                    for event, data in self.received:
                        if event == name and predicate(data):
                            return data
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {name!r} event within {timeout}s; got {self.received!r}") from None

    async def wait_count(self, name: str, count: int, timeout: float = 10.0) -> list[Any]:
        async def enough() -> list[Any]:
            async with self._changed:
                while len(self.events(name)) < count:
                    await self._changed.wait()
                return self.events(name)
        try:
            return await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            raise AssertionError(f"{len(self.events(name))} {name!r} events, expected {count}") from None

    async def disconnect(self) -> None:
        await self.client.disconnect()


class SocketFactory:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._clients: list[socketio.AsyncClient] = []

    async def connect(self, token: str | None, namespace: str = "/chat", *, transports: list[str] | None = None,
                      headers: dict[str, str] | None = None, use_auth: bool = True,
                      url_suffix: str = "") -> TestSocket:
        client = socketio.AsyncClient(reconnection=False)
        self._clients.append(client)
        sock = TestSocket(client, namespace)
        client.on("*", sock._record, namespace=namespace)
        await client.connect(
            self.base_url + url_suffix, namespaces=[namespace], transports=transports or ["websocket"],
            auth={"token": token} if (use_auth and token is not None) else None,
            headers=headers or {}, wait_timeout=10,
        )
        return sock

    async def connect_error(self, token: str | None, namespace: str = "/chat", **kwargs: Any) -> Any:
        """Try to connect; return the connect_error data the server refused with."""
        client = socketio.AsyncClient(reconnection=False)
        self._clients.append(client)
        errors: list[Any] = []
        client.on("connect_error", lambda data: errors.append(data), namespace=namespace)
        try:
            await client.connect(self.base_url, namespaces=[namespace], transports=["websocket"],
                                 auth={"token": token} if token is not None else None, wait_timeout=10, **kwargs)
        except socketio.exceptions.ConnectionError:
            pass
        else:
            raise AssertionError("the connection was accepted")
        assert errors, "no connect_error data received"
        return errors[0]

    async def close_all(self) -> None:
        for client in self._clients:
            if client.connected:
                if client.transport() == "polling":
                    # python-engineio's client otherwise waits for the pending long-poll (~25 s).
                    await client.eio.disconnect(abort=True)
                else:
                    await client.disconnect()


# -- helpers for the /calls tests ---------------------------------------------
def _short(value: Any, limit: int = 600) -> str:
    """A repr for assertion messages that stays readable when a payload is 60 KiB."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


async def acked(sock: TestSocket, event: str, data: Any = None) -> dict[str, Any]:
    """Emit with an ack that must be {ok: true, ...}; return the ack."""
    ack = await sock.call(event, data)
    assert isinstance(ack, dict) and ack.get("ok") is True, _short((event, data, ack))
    return ack


async def refused(sock: TestSocket, event: str, data: Any, code: str) -> dict[str, Any]:
    """Emit with an ack that must be {ok: false, error: {code, message}} with this code; return the error."""
    ack = await sock.call(event, data)
    assert isinstance(ack, dict) and ack.get("ok") is False, _short((event, data, ack))
    assert ack["error"]["code"] == code, _short((event, data, ack))
    assert isinstance(ack["error"].get("message"), str) and ack["error"]["message"], ack
    return ack["error"]


async def round_trip(sock: TestSocket) -> None:
    """One acknowledged exchange on this socket: everything the server emitted to it before
    handling this event has been received (a socket's packets arrive in order).
    An unknown event is used because every event, even an unknown one, is acknowledged."""
    ack = await sock.call("__round_trip__")
    assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack


CALL_KEYS = frozenset({"id", "conversation_id", "caller_id", "media", "state", "end_reason", "participants",
                       "created_at", "answered_at", "ended_at"})
ISO_TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def check_call_json(call: dict[str, Any]) -> None:
    """The call JSON of the protocol: every documented key, valid values, ISO-8601 UTC timestamps."""
    import re

    assert CALL_KEYS <= set(call), call
    assert call["media"] in ("audio", "video"), call
    assert call["state"] in ("ringing", "active", "ended"), call
    assert isinstance(call["participants"], list) and all(isinstance(u, int) for u in call["participants"]), call
    assert re.match(ISO_TIMESTAMP, call["created_at"]), call
    for key in ("answered_at", "ended_at"):
        assert call[key] is None or re.match(ISO_TIMESTAMP, call[key]), call


def for_call(call_id: int) -> Callable[[Any], bool]:
    """A wait_for predicate: an event about this call."""
    return lambda data: isinstance(data, dict) and data.get("call_id") == call_id


async def invite_call(sock: TestSocket, conversation_id: int, media: str = "audio") -> dict[str, Any]:
    """call_invite that must succeed; returns the call."""
    ack = await acked(sock, "call_invite", {"conversation_id": conversation_id, "media": media})
    check_call_json(ack["call"])
    return ack["call"]


async def calls_of(api: Api, account: Account, conversation_id: int) -> list[dict[str, Any]]:
    """GET /api/calls?conversation_id= that must succeed."""
    status, body = await api.request("GET", f"/api/calls?conversation_id={conversation_id}", token=account.token)
    assert status == 200, (status, body)
    return body["calls"]


async def stored_call(api: Api, account: Account, call: dict[str, Any]) -> dict[str, Any]:
    """This call as the history lists it."""
    found = [c for c in await calls_of(api, account, call["conversation_id"]) if c["id"] == call["id"]]
    assert len(found) == 1, found
    return found[0]


async def messages_of(api: Api, account: Account, conversation_id: int) -> list[dict[str, Any]]:
    status, body = await api.request("GET", f"/api/conversations/{conversation_id}/messages", token=account.token)
    assert status == 200, (status, body)
    return body["messages"]
