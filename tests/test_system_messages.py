"""Server-written messages (call summaries) and the client ids reserved for them; sync names bad cursors."""

from __future__ import annotations

from tests.support.clients import Api, SocketFactory, acked, invite_call, messages_of


async def test_client_ids_reserved_for_the_server_are_refused(api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    conversation = await api.conversation(alice, [bob])
    status, body = await api.send(alice, conversation["id"], "hi", client_id="call:1")
    assert status == 400 and body["error"]["code"] == "invalid", body
    sock = await sockets.connect(alice.token)
    ack = await sock.call("send_message", {"conversation_id": conversation["id"], "body": "hi",
                                           "client_id": "call:7"})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack
    assert await messages_of(api, alice, conversation["id"]) == []


async def test_summary_is_stored_even_when_the_caller_left_the_group(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    group = await api.conversation(alice, [bob, carol], title="standup")
    a = await sockets.connect(alice.token, "/calls")
    b = await sockets.connect(bob.token, "/calls")
    c = await sockets.connect(carol.token, "/calls")
    call = await invite_call(a, group["id"])
    await acked(b, "call_accept", {"call_id": call["id"]})
    await acked(c, "call_accept", {"call_id": call["id"]})

    status, _ = await api.request("DELETE", f"/api/conversations/{group['id']}/members/me", token=alice.token)
    assert status == 200
    await acked(b, "call_hangup", {"call_id": call["id"]})
    await acked(c, "call_hangup", {"call_id": call["id"]})  # the call ends with fewer than two left

    summaries = [m for m in await messages_of(api, bob, group["id"]) if m["kind"] == "call"]
    assert len(summaries) == 1, summaries
    assert summaries[0]["sender_id"] == alice.id and summaries[0]["call"]["id"] == call["id"]


async def test_sync_names_the_cursors_it_cannot_serve(api: Api, sockets: SocketFactory) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    mine = await api.conversation(alice, [bob])
    theirs = await api.conversation(bob, [carol])
    sock = await sockets.connect(alice.token)
    answer = await sock.call("sync", {"cursors": {str(mine["id"]): 0, str(theirs["id"]): 0}})
    assert answer["ok"] is False and answer["error"]["code"] == "not_found", answer
    assert str(theirs["id"]) in answer["error"]["message"]
