"""Files for the attachment tests, made on the spot, and the upload/download calls of a real client."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict
from PIL import Image

from tests.support.clients import Account, Api

GPS_IFD = 0x8825
ORIENTATION = 0x0112
XMP_PACKET = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="52,31.2N"/>'
              b"</rdf:RDF></x:xmpmeta>")


def gps_jpeg(width: int = 40, height: int = 20) -> bytes:
    """A photo as a phone writes it: GPS position and camera in EXIF, XMP, and orientation 6 (the
    pixels are stored sideways: shown upright, the picture is height x width)."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    for x in range(width // 2):  # a left half in another colour, to see the rotation
        for y in range(height):
            image.putpixel((x, y), (20, 20, 220))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "AuroraCam"  # Make
    exif[0x0110] = "Model X"  # Model
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.0)
    gps[3] = "E"
    gps[4] = (13.0, 24.0, 36.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, xmp=XMP_PACKET, quality=95)
    data = out.getvalue()
    assert b"AuroraCam" in data and b"GPSLatitude" in data  # the source really carries them
    return data


def png(width: int = 8, height: int = 8, color: tuple[int, int, int] = (0, 128, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose header claims width x height (400 MP) with a few bytes of compressed zero rows
    after it: a decoder that trusted the header would allocate over a gigabyte."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = zlib.compress(b"\0" * (1 + 3 * width) * 4, 9)  # the first rows; the rest "truncated"
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


HTML = b"<!DOCTYPE html><html><head><title>x</title></head><body><script>alert(document.cookie)</script></body></html>"
SVG = (b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b"<script>alert(1)</script><rect width='10' height='10'/></svg>")


async def upload(api: Api, account: Account, data: bytes, filename: str, *,
                 content_type: str = "application/octet-stream") -> tuple[int, Any]:
    """A real multipart upload (aiohttp's FormData), field `file`."""
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type=content_type)
    return await api.request("POST", "/api/uploads", token=account.token, data=form)


async def upload_ok(api: Api, account: Account, data: bytes, filename: str, **kwargs: Any) -> dict[str, Any]:
    status, body = await upload(api, account, data, filename, **kwargs)
    assert status == 201, (status, body)
    return body["upload"]


async def fetch(api: Api, url: str, headers: dict[str, str] | None = None) -> tuple[int, CIMultiDict[str], bytes]:
    """GET a signed URL as a browser's <img src> would: no Authorization header."""
    async with api.session.get(api.base_url + url, headers=headers or {}) as response:
        return response.status, response.headers.copy(), await response.read()


def stored_files(data_dir: Path) -> list[Path]:
    """Every file under the blob store (blobs and temporaries)."""
    root = data_dir / "files"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
