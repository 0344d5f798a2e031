"""The delivery trace: why did (or didn't) each member get the entry at (conversation, seq)?

Facts come from the database (the entry, when it was stored, the members' delivered/read pointers)
and from every process's delivery journal (sockets open at send time and now, which of them the live
emit reached, history served since). The verdict is one line per member, built only from those facts;
what fell off the journals' rings is said to be unknown.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aurora.errors import not_found
from aurora.services.ops.trace_exchange import LocalTraceExchange
from aurora.services.validation import conversation_id_of, seq_of
from aurora.storage import ops as ops_store
from aurora.storage.database import Storage

# Sockets that closed up to this long before the entry was stored are still shown (clock slack).
SLACK_S = 1.0


def _epoch(naive_utc: dt.datetime) -> float:
    return naive_utc.replace(tzinfo=dt.UTC).timestamp()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch_iso(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S")


def _devices(sockets: list[dict[str, Any]]) -> str:
    names = [s["device"] for s in sockets]
    return names[0] if len(names) == 1 else f"{len(names)} devices ({', '.join(names)})"


class Tracer:
    def __init__(self, storage: Storage, exchange: LocalTraceExchange) -> None:
        self._storage = storage
        self.exchange = exchange

    async def trace(self, conversation_id: Any, seq: Any) -> dict[str, Any]:
        cid, number = conversation_id_of(conversation_id), seq_of(seq, "seq")
        entry = await self._storage.read(ops_store.entry_facts, cid, number)
        if entry is None:
            raise not_found("message")
        members = await self._storage.read(ops_store.member_pointers, cid)
        created = _epoch(entry["created_at"])
        gathered = await self.exchange.gather(cid, number, [m["user_id"] for m in members], created - SLACK_S)
        answers = gathered["answers"]
        stored_by = [(a["process"], at) for a in answers for at in a["stored"]]
        emits = [(a["process"], e) for a in answers for e in a["emits"]]
        # The moment it went out: the storing process's record (just before its emit), else the row's time.
        send_time = min((at for _, at in stored_by), default=created)
        reached_at: dict[str, tuple[float, str]] = {}
        for process, emit in emits:
            for sid in emit["sids"]:
                reached_at.setdefault(sid, (emit["at"], process))
        covers_from = max((a["covers_from"] for a in answers), default=send_time)
        incomplete = covers_from > send_time or gathered["missing"] not in (0,)
        return {
            "conversation_id": cid, "seq": number, "kind": entry["kind"],
            "sender": {"id": entry["sender_id"], "username": entry["sender_username"]},
            "stored_at": iso(created),
            "stored_by": [{"process": p, "at": iso(at)} for p, at in stored_by],
            "emitted": [{"process": p, "at": iso(e["at"]), "sockets": len(e["sids"])} for p, e in emits],
            "processes": [{"process": a["process"], "covers_from": iso(a["covers_from"])} for a in answers],
            "missing_processes": gathered["missing"],
            "complete": not incomplete,
            "members": [self._member(m, entry, answers, send_time, reached_at, incomplete, covers_from)
                        for m in members],
        }

    def _member(self, member: dict[str, Any], entry: dict[str, Any], answers: list[dict[str, Any]],
                send_time: float, reached_at: dict[str, tuple[float, str]], incomplete: bool,
                covers_from: float) -> dict[str, Any]:
        uid, name = member["user_id"], member["username"]
        sessions = [s for a in answers for s in a["sessions"] if s["user_id"] == uid]
        at_send, now, reach_times = [], [], []
        for s in sessions:
            shown = {"sid": s["sid"], "device": s["device"], "process": s["process"], "transport": s["transport"],
                     "opened_at": iso(s["opened_at"]), "closed_at": iso(s["closed_at"])}
            was_open = s["opened_at"] <= send_time and (s["closed_at"] is None or s["closed_at"] >= send_time)
            if was_open or s["sid"] in reached_at:
                hit = reached_at.get(s["sid"])
                if hit:
                    reach_times.append(hit[0])
                at_send.append({**shown, "reached": hit is not None, "reached_at": iso(hit[0]) if hit else None,
                                "close_reason": s["reason"]})
            if s["closed_at"] is None:
                now.append(shown)
        fetches = sorted((f for a in answers for f in a["fetches"] if f["user_id"] == uid), key=lambda f: f["at"])
        fetched = [{"how": f["how"], "device": f["device"], "at": iso(f["at"]), "sid": f["sid"]} for f in fetches]
        facts = {"user_id": uid, "username": name, "delivered_seq": member["delivered_seq"],
                 "read_seq": member["read_seq"], "joined_at": iso(_epoch(member["joined_at"])),
                 "sockets_at_send": at_send, "sockets_now": now, "fetched": fetched}
        facts["verdict"] = _verdict(facts, entry, send_time, min(reach_times, default=None), fetches,
                                    incomplete, covers_from)
        return facts


def _verdict(facts: dict[str, Any], entry: dict[str, Any], send_time: float, first_reach: float | None,
             fetches: list[dict[str, Any]], incomplete: bool, covers_from: float) -> str:
    name, seq = facts["username"], entry["seq"]
    if _epoch_iso(facts["joined_at"]) > send_time + SLACK_S:
        return f"{name} joined after it was sent; history shows it to them"
    parts: list[str] = []
    if facts["user_id"] == entry["sender_id"]:
        parts.append(f"{name} sent it at {clock(send_time)}")
    else:
        reached = [s for s in facts["sockets_at_send"] if s["reached"]]
        missed = [s for s in facts["sockets_at_send"] if not s["reached"]]
        if reached and first_reach is not None:
            parts.append(f"{name}'s {_devices(reached)} got it live at {clock(first_reach)}")
        if missed:
            parts.append(f"{name}'s {_devices(missed)} was connected at {clock(send_time)} but the live emit did "
                         "not reach it (the socket had left the conversation's room or was the sending socket)")
        if not reached and not missed:
            if incomplete and covers_from > send_time:
                parts.append(f"unknown whether {name} had a device connected at {clock(send_time)} "
                             f"(the delivery journals start at {clock(covers_from)})")
            else:
                parts.append(f"{name} had no connected device at {clock(send_time)}")
        if not reached:
            if fetches:
                first_fetch = fetches[0]
                verb = "synced" if first_fetch["how"] == "sync" else "loaded"
                parts.append(f"{name}'s {first_fetch['device']} {verb} it at {clock(first_fetch['at'])}")
            elif facts["delivered_seq"] >= seq:
                parts.append(f"their delivered pointer ({facts['delivered_seq']}) covers it, fetched on a path "
                             "the journals no longer hold")
            else:
                parts.append(f"not fetched yet (delivered pointer at {facts['delivered_seq']})")
        if facts["read_seq"] >= seq:
            parts.append(f"read (read pointer at {facts['read_seq']})")
    return "; ".join(parts)
