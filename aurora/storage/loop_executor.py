"""Worker threads that answer the event loop's futures directly (issue 16: the storage hand-off).

`loop.run_in_executor` with a ThreadPoolExecutor makes two futures per call: a concurrent.futures
Future (its Condition, lock and callbacks) and the asyncio Future chained to it. In py-spy profiles of
S4 on SQLite, the writer thread held the GIL a third of its time in `Future.set_result` and the chain's
callbacks, beside the event loop that wanted it. Here a call is one asyncio Future, a job on a
SimpleQueue and one `call_soon_threadsafe` with the outcome.

A `background` executor's threads run under Linux's SCHED_BATCH policy when the process may use one
CPU only (pinned, as the bench pins the server): woken by the event loop (a job queued), they do not
preempt it, and they run when it waits or at the next scheduler tick.
Used for SQLite's one writer thread (issue 16, S4 on SQLite, server pinned to one core as in the
bench): at 1,000 messages/s the woken writer preempted the loop ~1,300 times a second, and each
time the two threads passed the GIL back and forth before either got on; with the policy, the
loop's involuntary switches fell to ~20/s, server CPU per message by ~5% and the delivery p99 in
most A/B pairs (docs/performance.md). With more CPUs the policy is left alone: the thread starts on
an idle one, and on a saturated machine (the test suite) a disfavoured writer only delayed writes.

The semantics are run_in_executor's: jobs run in the order queued (one thread: strictly), a caller
that stops waiting does not stop a job already queued, submit after shutdown raises RuntimeError,
and shutdown(wait=True) lets what is queued finish first.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = None


def _run_in_background() -> None:
    """Put the calling thread under SCHED_BATCH (Linux) when it may run on one CPU only, the one the
    event loop shares with it; with more CPUs it stays as it is (it starts on an idle one anyway, and
    under load a disfavoured writer only adds to every write's latency). Elsewhere, or when refused,
    it stays as it is."""
    if not hasattr(os, "sched_setscheduler") or not hasattr(os, "SCHED_BATCH"):
        return
    if len(os.sched_getaffinity(0)) > 1:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # 0: this thread
    except OSError as exc:  # a sandbox that forbids it: the thread runs as any other
        log.debug("SCHED_BATCH refused for a storage thread: %s", exc)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class LoopExecutor:
    def __init__(self, threads: int, name: str, background: bool = False,
                 initializer: Callable[[], None] | None = None) -> None:
        self._background = background
        self._initializer = initializer  # run first in each thread, as ThreadPoolExecutor's is
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._shut = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
                         for i in range(max(1, threads))]
        for thread in self._threads:
            thread.start()
        # Daemon threads (a Storage never closed must not hang the interpreter's exit), stopped cleanly
        # at exit as ThreadPoolExecutor's are.
        atexit.register(self.shutdown)

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._jobs.put((loop, future, fn, args))
        return future

    def _work(self) -> None:
        if self._background:
            _run_in_background()
        if self._initializer is not None:
            self._initializer()
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            loop, future, fn, args = job
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to the awaiting caller, as run_in_executor does
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass
            del job, future, result, error  # hold nothing between jobs

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
            for _ in self._threads:
                self._jobs.put(_STOP)
        atexit.unregister(self.shutdown)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()
