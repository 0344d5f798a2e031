"""A video call in real Chromium between two isolated contexts (fake camera and microphone)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.browser import browser_endpoint, run_scenario, screenshots_dir  # noqa: F401
from tests.support.clients import Api


async def test_video_call_rings_connects_plays_and_hangs_up_on_both_sides(
        browser_endpoint: str, tmp_path: Path, sqlite_url: str) -> None:  # noqa: F811
    # No STUN server: nothing outside this machine is reachable; host candidates connect the peers.
    server: RunningServer = await start_server(make_settings(tmp_path, sqlite_url, stun_urls=[]))
    api = Api(server.url)
    try:
        result = await run_scenario("video_call.mjs", {
            "wsEndpoint": browser_endpoint, "url": server.url + "/app/", "screenshots": str(screenshots_dir()),
        }, timeout=120)
        assert result["problems"] == [], result["problems"]
        for side in ("videoA", "videoB"):
            assert result[side]["width"] > 0 and result[side]["height"] > 0, result

        # The server's record agrees: one answered video call ended by hang-up, one declined voice call.
        status, body = await api.request("POST", "/api/auth/login",
                                         json={"username": result["names"]["a"], "password": "correct horse battery"})
        assert status == 200, body
        token = body["token"]
        status, body = await api.request("GET", "/api/conversations", token=token)
        conversation_id = body["conversations"][0]["id"]
        status, body = await api.request("GET", f"/api/calls?conversation_id={conversation_id}", token=token)
        assert status == 200
        calls = body["calls"]
        assert [(c["media"], c["state"], c["end_reason"]) for c in calls] == [
            ("audio", "ended", "rejected"), ("video", "ended", "hangup")], calls
        assert calls[1]["answered_at"] is not None
    finally:
        await api.close()
        await server.stop()
