"""System calls the Aurora process makes per lone message on SQLite (issue 16, target 1: where the system
time goes). Starts Aurora on a fresh SQLite file as bench/run.py does (bench/harness/servers.py: the
default synchronous=FULL, rate limits off, log level WARNING), sends 50 unmeasured messages, then
`strace -c -f` counts the syscalls of every thread over --messages messages sent one at a time (each
acked before the next; the other member connected) and prints them per message.

    .venv/bin/python bench/syscalls_per_message.py [--messages 500]     # needs strace
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import socketio

from bench.harness.servers import ROOT, ServerProcess, aurora_env, free_port

_ROW = re.compile(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$")


async def _pair(url: str) -> tuple[list[str], int]:
    async with aiohttp.ClientSession() as session:
        accounts: list[dict[str, Any]] = []
        for name in ("sender", "receiver"):
            body = {"username": f"{name}{uuid.uuid4().hex[:6]}", "password": "bench password 0123"}
            async with session.post(url + "/api/auth/register", json=body) as response:
                accounts.append(await response.json())
        headers = {"Authorization": f"Bearer {accounts[0]['token']}"}
        async with session.post(url + "/api/conversations", json={"user_ids": [accounts[1]["user"]["id"]]},
                                headers=headers) as response:
            conversation_id = (await response.json())["conversation"]["id"]
    return [a["token"] for a in accounts], conversation_id


async def measure(messages: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="aurora-syscalls-"))
    port = free_port()
    argv = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
            "--database-url", f"sqlite:///{work}/aurora.db"]
    server = ServerProcess("aurora-sqlite", argv, aurora_env(work), work / "server.log", port, health_path="/health")
    await asyncio.to_thread(server.start)
    url = server.url
    clients = [socketio.AsyncClient(), socketio.AsyncClient()]
    try:
        tokens, conversation_id = await _pair(url)
        for client, token in zip(clients, tokens, strict=True):
            await client.connect(url, namespaces=["/chat"], transports=["websocket"], auth={"token": token})

        async def send(tag: str) -> None:
            ack = await clients[0].call("send_message", {"conversation_id": conversation_id, "body": tag,
                                                         "client_id": tag}, namespace="/chat")
            if not ack.get("ok"):
                raise RuntimeError(f"send refused: {ack}")

        for n in range(50):
            await send(f"warm-{n}")
        counts = work / "strace.txt"
        tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(server.pid), "-o", str(counts)],
                                  stderr=subprocess.DEVNULL)
        await asyncio.sleep(1.0)  # attached to every thread
        for n in range(messages):
            await send(f"m-{n}")
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.2)
        tracer.send_signal(signal.SIGINT)
        await asyncio.to_thread(tracer.wait)
        text = await asyncio.to_thread(counts.read_text)
    finally:
        for client in clients:
            await client.disconnect()
        await asyncio.to_thread(server.stop)
    per_message: dict[str, float] = {}
    for line in text.splitlines():
        match = _ROW.match(line)
        if match:
            per_message[match.group(2)] = int(match.group(1)) / messages
    return per_message


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args(argv)
    for name, count in sorted(asyncio.run(measure(args.messages)).items(), key=lambda kv: -kv[1]):
        print(f"{count:8.2f} per message  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
