"""The churn soak (bench/soak.py, `make soak`; `make bench` runs a minute of it) keeps working, and its
checks catch a wrong cycle. A few seconds each, correctness only: no memory figure is asserted here
(tests/test_connection_churn.py checks deterministically that a connection leaves nothing behind)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aurora.settings import PROJECT_ROOT
from tests.support.services import require_or_skip

SOAK_PY = PROJECT_ROOT / "bench" / "soak.py"
NODE_MODULES = PROJECT_ROOT / "bench" / "node_modules"

pytestmark = pytest.mark.node


def _soak(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    if shutil.which("node") is None:
        require_or_skip("Node.js", "node is not on PATH (the soak's load client needs it)")
    if not (NODE_MODULES / "socket.io-client" / "package.json").exists():
        require_or_skip("bench/node_modules", "socket.io-client missing: run `make test` or `cd bench && npm ci`")
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(SOAK_PY), "--duration", "3", "--users", "4", "--workers", "4", "--sample-s", "1",
         "--no-pin", "--out", str(out), *extra],
        cwd=PROJECT_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=240, check=False,
    )
    return proc, json.loads(out.read_text()) if out.exists() else {}


@pytest.mark.timeout(300)
def test_a_short_soak_passes_and_reports_its_figures(tmp_path: Path) -> None:
    proc, result = _soak(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["failed"] == 0 and result["cycles"] > 0, result
    assert result["errors"] == [], result["errors"]
    for key in ("rss_start_mib", "rss_end_mib", "rss_slope_mib_per_10min_second_half", "cycles_per_s",
                "heap_blocks_end", "load_average_end"):
        assert result[key] is not None, key
    assert len(result["samples"]) >= 3 and result["heap"], result["samples"]


@pytest.mark.timeout(300)
def test_a_cycle_whose_sync_lacks_its_message_fails_the_soak(tmp_path: Path) -> None:
    proc, result = _soak(tmp_path, "--fault-every", "3")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["failed"] > 0 and result["cycles"] > 0, result
    assert all("sync: seq" in error and "missing or different" in error for error in result["errors"]), result
