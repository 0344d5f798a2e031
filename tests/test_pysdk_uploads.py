"""The Python SDK's upload(): a PNG made in the test (Pillow), from a path and from bytes, sent with an
empty body; the other member's client gets it live with URLs that serve without a token; errors are
AuroraError too_large and invalid; the store never keeps the (per-viewer, expiring) URLs, and a client
started from it fetches fresh ones once connected. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aurora_client import AuroraClient, AuroraError, MemoryStore
from PIL import Image

from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Api
from tests.support.sdk import SdkFactory, eventually

MAX_UPLOAD_BYTES = 4096


def png(width: int = 16, height: int = 12) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
async def small(tmp_path: Path, db_url: str) -> AsyncIterator[RunningServer]:
    running = await start_server(make_settings(tmp_path, db_url, max_upload_bytes=MAX_UPLOAD_BYTES))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def api(small: RunningServer) -> AsyncIterator[Api]:
    client = Api(small.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def sdk(small: RunningServer) -> AsyncIterator[SdkFactory]:
    factory = SdkFactory(small.url)
    try:
        yield factory
    finally:
        await factory.close_all()


async def fetch(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:  # no Authorization
        return response.status, response.content_type, await response.read()


async def test_upload_and_send_with_no_text_reaches_the_other_member_with_working_urls(
        api: Api, sdk: SdkFactory, tmp_path: Path) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    a, b = await sdk.connected(alice), await sdk.connected(bob)
    path = tmp_path / "photo.png"
    path.write_bytes(png())
    upload = await a.upload(path)
    assert (upload["name"], upload["content_type"], upload["width"], upload["height"]) == ("photo.png", "image/png",
                                                                                         16, 12)
    sent = await a.send(cid, "", attachments=[upload["id"]])
    assert [x["id"] for x in sent["attachments"]] == [upload["id"]]
    got = await eventually(lambda: next((m for m in b.messages(cid) if m["seq"] == sent["seq"]), None),
                           what="bob has it")
    [attachment] = got["attachments"]
    status, content_type, _ = await fetch(api.base_url + attachment["thumbnail_url"])
    assert status == 200 and content_type.startswith("image/")
    status, _, body = await fetch(api.base_url + attachment["url"])
    assert status == 200 and Image.open(io.BytesIO(body)).size == (16, 12)
    from_bytes = await a.upload(png(), "bytes.png")
    assert from_bytes["name"] == "bytes.png" and from_bytes["sha256"] == upload["sha256"]


async def test_upload_errors_are_typed(api: Api, sdk: SdkFactory) -> None:
    alice = await api.register()
    a = await sdk.connected(alice)
    with pytest.raises(AuroraError) as big:
        await a.upload(b"x" * (MAX_UPLOAD_BYTES + 1), "big.bin")
    assert big.value.code == "too_large" and big.value.status == 413
    with pytest.raises(AuroraError) as empty:
        await a.upload(b"", "empty.txt")
    assert empty.value.code == "invalid" and empty.value.status == 400


async def test_urls_are_not_stored_and_come_back_fresh_after_a_reconnect(api: Api, small: RunningServer) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    store = MemoryStore()
    first = AuroraClient(small.url, alice.token, store=store)
    await asyncio.wait_for(first.connect(), 30)
    upload = await first.upload(png(8, 8), "p.png")
    sent = await first.send(cid, "look", attachments=[upload["id"]])
    assert first.messages(cid)[0]["attachments"][0]["url"]  # usable in this session
    await first.close()
    snapshot = await store.load()
    kept = snapshot.messages[cid][sent["seq"]]["attachments"][0]
    assert "url" not in kept and "thumbnail_url" not in kept and kept["id"] == upload["id"]
    assert "url" not in snapshot.conversations[cid]["last_message"]["attachments"][0]

    again = AuroraClient(small.url, alice.token, store=store)
    try:
        await again.open()
        assert "url" not in again.messages(cid)[0]["attachments"][0]  # offline: no stale URL
        await asyncio.wait_for(again.connect(), 30)
        url = await eventually(lambda: again.messages(cid)[0]["attachments"][0].get("url"), what="a fresh URL")
        assert (await fetch(small.url + url))[0] == 200
        [refreshed] = await again.refresh_attachments(cid)
        assert refreshed["seq"] == sent["seq"]
    finally:
        await again.close()
