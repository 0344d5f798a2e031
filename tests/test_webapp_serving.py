"""How Aurora serves the web app: `/` by content negotiation, /app/ with a strict CSP, the SDK's
modules (and nothing else of clients/js), the vendored socket.io-client equal to the pinned package."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from aurora.api.webapp import RUNNING_TEXT, WEB_ROOT, script_hashes
from tests.conftest import RunningServer, make_settings, start_server

PINNED_BUNDLE = (Path(__file__).resolve().parent / "browser" / "node_modules" / "socket.io-client"
                 / "dist" / "socket.io.esm.min.js")
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
async def site(tmp_path: Path, sqlite_url: str) -> AsyncIterator[str]:
    running: RunningServer = await start_server(make_settings(tmp_path, sqlite_url))
    try:
        yield running.url
    finally:
        await running.stop()


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers,
                                                               allow_redirects=False) as response:
        return response.status, dict(response.headers), await response.text(errors="replace")


async def test_root_is_text_for_curl_and_a_redirect_for_browsers(site: str) -> None:
    status, headers, text = await get(site + "/", Accept="*/*")
    assert (status, text) == (200, RUNNING_TEXT)
    assert "Accept" in headers["Vary"]
    status, _, text = await get(site + "/")
    assert (status, text) == (200, RUNNING_TEXT)
    status, headers, _ = await get(site + "/", Accept=BROWSER_ACCEPT)
    assert status == 302 and headers["Location"] == "/app/"
    status, headers, _ = await get(site + "/app", Accept=BROWSER_ACCEPT)
    assert status == 302 and headers["Location"] == "/app/"


async def test_app_page_has_a_strict_csp_allowing_only_its_import_map(site: str) -> None:
    status, headers, html = await get(site + "/app/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in headers["Content-Security-Policy"]
    hashes = script_hashes(html)
    assert len(hashes) == 1, "the page has exactly one inline script: its import map"
    assert csp["script-src"] == "'self' " + hashes[0]
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    # Every other script is an external module from this origin; no CDN, no external font.
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline == [' type="importmap"']
    assert not re.search(r"https?://", html), "the page loads nothing from another origin"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_static_files_sdk_and_refusals(site: str) -> None:
    status, headers, text = await get(site + "/app/vendor/socket.io.esm.min.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert "Socket.IO v4.8.4" in text
    status, headers, _ = await get(site + "/app/js/main.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    for path in ("/app/../aurora/settings.py", "/app/%2e%2e/aurora/settings.py", "/app/vendor/../../app.py",
                 "/app/sdk/package.json", "/app/sdk/node_modules/socket.io-client/package.json",
                 "/app/sdk/../../aurora/settings.py", "/app/nope.js", "/app/tests/x.js"):
        status, _, text = await get(site + path)
        assert status == 404, (path, status, text[:80])


def test_vendored_socketio_bundle_is_the_pinned_package_file() -> None:
    if not PINNED_BUNDLE.exists():
        pytest.skip(f"{PINNED_BUNDLE.parent.parent} is missing (run `make test`, which installs tests/browser)")
    vendored = WEB_ROOT / "vendor" / "socket.io.esm.min.js"
    assert vendored.read_bytes() == PINNED_BUNDLE.read_bytes(), "run `make vendor` after changing the pin"
