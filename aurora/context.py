"""Everything a request or event handler may reach, built once per application."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import socketio
from aiohttp import web

from aurora.realtime.auth_watch import AuthWatch
from aurora.realtime.notifier import Notifier
from aurora.services.accounts import Accounts
from aurora.services.blocks import Blocks
from aurora.services.calls import Calls
from aurora.services.clock import Clock
from aurora.services.conversations import Conversations
from aurora.services.files import Files
from aurora.services.limits import Limiter, parse_networks
from aurora.services.limits.addresses import Network
from aurora.services.messages import Messages
from aurora.services.ops.journal import DeliveryJournal
from aurora.services.ops.metrics import Metrics
from aurora.services.ops.moderation import Moderation
from aurora.services.ops.trace import Tracer
from aurora.services.presence import Presence
from aurora.services.push import Mutes, Push
from aurora.services.socket_registry import LocalSocketRegistry
from aurora.services.tokens import TokenSigner
from aurora.settings import Settings
from aurora.storage.database import Storage


@dataclass
class Aurora:
    settings: Settings
    storage: Storage
    sio: socketio.AsyncServer
    notifier: Notifier
    registry: LocalSocketRegistry
    signer: TokenSigner
    accounts: Accounts
    presence: Presence
    conversations: Conversations
    messages: Messages
    calls: Calls
    files: Files
    limiter: Limiter
    auth_watch: AuthWatch
    blocks: Blocks
    # Operations (issue 14): metrics, the delivery journal and trace, moderation.
    metrics: Metrics
    journal: DeliveryJournal
    tracer: Tracer
    moderation: Moderation

    @cached_property
    def trusted_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.settings.trusted_proxies)
    push: Push | None  # None: push_enabled = false
    mutes: Mutes
    clock: Clock  # the services' timers and throttles (services/clock.py)


AURORA = web.AppKey("aurora", Aurora)
