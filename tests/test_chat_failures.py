"""Every event answers; bad input gets an error code and stores nothing; a real database failure answers
`internal` and broadcasts nothing; oversized packets are refused by the transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aurora.context import AURORA
from aurora.storage.database import database_proxy
from tests.conftest import RunningServer, make_settings, start_server
from tests.support.clients import Account, Api, SocketFactory, TestSocket, round_trip


async def send(sock: TestSocket, conversation_id: int, body: str, client_id: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"conversation_id": conversation_id, "body": body}
    if client_id is not None:
        payload["client_id"] = client_id
    ack = await sock.call("send_message", payload)
    assert ack["ok"] is True, ack
    return ack["message"]


def error_code(ack: Any) -> str:
    assert isinstance(ack, dict) and ack.get("ok") is False, ack
    assert set(ack) == {"ok", "error"}, ack
    assert set(ack["error"]) == {"code", "message"}, ack
    assert isinstance(ack["error"]["message"], str) and ack["error"]["message"], ack
    return ack["error"]["code"]


async def stored(api: Api, account: Account, conversation_id: int) -> list[dict[str, Any]]:
    status, body = await api.request("GET", f"/api/conversations/{conversation_id}/messages?limit=200",
                                     token=account.token)
    assert status == 200, body
    return body["messages"]


async def dm(api: Api, sockets: SocketFactory) -> tuple[Account, Account, int, TestSocket, TestSocket]:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    return alice, bob, cid, await sockets.connect(alice.token), await sockets.connect(bob.token)


def watch_disconnect(sock: TestSocket) -> asyncio.Event:
    gone = asyncio.Event()
    sock.client.on("disconnect", lambda *_: gone.set(), namespace=sock.namespace)
    return gone


# -- every event acks -------------------------------------------------------------------------
async def test_unknown_events_answer_invalid(api: Api, sockets: SocketFactory) -> None:
    _alice, _bob, cid, alice_socket, bob_socket = await dm(api, sockets)
    for event in ("no_such_event", "send", "SEND_MESSAGE", "connect_error", "message", "__init__", "_is_member"):
        assert error_code(await alice_socket.call(event, {"conversation_id": cid})) == "invalid", event
    # Without an ack callback: nothing happens and the socket keeps working.
    await alice_socket.emit("no_such_event", {"x": 1})
    message = await send(alice_socket, cid, "still here")
    assert await bob_socket.wait_for("new_message") == message


async def test_a_client_cannot_fake_lifecycle_events(api: Api, sockets: SocketFactory) -> None:
    """Events named connect/disconnect sent by a connected client are unknown events, not lifecycle."""
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    bob_socket = await sockets.connect(bob.token)
    alice_socket = await sockets.connect(alice.token)
    await bob_socket.wait_for("presence")  # alice came online
    assert error_code(await alice_socket.call("disconnect", {})) == "invalid"
    assert error_code(await alice_socket.call("disconnect", "client namespace disconnect")) == "invalid"
    assert error_code(await alice_socket.call("connect", {"HTTP_AUTHORIZATION": f"Bearer {bob.token}"})) \
        == "invalid"
    # Still connected, still alice, still online, and counted once.
    status, health = await api.request("GET", "/health")
    assert health["connections"] == 2, health
    status, body = await api.request("GET", f"/api/users?q={alice.username}", token=bob.token)
    assert status == 200, body
    assert [u["online"] for u in body["users"] if u["id"] == alice.id] == [True]
    message = await send(alice_socket, cid, "really me")
    assert message["sender_id"] == alice.id
    assert await bob_socket.wait_for("new_message") == message
    # Control: the real disconnect is the first and only offline bob hears.
    await alice_socket.disconnect()
    await bob_socket.wait_for("presence", lambda p: p["online"] is False)
    assert [p["online"] for p in bob_socket.events("presence")] == [True, False]


async def test_non_string_event_name_is_answered(api: Api, sockets: SocketFactory) -> None:
    _alice, _bob, cid, alice_socket, bob_socket = await dm(api, sockets)
    assert error_code(await alice_socket.call(12345, {"conversation_id": cid})) == "invalid"
    message = await send(alice_socket, cid, "fine")
    assert await bob_socket.wait_for("new_message") == message


MALFORMED_SENDS: list[tuple[Any, str]] = [
    ("hello", "invalid"),
    (["conversation_id", 1], "invalid"),
    (None, "invalid"),
    (42, "invalid"),
    ({}, "invalid"),
    ({"body": "no conversation"}, "invalid"),
    ({"conversation_id": "CID"}, "invalid"),                       # no body
    ({"conversation_id": "CID", "body": None}, "invalid"),
    ({"conversation_id": "CID", "body": 12}, "invalid"),
    ({"conversation_id": "CID", "body": ["a"]}, "invalid"),
    ({"conversation_id": "CID", "body": {"text": "a"}}, "invalid"),
    ({"conversation_id": "CID", "body": ""}, "invalid"),
    ({"conversation_id": "CID", "body": "   \n\t "}, "invalid"),
    ({"conversation_id": "abc", "body": "x"}, "invalid"),
    ({"conversation_id": True, "body": "x"}, "invalid"),
    ({"conversation_id": 0, "body": "x"}, "invalid"),
    ({"conversation_id": -3, "body": "x"}, "invalid"),
    ({"conversation_id": 1.5, "body": "x"}, "invalid"),
    ({"conversation_id": 2**70, "body": "x"}, "invalid"),
    ({"conversation_id": "CID", "body": "x", "client_id": 7}, "invalid"),
    ({"conversation_id": "CID", "body": "x", "client_id": ""}, "invalid"),
    ({"conversation_id": "CID", "body": "x", "client_id": "c" * 65}, "invalid"),
    ({"conversation_id": "CID", "body": "x" * 4001}, "too_large"),
    ({"conversation_id": "CID", "body": "é" * 4001}, "too_large"),
    ({"conversation_id": 987654321, "body": "x"}, "not_found"),
]


def _fill(payload: Any, cid: int) -> Any:
    if isinstance(payload, dict):
        return {k: (cid if v == "CID" else v) for k, v in payload.items()}
    return payload


async def test_malformed_send_message_payloads_answer_codes_and_store_nothing(api: Api,
                                                                              sockets: SocketFactory) -> None:
    alice, _bob, cid, alice_socket, bob_socket = await dm(api, sockets)
    for payload, code in MALFORMED_SENDS:
        assert error_code(await alice_socket.call("send_message", _fill(payload, cid))) == code, payload
        # The same without an ack callback must not store or relay anything either.
        await alice_socket.emit("send_message", _fill(payload, cid))
    assert await stored(api, alice, cid) == []
    # Control, later in the same order: a good message is seq 1 and the only one bob ever got.
    good = await send(alice_socket, cid, "x" * 4000)
    assert good["seq"] == 1
    assert await bob_socket.wait_for("new_message") == good
    assert bob_socket.events("new_message") == [good]
    await round_trip(alice_socket)
    assert alice_socket.events("new_message") == []


async def test_rest_send_applies_the_same_validation(api: Api, sockets: SocketFactory) -> None:
    alice, _bob, cid, _alice_socket, bob_socket = await dm(api, sockets)
    cases = [({"body": "x" * 4001}, 413, "too_large"), ({"body": ""}, 400, "invalid"), ({}, 400, "invalid"),
             ({"body": 5}, 400, "invalid"), ({"body": "x", "client_id": "c" * 65}, 400, "invalid")]
    for payload, status_expected, code in cases:
        status, body = await api.request("POST", f"/api/conversations/{cid}/messages", token=alice.token,
                                         json=payload)
        assert (status, body["error"]["code"]) == (status_expected, code), payload
    status, body = await api.request("POST", f"/api/conversations/{cid}/messages", token=alice.token,
                                     data=b"not json", headers={"Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (400, "invalid")
    assert await stored(api, alice, cid) == []
    status, body = await api.send(alice, cid, "fine")
    assert status == 201
    assert await bob_socket.wait_for("new_message") == body["message"]
    assert len(bob_socket.events("new_message")) == 1


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    async def poll() -> None:
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(poll(), 5.0)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


async def test_every_event_works_without_an_ack_callback(server: RunningServer, api: Api,
                                                         sockets: SocketFactory) -> None:
    alice, bob, cid, alice_socket, bob_socket = await dm(api, sockets)
    bob_laptop = await sockets.connect(bob.token)
    sio = server.app[AURORA].sio
    laptop_sid = bob_laptop.client.get_sid("/chat")

    def laptop_in_room() -> bool:
        return f"conversation:{cid}" in sio.rooms(laptop_sid, namespace="/chat")

    await alice_socket.emit("send_message", {"conversation_id": cid, "body": "fire and forget", "client_id": "f1"})
    message = await bob_socket.wait_for("new_message")
    assert message["body"] == "fire and forget" and message["seq"] == 1
    await bob_socket.emit("delivered", {"conversation_id": cid, "seq": 1})
    assert await alice_socket.wait_for("receipt") == \
        {"conversation_id": cid, "user_id": bob.id, "delivered_seq": 1, "read_seq": 0}
    await bob_socket.emit("mark_read", {"conversation_id": cid, "seq": 1})
    await alice_socket.wait_for("receipt", lambda r: r["read_seq"] == 1)
    await bob_socket.emit("typing", {"conversation_id": cid, "typing": True})
    assert (await alice_socket.wait_for("typing"))["user_id"] == bob.id
    assert laptop_in_room()
    await bob_laptop.emit("leave_conversation", cid)
    await wait_until(lambda: not laptop_in_room(), "leave_conversation without ack left the room")
    # The retry, also without ack: stored once, broadcast once.
    await alice_socket.emit("send_message", {"conversation_id": cid, "body": "fire and forget", "client_id": "f1"})
    second = await send(alice_socket, cid, "acked")
    assert second["seq"] == 2
    status, body = await api.request("GET", "/api/conversations", token=bob.token)
    assert status == 200, body
    [listed] = [c for c in body["conversations"] if c["id"] == cid]
    assert (listed["delivered_seq"], listed["read_seq"]) == (1, 1)
    await bob_laptop.emit("join_conversation", {"conversation_id": cid})
    await wait_until(laptop_in_room, "join_conversation without ack entered the room")
    third = await send(alice_socket, cid, "joined again")
    assert await bob_laptop.wait_for("new_message", lambda m: m["seq"] == 3) == third
    # The laptop left before the second message and was back for the third.
    assert bob_laptop.events("new_message") == [message, third]
    assert await bob_socket.wait_count("new_message", 3) == [message, second, third]
    assert [m["seq"] for m in await stored(api, alice, cid)] == [1, 2, 3]


# -- a real database failure ------------------------------------------------------------------
def _boom_trigger_sql(is_sqlite: bool) -> list[str]:
    if is_sqlite:
        return ["CREATE TRIGGER boom_on_insert BEFORE INSERT ON message WHEN NEW.body = 'boom' "
                "BEGIN SELECT RAISE(ABORT, 'boom trigger'); END"]
    return [
        "CREATE FUNCTION boom_on_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$ "
        "BEGIN IF NEW.body = 'boom' THEN RAISE EXCEPTION 'boom trigger'; END IF; RETURN NEW; END $fn$",
        "CREATE TRIGGER boom_on_insert BEFORE INSERT ON message FOR EACH ROW EXECUTE FUNCTION boom_on_insert()",
    ]


def _drop_trigger_sql(is_sqlite: bool) -> list[str]:
    if is_sqlite:
        return ["DROP TRIGGER boom_on_insert"]
    return ["DROP TRIGGER boom_on_insert ON message", "DROP FUNCTION boom_on_insert()"]


async def _run_sql(server: RunningServer, statements: list[str]) -> None:
    """Raw SQL through the server's own storage (the same database, schema and connection settings)."""
    def run() -> None:
        for statement in statements:
            database_proxy.execute_sql(statement)
    await server.app[AURORA].storage.write(run)


