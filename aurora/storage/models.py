"""Peewee models. Times are naive UTC datetimes; JSON adds the trailing Z."""

from __future__ import annotations

import datetime as dt

import peewee as pw

from aurora.storage.database import database_proxy


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class User(BaseModel):
    username = pw.CharField(max_length=32)
    # Lower-cased username: uniqueness and look-ups are case-insensitive.
    username_key = pw.CharField(max_length=32, unique=True)
    display_name = pw.CharField(max_length=64)
    password_hash = pw.CharField(max_length=255)
    # Bumped on logout: every token carrying an older version stops working.
    token_version = pw.IntegerField(default=1)
    created_at = pw.DateTimeField(default=utcnow)
    last_seen_at = pw.DateTimeField(null=True)
    # Moderation: admins may use /api/admin; a deactivated user's tokens and logins are refused.
    is_admin = pw.BooleanField(default=False)
    deactivated_at = pw.DateTimeField(null=True)


class Conversation(BaseModel):
    kind = pw.CharField(max_length=8)  # direct | group
    title = pw.CharField(max_length=100, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_seq = pw.BigIntegerField(default=0)
    # When the last message arrived (or creation): orders the conversation list.
    # Not indexed (migration 9): a user's list goes through their memberships, and the index cost
    # every message an index write (on PostgreSQL it also kept the row's update from being HOT).
    last_activity_at = pw.DateTimeField(default=utcnow)
    # "small_id:large_id" for direct conversations: one per pair, even under races.
    direct_key = pw.CharField(max_length=48, null=True, unique=True)


class Membership(BaseModel):
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    conversation = pw.ForeignKeyField(Conversation, on_delete="CASCADE")
    joined_at = pw.DateTimeField(default=utcnow)
    last_read_seq = pw.BigIntegerField(default=0)
    last_delivered_seq = pw.BigIntegerField(default=0)
    # No push notification from this conversation before this time; MUTED_FOREVER: until unmuted.
    muted_until = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("user", "conversation"), True),)


