"""`python app.py` as a real process: help, one-line setting errors, create-user / token, serving on PORT."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.foundation import AppProcess, free_port, run_cli

PASSWORD = "a long enough password"
LOW_COST = {"AURORA_ARGON2_TIME_COST": "1", "AURORA_ARGON2_MEMORY_KIB": "256"}

Starter = Callable[..., Coroutine[Any, Any, AppProcess]]


@pytest.fixture
async def start_app() -> AsyncIterator[Starter]:
    """Start `python app.py` processes; every one is terminated by PID and awaited afterwards."""
    started: list[AppProcess] = []

    async def start(cwd: Path, env: dict[str, str], args: list[str] | None = None,
                    port: int | None = None) -> AppProcess:
        process = await AppProcess.start(cwd=cwd, env=env, args=args, port=port)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            await process.stop()


def test_help_lists_the_main_flags(tmp_path: Path) -> None:
    result = run_cli(["--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in ("--host", "--port", "--database-url", "--config"):
        assert flag in result.stdout
    for command in ("create-user", "token"):
        assert command in result.stdout
    # --help touches nothing.
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "env", "setting"),
    [
        ([], {"AURORA_PORT": "abc"}, "port"),
        ([], {"PORT": "abc"}, "port"),
        (["--port", "70000"], {}, "port"),
        (["--port", "abc"], {}, "port"),
        (["--database-url", "mysql://x@y/z"], {}, "database_url"),
        ([], {"AURORA_ENV": "production"}, "secret_key"),
        ([], {"AURORA_LOG_LEVEL": "chatty"}, "log_level"),
    ],
)
def test_a_bad_setting_exits_with_one_line_naming_it(tmp_path: Path, args: list[str], env: dict[str, str],
                                                      setting: str) -> None:
    result = run_cli(args, cwd=tmp_path, env=env, timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert setting in lines[0]
    assert "Traceback" not in result.stderr


def test_a_bad_config_file_value_exits_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('max_message_chars = "many"\n')
    result = run_cli(["--config", str(config)], cwd=tmp_path, timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "max_message_chars" in lines[0], result.stderr


async def test_create_user_then_token_works_against_a_running_server(
        tmp_path: Path, db_url: str, start_app: Starter) -> None:
    # No secret key configured: the development key is generated once in ./data and shared by every command.
    env = {"DATABASE_URL": db_url, **LOW_COST}
    created = run_cli(["create-user", "Carol.CLI", "--password-stdin"], cwd=tmp_path, env=env, stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert "Carol.CLI" in created.stdout

    issued = run_cli(["token", "carol.cli"], cwd=tmp_path, env=env)  # any letter case finds the user
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token and "\n" not in token

    server = await start_app(tmp_path, {**env, "PORT": "0", "AURORA_HOST": "127.0.0.1"})
    await server.wait_ready()  # reads the port the kernel picked from the server's start line
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200, await response.text()
            me = (await response.json())["user"]
        assert me["username"] == "Carol.CLI"
        # The password given on stdin is the account's password.
        async with session.post(f"{server.url}/api/auth/login",
                                json={"username": "CAROL.cli", "password": PASSWORD}) as response:
            assert response.status == 200
            assert (await response.json())["user"]["id"] == me["id"]


def test_create_user_rejects_bad_input_and_duplicates(tmp_path: Path, db_url: str) -> None:
    env = {"DATABASE_URL": db_url, **LOW_COST}
    short = run_cli(["create-user", "dave", "--password-stdin"], cwd=tmp_path, env=env, stdin="short\n")
    assert short.returncode != 0
    assert "invalid" in short.stderr and "Traceback" not in short.stderr

    bad_name = run_cli(["create-user", "no spaces allowed", "--password-stdin"], cwd=tmp_path, env=env,
                       stdin=PASSWORD + "\n")
    assert bad_name.returncode != 0 and "invalid" in bad_name.stderr

    first = run_cli(["create-user", "dave", "--password-stdin"], cwd=tmp_path, env=env, stdin=PASSWORD + "\n")
    assert first.returncode == 0, first.stderr
    again = run_cli(["create-user", "DAVE", "--password-stdin"], cwd=tmp_path, env=env, stdin=PASSWORD + "\n")
    assert again.returncode != 0
    assert "conflict" in again.stderr and "Traceback" not in again.stderr


def test_token_for_an_unknown_user_fails_cleanly(tmp_path: Path, db_url: str) -> None:
    result = run_cli(["token", "nobody_here"], cwd=tmp_path, env={"DATABASE_URL": db_url, **LOW_COST})
    assert result.returncode != 0
    assert result.stdout.strip() == ""
    assert "not_found" in result.stderr and "Traceback" not in result.stderr


async def test_serves_on_the_port_from_the_environment_with_default_storage(
        tmp_path: Path, start_app: Starter) -> None:
    port = free_port()
    server = await start_app(tmp_path, {"PORT": str(port)}, port=port)
    line = await server.wait_for_line("Aurora WebSocket Server running on port")
    assert line.endswith(f"Aurora WebSocket Server running on port {port}")
    await server.wait_for_line("Socket.IO URL")
    await server.wait_ready()
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url + "/") as response:
            assert response.status == 200
            assert response.content_type == "text/plain"
            assert await response.text() == "Aurora WebSocket Server Running"

    # The default database is an SQLite file under ./data, created on first start, in WAL mode.
    database = tmp_path / "data" / "aurora.db"
    assert database.exists()
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert (tmp_path / "data" / "secret_key").exists()

    # SIGTERM (what platforms send) is a graceful stop with exit status 0.
    assert await server.stop() == 0, server.lines


async def test_port_flag_beats_port_environment(tmp_path: Path, start_app: Starter) -> None:
    port = free_port()
    server = await start_app(tmp_path, {"PORT": "1", "AURORA_HOST": "127.0.0.1"},
                             args=["--port", str(port), "serve"], port=port)
    line = await server.wait_for_line("Aurora WebSocket Server running on port")
    assert line.endswith(f"running on port {port}")
    await server.wait_ready()


async def test_config_file_is_layered_under_the_environment(tmp_path: Path, start_app: Starter) -> None:
    port = free_port()
    config = tmp_path / "site.toml"
    config.write_text(f'port = 1\nhost = "127.0.0.1"\ndatabase_url = "sqlite:///{tmp_path}/from-config.db"\n')
    server = await start_app(tmp_path, {"PORT": str(port)}, args=["--config", str(config)], port=port)
    line = await server.wait_for_line("Aurora WebSocket Server running on port")
    assert line.endswith(f"running on port {port}")  # PORT beats the file
    await server.wait_ready()
    assert (tmp_path / "from-config.db").exists()  # the file's database_url was used
    assert not (tmp_path / "data" / "aurora.db").exists()


@pytest.mark.parametrize("args", [["token", "someone"], ["create-user", "someone", "--password-stdin"], []])
def test_an_unreachable_database_is_one_clear_line_not_a_traceback(tmp_path: Path, args: list[str]) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/aurora"  # nothing listens there
    result = run_cli(args, cwd=tmp_path, env={"DATABASE_URL": nowhere, "PORT": str(free_port()), **LOW_COST},
                     stdin=PASSWORD + "\n", timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and "database_url" in lines[-1], result.stderr
    if args:
        assert len(lines) == 1, result.stderr


def _listen_backlog(port: int) -> int | None:
    """The backlog of the socket listening on `port`, as the kernel reports it (ss: Send-Q of a LISTEN row)."""
    result = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10)
    for row in result.stdout.splitlines():
        fields = row.split()
        if fields and fields[0] == "LISTEN":
            return int(fields[2])
    return None


def _somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read a socket's backlog")
async def test_the_listen_backlog_setting_is_the_kernels(tmp_path: Path, start_app: Starter) -> None:
    """aiohttp listens on the socket again with its own default (128) unless told: the setting must win."""
    port = free_port()
    server = await start_app(tmp_path, {"AURORA_HOST": "127.0.0.1", "AURORA_LISTEN_BACKLOG": "1000"},
                             args=["--port", str(port)], port=port)
    await server.wait_ready()
    backlog = _listen_backlog(port)
    limit = _somaxconn()
    assert backlog == min(1000, limit), (backlog, limit)
