"""Aurora's benchmark suite (issue 5): Aurora on SQLite and PostgreSQL against two bare relays.

    .venv/bin/python bench/run.py                 # everything, 3 runs each (make bench)
    .venv/bin/python bench/run.py --quick         # everything once, small and short (< 1 minute)
    .venv/bin/python bench/run.py --smoke         # a few seconds, correctness only (make test)
    .venv/bin/python bench/run.py --scenario s1 --db sqlite --duration 5 --runs 1

Each server runs as its own process on core 0, the Node load generator (bench/loadgen.mjs) on
core 1. Every scenario checks correctness while it measures, and on Aurora the database is
checked afterwards; a run that loses, duplicates or reorders anything prints FAIL and the
suite exits 1, whatever its speed. Results: a table on stdout and bench/results/<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import charts, node_pg, physics, report
from bench.harness import profile as profiling
from bench.harness.populate import aurora_population, relay_population
from bench.harness.scenarios import (
    AURORA_ONLY,
    SCENARIOS,
    TITLES,
    loadgen_params,
    population,
    sizes_for,
    variants,
)
from bench.harness.servers import (
    AURORA_TARGETS,
    BENCH,
    LABELS,
    NODE_PG_SCENARIOS,
    POSTGRES_TARGETS,
    PY_UVLOOP_SCENARIOS,
    ROOT,
    TARGETS,
    Pinning,
    application_name,
    aurora_env,
    aurora_settings_in_effect,
    compact_postgres_catalogs,
    make_server,
    node_binary,
    node_packages_ready,
    pinning,
    postgres_admin_url,
    postgres_facts,
    postgres_reachable,
    postgres_schema,
    raise_file_limit,
)
from bench.harness.verify import verify_stored

LOADGEN = BENCH / "loadgen.mjs"
RESULTS = BENCH / "results"
HEADLINE = {
    "s1": ("acked_per_s", "acked {:,.0f} msg/s"),
    "s2": ("delivered_per_s", "{:,.0f} deliveries/s"),
    "s3": ("kib_per_connection", "{:.1f} KiB/connection"),
    "s4": ("delivery_p99_ms", "delivery p99 {:.1f} ms"),
    "s5": ("catchup_s", "caught up in {:.2f} s"),
    "s6": ("connects_per_s", "{:,.0f} connects/s after the restart"),
    "s7": ("acked_per_s", "acked {:,.0f} entries/s"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Sizes default to the full run; --quick and --smoke pick smaller ones, "
                                       "and every option below overrides them.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="every scenario once, small and short (< 1 minute)")
    mode.add_argument("--smoke", action="store_true", help="a few seconds, tiny sizes, correctness only")
    p.add_argument("--scenario", action="append", choices=SCENARIOS,
                   help="run only this scenario (repeatable; default: all)")
    p.add_argument("--db", choices=("sqlite", "postgresql", "both", "none"), default="both",
                   help="Aurora on which database (default both; none: baselines only)")
    p.add_argument("--baselines", default="python,python-uvloop,node,node-pg",
                   help="comma-separated baselines to run alongside: python (relay), python-uvloop (the same "
                        "relay on uvloop, Aurora's event loop; S1, S4, S6), node (relay), node-pg "
                        "(socket.io + node-postgres, one INSERT per message; S1, S2, S4), or none "
                        "(default python,python-uvloop,node,node-pg)")
    p.add_argument("--runs", type=int, help="runs of each scenario per server (targets are medians of >= 3)")
    p.add_argument("--duration", type=float, help="measured seconds of S1, S2 and S4")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before the measured window (S1, S2, S4)")
    p.add_argument("--pairs", type=int, help="conversations of S1 and S4")
    p.add_argument("--inflight", type=int, help="messages each sender keeps in flight (S1, S2)")
    p.add_argument("--members", type=int, help="group size of S2")
    p.add_argument("--connections", help="idle connection counts of S3, comma-separated (e.g. 2000,10000)")
    p.add_argument("--rate", type=float, help="messages per second of S4")
    p.add_argument("--catchup-clients", type=int, help="clients of S5")
    p.add_argument("--catchup-messages", type=int, help="messages each S5 client missed")
    p.add_argument("--catchup-group", type=int, help="readers per S5 conversation")
    p.add_argument("--page", type=int, help="sync limit in S5")
    p.add_argument("--storm-clients", type=int, help="clients of S6 (groups of 10)")
    p.add_argument("--body-bytes", type=int, help="message body size")
    p.add_argument("--min-judged", type=int,
                   help="S1, S2, S4, S7: a run that acked and judged fewer messages is inconclusive and fails")
    p.add_argument("--push-standin", type=float, metavar="MS",
                   help="Web Push: S1 also runs with an offline member per pair, without and with "
                        "--push-subscriptions subscriptions at a stand-in push service answering after MS ms")
    p.add_argument("--push-subscriptions", type=int, default=2, help="subscriptions per offline member (default 2)")
    p.add_argument("--push-status", type=int, default=201,
                   help="the stand-in's answer (default 201; 503 makes every push retry, then drop)")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and load generator to cores")
    p.add_argument("--workers", type=int, default=1,
                   help="run Aurora PostgreSQL as `app.py --workers N` behind Redis, clients spread over the "
                        "processes (compare with --workers 1, both with --no-pin; server CPU figures then "
                        "cover only the supervisor and are left out)")
    p.add_argument("--profile", choices=("py-spy", "pyinstrument"),
                   help="profile the Aurora server while it runs (its figures are then not comparable)")
    p.add_argument("--out", type=Path, help="results file (default bench/results/<time>-<mode>.json)")
    p.add_argument("--markdown", type=Path, help="also write the table and targets as Markdown to this file")
    p.add_argument("--aurora-root", type=Path, default=ROOT,
                   help="run Aurora from this checkout (e.g. a `git worktree` of another commit); default: this one")
    p.add_argument("--charts", type=Path, metavar="DIR",
                   help="also draw the charts (SVG) from the results into DIR (with --report: from that file)")
    p.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                   help="run nothing: print the table and targets of an earlier results file again")
    p.add_argument("--work-root", type=Path,
                   help="where databases and logs of the runs go (default bench/results; failed runs keep theirs)")
    p.add_argument("--keep", action="store_true", help="keep server logs and databases of every run")
    p.add_argument("--serial", action="store_true",
                   help="with --smoke: one server at a time (by default the smoke run drives all servers at once)")
    return p


def _apply_overrides(sizes: dict[str, Any], args: argparse.Namespace) -> None:
    if args.runs is not None:
        sizes["runs"] = max(1, args.runs)
    for name in ("s1", "s2", "s4", "s7"):
        if args.duration is not None:
            sizes[name]["duration_s"] = args.duration
        if args.warmup is not None:
            sizes[name]["warmup_s"] = args.warmup
    if args.pairs is not None:
        sizes["s1"]["pairs"] = sizes["s4"]["pairs"] = sizes["s7"]["pairs"] = args.pairs
    if args.inflight is not None:
        sizes["s1"]["inflight"] = sizes["s2"]["inflight"] = sizes["s7"]["inflight"] = args.inflight
    if args.members is not None:
        sizes["s2"]["members"] = args.members
    if args.connections:
        sizes["s3"]["connections"] = [int(x) for x in args.connections.split(",") if x.strip()]
    if args.rate is not None:
        sizes["s4"]["rate"] = args.rate
    if args.catchup_clients is not None:
        sizes["s5"]["clients"] = args.catchup_clients
    if args.catchup_messages is not None:
        sizes["s5"]["messages"] = args.catchup_messages
    if args.catchup_group is not None:
        sizes["s5"]["group_size"] = args.catchup_group
    if args.page is not None:
        sizes["s5"]["page"] = args.page
    if args.storm_clients is not None:
        sizes["s6"]["clients"] = args.storm_clients
    if args.body_bytes is not None:
        for name in SCENARIOS:
            sizes[name]["body_bytes"] = args.body_bytes
    if args.min_judged is not None:
        for name in SCENARIOS:
            sizes[name]["min_judged"] = args.min_judged


def _targets(args: argparse.Namespace) -> list[str]:
    wanted = {x.strip() for x in args.baselines.split(",") if x.strip()} - {"none"}
    unknown = wanted - {"python", "python-uvloop", "node", "node-pg"}
    if unknown:
        raise SystemExit(f"bench/run.py: unknown baseline(s): {', '.join(sorted(unknown))}")
    chosen = []
    if "node" in wanted:
        chosen.append("node-relay")
    if "node-pg" in wanted:
        chosen.append("node-pg")
    if "python" in wanted:
        chosen.append("py-relay")
    if "python-uvloop" in wanted:
        chosen.append("py-relay-uvloop")
    if args.db in ("sqlite", "both"):
        chosen.append("aurora-sqlite")
    if args.db in ("postgresql", "both"):
        chosen.append("aurora-postgresql")
    return [t for t in TARGETS if t in chosen]


def _required() -> bool:
    return os.environ.get("AURORA_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


# -- machine facts --------------------------------------------------------------------------
def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _filesystem(path: Path) -> str:
    best, kind = "", "?"
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("python-socketio", "python-engineio", "aiohttp", "peewee", "psycopg2-binary"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    with contextlib.suppress(OSError, subprocess.SubprocessError, RuntimeError):
        out["node"] = subprocess.run([node_binary(), "--version"], capture_output=True, text=True,
                                     timeout=10).stdout.strip()
    for package in ("socket.io", "socket.io-client"):
        with contextlib.suppress(OSError, ValueError):
            out[package] = json.loads((BENCH / "node_modules" / package / "package.json").read_text())["version"]
    return out


def _git_commit(where: Path) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True,
                            text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "aurora", "app.py"],
                           cwd=where, capture_output=True, text=True, check=False).stdout.strip()
    return (commit or "?") + (" + uncommitted changes to aurora/" if dirty else "")


def machine_info(workroot: Path) -> dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    mem_kib = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                    if line.startswith("MemTotal:")), 0)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "loadavg_start": _read("/proc/loadavg").split()[:3],
        "db_filesystem": _filesystem(workroot),
        "bench_commit": _git_commit(ROOT),
        "versions": _versions(),
    }


# -- one server, one scenario, one run -----------------------------------------------------------
def run_loadgen(setup_path: Path, result_path: Path, pin: Pinning, hard_timeout_s: float,
                log_path: Path, restart: Any = None) -> dict[str, Any]:
    """Run the load generator; `restart` (S6) is called when it asks for the server to be restarted."""
    argv = [*pin.loadgen, node_binary(), "--max-old-space-size=4096", str(LOADGEN), str(setup_path),
            str(result_path)]
    request = result_path.with_name(result_path.name + ".restart")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=BENCH, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + hard_timeout_s + 30
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if restart is not None and request.exists():
                    request.unlink()
                    answer = restart()
                    # Written aside and renamed: the load generator polls for the name and must never
                    # read it half written (it once parsed an empty file: "Unexpected end of JSON input").
                    restarted = result_path.with_name(result_path.name + ".restarted")
                    partial = restarted.with_name(restarted.name + ".partial")
                    partial.write_text(json.dumps(answer))
                    os.replace(partial, restarted)
                try:
                    proc.wait(0.02)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    if not result_path.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"the load generator wrote no result (exit {proc.returncode}):\n{tail}")
    return json.loads(result_path.read_text())


def writer_metrics(url: str, out: Path) -> dict[str, float]:
    """The message writer's batches and commits from /metrics (sums and counts): why latency is what it is."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except (OSError, ValueError):
        return {}
    out.write_text(text)
    wanted = {"aurora_writer_batch_size_sum": "batch_entries", "aurora_writer_batch_size_count": "batches",
              "aurora_commit_duration_seconds_sum": "commit_s", "aurora_commit_duration_seconds_count": "commits"}
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            found[wanted[name]] = float(value)
    return found


