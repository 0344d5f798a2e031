"""One call driven by the official JavaScript socket.io-client (tests/js/calls_scenario.mjs under Node).

Without Node or the tests/js packages the test skips (fails under AURORA_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from aurora.settings import PROJECT_ROOT
from tests.conftest import RunningServer
from tests.support.clients import Api, stored_call
from tests.support.services import require_or_skip

JS_DIR = PROJECT_ROOT / "tests" / "js"
SCENARIO = JS_DIR / "calls_scenario.mjs"

OFFER = {
    "type": "offer",
    "sdp": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
           + "a=candidate:842163049 1 udp 1677729535 203.0.113.7 49203 typ srflx\r\n" * 100,
    "meta": {"label": "Grüße 🎥 你好", "tracks": [{"kind": "audio", "muted": False}, {"kind": "video", "fps": 29.97}],
             "none": None, "empty": {}},
}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=ünïcödé\r\n", "z": [1, "2", [3]]}


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        require_or_skip("Node.js", "no node on PATH")
    if not (JS_DIR / "node_modules" / "socket.io-client" / "package.json").is_file():
        require_or_skip("socket.io-client", "tests/js/node_modules is missing (make js)")
    assert node is not None
    return node


@pytest.mark.node
async def test_js_client_invite_accept_signal_hangup(server: RunningServer, api: Api) -> None:
    node = node_or_skip()
    alice, bob = await api.register(), await api.register()
    direct = await api.conversation(alice, [bob])
    config = {
        "url": server.url, "conversation_id": direct["id"], "offer": OFFER, "answer": ANSWER,
        "caller": {"id": alice.id, "token": alice.token}, "callee": {"id": bob.id, "token": bob.token},
    }
    proc = await asyncio.create_subprocess_exec(
        node, str(SCENARIO), json.dumps(config), cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the JS scenario did not finish within 60 s") from None
    lines = stdout.decode().strip().splitlines()
    assert lines, stderr.decode()
    result = json.loads(lines[-1])
    assert proc.returncode == 0 and result["ok"] is True, (proc.returncode, result, stderr.decode()[-2000:])

    # What the JS callee and caller received is what was sent, as Python sees it too.
    assert json.dumps(result["offer"], ensure_ascii=False) == json.dumps(OFFER, ensure_ascii=False)
    assert json.dumps(result["answer"], ensure_ascii=False) == json.dumps(ANSWER, ensure_ascii=False)
    assert result["ended"] == ["hangup", "hangup"]
    stored = await stored_call(api, bob, {"id": result["call_id"], "conversation_id": direct["id"]})
    assert stored["state"] == "ended" and stored["end_reason"] == "hangup" and stored["media"] == "video"
    assert stored["answered_at"] is not None and sorted(stored["participants"]) == sorted([alice.id, bob.id])
