"""Run the whole suite several times in a row, optionally under a CPU hog, and count flaky failures.

    .venv/bin/python bench/flaky.py                       # 5 runs, -n 2, with a CPU load (make flaky)
    .venv/bin/python bench/flaky.py --runs 2 --no-load    # quicker

The load is `stress --cpu N` when installed, else N Python processes spinning (the same effect on a
scheduler: the suite's processes get a share of the cores, not all of them). A test that fails in
some runs and passes in others is flaky; one that fails in every run is broken. Exit 1 on any failure.
Each run's pytest output is kept in bench/results/flaky-run-N.log.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FAILED = re.compile(r"^(FAILED|ERROR) (\S+)", re.MULTILINE)
SPIN = "import time\nwhile True:\n    pass\n"


def start_load(cpus: int) -> list[subprocess.Popen[bytes]]:
    if shutil.which("stress"):
        return [subprocess.Popen(["stress", "--cpu", str(cpus)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)]
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(cpus)]


def stop_load(load: list[subprocess.Popen[bytes]]) -> None:
    for proc in load:
        if proc.args and proc.args[0] == "stress":
            os.killpg(proc.pid, 15)  # stress forks its workers into the session it leads
        else:
            proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", default="2", help="pytest-xdist -n")
    parser.add_argument("--load-cpus", type=int, default=1, help="CPU hogs beside the suite (default 1)")
    parser.add_argument("--no-load", action="store_true")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    env = {**os.environ, "AURORA_REQUIRE_SERVICES": os.environ.get("AURORA_REQUIRE_SERVICES", "1")}
    failures: collections.Counter[str] = collections.Counter()
    durations = []
    load = [] if args.no_load else start_load(args.load_cpus)
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-n", args.workers, "--dist", "loadfile", "-q", "-rfE",
                 "-p", "no:cacheprovider", *args.pytest_args],
                cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            durations.append(time.monotonic() - started)
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"flaky-run-{run}.log").write_text(done.stdout + done.stderr)  # for the why
            failed = sorted(set(m.group(2) for m in FAILED.finditer(done.stdout)))
            failures.update(failed)
            summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
            loadavg = Path("/proc/loadavg")
            load_now = " ".join(loadavg.read_text().split()[:3]) if loadavg.exists() else "?"
            print(f"run {run}/{args.runs}: {durations[-1]:.0f}s exit {done.returncode} (load average at its end "
                  f"{load_now}): {summary}", flush=True)
            for name in failed:
                print(f"    {name}", flush=True)
            if done.returncode not in (0, 1):  # interrupted, internal error, usage error
                print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
                return 2
    finally:
        stop_load(load)
    flaky = {name: n for name, n in failures.items() if n < args.runs}
    broken = {name: n for name, n in failures.items() if n == args.runs}
    print(f"{args.runs} runs, load {'none' if args.no_load else f'{args.load_cpus} CPU hog(s)'}, "
          f"{sum(durations) / len(durations):.0f}s per run on average: "
          f"{len(flaky)} flaky test(s), {len(broken)} failing in every run")
    for name, n in sorted(flaky.items()):
        print(f"  flaky ({n}/{args.runs}): {name}")
    for name in sorted(broken):
        print(f"  broken: {name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
