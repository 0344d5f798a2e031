"""What one socket's send flood costs the server, and another pair, against a harmless flood of the
same size in the same run (issue 10).

    .venv/bin/python bench/flood_cost.py                            # this checkout, 3 rounds
    .venv/bin/python bench/flood_cost.py --root /tmp/main . --rounds 5  # two checkouts, interleaved
    .venv/bin/python bench/flood_cost.py --callgrind --packets 400       # instructions instead of time
    .venv/bin/python bench/flood_cost.py --client sio                    # python-socketio as the flooder

The server runs on core 0 and this process (the measuring pair and the flooder) on core 1 (taskset),
so the load generator's own work does not take the server's core. The flooder is a raw WebSocket
client (tests/support/raw_socket.py): it frames every packet before the flood starts and writes them
all at once, answers pings and never closes, so during the flood it costs almost nothing, whatever the
client library; `--client sio` floods from python-socketio's client instead, as bench/abuse.py does.
Scenarios, each on a fresh server (SQLite, default settings), interleaved round by round:

  quiet       no flood: the pair alone (what the window costs without any flood)
  harmless    N packets of an event no handler has (`__round_trip__`, same payload, with an ack id):
              what the transport and Socket.IO cost to read, decode and answer N packets
  send        N `send_message` packets: the real flood, refused past the burst and then closed
  send_open   the same with flood_disconnect_refusals = 10**6: every packet refused, none closed
  unlimited   the same with rate_limits_enabled = false: every packet stored and broadcast (issue 10's
              "before"); not in the default list

Per scenario: the server's CPU time over the window (its threads' time on a CPU, from
/proc/<pid>/task/*/schedstat), the pair's delivery latency (carol -> dave send_message every 25 ms
from the moment the flood is written) and the flood's answers. "Over quiet" is the flood's cost.
With --callgrind the server runs under valgrind and the figure is its instructions (Ir) from the
flood until the flooder has every answer or the connection is closed (no pair; rate_message_per_s is
0.001 so the slower server meets the same burst); a loaded machine does not bend it, and `--packets
400` stays under Engine.IO's 45 s ping timeout there. Only 127.0.0.1 is contacted; every loop is
bounded.
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
from bench.abuse import SECRET, conversation, register  # noqa: E402
from bench.callgrind_per_message import _measured_ir as measured_ir  # noqa: E402
from bench.harness.servers import pinning  # noqa: E402
from tests.support.processes import free_port, wait_http  # noqa: E402
from tests.support.raw_socket import CLOSE_OPCODE, RawSocket, event_frame, ws_frame  # noqa: E402

SCENARIOS = ("quiet", "harmless", "send", "send_open", "unlimited")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process: the sum of its threads' time on a CPU (/proc/<pid>/task/*/schedstat, in ns);
    utime + stime from /proc/<pid>/stat (in clock ticks, 10 ms) where schedstat is missing."""
    try:
        return sum(int((task / "schedstat").read_text().split()[0])
                   for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Server:
    def __init__(self, root: Path, work: Path, prefix: list[str], **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
        env.update(AURORA_SECRET_KEY=SECRET, AURORA_DATA_DIR=str(work / "data"), AURORA_LOG_LEVEL="WARNING",
                   PYTHONDONTWRITEBYTECODE="1")
        env.update({f"AURORA_{k.upper()}": v for k, v in settings.items()})
        if prefix[:1] == ["valgrind"]:
            env["PYTHONMALLOC"] = "malloc"
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(self.port),
             "--database-url", f"sqlite:///{work}/bench.db"],
            cwd=root, env=env, stdout=(work / "server.log").open("wb"), stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def flood_worker(port: int, token: str, cid: int, event: str, packets: int, silence_s: float) -> None:
    """Connect /chat, say ready, wait for 'go' on stdin, write every frame at once, then read the answers
    until the server closes the TCP connection or is silent for silence_s. Never closes first (a hostile
    client)."""
    sock = await RawSocket.connected(port, token)
    blob = b"".join(event_frame("/chat", i, event, {"conversation_id": cid, "body": f"spam {i}"})
                    for i in range(packets))
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    await stdin.readline()
    started = time.perf_counter()
    cpu_started = time.process_time()
    sock.writer.write(blob)
    counts: dict[str, int] = {}
    at: dict[str, float] = {}
    while True:
        try:
            got = await asyncio.wait_for(sock.frame(), silence_s)
        except TimeoutError:
            at["silent"] = time.perf_counter() - started
            break
        if got is None:
            at["eof"] = time.perf_counter() - started
            break
        opcode, data = got
        if opcode == CLOSE_OPCODE:
            key = "ws_close"
        elif data.startswith(b"43/chat,"):
            key = "ok" if b'"ok":true' in data else data.split(b'"code":"', 1)[1].split(b'"', 1)[0].decode()
        elif data.startswith(b'42/chat,["closing"'):
            key = "closing"
        elif data == b"1":
            key = "eio_close"
        elif data == b"2":  # the server's ping: answered, or the session times out (under valgrind)
            sock.writer.write(ws_frame("3"))
            continue
        else:
            continue
        counts[key] = counts.get(key, 0) + 1
        at.setdefault(key, time.perf_counter() - started)
        if sum(v for k, v in counts.items() if k not in ("closing", "eio_close", "ws_close")) == packets:
            at["all_answered"] = time.perf_counter() - started
            break
    summary = {"answers": counts, "first_at_s": {k: round(v, 3) for k, v in at.items()},
               "flooder_cpu_ms": round((time.process_time() - cpu_started) * 1000, 1)}
    print(json.dumps(summary), flush=True)
    sock.close()


async def flood_worker_sio(port: int, token: str, cid: int, event: str, packets: int, silence_s: float) -> None:
    """The same flood from python-socketio's client (as bench/abuse.py sends it): what the load generator's
    own work adds on a machine whose cores it shares."""
    client = await connect(f"http://127.0.0.1:{port}", token, 10 * silence_s)
    counts: dict[str, int] = {}
    done = asyncio.Event()
    client.on("closing", lambda _: counts.__setitem__("closing", counts.get("closing", 0) + 1), namespace="/chat")
    client.on("disconnect", lambda *_: done.set(), namespace="/chat")

    def acked(ack: Any) -> None:
        key = "ok" if ack.get("ok") else ack["error"]["code"]
        counts[key] = counts.get(key, 0) + 1
        if sum(v for k, v in counts.items() if k != "closing") == packets:
            done.set()

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    await stdin.readline()
    started, cpu_started = time.perf_counter(), time.process_time()
    for index in range(packets):
        if not client.connected:
            break
        await client.emit(event, {"conversation_id": cid, "body": f"spam {index}"}, namespace="/chat", callback=acked)
    try:
        await asyncio.wait_for(done.wait(), 10 * silence_s)
    except TimeoutError:
        pass
    summary = {"answers": counts, "first_at_s": {"done": round(time.perf_counter() - started, 3)},
               "flooder_cpu_ms": round((time.process_time() - cpu_started) * 1000, 1)}
    print(json.dumps(summary), flush=True)
    if client.connected:
        await client.disconnect()


async def connect(url: str, token: str, wait_timeout: float = 10) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, namespaces=["/chat"], transports=["websocket"], auth={"token": token},
                         wait_timeout=wait_timeout)
    return client


