"""Baseline: a bare python-socketio relay on aiohttp, with the same events as Aurora's /chat and nothing else.

No authentication, no storage, no membership check: on connect a socket joins the rooms its
client names in the handshake auth ({"rooms": [conversation ids], "user_id", "username"});
`send_message {conversation_id, body, client_id}` takes the next in-memory seq of the
conversation, emits `new_message` to the room skipping the sender, and acks {ok: true, message}.
python-socketio and python-engineio run with their default settings (what a user gets by
following their docs), so this is the "plain python-socketio" the targets of issue 5 compare to.
`--loop uvloop` runs the same relay on uvloop, the event loop Aurora runs on by default: issue 16's
targets compare Aurora with the relay "on the same event loop".

    python bench/baseline_python_relay.py --port 3101 [--loop uvloop]

BENCH_RELAY_FAULT=drop|duplicate|gap|reorder breaks every 7th message on purpose; the suite's
own tests use it to show that the correctness checks catch each kind of fault.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
from typing import Any

import socketio
from aiohttp import web

NAMESPACE = "/chat"
FAULTS = ("drop", "duplicate", "gap", "reorder")


def _now_iso() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def build_app(fault: str = "") -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)
    seqs: dict[Any, int] = {}
    users: dict[str, tuple[Any, Any]] = {}
    next_id = [0]
    # Fault "reorder": a message waiting for the next one of its own conversation (released after
    # another conversation's message, it would arrive late but still in order: nothing to catch).
    held: dict[Any, tuple[dict[str, Any], str, str]] = {}

    @sio.on("connect", namespace=NAMESPACE)
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        auth = auth if isinstance(auth, dict) else {}
        users[sid] = (auth.get("user_id"), auth.get("username"))
        for conversation_id in auth.get("rooms") or []:
            await sio.enter_room(sid, f"conversation:{conversation_id}", namespace=NAMESPACE)

    @sio.on("disconnect", namespace=NAMESPACE)
    async def disconnect(sid: str, reason: Any = None) -> None:
        users.pop(sid, None)

    @sio.on("send_message", namespace=NAMESPACE)
    async def send_message(sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            return {"ok": False, "error": {"code": "invalid", "message": "payload must be an object"}}
        conversation_id = data.get("conversation_id")
        seq = seqs.get(conversation_id, 0) + 1
        next_id[0] += 1
        broken = bool(fault) and next_id[0] % 7 == 0
        if broken and fault == "gap":
            seq += 1
        seqs[conversation_id] = seq
        sender_id, sender_username = users.get(sid, (None, None))
        message = {
            "id": next_id[0], "conversation_id": conversation_id, "seq": seq, "kind": "text",
            "sender_id": sender_id, "sender_username": sender_username, "body": data.get("body"),
            "client_id": data.get("client_id"), "created_at": _now_iso(),
        }
        room = f"conversation:{conversation_id}"
        if broken and fault == "reorder" and conversation_id not in held:
            held[conversation_id] = (message, room, sid)
            return {"ok": True, "message": message, "duplicate": False}
        if not (broken and fault == "drop"):
            await sio.emit("new_message", message, room=room, skip_sid=sid, namespace=NAMESPACE)
        if broken and fault == "duplicate":
            await sio.emit("new_message", message, room=room, skip_sid=sid, namespace=NAMESPACE)
        if conversation_id in held:
            late, late_room, late_sid = held.pop(conversation_id)
            await sio.emit("new_message", late, room=late_room, skip_sid=late_sid, namespace=NAMESPACE)
        return {"ok": True, "message": message, "duplicate": False}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    fault = os.environ.get("BENCH_RELAY_FAULT", "")
    if fault and fault not in FAULTS:
        parser.error(f"BENCH_RELAY_FAULT must be one of {', '.join(FAULTS)}")
    if args.loop == "uvloop":  # as aurora/cli.py does for settings.event_loop = uvloop
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(build_app(fault), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
