"""clients/python/README.md's echo bot is the file examples/echo_bot.py, and that file works: run as its
own process against the real server, it answers a message."""

from __future__ import annotations

import asyncio
import sys

from aurora.settings import PROJECT_ROOT
from tests.support.clients import Api, unique_name
from tests.support.foundation import clean_env
from tests.support.sdk import eventually, rest_history

SDK = PROJECT_ROOT / "clients" / "python"
ECHO_BOT = SDK / "examples" / "echo_bot.py"


def test_the_readme_shows_the_tested_echo_bot() -> None:
    readme = (SDK / "README.md").read_text()
    code = ECHO_BOT.read_text()
    assert code.strip() in readme, "clients/python/README.md must quote examples/echo_bot.py verbatim"


async def test_the_echo_bot_answers(api: Api, server) -> None:
    bot_name = unique_name("bot")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ECHO_BOT), env=clean_env({"AURORA_URL": server.url, "BOT_USERNAME": bot_name}),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"echo bot ready as " + bot_name.encode() in ready, ready
        alice = await api.register()
        _, found = await api.request("GET", f"/api/users?q={bot_name}", token=alice.token)
        bot_id = next(u["id"] for u in found["users"] if u["username"] == bot_name)
        status, created = await api.request("POST", "/api/conversations", token=alice.token,
                                            json={"user_ids": [bot_id]})
        assert status == 201, created
        cid = created["conversation"]["id"]
        status, _ = await api.send(alice, cid, "ping")
        assert status == 201

        async def answered() -> bool:
            return [m["body"] for m in await rest_history(api, alice, cid)] == ["ping", "echo: ping"]
        await eventually(answered, within=20, what="the bot answered")
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)
