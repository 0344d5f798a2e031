"""Web Push routes: the VAPID public key, a browser's subscriptions, and conversation mutes."""

from __future__ import annotations

from aiohttp import web

from aurora.api.helpers import aurora, current_credentials, current_user, json_body
from aurora.errors import AuroraError
from aurora.services.push import Push


def _push(request: web.Request) -> Push:
    push = aurora(request).push
    if push is None:
        raise AuroraError("not_found", "Web Push is off on this server (push_enabled = false)")
    return push


async def vapid_public_key(request: web.Request) -> web.Response:
    await current_user(request)
    return web.json_response({"public_key": _push(request).public_key()})


async def list_subscriptions(request: web.Request) -> web.Response:
    user = await current_user(request)
    session_id = (await current_credentials(request)).session_id
    return web.json_response({"subscriptions": await _push(request).subscriptions(user, session_id)})


async def subscribe(request: web.Request) -> web.Response:
    user = await current_user(request)
    session_id = (await current_credentials(request)).session_id
    data = await json_body(request)
    subscription, created = await _push(request).subscribe(user, session_id, data)
    return web.json_response({"subscription": subscription}, status=201 if created else 200)


async def unsubscribe(request: web.Request) -> web.Response:
    """The endpoint comes in a JSON body {"endpoint"} or as ?endpoint=."""
    user = await current_user(request)
    endpoint = request.query.get("endpoint")
    if endpoint is None:
        endpoint = (await json_body(request)).get("endpoint")
    await _push(request).unsubscribe(user, endpoint)
    return web.json_response({"ok": True})


async def mute(request: web.Request) -> web.Response:
    """No body (or {}): muted until unmuted; {"until": "2030-01-01T08:00:00Z"}: until then."""
    user = await current_user(request)
    data = await json_body(request) if request.can_read_body else {}
    state = await aurora(request).mutes.mute(user, request.match_info["conversation_id"], data.get("until"))
    return web.json_response(state)


async def unmute(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response(await aurora(request).mutes.unmute(user, request.match_info["conversation_id"]))
