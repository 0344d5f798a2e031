"""Churn soak: users connect, send, sync and disconnect over and over; does the server's memory level off?

    .venv/bin/python bench/soak.py --duration 3600          # the hour of issue 17
    .venv/bin/python bench/soak.py --duration 60            # short (make bench runs this)

Starts `python app.py` on a fresh SQLite database (port 0: the server reports its port), registers
--users accounts in direct conversations, then --workers concurrent loops each: connect a /chat
socket, send one message, sync, disconnect. The server's RSS (/proc/PID/status VmRSS) is sampled
every --sample-s; the report gives RSS at the start and end, the cycle rate, and the RSS slope per
10 minutes over the second half of the run (after warm-up), by least squares. Exit 1 if a cycle
failed (an unacknowledged send, a sync error). JSON lands in bench/results/soak-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import socketio

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PASSWORD = "soak-password-123"
_background: set[asyncio.Task[None]] = set()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


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


async def start_server(work: Path) -> tuple[asyncio.subprocess.Process, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    env.update({"PORT": "0", "AURORA_HOST": "127.0.0.1", "AURORA_DATA_DIR": str(work / "data"),
                "DATABASE_URL": f"sqlite:///{work}/soak.db", "AURORA_LOG_LEVEL": "INFO",
                "AURORA_ARGON2_TIME_COST": "1", "AURORA_ARGON2_MEMORY_KIB": "256",
                "AURORA_SECRET_KEY": "soak-secret-key-that-is-long-enough-0123456789",
                "PYTHONUNBUFFERED": "1"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "app.py"), cwd=work, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        if not line:
            raise RuntimeError("app.py exited before reporting its port")
        if "running on port" in line:
            port = int(line.rsplit(" ", 1)[1])
            break
    _background.add(asyncio.create_task(_drain(proc.stderr)))
    return proc, port


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


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
                conversation = (await r.json())["conversation"]
            a["conversation"] = b["conversation"] = conversation["id"]
        return [u for u in users if "conversation" in u]


async def cycle(url: str, user: dict[str, Any], stats: dict[str, int]) -> None:
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(url, namespaces=["/chat"], transports=["websocket"],
                             auth={"token": user["token"]}, wait_timeout=10)
        ack = await client.call("send_message", {"conversation_id": user["conversation"], "body": "soak"},
                                namespace="/chat", timeout=10)
        if not ack.get("ok"):
            stats["failed"] += 1
            return
        seq = ack["message"]["seq"]
        synced = await client.call("sync", {"cursors": {str(user["conversation"]): max(0, seq - 1)}},
                                   namespace="/chat", timeout=10)
        if not synced.get("ok"):
            stats["failed"] += 1
            return
        stats["cycles"] += 1
    except Exception:
        stats["failed"] += 1
    finally:
        await client.disconnect()


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="aurora-soak-") as tmp:
        proc, port = await start_server(Path(tmp))
        url = f"http://127.0.0.1:{port}"
        try:
            users = await setup_users(url, args.users)
            stats = {"cycles": 0, "failed": 0}
            started = time.monotonic()
            deadline = started + args.duration
            samples: list[tuple[float, int]] = [(0.0, rss_kib(proc.pid))]

            async def worker() -> None:
                while time.monotonic() < deadline:
                    await cycle(url, random.choice(users), stats)

            async def sampler() -> None:
                while time.monotonic() < deadline:
                    await asyncio.sleep(args.sample_s)
                    samples.append((time.monotonic() - started, rss_kib(proc.pid)))
                    print(f"t={samples[-1][0]:6.0f}s rss={samples[-1][1] / 1024:7.1f} MiB "
                          f"cycles={stats['cycles']} failed={stats['failed']}", flush=True)

            await asyncio.gather(sampler(), *(worker() for _ in range(args.workers)))
            elapsed = time.monotonic() - started
        finally:
            proc.terminate()
            await proc.wait()
    second_half = [s for s in samples if s[0] >= elapsed / 2]
    result = {
        "duration_s": round(elapsed, 1), "workers": args.workers, "users": len(users),
        "cycles": stats["cycles"], "failed": stats["failed"], "cycles_per_s": round(stats["cycles"] / elapsed, 1),
        "rss_start_mib": round(samples[0][1] / 1024, 1), "rss_end_mib": round(samples[-1][1] / 1024, 1),
        "rss_slope_mib_per_10min_second_half": round(slope_per_10min(second_half), 2),
        "samples": [(round(t, 1), kib) for t, kib in samples],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"soak-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    print(f"results: {out}")
    return 1 if stats["failed"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3600, help="seconds of churn (default 3600)")
    parser.add_argument("--workers", type=int, default=32, help="concurrent connect-send-sync-disconnect loops")
    parser.add_argument("--users", type=int, default=40, help="accounts (in pairs, one DM per pair)")
    parser.add_argument("--sample-s", type=float, default=10, help="seconds between RSS samples")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
