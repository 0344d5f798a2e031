"""What a cluster costs each process (issue 16, target 4): S1 traffic through process A only, measured as

  single  A alone, no Redis (the reference)
  redis1  A alone with Redis (N = 1): what the message queue costs A for its own traffic
  redis2  A and B with Redis (N = 2); B has one idle /chat client and no member in any busy room:
          what the other process's traffic costs B ("foreign" traffic), and A again
  span    A and B with Redis (N = 2), every receiver with a second device on B: every room spans both
          processes, so A publishes every emit (no room is alone on A, see room_handshake.py)

    .venv/bin/python bench/cluster_cost.py --duration 5 --runs 2 [--out results.json]

Server CPU per acked message comes from /proc (user + system time of each Aurora process over the
run's whole traffic, warm-up included, divided by the messages acked), so it is a CPU *time*, less
bent by a loaded machine than a share of a core or a latency. The modes run in turn, round after
round (single, redis1, redis2, single, ...), each on a fresh schema and Redis prefix; medians are
printed. A and the load generator are pinned to cores 0 and 1 when taskset is there; B is not pinned
(2 cores: N = 4 would put two processes on each core, so it is not run here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import socketio

from bench.harness import charts
from bench.harness.populate import aurora_population
from bench.harness.scenarios import loadgen_params, population, sizes_for
from bench.harness.servers import (
    ROOT,
    ServerProcess,
    aurora_env,
    free_port,
    pinning,
    postgres_admin_url,
    postgres_schema,
)
from bench.run import run_loadgen

MODES = ("single", "redis1", "redis2", "span")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server(name: str, workdir: Path, database_url: str, redis: dict[str, str], prefix: list[str],
            root: Path = ROOT) -> ServerProcess:
    port = free_port()
    env = {**aurora_env(workdir), **redis}
    argv = [*prefix, sys.executable, str(root / "app.py"), "--host", "127.0.0.1", "--port", str(port),
            "--database-url", database_url]
    server = ServerProcess(name, argv, env, workdir / f"{name}.log", port, health_path="/health")
    server.cwd = root
    return server


async def _idle_client(url: str) -> socketio.AsyncClient:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        account = {"username": f"idle{uuid.uuid4().hex[:8]}", "password": "bench password 0123"}
        async with session.post(url + "/api/auth/register", json=account) as r:
            token = (await r.json())["token"]
    return await _device(url, token)


async def _device(url: str, token: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient()
    await client.connect(url, namespaces=["/chat"], transports=["websocket"], auth={"token": token})
    return client


async def _devices(url: str, tokens: list[str]) -> list[socketio.AsyncClient]:
    return list(await asyncio.gather(*(_device(url, token) for token in tokens)))


def _receiver_tokens(people: dict[str, Any]) -> list[str]:
    by_index = [client["auth"]["token"] for client in people["clients"]]
    members = {m for c in people["conversations"] for m in c["members"] if m != c["sender"]}
    return [by_index[m] for m in sorted(members)]


def run_mode(mode: str, params: dict[str, Any], workroot: Path, pin_a: list[str], pin_lg: list[str],
             root: Path = ROOT) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"cluster-{mode}-", dir=workroot))
    redis = {} if mode == "single" else {
        "AURORA_REDIS_URL": os.environ.get("AURORA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "AURORA_REDIS_PREFIX": f"bench{uuid.uuid4().hex[:10]}"}
    with postgres_schema(postgres_admin_url()) as database_url:
        a = _server("aurora-a", workdir, database_url, redis, pin_a, root)
        servers = [a]
        if mode in ("redis2", "span"):
            servers.append(_server("aurora-b", workdir, database_url, redis, [], root))
        loop = asyncio.new_event_loop()
        idle = None
        devices: list[socketio.AsyncClient] = []
        try:
            for server in servers:
                server.start()
            if mode == "redis2":
                idle = loop.run_until_complete(_idle_client(servers[1].url))
            plan = population("s1", params)
            people = aurora_population(a.url, plan)
            if mode == "span":
                devices = loop.run_until_complete(_devices(servers[1].url, _receiver_tokens(people)))
            lg = loadgen_params("s1", params, None)
            setup = {"scenario": "s1", "target": "aurora-postgresql", "url": a.url, "namespace": "/chat",
                     "server_pid": a.pid, "clk_tck": os.sysconf("SC_CLK_TCK"), "health_url": a.url + "/health",
                     "report_acked": True, "params": lg, "clients": people["clients"],
                     "conversations": people["conversations"]}
            (workdir / "setup.json").write_text(json.dumps(setup))
            cpu0 = {s.name: _cpu_s(s.pid) for s in servers}
            pin = type("Pin", (), {"loadgen": pin_lg})()
            # The idle client's loop must keep answering pings while the load generator runs.
            outcome_box: dict[str, Any] = {}

            async def wait_loadgen() -> None:
                outcome_box["o"] = await asyncio.to_thread(
                    run_loadgen, workdir / "setup.json", workdir / "result.json", pin, lg["hard_timeout_s"],
                    workdir / "loadgen.log")
            loop.run_until_complete(wait_loadgen())
            outcome = outcome_box["o"]
            cpu1 = {s.name: _cpu_s(s.pid) for s in servers}
        finally:
            for client in [*devices, *([idle] if idle is not None else [])]:
                loop.run_until_complete(client.disconnect())
            loop.close()
            for server in servers:
                server.stop()
    metrics = outcome.get("metrics") or {}
    total = int(metrics.get("total_acked") or 0)
    out = {"mode": mode, "ok": bool(outcome.get("ok")), "errors": (outcome.get("errors") or [])[:5],
           "acked_per_s": metrics.get("acked_per_s"), "total_acked": total,
           "a_cpu_us_per_ack_window": metrics.get("server_cpu_us_per_ack"),
           "a_cpu_us_per_ack": (cpu1["aurora-a"] - cpu0["aurora-a"]) * 1e6 / total if total else None}
    if mode == "span":
        out["second_devices_on_b"] = len(devices)
    if mode == "redis2":
        out["b_cpu_us_per_foreign_msg"] = (cpu1["aurora-b"] - cpu0["aurora-b"]) * 1e6 / total if total else None
        out["b_cpu_s"] = cpu1["aurora-b"] - cpu0["aurora-b"]
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--pairs", type=int, default=50)
    p.add_argument("--out", type=Path)
    p.add_argument("--aurora-root", type=Path, default=ROOT, help="run Aurora from this checkout")
    p.add_argument("--charts", type=Path, metavar="DIR", help="also draw cluster_cost.svg into DIR")
    args = p.parse_args(argv)
    params = sizes_for("full")["s1"]
    params.update(duration_s=args.duration, warmup_s=args.warmup, pairs=args.pairs)
    pin = pinning(True)
    workroot = Path(tempfile.mkdtemp(prefix="aurora-cluster-cost-"))
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    results = []
    for run in range(1, args.runs + 1):
        for mode in MODES:
            t0 = time.monotonic()
            result = run_mode(mode, params, workroot, pin.server, pin.loadgen, args.aurora_root.resolve())
            result["run"] = run
            results.append(result)
            print(f"[run {run}] {mode}: {json.dumps({k: v for k, v in result.items() if k != 'errors'})} "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)
    load1 = Path("/proc/loadavg").read_text().split()[:3]

    def med(mode: str, key: str) -> float | None:
        values = [r[key] for r in results if r["mode"] == mode and r.get(key) is not None]
        return statistics.median(values) if values else None

    single = med("single", "a_cpu_us_per_ack")
    summary = {
        "a_cpu_us_per_ack": {m: med(m, "a_cpu_us_per_ack") for m in MODES},
        "acked_per_s": {m: med(m, "acked_per_s") for m in MODES},
        "b_cpu_us_per_foreign_msg": med("redis2", "b_cpu_us_per_foreign_msg"),
        "redis_own_cost_ratio": (med("redis1", "a_cpu_us_per_ack") or 0) / single if single else None,
        "span_cost_ratio": (med("span", "a_cpu_us_per_ack") or 0) / single if single else None,
        "loadavg": [load0, load1], "pinning": pin.note + "; B not pinned", "aurora_root": str(args.aurora_root),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "results": results}, indent=1))
    if args.charts:
        print(f"chart: {charts.cluster_chart(summary, args.charts)}")
    subprocess.run(["rm", "-rf", str(workroot)], check=False)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
