"""create_app(): the aiohttp application with the Socket.IO server attached."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import socketio
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from aurora.api.cors import cors_middleware
from aurora.api.limits import limits_middleware
from aurora.api.middlewares import error_middleware, metrics_middleware, request_id_middleware
from aurora.api.routes import setup_routes
from aurora.api.security_headers import security_headers
from aurora.api.test_clock import move_test_clock
from aurora.context import AURORA, Aurora
from aurora.outages import log_failure
from aurora.realtime import json_codec
from aurora.realtime.auth_watch import AuthWatch
from aurora.realtime.call_notifier import CallNotifier
from aurora.realtime.calls import CallsNamespace
from aurora.realtime.chat import ChatNamespace
from aurora.realtime.notifier import Notifier
from aurora.realtime.room_channels import RoomChannelRedisManager
from aurora.realtime.room_index import IndexedDirectEmitManager
from aurora.realtime.server import AuroraServer
from aurora.realtime.transport import install_websocket_driver
from aurora.services.accounts import Accounts
from aurora.services.blocks import Blocks
from aurora.services.call_locks import CallLocks
from aurora.services.calls import Calls
from aurora.services.clock import Clock, ManualClock, SystemClock
from aurora.services.conversations import Conversations
from aurora.services.files import Files
from aurora.services.limits import Limiter
from aurora.services.messages import Messages
from aurora.services.ops.journal import DeliveryJournal
from aurora.services.ops.metrics import Metrics, multiprocess_dir
from aurora.services.ops.moderation import Moderation
from aurora.services.ops.trace import Tracer
from aurora.services.ops.trace_exchange import LocalTraceExchange, RedisTraceExchange
from aurora.services.presence import Presence
from aurora.services.push import Mutes, Push
from aurora.services.socket_registry import LocalSocketRegistry, ReapIncomplete, RedisSocketRegistry
from aurora.services.tokens import TokenSigner
from aurora.settings import Settings
from aurora.storage.database import Storage, open_database
from aurora.storage.migrations import migrate

log = logging.getLogger(__name__)

SHUTDOWN_DISCONNECT_S = 3.0


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request, without the query string (legacy clients put tokens there)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.1fms', request.remote, request.method, request.path,
                         response.status, time * 1000)


def _cors_origins(settings: Settings) -> str | list[str] | None:
    if "*" in settings.cors_allowed_origins:
        return "*"
    # None: python-socketio allows the same origin only.
    return list(settings.cors_allowed_origins) or None


def build_client_manager(settings: Settings) -> socketio.AsyncManager:
    """Several processes share emits and room changes through Redis pub/sub (JSON, never pickle)."""
    if not settings.redis_url:
        return IndexedDirectEmitManager()  # DirectEmitManager + a sid -> rooms index (room_index.py)
    # After a queue blip the sockets that may have missed emits get `resync` (resync_manager.py);
    # an emit to one room travels on that room's channel, heard only where it has members (room_channels.py).
    # Its local half goes through DirectEmitManager, which records the delivery journal.
    return RoomChannelRedisManager(
        settings.redis_url, channel=f"{settings.redis_prefix}:socketio",
        redis_options={"socket_connect_timeout": 2, "health_check_interval": 10},
    )


def build_registry(settings: Settings) -> LocalSocketRegistry:
    if not settings.redis_url:
        return LocalSocketRegistry()
    return RedisSocketRegistry(
        settings.redis_url, prefix=settings.redis_prefix, dead_after_s=settings.presence_dead_after_s
    )


def build_socketio_server(settings: Settings) -> socketio.AsyncServer:
    sio = AuroraServer(
        async_mode="aiohttp",
        connect_timeout_s=settings.connect_timeout_s,
        client_manager=build_client_manager(settings),
        cors_allowed_origins=_cors_origins(settings),
        max_http_buffer_size=settings.max_packet_bytes,
        json=json_codec,
        logger=False,
        engineio_logger=False,
    )
    install_websocket_driver(sio, settings.websocket_compression)
    return sio


def build_aurora(settings: Settings, sio: socketio.AsyncServer, clock: Clock | None = None) -> Aurora:
    """clock: the services' timers and throttles (tests pass a ManualClock); the system clock by default."""
    clock = clock or SystemClock()
    database = open_database(
        settings.database_url, sqlite_synchronous=settings.sqlite_synchronous, base_dir=Path.cwd()
    )
    storage = Storage(database, threads=settings.db_threads, writer_threads=settings.writer_lanes)
    metrics = Metrics(multiprocess_dir())
    storage.on_error = lambda kind: metrics.db_errors.labels(kind).inc()
    registry = build_registry(settings)
    registry_errors = metrics.redis_errors.labels("socket_registry")
    registry.on_error = registry_errors.inc
    journal = DeliveryJournal(capacity=settings.trace_buffer_entries)
    sio.manager.journal = journal  # DirectEmitManager (also the local half of the Redis manager) records live emits
    notifier = Notifier(sio, registry)
    signer = TokenSigner(settings.secret_keys, settings.token_max_age_s)
    presence = Presence(storage, notifier, registry)
    limiter = Limiter(settings, clock)
    blocks = Blocks(storage, settings.redis_url, settings.redis_prefix)
    auth_watch = AuthWatch(sio, storage, settings.auth_check_interval_s, settings.token_max_age_s)
    files = Files(settings, storage)
    messages = Messages(settings, storage, notifier, files, metrics=metrics, journal=journal)
    presence.blocks = messages.blocks = blocks
    push = Push(settings, storage, registry) if settings.push_enabled else None
    audience = push.audience if push is not None else None
    messages.push = push
    conversations = Conversations(storage, notifier, presence, blocks, settings.max_group_members, files.urls)
    conversations.push_audience = audience
    calls = Calls(settings, storage, CallNotifier(sio, registry), messages,
                  CallLocks(settings.redis_url, settings.redis_prefix), clock)
    calls.blocks = blocks
    calls.push = push
    return Aurora(
        settings=settings, storage=storage, sio=sio, notifier=notifier, signer=signer, registry=registry,
        accounts=Accounts(settings, storage, signer, limiter), presence=presence,
        conversations=conversations,
        messages=messages,
        calls=calls,
        files=files,
        limiter=limiter, auth_watch=auth_watch, blocks=blocks,
        metrics=metrics, journal=journal,
        tracer=Tracer(storage, build_trace_exchange(settings, sio, journal)),
        moderation=Moderation(storage, notifier, messages),
        push=push, mutes=Mutes(storage, audience), clock=clock,
    )


