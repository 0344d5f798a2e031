"""This machine's durable-write floor: how long one WAL-sized write plus fdatasync takes.

Every acknowledged message waits for at least one such flush (PostgreSQL's commit with
synchronous_commit=on and wal_sync_method=fdatasync; SQLite's WAL commit with synchronous=FULL), so
it bounds what any durable server can do per round of commits. Measured with a plain timed loop
(what pg_test_fsync's "write, fdatasync" line measures), on the filesystem of PostgreSQL's data
directory when it is on this machine, else of the run's working directory.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

BLOCK = 8192  # one WAL page


def flush_timing(where: Path, seconds: float = 1.0, max_writes: int = 2000) -> dict[str, Any]:
    """Median, p90 and max µs of one 8 KiB pwrite + fdatasync, over about `seconds`."""
    samples: list[float] = []
    block = os.urandom(BLOCK)
    with tempfile.NamedTemporaryFile(dir=where, prefix=".aurora-bench-fsync-") as handle:
        fd = handle.fileno()
        os.pwrite(fd, block, 0)
        os.fsync(fd)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline and len(samples) < max_writes:
            t0 = time.perf_counter()
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return {
        "where": str(where),
        "writes": len(samples),
        "median_us": round(statistics.median(samples), 1),
        "p90_us": round(samples[int(0.9 * (len(samples) - 1))], 1),
        "max_us": round(samples[-1], 1),
    }


def flush_dir(postgres_data_directory: str | None, fallback: Path) -> Path:
    """A writable directory beside PostgreSQL's data directory (same filesystem), else the fallback."""
    if postgres_data_directory:
        parent = Path(postgres_data_directory).parent
        if parent.is_dir() and os.access(parent, os.W_OK):
            return parent
    return fallback


def describe(timing: dict[str, Any]) -> str:
    return (f"WAL flush (8 KiB write + fdatasync, {timing['writes']} in ~1 s, {timing['where']}): "
            f"median {timing['median_us'] / 1000:.2f} ms, p90 {timing['p90_us'] / 1000:.2f} ms, "
            f"max {timing['max_us'] / 1000:.2f} ms")
