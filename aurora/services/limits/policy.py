"""Which limit each event and route spends, and the Limiter that spends it.

Handlers never count: the socket base namespace and the REST middleware look the event or
route name up in LIMIT_OF and take one token before the handler runs. A name that has no
handler yet (an event another change adds later) is harmless here and limited as soon as
it lands under that name.
"""

from __future__ import annotations

from collections.abc import Mapping

from aurora.errors import RateLimited
from aurora.services.clock import Clock, SystemClock
from aurora.services.limits.buckets import BucketSpec, LocalBuckets, RedisBuckets
from aurora.settings import Settings

# Limit names; each has settings rate_<name>_per_s and rate_<name>_burst.
LIMIT_NAMES = (
    "message", "edit", "react", "typing", "sync", "conversation",
    "call_invite", "call_signal", "upload", "register", "login",
)

# Socket.IO event names (both namespaces) and REST route names -> the limit they spend.
LIMIT_OF: Mapping[str, str] = {
    "send_message": "message",
    "edit_message": "edit",
    "delete_message": "edit",
    "react": "react",
    "unreact": "react",
    "typing": "typing",
    "sync": "sync",
    "create_conversation": "conversation",
    "add_members": "conversation",
    "block": "conversation",
    "unblock": "conversation",
    "push_subscribe": "conversation",  # Web Push: a subscription or a mute is a setting, like a block
    "mute": "conversation",
    "call_invite": "call_invite",
    "call_signal": "call_signal",
    "upload": "upload",
    "register": "register",
    "login": "login",
}

# Spent per client address (there is no user yet); every other limit is per user.
PER_ADDRESS = frozenset({"register", "login"})

# Failed-login buckets (from login_max_failures / login_window_s), see services/accounts.py.
LOGIN_FAILURES_USER = "login_failures_user"
LOGIN_FAILURES_ADDRESS = "login_failures_address"
# These two follow login_max_failures alone: rate_limits_enabled = false does not turn them off.
ALWAYS_ON = frozenset({LOGIN_FAILURES_USER, LOGIN_FAILURES_ADDRESS})
ADDRESS_FACTOR = 5  # failed logins allowed per client address: this many times the per-username limit


def specs_from(settings: Settings) -> dict[str, BucketSpec]:
    specs = {
        name: BucketSpec(getattr(settings, f"rate_{name}_per_s"), getattr(settings, f"rate_{name}_burst"))
        for name in LIMIT_NAMES
    }
    per_s = settings.login_max_failures / settings.login_window_s
    specs[LOGIN_FAILURES_USER] = BucketSpec(per_s, settings.login_max_failures)
    specs[LOGIN_FAILURES_ADDRESS] = BucketSpec(per_s * ADDRESS_FACTOR, settings.login_max_failures * ADDRESS_FACTOR)
    return specs


_MESSAGES = {
    LOGIN_FAILURES_USER: "too many failed logins for this username",
    LOGIN_FAILURES_ADDRESS: "too many failed logins from this address",
}


class Limiter:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        """clock: refills of this process's buckets (tests pass a ManualClock); Redis buckets use Redis's TIME."""
        self.enabled = settings.rate_limits_enabled
        self._specs = specs_from(settings)
        clock = clock or SystemClock()
        self._buckets: LocalBuckets | RedisBuckets = (
            RedisBuckets(settings.redis_url, settings.redis_prefix, clock) if settings.redis_url
            else LocalBuckets(clock=clock)
        )

    def spec(self, name: str) -> BucketSpec:
        return self._specs[name]

    def _active(self, name: str) -> bool:
        return (self.enabled or name in ALWAYS_ON) and self._specs[name].enabled

    async def take(self, name: str, key: object, cost: float = 1) -> None:
        """Spend cost tokens of limit `name` for `key` (a user id or an address), or raise rate_limited."""
        spec = self._specs[name]
        if not self._active(name):
            return
        wait_ms = await self._buckets.take(f"{name}:{key}", spec, cost)
        if wait_ms:
            raise self.refusal(name, wait_ms)

    @staticmethod
    def refusal(name: str, wait_ms: int) -> RateLimited:
        """The rate_limited error of limit `name` with retry_after_ms = wait_ms."""
        what = _MESSAGES.get(name, f"too many requests ({name})")
        return RateLimited(f"{what}; retry in {wait_ms / 1000:.1f} s", wait_ms)

    async def give_back(self, name: str, key: object, cost: float = 1) -> None:
        if self._active(name):
            await self._buckets.take(f"{name}:{key}", self._specs[name], -cost)

    async def reset(self, name: str, key: object) -> None:
        if self._active(name):
            await self._buckets.reset(f"{name}:{key}")

    async def close(self) -> None:
        await self._buckets.close()
