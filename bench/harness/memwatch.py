"""Run a Python program (app.py) with memory diagnostics the soak can ask for: bench only, the server is unchanged.

    python bench/harness/memwatch.py --out DIR [--heap-every S] [--tracemalloc] [--why MODULE.TYPE] -- app.py [ARGS]

The program runs as __main__ in this process. Each SIGUSR1 (and with --dump-at-exit its end) writes
DIR/dump-<n>.json after a gc.collect():
- `types`: live objects by type (gc.get_objects), the 40 most numerous, and `types_delta`: the
  40 types whose count changed most since the previous dump;
- `containers`: for every instance of a class from aurora, socketio, engineio or aiohttp, the length
  of each dict/set/list/deque attribute that is not empty (`Class.attr` -> summed length), and
  `containers_delta`: those that changed since the previous dump. A per-connection dict that is
  never emptied shows here as an attribute that grows with the cycles;
- with --tracemalloc: the first dump starts tracing (15 frames; from then on the server runs about ten
  times slower, and only what is allocated after it is seen: what a warmed-up server keeps), each later
  one lists in `tracemalloc_delta` the 25 allocation tracebacks whose retained size grew most since the
  previous dump;
- `tasks_waiting_at`: pending asyncio tasks by where their coroutine chain is suspended;
- `pymalloc` (the summary of sys._debugmallocstats(): arenas, bytes in allocated / free blocks) and
  `status_kib` (VmRSS, RssAnon, RssFile, RssShmem);
- with --heap-every S: DIR/heap.jsonl gets sys.getallocatedblocks() and glibc's mallinfo2() (bytes in
  use, free, mmapped) every S seconds (cheap, no dump);
- SIGUSR2 writes DIR/trim.json: RSS and pymalloc stats, then glibc malloc_trim(0), then RSS again
  (how much of the RSS was heap the C allocator held free, not live objects);
- with --why MODULE.TYPE: `referrers`, for 3 live objects of that type, one chain of what refers to
  them (what keeps them alive).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import gc
import inspect
import json
import linecache
import os
import random
import runpy
import signal
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

WATCHED_MODULES = ("aurora", "socketio", "engineio", "aiohttp")
CONTAINERS = (dict, set, list, collections.deque, frozenset)
FRAMES = 15


def type_counts() -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return counts


def container_sizes() -> collections.Counter[str]:
    sizes: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        module = getattr(kind, "__module__", None)
        if not isinstance(module, str) or module.split(".", 1)[0] not in WATCHED_MODULES or isinstance(obj, type):
            continue
        try:
            attrs = vars(obj)
        except TypeError:
            continue
        for name, value in list(attrs.items()):
            if isinstance(value, CONTAINERS) and value:
                sizes[f"{module}.{kind.__qualname__}.{name}"] += len(value)
    return sizes


def describe(obj: Any, child: Any) -> str:
    """A referrer named by its type, and for a dict or frame by the key/variable that holds `child`."""
    kind = type(obj)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(obj, dict):
        keys = [k for k, v in obj.items() if v is child][:1]
        return f"{name}[{keys[0]!r}]" if keys else name
    if inspect.isframe(obj):
        names = [k for k, v in obj.f_locals.items() if v is child][:1]
        return f"frame {obj.f_code.co_qualname} ({obj.f_code.co_filename}:{obj.f_lineno}) {names}"
    if inspect.iscoroutine(obj):
        return f"coroutine {obj.__qualname__}"
    return name


def referrer_chains(type_name: str, samples: int = 3, depth: int = 10) -> list[list[str]]:
    """For a few live objects of type_name, one chain of referrers each (the object first). The walk
    holds nothing but `picked` and the current object, so what it finds is what the program holds."""
    picked = tuple(random.sample([o for o in gc.get_objects() if _name(o) == type_name],
                                 min(samples, sum(1 for o in gc.get_objects() if _name(o) == type_name))))
    here = sys._getframe()
    chains = []
    for i in range(len(picked)):
        chain = [describe(picked[i], None)]
        current, seen = picked[i], {id(picked[i])}
        for _ in range(depth):
            parent = None
            for referrer in gc.get_referrers(current):
                if (referrer is picked or referrer is here or referrer is chain or id(referrer) in seen
                        or (inspect.isframe(referrer) and referrer.f_code.co_filename == __file__)):
                    continue
                parent = referrer
                break
            if parent is None:
                chain.append("(no referrer: held from C, e.g. by a running task, a timer or the event loop)")
                break
            chain.append(describe(parent, current))
            seen.add(id(parent))
            current = parent
        chains.append(chain)
    return chains


def where_tasks_wait() -> collections.Counter[str]:
    """Pending asyncio tasks by the innermost place their coroutine chain is suspended at."""
    places: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        if not isinstance(obj, asyncio.Task) or obj.done():
            continue
        coro: Any = obj.get_coro()
        place = "?"
        for _ in range(50):
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                place = f"{frame.f_code.co_qualname} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})"
            inner = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
            if inner is None:
                if coro is not None and frame is None:
                    place += f" <- {type(coro).__name__}"
                break
            coro = inner
        places[place] += 1
    return places


def pymalloc_stats() -> dict[str, int]:
    """The summary of sys._debugmallocstats() (CPython's small-object allocator): arenas (1 MiB each in
    3.11), bytes in allocated and in free blocks. It prints to the C stderr, caught in a file here."""
    with tempfile.TemporaryFile("w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    stats = {}
    for line in text.splitlines():
        if line.startswith("# ") and "=" in line:
            key, _, value = line[2:].partition("=")
            with contextlib.suppress(ValueError):
                stats[key.strip().replace(" ", "_")] = int(value.strip().replace(",", ""))
    return stats


def status_kib() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0])
    return fields


def trim(out: Path) -> None:
    """SIGUSR2: how much of the RSS is memory the C allocator holds free. RSS and CPython's allocator
    stats, then glibc malloc_trim(0) (free heap pages back to the kernel), then RSS again, into out."""
    try:
        report: dict[str, Any] = {"before": status_kib(), "pymalloc": pymalloc_stats()}
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            report["malloc_trim_released"] = bool(libc.malloc_trim(0))
        except (OSError, AttributeError) as exc:  # not glibc
            report["malloc_trim_error"] = str(exc)
        report["after"] = status_kib()
        out.write_text(json.dumps(report, indent=1))
        print(f"memwatch: wrote {out}", file=sys.stderr, flush=True)
    except Exception:
        traceback.print_exc()


def _name(obj: Any) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def delta(new: collections.Counter[str], old: collections.Counter[str], top: int) -> dict[str, int]:
    changes = {k: new.get(k, 0) - old.get(k, 0) for k in set(new) | set(old)}
    ranked = sorted((kv for kv in changes.items() if kv[1]), key=lambda kv: -abs(kv[1]))
    return dict(ranked[:top])


class Dumper:
    def __init__(self, out: Path, trace: bool, why: list[str]) -> None:
        self.out = out
        self.trace = trace
        self.why = why
        self.n = 0
        self.types: collections.Counter[str] = collections.Counter()
        self.containers: collections.Counter[str] = collections.Counter()
        self.snapshot: tracemalloc.Snapshot | None = None
        self.busy = False

    def dump(self, label: str) -> None:
        """Write the next dump; a failure is printed, never raised into the program. A signal that
        arrives during a dump (the handler runs in the same thread) is ignored."""
        if self.busy:
            return
        self.busy = True
        try:
            self._dump(label)
        except Exception:
            traceback.print_exc()
        finally:
            self.busy = False

    def _dump(self, label: str) -> None:
        gc.collect()
        types, containers = type_counts(), container_sizes()
        report: dict[str, Any] = {
            "n": self.n, "label": label, "objects": sum(types.values()),
            "types": dict(types.most_common(40)), "types_delta": delta(types, self.types, 40),
            "containers": dict(containers.most_common(60)),
            "containers_delta": delta(containers, self.containers, 40),
            "tasks_waiting_at": dict(where_tasks_wait().most_common(20)),
            "pymalloc": pymalloc_stats(), "status_kib": status_kib(),
        }
        if self.why:
            report["referrers"] = {name: referrer_chains(name) for name in self.why}
        if self.trace and not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
            report["tracemalloc"] = "started"
            self.snapshot = tracemalloc.take_snapshot()
        elif self.trace:
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__),
                 tracemalloc.Filter(False, linecache.__file__)])  # the source lines of the previous dump
            report["tracemalloc_total_kib"] = round(sum(s.size for s in snapshot.statistics("filename")) / 1024)
            if self.snapshot is not None:
                report["tracemalloc_delta"] = [
                    {"size_kib_diff": round(s.size_diff / 1024, 1), "count_diff": s.count_diff,
                     "size_kib": round(s.size / 1024, 1), "traceback": s.traceback.format()[-12:]}
                    for s in snapshot.compare_to(self.snapshot, "traceback")[:25]]
            self.snapshot = snapshot
        self.types, self.containers = types, containers
        path = self.out / f"dump-{self.n}.json"
        path.write_text(json.dumps(report, indent=1))
        self.n += 1
        print(f"memwatch: wrote {path}", file=sys.stderr, flush=True)


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def mallinfo2() -> Any:
    """glibc's mallinfo2() (all arenas), or None elsewhere."""
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = MallInfo2
    return function


