"""GET /api/openapi.json: the OpenAPI 3.1 document of the REST API (document.py), built once per process."""

from __future__ import annotations

import functools
import json

from aiohttp import web

from aurora.api.openapi.document import EXCLUDED, build_document

__all__ = ["EXCLUDED", "build_document", "openapi_json"]


@functools.cache
def _body() -> bytes:
    return json.dumps(build_document(), ensure_ascii=False, separators=(",", ":")).encode()


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_body(), content_type="application/json", headers={"Cache-Control": "no-cache"})
