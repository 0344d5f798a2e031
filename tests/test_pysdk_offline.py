"""The Python SDK across restarts: a client offline through sends, edits, deletes and reactions ends
with exactly the REST state; the outbox of the file store survives a client restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aurora_client import AuroraClient, AuroraError, SQLiteStore

from tests.support.clients import Api
from tests.support.sdk import Recorder, SdkFactory, eventually, has_event, rest_history, state_of


async def test_outbox_survives_a_client_restart_with_the_file_store(api: Api, sdk: SdkFactory, server,
                                                                    tmp_path: Path) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    path = tmp_path / "alice.db"
    first = AuroraClient(server.url, alice.token, store=SQLiteStore(path))
    await first.open()  # no connection: the sends wait in the outbox
    sends = [asyncio.ensure_future(first.send(cid, f"typed {i}")) for i in range(5)]
    await eventually(lambda: len(first.pending()) == 5, what="five sends queued")
    pending = first.pending()
    assert [p["body"] for p in pending] == [f"typed {i}" for i in range(5)]
    assert len({p["client_id"] for p in pending}) == 5
    # The first one reached the server before the restart, but its answer was lost.
    status, _ = await api.send(alice, cid, "typed 0", client_id=pending[0]["client_id"])
    assert status == 201
    await first.close()
    for send in sends:
        with pytest.raises(AuroraError) as closed:
            await send
        assert closed.value.code == "closed"

    b = await sdk.connected(bob)
    second = sdk.client(alice, store=SQLiteStore(path))
    await second.open()
    assert second.pending() == pending  # the same client ids, in typed order
    recorder = Recorder(second)
    await asyncio.wait_for(second.connect(), 30)
    await eventually(lambda: second.pending() == [], what="the outbox drained")
    history = await rest_history(api, alice, cid)
    assert [m["body"] for m in history] == [f"typed {i}" for i in range(5)]  # once each, in typed order
    assert [m["client_id"] for m in history] == [p["client_id"] for p in pending]
    assert state_of(second.messages(cid)) == state_of(history)
    await eventually(lambda: state_of(b.messages(cid)) == state_of(history), what="bob has them all")
    await eventually(lambda: len(recorder.new_message_ids(cid)) == 5)
    assert sorted(recorder.new_message_ids(cid)) == sorted(m["id"] for m in history)


class GatedCatchUp(AuroraClient):
    """A real client whose catch-up rounds wait for the test: its acks arrive ahead of the sync."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()

    async def _sync_round(self, full: bool, conversations: set[int]) -> None:
        await self.gate.wait()
        await super()._sync_round(full, conversations)


async def test_a_send_acked_ahead_of_the_catch_up_stays_pending_until_it_is_stored(
        api: Api, server) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    assert (await api.send(bob, cid, "before"))[0] == 201  # seq 1: not yet in alice's store
    client = GatedCatchUp(server.url, alice.token)
    try:
        connecting = asyncio.ensure_future(client.connect())
        sending = asyncio.ensure_future(client.send(cid, "mine"))
        await eventually(lambda: client.connected, what="alice's socket connected")
        history: list = []

        async def acked() -> bool:
            history[:] = await rest_history(api, alice, cid)
            return len(history) == 2
        for _ in range(200):
            if await acked():
                break
            await asyncio.sleep(0.05)
        assert [m["body"] for m in history] == ["before", "mine"]  # the server stored and acked it
        await asyncio.sleep(0.2)  # the ack has been answered: the client holds it, not yet stored
        assert [p["body"] for p in client.pending()] == ["mine"]
        assert client.messages(cid) == [] and not sending.done()
        client.gate.set()
        mine = await asyncio.wait_for(sending, 30)
        await asyncio.wait_for(connecting, 30)
        assert mine["seq"] == 2 and client.pending() == []
        assert [m["body"] for m in client.messages(cid)] == ["before", "mine"]
    finally:
        await client.close()


