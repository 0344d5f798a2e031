"""The benchmark suite (bench/) keeps working: a few-second smoke run, correctness only, no speed asserted.

Also shows that its correctness checks catch what they claim to: a relay that drops, duplicates,
skips or reorders messages fails the run, and so does a database missing or doubling a message.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aurora.settings import PROJECT_ROOT
from tests.support.services import require_or_skip

RUN_PY = PROJECT_ROOT / "bench" / "run.py"
NODE_MODULES = PROJECT_ROOT / "bench" / "node_modules"

pytestmark = pytest.mark.node


def _require_node() -> None:
    if shutil.which("node") is None:
        require_or_skip("Node.js", "node is not on PATH (the benchmark's load generator needs it)")
    for package in ("socket.io", "socket.io-client", "pg"):
        if not (NODE_MODULES / package / "package.json").exists():
            require_or_skip("bench/node_modules", f"{package} missing: run `make test` or `cd bench && npm ci`")


def _run(args: list[str], tmp_path: Path, env: dict[str, str] | None = None,
         timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(RUN_PY), *args, "--out", str(out), "--work-root", str(tmp_path / "work")],
        cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
        check=False,
    )
    document = json.loads(out.read_text()) if out.exists() else {}
    return proc, document


@pytest.mark.timeout(300)
def test_smoke_run_of_the_whole_suite_passes(tmp_path: Path) -> None:
    _require_node()
    proc, document = _run(["--smoke"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert document["correct"] is True
    ran = {(r["scenario"], r["target"]) for r in document["results"]}
    for scenario in ("s1", "s2", "s3", "s4", "s5", "s6", "s7"):
        assert (scenario, "aurora-sqlite") in ran
    for scenario in ("s1", "s2", "s3", "s4", "s6"):
        assert (scenario, "py-relay") in ran
        assert (scenario, "node-relay") in ran
    # The relay on uvloop (Aurora's event loop), where issue 16 judges "on the same event loop".
    assert {s for s, t in ran if t == "py-relay-uvloop"} == {"s1", "s4", "s6"}
    if "aurora-postgresql" not in document["targets"]:
        # The run skipped PostgreSQL (and said why); with AURORA_REQUIRE_SERVICES=1 it would have failed.
        assert any("PostgreSQL" in note for note in document["notes"])
    else:
        # The Node + PostgreSQL baseline stores every message and is checked against its database too.
        peer = [r for r in document["results"] if r["target"] == "node-pg"]
        assert {r["scenario"] for r in peer} == {"s1", "s2", "s4"}
        assert all(r["stored_checked"] > 0 for r in peer)
        assert "WAL flush" in proc.stdout
    # Aurora's runs were checked against the database too.
    stored = [r for r in document["results"] if r["target"] == "aurora-sqlite" and r["scenario"] != "s3"]
    assert stored and all(r["stored_checked"] > 0 for r in stored)
    assert "| S1 pairs | acked msg/s |" in proc.stdout
    assert "PASS" in proc.stdout


@pytest.mark.timeout(300)
def test_relays_that_drop_duplicate_skip_or_reorder_fail_the_run(tmp_path: Path) -> None:
    _require_node()
    runs = {}
    for fault in ("drop", "duplicate", "gap", "reorder"):
        out = tmp_path / f"{fault}.json"
        runs[fault] = (out, subprocess.Popen(
            [sys.executable, str(RUN_PY), "--smoke", "--scenario", "s1", "--db", "none", "--baselines", "python",
             "--out", str(out), "--work-root", str(tmp_path / f"work-{fault}")],
            cwd=PROJECT_ROOT, env={**os.environ, "BENCH_RELAY_FAULT": fault}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        ))
    try:
        for fault, (out, proc) in runs.items():
            output, _ = proc.communicate(timeout=240)
            assert proc.returncode == 1, f"{fault}: {output[-3000:]}"
            document = json.loads(out.read_text())
            assert document["correct"] is False, fault
            assert "FAIL" in output, fault
            # Failed because the fault was seen, not merely for judging too little (every 7th message
            # is broken; the smoke run judges at least 28 before it stops).
            [result] = [r for r in document["results"] if r["target"] == "py-relay"]
            seen = [e for e in result["errors"] if not e.startswith("inconclusive")]
            assert seen, f"{fault}: {result['errors']}"
    finally:
        for _, proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _message_db(path: Path, rows: list[tuple[int, int, int, str | None, str]], last_seq: int) -> str:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE conversation (id INTEGER PRIMARY KEY, last_seq INTEGER)")
    conn.execute("CREATE TABLE message (id INTEGER PRIMARY KEY, conversation_id INTEGER, seq INTEGER, "
                 "sender_id INTEGER, client_id TEXT, body TEXT, kind TEXT DEFAULT 'text')")
    conn.execute("INSERT INTO conversation VALUES (1, ?)", (last_seq,))
    conn.executemany("INSERT INTO message (conversation_id, seq, sender_id, client_id, body) VALUES (?, ?, ?, ?, ?)",
                     rows)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_the_database_check_finds_missing_doubled_and_unacked_messages(tmp_path: Path) -> None:
    from bench.harness.verify import body_for, verify_stored

    conversations = [{"id": 1, "start_seq": 0, "sender_user_id": 7}]
    acked = {"1": [[1, "0.0"], [2, "0.1"], [3, "0.2"]]}

    def row(seq: int, client_id: str) -> tuple[int, int, int, str, str]:
        return (1, seq, 7, client_id, body_for(client_id, 64))

    good = _message_db(tmp_path / "good.db", [row(1, "0.0"), row(2, "0.1"), row(3, "0.2")], 3)
    assert verify_stored(good, conversations, acked, 64) == ([], 3)

    missing = _message_db(tmp_path / "missing.db", [row(1, "0.0"), row(3, "0.2")], 3)
    errors, _ = verify_stored(missing, conversations, acked, 64)
    assert any("acked but not stored" in e for e in errors)

    doubled = _message_db(tmp_path / "doubled.db", [row(1, "0.0"), row(2, "0.1"), row(3, "0.2"), row(4, "0.1")], 4)
    errors, _ = verify_stored(doubled, conversations, acked, 64)
    assert any("stored twice" in e for e in errors)
    assert any("never acked" in e for e in errors)

    wrong_body = _message_db(tmp_path / "body.db", [row(1, "0.0"), row(2, "0.1"), (1, 3, 7, "0.2", "other")], 3)
    errors, _ = verify_stored(wrong_body, conversations, acked, 64)
    assert any("another body" in e for e in errors)


@pytest.mark.timeout(120)
def test_a_run_that_judged_too_few_messages_is_inconclusive_never_a_pass(tmp_path: Path) -> None:
    """A correct relay, but the run cannot reach --min-judged acked messages: it must fail."""
    _require_node()
    out = tmp_path / "few.json"
    proc = subprocess.run(
        [sys.executable, str(RUN_PY), "--smoke", "--scenario", "s1", "--db", "none", "--baselines", "python",
         "--min-judged", "1000000", "--out", str(out), "--work-root", str(tmp_path / "work")],
        cwd=PROJECT_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=100,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    document = json.loads(out.read_text())
    assert document["correct"] is False
    [result] = document["results"]
    assert result["ok"] is False
    assert any(e.startswith("inconclusive: only") for e in result["errors"]), result["errors"]
    assert 0 < result["metrics"]["total_acked"] < 1000000
