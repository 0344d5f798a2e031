"""The delivery trace: GET /api/admin/messages/{cid}/{seq}/trace and `python app.py trace`, with real
sockets: an offline member, a member on two devices, a member on another process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import RunningServer
from tests.support.clients import Account, Api, SocketFactory, acked
from tests.support.cluster import Node
from tests.support.ops import app_cli, make_admin

PHONE = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile"}
LAPTOP = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}


async def trace_of(api: Api, admin: Account, conversation_id: int, seq: int) -> dict[str, Any]:
    status, body = await api.request("GET", f"/api/admin/messages/{conversation_id}/{seq}/trace", token=admin.token)
    assert status == 200, (status, body)
    return body["trace"]


def member(trace: dict[str, Any], account: Account) -> dict[str, Any]:
    found = [m for m in trace["members"] if m["user_id"] == account.id]
    assert len(found) == 1, trace
    return found[0]


async def test_offline_member_then_synced_on_the_phone(server: RunningServer, api: Api, sockets: SocketFactory,
                                                       db_url: str, tmp_path: Path) -> None:
    admin = await make_admin(api, db_url, tmp_path / "data")
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    a = await sockets.connect(alice.token, headers=LAPTOP)
    ack = await acked(a, "send_message", {"conversation_id": conversation["id"], "body": "are you there?"})
    seq = ack["message"]["seq"]

    trace = await trace_of(api, admin, conversation["id"], seq)
    assert trace["complete"] is True and trace["stored_by"], trace
    bob_facts = member(trace, bob)
    assert bob_facts["sockets_at_send"] == [] and bob_facts["sockets_now"] == []
    assert bob_facts["verdict"].startswith(f"{bob.username} had no connected device at "), bob_facts
    assert "not fetched yet (delivered pointer at 0)" in bob_facts["verdict"]
    assert member(trace, alice)["verdict"].startswith(f"{alice.username} sent it at ")
    # The sender's own socket gets the ack, not the emit: it is listed, not reached.
    assert [s["reached"] for s in member(trace, alice)["sockets_at_send"]] == [False]

    phone = await sockets.connect(bob.token, headers=PHONE)
    synced = await acked(phone, "sync", {"cursors": {str(conversation["id"]): 0}})
    assert [m["seq"] for m in synced["messages"]] == [seq]
    await acked(phone, "delivered", {"conversation_id": conversation["id"], "seq": seq})

    later = member(await trace_of(api, admin, conversation["id"], seq), bob)
    assert later["verdict"].startswith(f"{bob.username} had no connected device at "), later
    assert f"{bob.username}'s phone synced it at " in later["verdict"], later
    assert later["delivered_seq"] == seq
    assert [(s["device"], s["transport"]) for s in later["sockets_now"]] == [("phone", "websocket")]
    assert later["fetched"][0]["how"] == "sync"

    # The same answer from the command line, through the running server.
    result = await app_cli(["trace", str(conversation["id"]), str(seq), "--url", server.url], db_url,
                           tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert f"- {bob.username}: {bob.username} had no connected device at " in result.stdout
    assert "phone synced it at" in result.stdout


async def test_member_online_on_two_devices(api: Api, sockets: SocketFactory, db_url: str, tmp_path: Path) -> None:
    admin = await make_admin(api, db_url, tmp_path / "data")
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    phone = await sockets.connect(bob.token, headers=PHONE)
    laptop = await sockets.connect(bob.token, headers=LAPTOP)
    status, sent = await api.send(alice, conversation["id"], "both of them")
    assert status == 201
    for device in (phone, laptop):
        await device.wait_for("new_message")

    facts = member(await trace_of(api, admin, conversation["id"], sent["message"]["seq"]), bob)
    assert sorted((s["device"], s["reached"]) for s in facts["sockets_at_send"]) == [("browser", True),
                                                                                     ("phone", True)]
    assert f"{bob.username}'s 2 devices (" in facts["verdict"] and ") got it live at " in facts["verdict"], facts
    assert "no connected device" not in facts["verdict"]

    # A device that closed since: still "at send time", no longer "now".
    await laptop.disconnect()
    again = member(await trace_of(api, admin, conversation["id"], sent["message"]["seq"]), bob)
    assert len(again["sockets_at_send"]) == 2
    assert [s["device"] for s in again["sockets_now"]] == ["phone"]


async def test_trace_needs_an_admin_and_an_existing_entry(api: Api, db_url: str, tmp_path: Path) -> None:
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    await api.send(alice, conversation["id"], "hi")
    status, body = await api.request("GET", f"/api/admin/messages/{conversation['id']}/1/trace", token=alice.token)
    assert status == 403 and body["error"]["code"] == "forbidden"
    admin = await make_admin(api, db_url, tmp_path / "data")
    status, body = await api.request("GET", f"/api/admin/messages/{conversation['id']}/99/trace", token=admin.token)
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await api.request("GET", f"/api/admin/messages/{conversation['id']}/x/trace", token=admin.token)
    assert status == 400 and body["error"]["code"] == "invalid"




async def test_member_on_another_process(cluster: list[Node], postgres_url: str, tmp_path: Path) -> None:
    one, two = cluster
    redis = {"redis_url": one.process.env["AURORA_REDIS_URL"], "redis_prefix": one.process.env["AURORA_REDIS_PREFIX"]}
    admin = await make_admin(one.api, postgres_url, tmp_path / "data", **redis)
    alice, bob, carol = await one.api.register(), await one.api.register(), await one.api.register()
    conversation = await one.api.conversation(alice, [bob, carol])
    bob_phone = await two.sockets.connect(bob.token, headers=PHONE)
    a = await one.sockets.connect(alice.token, headers=LAPTOP)
    ack = await acked(a, "send_message", {"conversation_id": conversation["id"], "body": "across processes"})
    await bob_phone.wait_for("new_message")

    trace = await trace_of(one.api, admin, conversation["id"], ack["message"]["seq"])
    assert len(trace["processes"]) == 2 and trace["missing_processes"] == 0, trace
    stored_by = {s["process"] for s in trace["stored_by"]}
    bob_facts = member(trace, bob)
    [socket] = bob_facts["sockets_at_send"]
    assert socket["reached"] is True and socket["device"] == "phone"
    assert socket["process"] not in stored_by, (socket, stored_by)  # reached on the other process
    assert bob_facts["verdict"].startswith(f"{bob.username}'s phone got it live at "), bob_facts
    assert member(trace, carol)["verdict"].startswith(f"{carol.username} had no connected device at ")
    # Asked through the other process: the same facts.
    other = member(await trace_of(two.api, admin, conversation["id"], ack["message"]["seq"]), bob)
    assert other["sockets_at_send"][0]["sid"] == socket["sid"] and other["verdict"] == bob_facts["verdict"]
