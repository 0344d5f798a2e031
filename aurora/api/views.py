"""Thin aiohttp views: read the request, call one service, shape the response."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from aiohttp import web

from aurora import __version__
from aurora.api.helpers import aurora, current_credentials, current_user, device_of, json_body
from aurora.errors import AuroraError, invalid
from aurora.services.ice import ice_servers

log = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    app = aurora(request)
    body = {"status": "ok", "database": "ok"}
    status = 200
    try:
        await app.storage.ping()
    except Exception as exc:
        log.warning("health check: database unreachable: %s", exc.__class__.__name__)
        body.update(status="error", database="error")
        status = 503
    else:
        # Readable but unable to store (a full disk, a read-only database): out of service too.
        if not await app.storage.can_write():
            body.update(status="error", database="cannot_write", database_error=app.storage.write_error)
            status = 503
    queue = await app.registry.status()
    if queue is not None:
        body["message_queue"] = queue
        if queue != "ok" and status == 200:
            body["status"] = "degraded"  # still 200: this process serves its own clients
    if _may_see_metrics(request):
        body["connections"] = app.presence.connection_count()
        if app.push is not None:
            body["push"] = app.push.stats()  # like connections: how busy the service is
    body["version"] = __version__  # the web app's diagnostics panel shows it
    return web.json_response(body, status=status)


def _may_see_metrics(request: web.Request) -> bool:
    """Connection counts are for operators: a local probe (a loopback peer and no X-Forwarded-For:
    behind a reverse proxy on the same host every request comes from loopback, with that header),
    or a request with Authorization: Bearer <metrics_token> when that setting is set."""
    token = aurora(request).settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
    if "X-Forwarded-For" in request.headers:
        return False
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


# -- accounts ---------------------------------------------------------------
async def register(request: web.Request) -> web.Response:
    data = await json_body(request)
    user, token = await aurora(request).accounts.register(
        data.get("username"), data.get("password"), data.get("display_name"), device_of(request)
    )
    return web.json_response({"token": token, "user": user}, status=201)


async def login(request: web.Request) -> web.Response:
    data = await json_body(request)
    try:
        user, token = await aurora(request).accounts.login(data.get("username"), data.get("password"),
                                                           device_of(request))
    except AuroraError as exc:  # invalid_credentials, rate_limited, forbidden (deactivated), invalid
        aurora(request).metrics.login_failures.labels(exc.code).inc()
        raise
    return web.json_response({"token": token, "user": user})


async def logout(request: web.Request) -> web.Response:
    """Ends this token's device session; {"everywhere": true} ends every session and token of the user."""
    credentials = await current_credentials(request)
    everywhere = False
    if request.can_read_body:
        everywhere = (await json_body(request)).get("everywhere", False)
        if not isinstance(everywhere, bool):
            raise invalid("everywhere must be true or false")
    app = aurora(request)
    await app.accounts.logout(credentials, everywhere)
    # A logged-out browser hears nothing more: this session's push subscriptions go (all, everywhere).
    if app.push is not None:
        await app.push.forget(credentials.user_id, None if everywhere else credentials.session_id)
    if everywhere or credentials.session_id is None:
        # Every token of the user is dead; so are the sockets opened with them, on every process.
        await app.notifier.disconnect_user(credentials.user_id)
    else:  # this process's sockets of the session now; the other processes within auth_check_interval_s
        await app.auth_watch.end_sessions_now({credentials.session_id})
    return web.json_response({"ok": True})


async def change_password(request: web.Request) -> web.Response:
    user = await current_user(request)
    credentials = await current_credentials(request)
    data = await json_body(request)
    app = aurora(request)
    token, ended = await app.accounts.change_password(
        user, credentials, data.get("current_password"), data.get("new_password"), device_of(request))
    # Sockets of the ended sessions (and of old tokens without a session) close through the auth watch.
    await app.auth_watch.check()
    return web.json_response({"token": token, "ended_sessions": ended})


async def list_sessions(request: web.Request) -> web.Response:
    credentials = await current_credentials(request)
    return web.json_response({"sessions": await aurora(request).accounts.sessions(credentials)})


async def end_session(request: web.Request) -> web.Response:
    credentials = await current_credentials(request)
    app = aurora(request)
    ended = await app.accounts.end_session(credentials.user_id, request.match_info["session_id"])
    await app.auth_watch.end_sessions_now({ended})
    return web.json_response({"ok": True})


async def me(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"user": await aurora(request).presence.annotate_user(user)})


