"""Storms of connect → sync → disconnect cycles against one Aurora server: cycles/s and server CPU per cycle,
optionally with py-spy (the profile behind docs/performance.md "S6 after the one-call sync").

    .venv/bin/python bench/cycle_profile.py                            # 200 clients, 5 storms, SQLite
    .venv/bin/python bench/cycle_profile.py --aurora-root /tmp/before  # the same against another checkout
    .venv/bin/python bench/cycle_profile.py --py-spy /tmp/cycles.raw   # + py-spy raw stacks (250 Hz, GIL)

Registers --clients users in groups of 10 (one group conversation each), then --storms times: every
client at once connects a /chat socket (python-socketio AsyncClient, websocket), syncs its
conversation from cursor 0 (the answer must hold `messages`), and disconnects. Server CPU is read from
/proc over the storms only. Figures from a loaded machine compare only within one invocation or
alternating invocations.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import socketio

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.harness.servers import make_server, pinning  # noqa: E402


def _server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _storms(url: str, pid: int, clients: int, storms: int, spy_out: Path | None) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        tokens, ids = [], []
        for n in range(clients):
            async with session.post(url + "/api/auth/register",
                                    json={"username": f"cycle_user{n}", "password": "bench password 0123"}) as r:
                body = await r.json()
                tokens.append(body["token"])
                ids.append(body["user"]["id"])
        conversations = []
        for start in range(0, clients, 10):
            async with session.post(url + "/api/conversations",
                                    json={"user_ids": ids[start + 1:start + 10], "title": f"g{start}"},
                                    headers={"Authorization": f"Bearer {tokens[start]}"}) as r:
                conversations.append((await r.json())["conversation"]["id"])

    async def cycle(n: int) -> None:
        client = socketio.AsyncClient()
        await client.connect(url, namespaces=["/chat"], transports=["websocket"], auth={"token": tokens[n]},
                             wait_timeout=300)
        answer = await client.call("sync", {"cursors": {str(conversations[n // 10]): 0}}, namespace="/chat",
                                   timeout=300)
        assert "messages" in answer, answer
        await client.disconnect()

    spy = None
    if spy_out is not None:
        py_spy = str(Path(sys.executable).with_name("py-spy"))  # the .venv's (requirements-dev.txt)
        spy = subprocess.Popen([py_spy, "record", "-r", "250", "--gil", "-f", "raw", "-o", str(spy_out),
                                "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(2)  # py-spy attached
    cpu0, t0 = _server_cpu_s(pid), time.monotonic()
    for _ in range(storms):
        await asyncio.gather(*(cycle(n) for n in range(clients)))
    wall, cpu = time.monotonic() - t0, _server_cpu_s(pid) - cpu0
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    cycles = clients * storms
    return {"cycles": cycles, "wall_s": wall, "cycles_per_s": cycles / wall,
            "server_cpu_ms_per_cycle": cpu * 1000 / cycles}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--storms", type=int, default=5)
    parser.add_argument("--aurora-root", type=Path, default=ROOT)
    parser.add_argument("--py-spy", type=Path, help="write py-spy raw stacks of the server over the storms here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aurora-cycles-"))
    # The benchmark suite's server process: started on SQLite, ready once /health answers, stopped by PID.
    server = make_server("aurora-sqlite", work, pinning(False), f"sqlite:///{work}/aurora.db",
                         aurora_root=args.aurora_root)
    server.start()
    try:
        result = asyncio.run(_storms(server.url, server.pid, args.clients, args.storms, args.py_spy))
    finally:
        server.stop()
    print(f"{result['cycles']} cycles in {result['wall_s']:.2f} s: {result['cycles_per_s']:.0f}/s, "
          f"server CPU {result['server_cpu_ms_per_cycle']:.2f} ms per cycle; "
          f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])} (server log: {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
