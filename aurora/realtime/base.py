"""The base namespace: handshake authentication and the ack wrapper every event goes through.

Every client event is answered {"ok": true, ...} or {"ok": false, "error": {code, message}};
a handler just returns a dict or raises AuroraError, and never leaves an ack unanswered.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any
from urllib.parse import parse_qs

import socketio

from aurora.context import Aurora
from aurora.errors import AuroraError, RateLimited
from aurora.log_context import LOG_ID
from aurora.outages import client_error
from aurora.services.limits import LIMIT_OF
from aurora.services.tokens import Credentials

log = logging.getLogger(__name__)

_LIFECYCLE = {"connect", "disconnect"}


def token_from_handshake(environ: dict[str, Any], auth: Any) -> str | None:
    """auth {token} (socket.io-client v4), else Authorization: Bearer, else ?token= (legacy)."""
    if isinstance(auth, dict) and isinstance(auth.get("token"), str) and auth["token"]:
        return auth["token"]
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if query.get("token"):
        return query["token"][0]
    return None


def ok(result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"ok": True, **(result or {})}


def failure(error: AuroraError) -> dict[str, Any]:
    return {"ok": False, "error": error.to_dict()}


def refusal(error: AuroraError) -> socketio.exceptions.ConnectionRefusedError:
    """A connect refused with a coded connect_error: data is {code, message}."""
    return socketio.exceptions.ConnectionRefusedError(error.message, error.to_dict())


class AuroraNamespace(socketio.AsyncNamespace):
    def __init__(self, namespace: str, app: Aurora) -> None:
        super().__init__(namespace)
        self.app = app

    async def authenticate(self, environ: dict[str, Any], auth: Any) -> tuple[dict[str, Any], Credentials]:
        """The handshake's user and token, or ConnectionRefusedError whose data is {code, message}."""
        try:
            return await self.app.accounts.authenticate_credentials(token_from_handshake(environ, auth))
        except Exception as exc:
            raise refusal(client_error(exc, log, "authenticating a socket")) from None

    async def admit(self, user_id: int, sid: str, credentials: Credentials) -> bool:
        """Count the socket against max_sockets_per_user (cluster-wide with Redis) and watch its token;
        True when it is the user's first socket in this namespace. Refused with code rate_limited."""
        first, count = await self.app.registry.add_counted(self.namespace, user_id, sid)
        limit = self.app.settings.max_sockets_per_user
        if count > limit:
            await self.app.registry.remove(self.namespace, user_id, sid)
            message = f"at most {limit} connections per user on {self.namespace}; close another one first"
            raise socketio.exceptions.ConnectionRefusedError(message, {"code": "rate_limited", "message": message})
        self.app.auth_watch.track(self.namespace, sid, credentials)
        return first

    def left_while_connecting(self, sid: str) -> bool:
        """The client's Engine.IO session ended while this socket's connect handler ran (it gave up
        waiting, or its network went): what failed then is the client's absence, not a bug."""
        eio_sid = self.server.manager.eio_sid_from_sid(sid, self.namespace)
        eio_socket = self.server.eio.sockets.get(eio_sid) if eio_sid is not None else None
        return eio_socket is None or eio_socket.closed or eio_socket.closing

    def setup_failed(self, sid: str, exc: Exception, what: str) -> AuroraError:
        """The coded error for a connect whose setup raised: when the client left meanwhile, one INFO
        line and `unavailable` (nobody reads it); else client_error's outage or bug."""
        if self.left_while_connecting(sid):
            log.info("%s: the client left while it was set up (%s)", what, exc.__class__.__name__)
            return AuroraError("unavailable", "the connection closed while it was set up")
        return client_error(exc, log, what)

    async def _spend(self, sid: str, limit: str) -> None:
        """Take the event's token before the handler runs (and before any await in it): a burst of
        parallel events cannot all pass a check that is only counted later. A refusal also notes
        until when that bucket stays dry for this socket (see refuse_early)."""
        session = await self.get_session(sid)
        # Before the bucket's own clock read (Redis: before the round trip); the services' clock, which
        # the local buckets read too (a test's ManualClock refills them and ends this note alike).
        asked = self.app.clock.monotonic()
        try:
            await self.app.limiter.take(limit, session["user"]["id"])
        except RateLimited as exc:
            if exc.retry_after_ms:
                # No token can be there before asked + retry_after_ms (taking only ever lowers a bucket,
                # and the wait was rounded up to whole ms, hence the 1 ms less).
                session.setdefault("dry", {})[limit] = asked + (exc.retry_after_ms - 1) / 1000
                self.server.look_early(sid, self.namespace)
            await self._refused(sid, session)
            raise
        session["refused"] = 0

    async def refuse_early(self, sid: str, event: str) -> dict[str, Any] | None:
        """The answer to `event` when its bucket is one this socket found dry and it cannot have
        refilled yet: the same rate_limited refusal _spend would give, counted the same way, but
        asked by the server before the packet is decoded or a task is made for it
        (AuroraServer._handle_eio_message). None: the event takes the normal path."""
        limit = LIMIT_OF.get(event)
        if limit is None:
            return None
        session = await self.get_session(sid)
        until = session.get("dry", {}).get(limit)
        if until is None:
            return None
        left_s = until - self.app.clock.monotonic()
        if left_s <= 0:
            del session["dry"][limit]
            return None
        wait_ms = math.ceil(left_s * 1000) + 1  # the ms the note keeps in hand
        started = time.perf_counter()
        error = self.app.limiter.refusal(limit, wait_ms)
        await self._refused(sid, session)
        self.app.metrics.rate_limited.labels(event).inc()
        self.app.metrics.observe_ack(event, started)
        return failure(error)

    async def _refused(self, sid: str, session: dict[str, Any]) -> None:
        """Count a refusal in a row. A socket that goes on sending after flood_disconnect_refusals of
        them ignores retry_after_ms: its Engine.IO session is closed (AuroraServer.close_flooding), so
        the rest of its flood is never decoded, and its WebSocket is not read any more."""
        session["refused"] = session.get("refused", 0) + 1
        if session["refused"] == self.app.settings.flood_disconnect_refusals:
            log.warning("closing socket %s of user %s: %d refused events in a row", sid, session["user"]["id"],
                        session["refused"])
            await self.emit("closing", {"code": "rate_limited", "message": "too many refused events; slow down"},
                            to=sid)
            self.server.close_flooding(sid, self.namespace)

    async def user_of(self, sid: str) -> dict[str, Any]:
        session = await self.get_session(sid)
        return session["user"]

    def _from_server(self, event: str, args: tuple[Any, ...]) -> bool:
        """Is this lifecycle call the server's own, not a client event by that name?

        connect: the server passes the Engine.IO session's own environ dict, an object no client
        can send (it arrives as JSON), so this holds whatever python-socketio's connect ordering is
        (5.18 keeps the socket pending while connect runs; with always_connect, or older versions,
        it is already connected). disconnect: the server marks the socket as disconnecting
        (manager.pre_disconnect, on every disconnect path) before it calls the handler, while a
        client can only emit to a socket that is connected and not disconnecting.
        """
        sid = args[0]
        if event == "connect":
            eio_sid = self.server.manager.eio_sid_from_sid(sid, self.namespace)
            return len(args) > 1 and eio_sid is not None and args[1] is self.server.environ.get(eio_sid)
        return not self.server.manager.is_connected(sid, self.namespace)

    async def _lifecycle(self, event: str, *args: Any) -> Any:
        """connect / disconnect, counted: outcome of each connect, reason of each disconnect."""
        metrics, namespace = self.app.metrics, self.namespace
        if event == "disconnect":
            reason = args[1] if len(args) > 1 and isinstance(args[1], str) else "unknown"
            try:
                return await super().trigger_event(event, *args)
            finally:
                metrics.disconnects.labels(namespace, reason).inc()
                metrics.sockets.labels(namespace).dec()
        try:
            result = await super().trigger_event(event, *args)
        except socketio.exceptions.ConnectionRefusedError as exc:
            data = exc.error_args.get("data") if isinstance(exc.error_args, dict) else None
            code = data.get("code") if isinstance(data, dict) else None
            metrics.connects.labels(namespace, code if isinstance(code, str) else "refused").inc()
            if code == "rate_limited":
                metrics.rate_limited.labels(f"{namespace} connect").inc()
            raise
        if result is False:  # a handler may refuse by returning False
            metrics.connects.labels(namespace, "refused").inc()
        else:
            metrics.connects.labels(namespace, "accepted").inc()
            metrics.sockets.labels(namespace).inc()
        return result

    async def trigger_event(self, event: str, *args: Any) -> Any:
        sid = args[0]
        LOG_ID.set(f"sid:{sid}")  # each event runs in a task of its own: its lines carry the socket id
        if event in _LIFECYCLE:
            # A client may emit events named connect/disconnect; they must fake neither.
            if self._from_server(event, args):
                if event == "disconnect":
                    self.app.auth_watch.untrack(sid)
                return await self._lifecycle(event, *args)
            handler = None
        elif isinstance(event, str):
            handler = getattr(self, "on_" + event, None)
        else:  # a raw client can name an event with a number
            handler = None
        if handler is None:
            return failure(AuroraError("invalid", f"unknown event {event!r}"))
        payload = args[1] if len(args) > 1 else None
        started = time.perf_counter()
        try:
            limit = LIMIT_OF.get(event)
            if limit is not None:
                await self._spend(sid, limit)
            return ok(await handler(sid, payload))
        except Exception as exc:
            error = client_error(exc, log, "event %r", event)
            if error.code == "rate_limited":
                self.app.metrics.rate_limited.labels(event).inc()
            return failure(error)
        finally:
            self.app.metrics.observe_ack(event, started)
