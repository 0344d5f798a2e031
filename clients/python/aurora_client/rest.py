"""Small REST helpers over aiohttp: login/register, users, conversations, history.

Every error becomes an AuroraError with the server's code; `rate_limited` answers are retried after
the delay the server names (a bounded number of times); a server that cannot be reached is
`unavailable`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import aiohttp

from aurora_client.errors import AuroraError
from aurora_client.types import Auth, Conversation, HistoryPage, Message, Upload, User

RATE_LIMIT_RETRIES = 5
DEFAULT_TIMEOUT_S = 30.0


class Rest:
    """`Rest(url, token)`: one aiohttp session for a base URL (and token, once logged in)."""

    def __init__(self, url: str, token: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Rest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      data: Callable[[], aiohttp.FormData] | None = None) -> Any:
        """The parsed JSON answer of a 2xx response; an AuroraError otherwise. `data` makes the body
        (a multipart form), once per try."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                async with self._session.request(method, self.url + path, json=json, params=query,
                                                 data=data() if data is not None else None,
                                                 headers=headers) as response:
                    body = await response.json(content_type=None) if response.content_length != 0 else None
                    if response.status < 400:
                        return body
                    error = AuroraError.from_payload((body or {}).get("error") if isinstance(body, dict) else None,
                                                     status=response.status,
                                                     retry_after_s=response.headers.get("Retry-After"))
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                raise AuroraError("unavailable", f"{method} {path}: {exc or type(exc).__name__}") from exc
            except ValueError as exc:  # not JSON
                raise AuroraError("internal", f"{method} {path}: answer is not JSON") from exc
            if error.code != "rate_limited" or attempt == RATE_LIMIT_RETRIES:
                raise error
            await asyncio.sleep((error.retry_after_ms or 1000) / 1000)
        raise AssertionError("unreachable")

    # -- accounts -----------------------------------------------------------------------------
    async def register(self, username: str, password: str, display_name: str | None = None) -> Auth:
        body: dict[str, Any] = {"username": username, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        auth = cast(Auth, await self.request("POST", "/api/auth/register", json=body))
        self.token = auth["token"]
        return auth

    async def login(self, username: str, password: str) -> Auth:
        auth = cast(Auth, await self.request("POST", "/api/auth/login", json={"username": username,
                                                                                "password": password}))
        self.token = auth["token"]
        return auth

    async def me(self) -> User:
        return cast(User, (await self.request("GET", "/api/me"))["user"])

    async def search_users(self, query: str = "") -> list[User]:
        return cast(list[User], (await self.request("GET", "/api/users", params={"q": query}))["users"])

    async def upload(self, file: str | os.PathLike[str] | bytes, filename: str | None = None) -> Upload:
        """POST /api/uploads (multipart field `file`): {id, name, content_type, size, sha256, width?, height?}.
        Errors: AuroraError too_large (413), invalid (400), rate_limited (retried), unavailable (503)."""
        if isinstance(file, bytes | bytearray):
            content, name = bytes(file), filename or "file"
        else:
            path = Path(file)
            content, name = await asyncio.to_thread(path.read_bytes), filename or path.name

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("file", content, filename=name, content_type="application/octet-stream")
            return data
        return cast(Upload, (await self.request("POST", "/api/uploads", data=form))["upload"])

    # -- conversations ------------------------------------------------------------------------
    async def create_conversation(self, user_ids: list[int], title: str | None = None) -> Conversation:
        body: dict[str, Any] = {"user_ids": list(user_ids)}
        if title is not None:
            body["title"] = title
        return cast(Conversation, (await self.request("POST", "/api/conversations", json=body))["conversation"])

    async def conversations(self) -> list[Conversation]:
        return cast(list[Conversation], (await self.request("GET", "/api/conversations"))["conversations"])

    async def conversation(self, conversation_id: int) -> Conversation:
        answer = await self.request("GET", f"/api/conversations/{int(conversation_id)}")
        return cast(Conversation, answer["conversation"])

    async def history(self, conversation_id: int, *, before_seq: int | None = None, after_seq: int | None = None,
                      limit: int | None = None) -> HistoryPage:
        """One page of `GET /api/conversations/{id}/messages`: messages in their current state, ascending."""
        params = {"before_seq": before_seq, "after_seq": after_seq, "limit": limit}
        return cast(HistoryPage, await self.request("GET", f"/api/conversations/{int(conversation_id)}/messages",
                                                    params=params))

    async def full_history(self, conversation_id: int) -> list[Message]:
        """Every message of a conversation, ascending seq (pages of 200 with after_seq)."""
        messages: list[Message] = []
        after = 0
        while True:
            page = await self.history(conversation_id, after_seq=after, limit=200)
            messages.extend(page["messages"])
            if not page["has_more"] or not page["messages"]:
                return messages
            after = page["messages"][-1]["seq"]

    async def add_members(self, conversation_id: int, user_ids: list[int]) -> Conversation:
        answer = await self.request("POST", f"/api/conversations/{int(conversation_id)}/members",
                                    json={"user_ids": list(user_ids)})
        return cast(Conversation, answer["conversation"])

    async def leave_conversation(self, conversation_id: int) -> None:
        await self.request("DELETE", f"/api/conversations/{int(conversation_id)}/members/me")

    async def search(self, query: str, *, conversation_id: int | None = None, limit: int | None = None,
                     before: int | None = None) -> dict[str, Any]:
        params = {"q": query, "conversation_id": conversation_id, "limit": limit, "before": before}
        return cast(dict[str, Any], await self.request("GET", "/api/search", params=params))

    async def ice_servers(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], (await self.request("GET", "/api/ice-servers"))["ice_servers"])

    async def calls(self, conversation_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        answer = await self.request("GET", "/api/calls", params={"conversation_id": conversation_id, "limit": limit})
        return cast(list[dict[str, Any]], answer["calls"])


async def register(url: str, username: str, password: str, display_name: str | None = None) -> Auth:
    """Create an account; returns {token, user}."""
    async with Rest(url) as rest:
        return await rest.register(username, password, display_name)


async def login(url: str, username: str, password: str) -> Auth:
    """Log in; returns {token, user}. Wrong credentials raise AuroraError("invalid_credentials")."""
    async with Rest(url) as rest:
        return await rest.login(username, password)

