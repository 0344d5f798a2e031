"""The web app served from another origin, talking to Aurora across origins in real Chromium:
allowed when the page's origin is in cors_allowed_origins, refused when it is not."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from aurora.api.webapp import WebApp
from tests.conftest import make_settings, start_server
from tests.support.browser import browser_endpoint, run_scenario  # noqa: F401
from tests.support.clients import Api
from tests.support.processes import free_port


async def static_site(port: int, aurora_url: str) -> web.AppRunner:
    """web/ (and the SDK) from another origin, configured for the Aurora server at aurora_url."""
    app = web.Application()
    ws_url = aurora_url.replace("http://", "ws://", 1)
    WebApp(config_js=f"export const SERVER_URL = {json.dumps(aurora_url)};\n",
           connect_sources=(aurora_url, ws_url)).add_routes(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_page_from_an_allowed_origin_works_and_from_another_is_refused(
        browser_endpoint: str, tmp_path: Path, sqlite_url: str) -> None:  # noqa: F811
    allowed_port, refused_port = free_port(), free_port()
    allowed_origin = f"http://127.0.0.1:{allowed_port}"
    server = await start_server(make_settings(tmp_path, sqlite_url, cors_allowed_origins=[allowed_origin]))
    sites = [await static_site(allowed_port, server.url), await static_site(refused_port, server.url)]
    api = Api(server.url)
    try:
        b = await api.register()
        result = await run_scenario("cross_origin.mjs", {
            "wsEndpoint": browser_endpoint, "allowedUrl": f"{allowed_origin}/app/",
            "refusedUrl": f"http://127.0.0.1:{refused_port}/app/", "bUsername": b.username,
            "bSession": {"token": b.token, "user": b.user},
        }, timeout=90)
        assert result["allowedProblems"] == [], result["allowedProblems"]
        assert result["corsError"] and "CORS" in result["corsError"], result
        assert result["refusedState"] != "connected", result

        status, body = await api.request("GET", "/api/conversations", token=b.token)
        assert status == 200
        [conversation] = body["conversations"]
        assert conversation["last_message"]["body"] == "hello across origins"
        assert conversation["last_message"]["sender_username"] == result["username"]
    finally:
        await api.close()
        for runner in sites:
            await runner.cleanup()
        await server.stop()
