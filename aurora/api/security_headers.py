"""Headers every response gets (on_response_prepare, so WebSocket upgrades and errors get them too).

- X-Content-Type-Options: nosniff: a browser never guesses a type the server did not send.
- Referrer-Policy: no-referrer: URLs (which may hold a legacy ?token=) never leak to other sites.
- Cache-Control: no-store on every /api/ answer: they carry tokens (register, login, password)
  or private data; no proxy or browser cache keeps them.
- Strict-Transport-Security when env = production (Aurora is then behind TLS).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from aurora.settings import Settings


def security_headers(settings: Settings) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    hsts = f"max-age={settings.hsts_max_age_s}; includeSubDomains" if settings.is_production else None

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/"):
            headers["Cache-Control"] = "no-store"
        if hsts is not None:
            headers.setdefault("Strict-Transport-Security", hsts)

    return on_prepare
