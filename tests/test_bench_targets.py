"""How bench/harness/report.py judges issue 16's targets: against the relay on the same event loop.

Aurora runs on uvloop by default, so "the python-socketio relay on the same event loop" is the relay
on uvloop; issue 5's targets keep the relay as its docs set it up (asyncio). The results here are
what bench/run.py records per run, reduced to the figures the judgement reads.
"""

from __future__ import annotations

from typing import Any

from bench.harness.report import summarize

S4_CPU = "S4 SQLite: server CPU ≤ 1.5x python-socketio relay on the same event loop (issue 16)"
S4_P99_ISSUE5 = "S4 delivery p99 ≤ 1.5x python-socketio relay at the same rate (issue 5)"


def _s4(target: str, run: int, cpu: float, p99: float) -> dict[str, Any]:
    return {"scenario": "s4", "variant": None, "target": target, "run": run, "ok": True,
            "metrics": {"server_cpu_util": cpu, "delivery_p99_ms": p99, "sustained": 1.0}}


def _verdicts(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["target"]: item for item in summarize(results)["targets"] if item["server"] == "aurora-sqlite"}


def test_issue_16_is_judged_against_the_relay_on_uvloop_with_the_asyncio_one_beside() -> None:
    results = []
    for run in (1, 2, 3):
        results += [_s4("py-relay", run, 0.40, 4.0), _s4("py-relay-uvloop", run, 0.34, 3.8),
                    _s4("aurora-sqlite", run, 0.55, 5.0)]
    verdicts = _verdicts(results)
    cpu = verdicts[S4_CPU]
    # 0.55 / 0.34 = 1.62 against the uvloop relay: missed, although it is 1.375 of the asyncio relay.
    assert cpu["holds"] is False
    assert abs(cpu["ratio"] - 0.55 / 0.34) < 1e-9
    assert "python-socketio relay on uvloop" in cpu["detail"]
    assert "x1.38 of the python-socketio relay" in cpu["detail"]
    # Issue 5's p99 target is still the asyncio relay's: 5.0 / 4.0.
    assert verdicts[S4_P99_ISSUE5]["holds"] is True
    assert abs(verdicts[S4_P99_ISSUE5]["ratio"] - 1.25) < 1e-9


def test_without_the_uvloop_relay_the_same_loop_targets_say_what_they_need() -> None:
    results = [_s4("py-relay", 1, 0.40, 4.0), _s4("aurora-sqlite", 1, 0.50, 5.0)]
    cpu = _verdicts(results)[S4_CPU]
    assert cpu["holds"] is None
    assert cpu["detail"] == "needs the python-socketio relay on uvloop in the same run"
