"""A full disk under SQLite, on a small file system the test mounts: refusals are `unavailable`,
/health says the database cannot write, and when space is back the server recovers by itself
without losing anything it acknowledged."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import Account, Api, SocketFactory, TestSocket

FS_SIZE = "4m"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted inside tmp_path (needs root and mount permission; skipped otherwise)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small file system")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {FS_SIZE} tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "needs root with mount permission")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


@pytest.fixture
def db_url(small_fs: Path) -> str:
    """conftest's server, api and sockets on a SQLite database in the small file system."""
    return f"sqlite:///{small_fs}/aurora.db"


async def _pair(api: Api, sockets: SocketFactory) -> tuple[Account, Account, int, TestSocket]:
    """alice and bob in a conversation, alice connected."""
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    return alice, bob, cid, await sockets.connect(alice.token)


def _fill(directory: Path) -> Path:
    """Write zeros until the file system refuses (ENOSPC), down to its last block."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


async def _group(api: Api, account: Account, others: list[Account], title: str) -> tuple[int, Any, Any]:
    return await api.request_with_headers("POST", "/api/conversations", token=account.token,
                                          json={"user_ids": [o.id for o in others], "title": title})


async def test_a_full_disk_answers_unavailable_and_recovers(small_fs: Path, api: Api, sockets: SocketFactory) -> None:
    alice, bob, cid, alice_socket = await _pair(api, sockets)
    acked = []
    for i in range(5):
        ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": f"before {i}"})
        assert ack["ok"] is True, ack
        acked.append(ack["message"])

    filler = _fill(small_fs)
    # The WAL grows with every commit (it is far from its checkpoint size), so writes now fail.
    refusals = []
    for i in range(200):
        status, body, headers = await _group(api, alice, [bob], f"while full {i}")
        if status != 201:
            refusals.append((status, body, headers))
            break
    assert refusals, "the disk never filled up"
    status, body, headers = refusals[0]
    assert (status, body["error"]["code"]) == (503, "unavailable"), body
    assert "space" in body["error"]["message"] or "cannot store" in body["error"]["message"], body
    assert int(headers["Retry-After"]) > 0

    status, health = await api.request("GET", "/health")
    assert status == 503, health
    assert health["status"] == "error" and health["database"] == "cannot_write", health
    # Reading still works.
    status, page = await api.request("GET", f"/api/conversations/{cid}/messages", token=bob.token)
    assert status == 200 and [m["seq"] for m in page["messages"]] == [m["seq"] for m in acked], page

    # A send while full is refused (not acknowledged), and the socket stays usable.
    ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": "while full"})
    assert ack["ok"] is False, ack

    os.unlink(filler)
    # /health notices by itself (a cheap write probe), without any client writing first.
    for _ in range(50):
        status, health = await api.request("GET", "/health")
        if status == 200:
            break
    assert (status, health["database"]) == (200, "ok"), health
    ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": "after"})
    assert ack["ok"] is True, ack
    status, page = await api.request("GET", f"/api/conversations/{cid}/messages", token=bob.token)
    bodies = [m["body"] for m in page["messages"]]
    # Everything acknowledged is there, in order; the refused send was not stored.
    assert bodies == [m["body"] for m in acked] + ["after"], bodies
    status, body, _ = await _group(api, alice, [bob], "after")
    assert status == 201, body


async def test_a_send_on_a_full_disk_answers_unavailable(small_fs: Path, api: Api, sockets: SocketFactory) -> None:
    _, _, cid, alice_socket = await _pair(api, sockets)
    _fill(small_fs)
    for i in range(200):
        ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": f"full {i}"})
        if not ack["ok"]:
            break
    assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
