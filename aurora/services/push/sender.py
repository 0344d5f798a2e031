"""Sending pushes: a bounded queue, worker tasks, and a thread pool of its own for pywebpush
(ARCHITECTURE rule 11: slow outside work never runs on the send path or in the database threads).

offer() never waits: when the queue is full the push is dropped, counted and logged. A push service
answering 404 or 410 has forgotten the subscription, so Aurora forgets it too; 429, 5xx and network
errors are retried with exponential backoff (honouring Retry-After, capped) up to `push_retries`
times, then dropped; any other answer (400, 401, 403, 413) is a configuration or payload problem:
logged and dropped, the subscription kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from pywebpush import WebPushException, webpush

from aurora.services.push.vapid import VapidKeys
from aurora.settings import Settings
from aurora.storage import push as push_store
from aurora.storage.database import Storage

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 60.0
GONE = (404, 410)


@dataclass
class PushJob:
    subscription: dict[str, Any]  # id, endpoint, p256dh, auth, vapid_key
    payload: bytes
    ttl: int
    topic: str
    urgency: str
    attempt: int = 0


@dataclass
class Outcome:
    status: int | None  # None: no answer (connection refused, timeout)
    retry_after: float | None = None
    reason: str = ""


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: use our own backoff


class PushSender:
    def __init__(self, settings: Settings, storage: Storage, keys: VapidKeys) -> None:
        self._settings = settings
        self._storage = storage
        self._keys = keys
        self._queue: asyncio.Queue[PushJob] = asyncio.Queue(maxsize=settings.push_queue_max)
        self._executor = ThreadPoolExecutor(settings.push_threads, thread_name_prefix="aurora-push")
        self._local = threading.local()
        self._workers: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.TimerHandle] = set()
        self._in_flight = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self.stats: Counter[str] = Counter()

    # -- the queue ----------------------------------------------------------------------------
    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"aurora-push-{i}")
                         for i in range(self._settings.push_threads)]

    async def stop(self) -> None:
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        # Sends in flight end by their own timeout; nobody waits for them.
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def pending(self) -> int:
        return self._queue.qsize() + self._in_flight + len(self._retries)

    async def put(self, job: PushJob) -> None:
        """For the dispatcher (off the send path): wait for room, so that while the push service is
        slow the events wait in their own bounded queue, where dropping one costs nothing."""
        self._quiet.clear()
        await self._queue.put(job)

    def offer(self, job: PushJob) -> bool:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats["dropped"] += 1
            if self.stats["dropped"] == 1 or self.stats["dropped"] % 1000 == 0:
                log.warning("push queue full (%d): dropped a push; %d dropped so far",
                            self._settings.push_queue_max, self.stats["dropped"])
            return False
        self._quiet.clear()
        return True

    async def idle(self) -> None:
        """Until nothing is queued, sending or waiting for a retry (tests, shutdown)."""
        while self.pending:
            self._quiet.clear()
            await self._quiet.wait()

    def _maybe_quiet(self) -> None:
        if not self.pending:
            self._quiet.set()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._queue.get()
            self._in_flight += 1
            try:
                outcome = await loop.run_in_executor(self._executor, self._send, job)
                await self._settle(job, outcome)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats["failed"] += 1
                log.exception("sending a push failed")
            finally:
                self._in_flight -= 1
                self._queue.task_done()
                self._maybe_quiet()

    # -- one push (in a push thread) ----------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, job: PushJob) -> Outcome:
        sub = job.subscription
        parts = urlsplit(sub["endpoint"])
        audience = f"{parts.scheme}://{parts.netloc}"
        headers = {
            "Authorization": self._keys.authorization(sub["vapid_key"], audience),
            "Topic": job.topic,
            "Urgency": job.urgency,
        }
        info = {"endpoint": sub["endpoint"], "keys": {"p256dh": sub["p256dh"], "auth": sub["auth"]}}
        try:
            response = webpush(info, job.payload, headers=headers, ttl=job.ttl, timeout=self._settings.push_timeout_s,
                               requests_session=self._session())
        except WebPushException as exc:
            if exc.response is None:
                return Outcome(None, reason=str(exc).splitlines()[0])
            status = exc.response.status_code
            return Outcome(status, _retry_after(exc.response.headers.get("Retry-After")),
                           f"{status} {exc.response.reason}")
        except requests.RequestException as exc:
            return Outcome(None, reason=exc.__class__.__name__)
        return Outcome(response.status_code)

    # -- what the answer means ----------------------------------------------------------------
    async def _settle(self, job: PushJob, outcome: Outcome) -> None:
        status = outcome.status
        if status is not None and 200 <= status < 300:
            self.stats["sent"] += 1
            return
        sub = job.subscription
        host = urlsplit(sub["endpoint"]).hostname
        if status in GONE:
            self.stats["gone"] += 1
            await self._storage.write(push_store.forget_gone_txn, sub["id"], sub["endpoint"])
            log.info("push service %s forgot subscription %s (%s): removed it", host, sub["id"], status)
            return
        if status is None or status == 429 or status >= 500:
            if job.attempt < self._settings.push_retries:
                delay = self._settings.push_retry_base_s * 2 ** job.attempt
                if outcome.retry_after is not None:
                    delay = max(delay, outcome.retry_after)
                job.attempt += 1
                self.stats["retried"] += 1
                self._retry_later(job, min(delay, MAX_RETRY_DELAY_S))
                return
            self.stats["failed"] += 1
            log.warning("push to %s dropped after %d attempts: %s", host, job.attempt + 1, outcome.reason)
            return
        self.stats["failed"] += 1
        log.warning("push service %s refused a push for subscription %s: %s", host, sub["id"], outcome.reason)

    def _retry_later(self, job: PushJob, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def again() -> None:
            self._retries.discard(handle)
            self.offer(job)
            self._maybe_quiet()

        handle = loop.call_later(delay, again)
        self._retries.add(handle)
