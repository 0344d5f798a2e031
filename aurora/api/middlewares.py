"""Errors become {"error": {code, message}} with the right status; nothing else leaks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from aurora.errors import AuroraError
from aurora.outages import RETRY_AFTER_S, client_error

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODE_BY_STATUS = {400: "invalid", 401: "auth_required", 403: "forbidden", 404: "not_found",
                   405: "invalid", 409: "conflict", 413: "too_large", 429: "rate_limited"}


def error_response(error: AuroraError) -> web.Response:
    response = web.json_response({"error": error.to_dict()}, status=error.status)
    retry_after_ms = getattr(error, "retry_after_ms", None)
    if retry_after_ms is not None:  # whole seconds, rounded up (RFC 9110)
        response.headers["Retry-After"] = str(max(1, -(-retry_after_ms // 1000)))
    elif error.code == "unavailable":
        response.headers["Retry-After"] = str(RETRY_AFTER_S)  # an outage: worth retrying soon
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AuroraError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if not request.path.startswith("/api") or exc.status < 400:
            raise
        code = _CODE_BY_STATUS.get(exc.status, "internal" if exc.status >= 500 else "invalid")
        message = {404: "no such route", 405: "method not allowed",
                   413: "request body too large"}.get(exc.status, exc.reason)
        return error_response(AuroraError(code, message, status=exc.status))
    except Exception as exc:
        return error_response(client_error(exc, log, "%s %s", request.method, request.path))
