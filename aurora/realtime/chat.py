"""/chat: live messages, typing, receipts, presence and catch-up.

On connect a socket joins its user's room and the room of every conversation
the user belongs to, straight from the database, so it receives every message
without "opening" anything. Rooms are a cache of memberships.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any
from urllib.parse import parse_qs

from aurora.context import Aurora
from aurora.errors import invalid, not_found
from aurora.outages import log_failure
from aurora.realtime.base import AuroraNamespace, refusal
from aurora.realtime.rooms import CHAT_NAMESPACE, conversation_room, user_of_rooms, user_room
from aurora.services.ops.journal import device_label
from aurora.services.validation import conversation_id_of, payload_dict

log = logging.getLogger(__name__)


class ChatNamespace(AuroraNamespace):
    def __init__(self, app: Aurora) -> None:
        super().__init__(CHAT_NAMESPACE, app)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        user, credentials = await self.authenticate(environ, auth)
        # Counted first, before any database work or presence: a flood of sockets is refused cheaply.
        first = await self.admit(user["id"], sid, credentials)
        try:
            # Per-socket state: conversations this socket chose to leave, typing throttle.
            await self.save_session(sid, {"user": user, "left": set(), "typing": {}})
            # User room first, then memberships: a conversation created in between is
            # either in the query result or finds this socket in the user room.
            await self.enter_room(sid, user_room(user["id"]))
            rooms = [conversation_room(cid) for cid in await self.app.conversations.ids_for(user["id"])]
            await self.server.manager.enter_rooms(sid, self.namespace, rooms)
            await self.app.presence.socket_connected(user, first)
            transport = parse_qs(environ.get("QUERY_STRING", "")).get("transport", ["polling"])[0]
            self.app.journal.socket_opened(sid, user["id"], device_label(environ, auth), transport)
        except Exception as exc:
            # Refuse at once with a code (an exception here would leave the client waiting
            # for an answer that never comes); a refused socket gets no disconnect event.
            error = self.setup_failed(sid, exc, "setting up a /chat connection")
            self.app.auth_watch.untrack(sid)
            with contextlib.suppress(Exception):
                await self.app.presence.socket_disconnected(user, sid)
            raise refusal(error) from None

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.app.journal.socket_closed(sid, reason if isinstance(reason, str) else None)
        # Not from the session: with /calls on the same connection it may be gone by now (rooms.py).
        user_id = user_of_rooms(self.rooms(sid))
        if user_id is not None:
            try:
                await self.app.presence.socket_disconnected({"id": user_id}, sid)
            except Exception as exc:
                log_failure(exc, log, "presence update on disconnect")

    async def on_send_message(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        user = await self.user_of(sid)
        message, created = await self.app.messages.send(
            user, payload.get("conversation_id"), payload.get("body"), payload.get("client_id"), skip_sid=sid,
            reply_to_seq=payload.get("reply_to_seq"), attachments=payload.get("attachments"),
        )
        return {"message": message, "duplicate": not created}

    async def on_edit_message(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        user = await self.user_of(sid)
        return await self.app.messages.edit(user, payload.get("conversation_id"), payload.get("seq"),
                                            payload.get("body"), payload.get("client_id"), skip_sid=sid)

    async def on_delete_message(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        user = await self.user_of(sid)
        return await self.app.messages.delete(user, payload.get("conversation_id"), payload.get("seq"), skip_sid=sid)

    async def on_react(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        user = await self.user_of(sid)
        return await self.app.messages.react(user, payload.get("conversation_id"), payload.get("seq"),
                                             payload.get("emoji"), added=True, skip_sid=sid)

    async def on_unreact(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        user = await self.user_of(sid)
        return await self.app.messages.react(user, payload.get("conversation_id"), payload.get("seq"),
                                             payload.get("emoji"), added=False, skip_sid=sid)

    async def on_create_conversation(self, sid: str, data: Any) -> dict[str, Any]:
        """The socket twin of POST /api/conversations: same rules, same broadcasts."""
        payload = payload_dict(data)
        user = await self.user_of(sid)
        conversation, created = await self.app.conversations.create(
            user, payload.get("user_ids"), payload.get("title")
        )
        return {"conversation": conversation, "created": created}

    async def on_join_conversation(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data, bare_key="conversation_id")
        user = await self.user_of(sid)
        conversation = await self.app.conversations.get(user, payload.get("conversation_id"))
        session = await self.get_session(sid)
        session["left"].discard(conversation["id"])
        await self.enter_room(sid, conversation_room(conversation["id"]))
        return {"conversation": conversation}

    async def on_leave_conversation(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data, bare_key="conversation_id")
        user = await self.user_of(sid)
        conversation = await self.app.conversations.get(user, payload.get("conversation_id"))
        session = await self.get_session(sid)
        session["left"].add(conversation["id"])
        await self.leave_room(sid, conversation_room(conversation["id"]))
        return {"conversation_id": conversation["id"]}

    async def _is_member(self, sid: str, user: dict[str, Any], conversation_id: int) -> bool:
        if conversation_room(conversation_id) in self.rooms(sid):
            return True
        return conversation_id in await self.app.conversations.ids_for(user["id"])

    async def on_typing(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        conversation_id = conversation_id_of(payload.get("conversation_id"))
        typing = payload.get("typing", True)
        if not isinstance(typing, bool):  # bool("false") is True: a wrong type must not read as typing
            raise invalid("typing must be true or false")
        session = await self.get_session(sid)
        user = session["user"]
        if not await self._is_member(sid, user, conversation_id):
            raise not_found()
        now = self.app.clock.monotonic()  # the services' clock: tests move it
        last_state, last_at = session["typing"].get(conversation_id, (None, 0.0))
        interval = self.app.settings.typing_throttle_ms / 1000
        if last_state == typing and now - last_at < interval:
            return {"throttled": True}
        session["typing"][conversation_id] = (typing, now)
        # Users who blocked the typist do not see it.
        await self.app.notifier.typing(conversation_id, user["id"], typing, self.app.blocks.blockers_of(user["id"]))
        return {"throttled": False}

    async def on_delivered(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        user = await self.user_of(sid)
        return await self.app.messages.advance(user, payload.get("conversation_id"), payload.get("seq"), read=False)

    async def on_mark_read(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data)
        user = await self.user_of(sid)
        return await self.app.messages.advance(user, payload.get("conversation_id"), payload.get("seq"), read=True)

    async def on_sync(self, sid: str, data: Any) -> dict[str, Any]:
        payload = payload_dict(data if data is not None else {})
        session = await self.get_session(sid)
        user = session["user"]
        messages, has_more, conversations = await self.app.messages.sync(user, payload.get("cursors"),
                                                                         payload.get("limit"))
        self.app.journal.served(user["id"], sid, "sync", messages)
        # Heal the room cache: every conversation the user is in, except those this socket left.
        rooms = set(self.rooms(sid))
        for conversation in conversations:
            room = conversation_room(conversation["id"])
            if room not in rooms and conversation["id"] not in session["left"]:
                await self.enter_room(sid, room)
        return {"messages": messages, "has_more": has_more, "conversations": conversations}
