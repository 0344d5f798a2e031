"""The OpenAPI 3.1 document of Aurora's REST API, written beside the routes (aurora/api/routes.py).

Checked, not trusted: tests/test_openapi.py fails when a route of the real app's router is missing
here (or a path here has no route), and tests/test_openapi_schemathesis.py runs schemathesis against
the real server, so a status, a content type or a field this document does not describe fails
`make test`.

Left out on purpose (EXCLUDED): the Socket.IO endpoint (Engine.IO's own protocol, described in
docs/protocol.md) and the static files of the web app under /app (HTML, JS, CSS). HEAD is implied by
every GET (aiohttp answers it from the GET handler); OPTIONS is the CORS preflight, answered before
routing for every /api path (204, or 403 with the JSON error for an origin not allowed).
"""

from __future__ import annotations

from typing import Any

from aurora import __version__
from aurora.api.openapi.schemas import BOOL, ID, OK, SCHEMAS, SEQ, STR, Schema, array, nullable, obj, ref
from aurora.errors import STATUS_BY_CODE
from aurora.services.accounts import MAX_DISPLAY_NAME_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS
from aurora.services.calls import HISTORY_MAX
from aurora.services.conversations import LIST_MAX, MAX_TITLE_CHARS
from aurora.services.message_changes import MAX_EMOJI_CHARS
from aurora.services.messages import MAX_CLIENT_ID_CHARS, PAGE_MAX, SEARCH_MAX
from aurora.services.ops import moderation
from aurora.services.push.subscriptions import MAX_ENDPOINT_CHARS
from aurora.services.search_query import MAX_QUERY_CHARS

# (method, aiohttp route template) of the routes this document does not describe, with the reason.
EXCLUDED: dict[tuple[str, str], str] = {
    **{(method, "/socket.io/"): "Socket.IO / Engine.IO transport (docs/protocol.md)"
       for method in ("GET", "POST", "OPTIONS")},
    **{("GET", path): "static files of the web app (web/, clients/js)"
       for path in ("/app", "/app/", "/app/sdk/{path}", "/app/{path}")},
}

# What each error status means; every operation lists the ones it can answer.
ERROR_TEXT = {
    400: "`invalid`: a malformed body, a wrong type, a value out of range; nothing changed",
    401: "`auth_required` (no token), `auth_invalid`, `auth_expired` (or `invalid_credentials` on login)",
    403: "`forbidden`",
    404: "`not_found` (a conversation you are not a member of is not found either)",
    409: "`conflict`: the target's state does not allow it",
    413: "`too_large`",
    429: "`rate_limited`: the route's token bucket is empty (`retry_after_ms`, `Retry-After`)",
    503: "`unavailable`: an outage (the database or Redis cannot be reached, the disk is full); retry "
         "after `Retry-After` seconds",
}
ERROR_NAMES = {400: "Invalid", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
               413: "TooLarge", 429: "RateLimited", 503: "Unavailable"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}}


