"""The one store path and its writer: the per-item fallback gives the fast path's answers for the same
items, the writer's queue is bounded, and its task is supervised."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from aurora.context import AURORA
from aurora.errors import AuroraError
from aurora.services.message_writer import MessageWriter
from aurora.storage.log_rules import LogRules
from aurora.storage.messages import AppendResult, NewMessage, append_entries_txn
from tests.conftest import RunningServer
from tests.support.clients import Api
from tests.support.foundation import raw_query

_VOLATILE = {"id", "conversation_id", "created_at", "edited_at"}


def _normal(value: Any) -> Any:
    """A result without what differs between two conversations (ids, times)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _outcome(result: Any) -> Any:
    if isinstance(result, AuroraError):
        return ("error", result.code)
    assert isinstance(result, AppendResult)
    return ("ok", result.duplicate, _normal(result.message), _normal(result.state))


async def _setup(api: Api) -> tuple[Any, Any, Any, list[int]]:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    cids = []
    for _ in range(2):
        cid = (await api.conversation(alice, [bob], title="twin"))["id"]
        status, _ = await api.send(alice, cid, "first", client_id="c-1")
        assert status == 201
        cids.append(cid)
    return alice, bob, carol, cids


def _items(cid: int, alice: Any, bob: Any, carol: Any, poison: bool) -> list[NewMessage]:
    items = [
        NewMessage(cid, alice.id, "second", client_id="c-2"),
        NewMessage(cid, bob.id, "a reply", reply_to_seq=1),
        NewMessage(cid, alice.id, "first, edited", kind="edit", target_seq=1, client_id="e-1"),
        NewMessage(cid, bob.id, "", kind="reaction", target_seq=1, emoji="👍"),
        NewMessage(cid, bob.id, "", kind="reaction", target_seq=1, emoji="👍"),  # repeat: no entry
        NewMessage(cid, alice.id, "", kind="reaction", target_seq=1, emoji="❤️", added=False),  # never reacted
        NewMessage(cid, alice.id, "first", client_id="c-1"),  # a retry of a stored message
        NewMessage(cid, alice.id, "second", client_id="c-2"),  # a retry within the batch
        NewMessage(cid, bob.id, "x", kind="edit", target_seq=1),  # not the sender
        NewMessage(cid, carol.id, "not a member"),
        NewMessage(cid, alice.id, "", kind="reaction", target_seq=99, emoji="👍"),  # no such message
        NewMessage(cid, alice.id, "first, edited again", kind="edit", target_seq=1, client_id="e-1"),  # retry
        NewMessage(cid, alice.id, "", kind="delete", target_seq=1),
        NewMessage(cid, alice.id, "", kind="delete", target_seq=1),  # second delete: the first's entry
        NewMessage(cid, bob.id, "", kind="reaction", target_seq=1, emoji="🎉"),  # deleted: conflict
        NewMessage(cid, bob.id, "the last one"),
    ]
    if poison:
        # The driver cannot encode it (an unpaired surrogate): the batch fails as a whole, in the database.
        items.insert(5, NewMessage(cid, alice.id, "lone \ud800 surrogate", kind="edit", target_seq=1))
    return items


def _rows(db_url: str, cid: int) -> list[tuple[Any, ...]]:
    return raw_query(db_url, "SELECT seq, kind, sender_id, body, client_id, target_seq, emoji, added, reply_to_seq, "
                             "deleted, reactions, state_seq FROM message WHERE conversation_id = ? ORDER BY seq",
                     (cid,))


async def test_the_fallback_answers_what_the_fast_path_answers(server: RunningServer, api: Api,
                                                               db_url: str) -> None:
    alice, bob, carol, (fast_cid, slow_cid) = await _setup(api)
    writer = server.app[AURORA].messages.writer
    # Each list is queued without an await in between, so the writer takes it as one batch.
    fast = await asyncio.gather(*[writer.submit(i) for i in _items(fast_cid, alice, bob, carol, False)],
                                return_exceptions=True)
    slow = await asyncio.gather(*[writer.submit(i) for i in _items(slow_cid, alice, bob, carol, True)],
                                return_exceptions=True)
    poisoned = slow.pop(5)
    assert isinstance(poisoned, AuroraError) and poisoned.code == "internal"
    assert [_outcome(r) for r in slow] == [_outcome(r) for r in fast]
    codes = [_outcome(r)[1] if isinstance(r, AuroraError) else "ok" for r in fast]
    assert codes == ["ok"] * 8 + ["forbidden", "not_found", "not_found", "ok", "ok", "ok", "conflict", "ok"]
    # Same rows stored, with gapless seqs: message 1, 2 messages, edit, reaction, delete, last message.
    assert _rows(db_url, slow_cid) == _rows(db_url, fast_cid)
    assert [r[0] for r in _rows(db_url, fast_cid)] == list(range(1, 8))
    # The delete erased the edit's text from storage, on both paths.
    for cid in (fast_cid, slow_cid):
        bodies = raw_query(db_url, "SELECT kind, body FROM message WHERE conversation_id = ? AND target_seq = 1",
                           (cid,))
        assert sorted(bodies) == [("delete", ""), ("edit", ""), ("reaction", "")]


