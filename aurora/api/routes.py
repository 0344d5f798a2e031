"""Every HTTP route in one table. A route's name is also the key of its rate limit (services/limits/policy.py)."""

from __future__ import annotations

from aiohttp import web

from aurora.api import files, ops, push_views, views, webapp
from aurora.api.openapi import openapi_json


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", webapp.index)
    app.router.add_get("/health", views.health)
    # The OpenAPI document of every route here but /socket.io/ and the web app (aurora/api/openapi/).
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_post("/api/auth/register", views.register, name="register")
    app.router.add_post("/api/auth/login", views.login, name="login")
    app.router.add_post("/api/auth/logout", views.logout)
    app.router.add_post("/api/auth/password", views.change_password, name="change_password")
    app.router.add_get("/api/sessions", views.list_sessions)
    app.router.add_delete(r"/api/sessions/{session_id}", views.end_session)
    app.router.add_get("/api/me", views.me)
    app.router.add_get("/api/users", views.search_users)
    app.router.add_post(r"/api/users/{user_id}/block", views.block_user, name="block")
    app.router.add_delete(r"/api/users/{user_id}/block", views.unblock_user, name="unblock")
    app.router.add_get("/api/blocks", views.list_blocks)
    app.router.add_post("/api/conversations", views.create_conversation, name="create_conversation")
    app.router.add_get("/api/conversations", views.list_conversations)
    app.router.add_get(r"/api/conversations/{conversation_id}", views.get_conversation)
    app.router.add_post(r"/api/conversations/{conversation_id}/members", views.add_members, name="add_members")
    app.router.add_delete(r"/api/conversations/{conversation_id}/members/me", views.leave_conversation)
    app.router.add_get(r"/api/conversations/{conversation_id}/messages", views.list_messages)
    app.router.add_post(r"/api/conversations/{conversation_id}/messages", views.send_message, name="send_message")
    message = r"/api/conversations/{conversation_id}/messages/{seq}"
    app.router.add_patch(message, views.edit_message, name="edit_message")
    app.router.add_delete(message, views.delete_message, name="delete_message")
    app.router.add_put(message + "/reactions/{emoji}", views.add_reaction, name="react")
    app.router.add_delete(message + "/reactions/{emoji}", views.remove_reaction, name="unreact")
    app.router.add_get("/api/search", views.search_messages)
    app.router.add_get("/api/calls", views.list_calls)
    app.router.add_get("/api/ice-servers", views.get_ice_servers)
    # Attachments. The route name "upload" is the key of its rate limit (the limits mechanism's
    # LIMIT_OF maps it to the `upload` bucket once that lands).
    app.router.add_post("/api/uploads", files.upload, name="upload")
    app.router.add_get(r"/api/files/{upload_id}", files.download)
    app.router.add_get(r"/api/files/{upload_id}/thumbnail", files.download_thumbnail)
    webapp.WebApp().add_routes(app)  # /app/: the web app and the SDK it imports
    # Operations (docs/operations.md): metrics, delivery trace, admin and moderation.
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_post(message + "/report", ops.report_message)
    app.router.add_get(r"/api/admin/messages/{conversation_id}/{seq}/trace", ops.trace_message)
    app.router.add_delete(r"/api/admin/messages/{conversation_id}/{seq}", ops.admin_delete_message)
    app.router.add_get("/api/admin/users", ops.admin_users)
    app.router.add_post(r"/api/admin/users/{user_id}/deactivate", ops.admin_deactivate)
    app.router.add_post(r"/api/admin/users/{user_id}/reactivate", ops.admin_reactivate)
    app.router.add_get("/api/admin/reports", ops.admin_reports)
    app.router.add_get("/api/admin/audit", ops.admin_audit)
    # Web Push (issue 15)
    app.router.add_get("/api/push/vapid-public-key", push_views.vapid_public_key)
    app.router.add_get("/api/push/subscriptions", push_views.list_subscriptions)
    app.router.add_post("/api/push/subscriptions", push_views.subscribe, name="push_subscribe")
    app.router.add_delete("/api/push/subscriptions", push_views.unsubscribe)
    app.router.add_put(r"/api/conversations/{conversation_id}/mute", push_views.mute, name="mute")
    app.router.add_delete(r"/api/conversations/{conversation_id}/mute", push_views.unmute)
