"""Probes: GET / and GET /health, including a real database outage on PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest

from tests.conftest import make_settings, start_server
from tests.support.clients import Api, SocketFactory
from tests.support.services import postgres_admin_url, require_or_skip


async def test_root_answers_plain_text_without_auth(api: Api) -> None:
    async with api.session.get(api.base_url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        assert await response.text() == "Aurora WebSocket Server Running"
    async with api.session.head(api.base_url + "/") as response:
        assert response.status == 200


async def test_health_ok(api: Api) -> None:
    status, body = await api.request("GET", "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["connections"] == 0


# -- a real outage ---------------------------------------------------------------------------------------


def _admin() -> Any:
    import psycopg2

    try:
        conn = psycopg2.connect(postgres_admin_url(), connect_timeout=3)
    except psycopg2.OperationalError as exc:
        require_or_skip("PostgreSQL", str(exc).splitlines()[0])
        raise
    conn.autocommit = True
    return conn


@pytest.fixture
def isolated_login() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL role of its own with its own schema, so it can be shut out; both dropped afterwards.

    (A role, not a database: CREATE/DROP DATABASE force checkpoints, slow on a busy machine.)
    """
    admin = _admin()
    name = f"aurora_health_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {name} LOGIN")
        cur.execute(f"CREATE SCHEMA {name} AUTHORIZATION {name}")
    parsed = urlparse(postgres_admin_url())
    netloc = f"{name}@{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
    url = urlunparse(parsed._replace(netloc=netloc, query=f"options=-csearch_path%3D{name}"))
    try:
        yield url, (admin, name)
    finally:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            cur.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            cur.execute(f"DROP ROLE IF EXISTS {name}")
        admin.close()


def _cut_off(admin: Any, name: str) -> None:
    with admin.cursor() as cur:
        cur.execute(f"ALTER ROLE {name} NOLOGIN")
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))


def _restore(admin: Any, name: str) -> None:
    with admin.cursor() as cur:
        cur.execute(f"ALTER ROLE {name} LOGIN")


async def test_health_is_503_while_the_database_is_unreachable_and_recovers(
        tmp_path: Path, isolated_login: tuple[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    url, (admin, name) = isolated_login
    running = await start_server(make_settings(tmp_path, url))
    api = Api(running.url)
    sockets = SocketFactory(running.url)
    try:
        account = await api.register()
        sock = await sockets.connect(account.token)
        status, body = await api.request("GET", "/health")
        assert (status, body["status"], body["database"]) == (200, "ok", "ok")

        _cut_off(admin, name)
        # Checked live, every time: pooled connections are dead and new ones are refused.
        for _ in range(3):
            status, body = await api.request("GET", "/health")
            assert status == 503, body
            assert body["database"] == "error"
            assert body["status"] == "error"
        # Other requests fail as an outage (retry later), not as a bug, without leaking details.
        status, body, headers = await api.request_with_headers("GET", "/api/me", token=account.token)
        assert (status, body["error"]["code"]) == (503, "unavailable"), body
        assert int(headers["Retry-After"]) > 0
        text = str(body).lower()
        assert "psycopg" not in text and "traceback" not in text and name not in text
        # A socket event says the same: retry later.
        ack = await sock.call("sync", {"cursors": {}})
        assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
        # The operator reads an outage in the log (one line naming it), not a traceback of a "bug".
        outage_lines = [r for r in caplog.records if r.levelno == logging.WARNING
                        and "database unreachable" in r.getMessage()]
        assert outage_lines, [r.getMessage() for r in caplog.records]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info], \
            [r.getMessage() for r in caplog.records]
        # The root probe does not depend on the database.
        status, text_body = await api.request("GET", "/")
        assert status == 200 and text_body == "Aurora WebSocket Server Running"

        _restore(admin, name)
        # Dead pooled connections are discarded one by one; the server heals without a restart.
        statuses = []
        for _ in range(20):
            status, body = await api.request("GET", "/health")
            statuses.append(status)
            if status == 200:
                break
        assert statuses[-1] == 200, statuses
        assert body["database"] == "ok"
        status, body = await api.request("GET", "/api/me", token=account.token)
        for _ in range(10):
            if status == 200:
                break
            status, body = await api.request("GET", "/api/me", token=account.token)
        assert status == 200, body
    finally:
        await sockets.close_all()
        await api.close()
        await running.stop()
