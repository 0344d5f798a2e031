"""The conversation log: sending, replying, editing, deleting, reacting, paging, catching up,
searching, and delivery/read receipts."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aurora.errors import AuroraError, invalid
from aurora.log_context import LOG_ID, current_log_id
from aurora.services.blocks import Blocks
from aurora.services.files import Files
from aurora.services.message_changes import change_item, check_emoji
from aurora.services.message_writer import MessageWriter
from aurora.services.ops.journal import DeliveryJournal
from aurora.services.ops.metrics import Metrics
from aurora.services.ports import Notifier
from aurora.services.search_query import parse_search_query
from aurora.services.validation import conversation_id_of, id_of, optional_int, seq_of, storable_text
from aurora.settings import Settings
from aurora.storage import conversations as conversation_store
from aurora.storage import messages as message_store
from aurora.storage import search as search_store
from aurora.storage import sync as sync_store
from aurora.storage.database import Storage
from aurora.storage.log_rules import LogRules
from aurora.storage.messages import AppendResult, NewMessage
from aurora.storage.records import MESSAGE_KINDS, for_viewer

if TYPE_CHECKING:  # push imports nothing of these; only the type is needed here
    from aurora.services.push import Push

log = logging.getLogger(__name__)

MAX_CLIENT_ID_CHARS = 64
# Server-written messages (call summaries) use these client ids; clients may not.
SYSTEM_CLIENT_ID_PREFIXES = ("call:",)
PAGE_DEFAULT, PAGE_MAX = 50, 200
SYNC_DEFAULT, SYNC_MAX = 500, 1000
SEARCH_DEFAULT, SEARCH_MAX = 20, 100


@dataclass
class SendContext:
    skip_sid: str | None
    sender_username: str
    # The request or socket id of the sender: the writer's broadcast logs under it.
    log_id: str = field(default_factory=current_log_id)
    # A call summary: the users it is a missed call for (they get a push); None: nobody.
    push_to: list[int] | None = None


class Messages:
    def __init__(self, settings: Settings, storage: Storage, notifier: Notifier, files: Files | None = None,
                 metrics: Metrics | None = None, journal: DeliveryJournal | None = None) -> None:
        self._settings = settings
        self._journal = journal
        self._storage = storage
        self._notifier = notifier
        self.files = files or Files(settings, storage)
        self.writer = MessageWriter(storage, self._broadcast, rules=LogRules(edit_window_s=settings.edit_window_s),
                                    queue_max=settings.message_queue_max, metrics=metrics,
                                    lanes=settings.writer_lanes)
        self.blocks: Blocks | None = None  # set by create_app: a blocked user cannot write into the blocker's DM
        # Web Push for members with no open app (aurora.services.push.Push); None: no pushes.
        self.push: Push | None = None
        # (conversation id, user id) -> [lock, how many advance() calls hold or await it]
        self._receipt_locks: dict[tuple[int, int], list[Any]] = {}

    def _check_body(self, body: Any) -> str:
        if not isinstance(body, str):
            raise invalid("body must be a string")
        text = body.strip()
        if not text:
            raise invalid("body must not be empty")
        if len(text) > self._settings.max_message_chars:
            raise AuroraError(
                "too_large", f"body must be at most {self._settings.max_message_chars} characters"
            )
        return storable_text(text, "body")

    def _check_attachments(self, attachments: Any) -> list[int] | None:
        if attachments is None:
            return None
        most = self._settings.max_attachments
        if not isinstance(attachments, list):
            raise invalid("attachments must be a list of upload ids")
        if len(attachments) > most:
            raise invalid(f"a message can have at most {most} attachments")
        ids = [id_of(a, "attachments") for a in attachments]
        if len(set(ids)) != len(ids):
            raise invalid("attachments must not name an upload twice")
        return ids or None

    def _present(self, record: dict[str, Any], viewer_id: int) -> dict[str, Any]:
        """A message record as this viewer gets it: own reactions marked, attachment URLs signed for them."""
        presented = self.files.urls.present(for_viewer(record, viewer_id), viewer_id)
        assert presented is not None
        return presented

    @staticmethod
    def _check_client_id(client_id: Any) -> str | None:
        if client_id is None:
            return None
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= MAX_CLIENT_ID_CHARS:
            raise invalid(f"client_id must be a string of 1-{MAX_CLIENT_ID_CHARS} characters")
        if client_id.startswith(SYSTEM_CLIENT_ID_PREFIXES):
            raise invalid(f"client_id must not start with {', '.join(SYSTEM_CLIENT_ID_PREFIXES)} (reserved)")
        return storable_text(client_id, "client_id")

    async def send(self, user: dict[str, Any], conversation_id: Any, body: Any, client_id: Any = None,
                   skip_sid: str | None = None, reply_to_seq: Any = None,
                   attachments: Any = None) -> tuple[dict[str, Any], bool]:
        """Store then broadcast; returns (message, created). A repeated client_id returns the original.

        Everything before submit() is synchronous on purpose: messages keep the order they came in.
        With attachments (upload ids: stored and checked before, the writer only links them), the body
        may be empty or absent.
        """
        cid = conversation_id_of(conversation_id)
        if self.blocks is not None:
            self.blocks.check_send(user["id"], cid)  # a set look-up: the order of sends is kept
        upload_ids = self._check_attachments(attachments)
        if upload_ids and (body is None or (isinstance(body, str) and not body.strip())):
            text = ""
        else:
            text = self._check_body(body)
        item = NewMessage(
            conversation_id=cid,
            sender_id=user["id"],
            body=text,
            client_id=self._check_client_id(client_id),
            reply_to_seq=None if reply_to_seq is None else id_of(reply_to_seq, "reply_to_seq"),
            attachments=upload_ids,
        )
        result = await self.writer.submit(item, SendContext(skip_sid, user["username"]))
        assert result.message is not None
        return self._present(result.message, user["id"]), not result.duplicate

    async def store_system_message(self, item: NewMessage, push_to: list[int] | None = None) -> dict[str, Any]:
        """Messages the server writes itself (call summaries), through the same ordered path;
        push_to: who gets a push for it (a missed call)."""
        result = await self.writer.submit(item, SendContext(None, "", push_to=push_to))
        assert result.message is not None
        return result.message

    # -- changes: each one an entry of the log, through the same writer ----------------------
    async def edit(self, user: dict[str, Any], conversation_id: Any, seq: Any, body: Any,
                   client_id: Any = None, skip_sid: str | None = None) -> dict[str, Any]:
        item = change_item("edit", user, conversation_id, seq, body=self._check_body(body),
                           client_id=self._check_client_id(client_id))
        return await self._change(user, item, skip_sid)

    async def delete(self, user: dict[str, Any], conversation_id: Any, seq: Any,
                     skip_sid: str | None = None) -> dict[str, Any]:
        return await self._change(user, change_item("delete", user, conversation_id, seq), skip_sid)

    async def react(self, user: dict[str, Any], conversation_id: Any, seq: Any, emoji: Any, *, added: bool,
                    skip_sid: str | None = None) -> dict[str, Any]:
        item = change_item("reaction", user, conversation_id, seq, emoji=check_emoji(emoji), added=added)
        return await self._change(user, item, skip_sid)

    async def moderate_delete(self, admin: dict[str, Any], conversation_id: int, seq: int) -> dict[str, Any]:
        """An admin deletes any message: the same delete entry and tombstone as the sender's own."""
        item = NewMessage(conversation_id=conversation_id, sender_id=admin["id"], body="", kind="delete",
                          target_seq=seq, system=True, moderator=True)
        result = await self.writer.submit(item, SendContext(None, admin["username"]))
        assert result.state is not None
        return {"entry": result.message, "message": self._present(result.state, admin["id"]),
                "duplicate": result.duplicate}

    async def _change(self, user: dict[str, Any], item: NewMessage, skip_sid: str | None) -> dict[str, Any]:
        """The ack of a change: {entry, message, duplicate}, as the changing user sees them."""
        result = await self.writer.submit(item, SendContext(skip_sid, user["username"]))
        assert result.state is not None
        return {"entry": result.message, "message": self._present(result.state, user["id"]),
                "duplicate": result.duplicate}

    async def _broadcast(self, result: AppendResult, context: SendContext | None) -> None:
        # The writer task's lines for this entry carry its sender's request or socket id.
        token = LOG_ID.set(context.log_id if context is not None else "-")
        try:
            await self._broadcast_entry(result, context)
        finally:
            LOG_ID.reset(token)

    async def _broadcast_entry(self, result: AppendResult, context: SendContext | None) -> None:
        entry = result.message
        assert entry is not None
        if self._journal is not None:
            self._journal.entry_stored(entry["conversation_id"], entry["seq"])
        self.files.release_later(result.released)  # a delete detached files: their bytes may go now
        shown = entry if entry["kind"] in MESSAGE_KINDS else result.state
        if shown and shown.get("attachments"):
            # Attachment URLs are signed per viewer: one payload per member instead of one per room.
            await self._broadcast_per_member(result, context)
            return
        skip_sid = context.skip_sid if context is not None else None
        if entry["kind"] not in MESSAGE_KINDS:
            assert result.state is not None
            await self._notifier.message_changed(entry, result.state, skip_sid=skip_sid)
            log.debug("Change %s in conversation %s by %s.", entry["kind"], entry["conversation_id"],
                      entry["sender_username"])
            return
        count = await self._notifier.new_message(entry, skip_sid=skip_sid)
        if self.push is not None:
            self.push.message_stored(entry, context.push_to)  # only queues: the ack never waits for it
        what = "DM" if result.conversation_kind == "direct" else "message in group"
        log.info("New %s in conversation %s from %s. Broadcast to %d connections.",
                 what, entry["conversation_id"], entry["sender_username"], count)

    async def _broadcast_per_member(self, result: AppendResult, context: SendContext | None) -> None:
        entry = result.message
        assert entry is not None
        cid = entry["conversation_id"]
        members = await self._storage.read(conversation_store.member_ids, cid)
        skip_sid = context.skip_sid if context is not None else None
        if entry["kind"] in MESSAGE_KINDS:
            payloads = {uid: self.files.urls.present(entry, uid) for uid in members}
            count = await self._notifier.emit_per_member("new_message", cid, payloads, skip_sid=skip_sid)
            log.info("New message with %d attachment(s) in conversation %s from %s. Sent to %d connections.",
                     len(entry["attachments"]), cid, entry["sender_username"], count)
            return
        payloads = {uid: {"conversation_id": cid, "entry": entry, "message": self.files.urls.present(result.state, uid)}
                    for uid in members}
        await self._notifier.emit_per_member("message_changed", cid, payloads, skip_sid=skip_sid)

    async def search(self, user: dict[str, Any], q: Any, conversation_id: Any = None, limit: Any = None,
                     before: Any = None) -> dict[str, Any]:
        query = parse_search_query(q)
        cid = None if conversation_id in (None, "") else conversation_id_of(conversation_id)
        size = optional_int(limit, "limit", minimum=1, maximum=SEARCH_MAX) or SEARCH_DEFAULT
        before_id = optional_int(before, "before", minimum=1)
        try:  # SQLite indexes new messages in batches: take the backlog first (storage/search_backlog.py)
            await self.writer.index_search()
        except AuroraError as exc:  # a write outage: search what is indexed rather than nothing
            log.warning("search without the newest messages: %s", exc.message)
        results, next_before = await self._storage.read(
            search_store.search_messages, user["id"], query, cid, size, before_id
        )
        for found in results:
            found["message"] = self.files.urls.present(found["message"], user["id"])
        return {"results": results, "next": next_before}

    async def page(self, user: dict[str, Any], conversation_id: Any, before_seq: Any = None,
                   after_seq: Any = None, limit: Any = None) -> tuple[list[dict[str, Any]], bool]:
        cid = conversation_id_of(conversation_id)
        before = optional_int(before_seq, "before_seq", minimum=1)
        after = optional_int(after_seq, "after_seq", minimum=0)
        size = optional_int(limit, "limit", minimum=1, maximum=PAGE_MAX)
        rows, has_more = await self._storage.read(
            message_store.list_messages, cid, user["id"], before, after, size or PAGE_DEFAULT
        )
        return [self._present(r, user["id"]) for r in rows], has_more

    async def sync(self, user: dict[str, Any], cursors: Any,
                   limit: Any = None) -> tuple[list[dict[str, Any]], bool, list[dict[str, int]]]:
        """(messages after the cursors, has_more, every conversation of the user with its last_seq)."""
        if cursors is None:
            cursors = {}
        if not isinstance(cursors, dict) or len(cursors) > 10000:
            raise invalid('cursors must be an object {"<conversation_id>": last_seq_seen}')
        parsed: dict[int, int] = {}
        for key, value in cursors.items():
            cid = conversation_id_of(key)
            parsed[cid] = seq_of(value, "cursor")
        size = optional_int(limit, "limit", minimum=1, maximum=SYNC_MAX) or SYNC_DEFAULT
        rows, has_more, conversations = await self._storage.read(sync_store.catch_up, user["id"], parsed, size)
        return [self._present(r, user["id"]) for r in rows], has_more, conversations

    async def advance(self, user: dict[str, Any], conversation_id: Any, seq: Any, *, read: bool) -> dict[str, Any]:
        """delivered / mark_read: pointers move forward only; a receipt goes to the room when one moved."""
        cid = conversation_id_of(conversation_id)
        value = seq_of(seq, "seq")
        key = (cid, user["id"])
        # One member's receipts commit and go out one at a time: concurrent transactions (PostgreSQL)
        # can finish in any order, and a receipt sent after a newer one would move pointers back.
        entry = self._receipt_locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                delivered, read_seq, changed = await self._storage.write(
                    message_store.advance_pointers_txn, cid, user["id"],
                    None if read else value, value if read else None,
                )
                if changed:
                    await self._notifier.receipt(cid, user["id"], delivered, read_seq)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._receipt_locks[key]
        return {"conversation_id": cid, "user_id": user["id"], "delivered_seq": delivered, "read_seq": read_seq}
