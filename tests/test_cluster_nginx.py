"""`python app.py --workers 2` behind a real nginx (the documented sticky configuration):
one client on long-polling, one on websocket, and a device straight on the other worker."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from aurora.settings import PROJECT_ROOT
from tests.support.clients import Api, SocketFactory
from tests.support.processes import TEST_CONFIG, TEST_SECRET, free_port, wait_http
from tests.support.services import require_or_skip

NGINX_CONF = PROJECT_ROOT / "docs" / "nginx.conf.example"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (shutil.which("nginx", path="/usr/sbin:/usr/local/sbin"))


def two_free_ports() -> int:
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free ports")


def render_nginx_conf(tmp: Path, listen_port: int, backends: list[int]) -> Path:
    """The documented configuration, with this test's ports and paths."""
    template = NGINX_CONF.read_text()
    upstream = "\n".join(f"    server 127.0.0.1:{port};" for port in backends)
    text = (template.replace("listen 80;", f"listen 127.0.0.1:{listen_port};")
            .replace("    server 127.0.0.1:3001;\n    server 127.0.0.1:3002;", upstream))
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir(exist_ok=True)
    head = (f"user root;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
            "worker_processes 1;\nevents { worker_connections 256; }\n")
    temp_paths = "".join(f"    {name}_temp_path {tmp}/{name};\n"
                         for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    body = text.replace("http {", "http {\n" + temp_paths, 1).replace("/var/log/nginx/aurora-access.log",
                                                                     f"{tmp}/access.log")
    conf = tmp / "nginx.conf"
    conf.write_text(head + body)
    return conf


@pytest.fixture
async def workers(tmp_path: Path, postgres_url: str, shared_redis_url: str) -> AsyncIterator[list[int]]:
    port = two_free_ports()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AURORA_")},
           "AURORA_CONFIG": str(TEST_CONFIG), "AURORA_SECRET_KEY": TEST_SECRET,
           "AURORA_REDIS_URL": shared_redis_url, "AURORA_REDIS_PREFIX": f"t{uuid.uuid4().hex[:12]}",
           "AURORA_DATA_DIR": str(tmp_path / "data")}
    log = (tmp_path / "workers.log").open("wb")
    supervisor = subprocess.Popen(
        [sys.executable, "app.py", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
         "--database-url", postgres_url],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        # Two processes start one after the other (migrations under an advisory lock); on a loaded
        # 2-core machine the second took over 20 s once.
        await wait_http(f"http://127.0.0.1:{port}/", timeout=60, process=supervisor)
        await wait_http(f"http://127.0.0.1:{port + 1}/", timeout=60, process=supervisor)
        yield [port, port + 1]
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(20)
        except subprocess.TimeoutExpired:
            supervisor.kill()
        log.close()


@pytest.fixture
async def nginx(tmp_path: Path, workers: list[int]) -> AsyncIterator[str]:
    binary = nginx_binary()
    if binary is None:
        require_or_skip("nginx", "not installed (apt-get install nginx-light)")
    listen = free_port()
    (tmp_path / "nginx").mkdir()
    conf = render_nginx_conf(tmp_path / "nginx", listen, workers)
    process = subprocess.Popen([binary, "-p", str(tmp_path / "nginx"), "-c", str(conf), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_http(f"http://127.0.0.1:{listen}/", process=process)
        yield f"http://127.0.0.1:{listen}"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


async def test_polling_and_websocket_clients_through_nginx(nginx: str, workers: list[int], tmp_path: Path) -> None:
    api = Api(nginx)
    through_proxy = SocketFactory(nginx)
    try:
        async with aiohttp.ClientSession() as session, session.get(nginx + "/health") as response:
            chosen = response.headers["X-Aurora-Upstream"]
        other = next(p for p in workers if not chosen.endswith(f":{p}"))
        direct = SocketFactory(f"http://127.0.0.1:{other}")

        alice = await api.register()
        bob = await api.register()
        conversation = await api.conversation(alice, [bob])
        alice_polling = await through_proxy.connect(alice.token, transports=["polling"])
        bob_websocket = await through_proxy.connect(bob.token, transports=["websocket"])
        bob_elsewhere = await direct.connect(bob.token)  # the other worker
        assert alice_polling.client.transport() == "polling"

        for index in range(5):  # several polling round trips must stick to one worker
            ack = await alice_polling.call("send_message", {"conversation_id": conversation["id"],
                                                            "body": f"poll {index}"})
            assert ack["ok"], ack
        for device in (bob_websocket, bob_elsewhere):
            seqs = [m["seq"] for m in await device.wait_count("new_message", 5)]
            assert seqs == [1, 2, 3, 4, 5]

        reply = await bob_websocket.call("send_message", {"conversation_id": conversation["id"], "body": "ws"})
        assert reply["ok"], reply
        assert (await alice_polling.wait_for("new_message"))["id"] == reply["message"]["id"]
        assert (await bob_elsewhere.wait_for("new_message", lambda m: m["seq"] == 6))["body"] == "ws"

        # An upload over nginx's default 1 MiB body limit goes through (client_max_body_size in the example).
        big = bytes(range(256)) * (6 * 1024)  # 1.5 MiB
        status, body = await api.request("POST", "/api/uploads?filename=big.bin", token=alice.token, data=big)
        assert status == 201 and body["upload"]["size"] == len(big), (status, body)

        # A legacy client with ?token= in the URL: the documented access log keeps the path, not the token.
        legacy = await through_proxy.connect(None, url_suffix=f"/?token={alice.token}", transports=["polling"])
        await legacy.call("__round_trip__")
        access_log = (tmp_path / "nginx" / "access.log").read_text()
        assert "/socket.io/" in access_log and alice.token not in access_log and "token=" not in access_log
    finally:
        await through_proxy.close_all()
        await api.close()
        if "direct" in locals():
            await direct.close_all()