def run_one(scenario: str, variant: int | None, target: str, run: int, params: dict[str, Any], pin: Pinning,
            workroot: Path, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{scenario}-{target}-r{run}-", dir=workroot))
    result: dict[str, Any] = {"scenario": scenario, "variant": variant, "target": target, "run": run, "ok": False,
                              "errors": [], "error_count": 0, "metrics": {}}
    plan = population(scenario, params, variant)
    lg_params = loadgen_params(scenario, params, variant)
    aurora = target in AURORA_TARGETS
    profiler = None
    profile_out = None
    python_prefix = None
    if aurora and args.profile == "pyinstrument":
        profile_out = workdir / "pyinstrument.txt"
        python_prefix = profiling.pyinstrument_prefix(profile_out)
    with contextlib.ExitStack() as stack:
        database_url = None
        try:
            if target == "aurora-sqlite":
                database_url = f"sqlite:///{workdir}/aurora.db"
            elif target in POSTGRES_TARGETS:
                database_url = stack.enter_context(postgres_schema(postgres_admin_url()))
            workers = args.workers if target == "aurora-postgresql" else 1
            server = make_server(target, workdir, pin, database_url, python_prefix, args.aurora_root, workers)
            stack.callback(server.stop)  # by PID, in every case
            t0 = time.monotonic()
            server.start()
            result["server_start_s"] = time.monotonic() - t0
            t0 = time.monotonic()
            people = aurora_population(server.url, plan) if aurora else relay_population(plan)
            if target == "node-pg":
                node_pg.prepare(database_url or "", people["conversations"])
            result["setup_s"] = people["setup_s"]
            setup = {
                "scenario": scenario, "target": target, "url": server.url, "namespace": "/chat",
                "server_pid": server.pid, "clk_tck": os.sysconf("SC_CLK_TCK"),
                "health_url": server.url + "/health" if aurora else None,
                "report_acked": aurora or target == "node-pg",
                "params": lg_params, "clients": people["clients"], "conversations": people["conversations"],
            }
            if len(server.urls) > 1:
                setup["urls"] = server.urls
            if target in POSTGRES_TARGETS:
                # The loadgen finds this server's PostgreSQL backends by name and counts their CPU too.
                setup["db"] = {"url": postgres_admin_url(), "application_name": application_name(database_url or "")}
            setup_path, result_path = workdir / "setup.json", workdir / "result.json"
            setup_path.write_text(json.dumps(setup))
            if aurora and args.profile == "py-spy":
                profile_out = workdir / "py-spy.raw"
                seconds = float(lg_params.get("warmup_s", 0)) + float(lg_params.get("duration_s", 5)) + 1
                profiler = profiling.start_py_spy(server.pid, seconds, profile_out)
            def restart() -> dict[str, Any]:  # S6: the same server, stopped (SIGTERM) and started again
                nonlocal profiler
                t_restart = time.monotonic()
                server.stop(within=5)  # a deploy: SIGTERM, then SIGKILL if draining takes longer
                server.start()
                if profiler is not None:  # S6 measures the restarted server: profile that one, the storm
                    try:
                        profiler.wait(30)  # the first server's py-spy has ended with it (its file written)
                    except subprocess.TimeoutExpired:
                        profiler.kill()
                        profiler.wait(10)
                    profiler = profiling.start_py_spy(server.pid, float(lg_params.get("storm_timeout_s", 60)),
                                                      profile_out)
                return {"pid": server.pid, "restart_s": time.monotonic() - t_restart}

            outcome = run_loadgen(setup_path, result_path, pin, lg_params["hard_timeout_s"], workdir / "loadgen.log",
                                  restart if scenario == "s6" else None)
            result["metrics"] = outcome.get("metrics") or {}
            if aurora:
                with contextlib.suppress(OSError, ValueError):
                    with urllib.request.urlopen(server.url + "/health", timeout=5) as response:
                        result["push"] = json.loads(response.read()).get("push")
                result["writer"] = writer_metrics(server.url, workdir / "metrics.txt")
            if len(server.urls) > 1:  # the pid measured is the supervisor's, not the workers'
                result["metrics"] = {k: v for k, v in result["metrics"].items() if not k.startswith("server_")}
            result["errors"] = list(outcome.get("errors") or [])
            result["error_count"] = int(outcome.get("error_count") or 0)
            if (aurora or target == "node-pg") and outcome.get("acked") is not None:
                db_errors, checked = verify_stored(database_url or "", people["conversations"], outcome["acked"],
                                                   int(lg_params["body_bytes"]))
                result["stored_checked"] = checked
                result["errors"] += [f"database: {e}" for e in db_errors]
                result["error_count"] += len(db_errors)
            result["ok"] = result["error_count"] == 0 and bool(outcome.get("ok"))
            if not result["ok"] and result["error_count"] == 0:
                result["error_count"] = 1
                result["errors"].append("the load generator reported a failure")
            result["wall_s"] = time.monotonic() - t0
            if profiler is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    profiler.wait(30)
        except Exception as exc:
            result["errors"].append(f"{type(exc).__name__}: {exc}")
            result["error_count"] += 1
            result["ok"] = False
        finally:
            if profiler is not None and profiler.poll() is None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes what it recorded, then exits
                try:
                    profiler.wait(30)
                except subprocess.TimeoutExpired:
                    profiler.kill()
                    profiler.wait(10)
    if profile_out is not None and profile_out.exists():
        result["profile_file"] = str(profile_out)
        if profile_out.suffix == ".raw":
            metrics = result["metrics"]
            result["profile"] = profiling.summarize(
                profile_out, profiling.PY_SPY_RATE, int(metrics.get("total_acked") or 0),
                metrics.get("server_thread_cpu_s"), metrics.get("acked"), metrics.get("server_thread_kernel_s"))
    keep = args.keep or not result["ok"] or profile_out is not None
    if keep:
        result["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _headline(result: dict[str, Any]) -> str:
    key, fmt = HEADLINE[result["scenario"]]
    value = result["metrics"].get(key)
    text = fmt.format(value) if isinstance(value, (int, float)) else "no figure"
    verdict = "PASS" if result["ok"] else f"FAIL ({result['error_count']} error(s))"
    return f"{text} — {verdict}"


def reprint(path: Path, markdown: Path | None) -> int:
    document = json.loads(path.read_text())
    summary = report.summarize(document["results"])
    table = report.table(summary)
    targets_text = report.targets_text(summary) if document.get("mode") != "smoke" else ""
    machine = document.get("machine", {})
    print(f"{path.name}: mode {document.get('mode')}, Aurora {document.get('aurora_commit', '?')}, "
          f"{machine.get('nproc')} x {machine.get('cpu_model')}, load {machine.get('loadavg_start')} -> "
          f"{machine.get('loadavg_end')}; {document.get('pinning')}")
    print(table)
    print(machine.get("wal_flush_text", ""))
    if targets_text:
        print("\nTargets of issues 5 and 16 (medians; ratios from the same runs):")
        print(targets_text)
    for note in document.get("notes", []):
        print(f"note: {note}")
    if markdown:
        markdown.write_text(f"{table}\n\nTargets:\n{targets_text}\n")
    return 0 if document.get("correct") else 1


# -- the suite --------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.report:
        if args.charts:
            for path in charts.suite_charts(json.loads(args.report.read_text()), args.charts):
                print(f"chart: {path}")
        return reprint(args.report, args.markdown)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = sizes_for(mode)
    _apply_overrides(sizes, args)
    scenarios = [s for s in SCENARIOS if s in (args.scenario or SCENARIOS)]
    targets = _targets(args)
    notes: list[str] = []

    if not node_packages_ready():
        print("bench/run.py: bench/node_modules is missing: run `make bench` or `cd bench && npm ci`",
              file=sys.stderr)
        return 2
    try:
        node_binary()
    except RuntimeError as exc:
        print(f"bench/run.py: {exc}", file=sys.stderr)
        return 2
    pg_facts: dict[str, str] = {}
    if "aurora-postgresql" in targets or "node-pg" in targets:
        reason = postgres_reachable(postgres_admin_url())
        if reason is not None:
            message = f"PostgreSQL at {postgres_admin_url()} unreachable: {reason}"
            if _required() or args.db == "postgresql":
                print(f"bench/run.py: {message}", file=sys.stderr)
                return 2
            notes.append(message + "; Aurora PostgreSQL skipped")
            print(f"note: {notes[-1]}", file=sys.stderr)
            targets.remove("aurora-postgresql")
            if "node-pg" in targets:
                targets.remove("node-pg")
        else:
            pg_facts = postgres_facts(postgres_admin_url())
            if pg_facts.get("synchronous_commit") != "on" or pg_facts.get("fsync") != "on":
                notes.append(f"PostgreSQL is not durable-by-default here: {pg_facts}")
            if not args.smoke:  # (a smoke run shares the database with the test suite running beside it)
                before, after = compact_postgres_catalogs(postgres_admin_url())
                pg_facts["database_bytes_before_compaction"] = str(before)
                pg_facts["database_bytes"] = str(after)
                print(f"PostgreSQL catalogs compacted (VACUUM FULL): {before / 1e6:.1f} -> {after / 1e6:.1f} MB",
                      flush=True)
    if not targets:
        print("bench/run.py: nothing to run (no server chosen)", file=sys.stderr)
        return 2

    standin = None
    if args.push_standin is not None:
        from bench.harness.push_standin import PushStandIn

        standin = PushStandIn(args.push_standin, args.push_status).start()
        sizes["s1"]["push_subscriptions"] = max(1, args.push_subscriptions)
        sizes["s1"]["push_url"] = standin.url
        os.environ["AURORA_PUSH_ALLOW_INSECURE_ENDPOINTS"] = "true"  # the stand-in is plain http on loopback
        os.environ["AURORA_PUSH_ENDPOINT_HOSTS"] = "127.0.0.1"
        notes.append(f"push stand-in: answers {args.push_status} after {args.push_standin:g} ms")
    largest = max([*sizes["s3"]["connections"], 1000]) if "s3" in scenarios else 1000
    limits = raise_file_limit(largest * 2 + 2048)
    parallel = args.smoke and not args.serial
    pin = pinning(not args.no_pin and not parallel)
    if parallel:
        pin.note = "not pinned (smoke: all servers at once)"
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_path = args.out or RESULTS / f"{stamp}-{mode}.json"
    (args.work_root or RESULTS).mkdir(parents=True, exist_ok=True)
    workroot = Path(tempfile.mkdtemp(prefix=f"work-{stamp}-", dir=args.work_root or RESULTS))
    machine = machine_info(workroot)
    try:
        machine["wal_flush"] = physics.flush_timing(physics.flush_dir(pg_facts.get("data_directory"), workroot))
        machine["wal_flush_text"] = physics.describe(machine["wal_flush"])
    except OSError as exc:
        machine["wal_flush_text"] = f"WAL flush time not measured: {exc}"
    args.aurora_root = args.aurora_root.resolve()
    aurora_commit = _git_commit(args.aurora_root)
    shown = [t for t in targets if t in AURORA_TARGETS or any(s not in AURORA_ONLY for s in scenarios)]
    print(f"Aurora bench ({mode}): {', '.join(TITLES[s] for s in scenarios)} x "
          f"{', '.join(LABELS[t] for t in shown)}; {sizes['runs']} run(s) each; {pin.note}; "
          f"{machine['nproc']} x {machine['cpu_model']}, load {' '.join(machine['loadavg_start'])}; "
          f"Aurora {aurora_commit} in {args.aurora_root}", flush=True)
    print(machine["wal_flush_text"], flush=True)
    if args.profile:
        notes.append(f"profiled with {args.profile}: the Aurora figures of this run are not comparable")

    jobs = [(scenario, variant, run, target)
            for scenario in scenarios
            for variant in variants(scenario, sizes[scenario])
            for run in range(1, sizes["runs"] + 1)
            for target in targets
            if (scenario not in AURORA_ONLY or target in AURORA_TARGETS)
            and (target != "node-pg" or scenario in NODE_PG_SCENARIOS)
            and (target != "py-relay-uvloop" or scenario in PY_UVLOOP_SCENARIOS)
            if scenario != "s1" or variant is None or target in AURORA_TARGETS]
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    interrupted = False
    printing = threading.Lock()

    def one(job: tuple[str, int | None, int, str]) -> dict[str, Any]:
        scenario, variant, run, target = job
        label = f"[{report.row_title(scenario, variant)} run {run}/{sizes['runs']}] {LABELS[target]}: "
        if not parallel:
            print(label, end="", flush=True)
        result = run_one(scenario, variant, target, run, sizes[scenario], pin, workroot, args)
        with printing:
            print(("" if not parallel else label) + _headline(result), flush=True)
            if result.get("push") and (result["push"].get("sent") or result["push"].get("dropped")
                                       or result["push"].get("retried")):
                print(f"    push: {result['push']}", flush=True)
            if not result["ok"]:
                for error in result["errors"][:5]:
                    print(f"    {error}", flush=True)
        return result

    try:
        if parallel:
            # Smoke: each server's jobs in order, the servers side by side (no speed is measured).
            def lane(target: str) -> list[dict[str, Any]]:
                return [one(job) for job in jobs if job[3] == target]

            with ThreadPoolExecutor(len(targets)) as pool:
                done = [r for lane_results in pool.map(lane, targets) for r in lane_results]
            order = {job: i for i, job in enumerate(jobs)}
            results = sorted(done, key=lambda r: order[(r["scenario"], r["variant"], r["run"], r["target"])])
        else:
            for job in jobs:
                results.append(one(job))
    except KeyboardInterrupt:
        interrupted = True
        notes.append("interrupted: the figures are incomplete")
        print("\ninterrupted", file=sys.stderr)
    machine["loadavg_end"] = _read("/proc/loadavg").split()[:3]
    if standin is not None:
        notes.append(f"push stand-in received {standin.requests} request(s)")
        standin.stop()

    summary = report.summarize(results)
    table = report.table(summary) if results else "(no results)"
    targets_text = report.targets_text(summary) if mode != "smoke" else ""
    failures = report.failures_text(results)
    print()
    print(table)
    print(f"{machine['wal_flush_text']}; load average {' '.join(machine['loadavg_start'])} at the start, "
          f"{' '.join(machine['loadavg_end'])} at the end ({machine['nproc']} cores)")
    if targets_text:
        print("\nTargets of issues 5 and 16 (medians; ratios from the same runs):")
        print(targets_text)
    for result in results:
        if "profile" in result:
            where = report.row_title(result["scenario"], result["variant"])
            print(f"\nProfile of {LABELS[result['target']]} during {where} "
                  f"(run {result['run']}, {result['profile_file']}):")
            print(profiling.summary_text(result["profile"]))
        elif "profile_file" in result:
            print(f"\nProfile of {LABELS[result['target']]}: {result['profile_file']}")
    if mode == "smoke":
        notes.append("smoke run: correctness only, the figures mean nothing")
    for note in notes:
        print(f"note: {note}")
    correct = all(r["ok"] for r in results) and bool(results)
    if failures:
        print("\n" + failures)
    print(f"\n{'PASS' if correct else 'FAIL'}: {len(results)} run(s), "
          f"{sum(1 for r in results if not r['ok'])} failed, in {time.monotonic() - started:.0f} s; "
          f"results in {out_path}")

    document = {
        "mode": mode, "started": stamp, "argv": argv, "sizes": sizes, "targets": targets,
        "pinning": pin.note, "open_file_limit": list(limits), "machine": machine, "postgresql": pg_facts,
        "aurora_root": str(args.aurora_root), "aurora_commit": aurora_commit,
        "aurora_env": aurora_settings_in_effect(aurora_env(workroot)), "notes": notes,
        "correct": correct, "summary": summary, "results": results, "table": table,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(document, indent=1, default=str))
    if args.markdown:
        args.markdown.write_text(f"{table}\n\nTargets:\n{targets_text}\n")
    if args.charts:
        for path in charts.suite_charts(document, args.charts):
            print(f"chart: {path}")
    if not any("workdir" in r for r in results):
        shutil.rmtree(workroot, ignore_errors=True)
    return 0 if correct and not interrupted else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