def sample_heap(path: Path, every_s: float) -> None:
    """Append a line to path every every_s seconds (cheap reads, no walk of the heap):
    - blocks: sys.getallocatedblocks(), the small-object blocks the interpreter holds;
    - malloc_in_use / malloc_free / malloc_mmap (bytes, glibc mallinfo2 over all arenas): what C and the
      interpreter's larger objects hold in malloc, what malloc keeps free (fragmentation), and its mmaps.
    Live memory grows in blocks or malloc_in_use; RSS that grows while they stay level is the allocator
    keeping freed memory."""
    started = time.monotonic()
    info = mallinfo2()
    with path.open("a") as out:
        while True:
            sample = {"t": round(time.monotonic() - started, 1), "wall": round(time.time(), 2),
                      "blocks": sys.getallocatedblocks()}
            if info is not None:
                m = info()
                sample.update(malloc_in_use=m.uordblks, malloc_free=m.fordblks, malloc_mmap=m.hblkhd)
            out.write(json.dumps(sample) + "\n")
            out.flush()
            time.sleep(every_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for dump-<n>.json")
    parser.add_argument("--tracemalloc", action="store_true", help="trace allocations from the first dump on")
    parser.add_argument("--why", action="append", default=[], metavar="MODULE.TYPE",
                        help="referrer chains of a few live objects of this type (repeatable)")
    parser.add_argument("--dump-at-exit", action="store_true", help="one more dump when the program ends")
    parser.add_argument("--heap-every", type=float, default=0, metavar="S",
                        help="append sys.getallocatedblocks() and mallinfo2() to OUT/heap.jsonl every S seconds")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="-- PROGRAM.py [ARGS]")
    args = parser.parse_args()
    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        parser.error("no program to run")
    args.out.mkdir(parents=True, exist_ok=True)
    dumper = Dumper(args.out, args.tracemalloc, args.why)
    signal.signal(signal.SIGUSR1, lambda *_: dumper.dump("SIGUSR1"))
    signal.signal(signal.SIGUSR2, lambda *_: trim(args.out / "trim.json"))
    if args.heap_every > 0:
        threading.Thread(target=sample_heap, args=(args.out / "heap.jsonl", args.heap_every), daemon=True,
                         name="memwatch-heap").start()
    sys.argv = program
    sys.path.insert(0, os.path.dirname(os.path.abspath(program[0])))
    try:
        runpy.run_path(program[0], run_name="__main__")
    finally:
        if args.dump_at_exit:
            dumper.dump("exit")


if __name__ == "__main__":
    main()
