"""What services need from the transport, declared on the services' side (ports and adapters).

Services push to clients through these protocols; aurora/realtime implements them (Notifier,
CallNotifier) on python-socketio. So the dependency points one way, transport -> services, and no
module under aurora/services imports aurora/realtime (tests/test_layers.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

# The Socket.IO namespaces (the transport's rooms.py re-exports them).
CHAT_NAMESPACE = "/chat"
CALLS_NAMESPACE = "/calls"


class Notifier(Protocol):
    """Chat pushes and room changes: to every socket of a user or a conversation, on any process."""

    async def sids_of_user(self, user_id: int, namespace: str = CHAT_NAMESPACE) -> list[str]: ...

    async def subscribe_users(self, user_ids: Iterable[int], conversation_id: int) -> None: ...

    async def unsubscribe_user(self, user_id: int, conversation_id: int) -> None: ...

    async def disconnect_user(self, user_id: int) -> None: ...

    async def new_message(self, message: dict[str, Any], skip_sid: str | None = None) -> int: ...

    async def message_changed(self, entry: dict[str, Any], message: dict[str, Any],
                              skip_sid: str | None = None) -> None: ...

    async def emit_per_member(self, event: str, conversation_id: int, payloads: dict[int, dict[str, Any]],
                              skip_sid: str | None = None) -> int: ...

    async def conversation_created(self, conversation: dict[str, Any]) -> None: ...

    async def members_added(self, conversation: dict[str, Any], added: list[dict[str, Any]]) -> None: ...

    async def member_removed(self, conversation_id: int, user: dict[str, Any]) -> None: ...

    async def receipt(self, conversation_id: int, user_id: int, delivered_seq: int, read_seq: int) -> None: ...

    async def typing(self, conversation_id: int, user_id: int, typing: bool) -> None: ...

    async def presence(self, user_id: int, online: bool, last_seen_at: str | None,
                       contact_ids: list[int]) -> None: ...


class CallNotifier(Protocol):
    """What the calls service pushes to /calls devices."""

    async def sids_of_user(self, user_id: int) -> list[str]: ...

    async def to_users(self, event: str, data: dict[str, Any], user_ids: Iterable[int],
                       skip_sids: list[str] | None = None) -> None: ...

    async def to_sids(self, event: str, data: dict[str, Any], sids: Iterable[str]) -> None: ...
