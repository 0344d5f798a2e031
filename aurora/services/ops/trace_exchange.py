"""Asking every process what its delivery journal holds about one entry.

One process: the local journal answers. A cluster (Redis): the asking process publishes the question
on `{prefix}:ops:trace`; every process (itself included) subscribed there pushes its answer to a reply
list named in the question. PUBLISH returns how many subscribers got it, so the asker knows how many
answers to wait for (bounded by REPLY_TIMEOUT_S; a process that does not answer in time is named as
missing). Nothing is written to Redis on the send path: the journals stay in each process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 3.0
REPLY_TTL_S = 30

# (conversation_id, seq, user_ids, since) -> this process's answer
Answer = Callable[[int, int, list[int], float], dict[str, Any]]


class LocalTraceExchange:
    def __init__(self, answer: Answer) -> None:
        self._answer = answer

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def gather(self, conversation_id: int, seq: int, user_ids: list[int], since: float) -> dict[str, Any]:
        """{"answers": [per process], "missing": how many processes did not answer}."""
        return {"answers": [self._answer(conversation_id, seq, user_ids, since)], "missing": 0}


class RedisTraceExchange(LocalTraceExchange):
    def __init__(self, answer: Answer, redis_url: str, prefix: str) -> None:
        super().__init__(answer)
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, decode_responses=True)
        self._channel = f"{prefix}:ops:trace"
        self._reply_prefix = f"{prefix}:ops:reply:"
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="aurora-trace-exchange")
        # Wait briefly so a trace asked right after start-up counts this process; never block start-up.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 2.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: traces fall back to this process until it is back
                self._subscribed.clear()
                log.warning("trace exchange: Redis unreachable (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(1.0)

    async def _listen(self) -> None:
        async with self._redis.pubsub() as pubsub:
            await pubsub.subscribe(self._channel)
            self._subscribed.set()
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    question = json.loads(message["data"])
                    answer = self._answer(int(question["conversation_id"]), int(question["seq"]),
                                          [int(u) for u in question["user_ids"]], float(question["since"]))
                    key = self._reply_prefix + str(question["id"])
                    pipe = self._redis.pipeline()
                    pipe.rpush(key, json.dumps(answer))
                    pipe.expire(key, REPLY_TTL_S)
                    await pipe.execute()
                except (KeyError, TypeError, ValueError):
                    log.warning("trace exchange: ignored a malformed question")

    async def gather(self, conversation_id: int, seq: int, user_ids: list[int], since: float) -> dict[str, Any]:
        question_id = uuid.uuid4().hex
        question = {"id": question_id, "conversation_id": conversation_id, "seq": seq, "user_ids": user_ids,
                    "since": since}
        try:
            expected = int(await self._redis.publish(self._channel, json.dumps(question)))
        except Exception as exc:
            log.warning("trace exchange: cannot ask the cluster (%s); answering for this process only",
                        exc.__class__.__name__)
            local = await super().gather(conversation_id, seq, user_ids, since)
            return {**local, "missing": None}
        answers: list[dict[str, Any]] = []
        key = self._reply_prefix + question_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLY_TIMEOUT_S
        while len(answers) < expected:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # BLPOP's timeout is in seconds (fractions allowed since Redis 6).
            item = await self._redis.blpop([key], timeout=max(0.05, remaining))
            if item is None:
                break
            answers.append(json.loads(item[1]))
        return {"answers": answers, "missing": expected - len(answers)}