async def test_a_full_queue_answers_unavailable_at_once(server: RunningServer, api: Api) -> None:
    alice, bob, _, (cid, _) = await _setup(api)
    storage = server.app[AURORA].storage
    release = threading.Event()
    entered = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_batch(items: list[NewMessage], rules: LogRules) -> list[AppendResult]:
        loop.call_soon_threadsafe(entered.set)
        release.wait(10)
        return append_entries_txn(items, rules)

    stored: list[AppendResult] = []

    async def on_stored(result: AppendResult, _: Any) -> None:
        stored.append(result)

    writer = MessageWriter(storage, on_stored, queue_max=2, append_batch=slow_batch)
    writer.start()
    try:
        first = writer.submit(NewMessage(cid, alice.id, "taken into a batch"))
        await asyncio.wait_for(entered.wait(), 5)  # the writer holds it; the queue is empty again
        queued = [writer.submit(NewMessage(cid, bob.id, f"queued {i}")) for i in range(2)]
        with pytest.raises(AuroraError) as refused:
            writer.submit(NewMessage(cid, bob.id, "one too many"))
        assert refused.value.code == "unavailable"
        release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *queued), 10)
        assert [r.message["body"] for r in results] == ["taken into a batch", "queued 0", "queued 1"]
        assert len(stored) == 3
    finally:
        release.set()
        await writer.stop()


async def test_an_exception_past_the_handlers_answers_the_batch_and_the_writer_goes_on(
        server: RunningServer, api: Api) -> None:
    alice, _, _, (cid, _) = await _setup(api)
    storage = server.app[AURORA].storage
    broken = {"on": True}

    def sometimes_wrong(items: list[NewMessage], rules: LogRules) -> list[AppendResult]:
        results = append_entries_txn(items, rules)
        return results[:-1] if broken["on"] else results  # a bug: one result short

    async def on_stored(result: AppendResult, _: Any) -> None:
        return None

    writer = MessageWriter(storage, on_stored, append_batch=sometimes_wrong)
    writer.start()
    try:
        futures = [writer.submit(NewMessage(cid, alice.id, f"in the bad batch {i}")) for i in range(3)]
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 10)
        assert all(isinstance(r, AuroraError) and r.code == "internal" for r in results), results
        broken["on"] = False
        after = await asyncio.wait_for(writer.submit(NewMessage(cid, alice.id, "after the bug")), 10)
        assert after.message["body"] == "after the bug"
        assert writer.restarts == 0  # handled inside the loop

        # The task itself dying (cancelled by accident) is noticed, answered and restarted.
        blocker = threading.Event()

        def stuck(items: list[NewMessage], rules: LogRules) -> list[AppendResult]:
            blocker.wait(10)
            return append_entries_txn(items, rules)

        writer._append_batch = stuck
        pending = writer.submit(NewMessage(cid, alice.id, "in flight when the task dies"))
        await asyncio.sleep(0)  # let the writer take it
        lane = writer._lanes[0]
        assert lane.task is not None
        lane.task.cancel()
        with pytest.raises(AuroraError) as died:
            await asyncio.wait_for(pending, 10)
        assert died.value.code == "unavailable"
        blocker.set()
        writer._append_batch = append_entries_txn
        for _ in range(100):  # the restart is scheduled by the task's done callback
            if writer.restarts:
                break
            await asyncio.sleep(0.01)
        assert writer.restarts == 1
        later = await asyncio.wait_for(writer.submit(NewMessage(cid, alice.id, "after the restart")), 10)
        assert later.message["body"] == "after the restart"
    finally:
        await writer.stop()


def test_settings_bound_the_queue(tmp_path: Path) -> None:
    from aurora.settings import SettingsError
    from tests.conftest import make_settings

    with pytest.raises(SettingsError):
        make_settings(tmp_path, "sqlite:///x.db", message_queue_max=0)
