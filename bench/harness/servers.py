"""The servers under test, each a process of its own, started and stopped by PID.

Targets: Aurora on SQLite, Aurora on PostgreSQL (a fresh schema per server), the bare
python-socketio relay and the Node socket.io relay. With taskset and at least 2 cores the
server runs on core 0 and the load generator on core 1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
PYTHON_RELAY = BENCH / "baseline_python_relay.py"
NODE_RELAY = BENCH / "baseline_node_relay.mjs"
NODE_PG = BENCH / "baseline_node_pg.mjs"

AURORA_TARGETS = ("aurora-sqlite", "aurora-postgresql")
BASELINES = ("node-relay", "node-pg", "py-relay", "py-relay-uvloop")
TARGETS = ("node-relay", "node-pg", "py-relay", "py-relay-uvloop", "aurora-sqlite", "aurora-postgresql")
# Servers that store messages in PostgreSQL (a fresh schema each; their database CPU is measured too).
POSTGRES_TARGETS = ("node-pg", "aurora-postgresql")
# The Node + PostgreSQL baseline runs where storage is what is compared (not S3 idle, nor Aurora-only ones).
NODE_PG_SCENARIOS = {"s1", "s2", "s4"}
# The relay on uvloop (Aurora's default event loop) runs where issue 16 compares "on the same event loop".
PY_UVLOOP_SCENARIOS = {"s1", "s4", "s6"}
LABELS = {
    "node-relay": "Node socket.io relay",
    "node-pg": "Node socket.io + PostgreSQL",
    "py-relay": "python-socketio relay",
    "py-relay-uvloop": "python-socketio relay on uvloop",
    "aurora-sqlite": "Aurora SQLite",
    "aurora-postgresql": "Aurora PostgreSQL",
}
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_SECRET = "aurora-bench-secret-key-0123456789-abcdefghij"
# Only what makes setting up thousands of accounts cheap; everything else stays at its default
# (SQLite synchronous=FULL, the default websocket options), unless AURORA_* in the environment says otherwise.
AURORA_BENCH_ENV = {
    "AURORA_SECRET_KEY": BENCH_SECRET,
    "AURORA_ARGON2_MEMORY_KIB": "256",
    "AURORA_ARGON2_TIME_COST": "1",
}
# The suite measures capacity: the abuse limits (docs/operations.md#abuse-limits) would refuse its
# load generator, which is one "user" sending far faster than a person. bench/abuse.py measures them.
AURORA_ENV_DEFAULTS = {"AURORA_LOG_LEVEL": "WARNING", "AURORA_RATE_LIMITS_ENABLED": "false",
                       "AURORA_MAX_SOCKETS_PER_USER": "1000000", "AURORA_HASH_QUEUE_MAX": "100000"}


def postgres_admin_url() -> str:
    return os.environ.get("AURORA_BENCH_POSTGRES_URL") or os.environ.get(
        "AURORA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL
    )


@dataclass
class Pinning:
    server: list[str] = field(default_factory=list)
    loadgen: list[str] = field(default_factory=list)
    note: str = "not pinned"


def pinning(enabled: bool, server_cpus: str = "0", loadgen_cpus: str = "1") -> Pinning:
    taskset = shutil.which("taskset")
    if not enabled:
        return Pinning(note="not pinned (--no-pin)")
    if taskset is None:
        return Pinning(note="not pinned (no taskset)")
    if (os.cpu_count() or 1) < 2:
        return Pinning(note="not pinned (one core)")
    return Pinning([taskset, "-c", server_cpus], [taskset, "-c", loadgen_cpus],
                   f"server on core {server_cpus}, load generator on core {loadgen_cpus} (taskset)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_file_limit(needed: int) -> tuple[int, int]:
    """Open-file limit up to `needed` (the hard limit too when we may); children inherit it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, needed)
    if hard != resource.RLIM_INFINITY and want > hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class ServerProcess:
    """One server process; its output goes to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
                 port: int, health_path: str | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.health_path = health_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.cwd = ROOT
        self._log: Any = None
        self.extra_ports: list[int] = []  # the other processes of `app.py --workers N`

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in [self.port, *self.extra_ports]]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_within: float = 60) -> None:
        self._log = self.log_path.open("ab")  # appended: S6 starts the same server again
        # A session of its own: Ctrl-C in the terminal reaches the orchestrator, which stops it by PID.
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before serving:\n{self.log_tail(8)}")
            if self._ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not serve on port {self.port} within {ready_within}s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        for port in [self.port, *self.extra_ports]:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            except OSError:
                return False
        if self.health_path is None:
            return True
        try:
            with urllib.request.urlopen(self.url + self.health_path, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, within: float = 20) -> int | None:
        """SIGTERM by PID, SIGKILL if it has not ended within `within` seconds."""
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(within)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def aurora_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT")}
    for key, value in AURORA_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    env.update(AURORA_BENCH_ENV)
    env["AURORA_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def aurora_settings_in_effect(env: dict[str, str]) -> dict[str, str]:
    """The AURORA_* variables a run passed to Aurora (the secret masked), for the results file."""
    return {k: ("***" if "SECRET" in k else v) for k, v in sorted(env.items()) if k.startswith("AURORA_")}


def make_server(target: str, workdir: Path, pin: Pinning, database_url: str | None,
                python_prefix: list[str] | None = None, aurora_root: Path = ROOT, workers: int = 1) -> ServerProcess:
    port = free_port()
    log_path = workdir / f"{target}.log"
    if target in AURORA_TARGETS:
        assert database_url is not None
        argv = [*pin.server, *(python_prefix or [sys.executable]), str(aurora_root / "app.py"), "--host", "127.0.0.1",
                "--port", str(port), "--database-url", database_url]
        env = aurora_env(workdir)
        if workers > 1:
            # Several processes behind one Redis (docs/scaling.md), each on its own port.
            argv += ["--workers", str(workers)]
            env.setdefault("AURORA_REDIS_URL", os.environ.get("AURORA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
            env["AURORA_REDIS_PREFIX"] = f"bench{uuid.uuid4().hex[:10]}"
        server = ServerProcess(target, argv, env, log_path, port, health_path="/health")
        server.extra_ports = [port + i for i in range(1, workers)]
        server.cwd = aurora_root
        return server
    if target in ("py-relay", "py-relay-uvloop"):
        argv = [*pin.server, *(python_prefix or [sys.executable]), str(PYTHON_RELAY), "--port", str(port)]
        if target == "py-relay-uvloop":
            argv += ["--loop", "uvloop"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return ServerProcess(target, argv, env, log_path, port)
    if target == "node-relay":
        argv = [*pin.server, node_binary(), str(NODE_RELAY), "--port", str(port)]
        return ServerProcess(target, argv, dict(os.environ), log_path, port)
    if target == "node-pg":
        assert database_url is not None
        schema = schema_of(database_url)
        argv = [*pin.server, node_binary(), str(NODE_PG), "--port", str(port), "--database-url",
                postgres_admin_url(), "--schema", schema, "--application-name", application_name(database_url)]
        return ServerProcess(target, argv, dict(os.environ), log_path, port)
    raise ValueError(f"unknown target {target}")


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed (the load generator and the Node relay need Node.js 18+)")
    return node


def node_packages_ready() -> bool:
    return (BENCH / "node_modules" / "socket.io-client" / "package.json").exists() and (
        BENCH / "node_modules" / "socket.io" / "package.json"
    ).exists()


# -- PostgreSQL: one fresh schema per server ----------------------------------------------------
def postgres_reachable(admin_url: str) -> str | None:
    """None when reachable, else the reason."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed"
    try:
        conn = psycopg2.connect(admin_url, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        return str(exc).strip().splitlines()[0]
    conn.close()
    return None


def postgres_facts(admin_url: str) -> dict[str, str]:
    import psycopg2

    conn = psycopg2.connect(admin_url, connect_timeout=3)
    try:
        with conn.cursor() as cur:
            facts = {}
            for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "shared_buffers",
                         "data_directory"):
                cur.execute(f"SHOW {name}")
                facts[name] = cur.fetchone()[0]
            return facts
    finally:
        conn.close()


