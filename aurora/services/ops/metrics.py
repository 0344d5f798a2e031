"""Prometheus metrics (prometheus-client), one set per application.

Each application gets its own CollectorRegistry, so two servers in one test process never mix their
counts. Under `python app.py --workers N` the supervisor sets PROMETHEUS_MULTIPROC_DIR before the
workers start: prometheus-client then keeps every value in per-process files there, and a scrape of
any worker reads all of them (MultiProcessCollector). Gauges say how to merge their per-process values.

The send path never calls prometheus-client: an observation there is a bisect and an integer add in
plain lists (HotHistogram, HotCounter), well under a microsecond; flush() moves the counts into the
prometheus-client objects in bulk, when /metrics is scraped and once a second (so, in multiprocess
mode, another worker's scrape sees them within FLUSH_INTERVAL_S). prometheus-client's own observe()
costs several microseconds per call under its lock, which measurably slowed bench S1. Values that are
cheaper to ask for than to keep (database and Redis reachable, calls by state) are computed when
/metrics is scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: a send's ack on a quiet server is ~1 ms (SQLite, NORMAL) to ~10 ms (FULL, PostgreSQL).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
FLUSH_INTERVAL_S = 1.0


class HotHistogram:
    """Observations counted per bucket in plain lists, added to a prometheus-client histogram child in
    bulk. Uses the child's per-bucket values (_buckets, _sum: non-cumulative, as its observe() fills
    them) of the pinned prometheus-client; tests/test_metrics.py checks the exposition they give."""

    def __init__(self, child: Any, bounds: Iterable[float]) -> None:
        self._child = child
        self._bounds = [*bounds, math.inf]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def flush(self) -> None:
        counts, total = self._counts, self._sum
        if not any(counts):
            return
        self._counts, self._sum = [0] * len(self._bounds), 0.0
        for index, count in enumerate(counts):
            if count:
                self._child._buckets[index].inc(count)
        self._child._sum.inc(total)


class HotCounter:
    """Counts per label value in a dict, added to a prometheus-client counter in bulk."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._counts: dict[str, int] = {}

    def inc(self, label: str) -> None:
        counts = self._counts
        counts[label] = counts.get(label, 0) + 1

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for label, count in counts.items():
            self._counter.labels(label).inc(count)


def multiprocess_dir() -> str | None:
    """The directory prometheus-client itself reads at import (so it is read here, not in Settings)."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, list(labels), registry=registry)

        self.sockets = Gauge("aurora_sockets_connected", "Socket.IO connections open now, per namespace",
                             ["namespace"], registry=registry, multiprocess_mode="livesum")
        self.connects = counter("aurora_socket_connects", "Socket.IO connection attempts, by outcome "
                                "(accepted, or the refusal's error code)", ["namespace", "outcome"])
        self.disconnects = counter("aurora_socket_disconnects", "Socket.IO disconnections, by reason "
                                   "(python-socketio's reason strings)", ["namespace", "reason"])
        self.entries = counter("aurora_log_entries_stored", "Log entries committed, by kind "
                               "(text, call, edit, delete, reaction)", ["kind"])
        self.ack_latency = Histogram("aurora_ack_latency_seconds", "Time from a client event's arrival to "
                                     "its ack, by event", ["event"], buckets=LATENCY_BUCKETS, registry=registry)
        self.commit_duration = Histogram("aurora_commit_duration_seconds", "Duration of one writer "
                                         "transaction (a batch of log entries)", buckets=LATENCY_BUCKETS,
                                         registry=registry)
        self.batch_size = Histogram("aurora_writer_batch_size", "Log entries per writer transaction",
                                    buckets=BATCH_BUCKETS, registry=registry)
        self.queue_depth = Gauge("aurora_writer_queue_depth", "Log entries waiting for the writer",
                                 registry=registry, multiprocess_mode="livesum")
        self.db_errors = counter("aurora_database_errors", "Database operations that failed, by kind "
                                 "(operational, interface: connection lost or refused)", ["kind"])
        self.redis_errors = counter("aurora_redis_errors", "Redis operations that failed, by component",
                                    ["component"])
        self.rate_limited = counter("aurora_rate_limited", "Requests and events refused with rate_limited, "
                                    "by event or route", ["event"])
        self.login_failures = counter("aurora_login_failures", "Failed logins, by reason", ["reason"])
        self.uploads = counter("aurora_uploads", "Uploads, by outcome (stored, or the error code)", ["outcome"])
        self.upload_bytes = counter("aurora_upload_bytes", "Bytes of uploads stored")
        self.http_requests = counter("aurora_http_requests", "REST requests, by route and status class",
                                     ["route", "status"])
        # The hot path (every event's ack, every stored entry, every writer batch): buffered.
        self._acks: dict[str, HotHistogram] = {}
        self.stored = HotCounter(self.entries)
        self.commits = HotHistogram(self.commit_duration, LATENCY_BUCKETS)
        self.batches = HotHistogram(self.batch_size, BATCH_BUCKETS)
        self._queue_depth = 0
        self._task: asyncio.Task[None] | None = None

    def observe_ack(self, event: str, started: float) -> None:
        hot = self._acks.get(event)
        if hot is None:  # event names are the handlers' (a bounded set): one buffer each
            hot = self._acks[event] = HotHistogram(self.ack_latency.labels(event), LATENCY_BUCKETS)
        hot.observe(time.perf_counter() - started)

    def batch_done(self, size: int, seconds: float, queued: int) -> None:
        self.batches.observe(size)
        self.commits.observe(seconds)
        self._queue_depth = queued

    def flush(self) -> None:
        for hot in self._acks.values():
            hot.flush()
        self.stored.flush()
        self.commits.flush()
        self.batches.flush()
        self.queue_depth.set(self._queue_depth)

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_forever(), name="aurora-metrics-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.flush()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def render(self, scrape_time: list[Metric]) -> bytes:
        """The text exposition: this process's (or, in multiprocess mode, every worker's) values,
        then the values computed for this scrape."""
        self.flush()
        if self.multiproc_dir:
            source = CollectorRegistry()
            MultiProcessCollector(source, path=self.multiproc_dir)
        else:
            source = self.registry
        extra = CollectorRegistry(auto_describe=False)
        extra.register(_Fixed(scrape_time))
        return generate_latest(source) + generate_latest(extra)


class _Fixed:
    """A collector that yields families built for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def gauge(name: str, doc: str, value: float | None = None, labels: list[str] | None = None,
          samples: dict[tuple[str, ...], float] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, value=value, labels=labels)
    for label_values, number in (samples or {}).items():
        family.add_metric(list(label_values), number)
    return family


def counter_family(name: str, doc: str, labels: list[str],
                   samples: dict[tuple[str, ...], float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for label_values, number in samples.items():
        family.add_metric(list(label_values), number)
    return family


def status_class(status: int) -> str:
    return f"{status // 100}xx"

