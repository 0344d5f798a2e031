"""Errors become {"error": {code, message}} with the right status; nothing else leaks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from aurora.context import AURORA
from aurora.errors import AuroraError
from aurora.log_context import LOG_ID, new_request_id
from aurora.outages import RETRY_AFTER_S, client_error
from aurora.services.ops.metrics import status_class

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
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every log line of this request carries its id (the access log line too: same task, after this)."""
    request_id = new_request_id(request.headers.get("X-Request-Id"))
    LOG_ID.set(request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = request_id
        raise
    response.headers["X-Request-Id"] = request_id
    return response


def _route_name(request: web.Request) -> str:
    """The route's template (/api/conversations/{conversation_id}), never the raw path: bounded labels."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if request.path.startswith("/api/"):
            metrics = request.app[AURORA].metrics
            route = _route_name(request)
            metrics.http_requests.labels(route, status_class(status)).inc()
            if status == 429:
                metrics.rate_limited.labels(f"{request.method} {route}").inc()


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
        response = error_response(AuroraError(code, message, status=exc.status))
        if "Allow" in exc.headers:  # a 405 names the methods the route has (RFC 9110 section 15.5.6)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except ConnectionError as exc:
        if request.transport is not None and not request.transport.is_closing():
            # A connection of ours that failed (an outage), not the client's: an outage or a bug.
            return error_response(client_error(exc, log, "%s %s", request.method, request.path))
        # The client went before its answer could be written (a WebSocket upgrade in a reconnect
        # storm, mostly): its absence, not a bug. Nobody reads this answer (nginx's 499, "client
        # closed request"); aiohttp finds the connection gone and drops it quietly.
        log.info("%s %s: the client closed the connection first", request.method, request.path)
        return web.Response(status=499, text="client closed the connection")
    except Exception as exc:
        return error_response(client_error(exc, log, "%s %s", request.method, request.path))
