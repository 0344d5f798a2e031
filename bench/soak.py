"""Churn soak: users connect, send, sync and disconnect over and over; does the server's memory level off?

    .venv/bin/python bench/soak.py --duration 3600          # the hour of issue 17 (make soak)
    .venv/bin/python bench/soak.py --duration 60            # short (make bench runs this)
    .venv/bin/python bench/soak.py --duration 1800 --no-pin --memwatch   # + dumps (docs/performance.md)
    .venv/bin/python bench/soak.py --duration 300 --workers 4 --rate 10 --memwatch --tracemalloc

Starts `python app.py` on a fresh SQLite database (port 0: the server reports the port it got; the
server's defaults, sqlite_synchronous FULL unless --sqlite-synchronous normal, with the abuse limits
and the per-user socket cap lifted and cheap Argon2), registers --users accounts in pairs (one direct
conversation per pair), then runs the Node load client (bench/soak_client.mjs, socket.io-client 4.8
over websocket): --workers concurrent loops, each over and over with a random user: connect a fresh
/chat socket with the user's token, send_message (acked ok, not a duplicate, with this message and an
integer seq), sync from the seq before it (the answer must hold that seq, with this message), then
disconnect. --rate caps the cycles per second (0: as fast as the loops go). Every cycle is checked;
any failed cycle (or a server or client that ends badly) makes the run exit 1, whatever the memory
did. --fault-every N breaks every Nth sync on purpose, to show that the checks catch it.

With taskset and 2 cores or more, the server runs on core 0 and the load client on core 1
(bench/harness/servers.py pinning(), as bench/run.py does); --no-pin turns that off (on a shared
machine pinning the server to one busy core halves its rate).

The server's RSS and RssAnon (/proc/PID/status) are sampled every --sample-s, and its CPU and the
client's. The server runs under bench/harness/memwatch.py, which records every --sample-s what the
interpreter holds (sys.getallocatedblocks()) and what malloc holds in use and free (glibc mallinfo2),
and after the churn answers SIGUSR2 with RSS before and after malloc_trim(0). The report gives RSS after
setup, after 20 s, at half time and at the end, the cycle rate, the load average, and the RSS slope in
MiB per 10 minutes by least squares over the second half of the run (after the warm-up, while bounded
structures such as the delivery journal's rings fill up) and over its last quarter, also per cycle.
JSON lands in bench/results/soak-<time>.json (or --out), with the server log and memwatch's
directory beside it.

--memwatch: at --dump-at seconds (default: a quarter, half, three quarters of the run) and at the end,
the server dumps live objects by type, the lengths of every dict/set/list/deque attribute of
aurora/socketio/engineio/aiohttp objects, pending tasks by where they wait and CPython's allocator
stats, each diffed against the previous dump; a per-connection structure that is never emptied grows
there with the cycles (--why MODULE.TYPE: what keeps a few such objects alive; --tracemalloc: the
allocation sites that grew, ten times slower, so use a low --rate). The dumps are summarised in the
report.

Measured (docs/performance.md#churn-soak-issue-17, 2026-12-02, a shared 2-core machine at load average
7-10): 65-77 cycles/s, the server being the bottleneck (~8 ms of CPU per cycle). Each closed Engine.IO
session used to stay in memory for the 25 s ping interval (~6.5 KiB; fixed in aurora/realtime/server.py);
after that fix RSS went 84.6 MiB (after setup) -> 97.1 (20 s) -> 117.0 MiB after 30 minutes and 139,001
cycles, with a slope of 0.70 MiB per 10 minutes over the second half and 0.37 over the last quarter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness.servers import pinning, raise_file_limit

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
CLIENT = BENCH / "soak_client.mjs"
MEMWATCH = BENCH / "harness" / "memwatch.py"
PASSWORD = "soak-password-123"
_background: set[asyncio.Task[None]] = set()


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and its parts (/proc/PID/status): RssAnon (the heap: what a leak grows), RssFile, RssShmem."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0])
    return fields


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def slope_per_10min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS (MiB) against time, in MiB per 10 minutes."""
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [kib / 1024 for _, kib in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return cov / var * 600


def rss_at(samples: list[tuple[float, int]], t: float) -> float:
    """RSS (MiB) of the first sample at or after t seconds (the last one if none)."""
    for at, kib in samples:
        if at >= t:
            return round(kib / 1024, 1)
    return round(samples[-1][1] / 1024, 1)


def server_env(work: Path, sqlite_synchronous: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_") and k not in ("DATABASE_URL", "PORT")}
    env.update({"PORT": "0", "AURORA_HOST": "127.0.0.1", "AURORA_DATA_DIR": str(work / "data"),
                "DATABASE_URL": f"sqlite:///{work}/soak.db", "AURORA_LOG_LEVEL": "INFO",
                "AURORA_ARGON2_TIME_COST": "1", "AURORA_ARGON2_MEMORY_KIB": "256",
                "AURORA_SECRET_KEY": "soak-secret-key-that-is-long-enough-0123456789",
                "PYTHONUNBUFFERED": "1",
                # One address registers every soak user and churns far faster than a person: the
                # abuse limits would refuse it (register answered rate_limited in `make bench`), and
                # random picks can give one user more than the default 10 sockets at once.
                "AURORA_RATE_LIMITS_ENABLED": "false", "AURORA_MAX_SOCKETS_PER_USER": "1000000",
                "AURORA_SQLITE_SYNCHRONOUS": sqlite_synchronous})
    return env


async def start_server(work: Path, prefix: list[str], memwatch: list[str], log_path: Path,
                       sqlite_synchronous: str) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, *memwatch, str(ROOT / "app.py"), cwd=work, env=server_env(work, sqlite_synchronous),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    assert proc.stderr is not None
    tail: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode(errors="replace")
        if not line:
            await proc.wait()
            raise RuntimeError("app.py exited before reporting its port:\n" + "".join(tail[-10:]))
        tail.append(line)
        if "running on port" in line:
            port = int(line.rsplit(" ", 1)[1])
            break
    _background.add(asyncio.create_task(_drain(proc.stderr, log_path, tail)))
    return proc, port


async def _drain(stream: asyncio.StreamReader, log_path: Path, head: list[str]) -> None:
    """The server's log into log_path; its errors and memwatch's lines also on stderr."""
    with log_path.open("w") as log:
        log.writelines(head)
        while line := await stream.readline():
            text = line.decode(errors="replace")
            log.write(text)
            if " ERROR " in text or "memwatch:" in text:
                print("server:", text.rstrip(), file=sys.stderr, flush=True)


async def setup_users(url: str, count: int) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        users = []
        for i in range(count):
            name = f"soak{i}_{random.randrange(1 << 30)}"
            async with http.post(f"{url}/api/auth/register", json={"username": name, "password": PASSWORD}) as r:
                body = await r.json()
                assert r.status == 201, body
                users.append({"id": body["user"]["id"], "token": body["token"]})
        for a, b in zip(users[::2], users[1::2], strict=False):
            async with http.post(f"{url}/api/conversations", json={"user_ids": [b["id"]]},
                                 headers={"Authorization": f"Bearer {a['token']}"}) as r:
                body = await r.json()
                assert r.status in (200, 201), body
            a["conversation"] = b["conversation"] = body["conversation"]["id"]
        return [u for u in users if "conversation" in u]


async def malloc_trim(proc: asyncio.subprocess.Process, path: Path, within: float = 15) -> dict[str, Any]:
    """After the churn: memwatch's SIGUSR2 (RSS, then glibc malloc_trim(0), then RSS again); {} if it does not
    answer in time."""
    proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        with contextlib.suppress(OSError, ValueError):
            return read_json(path)
    return {}


def read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


async def stop(proc: asyncio.subprocess.Process, within: float = 30) -> int:
    """SIGTERM by PID, SIGKILL if it has not ended within `within` seconds."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), within)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return proc.returncode if proc.returncode is not None else -1


def summarise_dumps(directory: Path) -> list[dict[str, Any]]:
    """Per dump: when, how many objects, and the containers and types that changed the most."""
    out = []
    for path in sorted(directory.glob("dump-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        dump = json.loads(path.read_text())
        entry = {"n": dump["n"], "label": dump["label"], "objects": dump["objects"],
                 "containers_delta": dict(list(dump["containers_delta"].items())[:12]),
                 "types_delta": dict(list(dump["types_delta"].items())[:12])}
        if "tracemalloc_delta" in dump:
            entry["tracemalloc_total_kib"] = dump["tracemalloc_total_kib"]
            entry["tracemalloc_top"] = [{"kib": d["size_kib_diff"], "count": d["count_diff"],
                                         "at": d["traceback"][-2:]} for d in dump["tracemalloc_delta"][:5]]
        out.append(entry)
    return out


async def run(args: argparse.Namespace) -> int:
    node = shutil.which("node")
    if node is None or not (BENCH / "node_modules" / "socket.io-client").is_dir():
        print("soak: needs node and bench/node_modules (make bench/node_modules/.installed-stamp, or make bench)",
              file=sys.stderr)
        return 2
    raise_file_limit(4 * args.workers + 1024)
    pins = pinning(not args.no_pin)
    # Absolute: the server (memwatch writes beside the result) runs in a temporary directory.
    out: Path = (args.out or RESULTS / f"soak-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    dump_dir = out.with_name(f"{out.stem}-memwatch")  # dumps and heap.jsonl
    server_log = out.with_name(f"{out.stem}-server.log")
    # Always under memwatch: its heap sampler (sys.getallocatedblocks(), a cheap read every --sample-s)
    # tells Python-level retention from RSS; dumps only with --memwatch.
    memwatch = [str(MEMWATCH), "--out", str(dump_dir), f"--heap-every={args.sample_s}"]
    if args.memwatch:
        memwatch += ["--dump-at-exit", *(["--tracemalloc"] if args.tracemalloc else []),
                     *(f"--why={name}" for name in args.why)]
    memwatch.append("--")
    dump_at = sorted(args.dump_at if args.dump_at else [args.duration * f for f in (0.25, 0.5, 0.75)])
    load_start = load_average()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aurora-soak-") as tmp:
        work = Path(tmp)
        proc, port = await start_server(work, pins.server, memwatch, server_log, args.sqlite_synchronous)
        url = f"http://127.0.0.1:{port}"
        client: asyncio.subprocess.Process | None = None
        progress: list[dict[str, Any]] = []
        try:
            users = await setup_users(url, args.users)
            setup = {"url": url, "users": users, "workers": args.workers, "duration_s": args.duration,
                     "rate": args.rate, "timeout_s": args.timeout_s, "report_every_s": args.sample_s,
                     "fault_every": args.fault_every}
            (work / "setup.json").write_text(json.dumps(setup))
            result_path = work / "result.json"
            memory = memory_kib(proc.pid)
            samples: list[tuple[float, int]] = [(0.0, memory["VmRSS"])]
            anon: list[tuple[float, int]] = [(0.0, memory["RssAnon"])]
            print(f"soak: {len(users)} users, {args.workers} loops, rate {args.rate or 'max'}, "
                  f"{args.duration:.0f} s, {pins.note}; server pid {proc.pid}, rss {samples[0][1] / 1024:.1f} MiB, "
                  f"load average {load_start}", flush=True)
            client = await asyncio.create_subprocess_exec(
                *pins.loadgen, node, str(CLIENT), str(work / "setup.json"), str(result_path),
                cwd=BENCH, stdout=asyncio.subprocess.PIPE, start_new_session=True)
            started, started_wall = time.monotonic(), time.time()
            cpu0 = (cpu_s(proc.pid), cpu_s(client.pid))
            assert client.stdout is not None

            async def read_progress() -> None:
                assert client is not None and client.stdout is not None
                while line := await client.stdout.readline():
                    with contextlib.suppress(ValueError):
                        progress.append(json.loads(line))

            async def sampler() -> None:
                assert client is not None
                pending_dumps = list(dump_at) if args.memwatch else []
                last_t, last_cpu = 0.0, cpu0
                shown: dict[str, Any] = {"t": 0.0, "total": 0}  # the progress line printed last
                while client.returncode is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(client.wait()), args.sample_s)
                    if client.returncode is not None:
                        break
                    t = time.monotonic() - started
                    if proc.returncode is not None:
                        failures.append(f"the server exited ({proc.returncode}) at t={t:.0f}s")
                        with contextlib.suppress(ProcessLookupError):
                            client.terminate()
                        break
                    memory = memory_kib(proc.pid)
                    samples.append((t, memory["VmRSS"]))
                    anon.append((t, memory["RssAnon"]))
                    cpu = (cpu_s(proc.pid), cpu_s(client.pid))
                    server_util, client_util = ((cpu[i] - last_cpu[i]) / (t - last_t) for i in (0, 1))
                    last_t, last_cpu = t, cpu
                    last = progress[-1] if progress else {"t": 0.0, "total": 0}
                    rate = ((last["total"] - shown["total"]) / (last["t"] - shown["t"])
                            if last["t"] > shown["t"] else 0.0)
                    shown.update(last)
                    print(f"t={t:6.0f}s rss={samples[-1][1] / 1024:7.1f} MiB cycles={last['total']} "
                          f"cycles/s={rate:6.1f} failed={sum(p['failed'] for p in progress)} "
                          f"p50={last.get('p50_ms')}ms p99={last.get('p99_ms')}ms "
                          f"cpu server={server_util:.2f} client={client_util:.2f} load={load_average()[0]}",
                          flush=True)
                    while pending_dumps and t >= pending_dumps[0]:
                        pending_dumps.pop(0)
                        proc.send_signal(signal.SIGUSR1)

            reader = asyncio.create_task(read_progress())
            try:
                await asyncio.wait_for(sampler(), args.duration + 4 * args.timeout_s + 60)
            except TimeoutError:  # the client stops itself before this; kill it if it did not
                failures.append("the load client did not end in time")
                with contextlib.suppress(ProcessLookupError):
                    client.kill()
            await client.wait()
            await reader
            elapsed = time.monotonic() - started
            server_cpu = cpu_s(proc.pid)
            memory = memory_kib(proc.pid)
            samples.append((elapsed, memory["VmRSS"]))
            anon.append((elapsed, memory["RssAnon"]))
            trimmed = await malloc_trim(proc, dump_dir / "trim.json")
            if client.returncode not in (0, 1) or not result_path.exists():
                failures.append(f"the load client exited {client.returncode} without a result")
                outcome: dict[str, Any] = {"cycles": sum(p["cycles"] for p in progress),
                                           "failed": sum(p["failed"] for p in progress), "errors": []}
            else:
                outcome = read_json(result_path)
        finally:
            if client is not None and client.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    client.kill()
                await client.wait()
            server_rc = await stop(proc)
    if server_rc not in (0, -signal.SIGTERM):
        failures.append(f"the server exited {server_rc} on SIGTERM")
    return report(args, Run(elapsed=elapsed, started_wall=started_wall, samples=samples, anon=anon,
                            progress=progress, outcome=outcome, failures=failures, users=len(users), pinning=pins.note,
                            server_cpu_s=server_cpu - cpu0[0], load_start=load_start, trim=trimmed),
                  out, dump_dir, server_log)


@dataclass
class Run:
    """What a soak measured, for report()."""

    elapsed: float
    started_wall: float
    samples: list[tuple[float, int]]  # (seconds since the churn started, server RSS KiB)
    anon: list[tuple[float, int]]  # the same for RssAnon
    progress: list[dict[str, Any]]  # the load client's lines
    outcome: dict[str, Any]  # the load client's result
    failures: list[str]  # the orchestrator's own (server or client exited badly)
    users: int
    pinning: str
    server_cpu_s: float
    load_start: list[float]
    trim: dict[str, Any]  # memwatch's trim.json: RSS before and after malloc_trim(0), pymalloc stats


def report(args: argparse.Namespace, measured: Run, out: Path, dump_dir: Path, server_log: Path) -> int:
    """Figures, the JSON file, the summary lines; 0 when every cycle passed and nothing failed, else 1."""
    elapsed, samples, progress = measured.elapsed, measured.samples, measured.progress
    outcome, failures = measured.outcome, measured.failures
    started_wall, load_start = measured.started_wall, measured.load_start
    half, quarter = elapsed / 2, elapsed * 3 / 4
    heap_rows = [{**h, "t": h["wall"] - started_wall} for h in read_jsonl(dump_dir / "heap.jsonl")]
    heap_rows = [h for h in heap_rows if 0 <= h["t"] <= elapsed]
    heap = [(h["t"], h["blocks"]) for h in heap_rows]
    in_use = [(h["t"], h["malloc_in_use"] // 1024) for h in heap_rows if "malloc_in_use" in h]  # KiB
    second_half_cycles = sum(p["cycles"] for p in progress if p["t"] > half)
    second_half_rate = second_half_cycles / max(1e-9, elapsed - half)
    slope_half = slope_per_10min([s for s in samples if s[0] >= half])
    blocks_slope = slope_per_10min([(t, b * 1024) for t, b in heap if t >= half])  # blocks per 10 min
    result: dict[str, Any] = {
        "duration_s": round(elapsed, 1), "sqlite_synchronous": args.sqlite_synchronous,
        "workers": args.workers, "users": measured.users, "rate_cap": args.rate,
        "pinning": measured.pinning, "cycles": outcome["cycles"], "failed": outcome["failed"],
        "cycles_per_s": round(outcome["cycles"] / elapsed, 1),
        "cycles_per_s_second_half": round(second_half_rate, 1), "cycle_ms": outcome.get("cycle_ms"),
        # Cores busy on average (1.0 = one core all the time): which side is the bottleneck.
        "server_cpu_util": round(measured.server_cpu_s / elapsed, 2),
        "client_cpu_util": round(outcome.get("cpu_s", float("nan")) / elapsed, 2),
        "rss_start_mib": round(samples[0][1] / 1024, 1), "rss_20s_mib": rss_at(samples, 20),
        "rss_half_mib": rss_at(samples, half), "rss_end_mib": round(samples[-1][1] / 1024, 1),
        "rss_max_mib": round(max(kib for _, kib in samples) / 1024, 1),
        "rss_slope_mib_per_10min_second_half": round(slope_half, 2),
        "rss_slope_mib_per_10min_last_quarter": round(slope_per_10min([s for s in samples if s[0] >= quarter]), 2),
        # The same slope per churn cycle: what each connection would leave behind if it were all a leak.
        "rss_anon_start_mib": round(measured.anon[0][1] / 1024, 1),
        "rss_anon_end_mib": round(measured.anon[-1][1] / 1024, 1),
        "rss_anon_slope_mib_per_10min_second_half": round(slope_per_10min([a for a in measured.anon if a[0] >= half]),
                                                          2),
        "rss_bytes_per_cycle_second_half": round(slope_half * 2**20 / 600 / second_half_rate, 1)
        if second_half_rate else None,
        # After the churn, glibc malloc_trim(0): what is left is live memory; what went was heap the
        # allocator held free (fragmentation), not retained objects.
        "rss_after_malloc_trim_mib": round(measured.trim["after"]["VmRSS"] / 1024, 1) if measured.trim else None,
        "pymalloc_end": {k: measured.trim["pymalloc"].get(k) for k in (
            "arenas_allocated_current", "arenas_highwater_mark", "bytes_in_allocated_blocks",
            "bytes_in_available_blocks")} if measured.trim else None,
        "heap_blocks_half": next((b for t, b in heap if t >= half), None),
        "heap_blocks_end": heap[-1][1] if heap else None,
        "heap_blocks_slope_per_10min_second_half": round(blocks_slope) if heap else None,
        # glibc mallinfo2: bytes malloc has handed out and not got back (C libraries, larger Python objects).
        "malloc_in_use_half_mib": rss_at(in_use, half) if in_use else None,
        "malloc_in_use_end_mib": round(in_use[-1][1] / 1024, 1) if in_use else None,
        "malloc_in_use_slope_mib_per_10min_second_half": round(slope_per_10min([u for u in in_use if u[0] >= half]), 2)
        if in_use else None,
        "malloc_free_end_mib": round(heap_rows[-1]["malloc_free"] / 2**20, 1) if in_use else None,
        "load_average_start": load_start, "load_average_end": load_average(),
        "errors": outcome.get("errors", [])[:10] + failures,
        "server_log": str(server_log), "memwatch_dir": str(dump_dir),
    }
    if args.memwatch:
        result["memwatch"] = summarise_dumps(dump_dir)
    result["samples"] = [(round(t, 1), kib) for t, kib in samples]
    result["heap"] = [{**h, "t": round(h["t"], 1)} for h in heap_rows]
    result["anon_samples"] = [(round(t, 1), kib) for t, kib in measured.anon]
    result["progress"] = progress
    out.write_text(json.dumps(result, indent=1))
    series = ("samples", "anon_samples", "heap", "progress", "memwatch")
    print(json.dumps({k: v for k, v in result.items() if k not in series}))
    for dump in result.get("memwatch", []):
        print(f"memwatch dump {dump['n']} ({dump['label']}): {dump['objects']} objects; "
              f"containers changed: {dump['containers_delta']}")
    print(f"soak: {result['cycles']} cycles in {elapsed:.0f} s ({result['cycles_per_s']}/s), "
          f"{result['failed']} failed; "
          f"RSS {result['rss_start_mib']} -> {result['rss_20s_mib']} (20 s) -> {result['rss_half_mib']} (half) -> "
          f"{result['rss_end_mib']} MiB; slope over the second half {result['rss_slope_mib_per_10min_second_half']} "
          f"MiB/10 min ({result['rss_bytes_per_cycle_second_half']} B/cycle), last quarter "
          f"{result['rss_slope_mib_per_10min_last_quarter']} MiB/10 min; RssAnon {result['rss_anon_start_mib']} -> "
          f"{result['rss_anon_end_mib']} MiB, second half {result['rss_anon_slope_mib_per_10min_second_half']} "
          f"MiB/10 min; after malloc_trim {result['rss_after_malloc_trim_mib']} MiB; Python heap blocks "
          f"{result['heap_blocks_half']} -> {result['heap_blocks_end']}, malloc in use "
          f"{result['malloc_in_use_half_mib']} -> {result['malloc_in_use_end_mib']} MiB; "
          f"load average {result['load_average_end']}")
    print(f"results: {out}")
    ok = outcome["failed"] == 0 and outcome["cycles"] > 0 and not failures
    if not ok:
        print(f"FAIL: {outcome['failed']} failed cycles; {failures}", file=sys.stderr)
    return 0 if ok else 1


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            rows.append(json.loads(line))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3600, help="seconds of churn (default 3600)")
    parser.add_argument("--workers", type=int, default=64, help="concurrent connect-send-sync-disconnect loops")
    parser.add_argument("--rate", type=float, default=0, help="cap on cycles per second (default 0: no cap)")
    parser.add_argument("--users", type=int, default=200, help="accounts (in pairs, one DM per pair)")
    parser.add_argument("--sample-s", type=float, help="seconds between RSS samples (default: a 24th of the "
                                                         "duration, at most 10)")
    parser.add_argument("--timeout-s", type=float, help="connect and ack timeout of a cycle (default 10; 60 with "
                                                          "--tracemalloc, whose dumps stall the server longer)")
    parser.add_argument("--out", type=Path, help="result JSON (default bench/results/soak-<time>.json); the "
                                                 "server log and memwatch directory go beside it")
    parser.add_argument("--fault-every", type=int, default=0, metavar="N",
                        help="self-check of the checks: every Nth cycle of a loop syncs from the seq it was acked "
                             "with, so the sync lacks its message and the cycle must count as failed")
    parser.add_argument("--sqlite-synchronous", choices=["normal", "full"], default="full",
                        help="the server's sqlite_synchronous (default full, the server's own default: every commit "
                             "waits for an fsync; normal takes the disk out of the churn rate)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and load client to cores")
    parser.add_argument("--memwatch", action="store_true", help="run the server under bench/harness/memwatch.py")
    parser.add_argument("--tracemalloc", action="store_true", help="with --memwatch: trace allocation sites too")
    parser.add_argument("--why", action="append", default=[], metavar="MODULE.TYPE",
                        help="with --memwatch: what keeps a few objects of this type alive (repeatable)")
    parser.add_argument("--dump-at", type=float, nargs="*", help="seconds at which memwatch dumps (and at exit)")
    args = parser.parse_args()
    if args.timeout_s is None:
        args.timeout_s = 60.0 if args.tracemalloc else 10.0
    if args.sample_s is None:
        args.sample_s = max(1.0, min(10.0, args.duration / 24))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
