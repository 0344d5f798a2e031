"""Operations routes: /metrics, the delivery trace, admin and moderation, reports."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from aiohttp import web

from aurora.api.helpers import aurora, bearer_token, current_user, json_body
from aurora.errors import AuroraError
from aurora.services.ops.metrics import CONTENT_TYPE, counter_family, gauge
from aurora.storage import ops as ops_store

PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def _from_loopback(request: web.Request) -> bool:
    """A direct connection from this machine: a loopback peer, and no proxy in between (a proxy on this
    machine would make every outside client look local)."""
    if any(h in request.headers for h in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def _check_metrics_access(request: web.Request) -> None:
    expected = aurora(request).settings.metrics_token
    if expected:
        given = bearer_token(request) or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuroraError("auth_required", "/metrics needs Authorization: Bearer <metrics_token>")
    elif not _from_loopback(request):
        raise AuroraError("forbidden", "/metrics answers loopback only unless metrics_token is set")


async def metrics(request: web.Request) -> web.Response:
    _check_metrics_access(request)
    app = aurora(request)
    families = []
    try:
        await app.storage.ping()
        database_up = 1.0
    except Exception:
        database_up = 0.0
    families.append(gauge("aurora_database_up", "1 when the database answers a trivial query", database_up))
    queue = await app.registry.status()
    if queue is not None:
        families.append(gauge("aurora_redis_up", "1 when Redis answers PING (several processes only)",
                              1.0 if queue == "ok" else 0.0))
    if database_up:
        counts = await app.storage.read(ops_store.count_live_calls)
        families.append(gauge("aurora_calls_active", "Calls not yet ended, by state", labels=["state"],
                              samples={(state,): float(counts.get(state, 0)) for state in ("ringing", "active")}))
    room_channels = getattr(app.sio.manager, "room_channel_stats", None)
    if room_channels is not None:  # several processes: how much of the traffic Redis never saw
        stats = room_channels()
        families.append(gauge("aurora_redis_room_channels", "Room channels this process subscribes to; alone: "
                              "no other process does, so their emits are not published", labels=["state"],
                              samples={("subscribed",): stats["subscribed"], ("alone",): stats["alone"]}))
        families.append(counter_family("aurora_redis_room_emits", "Emits to one room since the start: "
                                       "published on its channel, or delivered locally only (room alone)",
                                       labels=["route"], samples={("published",): stats["published"],
                                                                  ("local",): stats["local"]}))
    body = app.metrics.render(families)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def trace_message(request: web.Request) -> web.Response:
    user = await current_user(request)
    await aurora(request).moderation.require_admin(user)
    m = request.match_info
    return web.json_response({"trace": await aurora(request).tracer.trace(m["conversation_id"], m["seq"])})


# -- admin --------------------------------------------------------------------
async def admin_users(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = request.query
    users = await aurora(request).moderation.users(user, q.get("q"), q.get("limit"), q.get("offset"))
    return web.json_response({"users": users})


async def _set_deactivated(request: web.Request, deactivated: bool) -> web.Response:
    user = await current_user(request)
    found = await aurora(request).moderation.set_deactivated(user, request.match_info["user_id"], deactivated)
    return web.json_response({"user": found})


async def admin_deactivate(request: web.Request) -> web.Response:
    return await _set_deactivated(request, True)


async def admin_reactivate(request: web.Request) -> web.Response:
    return await _set_deactivated(request, False)


async def admin_delete_message(request: web.Request) -> web.Response:
    user = await current_user(request)
    m = request.match_info
    return web.json_response(await aurora(request).moderation.delete_message(user, m["conversation_id"], m["seq"]))


async def admin_reports(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = request.query
    return web.json_response({"reports": await aurora(request).moderation.reports(user, q.get("limit"),
                                                                                   q.get("before"))})


async def admin_audit(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = request.query
    return web.json_response({"entries": await aurora(request).moderation.audit_log(user, q.get("limit"),
                                                                                     q.get("before"))})


async def report_message(request: web.Request) -> web.Response:
    user = await current_user(request)
    data: dict[str, Any] = await json_body(request) if request.can_read_body else {}
    m = request.match_info
    report, created = await aurora(request).moderation.report(user, m["conversation_id"], m["seq"],
                                                              data.get("reason"))
    return web.json_response({"report": report}, status=201 if created else 200)
