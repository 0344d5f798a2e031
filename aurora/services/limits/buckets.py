"""Token buckets: in this process, or shared by every process through one Redis Lua script.

A bucket holds up to `burst` tokens and refills at `rate_per_s`. `take` removes `cost` tokens in
one step that cannot be interleaved (a plain function on the event loop, or one script in Redis),
so the check and the count are the same operation: a parallel burst cannot slip through between
them. A negative cost gives tokens back (a login whose password was right).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aurora.services.clock import Clock, SystemClock

log = logging.getLogger(__name__)

MAX_LOCAL_BUCKETS = 200_000


@dataclass(frozen=True)
class BucketSpec:
    rate_per_s: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.burst > 0 and self.rate_per_s > 0


def _refill(tokens: float, elapsed_s: float, spec: BucketSpec) -> float:
    return min(float(spec.burst), tokens + max(0.0, elapsed_s) * spec.rate_per_s)


class LocalBuckets:
    """Buckets of this process; memory stays bounded (the least recently used are dropped,
    which only ever forgives: a dropped bucket comes back full)."""

    def __init__(self, max_buckets: int = MAX_LOCAL_BUCKETS, clock: Clock | None = None) -> None:
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max = max_buckets
        self._clock: Clock = clock or SystemClock()  # refills follow the services' clock

    def take_now(self, key: str, spec: BucketSpec, cost: float = 1) -> int:
        """Take cost tokens; 0 when granted, otherwise the milliseconds until they would be there."""
        now = self._clock.monotonic()
        tokens, at = self._state.get(key, (float(spec.burst), now))
        tokens = _refill(tokens, now - at, spec)
        wait_ms = 0
        if cost > 0 and tokens < cost:
            wait_ms = max(1, math.ceil((cost - tokens) / spec.rate_per_s * 1000))
        else:
            tokens = min(float(spec.burst), tokens - cost)
        self._state[key] = (tokens, now)
        self._state.move_to_end(key)
        while len(self._state) > self._max:
            self._state.popitem(last=False)
        return wait_ms

    async def take(self, key: str, spec: BucketSpec, cost: float = 1) -> int:
        return self.take_now(key, spec, cost)

    async def reset(self, key: str) -> None:
        self._state.pop(key, None)

    async def close(self) -> None:
        return None


# KEYS[1] bucket; ARGV rate_per_s, burst, cost. Redis's own clock (TIME), so processes with
# skewed clocks agree. Returns 0 (granted) or the wait in ms. Redis 5+ replicates the effects
# of a script, which is what makes TIME usable here.
TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
local elapsed = now - at
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local wait = 0
if cost > 0 and tokens < cost then
  wait = math.ceil((cost - tokens) / rate * 1000)
  if wait < 1 then wait = 1 end
else
  tokens = math.min(burst, tokens - cost)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


class RedisBuckets:
    """Cluster-wide buckets: a user spreading sockets over processes still has one budget.

    While Redis is unreachable the buckets of this process take over (logged once), so an
    outage of Redis loosens the limits to per-process ones instead of refusing everything.
    """

    def __init__(self, redis_url: str, prefix: str, clock: Clock | None = None) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self._script = self._redis.register_script(TAKE_SCRIPT)
        self._prefix = f"{prefix}:rl:"
        self._fallback = LocalBuckets(clock=clock)
        self._healthy = True

    def _failed(self, exc: Exception) -> None:
        if self._healthy:
            log.warning("Redis unreachable for rate limits (%s); limiting per process meanwhile",
                        exc.__class__.__name__)
        self._healthy = False

    async def take(self, key: str, spec: BucketSpec, cost: float = 1) -> int:
        try:
            wait = await self._script(keys=[self._prefix + key], args=[spec.rate_per_s, spec.burst, cost])
        except Exception as exc:  # redis errors, timeouts, connection refused
            self._failed(exc)
            return self._fallback.take_now(key, spec, cost)
        if not self._healthy:
            log.info("Redis reachable again; rate limits are cluster-wide")
            self._healthy = True
        return int(wait)

    async def reset(self, key: str) -> None:
        await self._fallback.reset(key)
        try:
            await self._redis.delete(self._prefix + key)
        except Exception as exc:
            self._failed(exc)

    async def close(self) -> None:
        await self._redis.aclose()
