"""The web app (web/) at /app/, the JS SDK (clients/js) it imports at /app/sdk/, and `/` for browsers.

Plain static files, no build step: the page's import map resolves `aurora-client` to /app/sdk/ and
`socket.io-client` to the vendored ESM bundle in web/vendor/. Every app page gets a strict
Content-Security-Policy: scripts only from this origin plus the one inline import map, allowed by
its SHA-256 hash (computed here from index.html, so editing the map cannot silently break the page).
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from aurora.settings import PROJECT_ROOT

WEB_ROOT = PROJECT_ROOT / "web"
SDK_ROOT = PROJECT_ROOT / "clients" / "js"
INDEX = "index.html"
# What the SDK may serve: its modules and declarations, never node_modules, tests or dotfiles.
SDK_SUFFIXES = {".js", ".mjs", ".d.ts", ".map"}
SDK_EXCLUDED_PARTS = {"node_modules", "test", "tests"}
WEB_EXCLUDED_PARTS = {"node_modules", "tests"}
IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.S)
RUNNING_TEXT = "Aurora WebSocket Server Running"


def script_hashes(html: str) -> list[str]:
    """CSP sources for the inline import maps of a page (the only inline scripts it may have)."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
            for m in IMPORT_MAP.findall(html)]


def content_security_policy(html: str, connect_sources: tuple[str, ...] = ()) -> str:
    """Strict: nothing inline but the hashed import map, nothing from another origin unless listed
    (a page served elsewhere lists the Aurora server it talks to)."""
    connect = " ".join(("'self'", *connect_sources))
    return "; ".join([
        "default-src 'none'",
        "script-src 'self' " + " ".join(script_hashes(html)),
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "font-src 'self'",
        f"connect-src {connect}",
        "manifest-src 'self'",
        "worker-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ])


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
}


@dataclass(frozen=True)
class WebApp:
    """Serves one web root and one SDK root; `config_js` overrides web/config.js (another origin)."""

    web_root: Path = WEB_ROOT
    sdk_root: Path = SDK_ROOT
    connect_sources: tuple[str, ...] = ()
    config_js: str | None = None

    def add_routes(self, app: web.Application, prefix: str = "/app") -> None:
        app.router.add_get(prefix, self._to_index)
        app.router.add_get(prefix + "/", self.index)
        app.router.add_get(prefix + "/sdk/{path:.+}", self.sdk_file)
        app.router.add_get(prefix + "/{path:.+}", self.web_file)

    async def _to_index(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.path + "/")

    async def index(self, request: web.Request) -> web.StreamResponse:
        html = (self.web_root / INDEX).read_text()
        response = web.Response(text=html, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = content_security_policy(html, self.connect_sources)
        response.headers["Cache-Control"] = "no-cache"
        response.headers.update(SECURITY_HEADERS)
        return response

    async def web_file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if path == INDEX:
            return await self.index(request)
        if path == "config.js" and self.config_js is not None:
            return self._typed(web.Response(text=self.config_js), path)
        return self._file(self.web_root, path, excluded=WEB_EXCLUDED_PARTS)

    async def sdk_file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if not any(path.endswith(suffix) for suffix in SDK_SUFFIXES):
            raise web.HTTPNotFound()
        return self._file(self.sdk_root, path, excluded=SDK_EXCLUDED_PARTS)

    def _file(self, root: Path, path: str, *, excluded: set[str]) -> web.StreamResponse:
        parts = Path(path).parts
        if any(p.startswith(".") or p in excluded for p in parts):
            raise web.HTTPNotFound()
        target = (root / path).resolve()
        if not target.is_relative_to(root.resolve()) or not target.is_file():
            raise web.HTTPNotFound()
        # no-cache: always revalidated (ETag/Last-Modified), so a deploy is picked up on reload.
        return self._typed(web.FileResponse(target, headers={"Cache-Control": "no-cache"}), path)

    @staticmethod
    def _typed(response: web.StreamResponse, path: str) -> web.StreamResponse:
        if path.endswith((".js", ".mjs")):
            response.content_type = "text/javascript"
        elif path.endswith(".d.ts"):
            response.content_type = "text/plain"
        else:
            kind, _ = mimetypes.guess_type(path)
            if kind:
                response.content_type = kind
        response.headers.update(SECURITY_HEADERS)
        return response


def wants_html(request: web.Request) -> bool:
    """A browser navigating (Accept names text/html); curl and health checkers send */* or nothing."""
    return "text/html" in request.headers.get("Accept", "")


async def index(request: web.Request) -> web.StreamResponse:
    """`/`: browsers go to the app; everything else gets the one line the old checklist looks for."""
    if wants_html(request):
        raise web.HTTPFound("/app/")
    return web.Response(text=RUNNING_TEXT, headers={"Vary": "Accept"})
