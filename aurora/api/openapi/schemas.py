"""The JSON shapes of the REST API as OpenAPI 3.1 (JSON Schema 2020-12) components.

Written beside the code that builds them (storage/records.py and the other *_record functions) and
checked against the running server by tests/test_openapi_schemathesis.py: a field renamed in a record
and not here fails `response_schema_conformance`.
"""

from __future__ import annotations

from typing import Any

from aurora.errors import STATUS_BY_CODE
from aurora.services.validation import MAX_ID

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """schema or null (JSON Schema 2020-12: no `nullable` keyword in OpenAPI 3.1)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = (), description: str | None = None) -> Schema:
    """An object whose properties are all required except `optional`; more properties are allowed
    (a client must ignore fields it does not know)."""
    schema: Schema = {"type": "object", "properties": properties,
                      "required": [name for name in properties if name not in optional]}
    if description:
        schema["description"] = description
    return schema


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


INT = {"type": "integer"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
SEQ = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
BOOL = {"type": "boolean"}
STR = {"type": "string"}
TIME = {"type": "string", "format": "date-time", "description": "ISO-8601 UTC with milliseconds and Z"}
OK = obj({"ok": {"const": True}})


def _schemas() -> dict[str, Schema]:
    user_fields = {
        "id": ID, "username": STR, "display_name": STR, "created_at": TIME, "last_seen_at": nullable(TIME),
        "online": BOOL,
    }
    message_common = {
        "id": ID, "conversation_id": ID, "seq": ID, "sender_id": ID, "sender_username": STR,
        "client_id": nullable(STR), "created_at": TIME,
    }
    return {
        "Error": obj({
            "error": obj({
                "code": {"type": "string", "enum": list(STATUS_BY_CODE)},
                "message": STR,
                "retry_after_ms": {"type": "integer", "minimum": 0,
                                   "description": "rate_limited only: how long to wait before retrying"},
            }, optional=("retry_after_ms",)),
        }, description="Every refusal under /api; the code is the stable part, the message is for people."),
        "User": obj(user_fields, optional=("online",),
                    description="`online` is added where the REST API annotates users (me, search, members)."),
        "AdminUser": obj({**user_fields, "is_admin": BOOL, "deactivated_at": nullable(TIME)}, optional=("online",)),
        "Auth": obj({"token": STR, "user": ref("User")}),
        "Session": obj({"id": ID, "created_at": TIME, "user_agent": nullable(STR), "address": nullable(STR),
                        "current": BOOL}),
        "Reaction": obj({"emoji": STR, "count": {"type": "integer", "minimum": 1}, "user_ids": array(ID),
                         "me": BOOL}, optional=("me",)),
        "ReplyTo": obj({"seq": ID, "sender_id": ID, "sender_username": STR, "excerpt": nullable(STR)}),
        "Attachment": obj({"id": ID, "name": STR, "content_type": STR, "size": INT, "width": nullable(INT),
                           "height": nullable(INT), "url": nullable(STR), "thumbnail_url": nullable(STR)}),
        "CallSummary": obj({"id": ID, "media": {"enum": ["audio", "video"]}, "end_reason": nullable(STR),
                            "duration_s": nullable({"type": "number"})}, optional=("end_reason", "duration_s")),
        "Message": obj({
            **message_common,
            "kind": {"enum": ["text", "call"]},
            "body": nullable(STR), "edited_at": nullable(TIME), "deleted": BOOL,
            "reactions": array(ref("Reaction")), "reply_to": nullable(ref("ReplyTo")), "state_seq": ID,
            "attachments": array(ref("Attachment")), "call": ref("CallSummary"),
        }, optional=("call",), description="A message in its current state (`call` only on kind `call`)."),
        "Entry": obj({
            **message_common,
            "kind": {"enum": ["edit", "delete", "reaction"]},
            "target_seq": ID, "body": nullable(STR), "emoji": STR, "added": BOOL,
        }, optional=("body", "emoji", "added"),
            description="A change entry of the log: `body` on edits, `emoji` and `added` on reactions."),
        "Change": obj({"entry": nullable(ref("Entry")), "message": ref("Message"), "duplicate": BOOL},
                      description="`entry` is null for a no-op with no earlier entry to show (unreacting what "
                                  "you never reacted)."),
        "Conversation": obj({
            "id": ID, "kind": {"enum": ["direct", "group"]}, "title": nullable(STR),
            "members": array(ref("User")), "created_at": TIME, "last_seq": SEQ, "last_activity_at": TIME,
            "muted": BOOL, "muted_until": nullable(TIME),
            # GET /api/conversations only
            "last_message": nullable(ref("Message")), "unread_count": {"type": "integer", "minimum": 0},
            "read_seq": SEQ, "delivered_seq": SEQ, "member_count": {"type": "integer", "minimum": 1},
        }, optional=("muted", "muted_until", "last_message", "unread_count", "read_seq", "delivered_seq",
                     "member_count"),
            description="`last_message`, `unread_count`, `read_seq`, `delivered_seq` and `member_count` come "
                        "with GET /api/conversations (whose `members` are the first 50)."),
        "Call": obj({
            "id": ID, "conversation_id": ID, "caller_id": ID, "media": {"enum": ["audio", "video"]},
            "state": {"enum": ["ringing", "active", "ended"]}, "end_reason": nullable(STR),
            "participants": array(ID), "ringing": array(ID),
            "invitees": {"type": "object", "additionalProperties": STR,
                         "description": "user id (as a string) -> ringing | joined | left | rejected | missed | busy"},
            "created_at": TIME, "answered_at": nullable(TIME), "ended_at": nullable(TIME),
        }),
        "SearchResult": obj({"message": ref("Message"), "conversation_id": ID, "highlight": STR}),
        "Upload": obj({"id": ID, "name": STR, "content_type": STR, "size": INT, "sha256": STR,
                       "width": INT, "height": INT}, optional=("width", "height"),
                      description="`width` and `height` for images only."),
        "IceServer": obj({"urls": array(STR), "username": STR, "credential": STR},
                         optional=("username", "credential")),
        "PushSubscription": obj({"id": ID, "endpoint": STR, "session_id": nullable(ID), "created_at": TIME,
                                 "current": BOOL}, optional=("current",),
                                description="`current`: made by the session of the token that lists it."),
        "MuteState": obj({"conversation_id": ID, "muted": BOOL, "muted_until": nullable(TIME)}),
        "Report": obj({
            "id": ID, "conversation_id": ID, "seq": SEQ, "reporter": obj({"id": ID, "username": STR}),
            "reason": STR, "created_at": TIME,
            "message": nullable(obj({"sender_id": ID, "body": STR, "deleted": BOOL, "created_at": TIME})),
        }, optional=("message",), description="`message` (the reported message now) in the admin list only."),
        "AuditEntry": obj({"id": ID, "actor_id": nullable(ID), "action": STR, "target": STR,
                           "detail": nullable({"type": "object"}), "created_at": TIME}),
        "Trace": _trace_schema(),
        "Health": obj({
            "status": {"enum": ["ok", "degraded", "error"]},
            "database": {"enum": ["ok", "error", "cannot_write"]},
            "database_error": nullable(STR),
            "message_queue": {"enum": ["ok", "error"]},
            "connections": {"type": "integer", "minimum": 0},
            "push": {"type": "object", "additionalProperties": {"type": "integer"}},
            "version": STR,
        }, optional=("database_error", "message_queue", "connections", "push"),
            description="`message_queue` with redis_url set; `connections` and `push` only to a local probe "
                        "or with the metrics_token."),
    }


def _trace_schema() -> Schema:
    socket = {"sid": STR, "device": STR, "process": STR, "transport": nullable(STR), "opened_at": TIME,
              "closed_at": nullable(TIME)}
    member = obj({
        "user_id": ID, "username": STR, "delivered_seq": SEQ, "read_seq": SEQ, "joined_at": TIME,
        "sockets_at_send": array(obj({**socket, "reached": BOOL, "reached_at": nullable(TIME),
                                      "close_reason": nullable(STR)})),
        "sockets_now": array(obj(socket)),
        "fetched": array(obj({"how": STR, "device": STR, "at": TIME, "sid": nullable(STR)})),
        "verdict": {"type": "string", "description": "one line: why this member did (not) get it"},
    })
    return obj({
        "conversation_id": ID, "seq": SEQ, "kind": STR, "sender": obj({"id": ID, "username": STR}),
        "stored_at": TIME,
        "stored_by": array(obj({"process": STR, "at": TIME})),
        "emitted": array(obj({"process": STR, "at": TIME, "sockets": {"type": "integer", "minimum": 0}})),
        "processes": array(obj({"process": STR, "covers_from": TIME})),
        "missing_processes": nullable({"type": "integer", "minimum": 0}),
        "complete": BOOL,
        "members": array(member),
    })


SCHEMAS = _schemas()
