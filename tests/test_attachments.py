"""Attachments end to end on both databases: real multipart uploads (aiohttp's FormData) to the real
server, messages carrying files in every shape, signed downloads without a token, and the lifecycle."""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aurora.context import AURORA
from aurora.services.files import AttachmentUrls
from aurora.storage.models import utcnow
from tests.conftest import TEST_SECRET, RunningServer, make_settings, start_server
from tests.support.clients import Account, Api, SocketFactory, acked, refused
from tests.support.files import (
    GPS_IFD,
    HTML,
    ORIENTATION,
    SVG,
    bomb_png,
    fetch,
    gps_jpeg,
    png,
    stored_files,
    upload,
    upload_ok,
)

LIMIT = 200_000


@pytest.fixture
async def files_server(tmp_path: Path, db_url: str) -> AsyncIterator[RunningServer]:
    running = await start_server(make_settings(tmp_path, db_url, max_upload_bytes=LIMIT, max_attachments=3,
                                               upload_orphan_ttl_s=600))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def api(files_server: RunningServer) -> AsyncIterator[Api]:
    client = Api(files_server.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def sockets(files_server: RunningServer) -> AsyncIterator[SocketFactory]:
    factory = SocketFactory(files_server.url)
    try:
        yield factory
    finally:
        await factory.close_all()


def data_dir(server: RunningServer) -> Path:
    return Path(server.app[AURORA].settings.data_dir)


async def history(api: Api, account: Account, cid: int) -> list[dict[str, Any]]:
    status, body = await api.request("GET", f"/api/conversations/{cid}/messages", token=account.token)
    assert status == 200, body
    return body["messages"]


async def group(api: Api, n: int = 2) -> tuple[list[Account], int]:
    accounts = [await api.register() for _ in range(n)]
    cid = (await api.conversation(accounts[0], accounts[1:], title="files"))["id"]
    return accounts, cid


async def test_gps_photo_comes_back_upright_without_metadata_with_a_thumbnail(
        api: Api, sockets: SocketFactory) -> None:
    (alice, bob), cid = await group(api)
    bob_sock = await sockets.connect(bob.token)
    photo = gps_jpeg(40, 20)
    up = await upload_ok(api, alice, photo, "IMG_0001.jpg", content_type="image/jpeg")
    # Orientation 6 applied: shown upright the photo is 20 wide, 40 high.
    assert (up["content_type"], up["width"], up["height"], up["name"]) == ("image/jpeg", 20, 40, "IMG_0001.jpg")
    assert up["size"] > 0 and len(up["sha256"]) == 64

    alice_sock = await sockets.connect(alice.token)
    ack = await acked(alice_sock, "send_message", {"conversation_id": cid, "attachments": [up["id"]],
                                                   "client_id": "photo-1"})
    message = ack["message"]
    assert message["body"] == "" and len(message["attachments"]) == 1
    attachment = message["attachments"][0]
    assert set(attachment) == {"id", "name", "content_type", "size", "width", "height", "url", "thumbnail_url"}
    live = await bob_sock.wait_for("new_message", lambda m: m["conversation_id"] == cid)
    bob_attachment = live["attachments"][0]
    assert bob_attachment["url"] != attachment["url"]  # signed for each viewer

    status, headers, body = await fetch(api, bob_attachment["url"])
    assert status == 200, body
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Disposition"].startswith("inline")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    served = Image.open(io.BytesIO(body))
    assert served.size == (20, 40)
    exif = served.getexif()
    assert GPS_IFD not in exif and ORIENTATION not in exif and len(exif) == 0
    assert "xmp" not in served.info and "exif" not in served.info
    for marker in (b"Exif", b"AuroraCam", b"GPSLatitude", b"xmpmeta"):
        assert marker not in body
    # The upright left half (blue in the source's left columns) is now on top.
    assert served.convert("RGB").getpixel((10, 5))[2] > 150 and served.convert("RGB").getpixel((10, 35))[0] > 150

    status, headers, thumb = await fetch(api, bob_attachment["thumbnail_url"])
    assert status == 200 and headers["Content-Type"] == "image/webp"
    thumbnail = Image.open(io.BytesIO(thumb))
    assert thumbnail.format == "WEBP" and max(thumbnail.size) <= 320 and thumbnail.size == (20, 40)


async def test_range_and_etag(api: Api) -> None:
    (alice, _bob), cid = await group(api)
    up = await upload_ok(api, alice, b"0123456789" * 100, "digits.txt")
    status, body = await api.request("POST", f"/api/conversations/{cid}/messages", token=alice.token,
                                     json={"body": "digits", "attachments": [up["id"]]})
    assert status == 201, body
    url = body["message"]["attachments"][0]["url"]
    assert body["message"]["attachments"][0]["thumbnail_url"] is None  # not an image
    status, headers, data = await fetch(api, url, {"Range": "bytes=10-19"})
    assert status == 206 and data == b"0123456789" and headers["Content-Range"] == "bytes 10-19/1000"
    status, headers, data = await fetch(api, url)
    assert status == 200 and len(data) == 1000 and headers["Content-Disposition"].startswith("attachment"), headers
    status, _, data = await fetch(api, url, {"If-None-Match": headers["ETag"]})
    assert status == 304 and data == b""


async def test_decompression_bomb_is_refused_and_leaves_nothing(files_server: RunningServer, api: Api) -> None:
    alice = await api.register()
    status, body = await upload(api, alice, bomb_png(20000, 20000), "huge.png", content_type="image/png")
    assert status == 400 and body["error"]["code"] == "invalid", body
    assert "too large" in body["error"]["message"] and "400000000" in body["error"]["message"], body
    # Past our limit but under Pillow's own (twice it): refused by our check, from the header alone.
    status, body = await upload(api, alice, bomb_png(8000, 6000), "big.png", content_type="image/png")
    assert status == 400 and "8000x6000" in body["error"]["message"], body
    # A PNG cut short (the header says PNG, the pixels are missing) is refused too.
    status, body = await upload(api, alice, png(64, 64)[:70], "cut.png")
    assert status == 400 and body["error"]["code"] == "invalid", body
    assert stored_files(data_dir(files_server)) == []
    assert await files_server.app[AURORA].storage.read(_upload_count) == 0


def _upload_count() -> int:
    from aurora.storage.models import Upload

    return Upload.select().count()


async def test_one_byte_over_the_limit_is_413_and_leaves_no_file(files_server: RunningServer, api: Api) -> None:
    alice = await api.register()
    status, body = await upload(api, alice, b"x" * (LIMIT + 1), "big.bin")
    assert status == 413 and body["error"]["code"] == "too_large", body
    # A raw body: refused from its Content-Length, and when streamed without one (chunked).
    status, body = await api.request("POST", "/api/uploads?filename=big.bin", token=alice.token,
                                     data=b"x" * (LIMIT + 1), headers={"Content-Type": "application/octet-stream"})
    assert status == 413 and body["error"]["code"] == "too_large", body

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 1000 + 1):
            yield b"y" * 1000

    status, body = await api.request("POST", "/api/uploads?filename=big.bin", token=alice.token, data=chunked())
    assert status == 413 and body["error"]["code"] == "too_large", body
    assert stored_files(data_dir(files_server)) == []
    assert await files_server.app[AURORA].storage.read(_upload_count) == 0
    # Exactly the limit is fine, raw body included.
    up = await upload_ok(api, alice, b"x" * LIMIT, "exact.bin")
    assert up["size"] == LIMIT and up["content_type"] in ("application/octet-stream", "text/plain")
    status, body = await api.request("POST", "/api/uploads?filename=raw.txt", token=alice.token,
                                     data=b"plain words\n", headers={"Content-Type": "image/png"})
    assert status == 201 and body["upload"]["content_type"] == "text/plain", body  # sniffed, not the claim
    assert len(stored_files(data_dir(files_server))) == 2


