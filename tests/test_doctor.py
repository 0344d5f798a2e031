"""`python app.py doctor` against real servers: a healthy one, a stopped one, a wrong CORS origin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, _running, make_settings
from tests.support.ops import app_cli
from tests.support.processes import free_port

FRONT_END = "https://chat.example.com"


def statuses(stdout: str) -> dict[str, str]:
    found = {}
    for line in stdout.splitlines():
        if not line.startswith(" ") and ": " in line:
            status, _, rest = line.partition("  ")
            found[rest.split(":", 1)[0].strip()] = status.strip()
    return found


async def test_doctor_passes_a_healthy_server(server: RunningServer, db_url: str, tmp_path: Path) -> None:
    result = await app_cli(["doctor", "--url", server.url], db_url, tmp_path / "data")
    assert result.returncode == 0, result.stdout + result.stderr
    seen = statuses(result.stdout)
    for name in ("reachable", "health", "database", "redis", "clock", "socket.io polling", "sticky sessions",
                 "websocket"):
        assert seen.get(name) == "ok", (name, result.stdout)
    assert seen["secret key"] == "warn"  # env=test: the key is only judged in production
    assert "fix:" not in result.stdout.replace("      fix: run doctor with the server's config", "")


async def test_doctor_names_a_stopped_server_and_the_fix(sqlite_url: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = await app_cli(["doctor", "--url", url], sqlite_url, tmp_path / "data")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAIL  reachable: "), result.stdout
    assert lines[1].startswith("      fix: start the server"), result.stdout
    assert lines[-1] == "1 check(s) failed: reachable"


@pytest.fixture
async def cors_server(tmp_path: Path, sqlite_url: str) -> AsyncIterator[RunningServer]:
    async for running in _running(make_settings(tmp_path, sqlite_url, cors_allowed_origins=FRONT_END)):
        yield running


async def test_doctor_checks_cors_for_the_front_end_origin(cors_server: RunningServer, sqlite_url: str,
                                                           tmp_path: Path) -> None:
    good = await app_cli(["doctor", "--url", cors_server.url, "--origin", FRONT_END], sqlite_url, tmp_path / "data")
    assert good.returncode == 0, good.stdout
    assert statuses(good.stdout)["cors rest"] == "ok" and statuses(good.stdout)["cors socket.io"] == "ok"

    wrong = await app_cli(["doctor", "--url", cors_server.url, "--origin", "https://evil.example"], sqlite_url,
                          tmp_path / "data")
    assert wrong.returncode == 1
    seen = statuses(wrong.stdout)
    assert seen["cors rest"] == "FAIL" and seen["cors socket.io"] == "FAIL", wrong.stdout
    assert "fix: add https://evil.example to cors_allowed_origins" in wrong.stdout


async def test_doctor_judges_a_weak_production_key(cors_server: RunningServer, sqlite_url: str,
                                                   tmp_path: Path) -> None:
    # Production refuses to start with a short key; a long but repetitive one passes that rule, not doctor.
    from aurora.services.push.vapid import generate_private_key

    result = await app_cli(["doctor", "--url", cors_server.url], sqlite_url, tmp_path / "data", env="production",
                           secret_key="a" * 40, vapid_private_key=generate_private_key(),
                           vapid_subject="mailto:ops@example.com")
    assert result.returncode == 1
    assert statuses(result.stdout)["secret key"] == "FAIL", result.stdout
