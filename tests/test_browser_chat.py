"""The web app in real Chromium: the old fix notes' Test 1 and Test 2 at once (four people, four
isolated browser contexts), with the screenshots of docs/screenshots/ made on the way."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.browser import browser_endpoint, run_scenario, screenshots_dir  # noqa: F401
from tests.support.clients import Api


async def test_four_people_two_pairs_live_with_badges_ticks_and_typing(
        browser_endpoint: str, tmp_path: Path, sqlite_url: str) -> None:  # noqa: F811
    server: RunningServer = await start_server(make_settings(tmp_path, sqlite_url))
    api = Api(server.url)
    try:
        result = await run_scenario("chat_four_users.mjs", {
            "wsEndpoint": browser_endpoint, "url": server.url + "/", "screenshots": str(screenshots_dir()),
        }, timeout=150)
        users = result["users"]
        assert result["problems"] == [], result["problems"]

        # What the browsers showed is what the server stored: per pair, in order, nothing else.
        for first, second, hello, reply in (("A", "B", "Hello from A", "Hi from B"),
                                            ("C", "D", "Hello from C", "Hi from D")):
            status, body = await api.request("POST", "/api/auth/login",
                                             json={"username": users[first], "password": "correct horse battery"})
            assert status == 200, body
            token = body["token"]
            status, body = await api.request("GET", "/api/conversations", token=token)
            assert status == 200
            conversations = body["conversations"]
            [conversation] = [c for c in conversations if c["kind"] == "direct"]
            groups = [(c["title"], sorted(m["username"] for m in c["members"]))
                      for c in conversations if c["kind"] == "group"]
            assert groups == ([("Team", sorted([users["A"], users["B"]]))] if first == "A" else []), groups
            assert {m["username"] for m in conversation["members"]} == {users[first], users[second]}
            status, body = await api.request("GET", f"/api/conversations/{conversation['id']}/messages",
                                             token=token)
            texts = [m["body"] for m in body["messages"] if m["kind"] == "text" and not m.get("deleted")]
            assert texts[:3] == [hello if first == "C" else f"{hello} (edited)", reply,
                                 "line one\nline two"], texts
            assert conversation["unread_count"] == 0
        diagnostics = " | ".join(result["diagnostics"])
        assert "yes" in result["diagnostics"][1], diagnostics          # connected
        assert f"yes, as {users['A']}" in diagnostics
        assert "websocket" in diagnostics or "polling" in diagnostics, diagnostics
        for name in ("login", "conversation", "conversation-diagnostics", "phone-conversation", "phone-list"):
            assert (screenshots_dir() / f"{name}.png").stat().st_size > 5000, name
    finally:
        await api.close()
        await server.stop()