def build_trace_exchange(settings: Settings, sio: socketio.AsyncServer,
                         journal: DeliveryJournal) -> LocalTraceExchange:
    def transport_of(sid: str) -> str | None:
        try:
            return sio.transport(sid, namespace="/chat")
        except (KeyError, ValueError):
            return None

    def answer(conversation_id: int, seq: int, user_ids: list[int], since: float) -> dict:
        return journal.answer(conversation_id, seq, user_ids, since, transport_of)

    if not settings.redis_url:
        return LocalTraceExchange(answer)
    return RedisTraceExchange(answer, settings.redis_url, settings.redis_prefix)


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_http_body_bytes,
        middlewares=[request_id_middleware, metrics_middleware, cors_middleware(settings.cors_allowed_origins),
                     error_middleware, limits_middleware],
    )
    sio = build_socketio_server(settings)
    if clock is None and settings.test_clock:  # env = test only (settings.py): a test process's clock
        clock = ManualClock()
    aurora = build_aurora(settings, sio, clock)
    app[AURORA] = aurora
    sio.attach(app)
    sio.register_namespace(ChatNamespace(aurora))
    sio.register_namespace(CallsNamespace(aurora))
    setup_routes(app)
    if settings.test_clock:
        app.router.add_post("/api/test/clock", move_test_clock)
    app.on_response_prepare.append(security_headers(settings))
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_disconnect_clients)
    return app


async def _disconnect_clients(app: web.Application) -> None:
    """Close every Socket.IO connection at shutdown, so clients reconnect (elsewhere) at once
    instead of holding the process open until their sockets time out."""
    sio = app[AURORA].sio
    if not sio.eio.sockets:
        return
    try:
        await asyncio.wait_for(sio.eio.disconnect(), SHUTDOWN_DISCONNECT_S)
    except Exception:  # shutting down anyway; the clients will notice through their pings
        log.warning("not every client could be disconnected cleanly at shutdown")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Schema up to date and the message writer running before the first request; drained after the last."""
    aurora = app[AURORA]
    applied = await asyncio.to_thread(migrate, aurora.storage)
    if applied:
        log.info("Database schema migrated to version %d", applied[-1])
    aurora.messages.writer.start()
    if aurora.push is not None:
        aurora.push.start()

    async def host_gone(users: list[int], call_sids: list[str]) -> None:
        # Calls first: their grace deadlines must be set even if presence cannot be updated.
        sids_left: list[str] = []
        if call_sids:
            try:
                await aurora.calls.devices_lost(call_sids)
            except Exception as exc:
                log_failure(exc, log, "starting the grace period of %d call devices", len(call_sids))
                sids_left = call_sids
        users_left = await aurora.presence.users_gone(users)
        if users_left or sids_left:
            raise ReapIncomplete(users_left, sids_left)

    await aurora.registry.start(host_gone)
    # One process alone: calls a previous run left live are over. In a cluster, other processes may
    # own live calls; dead processes' devices are reaped and their grace deadlines end them.
    await aurora.auth_watch.start()
    await aurora.blocks.start()
    ended = await aurora.calls.start(end_live_calls=not aurora.settings.redis_url)
    if ended:
        log.info("Ended %d call(s) left ringing or active by a previous process", ended)
    aurora.files.start()  # the orphan sweeper
    await aurora.tracer.exchange.start()
    aurora.metrics.start()
    yield
    await aurora.metrics.stop()
    await aurora.tracer.exchange.stop()
    await aurora.files.stop()
    await aurora.calls.stop()
    await aurora.auth_watch.stop()
    await aurora.blocks.stop()
    await aurora.registry.stop()
    await aurora.messages.writer.stop()
    if aurora.push is not None:
        await aurora.push.stop()
    await aurora.limiter.close()
    aurora.accounts.close()
    await aurora.storage.aclose()
