"""HTTP hardening: nosniff, Referrer-Policy, no-store on /api/ answers, HSTS in production; /health shows
connection counts only to a local probe or with the metrics token."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Api


async def test_every_response_is_hardened(api: Api) -> None:
    async with api.session.post(f"{api.base_url}/api/auth/register",
                                json={"username": "hardened", "password": "correct horse battery"}) as response:
        assert response.status == 201 and "token" in await response.json()
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in response.headers  # not in production
    async with api.session.get(f"{api.base_url}/api/me") as response:  # errors too
        assert response.status == 401
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    async with api.session.get(f"{api.base_url}/") as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff" and "Cache-Control" not in response.headers


async def test_health_shows_connections_only_to_operators(tmp_path: Path, sqlite_url: str) -> None:
    running: RunningServer = await start_server(make_settings(tmp_path, sqlite_url, metrics_token="m" * 40))
    api = Api(running.url)
    try:
        assert (await api.request("GET", "/health"))[1]["connections"] == 0  # loopback probe
        proxied = {"X-Forwarded-For": "203.0.113.9"}  # through a reverse proxy on this host
        status, body = await api.request("GET", "/health", headers=proxied)
        assert status == 200 and body["status"] == "ok" and "connections" not in body, body
        status, body = await api.request("GET", "/health", headers={**proxied, "Authorization": "Bearer wrong"})
        assert "connections" not in body
        status, body = await api.request("GET", "/health", headers={**proxied, "Authorization": f"Bearer {'m' * 40}"})
        assert body["connections"] == 0
    finally:
        await api.close()
        await running.stop()


async def test_hsts_in_production(tmp_path: Path, sqlite_url: str) -> None:
    from aurora.services.push.vapid import generate_private_key

    running = await start_server(make_settings(tmp_path, sqlite_url, env="production", hsts_max_age_s=600,
                                               vapid_private_key=generate_private_key(),
                                               vapid_subject="mailto:ops@example.com"))
    api = Api(running.url)
    try:
        async with api.session.get(f"{api.base_url}/health") as response:
            assert response.headers["Strict-Transport-Security"] == "max-age=600; includeSubDomains"
    finally:
        await api.close()
        await running.stop()
