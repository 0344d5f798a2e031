"""The web app's accessibility, audited in real Chromium with axe-core (tests/browser/a11y.mjs) on
every screen of a conversation, desktop and phone: no serious or critical violation."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.browser import browser_endpoint, run_scenario  # noqa: F401

BLOCKING = {"serious", "critical"}


async def test_no_serious_accessibility_violation_on_any_screen(
        browser_endpoint: str, tmp_path: Path, sqlite_url: str) -> None:  # noqa: F811
    server: RunningServer = await start_server(make_settings(tmp_path, sqlite_url))
    try:
        result = await run_scenario("a11y.mjs", {"wsEndpoint": browser_endpoint, "url": server.url + "/"},
                                    timeout=150)
    finally:
        await server.stop()
    assert set(result["screens"]) == {"login", "conversation list", "open conversation", "diagnostics"}
    blocking = [v for v in result["violations"] if v["impact"] in BLOCKING]
    assert blocking == [], "\n".join(f"{v['screen']}: {v['id']} ({v['impact']}): {v['help']} at "
                                     f"{[n['target'] for n in v['nodes']]}" for v in blocking)
