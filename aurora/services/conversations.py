"""Creating conversations, membership changes, listing; pushes room changes through the notifier."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from aurora.errors import AuroraError, invalid, not_found
from aurora.services.batched_reads import BatchedRead
from aurora.services.blocks import Blocks
from aurora.services.files.urls import AttachmentUrls
from aurora.services.ports import Notifier
from aurora.services.presence import Presence
from aurora.services.validation import conversation_id_of, id_list, optional_int, storable_text
from aurora.storage import conversations as store
from aurora.storage import users as user_store
from aurora.storage.database import Storage

if TYPE_CHECKING:
    from aurora.services.push.audience import PushAudience

MAX_MEMBERS_PER_REQUEST = 500
MAX_TITLE_CHARS = 100
# GET /api/conversations: conversations per page, and members shown per conversation (member_count: all).
LIST_DEFAULT, LIST_MAX = 100, 500
MEMBERS_SHOWN = 50


def _cursor_of(last_activity_at: dt.datetime, conversation_id: int) -> str:
    """Opaque to clients: where the previous page ended (activity time in microseconds, id)."""
    micros = (last_activity_at - _EPOCH) // dt.timedelta(microseconds=1)
    return f"{micros}.{conversation_id}"


def _parse_cursor(cursor: Any) -> tuple[dt.datetime, int] | None:
    if cursor is None or cursor == "":
        return None
    try:
        micros, conversation_id = str(cursor).split(".")
        position = (_EPOCH + dt.timedelta(microseconds=int(micros)), int(conversation_id))
    except (ValueError, OverflowError):
        raise invalid("cursor must be the `next` value of a previous page") from None
    if position[1] < 1:
        raise invalid("cursor must be the `next` value of a previous page")
    return position


_EPOCH = dt.datetime(1970, 1, 1)


def _check_title(title: Any) -> str | None:
    if title is None:
        return None
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > MAX_TITLE_CHARS:
        raise invalid(f"title must be 1-{MAX_TITLE_CHARS} characters")
    return storable_text(title.strip(), "title")


class Conversations:
    def __init__(self, storage: Storage, notifier: Notifier, presence: Presence, blocks: Blocks,
                 max_group_members: int, urls: AttachmentUrls | None = None) -> None:
        self._storage = storage
        self._notifier = notifier
        self._presence = presence
        self._blocks = blocks
        self._max_group_members = max_group_members
        self._urls = urls
        self._ids_reads: BatchedRead[int, list[int]] = BatchedRead(storage, store.conversation_ids_for_users, list)
        # Told of every member added or gone (push's in-memory copy of who could be pushed to).
        self.push_audience: PushAudience | None = None

    def _too_many(self) -> AuroraError:
        return AuroraError("too_large", f"a group can have at most {self._max_group_members} members")

    async def _require_users(self, user_ids: list[int]) -> None:
        if not user_ids:
            return
        found = await self._storage.read(user_store.existing_user_ids, user_ids)
        if len(found) != len(set(user_ids)):
            raise not_found("user")

    async def create(self, user: dict[str, Any], user_ids: Any, title: Any = None) -> tuple[dict[str, Any], bool]:
        """Exactly one other user and no title: the pair's direct conversation. Otherwise a group."""
        others = [uid for uid in id_list(user_ids, "user_ids", max_items=MAX_MEMBERS_PER_REQUEST)
                  if uid != user["id"]]
        clean_title = _check_title(title)
        if not others:
            raise invalid("user_ids must name at least one other user")
        await self._require_users(others)
        direct = len(others) == 1 and clean_title is None
        if direct and self._blocks.between(user["id"], others[0]):
            raise AuroraError("forbidden", "you cannot start a conversation with this user")
        self._blocks.check_reach(user["id"], others)
        if not direct and len(others) + 1 > self._max_group_members:
            raise self._too_many()
        if direct:
            conversation, created = await self._storage.write(store.get_or_create_direct_txn, user["id"], others[0])
        else:
            conversation = await self._storage.write(store.create_group_txn, user["id"], others, clean_title)
            created = True
        # Events carry `online` like the REST answers: presence events only mark changes, so a
        # new contact would otherwise not learn that the other is already online.
        annotated = await self._presence.annotate(conversation)
        if created:
            await self._notifier.conversation_created(annotated)
        return annotated, created

    async def get(self, user: dict[str, Any], conversation_id: Any) -> dict[str, Any]:
        conversation = await self._storage.read(store.get_for_member, conversation_id_of(conversation_id), user["id"])
        return await self._presence.annotate(conversation)

    async def list(self, user: dict[str, Any], cursor: Any = None,
                   limit: Any = None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the user's conversations (most recently active first) and the cursor of the next
        page (None on the last one)."""
        size = optional_int(limit, "limit", minimum=1, maximum=LIST_MAX) or LIST_DEFAULT
        page, following = await self._storage.read(
            store.list_for_user, user["id"], size, _parse_cursor(cursor), MEMBERS_SHOWN
        )
        if self._urls is not None:  # last_message's attachments get URLs signed for this user
            for c in page:
                c["last_message"] = self._urls.present(c.get("last_message"), user["id"])
        conversations = [await self._presence.annotate(c) for c in page]
        return conversations, None if following is None else _cursor_of(*following)

    async def add_members(self, user: dict[str, Any], conversation_id: Any, user_ids: Any) -> dict[str, Any]:
        cid = conversation_id_of(conversation_id)
        ids = id_list(user_ids, "user_ids", max_items=MAX_MEMBERS_PER_REQUEST)
        if not ids:
            raise invalid("user_ids must name at least one user")
        await self._storage.read(store.get_for_member, cid, user["id"])  # not_found before revealing users
        await self._require_users(ids)
        self._blocks.check_reach(user["id"], ids)
        conversation, added = await self._storage.write(store.add_members_txn, cid, user["id"], ids,
                                                        self._max_group_members)
        if added and self.push_audience is not None:
            await self.push_audience.changed()
        annotated = await self._presence.annotate(conversation)
        if added:
            await self._notifier.members_added(annotated, await self._presence.annotate_users(added))
        return annotated

    async def leave(self, user: dict[str, Any], conversation_id: Any) -> None:
        cid = conversation_id_of(conversation_id)
        _, leaver = await self._storage.write(store.leave_txn, cid, user["id"])
        if self.push_audience is not None:
            await self.push_audience.changed()  # from now on never pushed to
        await self._notifier.member_removed(cid, await self._presence.annotate_user(leaver))

    async def ids_for(self, user_id: int) -> list[int]:
        # Batched with concurrent callers (every connect asks): services/batched_reads.py.
        return list(await self._ids_reads.get(user_id))
