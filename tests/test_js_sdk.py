"""The JavaScript SDK (clients/js, aurora-client) against real servers: `node --test` on its test files.

Each test file starts its own `python app.py` on a free port (clients/js/test/support/server.js), so the
fault test can SIGKILL and restart it. One pytest test per file, so a failure names its file.
Without Node or clients/js/node_modules the tests skip (fail under AURORA_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from aurora.settings import PROJECT_ROOT
from tests.support.services import require_or_skip

SDK_DIR = PROJECT_ROOT / "clients" / "js"
TEST_FILES = sorted(p.name for p in (SDK_DIR / "test").glob("*.test.js"))

pytestmark = pytest.mark.node


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        require_or_skip("Node.js", "`node` is not on PATH")
    if not (SDK_DIR / "node_modules" / "socket.io-client" / "package.json").is_file():
        require_or_skip("clients/js packages", "clients/js/node_modules is missing (run `make test`)")
    assert node is not None
    return node


@pytest.mark.parametrize("test_file", TEST_FILES)
async def test_js_sdk(test_file: str, tmp_path: Path) -> None:
    node = _node()
    env = {**os.environ, "AURORA_JS_PYTHON": sys.executable, "AURORA_JS_ROOT": str(PROJECT_ROOT),
           "AURORA_JS_TMP": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    process = await asyncio.create_subprocess_exec(
        node, "--test", "--test-reporter=tap", f"test/{test_file}", cwd=SDK_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 240)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"node --test {test_file} did not finish within 240 s") from None
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"node --test {test_file} failed:\n{text[-6000:]}"
    assert "# fail 0" in text and "# pass 0" not in text, text[-3000:]
