"""Test harness: the real Aurora app on an ephemeral port, real HTTP and Socket.IO clients.

Storage-facing tests run once on SQLite and once on PostgreSQL (fixture `db_url`).
PostgreSQL comes from AURORA_TEST_POSTGRES_URL (default: the local server); each
test gets its own schema, dropped afterwards. Without PostgreSQL those tests skip,
unless AURORA_REQUIRE_SERVICES=1, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import web

from aurora.services.clock import ManualClock
from aurora.settings import PROJECT_ROOT, Settings, load_settings
from tests.support.clients import Api, SocketFactory
from tests.support.cluster import Node, start_cluster, stop_cluster
from tests.support.services import postgres_admin_url, redis_test_url, require_or_skip

TEST_CONFIG = PROJECT_ROOT / "config" / "test.toml"
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values = {"database_url": database_url, "data_dir": str(tmp_path / "data"), "secret_key": TEST_SECRET}
    values.update(overrides)
    return load_settings(TEST_CONFIG, environ={}, overrides=values)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/aurora.db"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    import psycopg2

    admin = postgres_admin_url()
    try:
        conn = psycopg2.connect(admin, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        require_or_skip("PostgreSQL", f"{admin} unreachable: {exc}".splitlines()[0])
        raise
    conn.autocommit = True
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in admin else "?"
    try:
        yield f"{admin}{sep}options=-csearch_path%3D{schema}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, db_url: str) -> Settings:
    """config/test.toml plus @pytest.mark.settings(name=value) of the module, class and test
    (the closest marker wins, name by name)."""
    overrides: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("settings"))):
        overrides.update(marker.kwargs)
    return make_settings(tmp_path, db_url, **overrides)


class RunningServer:
    def __init__(self, app: web.Application, runner: web.AppRunner, port: int,
                 clock: ManualClock | None = None) -> None:
        self.app = app
        self.clock = clock  # set when the test drives the services' timers
        self.runner = runner
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_server(settings: Settings, clock: ManualClock | None = None) -> RunningServer:
    from aurora.application import create_app

    app = create_app(settings, clock)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return RunningServer(app, runner, port, clock)


async def _running(settings: Settings, clock: ManualClock | None = None) -> AsyncIterator[RunningServer]:
    running = await start_server(settings, clock)
    try:
        yield running
    finally:
        await running.stop()


async def _api_of(server: RunningServer) -> AsyncIterator[Api]:
    client = Api(server.url)
    try:
        yield client
    finally:
        await client.close()


async def _sockets_of(server: RunningServer) -> AsyncIterator[SocketFactory]:
    factory = SocketFactory(server.url)
    try:
        yield factory
    finally:
        await factory.close_all()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    """The services' clock stands still unless the test moves it (clock_of(server).advance): no call
    timer, typing throttle or token bucket lets go because the machine was slow."""
    async for running in _running(settings, ManualClock()):
        yield running


@pytest.fixture
async def api(server: RunningServer) -> AsyncIterator[Api]:
    async for client in _api_of(server):
        yield client


@pytest.fixture
async def sockets(server: RunningServer) -> AsyncIterator[SocketFactory]:
    async for factory in _sockets_of(server):
        yield factory


# A server whose call timers (ring QUICK_RING_S, grace QUICK_GRACE_S) run on a ManualClock: time moves
# only when the test calls quick.clock.advance(), so no timer races the test.
QUICK_RING_S = QUICK_GRACE_S = 30.0


def clock_of(server: RunningServer) -> ManualClock:
    assert server.clock is not None, "this server runs on the system clock"
    return server.clock


async def advance(server: RunningServer, seconds: float) -> None:
    """Move the server's clock and wait until the timers it woke have run (ManualClock.settled)."""
    clock_of(server).advance(seconds)
    await clock_of(server).settled()


async def ring_out(server: RunningServer) -> None:
    """Once the ring timer of the call just invited is armed, let its ring time pass."""
    await clock_of(server).wait_for_timer("ring")
    await advance(server, QUICK_RING_S)


@pytest.fixture
async def quick(tmp_path: Path, db_url: str) -> AsyncIterator[RunningServer]:
    settings = make_settings(tmp_path, db_url, ring_timeout_s=QUICK_RING_S, call_grace_s=QUICK_GRACE_S)
    async for running in _running(settings, ManualClock()):
        yield running


@pytest.fixture
async def quick_api(quick: RunningServer) -> AsyncIterator[Api]:
    async for client in _api_of(quick):
        yield client


@pytest.fixture
async def quick_sockets(quick: RunningServer) -> AsyncIterator[SocketFactory]:
    async for factory in _sockets_of(quick):
        yield factory


@pytest.fixture
def shared_redis_url() -> str:
    url = redis_test_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        require_or_skip("Redis", f"{url} unreachable: {exc}")
    return url


def pytest_report_header(config: pytest.Config) -> str:
    return f"AURORA_REQUIRE_SERVICES={os.environ.get('AURORA_REQUIRE_SERVICES', '0')}"


# The Python SDK (clients/python) against the in-process server: `await sdk.connected(account)`.
@pytest.fixture
async def sdk(server: RunningServer) -> AsyncIterator[Any]:
    from tests.support.sdk import SdkFactory

    factory = SdkFactory(server.url)
    try:
        yield factory
    finally:
        await factory.close_all()


@pytest.fixture
def cluster_settings() -> dict[str, str]:
    """Settings for every process of `cluster`; a module that needs others overrides this fixture."""
    return {}


@pytest.fixture
async def cluster(tmp_path: Path, postgres_url: str, shared_redis_url: str,
                  cluster_settings: dict[str, str]) -> AsyncIterator[list[Node]]:
    """Two Aurora processes on one PostgreSQL and one Redis (tests/support/cluster.py)."""
    nodes = await start_cluster(tmp_path, postgres_url, shared_redis_url, **cluster_settings)
    try:
        yield nodes
    finally:
        await stop_cluster(nodes)
