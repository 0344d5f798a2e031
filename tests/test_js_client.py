"""The official JavaScript client (socket.io-client 4.x, run by Node) against the real server.

tests/js/chat_scenario.mjs drives two users end to end: connect with `auth: {token}`, send with an
ack, receive without joining, reconnect and catch up with `sync`, and a refused connect's
`err.data.code`. It prints one JSON result; this test asserts on it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.support.clients import Api
from tests.support.services import require_or_skip

JS_DIR = Path(__file__).resolve().parent / "js"
SCENARIO = JS_DIR / "chat_scenario.mjs"
SDK_SCENARIO = JS_DIR / "sdk_chat_scenario.mjs"

pytestmark = pytest.mark.node


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        require_or_skip("Node.js", "`node` is not on PATH")
    if not (JS_DIR / "node_modules" / "socket.io-client" / "package.json").exists():
        require_or_skip("socket.io-client", f"{JS_DIR}/node_modules is missing (run `make js` or `make test`)")
    assert node is not None
    return node


async def run_scenario(node: str, script: Path, *args: str, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
    """Run a Node script without blocking the event loop the server runs on."""
    process = await asyncio.create_subprocess_exec(
        node, str(script), *args, cwd=str(JS_DIR),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{script.name} did not finish within {timeout}s") from None
    lines = [line for line in stdout.decode().splitlines() if line.strip()]
    assert lines, f"{script.name} printed nothing (exit {process.returncode}); stderr:\n{stderr.decode()}"
    try:
        result = json.loads(lines[-1])
    except ValueError:
        raise AssertionError(f"not JSON: {lines[-1]!r}; stderr:\n{stderr.decode()}") from None
    return process.returncode or 0, result, stderr.decode()


# websocket only (what the issue asks), and the browser default: long-polling first, then the upgrade.
@pytest.mark.parametrize("transports", ["websocket", "polling,websocket"])
async def test_socket_io_client_end_to_end(server: RunningServer, api: Api, transports: str) -> None:
    node = _node()
    alice = await api.register()
    bob = await api.register()
    code, result, stderr = await run_scenario(node, SCENARIO, server.url, alice.token, bob.token, transports)
    assert code == 0 and result.get("ok") is True, (code, result, stderr)
    assert result["transports"] == transports.split(",")

    # The ack the JS client got is the stored message.
    ack = result["ack"]
    assert ack["ok"] is True and ack["duplicate"] is False
    status, body = await api.request("GET", f"/api/conversations/{result['conversation_id']}/messages",
                                     token=bob.token)
    assert status == 200, body
    stored = body["messages"]
    assert stored[0] == ack["message"]
    assert [m["seq"] for m in stored] == [1, 2, 3, 4, 5]
    assert [m["sender_id"] for m in stored] == [alice.id] * 5
    # What bob ended up with: everything once, in order; 2-4 came through sync.
    assert result["bob_seqs"] == [1, 2, 3, 4, 5]
    assert result["synced_seqs"] == [2, 3, 4]
    assert result["refused_codes"] == {"bad_token": "auth_invalid", "no_token": "auth_required"}
    assert [s["step"] for s in result["steps"]] == [
        "connected", "conversation_created", "send_ack", "bob_received_without_join", "receipt",
        "sent_while_bob_offline", "sync", "live_after_sync", "refused",
    ]
    # Bob's delivery confirmation reached the server.
    status, body = await api.request("GET", "/api/conversations", token=bob.token)
    [listed] = [c for c in body["conversations"] if c["id"] == result["conversation_id"]]
    assert listed["delivered_seq"] >= 1


async def test_scenario_reports_failure_with_non_zero_exit(server: RunningServer) -> None:
    """The scenario is a real check: against tokens that do not work it fails loudly, not silently."""
    node = _node()
    code, result, _ = await run_scenario(node, SCENARIO, server.url, "bad-token", "bad-token")
    assert code != 0
    assert result["ok"] is False and result["error"]


@pytest.mark.parametrize("transports", ["websocket", "polling,websocket"])
async def test_sdk_chat_scenario(server: RunningServer, api: Api, transports: str) -> None:
    """The same story through aurora-client: catch-up, delivered and read without hand-written protocol."""
    node = _node()
    if not (JS_DIR / "node_modules" / "aurora-client" / "src" / "index.js").exists():
        require_or_skip("aurora-client", "tests/js/node_modules/aurora-client is missing (run `make test`)")
    alice = await api.register()
    bob = await api.register()
    code, result, stderr = await run_scenario(node, SDK_SCENARIO, server.url, alice.token, bob.token, transports)
    assert code == 0 and result.get("ok") is True, (code, result, stderr)
    assert result["steps"] == ["connected", "conversation_created", "delivered", "caught_up", "read"]
    cid = result["conversation_id"]
    status, body = await api.request("GET", f"/api/conversations/{cid}/messages", token=bob.token)
    assert status == 200, body
    stored = [(m["seq"], m["body"]) for m in body["messages"]]
    assert stored == [(1, "hello from the SDK"), (2, "while away 0"), (3, "while away 1"), (4, "while away 2"),
                      (5, "welcome back")]
    # Both SDK stores hold exactly what the server stored; bob saw each message once.
    for key in ("bob_messages", "alice_messages"):
        assert [(m["seq"], m["body"]) for m in result[key]] == stored
        assert [m["id"] for m in result[key]] == [m["id"] for m in body["messages"]]
    assert result["bob_events"] == [1, 2, 3, 4, 5]
    assert result["bob_unread"] == 0
    status, body = await api.request("GET", "/api/conversations", token=bob.token)
    [listed] = [c for c in body["conversations"] if c["id"] == cid]
    assert listed["read_seq"] == 5 and listed["delivered_seq"] == 5 and listed["unread_count"] == 0
