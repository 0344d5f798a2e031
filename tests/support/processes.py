"""Real Aurora processes (python app.py) and a private redis-server, for multi-process tests."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from aurora.settings import PROJECT_ROOT

TEST_CONFIG = PROJECT_ROOT / "config" / "test.toml"
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_http(url: str, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode} before answering {url}")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                    if response.status < 500:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")

_PORT_LINE = re.compile(r"Aurora WebSocket Server running on port (\d+)")


class AuroraProcess:
    """`python app.py` on its own port; stopped with SIGTERM (or killed) by the test."""

    def __init__(self, database_url: str, log_path: Path, *, port: int | None = None, **settings: str) -> None:
        self.port = port or 0  # 0: the kernel picks, the server reports it (see start)
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log_path = log_path
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AURORA_")},
            "AURORA_CONFIG": str(TEST_CONFIG),
            "AURORA_SECRET_KEY": TEST_SECRET,
            "AURORA_DATA_DIR": str(log_path.parent / "data"),
            "AURORA_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        for key, value in settings.items():
            self.env[f"AURORA_{key.upper()}"] = str(value)
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> AuroraProcess:
        self._log_offset = len(self.log_text())
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(self.port),
             "--database-url", self.database_url],
            cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            if not self.port:
                self.port = await self._reported_port()
                self.url = f"http://127.0.0.1:{self.port}"
            await wait_http(self.url + "/", process=self.process)
        except BaseException:
            # A start that fails must not leave the server running: the test's teardown never saw it.
            self.process.kill()
            self.process.wait()
            raise
        return self

    async def _reported_port(self, timeout: float = 30.0) -> int:
        """The port from this run's "running on port N" line (the log file may hold earlier runs)."""
        assert self.process is not None
        offset = self._log_offset
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()[offset:]
            for line in text.splitlines():
                found = _PORT_LINE.search(line)  # a text or a JSON log line (log_format = json)
                if found:
                    return int(found.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode} before reporting its port")
            await asyncio.sleep(0.05)
        raise TimeoutError("app.py did not report its port")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to say goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisProcess:
    """A private redis-server on its own port (so a test may stop and restart it)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> RedisProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: the abrupt outage (no goodbye to subscribers), as a crash or a lost host looks."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