async def test_database_failure_answers_internal_and_broadcasts_nothing(
        server: RunningServer, api: Api, sockets: SocketFactory) -> None:
    is_sqlite = server.app[AURORA].storage.is_sqlite
    alice, bob, cid, alice_socket, bob_socket = await dm(api, sockets)
    alice_laptop = await sockets.connect(alice.token)
    await _run_sql(server, _boom_trigger_sql(is_sqlite))

    ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": "boom", "client_id": "b-1"})
    assert error_code(ack) == "internal"
    assert "trigger" not in ack["error"]["message"]  # no database detail leaks to the client
    status, body = await api.send(alice, cid, "boom")
    assert (status, body["error"]["code"]) == (500, "internal")

    # Failures in the middle of a busy batch fail alone; the others keep gapless seqs.
    results = await asyncio.gather(*(
        alice_socket.call("send_message", {"conversation_id": cid, "body": body})
        for body in ("a", "boom", "b", "boom", "c")
    ))
    assert [r["ok"] for r in results] == [True, False, True, False, True]
    assert [error_code(r) for r in results if not r["ok"]] == ["internal", "internal"]
    good = [r["message"] for r in results if r["ok"]]
    assert [m["seq"] for m in good] == [1, 2, 3]

    after = await send(alice_socket, cid, "after the failure")
    assert after["seq"] == 4
    expected = [*good, after]
    assert await bob_socket.wait_count("new_message", 4) == expected
    assert await alice_laptop.wait_count("new_message", 4) == expected
    # Nothing about the failed sends was broadcast, to anyone: all of it came before `after`.
    assert bob_socket.events("new_message") == expected
    assert alice_laptop.events("new_message") == expected
    assert [m["body"] for m in await stored(api, bob, cid)] == ["a", "b", "c", "after the failure"]
    status, body = await api.request("GET", f"/api/conversations/{cid}", token=bob.token)
    assert body["conversation"]["last_seq"] == 4

    # The failed client_id was not used up: once the database is healthy, the retry is stored.
    await _run_sql(server, _drop_trigger_sql(is_sqlite))
    retry = await alice_socket.call("send_message", {"conversation_id": cid, "body": "boom", "client_id": "b-1"})
    assert retry["ok"] is True and retry["duplicate"] is False and retry["message"]["seq"] == 5
    assert (await bob_socket.wait_for("new_message", lambda m: m["seq"] == 5))["body"] == "boom"


