"""Engine.IO transport tuning for aiohttp.

python-engineio's aiohttp driver accepts permessage-deflate on every websocket
(browsers always offer it). Each compressed socket keeps zlib state of its own,
about 90 KiB more per idle connection, for almost no gain on small chat
packets. With `websocket_compression = false` (the default) Aurora answers the
upgrade without the extension.
"""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp.web import WebSocketResponse
from engineio.async_drivers import aiohttp as engineio_aiohttp


class UncompressedWebSocket(engineio_aiohttp.WebSocket):
    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def disable_websocket_compression(sio: socketio.AsyncServer) -> None:
    # A copy: the driver table is shared by every Engine.IO server in the process.
    sio.eio._async = {**sio.eio._async, "websocket": UncompressedWebSocket}
