"""aurora_client: the asyncio SDK for Aurora (bots, scripts, tests). See clients/python/README.md."""

from aurora_client.calls import Calls
from aurora_client.client import AuroraClient
from aurora_client.errors import AuroraError
from aurora_client.events import Event
from aurora_client.rest import Rest, login, register
from aurora_client.sqlite_store import SQLiteStore
from aurora_client.store import Batch, MemoryStore, Snapshot, Store
from aurora_client.types import (
    Auth,
    ConnectionState,
    Conversation,
    Entry,
    HistoryPage,
    Message,
    PendingSend,
    Presence,
    Reaction,
    ReplyTo,
    Upload,
    User,
)

__all__ = [
    "AuroraClient",
    "AuroraError",
    "Auth",
    "Batch",
    "Calls",
    "ConnectionState",
    "Conversation",
    "Entry",
    "Event",
    "HistoryPage",
    "MemoryStore",
    "Message",
    "PendingSend",
    "Presence",
    "Reaction",
    "ReplyTo",
    "Rest",
    "SQLiteStore",
    "Snapshot",
    "Store",
    "Upload",
    "User",
    "login",
    "register",
]
