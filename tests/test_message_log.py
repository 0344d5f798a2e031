"""Edit, delete, react, reply on one ordered log: events, REST twins, acks, errors, idempotency, and
state + events = re-fetched state (Zulip's verify_action shape) after every action."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from urllib.parse import quote

import pytest

from aurora.context import AURORA
from aurora.services.call_summary import summary_message
from tests.support.clients import Account, Api, SocketFactory, TestSocket, acked, refused
from tests.support.foundation import raw_query
from tests.support.log_store import LogStore

EDIT_WINDOW_S = 60


async def history(api: Api, account: Account, cid: int) -> list[dict[str, Any]]:
    status, body = await api.request("GET", f"/api/conversations/{cid}/messages?limit=200", token=account.token)
    assert status == 200, body
    return body["messages"]


async def pair(api: Api, sockets: SocketFactory) -> tuple[Account, Account, int, TestSocket, TestSocket]:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    return alice, bob, cid, await sockets.connect(alice.token), await sockets.connect(bob.token)


class Watcher:
    """A device that applies every live event to a LogStore, checked against REST after each action."""

    def __init__(self, api: Api, account: Account, sock: TestSocket, cid: int) -> None:
        self.api, self.account, self.sock, self.cid = api, account, sock, cid
        self.store = LogStore(account.id)
        self.seen = 0

    def _entries(self) -> list[dict[str, Any]]:
        out = []
        for event, data in self.sock.received:
            if event == "new_message" and data["conversation_id"] == self.cid:
                out.append(data)
            elif event == "message_changed" and data["conversation_id"] == self.cid:
                out.append(data["entry"])
        return out

    async def settle(self, last_seq: int) -> None:
        """Wait (bounded) for the live events up to last_seq, apply them in arrival order, compare."""
        async def arrived() -> None:
            async with self.sock._changed:
                while not any(e["seq"] == last_seq for e in self._entries()):
                    await self.sock._changed.wait()
        await asyncio.wait_for(arrived(), 5)
        entries = self._entries()
        assert [e["seq"] for e in entries] == list(range(1, last_seq + 1))  # gapless, in seq order
        for entry in entries[self.seen:]:
            assert self.store.apply(entry) in ("applied", "skipped"), entry
        self.seen = len(entries)
        assert self.store.view(self.cid) == await history(self.api, self.account, self.cid)


async def test_edit_delete_react_reply_live_state_equals_history(api: Api, sockets: SocketFactory) -> None:
    alice, bob, cid, alice_sock, bob_sock = await pair(api, sockets)
    watcher = Watcher(api, bob, await sockets.connect(bob.token), cid)  # bob's other device, only listening

    first = (await acked(alice_sock, "send_message", {"conversation_id": cid, "body": "hello wrold"}))["message"]
    assert first["edited_at"] is None and first["deleted"] is False and first["reactions"] == []
    assert first["reply_to"] is None and first["state_seq"] == first["seq"] == 1
    await watcher.settle(1)

    ack = await acked(alice_sock, "edit_message", {"conversation_id": cid, "seq": 1, "body": "hello world"})
    assert set(ack) == {"ok", "entry", "message", "duplicate"} and ack["duplicate"] is False
    entry = ack["entry"]
    assert entry["kind"] == "edit" and entry["seq"] == 2 and entry["target_seq"] == 1
    assert entry["body"] == "hello world" and entry["sender_id"] == alice.id
    assert ack["message"]["body"] == "hello world" and ack["message"]["edited_at"] == entry["created_at"]
    assert ack["message"]["state_seq"] == 2
    changed = await bob_sock.wait_for("message_changed")
    assert changed == {"conversation_id": cid, "entry": entry, "message": ack["message"]}
    assert not alice_sock.events("message_changed")  # the changing socket has the ack
    await watcher.settle(2)

    reply = (await acked(bob_sock, "send_message",
                         {"conversation_id": cid, "body": "hi!", "reply_to_seq": 1}))["message"]
    assert reply["reply_to"] == {"seq": 1, "sender_id": alice.id, "sender_username": alice.username,
                                 "excerpt": "hello world"}
    await watcher.settle(3)

    ack = await acked(bob_sock, "react", {"conversation_id": cid, "seq": 1, "emoji": "👍"})
    assert ack["entry"]["kind"] == "reaction" and ack["entry"]["emoji"] == "👍" and ack["entry"]["added"] is True
    assert ack["message"]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [bob.id], "me": True}]
    changed = await alice_sock.wait_for("message_changed")
    assert changed["message"]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [bob.id]}]  # no `me`
    await watcher.settle(4)
    ack = await acked(alice_sock, "react", {"conversation_id": cid, "seq": 1, "emoji": ":tada:"})
    assert ack["message"]["reactions"] == [
        {"emoji": "👍", "count": 1, "user_ids": [bob.id], "me": False},
        {"emoji": ":tada:", "count": 1, "user_ids": [alice.id], "me": True}]
    await acked(alice_sock, "react", {"conversation_id": cid, "seq": 1, "emoji": "👍"})
    await acked(bob_sock, "unreact", {"conversation_id": cid, "seq": 1, "emoji": "👍"})
    await watcher.settle(7)
    assert (await history(api, alice, cid))[0]["reactions"] == [
        {"emoji": "👍", "count": 1, "user_ids": [alice.id], "me": True},
        {"emoji": ":tada:", "count": 1, "user_ids": [alice.id], "me": True}]

    # A long target: the excerpt is its first 100 code points, and follows edits.
    long_body = "é" * 150
    await acked(alice_sock, "edit_message", {"conversation_id": cid, "seq": 1, "body": long_body})
    await watcher.settle(8)
    assert (await history(api, bob, cid))[1]["reply_to"]["excerpt"] == "é" * 100

    ack = await acked(alice_sock, "delete_message", {"conversation_id": cid, "seq": 1})
    assert ack["entry"]["kind"] == "delete" and ack["entry"]["seq"] == 9 and "body" not in ack["entry"]
    state = ack["message"]
    assert state["deleted"] is True and state["body"] is None and state["reactions"] == []
    assert state["edited_at"] is None and state["reply_to"] is None
    await watcher.settle(9)
    shown = await history(api, bob, cid)
    assert [m["seq"] for m in shown] == [1, 3]  # messages only; the deleted one keeps its place
    assert shown[1]["reply_to"]["excerpt"] is None  # replying to a deleted message shows no text


async def test_rest_twins_broadcast_and_answer_like_the_events(api: Api, sockets: SocketFactory) -> None:
    alice, bob, cid, alice_sock, bob_sock = await pair(api, sockets)
    status, _sent = await api.request("POST", f"/api/conversations/{cid}/messages", token=alice.token,
                                     json={"body": "original", "client_id": "m-1"})
    assert status == 201
    status, sent_reply = await api.request("POST", f"/api/conversations/{cid}/messages", token=bob.token,
                                           json={"body": "re", "reply_to_seq": 1})
    assert status == 201 and sent_reply["message"]["reply_to"]["excerpt"] == "original"
    base = f"/api/conversations/{cid}/messages/1"

    status, ack = await api.request("PATCH", base, token=alice.token, json={"body": "edited", "client_id": "e-1"})
    assert status == 200 and ack["entry"]["kind"] == "edit" and ack["message"]["body"] == "edited", ack
    # Over REST every socket of the room hears it, the sender's too.
    for sock in (alice_sock, bob_sock):
        assert (await sock.wait_for("message_changed"))["entry"] == ack["entry"]

    status, again = await api.request("PATCH", base, token=alice.token, json={"body": "edited", "client_id": "e-1"})
    assert status == 200 and again["duplicate"] is True and again["entry"] == ack["entry"]

    thumbs = quote("👍", safe="")
    status, react = await api.request("PUT", f"{base}/reactions/{thumbs}", token=bob.token)
    assert status == 200 and react["message"]["reactions"][0]["user_ids"] == [bob.id], react
    status, repeat = await api.request("PUT", f"{base}/reactions/{thumbs}", token=bob.token)
    assert status == 200 and repeat["duplicate"] is True and repeat["entry"] == react["entry"]
    status, unreact = await api.request("DELETE", f"{base}/reactions/{thumbs}", token=bob.token)
    assert status == 200 and unreact["entry"]["added"] is False and unreact["message"]["reactions"] == []
    status, never = await api.request("DELETE", f"{base}/reactions/{quote('❤️', safe='')}", token=bob.token)
    assert status == 200 and never["duplicate"] is True and never["entry"] is None

    status, deleted = await api.request("DELETE", base, token=alice.token)
    assert status == 200 and deleted["message"]["deleted"] is True
    status, twice = await api.request("DELETE", base, token=alice.token)
    assert status == 200 and twice["duplicate"] is True and twice["entry"] == deleted["entry"]
    # Retried edit after the delete: still the original entry, whose text is now erased.
    status, late = await api.request("PATCH", base, token=alice.token, json={"body": "edited", "client_id": "e-1"})
    assert status == 200 and late["duplicate"] is True and late["entry"]["body"] is None
    assert late["message"]["deleted"] is True
    # Nothing the repeats did was logged: 2 messages + edit + react + unreact + delete.
    status, listing = await api.request("GET", "/api/conversations", token=alice.token)
    assert listing["conversations"][0]["last_seq"] == 6


async def test_errors_change_nothing(server: Any, api: Api, sockets: SocketFactory) -> None:
    alice, bob, cid, alice_sock, bob_sock = await pair(api, sockets)
    carol = await api.register()
    carol_sock = await sockets.connect(carol.token)
    await acked(alice_sock, "send_message", {"conversation_id": cid, "body": "mine"})
    await acked(alice_sock, "edit_message", {"conversation_id": cid, "seq": 1, "body": "mine!"})
    edit = {"conversation_id": cid, "seq": 1, "body": "x"}

    await refused(carol_sock, "edit_message", edit, "not_found")  # not a member
    await refused(carol_sock, "react", {"conversation_id": cid, "seq": 1, "emoji": "👍"}, "not_found")
    await refused(alice_sock, "edit_message", {**edit, "seq": 99}, "not_found")  # no such message
    await refused(alice_sock, "edit_message", {**edit, "seq": 2}, "not_found")  # seq 2 is the edit entry
    await refused(alice_sock, "send_message", {"conversation_id": cid, "body": "r", "reply_to_seq": 2}, "not_found")
    await refused(bob_sock, "edit_message", edit, "forbidden")
    await refused(bob_sock, "delete_message", {"conversation_id": cid, "seq": 1}, "forbidden")
    await refused(alice_sock, "edit_message", {**edit, "body": "  "}, "invalid")
    await refused(alice_sock, "edit_message", {**edit, "body": "x" * 4001}, "too_large")
    await refused(alice_sock, "edit_message", {**edit, "seq": 0}, "invalid")
    await refused(alice_sock, "edit_message", {**edit, "client_id": "call:1"}, "invalid")
    for bad in ("", "a", "👍👍", ":no spaces:", ":" + "a" * 31 + ":", "<b>", 5, None, "x" * 40):
        await refused(bob_sock, "react", {"conversation_id": cid, "seq": 1, "emoji": bad}, "invalid")
    status, body = await api.request("PUT", f"/api/conversations/{cid}/messages/1/reactions/abc", token=bob.token)
    assert status == 400 and body["error"]["code"] == "invalid"
    status, body = await api.request("PATCH", f"/api/conversations/{cid}/messages/1", token=bob.token,
                                     json={"body": "x"})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await api.request("DELETE", f"/api/conversations/{cid}/messages/abc", token=alice.token)
    assert status == 400

    # Call summaries: no edit or delete, even by their sender; reactions and replies are fine.
    aurora = server.app[AURORA]
    call = {"id": 1, "conversation_id": cid, "caller_id": alice.id, "media": "audio", "end_reason": "missed",
            "answered_at": None, "ended_at": None}
    summary = await aurora.messages.store_system_message(summary_message(call))
    await refused(alice_sock, "edit_message", {**edit, "seq": summary["seq"]}, "forbidden")
    await refused(alice_sock, "delete_message", {"conversation_id": cid, "seq": summary["seq"]}, "forbidden")
    await acked(bob_sock, "react", {"conversation_id": cid, "seq": summary["seq"], "emoji": "😢"})

    # 50 distinct emoji per message, then conflict (an emoji already there is still fine).
    names = [f":e{i}:" for i in range(50)]
    for name in names:
        await acked(bob_sock, "react", {"conversation_id": cid, "seq": 1, "emoji": name})
    await refused(alice_sock, "react", {"conversation_id": cid, "seq": 1, "emoji": ":e50:"}, "conflict")
    await acked(alice_sock, "react", {"conversation_id": cid, "seq": 1, "emoji": ":e0:"})

    await acked(alice_sock, "delete_message", {"conversation_id": cid, "seq": 1})
    await refused(alice_sock, "edit_message", edit, "conflict")
    await refused(bob_sock, "react", {"conversation_id": cid, "seq": 1, "emoji": "👍"}, "conflict")
    await refused(bob_sock, "unreact", {"conversation_id": cid, "seq": 1, "emoji": ":e0:"}, "conflict")
    before = await history(api, alice, cid)
    status, listing = await api.request("GET", "/api/conversations", token=alice.token)
    last_seq = listing["conversations"][0]["last_seq"]
    # The refusals above added nothing: 1 message + 1 edit + summary + 1 reaction + 51 reactions + delete.
    assert last_seq == 1 + 1 + 1 + 1 + 51 + 1
    await refused(bob_sock, "delete_message", {"conversation_id": cid, "seq": 1}, "forbidden")
    assert await history(api, alice, cid) == before


@pytest.mark.settings(edit_window_s=EDIT_WINDOW_S)
async def test_edit_window(api: Api, sockets: SocketFactory, db_url: str) -> None:
    """Sent a moment ago, a message is well inside a minute's window; with its stored time moved back past
    the window (what the passing of a minute does), the same edit is a conflict. No real minute races it."""
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    sock = await sockets.connect(alice.token)
    sent = (await acked(sock, "send_message", {"conversation_id": cid, "body": "quick"}))["message"]
    edited = await acked(sock, "edit_message", {"conversation_id": cid, "seq": 1, "body": "quick!"})
    assert edited["message"]["body"] == "quick!"
    created = dt.datetime.fromisoformat(sent["created_at"].replace("Z", "+00:00")).replace(tzinfo=None)
    aged = created - dt.timedelta(seconds=EDIT_WINDOW_S + 1)
    raw_query(db_url, "UPDATE message SET created_at = ? WHERE conversation_id = ? AND seq = 1",
              (aged.strftime("%Y-%m-%d %H:%M:%S.%f"), cid))
    late = await refused(sock, "edit_message", {"conversation_id": cid, "seq": 1, "body": "late"}, "conflict")
    assert f"within {EDIT_WINDOW_S} s" in late["message"], late
    assert [m["body"] for m in await history(api, bob, cid)] == ["quick!"]  # the refused edit changed nothing
    # Deleting has no window.
    await acked(sock, "delete_message", {"conversation_id": cid, "seq": 1})


async def test_unread_count_and_last_message_follow_the_log(api: Api, sockets: SocketFactory) -> None:
    alice, bob, cid, alice_sock, bob_sock = await pair(api, sockets)
    for body in ("one", "two"):
        await acked(alice_sock, "send_message", {"conversation_id": cid, "body": body})
    await acked(bob_sock, "send_message", {"conversation_id": cid, "body": "three"})
    await acked(alice_sock, "react", {"conversation_id": cid, "seq": 3, "emoji": "👍"})
    await acked(bob_sock, "edit_message", {"conversation_id": cid, "seq": 3, "body": "three!"})

    async def mine(account: Account) -> dict[str, Any]:
        status, listing = await api.request("GET", "/api/conversations", token=account.token)
        assert status == 200
        return listing["conversations"][0]

    bob_view, alice_view = await mine(bob), await mine(alice)
    # Bob: his own message moved his pointers to 3; the change entries after it are not messages.
    assert bob_view["unread_count"] == 0 and bob_view["read_seq"] == 3
    # Alice read up to 2 (her own send); after it: bob's message (unread) and two change entries (not).
    assert alice_view["unread_count"] == 1
    assert alice_view["last_message"]["seq"] == 3 and alice_view["last_message"]["body"] == "three!"
    assert alice_view["last_message"]["reactions"][0]["me"] is True
    await acked(bob_sock, "delete_message", {"conversation_id": cid, "seq": 3})
    last = (await mine(alice))["last_message"]
    assert last["seq"] == 3 and last["deleted"] is True and last["body"] is None


async def test_offline_device_catches_up_by_sync(api: Api, sockets: SocketFactory) -> None:
    """A device that saw seq 2 and then nothing: sync pages (small limit) + the log rules = history."""
    _alice, bob, cid, alice_sock, bob_sock = await pair(api, sockets)
    offline = LogStore(bob.id)
    for i in range(2):
        await acked(alice_sock, "send_message", {"conversation_id": cid, "body": f"m{i}"})
    res = await acked(bob_sock, "sync", {"cursors": {str(cid): 0}})
    for entry in res["messages"]:
        assert offline.apply(entry) == "applied"
    fresh = LogStore(bob.id)  # a brand-new device, from 0

    await acked(alice_sock, "edit_message", {"conversation_id": cid, "seq": 1, "body": "m0 edited"})
    await acked(bob_sock, "react", {"conversation_id": cid, "seq": 2, "emoji": "👍"})
    await acked(alice_sock, "send_message", {"conversation_id": cid, "body": "m2", "reply_to_seq": 1})
    await acked(alice_sock, "react", {"conversation_id": cid, "seq": 5, "emoji": "👍"})
    await acked(bob_sock, "react", {"conversation_id": cid, "seq": 5, "emoji": "👍"})
    await acked(alice_sock, "unreact", {"conversation_id": cid, "seq": 5, "emoji": "👍"})
    await acked(alice_sock, "react", {"conversation_id": cid, "seq": 5, "emoji": "❤️"})
    await acked(alice_sock, "react", {"conversation_id": cid, "seq": 5, "emoji": "👍"})
    await acked(alice_sock, "edit_message", {"conversation_id": cid, "seq": 5, "body": "m2 edited"})
    await acked(alice_sock, "delete_message", {"conversation_id": cid, "seq": 1})
    for store in (offline, fresh):
        while True:
            res = await acked(bob_sock, "sync", {"cursors": {str(cid): store.cursors.get(cid, 0)}, "limit": 3})
            kinds = {e["kind"] for e in res["messages"]}
            assert kinds <= {"text", "edit", "delete", "reaction"}
            for entry in res["messages"]:
                assert store.apply(entry) in ("applied", "skipped"), entry
            if not res["has_more"]:
                break
        assert store.cursors[cid] == 12
        assert store.view(cid) == await history(api, bob, cid)
