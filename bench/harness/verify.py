"""After a run on Aurora: every acked message is stored exactly once, and nothing else is.

Read straight from the database the server used (sqlite3 read-only, or psycopg2 on the run's
schema), not through Aurora, so a bug in Aurora's read path cannot hide one in its write path.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any
from urllib.parse import urlparse

MAX_ERRORS = 50


def body_for(client_id: str, size: int) -> str:
    """The body the load generator sends with a client_id (bench/loadgen.mjs bodyFor)."""
    head = f"m {client_id} "
    return head if len(head) >= size else head + "x" * (size - len(head))


def _rows(database_url: str, conversation_ids: list[int]) -> tuple[list[tuple[Any, ...]], dict[int, int]]:
    messages_sql = (
        "SELECT conversation_id, seq, sender_id, client_id, body, kind FROM message "
        "WHERE conversation_id IN ({}) ORDER BY conversation_id, seq"
    )
    last_seq_sql = "SELECT id, last_seq FROM conversation WHERE id IN ({})"
    if database_url.startswith("sqlite"):
        path = "/" + urlparse(database_url).path.lstrip("/")  # sqlite:////abs/path -> /abs/path
        conn: Any = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        marks = ",".join("?" * len(conversation_ids))
    else:
        import psycopg2

        conn = psycopg2.connect(database_url, connect_timeout=5)
        marks = ",".join(["%s"] * len(conversation_ids))
    try:
        cur = conn.cursor()
        cur.execute(messages_sql.format(marks), conversation_ids)
        rows = [tuple(r) for r in cur.fetchall()]
        cur.execute(last_seq_sql.format(marks), conversation_ids)
        last = {int(r[0]): int(r[1]) for r in cur.fetchall()}
        return rows, last
    finally:
        conn.close()


def verify_stored(database_url: str, conversations: list[dict[str, Any]], acked: dict[str, list[list[Any]]],
                  body_bytes: int) -> tuple[list[str], int]:
    """Errors (at most MAX_ERRORS shown) and the number of stored messages checked."""
    errors: list[str] = []
    count = [0]

    def fail(message: str) -> None:
        count[0] += 1
        if len(errors) < MAX_ERRORS:
            errors.append(message)

    ids = [int(c["id"]) for c in conversations]
    if not ids:
        return [], 0
    rows, last_seqs = _rows(database_url, ids)
    stored: dict[int, list[tuple[int, int, str | None, str, str]]] = defaultdict(list)
    for conversation_id, seq, sender_id, client_id, body, kind in rows:
        stored[int(conversation_id)].append((int(seq), int(sender_id), client_id, body, kind))
    for conversation in conversations:
        cid = int(conversation["id"])
        start = int(conversation.get("start_seq", 0))
        expected = {int(seq): client_id for seq, client_id in acked.get(str(cid), [])}
        messages = [m for m in stored[cid] if m[0] > start]
        seen_seqs: set[int] = set()
        seen_clients: set[str | None] = set()
        for seq, sender_id, client_id, body, kind in messages:
            if seq in seen_seqs:
                fail(f"conversation {cid}: seq {seq} stored twice")
            seen_seqs.add(seq)
            if client_id is not None and client_id in seen_clients:
                fail(f"conversation {cid}: client_id {client_id} stored twice")
            seen_clients.add(client_id)
            if kind not in ("text", "call"):  # a change entry (S6): acked, by the sender; no body to check
                client_id = None
            if seq not in expected:
                fail(f"conversation {cid}: seq {seq} ({client_id}) stored but never acked")
                continue
            if expected[seq] != client_id:
                fail(f"conversation {cid}: seq {seq} stored as {client_id}, acked as {expected[seq]}")
            if sender_id != int(conversation["sender_user_id"]):
                fail(f"conversation {cid}: seq {seq} stored with sender {sender_id}")
            if client_id is not None and body != body_for(client_id, body_bytes):
                fail(f"conversation {cid}: seq {seq} stored with another body")
        for seq in sorted(set(expected) - seen_seqs):
            fail(f"conversation {cid}: seq {seq} ({expected[seq]}) acked but not stored")
        if seen_seqs and sorted(seen_seqs) != list(range(start + 1, start + len(seen_seqs) + 1)):
            fail(f"conversation {cid}: stored seqs are not {start + 1}..{start + len(seen_seqs)} without gaps")
        top = max(seen_seqs, default=start)
        if last_seqs.get(cid) != top:
            fail(f"conversation {cid}: last_seq is {last_seqs.get(cid)}, highest stored seq is {top}")
    return errors, len(rows)