async def test_quota(tmp_path: Path, db_url: str) -> None:
    server = await start_server(make_settings(tmp_path, db_url, upload_quota_bytes=1500))
    api = Api(server.url)
    try:
        alice = await api.register()
        await upload_ok(api, alice, b"a" * 1000, "one.bin")
        status, body = await upload(api, alice, b"b" * 600, "two.bin")
        assert status == 413 and "quota" in body["error"]["message"], body
        await upload_ok(api, alice, b"c" * 500, "three.bin")  # what remains still fits
        status, body = await upload(api, alice, b"d", "four.bin")
        assert status == 413 and "quota" in body["error"]["message"], body
        bob = await api.register()  # the quota is per user
        await upload_ok(api, bob, b"e" * 1000, "bob.bin")
    finally:
        await api.close()
        await server.stop()


async def test_html_and_svg_are_served_as_attachments_never_inline(api: Api) -> None:
    (alice, bob), cid = await group(api)
    html = await upload_ok(api, alice, HTML, "page.html", content_type="text/html")
    svg = await upload_ok(api, alice, SVG, "logo.svg", content_type="image/svg+xml")
    assert html["content_type"] == "text/html" and svg["content_type"] == "image/svg+xml"
    assert "width" not in svg  # not a raster image: no Pillow, no thumbnail
    status, body = await api.request("POST", f"/api/conversations/{cid}/messages", token=alice.token,
                                     json={"body": "two files", "attachments": [html["id"], svg["id"]]})
    assert status == 201, body
    messages = await history(api, bob, cid)
    for attachment, raw in zip(messages[-1]["attachments"], (HTML, SVG), strict=True):
        assert attachment["thumbnail_url"] is None and attachment["width"] is None
        status, headers, data = await fetch(api, attachment["url"])
        assert status == 200 and data == raw  # non-images are stored as they came
        assert headers["Content-Disposition"].startswith("attachment;"), headers
        assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert headers["X-Content-Type-Options"] == "nosniff"


