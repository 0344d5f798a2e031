"""The storage worker threads (aurora/storage/loop_executor.py) keep run_in_executor's semantics."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

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