class Message(BaseModel):
    """One entry of a conversation's log: a message (text | call) or a change entry (edit | delete |
    reaction) of the message at target_seq. A message row also holds its current state (latest body,
    edited_at, deleted, reaction aggregates), kept up to date in the transaction that adds each change,
    so history reads never replay the log."""

    # No single-column indexes (migration 9): (conversation, seq) serves every look-up by
    # conversation, and nothing looks messages up by sender alone (users are deactivated, never
    # deleted). Each index was one more page written per message.
    conversation = pw.ForeignKeyField(Conversation, on_delete="CASCADE", index=False)
    seq = pw.BigIntegerField()
    kind = pw.CharField(max_length=8, default="text")  # text | call | edit | delete | reaction
    sender = pw.ForeignKeyField(User, index=False)
    # "" means no text: a deleted message, an erased edit, a delete or reaction entry. (NOT NULL since
    # version 1; dropping it would rebuild the table on SQLite for no gain.) A message with attachments
    # may have no text: its body is "" too.
    body = pw.TextField()
    client_id = pw.CharField(max_length=64, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    # Structured extra data for non-text kinds (the call summary), as JSON text.
    extra = pw.TextField(null=True)
    # Change entries: the message they change; reactions: which emoji, added or removed.
    target_seq = pw.BigIntegerField(null=True)
    emoji = pw.CharField(max_length=32, null=True)
    added = pw.BooleanField(null=True)
    # Messages: what they reply to, and their current state.
    reply_to_seq = pw.BigIntegerField(null=True)
    edited_at = pw.DateTimeField(null=True)
    deleted = pw.BooleanField(null=True)  # null or false: not deleted
    # [{"emoji": "👍", "user_ids": [1, 5]}, ...] in first-reacted order, as JSON text; null: none.
    reactions = pw.TextField(null=True)
    # The seq of the last entry reflected in this state; null: the message's own seq.
    state_seq = pw.BigIntegerField(null=True)

    class Meta:
        indexes = (
            (("conversation", "seq"), True),
            (("conversation", "sender", "client_id"), True),
            (("conversation", "target_seq"), False),
        )


class Upload(BaseModel):
    """A file a user uploaded: its bytes are a blob named by sha256 (identical files stored once).
    Unattached (message null) until a send attaches it to exactly one message; deleting that
    message deletes the row, and the blob goes once no row names it."""

    owner = pw.ForeignKeyField(User, on_delete="CASCADE")
    name = pw.CharField(max_length=255)
    content_type = pw.CharField(max_length=127)
    size = pw.BigIntegerField()
    sha256 = pw.CharField(max_length=64, index=True)
    width = pw.IntegerField(null=True)
    height = pw.IntegerField(null=True)
    thumbnail_sha256 = pw.CharField(max_length=64, null=True, index=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    message = pw.ForeignKeyField(Message, null=True, on_delete="CASCADE")
    position = pw.IntegerField(null=True)

    class Meta:
        indexes = ((("message", "position"), False), (("owner", "message"), False))


class Call(BaseModel):
    conversation = pw.ForeignKeyField(Conversation, on_delete="CASCADE")
    caller = pw.ForeignKeyField(User)
    media = pw.CharField(max_length=8)  # audio | video
    state = pw.CharField(max_length=8, default="ringing", index=True)  # ringing | active | ended
    end_reason = pw.CharField(max_length=24, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    answered_at = pw.DateTimeField(null=True)
    ended_at = pw.DateTimeField(null=True)
    # While anyone is still being rung: when ringing stops (any process may act on it).
    ring_deadline = pw.DateTimeField(null=True, index=True)


class CallParticipant(BaseModel):
    call = pw.ForeignKeyField(Call, on_delete="CASCADE", backref="participants")
    user = pw.ForeignKeyField(User)
    # ringing | joined | left | rejected | missed | busy
    state = pw.CharField(max_length=8)
    joined_at = pw.DateTimeField(null=True)
    left_at = pw.DateTimeField(null=True)
    # The Socket.IO sid of the user's device in the call (sids are routable from any process).
    device_sid = pw.CharField(max_length=64, null=True)
    # Set when that device dropped: unless it rejoins by then, the user leaves the call.
    grace_deadline = pw.DateTimeField(null=True, index=True)

    class Meta:
        indexes = ((("call", "user"), True), (("user", "state"), False))


class DeviceSession(BaseModel):
    """One login (a device): tokens issued by login carry its id; revoking it ends that device."""
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    created_at = pw.DateTimeField(default=utcnow)
    user_agent = pw.CharField(max_length=200, null=True)
    address = pw.CharField(max_length=64, null=True)
    # Set when the session ends (logout, DELETE /api/sessions/{id}, password change). Kept for a while
    # so every process can find, by this index, the sessions ended since it last looked.
    revoked_at = pw.DateTimeField(null=True, index=True)

    class Meta:
        table_name = "device_session"
        indexes = ((("user", "revoked_at"), False),)


class UserBlock(BaseModel):
    blocker = pw.ForeignKeyField(User, on_delete="CASCADE")
    blocked = pw.ForeignKeyField(User, on_delete="CASCADE")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "user_block"
        indexes = ((("blocker", "blocked"), True), (("blocked",), False))
class PushSubscription(BaseModel):
    """A browser's Web Push subscription (RFC 8030): where to POST, and the keys to encrypt for.
    An endpoint belongs to one user and one device session: the browser that made it is theirs.
    Only subscriptions of open sessions are pushed to (null: made with a token from before sessions)."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    session = pw.ForeignKeyField(DeviceSession, null=True, on_delete="CASCADE")
    endpoint = pw.CharField(max_length=1024, unique=True)
    p256dh = pw.CharField(max_length=128)
    auth = pw.CharField(max_length=64)
    # The VAPID public key the browser subscribed with: pushes to it are signed with that key.
    vapid_key = pw.CharField(max_length=128)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "push_subscription"
        indexes = ((("user",), False), (("session",), False))


class Report(BaseModel):
    """A member reported a message to the admins."""

    conversation = pw.ForeignKeyField(Conversation, on_delete="CASCADE")
    seq = pw.BigIntegerField()
    reporter = pw.ForeignKeyField(User, on_delete="CASCADE")
    reason = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("conversation", "seq", "reporter"), True),)


class AuditEntry(BaseModel):
    """Every admin action: who (null: the command line), what, on what, when."""

    actor = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    action = pw.CharField(max_length=32)
    target = pw.CharField(max_length=64)
    detail = pw.TextField(null=True)  # JSON
    created_at = pw.DateTimeField(default=utcnow, index=True)


class SchemaVersion(BaseModel):
    version = pw.IntegerField(primary_key=True)
    applied_at = pw.DateTimeField(default=utcnow)


CHAT_MODELS = [User, Conversation, Membership, Message]
FILE_MODELS = [Upload]
CALL_MODELS = [Call, CallParticipant]
ACCOUNT_SECURITY_MODELS = [DeviceSession, UserBlock]
MODERATION_MODELS = [Report, AuditEntry]
PUSH_MODELS = [PushSubscription]
