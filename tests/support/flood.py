"""Helpers for the abuse-limit tests: a server with small buckets, round-trip timing, flood results."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.clients import TestSocket

# A second user's round trip during a flood may be this many times slower than before it (a
# generous bound: without limits the issue measured x40 on p99; with them it stays near x1).
UNAFFECTED_RATIO = 10.0

SMALL_LIMITS = {f"rate_{name}_burst": 3 for name in (
    "message", "edit", "react", "typing", "sync", "conversation", "call_invite", "call_signal", "upload",
    "register", "login")}
SMALL_LIMITS.update({f"rate_{name}_per_s": 0.01 for name in (
    "message", "edit", "react", "typing", "sync", "conversation", "call_invite", "call_signal", "upload",
    "register", "login")})
SMALL_LIMITS["rate_limits_enabled"] = True
# Tests register and log in their users first: room for that.
SMALL_LIMITS["rate_register_burst"] = 8
SMALL_LIMITS["rate_login_burst"] = 8
# The floods here count every refusal; tests/test_limits_events.py checks the flood disconnect on its own.
SMALL_LIMITS["flood_disconnect_refusals"] = 100_000


Clock = Callable[[], float]
# CPU time of this process (all its threads): the server under test, its SQLite threads and the
# test's clients all run here, so it counts the work done before an answer came, whatever else the
# machine is busy with. Wall time also counts the time other processes held the cores: under a load
# average of 15 a round trip of 2 ms can take 50 ms, and a ratio of wall times judges the machine.
CPU_TIME: Clock = time.process_time


async def timed(action: Callable[[], Awaitable[Any]], clock: Clock = time.perf_counter) -> float:
    started = clock()
    await action()
    return clock() - started


async def median_round_trip(action: Callable[[], Awaitable[Any]], count: int = 7,
                            clock: Clock = time.perf_counter) -> float:
    return statistics.median([await timed(action, clock) for _ in range(count)])


def codes(acks: list[Any]) -> dict[str, int]:
    """How many acks were ok, and how many carried each error code."""
    counted: dict[str, int] = {}
    for ack in acks:
        key = "ok" if ack.get("ok") else ack["error"]["code"]
        counted[key] = counted.get(key, 0) + 1
    return counted


def check_refusal(ack: dict[str, Any]) -> dict[str, Any]:
    """A rate_limited refusal with its delay; returns the error."""
    assert ack["ok"] is False and ack["error"]["code"] == "rate_limited", ack
    assert isinstance(ack["error"]["retry_after_ms"], int) and ack["error"]["retry_after_ms"] > 0, ack
    return ack["error"]


async def flood(sock: TestSocket, event: str, payloads: list[Any]) -> list[Any]:
    """Every payload at once (none waits for the previous ack), then every ack."""
    return list(await asyncio.gather(*(sock.call(event, p, timeout=30) for p in payloads)))


async def sustained(stop: asyncio.Event, batch: Callable[[int], Awaitable[list[Any]]],
                    max_batches: int = 100) -> list[Any]:
    """An attacker who goes on: batch after batch (each one sent at once) until `stop` is set (see
    unaffected_during), at most max_batches; every batch's results. A single burst would be over after
    the first round trip measured during it, and a median would not see it."""
    results: list[Any] = []
    for index in range(max_batches):
        results += await batch(index)
        if stop.is_set():
            break
    return results


async def unaffected_during(flood_task: Awaitable[Any], round_trip: Callable[[], Awaitable[Any]],
                            before: float, clock: Clock = time.perf_counter,
                            stop: asyncio.Event | None = None, count: int = 5,
                            ratio: float = UNAFFECTED_RATIO) -> Any:
    """Measure round_trip while the flood runs; assert the ratio to `before` (measured with the same
    clock); return the flood's result. A flood that goes on until told (an attacker who keeps sending)
    gets `stop`, set once the round trips are measured."""
    task = asyncio.ensure_future(flood_task)
    await asyncio.sleep(0)  # the flood's packets are on their way before the first measurement
    during = await median_round_trip(round_trip, count=count, clock=clock)
    if stop is not None:
        stop.set()
    result = await task
    assert during <= before * ratio, f"round trip {during * 1000:.1f} ms during the flood, " \
        f"{before * 1000:.1f} ms before (ratio {during / before:.1f})"
    return result
