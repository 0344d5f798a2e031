"""Helpers for the foundation tests: raw database access, free ports, `python app.py` as a real process."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aurora.settings import PROJECT_ROOT

APP_PY = PROJECT_ROOT / "app.py"
# Environment variables that would leak the developer's settings into a subprocess.
_SETTING_VARS = ("DATABASE_URL", "PORT")


def sqlite_path(db_url: str) -> str:
    """The file of an absolute sqlite:////... URL (as the fixtures build them)."""
    parsed = urlparse(db_url)
    assert parsed.scheme == "sqlite", db_url
    return parsed.path


@contextmanager
def raw_connection(db_url: str) -> Iterator[Any]:
    """A plain DB-API connection (sqlite3 or psycopg2) to the same database the server uses."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(db_url))
    else:
        import psycopg2

        conn = psycopg2.connect(db_url)
        conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def raw_query(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement outside Aurora and return its rows; write `?` placeholders."""
    if not db_url.startswith("sqlite"):
        sql = sql.replace("?", "%s")
    with raw_connection(db_url) as conn:
        cur = conn.cursor()
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        if db_url.startswith("sqlite"):
            conn.commit()
        return [tuple(r) for r in rows]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without any Aurora setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_") and k not in _SETTING_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(args: list[str], *, cwd: Path, env: Mapping[str, str] | None = None, stdin: str | None = None,
            timeout: float = 60) -> Any:
    """`python app.py ARGS` to completion; returns the CompletedProcess (text mode)."""
    import subprocess

    return subprocess.run(
        [sys.executable, str(APP_PY), *args], cwd=cwd, env=clean_env(env), input=stdin,
        capture_output=True, text=True, timeout=timeout, check=False,
    )


class AppProcess:
    """`python app.py` serving for real; stderr is collected line by line.

    Start it with PORT=0 (and port=None) to let the kernel pick the port: wait_ready() then reads
    the port the server reports."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *, cwd: Path, env: Mapping[str, str], args: list[str] | None = None,
                    port: int | None = None) -> AppProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(APP_PY), *(args or []), cwd=cwd, env=clean_env(env),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc, port or 0)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                self._new_line.set()
                return
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._new_line.set()

    async def wait_for_line(self, needle: str, within: float = 30) -> str:
        """The first stderr line containing needle; fails if the process exits first."""
        async def find() -> str:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if needle in line:
                        return line
                seen = len(self.lines)
                if self._reader.done():
                    raise AssertionError(
                        f"app.py exited ({self.proc.returncode}) before logging {needle!r}: {self.lines!r}"
                    )
                self._new_line.clear()
                await self._new_line.wait()
        try:
            return await asyncio.wait_for(find(), within)
        except TimeoutError:
            raise AssertionError(f"app.py did not log {needle!r} within {within}s: {self.lines!r}") from None

    async def wait_ready(self, within: float = 30) -> None:
        """Logged its start line and answers GET /."""
        import aiohttp

        line = await self.wait_for_line("Aurora WebSocket Server running on port", within)
        if not self.port:  # started with port 0: the server reports the port the kernel gave it
            self.port = int(line.rsplit(" ", 1)[1])
            self.url = f"http://127.0.0.1:{self.port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(self.url + "/") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"app.py on port {self.port} never answered GET /: {self.lines!r}")

    async def stop(self) -> int:
        """Terminate by PID and wait; returns the exit code."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader
        return self.proc.returncode if self.proc.returncode is not None else -1
