"""POST /api/test/clock: the test suite moves the ManualClock of an Aurora process it started.

The route exists only with `test_clock = true`, which settings refuse unless `env = test`. The
multi-process tests use it where the in-process ones call ManualClock directly (tests/conftest.py).

Body `{"advance_s": s}`: time moves s seconds, and the answer comes once the timers it woke have
run (ManualClock.settled). Body `{"wait_for": label, "count": n, "within_s": 10}`: the answer
comes once n timers with that label ("ring", "grace", "sweep") are armed. Both answer
`{"now": seconds, "pending": {label: n}}`; 409 `conflict` when that did not happen in time (a timer
stuck, or never armed).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aurora.context import AURORA
from aurora.errors import AuroraError, invalid
from aurora.services.clock import ManualClock

LABELS = ("ring", "grace", "sweep")


async def move_test_clock(request: web.Request) -> web.Response:
    clock = request.app[AURORA].clock
    assert isinstance(clock, ManualClock), "test_clock is on, so create_app made a ManualClock"
    try:
        body: Any = await request.json()
    except ValueError:
        raise invalid("a JSON object: {advance_s} or {wait_for, count}") from None
    if not isinstance(body, dict):
        raise invalid("a JSON object: {advance_s} or {wait_for, count}")
    if "advance_s" in body:
        seconds = body["advance_s"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise invalid("advance_s: a number of seconds, not negative")
        clock.advance(float(seconds))
        try:
            await clock.settled()
        except AssertionError as exc:  # a woken timer is stuck: the test fails with this
            raise AuroraError("conflict", str(exc)) from None
    elif "wait_for" in body:
        label, count, within = body["wait_for"], body.get("count", 1), body.get("within_s", 10)
        if label not in LABELS or isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise invalid(f"wait_for: one of {', '.join(LABELS)}; count: a whole number from 1")
        if isinstance(within, bool) or not isinstance(within, int | float) or not 0 < within <= 60:
            raise invalid("within_s: seconds to wait, more than 0 and at most 60")
        try:
            await clock.wait_for_timer(label, count, within=float(within))
        except AssertionError as exc:
            raise AuroraError("conflict", str(exc)) from None
    else:
        raise invalid("a JSON object: {advance_s} or {wait_for, count}")
    return web.json_response({"now": clock.monotonic(), "pending": {name: clock.pending(name) for name in LABELS}})
