"""`python app.py trace CONVERSATION_ID SEQ`: ask the running server why each member did or did not get
an entry. The journals live in the server processes' memory, so this asks the server (the admin route)
with a token it signs itself for an admin account (the first admin, or --as USER)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from aurora.errors import AuroraError


def default_url(port: int) -> str:
    return f"http://127.0.0.1:{port or 3001}"


async def fetch_trace(url: str, token: str, conversation_id: int, seq: int) -> dict[str, Any]:
    path = f"{url.rstrip('/')}/api/admin/messages/{conversation_id}/{seq}/trace"
    timeout = aiohttp.ClientTimeout(total=15)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(path, headers={"Authorization": f"Bearer {token}"}) as response:
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise AuroraError("unavailable", f"cannot reach {url}: {exc.__class__.__name__}") from None
    if response.status != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise AuroraError(error.get("code", "internal"), error.get("message", f"HTTP {response.status}"))
    return body["trace"]


def render(trace: dict[str, Any]) -> str:
    lines = [f"conversation {trace['conversation_id']} seq {trace['seq']} ({trace['kind']}) by "
             f"{trace['sender']['username']}, stored at {trace['stored_at']}"
             + (f" by {', '.join(s['process'] for s in trace['stored_by'])}" if trace["stored_by"] else
                " (storing process no longer in the journals)")]
    if not trace["complete"]:
        lines.append("note: incomplete: a process did not answer or its journal does not reach back that far")
    for member in trace["members"]:
        lines.append(f"- {member['username']}: {member['verdict']}")
        for s in member["sockets_at_send"]:
            lines.append(f"    at send: {s['device']} on {s['process']} via {s['transport']}"
                         f" {'reached ' + s['reached_at'] if s['reached'] else 'NOT reached'}")
        for s in member["sockets_now"]:
            lines.append(f"    now: {s['device']} on {s['process']} via {s['transport']}")
        lines.append(f"    delivered {member['delivered_seq']}, read {member['read_seq']}")
    return "\n".join(lines)


def run(url: str, token: str, conversation_id: int, seq: int, as_json: bool) -> str:
    trace = asyncio.run(fetch_trace(url, token, conversation_id, seq))
    return json.dumps(trace, indent=2) if as_json else render(trace)
