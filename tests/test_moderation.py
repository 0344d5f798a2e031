"""Admin and moderation with real servers: the admin role (CLI), users, deactivation (sockets closed on
every process, tokens and logins refused, messages kept), deleting any message, reports, the audit log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.clients import DEFAULT_PASSWORD, Api, SocketFactory, TestSocket, messages_of, unique_name
from tests.support.cluster import Node
from tests.support.ops import app_cli, make_admin


async def _closed(*socks: TestSocket) -> bool:
    for _ in range(100):  # bounded poll: the server closes them, the clients notice
        if not any(s.client.connected for s in socks):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_create_user_admin_and_admin_routes(api: Api, db_url: str, tmp_path: Path) -> None:
    name = unique_name("boss")
    created = await _create_admin_with_stdin(db_url, tmp_path, name)
    assert f"created admin {name}" in created
    status, body = await api.request("POST", "/api/auth/login", json={"username": name, "password": DEFAULT_PASSWORD})
    assert status == 200, body
    admin_token = body["token"]
    regular = await api.register(display_name="Zed Regular")
    status, body = await api.request("GET", "/api/admin/users?q=zed", token=admin_token)
    assert status == 200 and [u["id"] for u in body["users"]] == [regular.id], body
    assert body["users"][0]["is_admin"] is False and body["users"][0]["deactivated_at"] is None
    for method, path in (("GET", "/api/admin/users"), ("GET", "/api/admin/reports"), ("GET", "/api/admin/audit"),
                         ("POST", f"/api/admin/users/{regular.id}/deactivate")):
        status, body = await api.request(method, path, token=regular.token)
        assert status == 403 and body["error"]["code"] == "forbidden", (path, body)
    status, body = await api.request("GET", "/api/admin/users?limit=0", token=admin_token)
    assert status == 400 and body["error"]["code"] == "invalid"
    # Revoked: refused at once (the role is read from the database on every admin request).
    revoke = await app_cli(["admin", "revoke", name], db_url, tmp_path / "data")
    assert revoke.returncode == 0 and "no longer an admin" in revoke.stdout
    status, _ = await api.request("GET", "/api/admin/users", token=admin_token)
    assert status == 403


async def _create_admin_with_stdin(db_url: str, tmp_path: Path, name: str) -> str:
    import os
    import sys

    from aurora.settings import PROJECT_ROOT
    from tests.support.processes import TEST_CONFIG, TEST_SECRET

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}, "AURORA_CONFIG": str(TEST_CONFIG),
           "AURORA_SECRET_KEY": TEST_SECRET, "AURORA_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": db_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PROJECT_ROOT / "app.py"), "create-user", name, "--admin", "--password-stdin",
        cwd=PROJECT_ROOT, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(DEFAULT_PASSWORD.encode() + b"\n"), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_deactivate_closes_sockets_refuses_tokens_and_logins_keeps_messages(
        api: Api, sockets: SocketFactory, db_url: str, tmp_path: Path) -> None:
    admin = await make_admin(api, db_url, tmp_path / "data")
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    await api.send(bob, conversation["id"], "bob was here")
    chat, calls = await sockets.connect(bob.token), await sockets.connect(bob.token, "/calls")
    bystander = await sockets.connect(alice.token)

    status, body = await api.request("POST", f"/api/admin/users/{bob.id}/deactivate", token=admin.token)
    assert status == 200 and body["user"]["deactivated_at"] is not None, body
    assert await _closed(chat, calls)
    assert bystander.client.connected
    status, body = await api.request("GET", "/api/me", token=bob.token)
    assert status == 401 and body["error"]["code"] == "auth_invalid"
    assert (await sockets.connect_error(bob.token))["data"]["code"] == "auth_invalid"
    status, body = await api.request("POST", "/api/auth/login", json={"username": bob.username,
                                                                       "password": bob.password})
    assert status == 403 and body["error"]["code"] == "forbidden", body
    assert [m["body"] for m in await messages_of(api, alice, conversation["id"])] == ["bob was here"]
    status, body = await api.request("POST", f"/api/admin/users/{admin.id}/deactivate", token=admin.token)
    assert status == 400, body  # not themselves

    status, _ = await api.request("POST", f"/api/admin/users/{bob.id}/reactivate", token=admin.token)
    assert status == 200
    status, _ = await api.request("POST", "/api/auth/login", json={"username": bob.username, "password": bob.password})
    assert status == 200
    status, body = await api.request("GET", "/api/admin/audit", token=admin.token)
    assert [(e["action"], e["actor_id"], e["target"]) for e in body["entries"][:2]] == [
        ("user.reactivate", admin.id, f"user:{bob.id}"), ("user.deactivate", admin.id, f"user:{bob.id}")]
    assert body["entries"][2]["action"] == "admin.grant" and body["entries"][2]["actor_id"] is None  # the CLI
    assert all(e["created_at"].endswith("Z") for e in body["entries"])


async def test_admin_deletes_any_message_with_the_senders_tombstone(
        api: Api, sockets: SocketFactory, db_url: str, tmp_path: Path) -> None:
    admin = await make_admin(api, db_url, tmp_path / "data")
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    cid = conversation["id"]
    _, first = await api.send(alice, cid, "abusive")
    _, second = await api.send(alice, cid, "deleted by its sender")
    watcher = await sockets.connect(bob.token)

    status, ack = await api.request("DELETE", f"/api/admin/messages/{cid}/{first['message']['seq']}", token=admin.token)
    assert status == 200, ack
    assert ack["entry"]["kind"] == "delete" and ack["message"]["deleted"] is True and ack["duplicate"] is False
    changed = await watcher.wait_for("message_changed")
    assert changed["entry"]["target_seq"] == first["message"]["seq"] and changed["message"]["deleted"] is True
    status, _ = await api.request("DELETE", f"/api/conversations/{cid}/messages/{second['message']['seq']}",
                                    token=alice.token)
    assert status == 200
    history = {m["seq"]: m for m in await messages_of(api, bob, cid)}
    moderated, by_sender = history[first["message"]["seq"]], history[second["message"]["seq"]]
    assert moderated["deleted"] is True and moderated["body"] in ("", None)
    assert {k for k in moderated if moderated[k] != by_sender[k]} <= {"id", "seq", "created_at", "state_seq"}
    status, again = await api.request("DELETE", f"/api/admin/messages/{cid}/{first['message']['seq']}",
                                      token=admin.token)
    assert status == 200 and again["duplicate"] is True
    status, body = await api.request("DELETE", f"/api/admin/messages/{cid}/999", token=admin.token)
    assert status == 404, body
    status, body = await api.request("DELETE", f"/api/admin/messages/{cid}/1", token=alice.token)
    assert status == 403
    status, body = await api.request("GET", "/api/admin/audit", token=admin.token)
    assert body["entries"][0]["action"] == "message.delete"
    assert body["entries"][0]["target"] == f"message:{cid}/{first['message']['seq']}"


async def test_members_report_and_admins_read_reports(api: Api, db_url: str, tmp_path: Path) -> None:
    admin = await make_admin(api, db_url, tmp_path / "data")
    alice, bob, outsider = await api.register(), await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    _, sent = await api.send(alice, conversation["id"], "spam spam")
    path = f"/api/conversations/{conversation['id']}/messages/{sent['message']['seq']}/report"
    status, body = await api.request("POST", path, token=bob.token, json={"reason": "spam"})
    assert status == 201 and body["report"]["reason"] == "spam", body
    status, again = await api.request("POST", path, token=bob.token, json={"reason": "spam"})
    assert status == 200 and again["report"]["id"] == body["report"]["id"]
    status, body = await api.request("POST", path, token=outsider.token, json={"reason": "nosy"})
    assert status == 404
    status, body = await api.request("POST", path, token=bob.token, json={"reason": "x" * 1001})
    assert status == 400
    status, body = await api.request("POST", path.replace(f"/{sent['message']['seq']}/", "/77/"), token=bob.token,
                                     json={})
    assert status == 404
    status, body = await api.request("GET", "/api/admin/reports", token=admin.token)
    assert status == 200
    [report] = body["reports"]
    assert report["reporter"]["id"] == bob.id and report["message"]["body"] == "spam spam"
    assert report["seq"] == sent["message"]["seq"]




async def test_deactivation_closes_sockets_on_every_process(cluster: list[Node], postgres_url: str,
                                                            tmp_path: Path) -> None:
    one, two = cluster
    admin = await make_admin(one.api, postgres_url, tmp_path / "data")
    bob = await one.api.register()
    here, there = await one.sockets.connect(bob.token), await two.sockets.connect(bob.token)
    status, _ = await one.api.request("POST", f"/api/admin/users/{bob.id}/deactivate", token=admin.token)
    assert status == 200
    assert await _closed(here, there)
    status, _ = await two.api.request("GET", "/api/me", token=bob.token)
    assert status == 401
