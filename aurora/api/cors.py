"""CORS for the REST API and /health, from the same setting as Socket.IO's cors_allowed_origins.

Default (empty): same origin only, so no CORS headers are sent at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from aurora.api.middlewares import error_response
from aurora.errors import AuroraError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE_S = "600"


def cors_middleware(allowed_origins: tuple[str, ...]) -> Middleware:
    allow_any = "*" in allowed_origins
    allowed = set(allowed_origins)

    def origin_allowed(origin: str | None) -> bool:
        return bool(origin) and (allow_any or origin in allowed)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # /health too: the web app's diagnostics panel reads the server version from another origin.
        if not (request.path.startswith("/api/") or request.path == "/health"):
            return await handler(request)
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            if not origin_allowed(origin):
                # The same JSON error shape as every other refusal under /api.
                return error_response(AuroraError("forbidden", "this origin is not allowed (cors_allowed_origins)"))
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": origin or "",
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_S,
                "Vary": "Origin",
            })
        response = await handler(request)
        if origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin or ""
            response.headers["Vary"] = "Origin"
        return response

    return middleware
