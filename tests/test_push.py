"""Web Push (issue 15) against a stand-in push service that checks VAPID, encryption and headers,
on SQLite and PostgreSQL: who gets a push (offline members, one per subscription; not the online,
not the muted, not the sender), what it says, and what the push service's answers do."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aurora.context import AURORA
from aurora.services.clock import ManualClock
from aurora.services.push import Push
from aurora.services.push.audience import PushAudience
from tests.conftest import QUICK_RING_S, RunningServer, make_settings, ring_out, start_server
from tests.support.clients import Account, Api, SocketFactory, acked, invite_call
from tests.support.push_service import Device, StandInPushService

# Loopback http endpoints for the stand-in; quick retries.
PUSH_SETTINGS: dict[str, Any] = {"push_allow_insecure_endpoints": True, "push_endpoint_hosts": "127.0.0.1",
                                 "push_retry_base_s": 0.05, "push_retries": 2}


@pytest.fixture
async def standin() -> AsyncIterator[StandInPushService]:
    service = await StandInPushService().start()
    try:
        yield service
    finally:
        await service.stop()


async def _serve(tmp_path: Path, db_url: str, clock: ManualClock | None = None, **extra: Any) -> RunningServer:
    return await start_server(make_settings(tmp_path, db_url, **{**PUSH_SETTINGS, **extra}), clock)


@pytest.fixture
async def push_server(tmp_path: Path, db_url: str) -> AsyncIterator[RunningServer]:
    running = await _serve(tmp_path, db_url)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def papi(push_server: RunningServer) -> AsyncIterator[Api]:
    client = Api(push_server.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def psockets(push_server: RunningServer) -> AsyncIterator[SocketFactory]:
    factory = SocketFactory(push_server.url)
    try:
        yield factory
    finally:
        await factory.close_all()


def push_of(server: RunningServer) -> Push:
    return server.app[AURORA].push


async def vapid_key(api: Api, account: Account) -> str:
    status, body = await api.request("GET", "/api/push/vapid-public-key", token=account.token)
    assert status == 200, (status, body)
    return body["public_key"]


async def subscribe(api: Api, account: Account, standin: StandInPushService, name: str) -> Device:
    device = standin.device(name, await vapid_key(api, account))
    status, body = await api.request("POST", "/api/push/subscriptions", token=account.token,
                                     json=device.subscription())
    assert status == 201, (status, body)
    assert body["subscription"]["endpoint"] == device.endpoint
    return device


async def subscriptions_of(api: Api, account: Account) -> list[str]:
    status, body = await api.request("GET", "/api/push/subscriptions", token=account.token)
    assert status == 200, (status, body)
    return [s["endpoint"] for s in body["subscriptions"]]


async def send(api: Api, account: Account, conversation_id: int, text: str) -> dict[str, Any]:
    status, body = await api.send(account, conversation_id, text)
    assert status == 201, (status, body)
    return body["message"]


# -- the routes ---------------------------------------------------------------------------------
async def test_vapid_key_and_subscription_routes(papi: Api, standin: StandInPushService) -> None:
    alice = await papi.register(display_name="Alice")
    assert (await papi.request("GET", "/api/push/vapid-public-key"))[0] == 401
    key = await vapid_key(papi, alice)
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert len(raw) == 65 and raw[0] == 4  # an uncompressed P-256 point: applicationServerKey

    device = standin.device("a1", key)
    good = device.subscription()
    status, body = await papi.request("POST", "/api/push/subscriptions", token=alice.token, json=good)
    assert status == 201, body
    status, body = await papi.request("POST", "/api/push/subscriptions", token=alice.token, json=good)
    assert status == 200, body  # the same browser again: updated, not twice
    assert await subscriptions_of(papi, alice) == [device.endpoint]

    status, body = await papi.request("DELETE", "/api/push/subscriptions", token=alice.token,
                                      json={"endpoint": device.endpoint})
    assert (status, body) == (200, {"ok": True})
    status, body = await papi.request("DELETE", "/api/push/subscriptions", token=alice.token,
                                      json={"endpoint": device.endpoint})
    assert status == 404 and body["error"]["code"] == "not_found", body
    status, body = await papi.request("DELETE", "/api/push/subscriptions", token=alice.token, json={})
    assert status == 400 and body["error"]["code"] == "invalid", body
    assert await subscriptions_of(papi, alice) == []


def _bad(change: dict[str, Any]) -> dict[str, Any]:
    sub = {"endpoint": "http://127.0.0.1:9/push/x", "keys": {
        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
        "auth": "tBHItJI5svbpez7KI4CCXg"}}
    for key, value in change.items():
        if key.startswith("keys."):
            sub["keys"][key[5:]] = value
        else:
            sub[key] = value
    return sub


BAD_SUBSCRIPTIONS = [
    (_bad({"endpoint": None}), "endpoint"),
    (_bad({"endpoint": "ftp://127.0.0.1/push"}), "http"),
    (_bad({"endpoint": "http://push.evil.example/p"}), "not an allowed push service"),
    (_bad({"endpoint": "http://user:pw@127.0.0.1/p"}), "credentials"),
    (_bad({"endpoint": "http://127.0.0.1/" + "p" * 1100}), "at most"),
    (_bad({"endpoint": "http://127.0.0.1:99999/p"}), "not a valid URL"),
    (_bad({"keys": None}), "keys"),
    (_bad({"keys.p256dh": "not base64!"}), "p256dh"),
    (_bad({"keys.p256dh": "BAAA"}), "p256dh"),
    (_bad({"keys.p256dh": "B" + "A" * 86}), "curve"),  # 65 bytes, 0x04 first, not on the curve
    (_bad({"keys.auth": "c2hvcnQ"}), "auth"),
    (_bad({"keys.auth": 5}), "auth"),
    (_bad({"expirationTime": "soon"}), "expirationTime"),
]


async def test_bad_subscriptions_are_refused_and_nothing_is_stored(papi: Api) -> None:
    alice = await papi.register()
    for body, needle in BAD_SUBSCRIPTIONS:
        status, answer = await papi.request("POST", "/api/push/subscriptions", token=alice.token, json=body)
        assert status == 400 and answer["error"]["code"] == "invalid", (body, answer)
        assert needle in answer["error"]["message"], (needle, answer)
    status, answer = await papi.request("POST", "/api/push/subscriptions", token=alice.token, data="[1]",
                                        headers={"Content-Type": "application/json"})
    assert status == 400 and answer["error"]["code"] == "invalid", answer
    assert await subscriptions_of(papi, alice) == []


def test_https_endpoints_only_unless_insecure_ones_are_allowed(tmp_path: Path) -> None:
    from aurora.errors import AuroraError
    from aurora.services.push.subscriptions import check_endpoint

    strict = make_settings(tmp_path, "sqlite:///x.db", push_endpoint_hosts=".push.example")
    assert check_endpoint("https://eu.push.example/abc", strict) == "https://eu.push.example/abc"
    for refused in ("http://eu.push.example/abc", "https://push.example.evil/abc", "https://xpush.example/a"):
        with pytest.raises(AuroraError) as caught:
            check_endpoint(refused, strict)
        assert caught.value.code == "invalid"
    loose = strict.replace(push_allow_insecure_endpoints=True)
    assert check_endpoint("http://eu.push.example/abc", loose)


# -- who gets a push --------------------------------------------------------------------------
async def test_an_offline_member_gets_one_push_per_subscription(push_server: RunningServer, papi: Api,
                                                                psockets: SocketFactory,
                                                                standin: StandInPushService) -> None:
    alice = await papi.register(display_name="Alice")
    bob = await papi.register(display_name="Bob")
    carol = await papi.register()
    await subscribe(papi, alice, standin, "alice")  # the sender: never pushed her own message
    await subscribe(papi, bob, standin, "bob-phone")
    await subscribe(papi, bob, standin, "bob-laptop")
    direct = await papi.conversation(alice, [bob])
    sock = await psockets.connect(alice.token)
    ack = await acked(sock, "send_message", {"conversation_id": direct["id"], "body": "hi Bob", "client_id": "m1"})
    seq = ack["message"]["seq"]
    # Change entries push nothing: an edit and a reaction after the message.
    await acked(sock, "edit_message", {"conversation_id": direct["id"], "seq": seq, "body": "hi Bob!"})
    await acked(sock, "react", {"conversation_id": direct["id"], "seq": seq, "emoji": "👍"})
    group = await papi.conversation(alice, [bob, carol], title="Team")
    await send(papi, alice, group["id"], "standup?")
    await push_of(push_server).idle()

    assert standin.violations == []
    assert {d.device for d in standin.deliveries} == {"bob-phone", "bob-laptop"}
    for name in ("bob-phone", "bob-laptop"):
        dm, grp = standin.delivered_to(name)  # exactly one per message, in order
        assert dm.payload == {
            "type": "message", "conversation_id": direct["id"], "seq": seq, "conversation_kind": "direct",
            "sender": {"id": alice.id, "username": alice.username, "display_name": "Alice"},
            "title": "Alice", "excerpt": None,  # push_preview is off by default
        }
        assert (dm.urgency, dm.topic, dm.ttl) == ("high", f"c{direct['id']}", 86400)
        assert dm.claims["aud"] == standin.origin and dm.claims["sub"].startswith("mailto:")
        assert grp.payload["conversation_id"] == group["id"] and grp.payload["title"] == "Team"
        assert (grp.urgency, grp.topic) == ("normal", f"c{group['id']}")
    assert push_of(push_server).stats()["sent"] == 4


async def test_the_excerpt_comes_only_with_push_preview(tmp_path: Path, db_url: str,
                                                        standin: StandInPushService) -> None:
    server = await _serve(tmp_path, db_url, push_preview=True)
    api = Api(server.url)
    try:
        alice, bob = await api.register(), await api.register()
        await subscribe(api, bob, standin, "bob")
        direct = await api.conversation(alice, [bob])
        await send(api, alice, direct["id"], "x" * 150)
        (delivery,) = await standin.wait_for(1, "bob")
        assert delivery.payload["excerpt"] == "x" * 100
    finally:
        await api.close()
        await server.stop()
    assert standin.violations == []


async def test_online_and_muted_members_get_no_push(push_server: RunningServer, papi: Api,
                                                    psockets: SocketFactory, standin: StandInPushService) -> None:
    alice, bob, carol, dave = [await papi.register() for _ in range(4)]
    for account, name in ((bob, "bob"), (carol, "carol"), (dave, "dave")):
        await subscribe(papi, account, standin, name)
    group = await papi.conversation(alice, [bob, carol, dave], title="Four")
    bob_socket = await psockets.connect(bob.token)  # bob has the app open
    status, mute = await papi.request("PUT", f"/api/conversations/{group['id']}/mute", token=carol.token)
    assert (status, mute) == (200, {"conversation_id": group["id"], "muted": True, "muted_until": None})
    status, body = await papi.request("GET", f"/api/conversations/{group['id']}", token=carol.token)
    assert (body["conversation"]["muted"], body["conversation"]["muted_until"]) == (True, None)

    first = await send(papi, alice, group["id"], "one")
    await standin.wait_for(1, "dave")
    await push_of(push_server).idle()
    assert [d.device for d in standin.deliveries] == ["dave"]

    # Unmuted, and bob gone: both get the next one.
    status, body = await papi.request("DELETE", f"/api/conversations/{group['id']}/mute", token=carol.token)
    assert (status, body["muted"]) == (200, False)
    await bob_socket.disconnect()
    status, body = await papi.request("GET", f"/api/conversations/{group['id']}", token=alice.token)
    while any(m["online"] for m in body["conversation"]["members"] if m["id"] == bob.id):
        await bob_socket.client.sleep(0.05)  # presence settles as soon as the disconnect is handled
        status, body = await papi.request("GET", f"/api/conversations/{group['id']}", token=alice.token)
    second = await send(papi, alice, group["id"], "two")
    await push_of(push_server).idle()
    assert sorted(d.device for d in standin.deliveries if d.payload["seq"] == second["seq"]) == ["bob", "carol", "dave"]
    assert [d.payload["seq"] for d in standin.deliveries].count(first["seq"]) == 1
    assert standin.violations == []


async def test_the_push_audience_is_read_once_and_follows_every_change(
        push_server: RunningServer, papi: Api, standin: StandInPushService) -> None:
    """The dispatcher keeps who could be pushed to in memory (no database read per message), and each
    change that adds a candidate or removes a member is seen by the very next message."""
    push = push_of(push_server)
    alice, bob, carol, dave = [await papi.register() for _ in range(4)]
    await subscribe(papi, bob, standin, "bob")
    await subscribe(papi, dave, standin, "dave")  # not a member yet
    group = await papi.conversation(alice, [bob, carol], title="Changing")
    quiet = await papi.conversation(alice, [carol])  # nobody in it has a subscription

    async def pushed_for(text: str, conversation_id: int | None = None) -> list[str]:
        message = await send(papi, alice, conversation_id or group["id"], text)
        await push.idle()
        key = (message["conversation_id"], message["seq"])
        return sorted(d.device for d in standin.deliveries
                      if (d.payload["conversation_id"], d.payload["seq"]) == key)

    assert await pushed_for("one") == ["bob"]
    reads = push.audience.reads
    assert await pushed_for("two") == ["bob"] and await pushed_for("three") == ["bob"]
    for n in range(3):
        assert await pushed_for(f"quiet {n}", quiet["id"]) == []
    assert push.audience.reads == reads + 1  # the quiet conversation once; the group not again

    await subscribe(papi, carol, standin, "carol")  # a new candidate in both conversations
    assert await pushed_for("four") == ["bob", "carol"]
    assert await pushed_for("quiet again", quiet["id"]) == ["carol"]
    status, _ = await papi.request("PUT", f"/api/conversations/{group['id']}/mute", token=bob.token)
    assert status == 200
    assert await pushed_for("five") == ["carol"]
    status, body = await papi.request("POST", f"/api/conversations/{group['id']}/members", token=alice.token,
                                      json={"user_ids": [dave.id]})
    assert status == 200, body
    assert await pushed_for("six") == ["carol", "dave"]
    status, _ = await papi.request("DELETE", f"/api/conversations/{group['id']}/members/me", token=carol.token)
    assert status in (200, 204)
    assert await pushed_for("seven") == ["dave"]
    status, _ = await papi.request("DELETE", f"/api/conversations/{group['id']}/mute", token=bob.token)
    assert status == 200
    assert await pushed_for("eight") == ["bob", "dave"]
    reads = push.audience.reads
    assert await pushed_for("nine") == ["bob", "dave"]
    assert push.audience.reads == reads
    assert standin.violations == []


async def test_push_audience_entries_expire_and_are_bounded(push_server: RunningServer, papi: Api) -> None:
    """The copy's bounds, with a clock the test moves: an entry is read again after its time to live,
    and beyond its capacity the least recently used conversation goes."""
    alice, bob = await papi.register(), await papi.register()
    ids = [(await papi.conversation(alice, [bob], title=f"g{n}"))["id"] for n in range(3)]
    now = [1000.0]
    audience = PushAudience(push_server.app[AURORA].storage, clock=lambda: now[0], ttl_s=60, capacity=2)
    await audience.of(ids[:2])
    await audience.of(ids[:2])
    assert audience.reads == 1
    now[0] += 61  # both expired
    await audience.of(ids[:2])
    assert audience.reads == 2
    await audience.of([ids[1]])  # ids[0] is now the least recently used
    await audience.of([ids[2]])  # a third conversation: ids[0] goes
    assert audience.reads == 3
    await audience.of(ids[1:])
    assert audience.reads == 3
    await audience.of([ids[0]])
    assert audience.reads == 4


async def test_with_push_off_the_routes_say_so_and_nothing_is_pushed(tmp_path: Path, db_url: str) -> None:
    running = await _serve(tmp_path, db_url, push_enabled=False)
    api = Api(running.url)
    try:
        assert running.app[AURORA].push is None and running.app[AURORA].messages.push is None
        alice, bob = await api.register(), await api.register()
        endpoint = "http://127.0.0.1:1/x"
        for method, path, body in (("GET", "/api/push/vapid-public-key", None),
                                   ("GET", "/api/push/subscriptions", None),
                                   ("POST", "/api/push/subscriptions", {"endpoint": endpoint,
                                                                        "keys": {"p256dh": "a", "auth": "b"}}),
                                   ("DELETE", "/api/push/subscriptions", {"endpoint": endpoint})):
            status, answer = await api.request(method, path, token=alice.token, json=body)
            assert status == 404 and answer["error"]["code"] == "not_found", (path, answer)
            assert "push_enabled" in answer["error"]["message"]
        direct = await api.conversation(alice, [bob])
        status, mute = await api.request("PUT", f"/api/conversations/{direct['id']}/mute", token=bob.token)
        assert (status, mute["muted"]) == (200, True)  # mutes still work: they are shown in the app
        assert (await api.send(alice, direct["id"], "no push anywhere"))[0] == 201
        status, answer = await api.request("POST", "/api/auth/logout", token=bob.token)
        assert status == 200, answer
        status, health = await api.request("GET", "/health")
        assert status == 200 and "push" not in health
    finally:
        await api.close()
        await running.stop()


async def test_mute_until_a_time(papi: Api) -> None:
    alice, bob = await papi.register(), await papi.register()
    direct = await papi.conversation(alice, [bob])
    path = f"/api/conversations/{direct['id']}/mute"
    status, body = await papi.request("PUT", path, token=alice.token, json={"until": "2999-01-01T08:00:00+02:00"})
    assert (status, body["muted"], body["muted_until"]) == (200, True, "2999-01-01T06:00:00.000Z"), body
    status, body = await papi.request("GET", "/api/conversations", token=alice.token)
    (listed,) = body["conversations"]
    assert (listed["muted"], listed["muted_until"]) == (True, "2999-01-01T06:00:00.000Z")
    for bad in ("2001-01-01T00:00:00Z", "2999-01-01T08:00:00", "tomorrow", 5):
        status, body = await papi.request("PUT", path, token=alice.token, json={"until": bad})
        assert status == 400 and body["error"]["code"] == "invalid", (bad, body)
    status, body = await papi.request("GET", f"/api/conversations/{direct['id']}", token=alice.token)
    assert body["conversation"]["muted_until"] == "2999-01-01T06:00:00.000Z"  # unchanged by the refusals
    status, body = await papi.request("GET", f"/api/conversations/{direct['id']}", token=bob.token)
    assert body["conversation"]["muted"] is False  # a mute is one member's
    carol = await papi.register()
    status, body = await papi.request("PUT", path, token=carol.token)
    assert status == 404 and body["error"]["code"] == "not_found"


# -- what the push service's answers do -------------------------------------------------------
async def test_gone_subscriptions_are_removed_and_failures_retried_then_dropped(
        push_server: RunningServer, papi: Api, standin: StandInPushService) -> None:
    alice, bob = await papi.register(), await papi.register()
    gone = await subscribe(papi, bob, standin, "gone")
    down = await subscribe(papi, bob, standin, "down")
    flaky = await subscribe(papi, bob, standin, "flaky")
    standin.script("gone", [410])
    standin.script("down", [503] * 10)
    standin.script("flaky", [500, 429])
    direct = await papi.conversation(alice, [bob])
    await send(papi, alice, direct["id"], "hello")
    await push_of(push_server).idle()

    retries = PUSH_SETTINGS["push_retries"]
    assert standin.attempts == {"gone": 1, "down": retries + 1, "flaky": 3}
    assert [d.device for d in standin.deliveries] == ["flaky"]
    assert await subscriptions_of(papi, bob) == [down.endpoint, flaky.endpoint]
    assert gone.endpoint not in await subscriptions_of(papi, bob)
    stats = push_of(push_server).stats()
    assert (stats["sent"], stats["gone"], stats["failed"], stats["retried"]) == (1, 1, 1, retries + 2)
    assert stats["pending"] == 0
    assert standin.violations == []


async def _login(api: Api, account: Account) -> Account:
    status, body = await api.request("POST", "/api/auth/login", json={"username": account.username,
                                                                     "password": account.password})
    assert status == 200, body
    return Account(account.id, account.username, body["token"], account.user, account.password)


async def test_subscriptions_belong_to_device_sessions(push_server: RunningServer, papi: Api,
                                                       standin: StandInPushService) -> None:
    alice, bob = await papi.register(), await papi.register()
    phone, laptop, tablet = await _login(papi, bob), await _login(papi, bob), await _login(papi, bob)
    await subscribe(papi, phone, standin, "phone")
    await subscribe(papi, laptop, standin, "laptop")
    await subscribe(papi, tablet, standin, "tablet")
    status, body = await papi.request("GET", "/api/push/subscriptions", token=laptop.token)
    listed = {s["endpoint"].rsplit("/", 1)[1]: s for s in body["subscriptions"]}
    assert [name for name, s in listed.items() if s["current"]] == ["laptop"]
    assert len({s["session_id"] for s in listed.values()}) == 3
    # The phone's session ended from another device; the tablet logs out: only the laptop hears.
    status, _ = await papi.request("DELETE", f"/api/sessions/{listed['phone']['session_id']}", token=laptop.token)
    assert status == 200
    status, _ = await papi.request("POST", "/api/auth/logout", token=tablet.token)
    assert status == 200
    assert [e.rsplit("/", 1)[1] for e in await subscriptions_of(papi, laptop)] == ["laptop"]
    direct = await papi.conversation(alice, [bob])
    await send(papi, alice, direct["id"], "which device?")
    await push_of(push_server).idle()
    assert [d.device for d in standin.deliveries] == ["laptop"]
    # Logging out everywhere forgets every subscription of the user.
    status, _ = await papi.request("POST", "/api/auth/logout", token=laptop.token, json={"everywhere": True})
    assert status == 200
    assert await subscriptions_of(papi, await _login(papi, bob)) == []
    assert standin.violations == []


# -- calls ------------------------------------------------------------------------------------
async def test_incoming_and_missed_calls_push(tmp_path: Path, db_url: str, standin: StandInPushService) -> None:
    server = await _serve(tmp_path, db_url, ManualClock(), ring_timeout_s=QUICK_RING_S)  # rings out when told
    api, sockets = Api(server.url), SocketFactory(server.url)
    try:
        alice, bob = await api.register(display_name="Alice"), await api.register()
        await subscribe(api, bob, standin, "bob")
        direct = await api.conversation(alice, [bob])
        caller = await sockets.connect(alice.token, "/calls")
        call = await invite_call(caller, direct["id"], "video")
        await ring_out(server)  # nobody answers: missed
        incoming, missed = await standin.wait_for(2, "bob")
        await push_of(server).idle()
        assert len(standin.deliveries) == 2
        assert incoming.payload["type"] == "call_incoming" and incoming.payload["seq"] is None
        assert incoming.payload["call"] == {"id": call["id"], "media": "video"}
        # It lives as long as the call rings.
        assert (incoming.urgency, incoming.ttl, incoming.topic) == ("high", int(QUICK_RING_S), f"c{direct['id']}")
        assert missed.payload["type"] == "call_missed" and missed.payload["call"]["id"] == call["id"]
        assert missed.payload["seq"] is not None and missed.urgency == "high"
        assert missed.payload["sender"]["display_name"] == "Alice"
    finally:
        await sockets.close_all()
        await api.close()
        await server.stop()
    assert standin.violations == []


# -- VAPID keys ------------------------------------------------------------------------------
async def test_vapid_key_rotation(tmp_path: Path, db_url: str, standin: StandInPushService) -> None:
    from aurora.services.push.vapid import generate_private_key

    old, new = generate_private_key(), generate_private_key()
    server = await _serve(tmp_path, db_url, vapid_private_key=old)
    api = Api(server.url)
    try:
        alice, bob = await api.register(), await api.register()
        old_public = await vapid_key(api, bob)
        await subscribe(api, bob, standin, "old")
        direct = await api.conversation(alice, [bob])
    finally:
        await api.close()
        await server.stop()
    # The new key first: new subscriptions use it; the old subscription is still signed with the old.
    server = await _serve(tmp_path, db_url, vapid_private_key=f"{new},{old}")
    api = Api(server.url)
    try:
        assert await vapid_key(api, bob) != old_public
        await subscribe(api, bob, standin, "new")
        await send(api, alice, direct["id"], "after rotation")
        await push_of(server).idle()
        assert sorted(d.device for d in standin.deliveries) == ["new", "old"]  # each verified with its own k
    finally:
        await api.close()
        await server.stop()
    # The old key dropped: its subscription can never be signed again and is forgotten.
    server = await _serve(tmp_path, db_url, vapid_private_key=new)
    api = Api(server.url)
    try:
        await send(api, alice, direct["id"], "old key gone")
        await push_of(server).idle()
        assert [d.device for d in standin.deliveries[2:]] == ["new"]
        assert await subscriptions_of(api, bob) == [standin.devices["new"].endpoint]
    finally:
        await api.close()
        await server.stop()
    assert standin.violations == []