def _error_response(status: int) -> dict[str, Any]:
    codes = [code for code, s in STATUS_BY_CODE.items() if s == status]
    response: dict[str, Any] = {
        "description": ERROR_TEXT[status] + f" (code: {', '.join(codes)})",
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _param(name: str, where: str, schema: Schema, description: str = "", *, required: bool = False,
           example: Any = None) -> Schema:
    param: Schema = {"name": name, "in": where, "required": where == "path" or required, "schema": schema}
    if description:
        param["description"] = description
    if example is not None:
        param["example"] = example
    return param


def path_id(name: str, description: str = "") -> Schema:
    return _param(name, "path", ID, description)


def query(name: str, schema: Schema, description: str = "", *, required: bool = False,
          example: Any = None) -> Schema:
    return _param(name, "query", schema, description, required=required, example=example)


def limit(maximum: int, default: int) -> Schema:
    return query("limit", {"type": "integer", "minimum": 1, "maximum": maximum},
                 f"page size (default {default}, at most {maximum})")


def op(tag: str, summary: str, ok: dict[int, dict[str, Any]], errors: tuple[int, ...] = (), *,
       auth: bool = True, params: list[Schema] | None = None, body: Schema | None = None,
       body_required: bool = True, description: str = "", outage: bool = True,
       example: Any = None) -> dict[str, Any]:
    """One operation. An authenticated one also answers 401; one that reaches the database or Redis
    (`outage`) 503 `unavailable`."""
    statuses = sorted({*errors, *((401,) if auth else ()), *((503,) if outage else ())})
    operation: dict[str, Any] = {"tags": [tag], "summary": summary}
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = params
    if body is not None:
        media: dict[str, Any] = {"schema": body}
        if example is not None:
            media["example"] = example
        operation["requestBody"] = {"required": body_required, "content": {"application/json": media}}
    operation["responses"] = {str(s): r for s, r in ok.items()} | {
        str(s): {"$ref": f"#/components/responses/{ERROR_NAMES[s]}"} for s in statuses}
    operation["security"] = [{"bearer": []}] if auth else []
    return operation


# A real uncompressed P-256 point (the example subscription must pass the server's checks).
EXAMPLE_P256DH = "BLl_n8FzD29ge4ZEdjuREvu0ZmJL4ahl55ZAHMlzjVhk6Ca5uAqGjvDocJczhjuopIOyNv5PmQxLSr8JFJeiYaE"
PUSH_OFF = "404 `not_found` also when Web Push is off on this server (push_enabled = false)."
CONVERSATION = path_id("conversation_id")
SEQ_PARAM = _param("seq", "path", ID, "the message's seq in its conversation")
USER_IDS = array(ID, minItems=1, maxItems=500)
CHANGE = {200: _json(ref("Change"), "the change entry and the message's new state (`duplicate`: "
                                    "already so, nothing new was written)")}
TEXT_BODY = {"type": "string", "description": "trimmed; at most max_message_chars (413 above)"}
CLIENT_ID = nullable({"type": "string", "minLength": 1, "maxLength": MAX_CLIENT_ID_CHARS,
                      "description": "idempotency key of the sender in this conversation"})


def _paths() -> dict[str, dict[str, Any]]:
    message = "/api/conversations/{conversation_id}/messages/{seq}"
    password = {"type": "string", "minLength": MIN_PASSWORD_CHARS, "maxLength": MAX_PASSWORD_CHARS}
    return {
        "/": {"get": op("server", "Liveness text (a browser is redirected to the web app)", {
            200: {"description": "`Aurora WebSocket Server Running`",
                  "content": {"text/plain": {"schema": STR}}},
            302: {"description": "Accept names text/html: to /app/"},
        }, auth=False, outage=False)},
        "/health": {"get": op("server", "Health of this process: database, Redis, version", {
            200: _json(ref("Health"), "serving (`degraded`: Redis is down, this process still serves)"),
            503: _json(ref("Health"), "out of service: the database does not answer or cannot write "
                                      "(`status: error`)"),
        }, auth=False, outage=False)},
        "/metrics": {"get": op("operations", "Prometheus metrics (text exposition format)", {
            200: {"description": "Prometheus text format 0.0.4",
                  "content": {"text/plain": {"schema": STR}}},
        }, (401, 403), auth=False, description="With `metrics_token` set: needs `Authorization: Bearer "
                                               "<metrics_token>` (401 otherwise); unset: loopback peers "
                                               "without proxy headers only (403 otherwise).")},
        "/api/openapi.json": {"get": op("server", "This document", {
            200: _json({"type": "object"}, "the OpenAPI 3.1 document"),
        }, auth=False, outage=False)},
        # -- accounts
        "/api/auth/register": {"post": op("accounts", "Create an account (and a first device session)", {
            201: _json(ref("Auth"), "the account and a token for its new session"),
        }, (400, 409, 429), auth=False, body=obj({
            "username": {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]{3,32}$",
                         "description": "unique in any letter case (409 otherwise)"},
            "password": password,
            "display_name": nullable({"type": "string", "minLength": 1, "maxLength": MAX_DISPLAY_NAME_CHARS}),
        }, optional=("display_name",)), example={"username": "alice", "password": "correct horse battery",
                                                  "display_name": "Alice"})},
        "/api/auth/login": {"post": op("accounts", "Log in: a new device session", {
            200: _json(ref("Auth"), "a token for a new session"),
        }, (400, 401, 403, 429), auth=False, body=obj({"username": STR, "password": STR}),
            example={"username": "alice", "password": "correct horse battery"},
            description="401 `invalid_credentials` for an unknown user and a wrong password alike; 403 for "
                        "a deactivated account (said only with the right password); 429 after "
                        "login_max_failures failures (per username, and 5x that per address).")},
        "/api/auth/logout": {"post": op("accounts", "End this session (or every session)", {
            200: _json(OK, "logged out; the session's sockets close"),
        }, (400,), body=obj({"everywhere": BOOL}, optional=("everywhere",)), body_required=False)},
        "/api/auth/password": {"post": op("accounts", "Change the password", {
            200: _json(obj({"token": STR, "ended_sessions": {"type": "integer", "minimum": 0}}),
                       "a new token for this session; every other session ended"),
        }, (400, 403, 429), body=obj({"current_password": STR, "new_password": password}),
            example={"current_password": "correct horse battery", "new_password": "battery staple horse"},
            description="403 when current_password is wrong (counted like a failed login, 429 past the limit).")},
        "/api/sessions": {"get": op("accounts", "The caller's open device sessions", {
            200: _json(obj({"sessions": array(ref("Session"))}), "newest first"),
        })},
        "/api/sessions/{session_id}": {"delete": op("accounts", "End one of the caller's sessions", {
            200: _json(OK, "ended; its sockets close within auth_check_interval_s"),
        }, (400, 404), params=[path_id("session_id")])},
        "/api/me": {"get": op("accounts", "The caller", {200: _json(obj({"user": ref("User")}), "with `online`")})},
        "/api/users": {"get": op("accounts", "Find users by username or display-name prefix", {
            200: _json(obj({"users": array(ref("User"), maxItems=20)}), "up to 20, by username"),
        }, (400,), params=[query("q", {"type": "string", "maxLength": 64}, "prefix, case-insensitive")])},
        # -- blocks
        "/api/users/{user_id}/block": {
            "post": op("blocks", "Block a user", {
                201: _json(obj({"ok": {"const": True}, "created": {"const": True}}), "blocked now"),
                200: _json(obj({"ok": {"const": True}, "created": {"const": False}}), "already blocked"),
            }, (400, 404, 429), params=[path_id("user_id")], description="400 for yourself."),
            "delete": op("blocks", "Unblock a user", {
                200: _json(obj({"ok": {"const": True}, "removed": BOOL}), "`removed`: there was a block"),
            }, (400, 429), params=[path_id("user_id")]),
        },
        "/api/blocks": {"get": op("blocks", "The users the caller blocked", {
            200: _json(obj({"blocks": array(ref("User"))}), "blocked users"),
        })},
        # -- conversations
        "/api/conversations": {
            "post": op("conversations", "Start a direct conversation or a group", {
                201: _json(obj({"conversation": ref("Conversation")}), "created"),
                200: _json(obj({"conversation": ref("Conversation")}), "that pair's direct conversation, "
                                                                      "which existed"),
            }, (400, 403, 404, 413, 429), body=obj({
                "user_ids": USER_IDS,
                "title": nullable({"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS}),
            }, optional=("title",)), example={"user_ids": [2, 3], "title": "Team"},
                description="One other user and no title: their direct conversation. "
                                                 "403: a block between you; 404: an unknown user; 413: over "
                                                 "max_group_members."),
            "get": op("conversations", "The caller's conversations, most recently active first", {
                200: _json(obj({"conversations": array(ref("Conversation")), "next": nullable(STR)}),
                           "`next`: the cursor of the following page, null on the last"),
            }, (400,), params=[query("cursor", STR, "`next` of the previous page"), limit(LIST_MAX, 100)]),
        },
        "/api/conversations/{conversation_id}": {"get": op("conversations", "One conversation", {
            200: _json(obj({"conversation": ref("Conversation")}), "with every member"),
        }, (400, 404), params=[CONVERSATION])},
        "/api/conversations/{conversation_id}/members": {"post": op("conversations", "Add members to a group", {
            200: _json(obj({"conversation": ref("Conversation")}), "users already there are ignored"),
        }, (400, 403, 404, 413, 429), params=[CONVERSATION], body=obj({"user_ids": USER_IDS}))},
        "/api/conversations/{conversation_id}/members/me": {"delete": op("conversations", "Leave a group", {
            200: _json(OK, "left"),
        }, (400, 404), params=[CONVERSATION])},
        "/api/conversations/{conversation_id}/mute": {
            "put": op("push", "Mute the conversation's push notifications", {
                200: _json(ref("MuteState"), "muted (until `until`, or until unmuted)"),
            }, (400, 404, 429), params=[CONVERSATION], body=obj({"until": nullable(
                {"type": "string", "format": "date-time", "description": "ISO-8601 with a zone, in the future"})},
                optional=("until",)), body_required=False, example={"until": "2030-01-01T08:00:00Z"}),
            "delete": op("push", "Unmute", {200: _json(ref("MuteState"), "not muted")}, (400, 404),
                         params=[CONVERSATION]),
        },
        # -- messages
        "/api/conversations/{conversation_id}/messages": {
            "get": op("messages", "A page of history, ascending seq", {
                200: _json(obj({"messages": array(ref("Message")), "has_more": BOOL}),
                           "messages in their current state (no change entries); the latest page without cursors"),
            }, (400, 404), params=[CONVERSATION,
                                   query("before_seq", ID, "messages before this seq"),
                                   query("after_seq", SEQ, "messages after this seq"),
                                   limit(PAGE_MAX, 50)]),
            "post": op("messages", "Send a message", {
                201: _json(obj({"message": ref("Message")}), "stored and broadcast"),
                200: _json(obj({"message": ref("Message")}), "this sender's client_id again: the original"),
            }, (400, 403, 404, 409, 413, 429), params=[CONVERSATION], body=obj({
                "body": TEXT_BODY,
                "client_id": CLIENT_ID,
                "reply_to_seq": nullable(ID),
                "attachments": nullable(array(ID, description="upload ids (POST /api/uploads) of this sender")),
            }, optional=("client_id", "reply_to_seq", "attachments")),
                example={"body": "hello", "client_id": "6f1c2a9e-0d3b-4c1e-9a51-3f0e8c1b2d4a", "reply_to_seq": 1},
                description="`body` may be empty when `attachments` are given. 403: a DM whose other member "
                            "blocked you. 409: the client_id was used for an edit."),
        },
        message: {
            "patch": op("messages", "Edit one's own message", CHANGE, (400, 403, 404, 409, 413, 429),
                        params=[CONVERSATION, SEQ_PARAM],
                        body=obj({"body": TEXT_BODY, "client_id": CLIENT_ID}, optional=("client_id",)),
                        example={"body": "hello again", "client_id": "b7e1f0c2-5a4d-4e8b-8c3f-2d1a0e9b7c65"},
                        description="403: not the sender, or a call summary; 409: deleted, past edit_window_s, or "
                                    "a client_id used for another entry (a message, an edit of another one)."),
            "delete": op("messages", "Delete one's own message (a tombstone)", CHANGE, (400, 403, 404, 409, 429),
                         params=[CONVERSATION, SEQ_PARAM]),
        },
        message + "/reactions/{emoji}": {
            method: op("messages", summary, CHANGE, (400, 404, 409, 429), params=[
                CONVERSATION, SEQ_PARAM,
                _param("emoji", "path", {"type": "string", "minLength": 1, "maxLength": MAX_EMOJI_CHARS},
                       "one emoji, or a :short_name: (URL-encoded)", example="👍")],
                description="409: a deleted message, or one more distinct emoji than allowed.")
            for method, summary in (("put", "React"), ("delete", "Take a reaction back"))
        },
        message + "/report": {"post": op("moderation", "Report a message to the admins", {
            201: _json(obj({"report": ref("Report")}), "reported"),
            200: _json(obj({"report": ref("Report")}), "the caller reported it before"),
        }, (400, 404), params=[CONVERSATION, SEQ_PARAM], body=obj({"reason": nullable(
            {"type": "string", "maxLength": moderation.MAX_REASON_CHARS})}, optional=("reason",)),
            body_required=False)},
        "/api/search": {"get": op("messages", "Full-text search over the caller's conversations", {
            200: _json(obj({"results": array(ref("SearchResult")), "next": nullable(ID)}),
                       "newest first; `next`: the `before` of the following page"),
        }, (400, 404), params=[
            query("q", {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
                  'words (all must match), "a phrase", -excluded', required=True, example="hello"),
            query("conversation_id", ID, "only this conversation (404 if not yours)"),
            limit(SEARCH_MAX, 20),
            query("before", ID, "`next` of the previous page (a message id)"),
        ])},
        # -- calls
        "/api/calls": {"get": op("calls", "Call history of a conversation, newest first", {
            200: _json(obj({"calls": array(ref("Call"))}), "calls"),
        }, (400, 404), params=[query("conversation_id", ID, required=True), limit(HISTORY_MAX, 50)])},
        "/api/ice-servers": {"get": op("calls", "STUN/TURN servers for WebRTC", {
            200: _json(obj({"ice_servers": array(ref("IceServer"))}),
                       "the TURN entry (with time-limited credentials) only when TURN is configured"),
        })},
        # -- files
        "/api/uploads": {"post": {
            **op("files", "Upload a file (streamed, type sniffed, images stripped and thumbnailed)", {
                201: _json(obj({"upload": ref("Upload")}), "stored; attach it with `attachments: [id]`"),
            }, (400, 413, 429), params=[query("filename", {"type": "string"}, "the name, for a raw body")],
                description="multipart/form-data with the file as the first field, `file`; or the raw bytes "
                            "as the body with ?filename=. 413 over max_upload_bytes or the quota; 503 also when "
                            "the image threads are busy."),
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": obj({"file": {"type": "string", "format": "binary"}})},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            }},
        }},
        **{route: {"get": op("files", summary, {
            200: {"description": "the bytes: `inline` for PNG/JPEG/GIF/WebP, `attachment` otherwise; nosniff; "
                                 "CSP `default-src 'none'; sandbox`; Range and ETag supported",
                  "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
            206: {"description": "a Range request", "content": {"*/*": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}},
            304: {"description": "If-None-Match matched"},
        }, (403, 404), auth=False, params=[
            _param("upload_id", "path", {"type": "string"}, "an upload id (from a message attachment)"),
            query("sig", STR, "the signature of the attachment's `url` / `thumbnail_url` (no token needed)"),
        ], description="403: no, a bad, a foreign or an expired signature; 404: not a member now, a deleted "
                       "message, no thumbnail.")}
           for route, summary in (("/api/files/{upload_id}", "Download an attachment"),
                                  ("/api/files/{upload_id}/thumbnail", "Download an image's thumbnail (WebP)"))},
        # -- Web Push
        "/api/push/vapid-public-key": {"get": op("push", "The VAPID key for pushManager.subscribe", {
            200: _json(obj({"public_key": STR}), "the applicationServerKey (URL-safe base64)"),
        }, (404,), description=PUSH_OFF)},
        "/api/push/subscriptions": {
            "get": op("push", "The caller's push subscriptions", {
                200: _json(obj({"subscriptions": array(ref("PushSubscription"))}), "subscriptions"),
            }, (404,), description=PUSH_OFF),
            "post": op("push", "Keep a browser's PushSubscription", {
                201: _json(obj({"subscription": ref("PushSubscription")}), "stored"),
                200: _json(obj({"subscription": ref("PushSubscription")}), "already yours"),
            }, (400, 404, 429), body=obj({
                "endpoint": {"type": "string", "format": "uri", "maxLength": MAX_ENDPOINT_CHARS,
                             "description": "https URL of an allowed push service (push_endpoint_hosts)"},
                "keys": obj({"p256dh": STR, "auth": STR}),
            }), description="400 for a bad endpoint or keys; nothing is stored. " + PUSH_OFF, example={
                "endpoint": "https://fcm.googleapis.com/fcm/send/example-device-token", "expirationTime": None,
                "keys": {"p256dh": EXAMPLE_P256DH, "auth": "AAECAwQFBgcICQoLDA0ODw"}}),
            "delete": op("push", "Forget a push subscription", {200: _json(OK, "forgotten")}, (400, 404),
                         params=[query("endpoint", STR, "or as {endpoint} in a JSON body")],
                         description="404: not a subscription of the caller. " + PUSH_OFF,
                         body=obj({"endpoint": STR}), body_required=False),
        },
        # -- operations and admin
        "/api/admin/users": {"get": op("admin", "List and search users (admins)", {
            200: _json(obj({"users": array(ref("AdminUser"))}), "by id"),
        }, (400, 403), params=[query("q", {"type": "string", "maxLength": 64}, "username or display-name prefix"),
                               limit(moderation.PAGE_MAX, moderation.PAGE_DEFAULT),
                               query("offset", SEQ, "how many to skip")])},
        **{f"/api/admin/users/{{user_id}}/{action}": {"post": op("admin", summary, {
            200: _json(obj({"user": ref("AdminUser")}), "the user now"),
        }, (400, 403, 404), params=[path_id("user_id")], description=detail)}
           for action, summary, detail in (
               ("deactivate", "Deactivate a user (admins)", "Their sockets close on every process, their tokens "
                                                           "and logins are refused, their messages stay. 400 for "
                                                           "yourself."),
               ("reactivate", "Reactivate a user (admins)", ""))},
        "/api/admin/messages/{conversation_id}/{seq}": {"delete": op("admin", "Delete any message (admins)", CHANGE,
                                                                     (400, 403, 404, 409),
                                                                     params=[CONVERSATION, SEQ_PARAM])},
        "/api/admin/messages/{conversation_id}/{seq}/trace": {"get": op("admin", "Why did each member (not) get it?", {
            200: _json(obj({"trace": ref("Trace")}), "stored when and where; per member: sockets at send time and "
                                                     "now, live emit reached or not, syncs, pointers, a verdict"),
        }, (400, 403, 404), params=[CONVERSATION, _param("seq", "path", SEQ)])},
        "/api/admin/reports": {"get": op("admin", "Reports, newest first (admins)", {
            200: _json(obj({"reports": array(ref("Report"))}), "reports"),
        }, (400, 403), params=[limit(moderation.PAGE_MAX, moderation.PAGE_DEFAULT),
                               query("before", ID, "a report id")])},
        "/api/admin/audit": {"get": op("admin", "The audit log, newest first (admins)", {
            200: _json(obj({"entries": array(ref("AuditEntry"))}), "who did what, when"),
        }, (400, 403), params=[limit(moderation.PAGE_MAX, moderation.PAGE_DEFAULT),
                               query("before", ID, "an audit entry id")])},
    }


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Aurora REST API",
            "version": __version__,
            "description": "Requests and responses are JSON; every error under /api is "
                           "`{\"error\": {\"code\", \"message\"}}` with the status of its code. Real-time "
                           "events (Socket.IO /chat and /calls) are described in docs/protocol.md.",
        },
        "servers": [{"url": "/"}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "responses": {name: _error_response(status) for status, name in ERROR_NAMES.items()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a token from register, login or `app.py token`"}},
        },
    }
