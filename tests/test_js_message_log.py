"""The message log with the official JavaScript client: tests/js/message_log_scenario.mjs edits, deletes,
reacts and replies, and a device offline through all of it catches up by `sync`; both devices' stores
must equal REST history (checked in the script, and here against a fresh fetch)."""

from __future__ import annotations

import pytest

from tests.conftest import RunningServer
from tests.support.clients import Api
from tests.test_js_client import JS_DIR, _node, run_scenario

pytestmark = pytest.mark.node


async def test_js_client_applies_the_log_live_and_by_sync(server: RunningServer, api: Api) -> None:
    node = _node()
    alice, bob = await api.register(), await api.register()
    code, result, stderr = await run_scenario(node, JS_DIR / "message_log_scenario.mjs", server.url,
                                              alice.token, bob.token, str(bob.id))
    assert code == 0 and result.get("ok") is True, (code, result, stderr)
    status, body = await api.request("GET", f"/api/conversations/{result['conversation_id']}/messages",
                                     token=bob.token)
    assert status == 200 and body["messages"] == result["history"]
    first = body["messages"][0]
    assert first["deleted"] is True and first["body"] is None
    assert body["messages"][1]["reply_to"]["excerpt"] is None
    assert body["messages"][1]["reactions"][0]["emoji"] == "❤️"
