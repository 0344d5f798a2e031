"""Logs of a real process at DEBUG in JSON: every line parses, request and event lines carry their id,
and no password or token sent through the routes and events appears anywhere. At INFO in text, each
stored message's line has the documented shape and the wall-clock time."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

from aurora.log_context import TEXT_FORMAT, TextFormatter
from tests.support.clients import Api, SocketFactory, acked
from tests.support.processes import AuroraProcess

NEW_PASSWORD = "second secret password 4711"
WRONG_PASSWORD = "wrong guess password 0815"


async def test_json_logs_carry_ids_and_never_secrets(tmp_path: Path) -> None:
    process = AuroraProcess(f"sqlite:///{tmp_path}/aurora.db", tmp_path / "aurora.log", log_format="json",
                            log_level="DEBUG")
    process.env["AURORA_LOG_LEVEL"] = "DEBUG"
    await process.start()
    api, sockets = Api(process.url), SocketFactory(process.url)
    secrets: list[str] = [NEW_PASSWORD, WRONG_PASSWORD]
    try:
        alice, bob = await api.register(), await api.register()
        secrets += [alice.password, alice.token, bob.token]
        status, _ = await api.request("POST", "/api/auth/login", json={"username": alice.username,
                                                                       "password": WRONG_PASSWORD})
        assert status == 401
        status, body = await api.request("POST", "/api/auth/login", json={"username": alice.username,
                                                                          "password": alice.password},
                                         headers={"X-Request-Id": "trace-me-123"})
        assert status == 200
        secrets.append(body["token"])
        status, body = await api.request("POST", "/api/auth/password", token=body["token"],
                                         json={"current_password": alice.password, "new_password": NEW_PASSWORD})
        assert status == 200, body
        fresh = body["token"]
        secrets.append(fresh)
        conversation = await api.conversation(bob, [alice])
        by_auth = await sockets.connect(bob.token)
        await sockets.connect(None, use_auth=False, headers={"Authorization": f"Bearer {fresh}"})
        await sockets.connect(None, use_auth=False, url_suffix=f"?token={bob.token}")
        await acked(by_auth, "send_message", {"conversation_id": conversation["id"], "body": "hello"})
        await acked(by_auth, "sync", {"cursors": {str(conversation["id"]): 0}})
        await api.send(alice.__class__(alice.id, alice.username, fresh, alice.user), conversation["id"], "rest")
        await sockets.connect_error("not-a-valid-token-" + "x" * 20)
        status, _ = await api.request("POST", "/api/auth/logout", token=bob.token)
        assert status == 200
    finally:
        await sockets.close_all()
        await api.close()
        process.stop()

    text = process.log_text()
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:6]}…) is in the log"
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert entries and all({"time", "level", "logger", "id", "message"} <= set(e) for e in entries)
    access = [e for e in entries if e["logger"] == "aiohttp.access"]
    assert access and all(e["id"] != "-" for e in access), [e for e in access if e["id"] == "-"]
    assert any(e["id"] == "trace-me-123" and "/api/auth/login" in e["message"] for e in access)
    broadcasts = [e for e in entries if "Broadcast to" in e["message"]]
    assert any(e["id"].startswith("sid:") for e in broadcasts), broadcasts  # the socket send
    assert any(not e["id"].startswith("sid:") and e["id"] != "-" for e in broadcasts), broadcasts  # the REST one


TEXT_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d{3} INFO aurora\.services\.messages \[sid:[^\]]+\]: "
                       r"New DM in conversation (\d+) from (\S+)\. Broadcast to (\d+) connections\.$")


async def test_text_lines_at_info_have_the_documented_shape_and_the_time(tmp_path: Path) -> None:
    process = AuroraProcess(f"sqlite:///{tmp_path}/aurora.db", tmp_path / "aurora.log")  # INFO, text
    await process.start()
    api, sockets = Api(process.url), SocketFactory(process.url)
    try:
        alice, bob = await api.register(), await api.register()
        conversation = await api.conversation(alice, [bob])
        sender = await sockets.connect(alice.token)
        await sockets.connect(bob.token)
        before = dt.datetime.now().replace(microsecond=0)
        for body in ("one", "two", "three"):
            await acked(sender, "send_message", {"conversation_id": conversation["id"], "body": body})
        after = dt.datetime.now()
    finally:
        await sockets.close_all()
        await api.close()
        process.stop()
    lines = [m for m in map(TEXT_LINE.match, process.log_text().splitlines()) if m]
    assert len(lines) == 3, process.log_text()[-2000:]
    for line in lines:
        # Bob's socket: the sender's own is not counted (it has the ack).
        assert (line[2], line[3], line[4]) == (str(conversation["id"]), alice.username, "1")
        assert before <= dt.datetime.strptime(line[1], "%Y-%m-%d %H:%M:%S") <= after  # local time, as logging's


def test_the_text_formatter_writes_what_logging_s_own_would_across_seconds() -> None:
    ours, theirs = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    start = 1_764_000_000.25
    for offset in (0.0, 0.5, 0.999, 1.0, 1.7, 61.2, 3600.0, 0.3):  # forwards, then back to an older second
        record = logging.LogRecord("aurora.x", logging.INFO, __file__, 1, "m %s", ("x",), None)
        record.created = start + offset
        record.msecs = int((record.created - int(record.created)) * 1000) + 0.0
        record.log_id = "-"
        assert ours.format(record) == theirs.format(record)
