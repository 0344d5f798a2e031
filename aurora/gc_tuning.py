"""The garbage collector's schedule for a server that holds many long-lived objects.

CPython's default (700, 10, 10) runs a young collection every 700 net allocations and, once the
objects that survived them grow by a quarter, a full collection over the whole heap. A server that
takes 10,000 sockets in a reconnect storm grows its heap from nothing to hundreds of MB in a minute:
every 25% of growth is one more pass over everything it holds. Measured in S6 (10,000 clients,
SQLite): 21 s of the server's 53 s of CPU were the collector, 15 s of it in 20 full collections
(docs/performance.md). Those objects (sessions, rooms, registry entries) are freed by reference
counting when a socket goes; what the collector is for is cycles, and cycles die young.

So the young generation is collected every `thresholds[0]` net allocations instead of 700, and a
full collection needs `thresholds[2]` middle-generation passes instead of 10; what the process
built at start-up (modules, the app, its settings) is frozen out of every collection (gc.freeze).
With (50000, 20, 100) the storm above spent 3.4 s of 33 s in the collector. `gc_thresholds = ""`
keeps Python's defaults.
"""

from __future__ import annotations

import gc

DEFAULT_THRESHOLDS = "50000,20,100"


def parse_thresholds(text: str) -> tuple[int, int, int] | None:
    """"a,b,c" → (a, b, c), all > 0; "" → None (Python's own). ValueError with the reason otherwise."""
    if not text.strip():
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"must be three positive integers like {DEFAULT_THRESHOLDS!r}, or empty, got {text!r}")
    first, second, third = (int(p) for p in parts)
    return first, second, third


def apply_thresholds(thresholds: tuple[int, int, int] | None) -> None:
    if thresholds is not None:
        gc.set_threshold(*thresholds)


def freeze_startup_objects() -> None:
    """Collect once, then leave everything alive now out of future collections (they live as long as
    the process)."""
    gc.collect()
    gc.freeze()
