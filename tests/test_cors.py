"""CORS on the REST API follows cors_allowed_origins; the default is same-origin only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Api

ORIGIN = "https://chat.example.com"


@pytest.fixture
async def cors_server(tmp_path: Path, sqlite_url: str) -> AsyncIterator[RunningServer]:
    running = await start_server(make_settings(tmp_path, sqlite_url, cors_allowed_origins=ORIGIN))
    yield running
    await running.stop()


async def test_default_sends_no_cors_headers(api: Api) -> None:
    status, _ = await api.request("GET", "/api/me", headers={"Origin": ORIGIN})
    assert status == 401
    async with api.session.options(api.base_url + "/api/me", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET"}) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
        assert (await response.json())["error"]["code"] == "forbidden"  # the usual error shape


async def test_listed_origin_gets_preflight_and_headers(cors_server: RunningServer) -> None:
    api = Api(cors_server.url)
    try:
        async with api.session.options(api.base_url + "/api/conversations", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"}) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
        async with api.session.get(api.base_url + "/api/me", headers={"Origin": ORIGIN}) as response:
            assert response.status == 401
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        async with api.session.get(api.base_url + "/api/me", headers={"Origin": "https://evil.example"}) as response:
            assert "Access-Control-Allow-Origin" not in response.headers
    finally:
        await api.close()
