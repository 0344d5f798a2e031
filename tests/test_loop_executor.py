"""The storage worker threads (aurora/storage/loop_executor.py) keep run_in_executor's semantics."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from aurora.storage.database import Storage, open_database
from aurora.storage.loop_executor import LoopExecutor


async def test_results_errors_order_and_threads() -> None:
    executor = LoopExecutor(1, "t-exec")
    try:
        seen: list[int] = []

        def job(n: int) -> tuple[int, str]:
            seen.append(n)
            return n * 2, threading.current_thread().name

        answers = await asyncio.gather(*(executor.submit(job, n) for n in range(50)))
        assert [a for a, _ in answers] == [n * 2 for n in range(50)]
        assert seen == list(range(50))  # one thread: strictly in the order queued
        assert {name for _, name in answers} == {"t-exec_0"}

        def fails() -> None:
            raise KeyError("the caller gets this")

        with pytest.raises(KeyError, match="the caller gets this"):
            await executor.submit(fails)
    finally:
        executor.shutdown()


async def test_a_caller_that_stops_waiting_does_not_stop_the_job_and_shutdown_lets_queued_jobs_finish() -> None:
    executor = LoopExecutor(1, "t-exec")
    done: list[str] = []

    def slow(name: str) -> None:
        time.sleep(0.05)
        done.append(name)

    first = executor.submit(slow, "first")
    second = executor.submit(slow, "second")
    first.cancel()  # as run_in_executor: a started (or queued) job still runs; nobody gets its answer
    await asyncio.to_thread(executor.shutdown)  # waits for both
    assert done == ["first", "second"]
    assert await asyncio.wait_for(second, 1) is None  # answered, though after shutdown began
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(slow, "late")


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
async def test_background_threads_do_not_preempt_the_loop_on_a_shared_cpu(tmp_path: Path) -> None:
    def policy() -> int:
        return os.sched_getscheduler(0)

    allowed = os.sched_getaffinity(0)
    # Threads take the affinity of the thread that starts them: start them pinned to one CPU, as the
    # bench pins the server.
    os.sched_setaffinity(0, {min(allowed)})
    try:
        background, usual = LoopExecutor(1, "t-bg", background=True), LoopExecutor(1, "t-usual")
        storage = Storage(open_database(f"sqlite:///{tmp_path / 'policy.db'}"), threads=1)
    finally:
        os.sched_setaffinity(0, allowed)
    try:
        assert await background.submit(policy) == os.SCHED_BATCH
        assert await usual.submit(policy) == os.SCHED_OTHER
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the loop's own thread is untouched
        # SQLite's one writer thread is a background one; its readers are not.
        assert await storage.write(policy) == os.SCHED_BATCH
        assert await storage.read(policy) == os.SCHED_OTHER
    finally:
        background.shutdown()
        usual.shutdown()
        storage.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs")
async def test_with_cpus_to_spare_background_threads_keep_the_usual_policy() -> None:
    background = LoopExecutor(1, "t-bg", background=True)
    try:
        assert await background.submit(os.sched_getscheduler, 0) == os.SCHED_OTHER
    finally:
        background.shutdown()


async def test_the_initializer_runs_first_in_each_thread_and_storage_threads_stay_bound(tmp_path: Path) -> None:
    seen: list[str] = []
    ready = threading.local()

    def initializer() -> None:
        ready.name = threading.current_thread().name
        seen.append(ready.name)

    executor = LoopExecutor(2, "init-test", initializer=initializer)
    try:
        names = await asyncio.gather(*(executor.submit(lambda: ready.name) for _ in range(20)))
        assert set(names) <= {"init-test_0", "init-test_1"}
        assert sorted(seen) == ["init-test_0", "init-test_1"]  # once per thread, before any job
    finally:
        executor.shutdown()

    # Two Storages in one process: each one's threads keep pointing the models at its own database.
    from aurora.storage import migrations
    from aurora.storage import users as user_store
    from aurora.storage.database import database_proxy

    first = Storage(open_database(f"sqlite:///{tmp_path / 'a.db'}"), threads=2)
    second = Storage(open_database(f"sqlite:///{tmp_path / 'b.db'}"), threads=2)
    try:
        for storage in (first, second):
            migrations.migrate(storage)
        await first.write(user_store.create_user, "only_in_a", "A", "x")
        for _ in range(3):
            assert await first.read(user_store.get_user_by_name, "only_in_a") is not None
            assert await second.read(user_store.get_user_by_name, "only_in_a") is None
        assert await first.read(lambda: database_proxy.obj) is first.db
        assert await second.write(lambda: database_proxy.obj) is second.db
    finally:
        first.close()
        second.close()
