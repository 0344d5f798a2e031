"""`python app.py --workers N`: N Aurora processes on consecutive ports, kept running.

Worker i listens on port + i. Put a reverse proxy with sticky sessions in front
(docs/scaling.md): Socket.IO's long-polling transport needs every request of a
session to reach the same process. A worker that dies is started again after a
short pause; SIGTERM/SIGINT stop them all.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from aurora.settings import Settings

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 1.0
# prometheus-client's multiprocess mode: every worker writes its metric values to files in this
# directory (read from the environment at import), and a scrape of any worker reads them all.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir() -> str:
    """The workers' metrics directory (given, or a fresh temporary one), emptied of a previous run's
    files, and exported so every worker inherits it."""
    path = Path(os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="aurora-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return str(path)


def _worker_gone(pid: int, metrics_dir: str) -> None:
    """Drop a dead worker's live gauges (sockets connected, queue depth) from the totals."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)


def worker_command(settings: Settings, index: int, config: str | None) -> list[str]:
    app = str(Path(__file__).resolve().parent.parent / "app.py")
    command = [sys.executable, app, "--host", settings.host, "--port", str(settings.port + index),
               "--database-url", settings.database_url]
    if config:
        command += ["--config", config]
    return command


def supervise(settings: Settings, workers: int, config: str | None) -> int:
    stopping = False
    children: dict[int, subprocess.Popen[bytes]] = {}

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    metrics_dir = prepare_metrics_dir()
    for index in range(workers):
        children[index] = subprocess.Popen(worker_command(settings, index, config))
        log.info("Worker %d started on port %d (pid %d)", index, settings.port + index, children[index].pid)
    while not stopping:
        time.sleep(0.5)
        for index, child in list(children.items()):
            if child.poll() is not None and not stopping:
                log.warning("Worker %d (pid %d) exited with %s; restarting", index, child.pid, child.returncode)
                _worker_gone(child.pid, metrics_dir)
                time.sleep(RESTART_PAUSE_S)
                children[index] = subprocess.Popen(worker_command(settings, index, config))
    for child in children.values():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0
