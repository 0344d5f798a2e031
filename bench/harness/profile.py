"""Profiling the Aurora server during a scenario: py-spy (sampling, whole process) or pyinstrument.

py-spy records collapsed stacks ("raw"); summarize() turns them into where the time goes:
by component (the library the sampled frame is in), by function (self time), and per thread.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

THREAD = re.compile(r"^thread \((?P<tid>\d+)\)(?:: (?P<name>.*))?$")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")

# First match wins; checked against the frame's file path.
COMPONENTS: list[tuple[str, str]] = [
    ("/aurora/", "aurora (services, storage, realtime)"),
    ("/engineio/", "python-engineio (packets, websocket glue)"),
    ("/socketio/", "python-socketio (packets, rooms, emit)"),
    ("/aiohttp/", "aiohttp (HTTP, websocket frames)"),
    ("/multidict/", "aiohttp (HTTP, websocket frames)"),
    ("/yarl/", "aiohttp (HTTP, websocket frames)"),
    ("/peewee.py", "peewee (query building)"),
    ("/playhouse/", "peewee (query building)"),
    ("/sqlite3/", "sqlite3 (SQL, commit/fsync)"),
    ("/psycopg2/", "psycopg2 (SQL, commit)"),
    ("/json/", "json (encode/decode)"),
    ("/asyncio/", "asyncio event loop"),
    ("/selectors.py", "asyncio event loop"),
    ("/concurrent/futures/", "thread pool hand-off"),
    ("/threading.py", "thread pool hand-off"),
    ("/queue.py", "thread pool hand-off"),
    ("/zlib", "zlib (websocket compression)"),
    ("/logging/", "logging"),
]


def component(path: str) -> str:
    path = "/" + path.lstrip("/")  # py-spy shortens paths: "aiohttp/web.py", "threading.py"
    for needle, name in COMPONENTS:
        if needle in path:
            return name
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    return "other (stdlib, C code)"


def py_spy_binary() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


PY_SPY_RATE = 200


def start_py_spy(pid: int, seconds: float, out: Path, rate: int = PY_SPY_RATE) -> subprocess.Popen[bytes]:
    binary = py_spy_binary()
    if binary is None:
        raise RuntimeError("py-spy is not installed (pip install -r requirements-dev.txt)")
    argv = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--duration", str(max(1, round(seconds))),
            "--format", "raw", "--threads", "--gil", "--output", str(out)]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=(out.parent / (out.name + ".log")).open("wb"))


def pyinstrument_prefix(out: Path) -> list[str]:
    """Run the server under pyinstrument (event-loop thread only); the report is written when it stops."""
    return [sys.executable, "-m", "pyinstrument", "--renderer", "text", "--outfile", str(out), "--interval", "0.001"]


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for raw in stack.split(";"):
        match = FRAME.match(raw.strip())
        if match:
            frames.append((match["func"], match["path"]))
        else:
            frames.append((raw.strip(), ""))
    return frames


def summarize(raw_path: Path, rate: int, messages: int, thread_cpu: dict[str, float] | None = None,
              window_acked: int | None = None, thread_kernel: dict[str, float] | None = None,
              top: int = 25) -> dict[str, Any]:
    """Where the server's Python time goes, per message.

    py-spy runs with --gil: a sample is taken only from the thread holding the GIL, so samples
    are Python (and C code that keeps the GIL) and their count / rate is GIL-held seconds.
    thread_cpu (seconds per thread id over the measured window, from /proc) adds the CPU each
    thread really used, GIL or not (SQLite and PostgreSQL calls release it).
    """
    by_component: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    names: dict[str, str] = {}
    samples = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        thread = "?"
        if frames and frames[0][0].startswith(("thread", "process")):
            header = THREAD.match(frames[0][0])
            thread = frames[0][0]
            if header:
                names[header["tid"]] = header["name"]
                thread = header["name"]
            frames = frames[1:]
        frames = [f for f in frames if f[1]]  # process/thread markers have no file
        if not frames:
            continue
        samples += count
        by_thread[thread] += count
        func, path = frames[-1]
        by_component[component(path)] += count
        self_time[f"{func} ({_short(path)})"] += count
        for name in {f"{f} ({_short(p)})" for f, p in frames}:
            total_time[name] += count
    gil_us_per_msg = (samples / rate) * 1e6 / messages if messages else None

    def shares(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        out = []
        for name, count in counter.most_common(limit):
            share = count / samples if samples else 0.0
            item: dict[str, Any] = {"name": name, "share": share}
            if gil_us_per_msg is not None:
                item["us_per_msg"] = share * gil_us_per_msg
            out.append(item)
        return out

    threads_cpu = []
    if thread_cpu and window_acked:
        for tid, seconds in sorted(thread_cpu.items(), key=lambda kv: -kv[1]):
            kernel = (thread_kernel or {}).get(str(tid), 0.0)
            threads_cpu.append({"name": f"{names.get(str(tid), 'thread')} ({tid})",
                                "us_per_msg": seconds * 1e6 / window_acked,
                                "kernel_us_per_msg": kernel * 1e6 / window_acked})
    return {
        "samples": samples,
        "messages": messages,
        "gil_us_per_msg": gil_us_per_msg,
        "thread_cpu_us_per_msg": threads_cpu,
        "by_component": shares(by_component, 30),
        "self": shares(self_time, top),
        "total": shares(total_time, top),
        "gil_by_thread": shares(by_thread, 10),
    }


def _short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if "/aurora/" in path:
        return "aurora/" + path.split("/aurora/", 1)[1]
    return path.rsplit("/lib/", 1)[-1] if "/lib/" in path else path


def summary_text(summary: dict[str, Any]) -> str:
    per = summary.get("gil_us_per_msg")
    lines = [f"{summary['samples']} samples with the GIL held over {summary['messages']} messages"
             + (f": {per:.0f} µs of Python per message" if per else "")]
    if summary["thread_cpu_us_per_msg"]:
        lines.append("CPU per message by thread (from /proc, GIL or not; of which in the kernel):")
        for item in summary["thread_cpu_us_per_msg"]:
            if item["us_per_msg"] < 5:
                continue
            lines.append(f"  {item['us_per_msg']:7.1f} µs/msg  (kernel {item.get('kernel_us_per_msg', 0):6.1f})"
                         f"  {item['name']}")

    def block(title: str, items: list[dict[str, Any]]) -> None:
        lines.append(title)
        for item in items:
            us = f"  {item['us_per_msg']:7.1f} µs/msg" if "us_per_msg" in item else ""
            lines.append(f"  {item['share'] * 100:5.1f}%{us}  {item['name']}")

    block("GIL-held time by component (self time):", summary["by_component"])
    block("GIL-held time by thread:", summary["gil_by_thread"])
    block("functions, self time:", summary["self"])
    block("functions, total time (inclusive):", summary["total"])
    return "\n".join(lines)