def callgrind_prefix(work: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={work}/callgrind.out.%p"]


def callgrind_control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


async def one_run(root: Path, work: Path, scenario: str, packets: int, prefix: list[str],
                  samples: int, window_s: float, profile_to: Path | None = None,
                  client: str = "raw", callgrind: bool = False) -> dict[str, Any]:
    settings = {"send_open": {"flood_disconnect_refusals": str(10**6)},
                "unlimited": {"rate_limits_enabled": "false"}}.get(scenario, {})
    if callgrind:  # instructions, not time: the pair does not send (samples 0), the answers are waited for
        prefix, samples, settings["connect_timeout_s"] = callgrind_prefix(work), 0, "600"
        settings["rate_message_per_s"] = "0.001"  # 50-100 times slower: no refill, the flood meets the same burst
    slow = 30.0 if callgrind else 1.0
    silence_s = 15.0 if callgrind else 3.0  # the flooder's reading ends after this long without a frame
    server = Server(root, work, prefix, **settings)
    try:
        await wait_http(server.url + "/", process=server.process, timeout=20 * slow)
        async with aiohttp.ClientSession() as session:
            alice, bob, carol, dave = [await register(session, server.url) for _ in range(4)]
            flooded = await conversation(session, server.url, alice, bob)
            quiet = await conversation(session, server.url, carol, dave)
        carol_socket = await connect(server.url, carol["token"], 10 * slow)
        dave_socket = await connect(server.url, dave["token"], 10 * slow)
        arrivals: dict[str, float] = {}
        dave_socket.on("new_message", lambda m: arrivals.setdefault(m["body"], time.perf_counter()), namespace="/chat")
        for index in range(3):  # warm both paths up
            await carol_socket.call("send_message", {"conversation_id": quiet, "body": f"warm {index}"},
                                    namespace="/chat", timeout=10 * slow)
        worker = None
        if scenario != "quiet":
            event = "__round_trip__" if scenario == "harmless" else "send_message"
            worker = await asyncio.create_subprocess_exec(
                sys.executable, __file__, f"--flood-worker-{client}", str(server.port), alice["token"], str(flooded),
                event, str(packets), str(silence_s), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            assert worker.stdout is not None and worker.stdin is not None
            assert (await worker.stdout.readline()).strip() == b"ready"
        spy = None
        if profile_to is not None:  # py-spy's collapsed stacks of the server over the window (CPU samples only)
            spy = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.process.pid),
                "--rate", "1000", "--format", "raw", "--output", str(profile_to), "--nonblocking",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(1.0)
        await asyncio.sleep(0.3)
        if callgrind:
            callgrind_control("-i", "on", str(server.process.pid))
        cpu_before = cpu_seconds(server.process.pid)
        started = time.perf_counter()
        if worker is not None:
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        sent: dict[str, float] = {}
        for index in range(samples):
            key = f"p-{uuid.uuid4().hex[:8]}-{index}"
            sent[key] = time.perf_counter()
            await carol_socket.emit("send_message", {"conversation_id": quiet, "body": key}, namespace="/chat")
            await asyncio.sleep(0.025)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(k in arrivals for k in sent):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        summary: dict[str, Any] = {}
        if callgrind:  # until the flooder has every answer (or the server's close) and then silence
            if worker is not None:
                summary = json.loads((await worker.stdout.readline()) or b"{}")
            else:
                await asyncio.sleep(silence_s)
            window = time.perf_counter() - started
            callgrind_control("-d", "measured", str(server.process.pid))
            callgrind_control("-i", "off", str(server.process.pid))
        await asyncio.sleep(max(0.0, window_s - (time.perf_counter() - started)))
        cpu_window = cpu_seconds(server.process.pid) - cpu_before
        if spy is not None:
            spy.send_signal(2)
            await spy.wait()
        if worker is not None:
            if not summary:
                summary = json.loads((await worker.stdout.readline()) or b"{}")
            await worker.wait()
        latencies = [(arrivals[k] - t) * 1000 for k, t in sent.items() if k in arrivals]
        for client in (carol_socket, dave_socket):
            await client.disconnect()
        if callgrind:
            return {"ir_m": round(measured_ir(work) / 1e6, 1), "window_s": round(window, 1), **summary}
        return {"server_cpu_ms": round(cpu_window * 1000, 1),
                "pair_p50_ms": round(statistics.median(latencies), 1),
                "pair_p90_ms": round(sorted(latencies)[int(len(latencies) * 0.9)], 1),
                "pair_max_ms": round(max(latencies), 1), "pair_lost": samples - len(latencies), **summary}
    finally:
        server.stop()


async def run(args: argparse.Namespace) -> None:
    pins = pinning(not args.no_pin)
    if pins.loadgen:  # this process (the pair) and the flood worker it starts: on the other core
        os.sched_setaffinity(0, {int(pins.loadgen[-1])})
    print(f"{pins.note}; {args.packets} packets per flood from the {args.client} client", flush=True)
    results: dict[tuple[Path, str], list[dict[str, Any]]] = {(r, s): [] for r in args.root for s in args.scenarios}
    with tempfile.TemporaryDirectory(prefix="aurora-flood-") as tmp:
        for round_index in range(args.rounds):
            for root_index, root in enumerate(args.root):  # interleaved: the machine's load spreads over all
                for scenario in args.scenarios:
                    work = Path(tmp) / f"{root_index}-{scenario}-{round_index}"
                    work.mkdir()
                    profile_to = None
                    if args.py_spy is not None:
                        args.py_spy.mkdir(parents=True, exist_ok=True)
                        profile_to = args.py_spy / f"{root_index}-{scenario}-{round_index}.txt"
                    result = await one_run(root, work, scenario, args.packets, pins.server, args.samples,
                                           args.window, profile_to, args.client, args.callgrind)
                    results[(root, scenario)].append(result)
                    print(root.name, scenario, json.dumps(result), flush=True)
    if args.callgrind:
        print(f"\nmedians of {args.rounds} rounds: million instructions (Ir) of the server from the flood to its end;"
              " over idle: less the quiet run's Ir per second times the window")
        print(f"{'root':<24} {'scenario':<10} {'Ir (M)':>8} {'over idle':>9} {'window s':>8}")
        for root in args.root:
            quiet = results.get((root, "quiet"))
            idle_per_s = statistics.median(r["ir_m"] / r["window_s"] for r in quiet) if quiet else 0.0
            for scenario in args.scenarios:
                runs = results[(root, scenario)]
                ir = statistics.median(r["ir_m"] for r in runs)
                window = statistics.median(r["window_s"] for r in runs)
                over = statistics.median(r["ir_m"] - idle_per_s * r["window_s"] for r in runs)
                print(f"{str(root)[-24:]:<24} {scenario:<10} {ir:>8.1f} {over:>9.1f} {window:>8.1f}")
        return
    print(f"\nmedians of {args.rounds} rounds (over quiet: the flood's cost to the server, CPU ms)")
    print(f"{'root':<24} {'scenario':<10} {'server CPU':>10} {'over quiet':>10} {'pair p50':>9} {'p90':>7} {'max':>7}")
    for root in args.root:
        quiet = results.get((root, "quiet"))
        quiet_cpu = statistics.median(r["server_cpu_ms"] for r in quiet) if quiet else 0.0
        for scenario in args.scenarios:
            runs = results[(root, scenario)]

            def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
                return statistics.median(r[key] for r in runs)
            print(f"{str(root)[-24:]:<24} {scenario:<10} {med('server_cpu_ms'):>10.0f} "
                  f"{med('server_cpu_ms') - quiet_cpu:>10.0f} {med('pair_p50_ms'):>9.1f} {med('pair_p90_ms'):>7.1f} "
                  f"{med('pair_max_ms'):>7.1f}")


def main() -> None:
    if len(sys.argv) == 8 and sys.argv[1] in ("--flood-worker-raw", "--flood-worker-sio"):
        port, token, cid, event, packets, silence_s = sys.argv[2:]
        worker = flood_worker if sys.argv[1] == "--flood-worker-raw" else flood_worker_sio
        asyncio.run(worker(int(port), token, int(cid), event, int(packets), float(silence_s)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, nargs="+", default=[ROOT],
                        help="the Aurora checkouts to run, interleaved (default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=40, help="pair messages, one every 25 ms (default 40: 1 s)")
    parser.add_argument("--window", type=float, default=3.0, help="seconds of server CPU counted from the flood")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS[:4]), choices=SCENARIOS)
    parser.add_argument("--client", choices=("raw", "sio"), default="raw",
                        help="the flooder: pre-framed raw WebSocket writes (default) or python-socketio's client")
    parser.add_argument("--callgrind", action="store_true",
                        help="count the server's instructions (valgrind) instead of timing: a loaded machine does not "
                             "bend them; no pair, no pinning")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="record the server with py-spy (collapsed stacks in DIR; slows it: no figures then)")
    args = parser.parse_args()
    args.root = [root.resolve() for root in args.root]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
