"""A lone message on PostgreSQL in one statement and one round trip (issue 16, target 1).

At everyday load the writer's batches hold one message, and the general path (append_entries_txn)
costs a round trip per check: BEGIN, membership, duplicate, seq, INSERT, the sender's pointers, the
sender's name, COMMIT. For the common case (a text message: no reply, no attachments, not written by
the server) this data-modifying CTE does all of it in one statement, which outside a transaction
block commits on its own (it runs on asyncpg, on the event loop: see storage/async_postgres.py):

- the conversation's row is updated (last_seq + 1, last_activity_at) only if the sender is a member
  and the client_id is not stored yet; the UPDATE takes the row lock that orders seqs across
  processes, exactly like the general path (same lock order: conversation, message, membership);
- the INSERT takes the seq that UPDATE returned; the sender's pointers move to it;
- the sender's username comes back with the row.

When it inserts nothing (not a member, a retry of a stored client_id, no such conversation), it has
changed nothing, and the caller runs the general path, which gives the precise answer. A duplicate
that another process commits at the same instant fails the unique index: an exception, and the
caller's general path answers it the same way.
"""

from __future__ import annotations

import json
import logging

import asyncpg

from aurora.storage.async_postgres import AsyncPostgres, NotSent
from aurora.storage.messages import _COLUMNS, AppendResult, NewMessage, _record
from aurora.storage.models import utcnow
from aurora.storage.records import EntryRow

log = logging.getLogger(__name__)

_LONE_SQL = f"""
WITH c AS (
    UPDATE "conversation" SET last_seq = last_seq + 1, last_activity_at = %(now)s
    WHERE id = %(cid)s
      AND EXISTS (SELECT 1 FROM "membership" WHERE conversation_id = %(cid)s AND user_id = %(uid)s)
      AND NOT EXISTS (SELECT 1 FROM "message"
                      WHERE conversation_id = %(cid)s AND sender_id = %(uid)s AND client_id = %(client)s)
    RETURNING last_seq, kind
), ins AS (
    INSERT INTO "message" ({", ".join(_COLUMNS)})
    SELECT %(cid)s, c.last_seq, %(kind)s, %(uid)s, %(body)s, %(client)s, %(now)s, %(extra)s,
           NULL, NULL, NULL, NULL
    FROM c
    RETURNING id, seq
), pointers AS (
    UPDATE "membership" SET last_read_seq = ins.seq, last_delivered_seq = ins.seq
    FROM ins WHERE conversation_id = %(cid)s AND user_id = %(uid)s
)
SELECT ins.id, ins.seq, c.kind, (SELECT username FROM "user" WHERE id = %(uid)s) FROM ins, c
"""


# The statement with positional, typed parameters (asyncpg's form; it prepares it once per connection).
_PARAMS = ("cid", "uid", "client", "kind", "body", "now", "extra")
_PARAM_TYPES = ("bigint", "bigint", "varchar", "varchar", "text", "timestamp", "text")


def _positional(sql: str) -> str:
    for number, (name, kind) in enumerate(zip(_PARAMS, _PARAM_TYPES, strict=True), start=1):
        sql = sql.replace(f"%({name})s", f"${number}::{kind}")
    return sql


LONE_SQL = _positional(_LONE_SQL)


def is_lone_candidate(item: NewMessage) -> bool:
    """What the one statement can store: a plain message a member sends."""
    return (item.kind in ("text", "call") and item.reply_to_seq is None and not item.attachments
            and not item.system)


async def append_lone_message(postgres: AsyncPostgres, item: NewMessage) -> AppendResult | None:
    """Store one message in one autocommitted statement; None when it stored nothing (see module doc).

    PostgreSQL only, on the event loop (storage/async_postgres.py)."""
    now = utcnow()
    extra = json.dumps(item.extra) if item.extra else None
    row = await postgres.fetchrow(LONE_SQL, item.conversation_id, item.sender_id, item.client_id, item.kind,
                                  item.body, now, extra)
    if row is None:
        return None
    message_id, seq, conversation_kind, username = row
    entry = EntryRow(item.conversation_id, seq, item.kind, item.sender_id, item.body, item.client_id, now,
                     extra, id=message_id)
    return AppendResult(_record(entry, {item.sender_id: username}, {}), duplicate=False,
                        conversation_kind=conversation_kind)


async def try_lone_message(postgres: AsyncPostgres, item: NewMessage) -> tuple[AppendResult | None, bool]:
    """append_lone_message, never raising: (its result, or None for the general path to answer;
    whether the statement may have committed without an answer reaching us)."""
    try:
        return await append_lone_message(postgres, item), False
    except asyncpg.PostgresError as exc:
        # PostgreSQL refused it (e.g. another process stored the same client_id first): nothing committed.
        log.debug("the one-statement path failed (%s); taking the general one", exc.__class__.__name__)
        return None, False
    except NotSent as exc:
        # No connection could be opened: nothing was sent, nothing committed.
        log.info("the one-statement path had no connection (%s); taking the general one", exc.__cause__)
        return None, False
    except Exception as exc:
        # The connection broke mid-statement: the outcome is unknown.
        log.info("the one-statement path got no answer (%s); taking the general one", exc.__class__.__name__)
        return None, True