# The system catalogs that every schema created and dropped leaves dead rows in (the test suite and the
# bench make thousands): seen at 437 MB in the test database, with Aurora PostgreSQL's S4 p99 at 34-56 ms;
# 14 ms right after VACUUM FULL of these (9.5 MB).
_CHURNED_CATALOGS = ("pg_attribute", "pg_depend", "pg_class", "pg_trigger", "pg_index", "pg_constraint",
                     "pg_type", "pg_attrdef", "pg_statistic", "pg_sequence", "pg_rewrite")


def compact_postgres_catalogs(admin_url: str) -> tuple[int, int]:
    """VACUUM FULL the catalogs that schema churn bloats, so runs on days with a bloated catalog compare
    with runs on days without; (database bytes before, after). Each takes an exclusive lock for a moment;
    one that cannot have it within lock_timeout (something else is using the database) is skipped."""
    import psycopg2

    conn = psycopg2.connect(admin_url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET lock_timeout = '1s'")
            cur.execute("SELECT pg_database_size(current_database())")
            before = cur.fetchone()[0]
            for table in _CHURNED_CATALOGS:
                try:
                    cur.execute(f"VACUUM FULL pg_catalog.{table}")
                except psycopg2.errors.LockNotAvailable:
                    continue
            cur.execute("SELECT pg_database_size(current_database())")
            return before, cur.fetchone()[0]
    finally:
        conn.close()


def schema_of(database_url: str) -> str:
    match = re.search(r"search_path%3D(bench_[0-9a-f]+)|search_path=(bench_[0-9a-f]+)", database_url)
    assert match, database_url
    return match.group(1) or match.group(2)


def application_name(database_url: str) -> str:
    """The name the run's server connects to PostgreSQL with: its backends are found by it (their CPU)."""
    return f"{schema_of(database_url)}_app"


@contextlib.contextmanager
def postgres_schema(admin_url: str) -> Iterator[str]:
    """A database URL whose search_path is a new schema; the schema is dropped afterwards."""
    import psycopg2

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(admin_url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in admin_url else "?"
        yield (f"{admin_url}{sep}options={quote('-csearch_path=' + schema, safe='-')}"
               f"&application_name={schema}_app")
    finally:
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            conn.close()
