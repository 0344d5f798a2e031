"""Echo bot: answers every text message sent to it with "echo: <text>", as a reply.

    AURORA_URL=http://localhost:3001 python echo_bot.py
"""

import asyncio
import os

from aurora_client import AuroraClient, AuroraError, login, register

URL = os.environ.get("AURORA_URL", "http://localhost:3001")
USERNAME = os.environ.get("BOT_USERNAME", "echo-bot")
PASSWORD = os.environ.get("BOT_PASSWORD", "echo-bot-password")


async def main() -> None:
    try:
        auth = await login(URL, USERNAME, PASSWORD)
    except AuroraError as error:
        if error.code != "invalid_credentials":
            raise
        auth = await register(URL, USERNAME, PASSWORD, display_name="Echo bot")

    async with AuroraClient(URL, auth["token"]) as client:  # connects and catches up
        print(f"echo bot ready as {client.user['username']} (id {client.user_id})", flush=True)
        async for event in client.events("message"):
            message = event.data
            if event.change == "new" and message["kind"] == "text" and message["sender_id"] != client.user_id:
                await client.send(message["conversation_id"], f"echo: {message['body']}", reply_to=message["seq"])


if __name__ == "__main__":
    asyncio.run(main())
