"""Change entries under concurrency and crashes: one gapless order, delete beats edit, reactions
exact, every acked change survives SIGKILL, two processes changing one message stay consistent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import TEST_SECRET
from tests.support.clients import Account, Api, SocketFactory, TestSocket
from tests.support.foundation import AppProcess, free_port, raw_query
from tests.support.log_store import LogStore


async def _history(api: Api, account: Account, cid: int) -> list[dict[str, Any]]:
    status, body = await api.request("GET", f"/api/conversations/{cid}/messages?limit=200", token=account.token)
    assert status == 200, body
    return body["messages"]


async def test_devices_and_users_racing_on_one_message_keep_one_order(api: Api, sockets: SocketFactory,
                                                                      db_url: str) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob, carol], title="race"))["id"]
    listener = await sockets.connect(carol.token)  # never acts: hears every entry
    alice_phone, alice_laptop = await sockets.connect(alice.token), await sockets.connect(alice.token)
    bob_sock, carol_sock = await sockets.connect(bob.token), await sockets.connect(carol.token)
    await alice_phone.call("send_message", {"conversation_id": cid, "body": "target"})

    emojis = ["👍", "❤️", "🎉", ":ok:"]

    async def churn(sock: TestSocket, name: str) -> list[dict[str, Any]]:
        acks = []
        for i in range(12):
            emoji = emojis[i % len(emojis)]
            acks.append(await sock.call("react" if i % 3 else "unreact", {"conversation_id": cid, "seq": 1,
                                                                          "emoji": emoji}))
            acks.append(await sock.call("send_message", {"conversation_id": cid, "body": f"{name} {i}"}))
        return acks

    async def edits(sock: TestSocket, name: str) -> list[dict[str, Any]]:
        return [await sock.call("edit_message", {"conversation_id": cid, "seq": 1, "body": f"{name} edit {i}"})
                for i in range(10)]

    async def delete_midway() -> dict[str, Any]:
        await asyncio.sleep(0)
        for _ in range(3):
            await alice_laptop.call("send_message", {"conversation_id": cid, "body": "laptop"})
        return await alice_laptop.call("delete_message", {"conversation_id": cid, "seq": 1})

    results = await asyncio.gather(churn(bob_sock, "bob"), churn(carol_sock, "carol"),
                                   edits(alice_phone, "phone"), delete_midway())
    deleted = results[3]
    assert deleted["ok"] is True
    # Delete vs edit: every edit either landed before the delete or got conflict; none after it.
    delete_seq = deleted["entry"]["seq"]
    for ack in results[2]:
        assert (ack["ok"] is True and ack["entry"]["seq"] < delete_seq) or ack["error"]["code"] == "conflict", ack
    for ack in results[0] + results[1]:
        assert ack["ok"] is True or ack["error"]["code"] == "conflict", ack
        if ack["ok"] and "entry" in ack and ack["entry"] is not None and not ack["duplicate"]:
            assert ack["entry"]["seq"] < delete_seq  # no reaction lands after the delete

    rows = raw_query(db_url, "SELECT seq FROM message WHERE conversation_id = ? ORDER BY seq", (cid,))
    last_seq = len(rows)
    assert [r[0] for r in rows] == list(range(1, last_seq + 1))  # gapless
    # The listener heard every entry once, in seq order, and the log rebuilds history exactly.
    async def heard_all() -> list[dict[str, Any]]:
        while True:
            entries = [d if e == "new_message" else d["entry"] for e, d in listener.received
                       if e in ("new_message", "message_changed")]
            if len(entries) >= last_seq:
                return entries
            async with listener._changed:
                await listener._changed.wait()
    entries = await asyncio.wait_for(heard_all(), 10)
    assert [e["seq"] for e in entries] == list(range(1, last_seq + 1))
    store = LogStore(carol.id)
    for entry in entries:
        assert store.apply(entry) in ("applied", "skipped")
    shown = await _history(api, carol, cid)
    assert store.view(cid) == shown
    assert shown[0]["deleted"] is True and shown[0]["reactions"] == []
    # Nothing of the message or its edits is left in storage.
    assert raw_query(db_url, "SELECT body FROM message WHERE conversation_id = ? AND (seq = 1 OR "
                             "(target_seq = 1 AND kind = 'edit')) AND body != ''", (cid,)) == []


def _env(db_url: str) -> dict[str, str]:
    return {"DATABASE_URL": db_url, "AURORA_SECRET_KEY": TEST_SECRET, "AURORA_HOST": "127.0.0.1",
            "AURORA_ARGON2_TIME_COST": "1", "AURORA_ARGON2_MEMORY_KIB": "256", "AURORA_LOG_LEVEL": "INFO"}


async def _start(tmp_path: Path, db_url: str) -> AppProcess:
    port = free_port()
    process = await AppProcess.start(cwd=tmp_path, env={**_env(db_url), "PORT": str(port)}, port=port)
    await process.wait_ready()
    return process


async def test_acked_changes_survive_sigkill(tmp_path: Path, db_url: str) -> None:
    server = await _start(tmp_path, db_url)
    try:
        api = Api(server.url)
        try:
            alice, bob = await api.register(), await api.register()
            cid = (await api.conversation(alice, [bob]))["id"]
            for i in range(3):
                status, _ = await api.send(alice, cid, f"m{i}")
                assert status == 201
            base = f"/api/conversations/{cid}/messages"
            acked = [await api.request("PATCH", f"{base}/1", token=alice.token, json={"body": "m0 edited"}),
                     await api.request("PUT", f"{base}/2/reactions/%F0%9F%91%8D", token=bob.token),
                     await api.request("DELETE", f"{base}/3", token=alice.token)]
            assert [status for status, _ in acked] == [200, 200, 200], acked
            before = await _history(api, bob, cid)
        finally:
            await api.close()
        server.proc.kill()  # SIGKILL right after the acks: no shutdown, no flush
        assert await server.proc.wait() == -9
        await server.stop()
    finally:
        await server.stop()
    server = await _start(tmp_path, db_url)
    try:
        api = Api(server.url)
        try:
            status, login = await api.request("POST", "/api/auth/login",
                                              json={"username": bob.username, "password": bob.password})
            assert status == 200
            bob = Account(bob.id, bob.username, login["token"], bob.user)
            after = await _history(api, bob, cid)
            assert after == before
            assert after[0]["body"] == "m0 edited" and after[1]["reactions"][0]["user_ids"] == [bob.id]
            assert after[2]["deleted"] is True
        finally:
            await api.close()
    finally:
        await server.stop()


async def test_two_processes_changing_one_message_stay_consistent(tmp_path: Path, postgres_url: str) -> None:
    """Reactions read-modify-write the message's state: the conversation row lock orders them across processes."""
    servers = [await _start(tmp_path, postgres_url), await _start(tmp_path, postgres_url)]
    try:
        api = Api(servers[0].url)
        try:
            users = [await api.register() for _ in range(6)]
            cid = (await api.conversation(users[0], users[1:], title="two processes"))["id"]
            status, _ = await api.send(users[0], cid, "target")
            assert status == 201
        finally:
            await api.close()
        emojis = ["%F0%9F%91%8D", "%F0%9F%8E%89", ":a:", ":b:"]

        async def react_many(session: aiohttp.ClientSession, url: str, account: Account) -> None:
            for i in range(8):
                method = "PUT" if i % 4 != 3 else "DELETE"
                async with session.request(method, f"{url}/api/conversations/{cid}/messages/1/reactions/"
                                           f"{emojis[i % len(emojis)]}",
                                           headers={"Authorization": f"Bearer {account.token}"}) as response:
                    assert response.status == 200, await response.text()
                async with session.post(f"{url}/api/conversations/{cid}/messages", json={"body": f"{i}"},
                                        headers={"Authorization": f"Bearer {account.token}"}) as response:
                    assert response.status == 201

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(react_many(session, servers[i % 2].url, u) for i, u in enumerate(users)))
        rows = raw_query(postgres_url, "SELECT seq, kind, sender_id, emoji, added FROM message "
                                       "WHERE conversation_id = ? ORDER BY seq", (cid,))
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        # Replaying the stored reaction entries gives exactly the stored aggregate: no lost update.
        expected: list[list[Any]] = []
        for _, kind, sender, emoji, added in rows:
            if kind != "reaction":
                continue
            item = next((r for r in expected if r[0] == emoji), None)
            if added:
                if item is None:
                    expected.append([emoji, [sender]])
                else:
                    assert sender not in item[1]  # never a duplicate entry
                    item[1].append(sender)
            else:
                assert item is not None and sender in item[1]  # never an unreact entry without a reaction
                item[1].remove(sender)
                if not item[1]:
                    expected.remove(item)
        api = Api(servers[1].url)
        try:
            shown = (await _history(api, users[0], cid))[0]["reactions"]
        finally:
            await api.close()
        assert [[r["emoji"], r["user_ids"]] for r in shown] == expected
    finally:
        for server in servers:
            await server.stop()