async def test_offline_client_ends_with_exactly_the_rest_state(api: Api, sdk: SdkFactory, server,
                                                               tmp_path: Path) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = (await api.conversation(alice, [bob, carol], title="log"))["id"]
    a = await sdk.connected(alice)
    if not await has_event(a, "edit_message"):
        pytest.skip("the server has no edit_message yet (issue 9, branch msg, not merged into main)")
    c = await sdk.connected(carol)
    path = tmp_path / "bob.db"
    bob_online = await sdk.connected(bob, store=SQLiteStore(path))
    m = [await a.send(group, f"m{i}") for i in range(1, 5)]
    await eventually(lambda: len(bob_online.messages(group)) == 4, what="bob has m1..m4")
    await bob_online.react(group, m[0]["seq"], "👍")
    await bob_online.close()

    # Bob is offline through all of this.
    edited = await a.edit(group, m[0]["seq"], "m1, edited")
    assert edited["body"] == "m1, edited" and edited["edited_at"]
    assert (await a.delete(group, m[1]["seq"]))["deleted"] is True
    await c.react(group, m[2]["seq"], "❤️")
    await a.react(group, m[2]["seq"], "❤️")
    await c.unreact(group, m[2]["seq"], "❤️")
    await c.react(group, m[0]["seq"], "👍")
    await c.react(group, m[0]["seq"], ":party_parrot:")
    reply = await a.send(group, "answering m3", reply_to=m[2]["seq"])
    assert reply["reply_to"]["seq"] == m[2]["seq"]
    await a.edit(group, m[2]["seq"], "m3, edited")  # the reply's excerpt follows
    doomed_reply = await c.send(group, "answering m4", reply_to=m[3]["seq"])
    await a.delete(group, m[3]["seq"])  # that reply's excerpt becomes null
    later = await c.send(group, "carol later")
    await c.edit(group, later["seq"], "carol, later edited")
    direct = await a.create_conversation([bob.id])
    await a.send(direct["id"], "a new DM while bob is away")

    bob_back = sdk.client(bob, store=SQLiteStore(path), sync_limit=2)
    await bob_back.open()
    assert len(bob_back.messages(group)) == 4  # what the file store kept
    recorder = Recorder(bob_back)
    await asyncio.wait_for(bob_back.connect(), 30)
    group_history = await rest_history(api, bob, group)
    assert state_of(bob_back.messages(group)) == state_of(group_history)
    assert state_of(bob_back.messages(direct["id"])) == state_of(await rest_history(api, bob, direct["id"]))
    by_seq = {msg["seq"]: msg for msg in bob_back.messages(group)}
    assert by_seq[reply["seq"]]["reply_to"]["excerpt"] == "m3, edited"
    assert by_seq[doomed_reply["seq"]]["reply_to"]["excerpt"] is None
    assert [r["emoji"] for r in by_seq[m[0]["seq"]]["reactions"]] == ["👍", ":party_parrot:"]
    assert by_seq[m[0]["seq"]]["reactions"][0]["me"] is True
    # Only what happened while offline is announced, old messages are not announced again.
    await eventually(lambda: len(recorder.new_message_ids()) == 4, what="four new messages announced")
    assert set(recorder.new_message_ids()) == {reply["id"], doomed_reply["id"], later["id"],
                                               bob_back.messages(direct["id"])[0]["id"]}

    # Live changes keep the state equal too, each announced once with its kind.
    await a.react(group, later["seq"], "🎉")
    await c.delete(group, later["seq"])

    def later_changes() -> list[tuple[int, str | None]]:
        return [(e.data["seq"], e.change) for e in recorder.events if e.name == "message" and e.change != "new"
                and e.data["seq"] == later["seq"]]

    # Wait for the announcement, not the in-memory state: the SDK changes its state, writes the
    # store, and only then tells listeners, so the state is visible a store write earlier.
    await eventually(lambda: (later["seq"], "delete") in later_changes(), what="bob was told of the live delete")
    assert any(msg["seq"] == later["seq"] and msg["deleted"] for msg in bob_back.messages(group))
    assert state_of(bob_back.messages(group)) == state_of(await rest_history(api, bob, group))
    assert later_changes()[-2:] == [(later["seq"], "reaction"), (later["seq"], "delete")]



async def test_a_token_refused_on_reconnect_keeps_the_outbox_for_the_next_login(api: Api, sdk: SdkFactory,
                                                                                  tmp_path: Path) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    path = tmp_path / "alice.db"
    a = await sdk.connected(alice, store=SQLiteStore(path), reconnection_delay_s=0.1)
    status, _ = await api.request("POST", "/api/auth/logout", token=alice.token)  # closes alice's sockets
    assert status == 200
    await eventually(lambda: a.state == {"state": "offline", "reason": "auth_invalid"}, what="refused on reconnect")
    with pytest.raises(AuroraError) as refused:
        await a.send(cid, "typed after the logout")
    assert refused.value.code == "auth_invalid"
    assert [p["body"] for p in a.pending()] == ["typed after the logout"]  # kept, not dropped
    await a.close()

    status, body = await api.request("POST", "/api/auth/login", json={"username": alice.username,
                                                                      "password": alice.password})
    assert status == 200, body
    again = AuroraClient(a.url, body["token"], store=SQLiteStore(path))
    sdk.clients.append(again)
    await asyncio.wait_for(again.connect(), 30)
    await eventually(lambda: again.pending() == [], what="the kept send went out")
    assert [m["body"] for m in await rest_history(api, bob, cid)] == ["typed after the logout"]
