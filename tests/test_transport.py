"""Transport tuning: websockets answer without permessage-deflate unless asked to."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.conftest import RunningServer, make_settings, start_server


async def _extensions(server_url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server_url + "/socket.io/?EIO=4&transport=websocket", compress=15) as ws:
            opened = await ws.receive()
            assert opened.type == aiohttp.WSMsgType.TEXT and opened.data.startswith("0{")  # Engine.IO open
            return "" if ws.compress == 0 else f"deflate({ws.compress})"


async def test_websocket_compression_is_off_by_default(server: RunningServer) -> None:
    assert await _extensions(server.url) == ""


async def test_websocket_compression_can_be_enabled(tmp_path: Path, sqlite_url: str) -> None:
    running = await start_server(make_settings(tmp_path, sqlite_url, websocket_compression="true"))
    try:
        assert await _extensions(running.url) != ""
    finally:
        await running.stop()
