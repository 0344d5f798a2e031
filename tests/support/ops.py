"""Operator commands (`python app.py admin|trace|doctor ...`) as real processes, run without blocking
the event loop (the in-process test server must keep answering them)."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from aurora.settings import PROJECT_ROOT
from tests.support.clients import Account, Api
from tests.support.processes import TEST_CONFIG, TEST_SECRET


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def app_cli(args: list[str], database_url: str, data_dir: Path, timeout: float = 60,
                  **settings: str) -> CliResult:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AURORA_")},
           "AURORA_CONFIG": str(TEST_CONFIG), "AURORA_SECRET_KEY": TEST_SECRET, "AURORA_DATA_DIR": str(data_dir),
           "DATABASE_URL": database_url}
    env.update({f"AURORA_{k.upper()}": v for k, v in settings.items()})
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PROJECT_ROOT / "app.py"), *args, cwd=PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())


async def make_admin(api: Api, database_url: str, data_dir: Path, **settings: str) -> Account:
    """A registered user made admin by `python app.py admin grant`."""
    account = await api.register()
    result = await app_cli(["admin", "grant", account.username], database_url, data_dir, **settings)
    assert result.returncode == 0, result.stderr
    assert "is now an admin" in result.stdout, result.stdout
    return account
