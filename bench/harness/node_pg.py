"""The Node + PostgreSQL baseline's tables and conversations, made before it starts (in its own schema).

The columns are the ones bench/harness/verify.py reads, so the baseline is checked like Aurora: every
acked message stored once, seqs gapless, `last_seq` equal to the highest stored seq.
"""

from __future__ import annotations

from typing import Any

SCHEMA_SQL = """
CREATE TABLE conversation (id BIGINT PRIMARY KEY, last_seq BIGINT NOT NULL DEFAULT 0);
CREATE TABLE message (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversation (id),
    seq BIGINT NOT NULL,
    sender_id BIGINT,
    client_id TEXT,
    body TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (conversation_id, seq)
);
"""


def prepare(database_url: str, conversations: list[dict[str, Any]]) -> None:
    import psycopg2

    conn = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(SCHEMA_SQL)
            cur.executemany("INSERT INTO conversation (id) VALUES (%s)", [(int(c["id"]),) for c in conversations])
    finally:
        conn.close()