# -- packet size --------------------------------------------------------------------------------
async def test_packet_over_the_limit_is_refused_by_the_transport(api: Api, sockets: SocketFactory) -> None:
    alice, _bob, cid, alice_socket, bob_socket = await dm(api, sockets)
    # Just under the default 1 MiB packet limit: reaches the handler, which answers the application limit.
    ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": "x" * 1_000_000})
    assert error_code(ack) == "too_large"
    assert alice_socket.client.connected
    # Over it: the transport drops the connection; the handler never runs, so there is no ack.
    gone = watch_disconnect(alice_socket)
    await alice_socket.emit("send_message", {"conversation_id": cid, "body": "y" * (1024 * 1024 + 10)})
    await asyncio.wait_for(gone.wait(), 10)
    assert not alice_socket.client.connected
    # Nothing was stored or relayed; a new connection works and its message is seq 1.
    alice_again = await sockets.connect(alice.token)
    message = await send(alice_again, cid, "small")
    assert message["seq"] == 1
    assert await bob_socket.wait_for("new_message") == message
    assert bob_socket.events("new_message") == [message]
    assert [m["id"] for m in await stored(api, alice, cid)] == [message["id"]]


@asynccontextmanager
async def _server_with(tmp_path: Path, db_url: str, **overrides: Any) -> AsyncIterator[RunningServer]:
    running = await start_server(make_settings(tmp_path, db_url, **overrides))
    try:
        yield running
    finally:
        await running.stop()


