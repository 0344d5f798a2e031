"""The JSON shapes the SDK hands out (docs/protocol.md), as TypedDicts: plain dicts, typed for checkers."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

ConnectionStateName = Literal["connecting", "connected", "reconnecting", "offline"]
ChangeKind = Literal["new", "edit", "delete", "reaction"]


class User(TypedDict):
    id: int
    username: str
    display_name: str
    created_at: str
    last_seen_at: str | None
    online: NotRequired[bool]


class Reaction(TypedDict):
    emoji: str
    count: int
    user_ids: list[int]
    me: bool


class ReplyTo(TypedDict):
    seq: int
    sender_id: int
    sender_username: str
    excerpt: str | None


class Message(TypedDict):
    """A message (kind "text" or "call") in its current state, as REST history shows it."""

    id: int
    conversation_id: int
    seq: int
    kind: str
    sender_id: int
    sender_username: str
    body: str | None
    client_id: str | None
    created_at: str
    edited_at: NotRequired[str | None]
    deleted: NotRequired[bool]
    reactions: NotRequired[list[Reaction]]
    reply_to: NotRequired[ReplyTo | None]
    state_seq: NotRequired[int]
    attachments: NotRequired[list[dict[str, Any]]]
    call: NotRequired[dict[str, Any]]


class Entry(TypedDict):
    """One entry of a conversation's log: a message, or a change entry (edit, delete, reaction)."""

    id: int
    conversation_id: int
    seq: int
    kind: str
    sender_id: int
    sender_username: NotRequired[str]
    client_id: NotRequired[str | None]
    created_at: str
    target_seq: NotRequired[int]
    body: NotRequired[str | None]
    emoji: NotRequired[str]
    added: NotRequired[bool]


class Conversation(TypedDict):
    id: int
    kind: str
    title: str | None
    members: list[User]
    created_at: str
    last_seq: int
    last_activity_at: str
    last_message: NotRequired[Message | None]
    unread_count: NotRequired[int]
    read_seq: NotRequired[int]
    delivered_seq: NotRequired[int]


class PendingSend(TypedDict):
    """A send in the outbox: not yet acknowledged as stored. Retried with the same client_id."""

    client_id: str
    conversation_id: int
    body: str
    reply_to: int | None  # the seq it replies to (sent as reply_to_seq)
    attachments: list[Any]  # upload ids
    created_at: float  # when it was typed (time.time())
    order: int  # typed order across restarts
    status: NotRequired[Literal["queued", "sending"]]
    attempts: NotRequired[int]
    last_error: NotRequired[str | None]  # the last retryable error, as "code: message"


class ConnectionState(TypedDict):
    state: ConnectionStateName
    reason: str


class Receipt(TypedDict):
    conversation_id: int
    user_id: int
    delivered_seq: int
    read_seq: int


class Presence(TypedDict):
    user_id: int
    online: bool
    last_seen_at: str | None


class Auth(TypedDict):
    token: str
    user: User


class HistoryPage(TypedDict):
    messages: list[Message]
    has_more: bool


class Upload(TypedDict, total=False):
    """An uploaded file before it is attached: send(cid, "", attachments=[upload["id"]])."""

    id: int
    name: str
    content_type: str
    size: int
    sha256: str
    width: int
    height: int
