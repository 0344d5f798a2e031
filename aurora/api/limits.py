"""The REST side of the one limits mechanism: a route's name picks its limit (services/limits/policy.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from aurora.api.helpers import aurora, client_ip, current_user
from aurora.services.limits import LIMIT_OF, PER_ADDRESS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    limit = LIMIT_OF.get(route.name or "") if route is not None else None
    if limit is not None:
        key: object = client_ip(request) if limit in PER_ADDRESS else (await current_user(request))["id"]
        await aurora(request).limiter.take(limit, key)
    return await handler(request)
