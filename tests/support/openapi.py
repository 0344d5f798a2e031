"""A real `python app.py` for schemathesis: an admin with a token and a little of everything in the
database, so that generated requests reach the code behind the 404s (tests/test_openapi_schemathesis.py).

On a fresh database the ids are predictable: users 1 (the admin), 2 and 3; conversation 1 is the
admin's DM with user 2, conversation 2 a group of all three. Schemathesis's boundary values (1, 2) land
on them: a message list, an edit, a reaction, a report, a trace, an attachment all answer for real.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aurora.settings import PROJECT_ROOT
from tests.support.clients import DEFAULT_PASSWORD, Account, Api, SocketFactory, acked
from tests.support.files import png, upload_ok
from tests.support.foundation import run_cli
from tests.support.processes import TEST_CONFIG, TEST_SECRET, AuroraProcess
from tests.support.push_service import Device

ADMIN = "openapi_admin"
# The seeded push subscription names this discard address; the document's example names FCM, allowed
# too so that the example is stored (201). Nothing is pushed to the admin in the run (a push goes to
# the members other than the sender), and the server's HTTPS_PROXY is the discard port all the same:
# no push can leave the machine.
PUSH_ENDPOINT = "http://127.0.0.1:9/push/openapi"
SERVER_SETTINGS = {"push_endpoint_hosts": "127.0.0.1,fcm.googleapis.com", "push_allow_insecure_endpoints": "true"}
NO_NETWORK = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}


@dataclass
class SeededServer:
    process: AuroraProcess
    admin_token: str
    # Query values that only the server can make: the signed URLs of the seeded attachment.
    file_sig: str = ""
    thumbnail_sig: str = ""
    upload_id: int = 0
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.process.url


def _cli_env(tmp: Path) -> dict[str, str]:
    return {"AURORA_CONFIG": str(TEST_CONFIG), "AURORA_SECRET_KEY": TEST_SECRET,
            "AURORA_DATA_DIR": str(tmp / "data")}


@asynccontextmanager
async def seeded_server(tmp: Path, database_url: str) -> AsyncIterator[SeededServer]:
    """`python app.py` on a kernel-picked port with an admin (made by `create-user --admin`, its token
    by `app.py token`) and the seed data; stopped by PID afterwards."""
    made = run_cli(["--database-url", database_url, "create-user", "--admin", "--password-stdin", ADMIN],
                   cwd=PROJECT_ROOT, env=_cli_env(tmp), stdin=DEFAULT_PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    token = run_cli(["--database-url", database_url, "token", ADMIN], cwd=PROJECT_ROOT, env=_cli_env(tmp))
    assert token.returncode == 0, token.stderr
    process = AuroraProcess(database_url, tmp / "server.log", **SERVER_SETTINGS)
    process.env.update(NO_NETWORK)
    await process.start()
    try:
        server = SeededServer(process, token.stdout.strip())
        await _seed(server)
        yield server
    finally:
        process.stop()


async def _seed(server: SeededServer) -> None:
    api = Api(server.url)
    sockets = SocketFactory(server.url)
    try:
        peer = await api.register("openapi_peer")
        third = await api.register("openapi_third")
        admin_status, me = await api.request("GET", "/api/me", token=server.admin_token)
        assert admin_status == 200, me
        admin = me["user"]
        dm = await api.request("POST", "/api/conversations", token=server.admin_token, json={"user_ids": [peer.id]})
        group = await api.request("POST", "/api/conversations", token=server.admin_token,
                                  json={"user_ids": [peer.id, third.id], "title": "OpenAPI group"})
        assert dm[0] == 201 and group[0] == 201, (dm, group)
        dm_id, group_id = dm[1]["conversation"]["id"], group[1]["conversation"]["id"]
        for text in ("first", "second", "third"):
            for cid in (dm_id, group_id):
                status, body = await api.request("POST", f"/api/conversations/{cid}/messages",
                                                 token=server.admin_token, json={"body": f"{text} message"})
                assert status == 201, body
        status, _ = await api.send(peer, dm_id, "a reply", None)
        assert status == 201
        status, body = await api.request("POST", f"/api/conversations/{dm_id}/messages", token=peer.token,
                                         json={"body": "replying", "reply_to_seq": 1})
        assert status == 201, body
        status, body = await api.request("PUT", f"/api/conversations/{dm_id}/messages/1/reactions/%F0%9F%91%8D",
                                         token=peer.token)
        assert status == 200, body
        status, body = await api.request("PATCH", f"/api/conversations/{group_id}/messages/1",
                                         token=server.admin_token, json={"body": "first message, edited"})
        assert status == 200, body
        # An image in the group: a message with an attachment, signed URLs for the file and its thumbnail.
        admin_account = Account(admin["id"], admin["username"], server.admin_token, admin)
        uploaded = await upload_ok(api, admin_account, png(64, 48), "seed.png")
        status, body = await api.request("POST", f"/api/conversations/{group_id}/messages", token=server.admin_token,
                                         json={"body": "", "attachments": [uploaded["id"]]})
        assert status == 201, body
        attachment = body["message"]["attachments"][0]
        server.upload_id = attachment["id"]
        server.file_sig = attachment["url"].split("sig=", 1)[1]
        server.thumbnail_sig = attachment["thumbnail_url"].split("sig=", 1)[1]
        # A report, a push subscription, a mute, an ended call (its summary message), audit entries.
        status, body = await api.request("POST", f"/api/conversations/{dm_id}/messages/2/report", token=peer.token,
                                         json={"reason": "seeded report"})
        assert status == 201, body
        device = Device("seed", PUSH_ENDPOINT, "")
        status, body = await api.request("POST", "/api/push/subscriptions", token=server.admin_token,
                                         json=device.subscription())
        assert status == 201, body
        status, body = await api.request("PUT", f"/api/conversations/{group_id}/mute", token=server.admin_token,
                                         json={"until": "2099-01-01T00:00:00Z"})
        assert status == 200, body
        caller = await sockets.connect(server.admin_token, "/calls")
        callee = await sockets.connect(peer.token, "/calls")
        call = (await acked(caller, "call_invite", {"conversation_id": dm_id, "media": "audio"}))["call"]
        await acked(callee, "call_accept", {"call_id": call["id"]})
        await acked(caller, "call_hangup", {"call_id": call["id"]})
        extra = await api.register("openapi_extra")
        for action in ("deactivate", "reactivate"):
            status, body = await api.request("POST", f"/api/admin/users/{extra.id}/{action}",
                                             token=server.admin_token)
            assert status == 200, body
        server.facts = {"admin_id": admin["id"], "dm_id": dm_id, "group_id": group_id, "peer_id": peer.id}
    finally:
        await sockets.close_all()
        await api.close()


def schemathesis_env(server: SeededServer) -> dict[str, str]:
    """The environment of `schemathesis run`: the hooks module and what it needs to know."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    env.update({
        "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks",
        "PYTHONPATH": str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        "AURORA_OPENAPI_URL": server.url,
        "AURORA_OPENAPI_ADMIN_TOKEN": server.admin_token,
        "AURORA_OPENAPI_GROUP_ID": str(server.facts["group_id"]),
        "NO_COLOR": "1",
    })
    return env


async def run_schemathesis(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str]:
    """`schemathesis ARGS` (the venv's), to completion; returns (exit status, stdout + stderr)."""
    binary = Path(sys.executable).parent / "schemathesis"
    proc = await asyncio.create_subprocess_exec(str(binary), *args, cwd=cwd, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        return -1, out.decode(errors="replace") + f"\n(schemathesis killed after {timeout} s)"
    return proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace")



_ACCESS_LINE = re.compile(r'"([A-Z]+) (/\S*)" (\d{3}) ')


def answered_2xx(log_text: str, paths: list[str]) -> set[str]:
    """The documented operations ("METHOD /template") that answered a 2xx in this access log."""
    templates = [(re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(p)) + "$"), p) for p in paths]
    # The most specific first: /api/conversations/{conversation_id}/members/me before .../{seq}.
    templates.sort(key=lambda t: (t[1].count("{"), -len(t[1])))
    found = set()
    for method, path, status in _ACCESS_LINE.findall(log_text):
        if not status.startswith("2"):
            continue
        for pattern, template in templates:
            if pattern.match(path):
                found.add(f"{method} {template}")
                break
    return found
