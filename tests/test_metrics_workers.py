"""`python app.py --workers 2`: prometheus-client's multiprocess mode, set up by the supervisor; a scrape
of either worker counts the sockets of both (PostgreSQL + Redis)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from aurora.settings import PROJECT_ROOT
from tests.support.clients import Api, SocketFactory
from tests.support.metrics import scrape_until, value
from tests.support.processes import TEST_CONFIG, TEST_SECRET, wait_http


def _two_free_ports() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as t:
                t.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free ports")


async def test_workers_share_metrics_through_the_multiprocess_directory(
        tmp_path: Path, postgres_url: str, shared_redis_url: str) -> None:
    port = _two_free_ports()
    metrics_dir = tmp_path / "metrics"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AURORA_", "PROMETHEUS_"))},
           "AURORA_CONFIG": str(TEST_CONFIG), "AURORA_SECRET_KEY": TEST_SECRET,
           "AURORA_DATA_DIR": str(tmp_path / "data"), "AURORA_REDIS_URL": shared_redis_url,
           "AURORA_REDIS_PREFIX": f"t{uuid.uuid4().hex[:12]}", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    log = (tmp_path / "workers.log").open("wb")
    supervisor = subprocess.Popen(
        [sys.executable, "app.py", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
         "--database-url", postgres_url], cwd=PROJECT_ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT)
    apis = [Api(f"http://127.0.0.1:{port + i}") for i in range(2)]
    sockets = [SocketFactory(f"http://127.0.0.1:{port + i}") for i in range(2)]
    try:
        for i in range(2):
            await wait_http(f"http://127.0.0.1:{port + i}/", process=supervisor, timeout=30)
        alice = await apis[0].register()
        await sockets[0].connect(alice.token)
        await sockets[1].connect(alice.token)
        await apis[1].send(alice, (await apis[1].conversation(alice, [await apis[1].register()]))["id"], "hi")
        for api in apis:  # either worker answers for both (another worker's counts within a flush, 1 s)
            samples = await scrape_until(api, "aurora_log_entries_stored_total", 1, kind="text")
            assert value(samples, "aurora_sockets_connected", namespace="/chat") == 2
            assert value(samples, "aurora_socket_connects_total", namespace="/chat", outcome="accepted") == 2
            assert value(samples, "aurora_log_entries_stored_total", kind="text") == 1
            assert value(samples, "aurora_redis_up") == 1
        assert list(metrics_dir.glob("*.db")), "the workers wrote no metric files"
    finally:
        for factory in sockets:
            await factory.close_all()
        for api in apis:
            await api.close()
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(20)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait(10)
        log.close()
