"""Real Chromium for the web-app tests: Debian's /usr/bin/chromium driven by playwright-core (Node).

One browser per test module (`browser_endpoint`, from tests/browser/browser_server.mjs); each test
runs one scenario script that connects to it with its own isolated contexts. A scenario may ask the
test to act on the server mid-way (stop it, start it again): it prints {"ask": NAME, ...} and waits
for one JSON line on stdin. Without chromium, node or the npm packages the tests skip with the reason
(and fail with AURORA_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aurora.settings import PROJECT_ROOT
from tests.support.services import require_or_skip

BROWSER_DIR = PROJECT_ROOT / "tests" / "browser"
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("AURORA_TEST_CHROMIUM", "/usr/bin/chromium")

AskHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def browser_prerequisites() -> tuple[str, str]:
    """(node, chromium) or skip/fail with what is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        require_or_skip("Chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    node = shutil.which("node")
    if node is None:
        require_or_skip("Node.js", "`node` is not on PATH")
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        require_or_skip("playwright-core", f"{BROWSER_DIR}/node_modules is missing (run `make test`)")
    assert node is not None
    return node, CHROMIUM


@pytest.fixture(scope="module")
def browser_endpoint() -> Iterator[str]:
    node, chromium = browser_prerequisites()
    process = subprocess.Popen(
        [node, "browser_server.mjs"], cwd=BROWSER_DIR, env={**os.environ, "CHROMIUM": chromium},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdin is not None
    line = process.stdout.readline().decode()
    if not line:
        process.wait(10)
        raise AssertionError(f"Chromium did not start: {process.stderr.read().decode() if process.stderr else ''}")
    try:
        yield json.loads(line)["wsEndpoint"]
    finally:
        process.stdin.close()  # browser_server.mjs closes Chromium and exits
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def run_scenario(script: str, args: dict[str, Any], on_ask: AskHandler | None = None,
                       timeout: float = 90) -> dict[str, Any]:
    """Run tests/browser/SCRIPT with JSON args; answer its asks; return its result (or fail with its stderr)."""
    node, _ = browser_prerequisites()
    process = await asyncio.create_subprocess_exec(
        node, script, json.dumps(args), cwd=str(BROWSER_DIR),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdin is not None and process.stderr is not None
    stderr_task = asyncio.create_task(process.stderr.read())
    result: dict[str, Any] | None = None
    output: list[str] = []

    async def converse() -> None:
        nonlocal result
        assert process.stdout is not None and process.stdin is not None
        async for raw in process.stdout:
            line = raw.decode().strip()
            if not line:
                continue
            output.append(line)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "ask" in message:
                assert on_ask is not None, f"{script} asked {message['ask']!r} but the test answers nothing"
                answer = await on_ask(message)
                process.stdin.write((json.dumps(answer) + "\n").encode())
                await process.stdin.drain()
            elif "result" in message:
                result = message["result"]

    try:
        await asyncio.wait_for(converse(), timeout)
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()
        stderr = (await stderr_task).decode()
        raise AssertionError(
            f"{script} did not finish within {timeout}s; stdout: {output[-5:]}; stderr:\n{stderr}") from None
    stderr = (await stderr_task).decode()
    assert process.returncode == 0 and result is not None, (
        f"{script} failed (exit {process.returncode}); stdout: {output[-5:]}; stderr:\n{stderr}")
    return result


def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
