"""Helpers for the Python SDK tests: clients that record what they saw, bounded waits, REST truth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aurora_client import AuroraClient, Event

from tests.support.clients import Account, Api

# Fields of a message that the REST history and the SDK's store must agree on.
STATE_FIELDS = ("id", "conversation_id", "seq", "kind", "sender_id", "sender_username", "body", "client_id",
                "created_at", "edited_at", "deleted", "reactions", "reply_to", "state_seq")


class Recorder:
    """Every event a client emitted, in order, through its async iterator (with each message's change)."""

    def __init__(self, client: AuroraClient) -> None:
        self.client = client
        self.events: list[Event] = []
        self._task = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        async for event in self.client.events():
            self.events.append(event)

    def named(self, name: str) -> list[Any]:
        return [e.data for e in self.events if e.name == name]

    def new_message_ids(self, conversation_id: int | None = None) -> list[int]:
        """The ids of messages announced as new, in announcement order."""
        return [e.data["id"] for e in self.events if e.name == "message" and e.change == "new"
                and (conversation_id is None or e.data["conversation_id"] == conversation_id)]

    def stop(self) -> None:
        self._task.cancel()


async def eventually(check: Callable[[], Any], *, within: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` (sync or async) until it returns something truthy, at most `within` seconds."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        last = result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within}s (last: {last!r})")
        await asyncio.sleep(0.02)


async def rest_history(api: Api, account: Account, conversation_id: int) -> list[dict[str, Any]]:
    """Every message of a conversation from REST, ascending seq (pages of 200)."""
    messages: list[dict[str, Any]] = []
    after = 0
    while True:
        status, body = await api.request(
            "GET", f"/api/conversations/{conversation_id}/messages?after_seq={after}&limit=200", token=account.token)
        assert status == 200, (status, body)
        messages.extend(body["messages"])
        if not body["has_more"] or not body["messages"]:
            return messages
        after = body["messages"][-1]["seq"]


def state_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comparable state of messages: the documented fields, defaults for the ones an older
    server does not send yet."""
    defaults: dict[str, Any] = {"edited_at": None, "deleted": False, "reactions": [], "reply_to": None}
    return [{key: message.get(key, message["seq"] if key == "state_seq" else defaults.get(key))
             for key in STATE_FIELDS} for message in messages]


async def has_event(sock_client: AuroraClient, event: str) -> bool:
    """Whether the server knows a /chat event (an unknown one is answered `invalid`, `unknown event`)."""
    from aurora_client.connection import CHAT

    try:
        await sock_client._conn.request(CHAT, event, {})
    except Exception as exc:  # AuroraError
        return "unknown event" not in str(exc)
    return True


class SdkFactory:
    """Makes AuroraClients for one server URL and closes them all at teardown."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: list[AuroraClient] = []

    def client(self, account: Account, **options: Any) -> AuroraClient:
        client = AuroraClient(self.url, account.token, **options)
        self.clients.append(client)
        return client

    async def connected(self, account: Account, **options: Any) -> AuroraClient:
        client = self.client(account, **options)
        await asyncio.wait_for(client.connect(), 30)
        return client

    async def close_all(self) -> None:
        for client in self.clients:
            await client.close()
