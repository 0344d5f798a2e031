"""Slow down password guessing: too many failed logins for one username, or from one address,
within a window answer `rate_limited` (429) without checking the password.

Kept per process (with several processes an attacker gets that many tries per process, still
bounded). Memory stays bounded: old failures are forgotten, and past MAX_KEYS tracked keys the
oldest are dropped.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from aurora.errors import AuroraError

MAX_KEYS = 100_000


class LoginThrottle:
    def __init__(self, max_failures: int, window_s: float) -> None:
        self._max_failures = max_failures
        self._window_s = window_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] > self._window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, key: str) -> None:
        """Raise rate_limited when the key has used up its failures in the window."""
        now = time.monotonic()
        times = self._recent(key, now)
        if len(times) >= self._max_failures:
            wait = int(self._window_s - (now - times[0])) + 1
            raise AuroraError("rate_limited", f"too many failed logins; try again in {wait} s")

    def failed(self, key: str) -> None:
        times = self._failures.setdefault(key, deque())
        times.append(time.monotonic())
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
