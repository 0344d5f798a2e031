"""Attachments from the JavaScript side: Node's fetch + FormData (a real multipart body) and
socket.io-client against the real server (tests/js/attachments_scenario.mjs)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import RunningServer
from tests.support.clients import Api
from tests.support.files import GPS_IFD, gps_jpeg
from tests.test_js_client import JS_DIR, _node, run_scenario

pytestmark = pytest.mark.node
SCENARIO = JS_DIR / "attachments_scenario.mjs"


async def test_js_client_uploads_sends_and_downloads(server: RunningServer, api: Api, tmp_path: Path) -> None:
    node = _node()
    alice, bob = await api.register(), await api.register()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(gps_jpeg(30, 60))
    code, result, stderr = await run_scenario(node, SCENARIO, server.url, alice.token, bob.token, str(photo))
    assert code == 0 and result.get("ok") is True, (code, result, stderr)

    jpeg, svg = result["uploads"]
    assert (jpeg["content_type"], jpeg["name"], jpeg["width"], jpeg["height"]) == ("image/jpeg", "holiday.jpg", 60, 30)
    assert (svg["content_type"], svg["name"]) == ("image/svg+xml", "logo.svg") and "width" not in svg
    assert [a["id"] for a in result["live_attachments"]] == [jpeg["id"], svg["id"]]
    # The ack (alice's URLs) and the live event (bob's) are signed for their own viewer.
    assert result["ack_attachments"][0]["url"] != result["live_attachments"][0]["url"]

    served = result["photo"]
    assert served["status"] == 200 and served["headers"]["content-type"] == "image/jpeg"
    assert served["headers"]["content-disposition"].startswith("inline")
    image = Image.open(io.BytesIO(base64.b64decode(served["base64"])))
    assert image.size == (60, 30) and GPS_IFD not in image.getexif() and len(image.getexif()) == 0
    assert result["thumbnail"]["status"] == 200 and result["thumbnail"]["headers"]["content-type"] == "image/webp"

    script = result["svg"]
    assert script["status"] == 200 and "<script>" in script["body"]  # stored as it came...
    assert script["headers"]["content-disposition"].startswith("attachment")  # ...and never shown inline
    assert script["headers"]["x-content-type-options"] == "nosniff"
    assert script["headers"]["content-security-policy"] == "default-src 'none'; sandbox"

    status, body = await api.request("GET", f"/api/conversations/{result['conversation_id']}/messages",
                                     token=bob.token)
    assert status == 200 and [a["id"] for a in body["messages"][-1]["attachments"]] == [jpeg["id"], svg["id"]]
