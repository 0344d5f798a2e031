"""Time for the services' timers and throttles, injectable: one clock per application.

Who reads it: the call timers (ring timeout, disconnect grace, the deadline sweep), the typing
throttle and the token buckets of this process (rate limits and the failed-login lock).

Production uses SystemClock. Tests pass a ManualClock to create_app and move time forward with
advance(): a timer fires, or a throttle or a bucket lets go, because the test said so, not because
a real 0.5 s raced the test. Timers sleep until an absolute deadline taken when they are armed
(synchronously, before the answer that armed them goes out), so advancing time can never slip in
before a timer counts. After advance(), `await settled()` is the barrier for "everything that time
set in motion has run": each woken timer has finished, or is asleep on this clock again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (timers, throttles)."""

    def utcnow(self) -> dt.datetime:
        """Naive UTC wall time (deadlines stored in the database)."""

    async def sleep_until(self, deadline: float, label: str = "") -> None:
        """Return once monotonic() >= deadline. label names the timer (tests can wait for one)."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def utcnow(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)

    async def sleep_until(self, deadline: float, label: str = "") -> None:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))


class ManualClock:
    """Time stands still until advance(); sleepers whose deadline has come are woken, in order."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = 0.0
        self._start = start or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        self._sleepers: list[tuple[float, int, str, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()
        self._asleep: dict[asyncio.Task[object], asyncio.Future[None]] = {}  # task -> what it waits on
        self._woken: set[asyncio.Task[object]] = set()  # woken by advance(), not yet done or asleep again
        self._watched: set[asyncio.Task[object]] = set()  # tasks with our done callback

    def monotonic(self) -> float:
        return self._now

    def utcnow(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=self._now)

    async def sleep_until(self, deadline: float, label: str = "") -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), label, future))
        task = asyncio.current_task()
        if task is not None:
            self._asleep[task] = future
            self._woken.discard(task)
            if task not in self._watched:
                self._watched.add(task)
                task.add_done_callback(self._task_done)
        self._changed.set()
        try:
            await future
        finally:
            if task is not None and self._asleep.get(task) is future:
                del self._asleep[task]

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._woken.discard(task)
        self._watched.discard(task)
        self._changed.set()

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        self._now += seconds
        woken = set()
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
                woken.add(future)
        for task in [task for task, future in self._asleep.items() if future in woken]:
            del self._asleep[task]  # awake from now on, though it runs only at the loop's next turn
            self._woken.add(task)

    async def settled(self, within: float = 10.0) -> None:
        """Until every timer woken by advance() has run to its end or to its next sleep on this clock
        (bounded). Then whatever those timers emitted was sent: a round trip on a socket shows it."""
        def running() -> list[asyncio.Task[object]]:
            return [t for t in self._woken if not t.done() and t not in self._asleep]

        async def idle() -> None:
            while running():
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(idle(), within)
        except TimeoutError:
            raise AssertionError(f"{len(running())} woken timer(s) still running after {within}s") from None

    def pending(self, label: str) -> int:
        return sum(1 for _, _, name, future in self._sleepers if name == label and not future.done())

    async def wait_for_timer(self, label: str, count: int = 1, within: float = 10.0) -> None:
        """Until count timers with this label are armed (a barrier for the test, bounded)."""
        async def armed() -> None:
            while self.pending(label) < count:
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(armed(), within)
        except TimeoutError:
            raise AssertionError(f"{count} {label!r} timer(s) never armed ({self.pending(label)} are)") from None
