"""The attacks of issue 10, measured against one Aurora checkout (SQLite, default settings).

    python bench/abuse.py                       # this checkout
    python bench/abuse.py --root /tmp/before     # another checkout (e.g. `git archive main`), for "before"

1. one socket fires 3,000 send_message without waiting; another pair's delivery p50/p99 meanwhile
2. 60 concurrent wrong-password logins for one username
3. typing true/false alternated 1,000 times: how many typing events the peer gets
4. 300 /chat sockets with one user's token: how many are accepted
Only 127.0.0.1 is ever contacted; every loop is bounded.
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

import aiohttp
import socketio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.processes import free_port, wait_http  # noqa: E402

SECRET = "bench-abuse-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery"


class Server:
    def __init__(self, root: Path, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
        env.update(AURORA_SECRET_KEY=SECRET, AURORA_DATA_DIR=str(work / "data"), AURORA_LOG_LEVEL="WARNING",
                   PYTHONDONTWRITEBYTECODE="1")
        self.process = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(self.port),
             "--database-url", f"sqlite:///{work}/bench.db"],
            cwd=root, env=env, stdout=(work / "server.log").open("wb"), stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def register(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    name = f"b_{uuid.uuid4().hex[:8]}"
    async with session.post(url + "/api/auth/register", json={"username": name, "password": PASSWORD}) as r:
        body = await r.json()
        assert r.status == 201, body
        return {"id": body["user"]["id"], "username": name, "token": body["token"]}


async def conversation(session: aiohttp.ClientSession, url: str, a: dict[str, Any], b: dict[str, Any]) -> int:
    async with session.post(url + "/api/conversations", json={"user_ids": [b["id"]]},
                            headers={"Authorization": f"Bearer {a['token']}"}) as r:
        return (await r.json())["conversation"]["id"]


async def connect(url: str, token: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, namespaces=["/chat"], transports=["websocket"], auth={"token": token}, wait_timeout=10)
    return client


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


async def pair_latencies(sender: socketio.AsyncClient, receiver_arrivals: dict[str, float], cid: int,
                         count: int) -> list[float]:
    """carol -> dave, one message every 50 ms (well within carol's own limit); latency = arrival at dave - send."""
    sent: dict[str, float] = {}
    for index in range(count):
        key = f"p-{uuid.uuid4().hex[:8]}-{index}"
        sent[key] = time.perf_counter()
        await sender.emit("send_message", {"conversation_id": cid, "body": key}, namespace="/chat")
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(k in receiver_arrivals for k in sent):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return [(receiver_arrivals[k] - t) * 1000 for k, t in sent.items() if k in receiver_arrivals]


async def attack_send_flood(url: str, session: aiohttp.ClientSession) -> dict[str, Any]:
    alice, bob, carol, dave = [await register(session, url) for _ in range(4)]
    flooded = await conversation(session, url, alice, bob)
    quiet = await conversation(session, url, carol, dave)
    attacker, carol_socket, dave_socket = (await connect(url, alice["token"]), await connect(url, carol["token"]),
                                           await connect(url, dave["token"]))
    arrivals: dict[str, float] = {}
    dave_socket.on("new_message", lambda m: arrivals.setdefault(m["body"], time.perf_counter()), namespace="/chat")
    baseline = await pair_latencies(carol_socket, arrivals, quiet, 20)
    await attacker.disconnect()
    # The attacker is a process of its own, so its 3,000 acks do not load the measuring client.
    flood_started = time.perf_counter()
    worker = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--flood-worker", url, alice["token"], str(flooded),
        stdout=asyncio.subprocess.PIPE)
    assert worker.stdout is not None
    assert (await worker.stdout.readline()).strip() == b"flooding"
    during = await pair_latencies(carol_socket, arrivals, quiet, 20)
    summary = json.loads((await worker.stdout.readline()) or b"{}")
    await worker.wait()
    flood_s = time.perf_counter() - flood_started
    for client in (carol_socket, dave_socket):
        await client.disconnect()
    return {"sent": 3000, **summary,
            "flood_s": round(flood_s, 2),
            "pair_p50_ms_before": round(statistics.median(baseline), 1),
            "pair_max_ms_before": round(max(baseline), 1),
            "pair_p50_ms_during": round(statistics.median(during), 1),
            "pair_max_ms_during": round(max(during), 1), "pair_lost": 40 - len(baseline) - len(during)}


