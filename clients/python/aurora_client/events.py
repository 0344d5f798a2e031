"""Events as callbacks (`on`) and as async iterators (`events()`), from one ordered dispatch."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_END = object()


@dataclass(frozen=True)
class Event:
    """One event: `name` ("message", "conversation", "state", ...), its `data`, and for "message" the
    `change` that produced this state ("new", "edit", "delete" or "reaction")."""

    name: str
    data: Any
    change: str | None = None


@dataclass
class _Subscription:
    names: frozenset[str] | None
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


class Emitter:
    """Callbacks run in emit order: a plain function inline, a coroutine function as its own task
    (so a handler may await the client, e.g. send a reply, without stalling the event stream)."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[..., Any]]] = {}
        self._subscriptions: list[_Subscription] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, name: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call `callback(data)` for every `name` event; returns a function that unsubscribes it."""
        self._callbacks.setdefault(name, []).append(callback)

        def off() -> None:
            if callback in self._callbacks.get(name, []):
                self._callbacks[name].remove(callback)
        return off

    def off(self, name: str, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks.get(name, []):
            self._callbacks[name].remove(callback)

    def once(self, name: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Like `on`, for the next `name` event only."""
        def wrapper(data: Any) -> Any:
            off()
            return callback(data)
        off = self.on(name, wrapper)
        return off

    def emit(self, name: str, data: Any, change: str | None = None) -> None:
        event = Event(name, data, change)
        for subscription in self._subscriptions:
            if subscription.names is None or name in subscription.names:
                subscription.queue.put_nowait(event)
        for callback in list(self._callbacks.get(name, [])):
            try:
                result = callback(data)
            except Exception:
                log.exception("%s callback failed", name)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._callback_done)

    def _callback_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event callback failed", exc_info=task.exception())

    def events(self, *names: str) -> AsyncIterator[Event]:
        """Every event from this call on (only `names` if given), until the client is closed. Iterate it
        to the end or call its `close()`: an abandoned iterator keeps queueing."""
        subscription = _Subscription(frozenset(names) if names else None)
        self._subscriptions.append(subscription)
        return _Iterator(self, subscription)

    def end(self) -> None:
        """End every iterator (after the client closed)."""
        for subscription in self._subscriptions:
            subscription.queue.put_nowait(_END)


class _Iterator:
    """Subscribed when created (not at the first `__anext__`), so nothing emitted in between is lost."""

    def __init__(self, emitter: Emitter, subscription: _Subscription) -> None:
        self._emitter = emitter
        self._subscription = subscription

    def __aiter__(self) -> _Iterator:
        return self

    async def __anext__(self) -> Event:
        item = await self._subscription.queue.get()
        if item is _END:
            self.close()
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._subscription in self._emitter._subscriptions:
            self._emitter._subscriptions.remove(self._subscription)
