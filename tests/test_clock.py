"""ManualClock, the services' clock in tests: time moves only on advance(), and settled() is the
barrier after it (every woken timer has finished, or sleeps on the clock again)."""

from __future__ import annotations

import asyncio

import pytest

from aurora.services.clock import ManualClock


async def test_a_timer_fires_only_when_its_deadline_is_passed() -> None:
    clock = ManualClock()
    fired: list[float] = []

    async def timer() -> None:
        await clock.sleep_until(10.0, "t")
        fired.append(clock.monotonic())

    task = asyncio.ensure_future(timer())
    await clock.wait_for_timer("t")
    clock.advance(9.999)
    await clock.settled()
    assert fired == [] and clock.pending("t") == 1
    clock.advance(0.001)
    await clock.settled()
    assert fired == [10.0] and clock.pending("t") == 0
    assert task.done()


async def test_settled_waits_for_what_a_woken_timer_does_after_waking() -> None:
    """A timer that goes on with other awaits (the database, a lock) after its deadline: settled()
    returns only once it is done; an advance() alone would leave it mid-way."""
    clock = ManualClock()
    steps: list[str] = []
    gate = asyncio.Event()

    async def timer() -> None:
        await clock.sleep_until(1.0, "slow")
        steps.append("woke")
        await gate.wait()  # stands for work that takes a while
        steps.append("done")

    task = asyncio.ensure_future(timer())
    await clock.wait_for_timer("slow")
    clock.advance(1.0)
    settling = asyncio.ensure_future(clock.settled())
    for _ in range(20):
        await asyncio.sleep(0)
    assert steps == ["woke"] and not settling.done()
    gate.set()
    await settling
    assert steps == ["woke", "done"] and task.done()


async def test_a_loop_that_sleeps_again_counts_as_settled() -> None:
    clock = ManualClock()
    rounds: list[float] = []

    async def sweep() -> None:
        while True:
            await clock.sleep_until(clock.monotonic() + 1.0, "sweep")
            await asyncio.sleep(0)
            rounds.append(clock.monotonic())

    task = asyncio.ensure_future(sweep())
    try:
        await clock.wait_for_timer("sweep")
        clock.advance(1.0)
        await clock.settled()
        assert rounds == [1.0] and clock.pending("sweep") == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await clock.settled()  # a cancelled timer is not waited for


async def test_settled_is_bounded() -> None:
    clock = ManualClock()

    async def stuck() -> None:
        await clock.sleep_until(1.0)
        await asyncio.Event().wait()

    task = asyncio.ensure_future(stuck())
    await asyncio.sleep(0)
    clock.advance(1.0)
    with pytest.raises(AssertionError, match="still running"):
        await clock.settled(within=0.2)
    task.cancel()