async def attack_logins(url: str, session: aiohttp.ClientSession) -> dict[str, Any]:
    victim = await register(session, url)

    async def guess(index: int) -> int:
        async with session.post(url + "/api/auth/login",
                                json={"username": victim["username"], "password": f"guess {index}"}) as r:
            return r.status

    started = time.perf_counter()
    statuses = await asyncio.gather(*(guess(i) for i in range(60)))
    return {"attempts": 60, "checked_401": statuses.count(401), "refused_429": statuses.count(429),
            "other": len([s for s in statuses if s not in (401, 429)]),
            "elapsed_s": round(time.perf_counter() - started, 2)}


async def attack_typing(url: str, session: aiohttp.ClientSession) -> dict[str, Any]:
    alice, bob = await register(session, url), await register(session, url)
    cid = await conversation(session, url, alice, bob)
    attacker, peer = await connect(url, alice["token"]), await connect(url, bob["token"])
    received: list[Any] = []
    peer.on("typing", lambda t: received.append(t), namespace="/chat")
    closed: list[Any] = []
    attacker.on("closing", lambda data: closed.append(data["code"]), namespace="/chat")
    acks = []
    for i in range(1000):
        if not attacker.connected:
            break  # the server closed it (flood_disconnect_refusals)
        try:
            acks.append(await attacker.call("typing", {"conversation_id": cid, "typing": i % 2 == 0},
                                            namespace="/chat", timeout=5))
        except socketio.exceptions.TimeoutError:
            break
    await peer.call("__round_trip__", namespace="/chat")  # everything relayed before this has arrived
    if attacker.connected:
        await attacker.disconnect()
    await peer.disconnect()
    return {"flips": 1000, "answered": len(acks), "relayed_to_peer": len(received), "closed_by_server": closed,
            "rate_limited": sum(1 for a in acks if not a.get("ok") and a["error"]["code"] == "rate_limited")}


async def attack_sockets(url: str, session: aiohttp.ClientSession) -> dict[str, Any]:
    alice = await register(session, url)
    accepted, refused = [], []

    async def one() -> None:
        client = socketio.AsyncClient(reconnection=False)
        errors: list[Any] = []
        client.on("connect_error", lambda data: errors.append(data), namespace="/chat")
        try:
            await client.connect(url, namespaces=["/chat"], transports=["websocket"], auth={"token": alice["token"]},
                                 wait_timeout=10)
            accepted.append(client)
        except socketio.exceptions.ConnectionError:
            refused.append((errors or [{}])[0])
            await client.disconnect()

    for start in range(0, 300, 50):
        await asyncio.gather(*(one() for _ in range(50)))
        del start
    codes = sorted({str((r.get("data") or {}).get("code") if isinstance(r, dict) else r) for r in refused})
    for client in accepted:
        await client.disconnect()
    return {"sockets": 300, "accepted": len(accepted), "refused": len(refused), "refusal_codes": codes}


async def run(root: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aurora-abuse-") as tmp:
        results: dict[str, Any] = {"root": str(root)}
        async with aiohttp.ClientSession() as session:
            for name, attack in (("send_flood", attack_send_flood), ("wrong_logins", attack_logins),
                                 ("typing_flips", attack_typing), ("sockets", attack_sockets)):
                work = Path(tmp) / name  # a fresh server per attack: buckets of one do not skew the next
                work.mkdir()
                server = Server(root, work)
                try:
                    await wait_http(server.url + "/", process=server.process)
                    results[name] = await attack(server.url, session)
                finally:
                    server.stop()
                print(name, json.dumps(results[name]), flush=True)
        return results


async def flood_worker(url: str, token: str, cid: int) -> None:
    attacker = await connect(url, token)
    acks: list[Any] = []
    done = asyncio.Event()
    closed: list[Any] = []
    attacker.on("closing", lambda data: closed.append(data), namespace="/chat")
    attacker.on("disconnect", lambda *_: done.set(), namespace="/chat")

    def acked(ack: Any) -> None:
        acks.append(ack)
        if len(acks) == 3000:
            done.set()

    for index in range(3000):
        if not attacker.connected:
            break
        await attacker.emit("send_message", {"conversation_id": cid, "body": f"spam {index}"},
                            namespace="/chat", callback=acked)
        if index == 0:
            print("flooding", flush=True)
    await asyncio.wait_for(done.wait(), 60)  # every ack, or the server closed the socket
    summary = {"acked": len(acks), "stored": sum(1 for a in acks if a.get("ok")),
               "rate_limited": sum(1 for a in acks if not a.get("ok") and a["error"]["code"] == "rate_limited"),
               "closed_by_server": [c["code"] for c in closed]}
    print(json.dumps(summary), flush=True)
    if attacker.connected:
        await attacker.disconnect()


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--flood-worker":
        asyncio.run(flood_worker(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the Aurora checkout to run (default: this one)")
    args = parser.parse_args()
    asyncio.run(run(args.root.resolve()))


if __name__ == "__main__":
    main()