async def test_urls_need_a_valid_signature_and_a_member(files_server: RunningServer, api: Api) -> None:
    (alice, bob, carol), cid = await group(api, 3)
    outsider = await api.register()
    secret = b"secret bytes of the group " * 4
    up = await upload_ok(api, alice, secret, "secret.txt")
    status, _ = await api.request("POST", f"/api/conversations/{cid}/messages", token=alice.token,
                                  json={"body": "for the group", "attachments": [up["id"]]})
    assert status == 201
    bob_url = (await history(api, bob, cid))[-1]["attachments"][0]["url"]
    status, _, data = await fetch(api, bob_url)
    assert status == 200 and data == secret

    urls = files_server.app[AURORA].files.urls
    # A correctly signed URL for someone who is not a member: 404, nothing of the file.
    status, _, data = await fetch(api, urls.url(up["id"], outsider.id))
    assert status == 404 and secret not in data
    # Tampered: another file id under bob's signature, a changed signature, none at all.
    other = await upload_ok(api, alice, b"other", "other.txt")
    for url in (bob_url.replace(f"/files/{up['id']}?", f"/files/{other['id']}?"), bob_url[:-3] + "xyz",
                bob_url.split("?")[0], bob_url.replace("?sig=", "/thumbnail?sig=")):
        status, _, data = await fetch(api, url)
        assert status == 403 and secret not in data, (url, status)
    # Signed with another key: 403.
    forged = AttachmentUrls(("another-key-that-is-long-enough-0123456789",), 3600).url(up["id"], bob.id)
    status, _, data = await fetch(api, forged)
    assert status == 403 and secret not in data
    # Expired: signed two hours ago (the server's own key, an earlier clock).
    ttl = files_server.app[AURORA].settings.attachment_url_ttl_s
    old = AttachmentUrls((TEST_SECRET,), ttl, clock=lambda: time.time() - ttl - 60).url(up["id"], bob.id)
    status, _, data = await fetch(api, old)
    assert status == 403 and secret not in data
    # Carol leaves: the URL she was given stops working at once.
    carol_url = (await history(api, carol, cid))[-1]["attachments"][0]["url"]
    assert (await fetch(api, carol_url))[0] == 200
    status, _ = await api.request("DELETE", f"/api/conversations/{cid}/members/me", token=carol.token)
    assert status == 200
    status, _, data = await fetch(api, carol_url)
    assert status == 404 and secret not in data
    assert (await fetch(api, bob_url))[0] == 200  # the others keep theirs


