"""Failures are named truthfully: a broken database is `internal` (a bug) or `unavailable` (an outage),
never a made-up "not found". (The outage itself, on PostgreSQL: tests/test_health.py; a full disk:
tests/test_full_disk.py.)"""

from __future__ import annotations

from aurora.context import AURORA
from aurora.storage.database import database_proxy
from tests.conftest import RunningServer
from tests.support.clients import Api, SocketFactory, invite_call, refused


async def _run_sql(server: RunningServer, statements: list[str]) -> None:
    def run() -> None:
        for statement in statements:
            database_proxy.execute_sql(statement)
    await server.app[AURORA].storage.write(run)


async def test_a_failing_membership_check_is_not_reported_as_call_not_found(
        server: RunningServer, api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    bob = await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    alice_calls = await sockets.connect(alice.token, "/calls")
    bob_calls = await sockets.connect(bob.token, "/calls")
    call = await invite_call(alice_calls, cid)
    await _run_sql(server, ["ALTER TABLE membership RENAME TO membership_away"])
    try:
        # The membership check itself fails: a bug in the server's view, not "this call does not exist".
        await refused(bob_calls, "call_accept", {"call_id": call["id"]}, "internal")
    finally:
        await _run_sql(server, ["ALTER TABLE membership_away RENAME TO membership"])
    # Control: with the table back, the same accept works.
    ack = await bob_calls.call("call_accept", {"call_id": call["id"]})
    assert ack["ok"] is True, ack
