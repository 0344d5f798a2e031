"""Web Push for members with no open app: subscriptions, and the pushes a stored entry causes.

The send path only ever calls message_stored() / call_incoming(), which put an event on a bounded
queue and return (a full queue drops the event, counted). One dispatcher task takes the events in
batches and filters cheapest first: the in-memory push audience (audience.py) names the members of
their conversations who have a subscription and have not muted it, usually without a database read;
one registry look-up (Redis in a cluster) keeps those with no /chat socket anywhere; only then one
read fetches their subscriptions; each subscription gets one push through PushSender, whose queue
the dispatcher waits on: while a push service is slow, events pile up (and are dropped) before any
work is spent on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from aurora.errors import AuroraError, invalid
from aurora.services.ports import CHAT_NAMESPACE
from aurora.services.push.audience import PushAudience
from aurora.services.push.sender import PushJob, PushSender
from aurora.services.push.subscriptions import parse_subscription
from aurora.services.push.vapid import VapidKeys
from aurora.services.socket_registry import LocalSocketRegistry
from aurora.services.validation import storable_text
from aurora.settings import Settings
from aurora.storage import push as push_store
from aurora.storage.database import Storage
from aurora.storage.models import utcnow
from aurora.storage.records import EXCERPT_CHARS

log = logging.getLogger(__name__)

MAX_DISPATCH_BATCH = 256


@dataclass
class PushEvent:
    type: str  # message | call_incoming | call_missed
    conversation_id: int
    sender_id: int
    sender_username: str
    seq: int | None = None
    body: str | None = None
    # None: every member but the sender; otherwise exactly these users (calls).
    recipients: list[int] | None = None
    call: dict[str, Any] | None = None


def _muted(until: dt.datetime | None, now: dt.datetime) -> bool:
    return until is not None and until > now


def topic_for(conversation_id: int) -> str:
    """RFC 8030 Topic (at most 32 URL-safe base64 characters): a newer push of the same conversation
    replaces one the push service still holds for an offline device."""
    return f"c{conversation_id}"


class Push:
    def __init__(self, settings: Settings, storage: Storage, registry: LocalSocketRegistry) -> None:
        self._settings = settings
        self._storage = storage
        self._registry = registry
        self.keys = VapidKeys(settings.vapid_private_keys, settings.vapid_subject)
        self.sender = PushSender(settings, storage, self.keys)
        self.audience = PushAudience(storage, settings.redis_url, settings.redis_prefix)
        self._events: asyncio.Queue[PushEvent] = asyncio.Queue(maxsize=settings.push_queue_max)
        self._task: asyncio.Task[None] | None = None
        self._dispatching = 0
        self._settled = asyncio.Event()  # set whenever the dispatcher has nothing left to do

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.sender.start()
        self.audience.start()
        self._task = asyncio.create_task(self._dispatch_forever(), name="aurora-push-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.sender.stop()
        await self.audience.stop()

    async def idle(self) -> None:
        """Until every event so far is dispatched and every push settled (tests)."""
        while self._events.qsize() or self._dispatching:
            self._settled.clear()
            await self._settled.wait()
        await self.sender.idle()

    def stats(self) -> dict[str, int]:
        counts = self.sender.stats
        return {"pending": self._events.qsize() + self._dispatching + self.sender.pending,
                **{k: counts[k] for k in ("sent", "retried", "failed", "gone", "dropped")},
                "audience_reads": self.audience.reads, "audience_resets": self.audience.resets}

    # -- hooks on the send path: never wait --------------------------------------------------
    def _offer(self, event: PushEvent) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self.sender.stats["dropped"] += 1
            if self.sender.stats["dropped"] % 1000 == 1:
                log.warning("push event queue full (%d): dropped the pushes of conversation %s seq %s",
                            self._settings.push_queue_max, event.conversation_id, event.seq)

    def _nobody_to_push(self, conversation_id: int, sender_id: int) -> bool:
        """The audience copy already says so: nobody but the sender has a subscription (the common
        case), so the event need not even wake the dispatcher."""
        audience = self.audience.known(conversation_id)
        return audience is not None and not any(u != sender_id for u in audience)

    def message_stored(self, entry: dict[str, Any], push_to: list[int] | None = None) -> None:
        """After commit: a text message pushes to every member; a call summary only to push_to
        (the invitees who missed the call). Change entries never push."""
        if entry["kind"] == "text":
            if self._nobody_to_push(entry["conversation_id"], entry["sender_id"]):
                return
            self._offer(PushEvent("message", entry["conversation_id"], entry["sender_id"], entry["sender_username"],
                                  seq=entry["seq"], body=entry.get("body")))
        elif entry["kind"] == "call" and push_to:
            self._offer(PushEvent("call_missed", entry["conversation_id"], entry["sender_id"],
                                  entry["sender_username"], seq=entry["seq"], body=entry.get("body"),
                                  recipients=list(push_to), call=entry.get("call")))

    def call_incoming(self, call: dict[str, Any], caller: dict[str, Any]) -> None:
        if call["ringing"]:
            self._offer(PushEvent("call_incoming", call["conversation_id"], caller["id"], caller["username"],
                                  recipients=list(call["ringing"]),
                                  call={"id": call["id"], "media": call["media"]}))

    # -- the dispatcher -----------------------------------------------------------------------
    async def _dispatch_forever(self) -> None:
        while True:
            batch = [await self._events.get()]
            while len(batch) < MAX_DISPATCH_BATCH and not self._events.empty():
                batch.append(self._events.get_nowait())
            self._dispatching = len(batch)
            try:
                await self._dispatch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or Redis outage: these pushes are lost, the messages are not
                self.sender.stats["failed"] += len(batch)
                log.exception("dispatching %d push event(s) failed", len(batch))
            finally:
                self._dispatching = 0
                if self._events.empty():
                    self._settled.set()

    async def _dispatch(self, batch: list[PushEvent]) -> None:
        # Cheapest filter first: the in-memory audience (no database read in the common case), then
        # presence; the database only once somebody offline is to be pushed to.
        audiences = await self.audience.of(sorted({e.conversation_id for e in batch}))
        now = utcnow()
        wanted: list[tuple[PushEvent, list[int]]] = []
        for event in batch:
            audience = audiences.get(event.conversation_id, {})
            candidates = audience if event.recipients is None else [u for u in event.recipients if u in audience]
            chosen = [u for u in candidates if u != event.sender_id and not _muted(audience[u], now)]
            if chosen:
                wanted.append((event, chosen))
        users = sorted({u for _, chosen in wanted for u in chosen})
        if not users:
            return
        online = await self._registry.online(CHAT_NAMESPACE, users)
        offline = [u for u in users if u not in online]
        if not offline:
            return
        details = await self._storage.read(
            push_store.push_details, offline, sorted({e.conversation_id for e, _ in wanted}),
            sorted({e.sender_id for e, _ in wanted}))
        if not details.subscriptions:
            return
        for event, chosen in wanted:
            kind, title = details.conversations.get(event.conversation_id, ("group", None))
            payload = self._payload(event, kind, title, details.display_names.get(event.sender_id))
            urgency = "high" if kind == "direct" or event.type != "message" else "normal"
            ttl = self._settings.push_ttl_s
            if event.type == "call_incoming":  # a ring that arrives after ringing stopped is noise
                ttl = math.ceil(self._settings.ring_timeout_s)
            pushes = 0
            for user_id in chosen:
                for sub in details.subscriptions.get(user_id, []):
                    if not self.keys.knows(sub["vapid_key"]):
                        await self._forget_stale(sub)
                        continue
                    await self.sender.put(PushJob(sub, payload, ttl, topic_for(event.conversation_id), urgency))
                    pushes += 1
            log.debug("%s in conversation %s (seq %s): %d push(es); %d member(s) online, not pushed",
                      event.type, event.conversation_id, event.seq, pushes, sum(1 for u in chosen if u in online))

    def _payload(self, event: PushEvent, kind: str, title: str | None, display_name: str | None) -> bytes:
        name = display_name or event.sender_username
        body: dict[str, Any] = {
            "type": event.type,
            "conversation_id": event.conversation_id,
            "seq": event.seq,
            "conversation_kind": kind,
            "sender": {"id": event.sender_id, "username": event.sender_username, "display_name": name},
            "title": name if kind == "direct" or not title else title,
            "excerpt": ((event.body or "")[:EXCERPT_CHARS] or None) if self._settings.push_preview else None,
        }
        if event.call is not None:
            body["call"] = {"id": event.call["id"], "media": event.call["media"]}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    async def _forget_stale(self, sub: dict[str, Any]) -> None:
        """Made with a VAPID key that is no longer configured: it can never be delivered again."""
        self.sender.stats["gone"] += 1
        await self._storage.write(push_store.forget_gone_txn, sub["id"], sub["endpoint"])
        log.info("removed push subscription %s: made with a VAPID key that is no longer configured", sub["id"])

    # -- the REST side ------------------------------------------------------------------------
    def public_key(self) -> str:
        return self.keys.current

    async def subscribe(self, user: dict[str, Any], session_id: int | None,
                        data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Keep a browser's subscription, tied to the device session of the token that posted it."""
        sub = parse_subscription(data, self._settings)
        saved = await self._storage.write(push_store.save_subscription_txn, user["id"], session_id, sub.endpoint,
                                          sub.p256dh, sub.auth, self.keys.current,
                                          self._settings.push_max_subscriptions_per_user)
        await self.audience.changed()  # a new candidate in each of the user's conversations
        return saved

    async def unsubscribe(self, user: dict[str, Any], endpoint: Any) -> None:
        if not isinstance(endpoint, str) or not endpoint:
            raise invalid("endpoint must be a non-empty string")
        # NUL or an unpaired surrogate: no stored endpoint has one, and PostgreSQL refuses the query (a 500).
        endpoint = storable_text(endpoint, "endpoint")
        if not await self._storage.write(push_store.delete_subscription_txn, user["id"], endpoint):
            raise AuroraError("not_found", "no such push subscription")

    async def subscriptions(self, user: dict[str, Any], session_id: int | None) -> list[dict[str, Any]]:
        listed = await self._storage.read(push_store.list_subscriptions, user["id"])
        return [{**s, "current": s["session_id"] is not None and s["session_id"] == session_id} for s in listed]

    async def forget(self, user_id: int, session_id: int | None) -> int:
        """After logout: the session's subscriptions go (None: every one of the user's)."""
        return await self._storage.write(push_store.delete_user_subscriptions_txn, user_id, session_id)