async def test_send_rules_and_a_retry_attaches_once(files_server: RunningServer, api: Api,
                                                    sockets: SocketFactory) -> None:
    (alice, bob), cid = await group(api)
    sock = await sockets.connect(alice.token)
    a = await upload_ok(api, alice, png(4, 4), "a.png")
    b = await upload_ok(api, alice, b"bee", "b.txt")
    bobs = await upload_ok(api, bob, b"bob's", "bob.txt")
    payload = {"conversation_id": cid, "body": "two", "attachments": [a["id"], b["id"]], "client_id": "c-1"}
    first = await acked(sock, "send_message", payload)
    again = await acked(sock, "send_message", payload)
    assert again["duplicate"] is True and again["message"]["id"] == first["message"]["id"]
    assert [x["id"] for x in again["message"]["attachments"]] == [a["id"], b["id"]]
    # The same retry over REST answers the original too.
    status, body = await api.request("POST", f"/api/conversations/{cid}/messages", token=alice.token,
                                     json={k: v for k, v in payload.items() if k != "conversation_id"})
    assert status == 200 and body["message"]["id"] == first["message"]["id"]
    messages = await history(api, alice, cid)
    assert len(messages) == 1 and [x["id"] for x in messages[0]["attachments"]] == [a["id"], b["id"]]

    await refused(sock, "send_message", {"conversation_id": cid, "attachments": [a["id"]], "client_id": "c-2"},
                  "conflict")  # already attached
    await refused(sock, "send_message", {"conversation_id": cid, "attachments": [bobs["id"]]}, "not_found")
    await refused(sock, "send_message", {"conversation_id": cid, "attachments": [999999]}, "not_found")
    more = [(await upload_ok(api, alice, bytes([i]) * 10, f"{i}.bin"))["id"] for i in range(4)]
    await refused(sock, "send_message", {"conversation_id": cid, "attachments": more}, "invalid")  # max 3
    await refused(sock, "send_message", {"conversation_id": cid, "attachments": [more[0], more[0]]}, "invalid")
    await refused(sock, "send_message", {"conversation_id": cid, "attachments": "1"}, "invalid")
    await refused(sock, "send_message", {"conversation_id": cid, "body": "  ", "attachments": []}, "invalid")
    # Refusals attached nothing: each of those uploads can still be sent, body absent.
    ok = await acked(sock, "send_message", {"conversation_id": cid, "attachments": more[:3]})
    assert ok["message"]["body"] == "" and len(ok["message"]["attachments"]) == 3
    assert len(await history(api, alice, cid)) == 2


