"""GET /metrics: Prometheus text format, parsed with prometheus-client's own parser, on both databases."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aurora.settings import PROJECT_ROOT
from tests.conftest import RunningServer, _running, make_settings
from tests.support.clients import Api, SocketFactory, acked
from tests.support.metrics import family_names, scrape, scrape_until, total, value

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


async def test_metrics_count_sockets_entries_acks_and_failures(api: Api, sockets: SocketFactory) -> None:
    before = await scrape(api)
    assert value(before, "aurora_database_up") == 1
    assert value(before, "aurora_sockets_connected", namespace="/chat") == 0
    assert value(before, "aurora_calls_active", state="ringing") == 0
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token)
    b = await sockets.connect(bob.token)
    await sockets.connect(alice.token, namespace="/calls")
    refusal = await sockets.connect_error("not-a-token")
    assert refusal["data"]["code"] == "auth_invalid"
    for n in range(3):
        await acked(a, "send_message", {"conversation_id": conversation["id"], "body": f"hello {n}"})
    await api.send(bob, conversation["id"], "over REST")
    first = (await acked(a, "sync", {"cursors": {str(conversation["id"]): 0}}))["messages"][0]
    await acked(a, "edit_message", {"conversation_id": conversation["id"], "seq": first["seq"], "body": "edited"})
    status, _ = await api.request("POST", "/api/auth/login", json={"username": alice.username, "password": "wrong!!!!"})
    assert status == 401
    await b.disconnect()

    after = await scrape_until(api, "aurora_sockets_connected", 1, namespace="/chat")
    assert value(after, "aurora_sockets_connected", namespace="/chat") == 1
    assert value(after, "aurora_sockets_connected", namespace="/calls") == 1
    assert value(after, "aurora_socket_connects_total", namespace="/chat", outcome="accepted") == 2
    assert value(after, "aurora_socket_connects_total", namespace="/chat", outcome="auth_invalid") == 1
    assert total(after, "aurora_socket_disconnects_total", namespace="/chat") == 1
    assert value(after, "aurora_log_entries_stored_total", kind="text") == 4
    assert value(after, "aurora_log_entries_stored_total", kind="edit") == 1
    assert value(after, "aurora_ack_latency_seconds_count", event="send_message") == 3
    assert value(after, "aurora_ack_latency_seconds_count", event="sync") == 1
    assert value(after, "aurora_ack_latency_seconds_sum", event="send_message") > 0
    # Every entry went through a writer transaction: batch sizes add up to the entries stored.
    assert value(after, "aurora_writer_batch_size_sum") == 5
    assert 1 <= value(after, "aurora_commit_duration_seconds_count") <= 5
    assert value(after, "aurora_login_failures_total", reason="invalid_credentials") == 1
    assert value(after, "aurora_http_requests_total", route="/api/auth/login", status="4xx") == 1
    assert value(after, "aurora_http_requests_total",
                 route="/api/conversations/{conversation_id}/messages", status="2xx") == 1
    assert value(after, "aurora_database_errors_total", kind="operational") == 0


async def test_the_grafana_dashboard_names_only_metrics_the_server_exposes(api: Api, db_url: str) -> None:
    if db_url.startswith("postgresql"):
        pytest.skip("one database is enough: the names do not depend on it")
    dashboard = json.loads((PROJECT_ROOT / "docs" / "grafana-dashboard.json").read_text())
    used = {re.sub(r"_(bucket|sum|count|total)$", "", name) for panel in dashboard["panels"]
            for target in panel["targets"] for name in re.findall(r"aurora_[a-z_]+", target["expr"])}
    status, text = await api.request("GET", "/metrics")
    assert status == 200
    exposed = family_names(text) | {"aurora_redis_up"}  # redis_up: only with redis_url (the workers test)
    assert used and used <= exposed, used - exposed


async def test_login_refusals_count_as_rate_limited(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, login_max_failures=1)
    async for server in _running(settings):
        api = Api(server.url)
        try:
            alice = await api.register()
            for _ in range(2):
                await api.request("POST", "/api/auth/login", json={"username": alice.username, "password": "x" * 9})
            samples = await scrape(api)
        finally:
            await api.close()
    assert value(samples, "aurora_login_failures_total", reason="invalid_credentials") == 1
    assert value(samples, "aurora_login_failures_total", reason="rate_limited") == 1
    assert value(samples, "aurora_rate_limited_total", event="POST /api/auth/login") == 1


@pytest.fixture
async def guarded(tmp_path: Path, sqlite_url: str) -> AsyncIterator[RunningServer]:
    async for running in _running(make_settings(tmp_path, sqlite_url, metrics_token=METRICS_TOKEN)):
        yield running


async def test_metrics_token_is_required_when_set(guarded: RunningServer) -> None:
    api = Api(guarded.url)
    try:
        status, body = await api.request("GET", "/metrics")
        assert status == 401 and body["error"]["code"] == "auth_required"
        status, _ = await api.request("GET", "/metrics", token="wrong")
        assert status == 401
        samples = await scrape(api, token=METRICS_TOKEN)
        assert value(samples, "aurora_database_up") == 1
    finally:
        await api.close()


async def test_metrics_without_token_refuse_proxied_requests(api: Api) -> None:
    # A proxy on this machine would make every outside client look local: a forwarded request is refused.
    status, body = await api.request("GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 403 and body["error"]["code"] == "forbidden"
