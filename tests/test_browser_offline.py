"""Offline in real Chromium: `python app.py` is stopped mid-conversation and started again on the same
port with the same SQLite file; what was typed meanwhile (and kept across a reload) is stored once, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.browser import browser_endpoint, run_scenario  # noqa: F401
from tests.support.clients import Api
from tests.support.processes import AuroraProcess


async def test_typed_offline_survives_a_reload_and_is_stored_once_in_order(
        browser_endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    server = AuroraProcess(f"sqlite:///{tmp_path}/aurora.db", tmp_path / "aurora.log")
    await server.start()

    async def on_ask(message: dict[str, Any]) -> dict[str, Any]:
        if message["ask"] == "stop_server":
            server.stop()
        elif message["ask"] == "start_server":
            await server.start()  # same port, same database
        else:
            raise AssertionError(f"unexpected ask {message}")
        return {"ok": True}

    api = Api(server.url)
    try:
        result = await run_scenario("offline.mjs", {"wsEndpoint": browser_endpoint, "url": server.url + "/app/"},
                                    on_ask, timeout=120)
        assert result["problems"] == [], result["problems"]
        pending = [m for m in result["beforeReload"] if m["state"] == "pending"]
        assert [m["body"] for m in pending] == ["offline one", "offline two"], result["beforeReload"]
        assert result["afterReload"] == result["beforeReload"], "the reload kept exactly the same messages"
        on_b = [m["body"] for m in result["final"]["b"]]
        assert on_b == ["before the outage", "offline one", "offline two"], result["final"]

        status, body = await api.request("POST", "/api/auth/login",
                                         json={"username": result["names"]["a"], "password": "correct horse battery"})
        assert status == 200, body
        token = body["token"]
        status, body = await api.request("GET", "/api/conversations", token=token)
        conversation_id = body["conversations"][0]["id"]
        status, body = await api.request("GET", f"/api/conversations/{conversation_id}/messages", token=token)
        stored = [(m["seq"], m["body"]) for m in body["messages"]]
        assert stored == [(1, "before the outage"), (2, "offline one"), (3, "offline two")], stored
    finally:
        await api.close()
        server.stop()