async def test_attachments_in_every_shape(api: Api, sockets: SocketFactory) -> None:
    (alice, bob), cid = await group(api)
    up = await upload_ok(api, alice, png(16, 8), "wide.png")
    sock = await sockets.connect(alice.token)
    await acked(sock, "send_message", {"conversation_id": cid, "body": "aurora borealis", "attachments": [up["id"]]})

    def check(message: dict[str, Any]) -> None:
        [attachment] = message["attachments"]
        assert attachment["id"] == up["id"] and (attachment["width"], attachment["height"]) == (16, 8)
        assert attachment["url"] and attachment["thumbnail_url"]

    check((await history(api, bob, cid))[-1])
    bob_sock = await sockets.connect(bob.token)
    synced = await acked(bob_sock, "sync", {"cursors": {str(cid): 0}})
    check(synced["messages"][-1])
    status, found = await api.request("GET", "/api/search?q=borealis", token=bob.token)
    assert status == 200 and found["results"], found
    check(found["results"][0]["message"])
    status, listed = await api.request("GET", "/api/conversations", token=bob.token)
    check(next(c for c in listed["conversations"] if c["id"] == cid)["last_message"])
    # A change of a message with files: message_changed carries them, signed for each member.
    seq = synced["messages"][-1]["seq"]
    await acked(sock, "react", {"conversation_id": cid, "seq": seq, "emoji": "👍"})
    changed = await bob_sock.wait_for("message_changed", lambda e: e["conversation_id"] == cid)
    check(changed["message"])
    assert (await fetch(api, changed["message"]["attachments"][0]["url"]))[0] == 200
    # A message without files carries an empty list.
    plain = await acked(sock, "send_message", {"conversation_id": cid, "body": "no files"})
    assert plain["message"]["attachments"] == []


async def test_delete_detaches_and_removes_bytes_no_longer_named(files_server: RunningServer, api: Api,
                                                                 sockets: SocketFactory) -> None:
    (alice, bob), cid = await group(api)
    sock = await sockets.connect(alice.token)
    content = b"same content, twice" * 10
    one = await upload_ok(api, alice, content, "one.txt")
    two = await upload_ok(api, alice, content, "two.txt")
    assert one["sha256"] == two["sha256"]
    blobs = [p for p in stored_files(data_dir(files_server)) if p.name == one["sha256"]]
    assert len(blobs) == 1  # identical files stored once
    first = await acked(sock, "send_message", {"conversation_id": cid, "body": "1", "attachments": [one["id"]]})
    second = await acked(sock, "send_message", {"conversation_id": cid, "body": "2", "attachments": [two["id"]]})
    url = first["message"]["attachments"][0]["url"]
    deleted = await acked(sock, "delete_message", {"conversation_id": cid, "seq": first["message"]["seq"]})
    assert deleted["message"]["attachments"] == [] and deleted["message"]["deleted"] is True
    assert (await fetch(api, url))[0] == 404
    await files_server.app[AURORA].files.release([one["sha256"]])  # what the delete scheduled, run again now
    assert blobs[0].exists()  # the second message still names the same bytes
    await acked(sock, "delete_message", {"conversation_id": cid, "seq": second["message"]["seq"]})
    # The delete was acknowledged after its removal was scheduled (before the sender is answered).
    await files_server.app[AURORA].files.releases_done()
    assert not blobs[0].exists()
    assert [m["attachments"] for m in await history(api, bob, cid)] == [[], []]


async def test_orphans_are_cleaned(files_server: RunningServer, api: Api, sockets: SocketFactory) -> None:
    (alice, _bob), cid = await group(api)
    files = files_server.app[AURORA].files
    kept = await upload_ok(api, alice, png(3, 3, (1, 2, 3)), "kept.png")
    orphan = await upload_ok(api, alice, png(5, 5, (9, 9, 9)), "orphan.png")
    sock = await sockets.connect(alice.token)
    await acked(sock, "send_message", {"conversation_id": cid, "attachments": [kept["id"]]})
    before = stored_files(data_dir(files_server))
    assert len(before) == 4  # two images, two thumbnails
    assert (await files.sweep(utcnow()))["blobs"] == 0  # not old enough yet
    ttl = files_server.app[AURORA].settings.upload_orphan_ttl_s
    result = await files.sweep(utcnow() + dt.timedelta(seconds=ttl + 1))
    assert result["blobs"] == 2  # the orphan and its thumbnail
    left = stored_files(data_dir(files_server))
    assert len(left) == 2 and not any(p.name == orphan["sha256"] for p in left)
    assert any(p.name == kept["sha256"] for p in left)
    await refused(sock, "send_message", {"conversation_id": cid, "attachments": [orphan["id"]]}, "not_found")
    assert len((await history(api, alice, cid))[-1]["attachments"]) == 1
