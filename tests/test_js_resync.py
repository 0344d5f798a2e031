"""The JavaScript SDK syncs on `resync` (issue 16, target 5): a message whose live event never arrives
reaches the store through the sync the server's `resync` asks for (the Python SDK's twin is in
tests/test_pysdk_basics.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from aurora.context import AURORA
from tests.conftest import RunningServer
from tests.support.clients import Api
from tests.test_js_client import JS_DIR, _node

pytestmark = pytest.mark.node


async def test_js_sdk_syncs_on_resync(server: RunningServer, api: Api) -> None:
    node = _node()
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    process = await asyncio.create_subprocess_exec(
        node, str(JS_DIR / "sdk_resync_scenario.mjs"), server.url, bob.token, str(cid), "lost live",
        cwd=str(JS_DIR), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), 30)
        assert json.loads(ready) == {"ready": True}, ready
        status, _ = await api.send(alice, cid, "lost live")  # dropped on its way to bob's store
        assert status == 201
        await server.app[AURORA].sio.emit("resync", {"reason": "test"}, namespace="/chat")
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    result = json.loads(stdout.decode().splitlines()[-1])
    assert process.returncode == 0 and result["ok"], (result, stderr.decode())
    assert result["bodies"] == ["lost live"]
    assert "resync:test" in result["events"] and "new_message" in result["events"]
