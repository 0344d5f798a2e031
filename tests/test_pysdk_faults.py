"""The fault test of issue 12 for the Python SDK: a real `python app.py` is SIGKILLed and restarted
several times while several SDK clients send in parallel. Every send resolves, each message is stored
exactly once and in each sender's typed order, every client's messages() equals the REST history, and
no client announced a message twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.clients import Api
from tests.support.processes import AuroraProcess
from tests.support.sdk import Recorder, SdkFactory, eventually, rest_history, state_of

CLIENTS = 4
SENDS_PER_CLIENT = 40
KILLS = 3


async def test_sigkill_and_restart_while_clients_send(tmp_path: Path, db_url: str) -> None:
    server = AuroraProcess(db_url, tmp_path / "aurora.log")
    await server.start()
    api = Api(server.url)
    sdk = SdkFactory(server.url)
    try:
        await _run(server, api, sdk)
    except BaseException:
        print(server.log_text()[-4000:])
        raise
    finally:
        await sdk.close_all()
        await api.close()
        server.stop()


async def _run(server: AuroraProcess, api: Api, sdk: SdkFactory) -> None:
    accounts = [await api.register() for _ in range(CLIENTS)]
    group = (await api.conversation(accounts[0], accounts[1:], title="faults"))["id"]
    direct = (await api.conversation(accounts[0], [accounts[1]]))["id"]
    clients = [await sdk.connected(a, reconnection_delay_s=0.1, reconnection_delay_max_s=0.5) for a in accounts]
    recorders = [Recorder(c) for c in clients]

    # What each client types, in order: alternating the group and (for the first two) their DM.
    typed: list[list[tuple[int, str]]] = []
    for index in range(CLIENTS):
        plan = []
        for n in range(SENDS_PER_CLIENT):
            conversation = direct if index < 2 and n % 2 else group
            plan.append((conversation, f"c{index}-{n}"))
        typed.append(plan)
    total = CLIENTS * SENDS_PER_CLIENT

    # Kills fire from the send callbacks, so they land while sends are in flight.
    resolved = 0
    kill_at = [total * 1 // 5]
    killed = asyncio.Event()

    kills_at: list[int] = []

    def maybe_kill() -> None:
        if kill_at and resolved >= kill_at[0] and server.process is not None and server.process.poll() is None:
            kill_at.clear()
            kills_at.append(resolved)
            os.kill(server.process.pid, signal.SIGKILL)
            killed.set()

    def on_resolved(_: asyncio.Future[Any]) -> None:
        nonlocal resolved
        resolved += 1
        maybe_kill()

    futures = []
    for index, client in enumerate(clients):
        for conversation, body in typed[index]:
            future = asyncio.ensure_future(client.send(conversation, body))
            future.add_done_callback(on_resolved)
            futures.append(future)

    restarts = 0
    for kill in range(KILLS):
        await asyncio.wait_for(killed.wait(), 60)
        killed.clear()
        assert resolved < total, "every send had resolved before the kill"
        await asyncio.to_thread(server.process.wait, 10)
        await eventually(lambda: all(not c.connected for c in clients), what="every client noticed the kill")
        assert all(c.state["state"] == "reconnecting" for c in clients), [c.state for c in clients]
        await server.start()
        restarts += 1
        if kill + 1 < KILLS:
            # Arm the next kill a little ahead of where the sends are now.
            kill_at.append(min(max(resolved + 15, total * (kill + 2) // (KILLS + 2)), total - 5))
            maybe_kill()

    results = await asyncio.wait_for(asyncio.gather(*futures), 90)
    assert restarts == KILLS and len(kills_at) == KILLS and kills_at[-1] < total, kills_at
    print(f"killed after {kills_at} of {total} sends had resolved")
    assert all(isinstance(m["seq"], int) and m["seq"] > 0 for m in results)

    for conversation, members in ((group, clients), (direct, clients[:2])):
        history = await rest_history(api, accounts[0], conversation)
        assert [m["seq"] for m in history] == list(range(1, len(history) + 1))  # gapless
        bodies = [m["body"] for m in history]
        wanted = [body for plan in typed for c, body in plan if c == conversation]
        duplicates = [body for body, count in Counter(bodies).items() if count > 1]
        assert not duplicates, f"stored more than once: {duplicates}"
        assert sorted(bodies) == sorted(wanted)
        for index in range(CLIENTS):  # each sender's messages in the order they were typed
            mine = [b for b in bodies if b.startswith(f"c{index}-")]
            assert mine == [body for c, body in typed[index] if c == conversation]
        for client in members:
            await eventually(lambda client=client, history=history, cid=conversation: state_of(client.messages(cid))
                             == state_of(history), within=20, what=f"client {client.user_id} equals REST history")

    for client, recorder in zip(clients, recorders, strict=True):
        assert client.pending() == []
        states = [(e["state"], e["reason"]) for e in recorder.named("state")]
        # A kill may come before a client finished catching up after the last one, hence "at most".
        assert 1 <= [s for s, _ in states].count("reconnecting") <= KILLS, states
        assert states[-1] == ("connected", "caught_up"), states
        announced = recorder.new_message_ids()
        seen_twice = [i for i, count in Counter(announced).items() if count > 1]
        assert not seen_twice, f"client {client.user_id} announced messages twice: {seen_twice}"
        in_store = {m["id"] for cid in (group, direct) for m in client.messages(cid)}
        await eventually(lambda recorder=recorder, in_store=in_store: set(recorder.new_message_ids()) == in_store,
                         what="every stored message was announced")
