"""Accounts and conversations for a scenario: real ones through Aurora's REST API, made-up ones for the relays.

The result is what the load generator needs: per client the handshake auth, per conversation
its id, sender and members (client indexes), and its last seq before the run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.harness.scenarios import Population

PASSWORD = "bench password 0123"
CONCURRENCY = 16


class SetupError(RuntimeError):
    pass


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any], token: str | None = None,
                expect: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for attempt in range(5):
        try:
            async with session.post(url, json=body, headers=headers) as response:
                data = await response.json(content_type=None)
                if response.status in expect:
                    return data
                raise SetupError(f"POST {url} -> {response.status}: {data}")
        except (TimeoutError, aiohttp.ClientConnectionError):
            if attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


async def _gather_limited(items: list[Any], fn: Any) -> list[Any]:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(item: Any) -> Any:
        async with semaphore:
            return await fn(item)

    return await asyncio.gather(*(one(item) for item in items))


async def _aurora(url: str, plan: Population) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        t0 = time.monotonic()

        async def register(i: int) -> dict[str, Any]:
            return await _post(session, url + "/api/auth/register", {"username": f"bench{i}", "password": PASSWORD},
                               expect=(201,))

        accounts = await _gather_limited(list(range(plan.clients)), register)
        registered_s = time.monotonic() - t0
        # Offline members (bench/run.py --push-standin): accounts no load generator client uses.
        offline_jobs = [(j, k) for j, c in enumerate(plan.conversations) for k in range(c.offline)]

        async def register_offline(job: tuple[int, int]) -> dict[str, Any]:
            account = await _post(session, url + "/api/auth/register",
                                  {"username": f"bench-off{job[0]}-{job[1]}", "password": PASSWORD}, expect=(201,))
            for n in range(plan.conversations[job[0]].subscriptions):
                await _post(session, url + "/api/push/subscriptions",
                            _subscription(f"{plan.push_url}/push/{job[0]}-{job[1]}-{n}"), token=account["token"])
            return account

        offline = dict(zip(offline_jobs, await _gather_limited(offline_jobs, register_offline), strict=True))

        async def create(conversation: Any) -> dict[str, Any]:
            sender = accounts[conversation.sender]
            others = [accounts[m]["user"]["id"] for m in conversation.members if m != conversation.sender]
            j = plan.conversations.index(conversation)
            others += [offline[(j, k)]["user"]["id"] for k in range(conversation.offline)]
            body: dict[str, Any] = {"user_ids": others}
            if conversation.title is not None:
                body["title"] = conversation.title
            data = await _post(session, url + "/api/conversations", body, token=sender["token"])
            return data["conversation"]

        created = await _gather_limited(plan.conversations, create)
    conversations = []
    for conversation, record in zip(plan.conversations, created, strict=True):
        member_ids = {m["id"] for m in record["members"]}
        wanted = {accounts[m]["user"]["id"] for m in conversation.members}
        wanted |= {m["id"] for m in record["members"] if m["username"].startswith("bench-off")}
        if member_ids != wanted:
            raise SetupError(f"conversation {record['id']} has members {member_ids}, expected {wanted}")
        conversations.append({"id": record["id"], "sender": conversation.sender, "members": conversation.members,
                              "start_seq": record["last_seq"],
                              "sender_user_id": accounts[conversation.sender]["user"]["id"]})
    return {
        "clients": [{"auth": {"token": a["token"]}, "user_id": a["user"]["id"]} for a in accounts],
        "conversations": conversations,
        "setup_s": {"register": registered_s, "total": time.monotonic() - t0},
    }


def _subscription(endpoint: str) -> dict[str, Any]:
    """A browser's PushSubscription JSON with fresh keys (what the stand-in would decrypt with)."""
    import base64
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    return {"endpoint": endpoint, "keys": {"p256dh": b64(point), "auth": b64(os.urandom(16))}}


def aurora_population(url: str, plan: Population) -> dict[str, Any]:
    return asyncio.run(_aurora(url, plan))


def relay_population(plan: Population) -> dict[str, Any]:
    """The same shape for a relay: user i+1, conversation j+1, rooms named in the handshake auth."""
    rooms: list[list[int]] = [[] for _ in range(plan.clients)]
    conversations = []
    for j, conversation in enumerate(plan.conversations):
        for member in conversation.members:
            rooms[member].append(j + 1)
        conversations.append({"id": j + 1, "sender": conversation.sender, "members": conversation.members,
                              "start_seq": 0, "sender_user_id": conversation.sender + 1})
    clients = [{"auth": {"user_id": i + 1, "username": f"bench{i}", "rooms": rooms[i]}, "user_id": i + 1}
               for i in range(plan.clients)]
    return {"clients": clients, "conversations": conversations, "setup_s": {"register": 0.0, "total": 0.0}}