async def test_configured_packet_limit_is_enforced(tmp_path: Path, db_url: str) -> None:
    limit = 16 * 1024
    async with _server_with(tmp_path, db_url, max_packet_bytes=limit) as running:
        api = Api(running.url)
        sockets = SocketFactory(running.url)
        try:
            _alice, _bob, cid, alice_socket, bob_socket = await dm(api, sockets)
            # Under the packet limit, over the message limit: an application error, connection kept.
            ack = await alice_socket.call("send_message", {"conversation_id": cid, "body": "x" * 4001})
            assert error_code(ack) == "too_large"
            fits = await send(alice_socket, cid, "z" * 4000)
            assert fits["seq"] == 1
            gone = watch_disconnect(alice_socket)
            await alice_socket.emit("sync", {"cursors": {str(cid): 0}, "pad": "p" * (limit + 100)})
            await asyncio.wait_for(gone.wait(), 10)
            assert await bob_socket.wait_for("new_message") == fits
        finally:
            await sockets.close_all()
            await api.close()


async def test_database_failure_during_connect_is_refused_at_once(
        server: RunningServer, api: Api, sockets: SocketFactory) -> None:
    """After authentication the connection reads memberships; if that fails the client gets a
    connect_error with code `internal` (not silence until its own timeout), and nothing lingers."""
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    bob_socket = await sockets.connect(bob.token)
    await _run_sql(server, ["ALTER TABLE membership RENAME TO membership_away"])
    try:
        refused = await sockets.connect_error(alice.token)
    finally:
        await _run_sql(server, ["ALTER TABLE membership_away RENAME TO membership"])
    assert refused["data"]["code"] == "internal", refused
    assert isinstance(refused["data"]["message"], str)
    status, health = await api.request("GET", "/health")
    assert status == 200, health
    assert health["connections"] == 1, health  # bob only: the refused socket is not counted
    # Healthy again: alice connects, comes online once, and messages flow.
    alice_socket = await sockets.connect(alice.token)
    online = await bob_socket.wait_for("presence")
    assert online["user_id"] == alice.id and online["online"] is True
    message = await send(alice_socket, cid, "made it")
    assert await bob_socket.wait_for("new_message") == message
    assert bob_socket.events("presence") == [online]
