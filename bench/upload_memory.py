"""Memory of a big upload: the server's RSS growth while it receives a 100 MB file.

    .venv/bin/python bench/upload_memory.py [--mib 100] [--runs 1] [--json FILE]

Each run is done twice: a raw body (?filename=) and a multipart body (field `file`).

Starts `python app.py` (SQLite in a temporary directory, max_upload_bytes raised above the file,
no quota), streams a file of incompressible bytes to POST /api/uploads from a generator (neither
side ever holds it whole), and samples the server's RSS from /proc every 10 ms. Reports the
baseline, the peak and the growth (target: < 20 MB), the upload time and throughput, and checks
the answer (size, sha256) and the stored blob. The peak comes from the samples and, where the
kernel allows resetting it (/proc/PID/clear_refs, as root), from VmHWM as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1 << 20
TARGET_GROWTH_MIB = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


async def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not become healthy")


async def _body(total: int, digest: Any) -> AsyncIterator[bytes]:
    block = os.urandom(CHUNK)  # incompressible; varied per chunk so no two chunks are equal
    sent = 0
    index = 0
    while sent < total:
        chunk = (index.to_bytes(8, "big") + block)[: min(CHUNK, total - sent)]
        digest.update(chunk)
        sent += len(chunk)
        index += 1
        yield chunk


def _request_body(total: int, digest: Any, multipart: bool) -> tuple[Any, dict[str, str]]:
    if not multipart:
        return _body(total, digest), {"Content-Type": "application/octet-stream"}
    writer = aiohttp.MultipartWriter("form-data")
    part = writer.append(_body(total, digest), {"Content-Type": "application/octet-stream"})
    part.set_content_disposition("form-data", name="file", filename="big.bin")
    return writer, {}


async def one_run(mib: int, multipart: bool = False) -> dict[str, Any]:
    total = mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="aurora-upload-bench-") as work:
        port = _free_port()
        env = {
            **os.environ, "AURORA_PORT": str(port), "AURORA_HOST": "127.0.0.1",
            "AURORA_DATABASE_URL": f"sqlite:///{work}/aurora.db", "AURORA_DATA_DIR": f"{work}/data",
            "AURORA_SECRET_KEY": "aurora-bench-secret-key-0123456789-abcdefghij",
            "AURORA_ARGON2_MEMORY_KIB": "256", "AURORA_ARGON2_TIME_COST": "1", "AURORA_LOG_LEVEL": "WARNING",
            "AURORA_MAX_UPLOAD_BYTES": str(total + CHUNK), "AURORA_UPLOAD_QUOTA_BYTES": "0",
        }
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=work, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            await _wait_healthy(url, process)
            async with aiohttp.ClientSession() as session:
                async with session.post(url + "/api/auth/register",
                                        json={"username": "bench_uploader", "password": "correct horse battery"}) as r:
                    token = (await r.json())["token"]
                # A small upload first: imports, executors and the first database work are warm.
                async with session.post(url + "/api/uploads?filename=warm.bin", data=b"warm" * 1024,
                                        headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 201, await r.text()
                await asyncio.sleep(0.5)
                baseline = _status_kib(process.pid, "VmRSS")
                hwm_reset = _reset_peak(process.pid)
                peak = baseline
                digest = hashlib.sha256()
                done = asyncio.Event()

                async def sample() -> None:
                    nonlocal peak
                    while not done.is_set():
                        peak = max(peak, _status_kib(process.pid, "VmRSS"))
                        await asyncio.sleep(0.01)

                sampler = asyncio.create_task(sample())
                started = time.monotonic()
                body, headers = _request_body(total, digest, multipart)
                async with session.post(url + "/api/uploads?filename=big.bin", data=body,
                                        headers={"Authorization": f"Bearer {token}", **headers}) as r:
                    answer = await r.json()
                    status = r.status
                elapsed = time.monotonic() - started
                done.set()
                await sampler
                hwm = _status_kib(process.pid, "VmHWM") if hwm_reset else None
                after = _status_kib(process.pid, "VmRSS")
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if status != 201:
            raise RuntimeError(f"the upload answered {status}: {answer}")
        upload = answer["upload"]
        assert upload["size"] == total and upload["sha256"] == digest.hexdigest(), upload
        peak_kib = max(peak, hwm or 0)
        return {
            "mib": mib, "body": "multipart" if multipart else "raw", "seconds": round(elapsed, 2),
            "mib_per_s": round(mib / elapsed, 1),
            "rss_baseline_mib": round(baseline / 1024, 1), "rss_peak_mib": round(peak_kib / 1024, 1),
            "rss_after_mib": round(after / 1024, 1), "growth_mib": round((peak_kib - baseline) / 1024, 1),
            "peak_from": "VmHWM + samples" if hwm_reset else "samples every 10 ms",
            "target_growth_mib": TARGET_GROWTH_MIB,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [asyncio.run(one_run(args.mib, multipart)) for multipart in (False, True) for _ in range(args.runs)]
    print(f"{'run':>3} {'body':>9} {'MiB':>5} {'s':>6} {'MiB/s':>6} {'RSS base':>9} {'peak':>7} {'growth':>7}"
          f"  target < {TARGET_GROWTH_MIB} MiB")
    for i, r in enumerate(results, 1):
        verdict = "ok" if r["growth_mib"] < TARGET_GROWTH_MIB else "OVER"
        print(f"{i:>3} {r['body']:>9} {r['mib']:>5} {r['seconds']:>6} {r['mib_per_s']:>6} {r['rss_baseline_mib']:>9} "
              f"{r['rss_peak_mib']:>7} {r['growth_mib']:>7}  {verdict} ({r['peak_from']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["growth_mib"] < TARGET_GROWTH_MIB for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
