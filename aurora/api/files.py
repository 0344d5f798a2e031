"""Uploads in, files out. Bodies stream in chunks (never read whole); files go out through aiohttp's
FileResponse (Range, ETag, If-None-Match) with headers that keep the browser from running them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.helpers import content_disposition_header
from aiohttp.http_exceptions import HttpProcessingError

from aurora.api.helpers import aurora, current_user
from aurora.errors import AuroraError, invalid
from aurora.services.files import FILE, THUMBNAIL

CHUNK_BYTES = 1 << 18  # 256 KiB per read: memory per upload stays at a few chunks
# No script, no style, no plugin, no form, no same-origin access, even if a browser rendered it.
FILE_CSP = "default-src 'none'; sandbox"
FILE_FIELD = "file"


# What aiohttp's multipart reader raises on a body that is not well-formed multipart (no boundary in the
# Content-Type, a part header that is not a header, a body cut before its closing boundary).
MALFORMED_MULTIPART = (ValueError, HttpProcessingError)


def _malformed() -> AuroraError:
    return invalid("the multipart body is malformed (boundary, part headers or closing delimiter)")


async def _chunks_of_part(part: BodyPartReader) -> AsyncIterator[bytes]:
    while True:
        try:
            chunk = await part.read_chunk(CHUNK_BYTES)
        except MALFORMED_MULTIPART:
            raise _malformed() from None
        if not chunk:
            break
        yield chunk
    if not part.at_eof():  # the body ended before the part's boundary: a cut or malformed upload
        raise _malformed()


async def _chunks_of_body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        yield chunk


async def upload(request: web.Request) -> web.Response:
    """POST /api/uploads: multipart field `file`, or a raw body with ?filename=."""
    user = await current_user(request)
    metrics = aurora(request).metrics
    try:
        record = await _receive(request, user)
    except AuroraError as exc:
        metrics.uploads.labels(exc.code).inc()
        raise
    metrics.uploads.labels("stored").inc()
    metrics.upload_bytes.inc(record.get("size") or 0)
    return web.json_response({"upload": record}, status=201)


async def _receive(request: web.Request, user: dict[str, Any]) -> dict[str, Any]:
    files = aurora(request).files
    if request.content_type.startswith("multipart/"):
        try:
            reader = await request.multipart()
            part = await reader.next()
        except MALFORMED_MULTIPART:
            raise _malformed() from None
        # The file comes first: a field before it would have to be read (and bounded) for nothing.
        if not isinstance(part, BodyPartReader) or part.name != FILE_FIELD:
            raise invalid(f"the first multipart field must be {FILE_FIELD!r} (a file)")
        record = await files.receive(user, part.filename, _chunks_of_part(part))
    else:
        if not request.can_read_body:
            raise invalid("a file is required: a multipart field 'file', or a raw body with ?filename=")
        record = await files.receive(user, request.query.get("filename"), _chunks_of_body(request),
                                     declared_length=request.content_length)
    return record


async def _serve(request: web.Request, variant: str) -> web.StreamResponse:
    found = await aurora(request).files.download(request.match_info["upload_id"], request.query.get("sig"),
                                                 variant)
    disposition = "inline" if found.inline else "attachment"
    headers = {
        "Content-Type": found.content_type,
        "Content-Disposition": content_disposition_header(disposition, filename=found.name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": FILE_CSP,
        # The URL is a credential for one viewer: keep it in the browser's own cache only.
        "Cache-Control": "private, max-age=300",
        "Referrer-Policy": "no-referrer",
    }
    return web.FileResponse(found.path, headers=headers)


async def download(request: web.Request) -> web.StreamResponse:
    """GET /api/files/{id}?sig=: no Authorization header (an <img src> cannot send one)."""
    return await _serve(request, FILE)


async def download_thumbnail(request: web.Request) -> web.StreamResponse:
    return await _serve(request, THUMBNAIL)