async def search_users(request: web.Request) -> web.Response:
    await current_user(request)
    app = aurora(request)
    users = await app.accounts.search(request.query.get("q"))
    return web.json_response({"users": await app.presence.annotate_users(users)})


# -- blocks -----------------------------------------------------------------
async def block_user(request: web.Request) -> web.Response:
    user = await current_user(request)
    created = await aurora(request).blocks.block(user, request.match_info["user_id"])
    return web.json_response({"ok": True, "created": created}, status=201 if created else 200)


async def unblock_user(request: web.Request) -> web.Response:
    user = await current_user(request)
    removed = await aurora(request).blocks.unblock(user, request.match_info["user_id"])
    return web.json_response({"ok": True, "removed": removed})


async def list_blocks(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"blocks": await aurora(request).blocks.listed(user)})


# -- conversations ----------------------------------------------------------
async def create_conversation(request: web.Request) -> web.Response:
    user = await current_user(request)
    data = await json_body(request)
    conversation, created = await aurora(request).conversations.create(
        user, data.get("user_ids"), data.get("title")
    )
    return web.json_response({"conversation": conversation}, status=201 if created else 200)


async def list_conversations(request: web.Request) -> web.Response:
    user = await current_user(request)
    conversations, following = await aurora(request).conversations.list(
        user, request.query.get("cursor"), request.query.get("limit")
    )
    return web.json_response({"conversations": conversations, "next": following})


async def get_conversation(request: web.Request) -> web.Response:
    user = await current_user(request)
    conversation = await aurora(request).conversations.get(user, request.match_info["conversation_id"])
    return web.json_response({"conversation": conversation})


async def add_members(request: web.Request) -> web.Response:
    user = await current_user(request)
    data = await json_body(request)
    conversation = await aurora(request).conversations.add_members(
        user, request.match_info["conversation_id"], data.get("user_ids")
    )
    return web.json_response({"conversation": conversation})


async def leave_conversation(request: web.Request) -> web.Response:
    user = await current_user(request)
    await aurora(request).conversations.leave(user, request.match_info["conversation_id"])
    return web.json_response({"ok": True})


# -- messages ---------------------------------------------------------------
async def list_messages(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = request.query
    messages, has_more = await aurora(request).messages.page(
        user, request.match_info["conversation_id"], q.get("before_seq"), q.get("after_seq"), q.get("limit")
    )
    aurora(request).journal.served(user["id"], None, "history", messages)
    return web.json_response({"messages": messages, "has_more": has_more})


async def send_message(request: web.Request) -> web.Response:
    user = await current_user(request)
    data = await json_body(request)
    message, created = await aurora(request).messages.send(
        user, request.match_info["conversation_id"], data.get("body"), data.get("client_id"),
        reply_to_seq=data.get("reply_to_seq"), attachments=data.get("attachments"),
    )
    return web.json_response({"message": message}, status=201 if created else 200)


async def edit_message(request: web.Request) -> web.Response:
    user = await current_user(request)
    data = await json_body(request)
    m = request.match_info
    ack = await aurora(request).messages.edit(user, m["conversation_id"], m["seq"], data.get("body"),
                                              data.get("client_id"))
    return web.json_response(ack)


async def delete_message(request: web.Request) -> web.Response:
    user = await current_user(request)
    m = request.match_info
    return web.json_response(await aurora(request).messages.delete(user, m["conversation_id"], m["seq"]))


async def add_reaction(request: web.Request) -> web.Response:
    user = await current_user(request)
    m = request.match_info
    ack = await aurora(request).messages.react(user, m["conversation_id"], m["seq"], m["emoji"], added=True)
    return web.json_response(ack)


async def remove_reaction(request: web.Request) -> web.Response:
    user = await current_user(request)
    m = request.match_info
    ack = await aurora(request).messages.react(user, m["conversation_id"], m["seq"], m["emoji"], added=False)
    return web.json_response(ack)


async def search_messages(request: web.Request) -> web.Response:
    user = await current_user(request)
    q = request.query
    found = await aurora(request).messages.search(user, q.get("q"), q.get("conversation_id"), q.get("limit"),
                                                  q.get("before"))
    return web.json_response(found)


# -- calls ------------------------------------------------------------------
async def list_calls(request: web.Request) -> web.Response:
    user = await current_user(request)
    calls = await aurora(request).calls.history(user, request.query.get("conversation_id"), request.query.get("limit"))
    return web.json_response({"calls": calls})


async def get_ice_servers(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"ice_servers": ice_servers(aurora(request).settings, user["id"])})
