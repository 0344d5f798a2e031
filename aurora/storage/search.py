"""Full-text search over messages' current text, with each database's own engine.

PostgreSQL: a GIN index on to_tsvector('aurora_search', body) for text messages, queried through
websearch_to_tsquery. 'aurora_search' is a copy of the 'simple' configuration (lower-casing, no
language-specific stemming or stop words: Aurora's users write in every language, and an English
stemmer would mangle the rest) with the unaccent dictionary in front when the extension exists.
SQLite: an FTS5 external-content table over message.body (unicode61, diacritics removed), kept in
sync by triggers, so an edit re-indexes the new text and a delete (body erased) drops it.

The highlight is made here, not by ts_headline or snippet(): the same words marked the same way on
both engines (ts_headline also drops anything that looks like an HTML tag from the text), and the
excerpt is HTML-escaped before the marks go in, so it is safe to insert as HTML.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import peewee as pw

from aurora.storage.conversations import require_member
from aurora.storage.models import Message, User
from aurora.storage.records import for_viewer

log = logging.getLogger(__name__)

CONFIG = "aurora_search"
HIGHLIGHT_CHARS = 200
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class SearchQuery:
    """A checked query, in each engine's syntax (built by aurora.services.search_query)."""

    websearch: str  # for websearch_to_tsquery
    fts5: str  # for FTS5 MATCH
    words: frozenset[str]  # the words looked for, folded (see fold): what the highlight marks


# -- schema (migration 4) ------------------------------------------------
def create_postgresql_search(db: pw.Database) -> None:
    schema = _unaccent_schema(db)
    exists = db.execute_sql(
        "SELECT 1 FROM pg_ts_config WHERE cfgname = %s AND cfgnamespace = current_schema()::regnamespace",
        (CONFIG,),
    ).fetchone()
    if not exists:
        db.execute_sql(f"CREATE TEXT SEARCH CONFIGURATION {CONFIG} (COPY = pg_catalog.simple)")
        if schema is not None:
            db.execute_sql(
                f"ALTER TEXT SEARCH CONFIGURATION {CONFIG} ALTER MAPPING FOR "
                f'asciiword, asciihword, hword_asciipart, word, hword, hword_part WITH "{schema}".unaccent, simple'
            )
        else:
            log.warning("PostgreSQL extension unaccent is not available: search is accent-sensitive")
    db.execute_sql(
        f"CREATE INDEX IF NOT EXISTS message_search ON message USING GIN (to_tsvector('{CONFIG}', body)) "
        "WHERE kind = 'text'"
    )


def _unaccent_schema(db: pw.Database) -> str | None:
    """The schema of the unaccent extension, created in public if missing and allowed; None if not."""
    def installed() -> str | None:
        row = db.execute_sql(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'unaccent'"
        ).fetchone()
        return row[0] if row else None

    schema = installed()
    if schema is None:
        try:
            with db.atomic():  # a savepoint: a refusal must not abort the migration's transaction
                db.execute_sql("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public")
        except pw.DatabaseError as exc:
            log.warning("could not create the unaccent extension (%s)", str(exc).strip().splitlines()[0])
            return None
        schema = installed()
    return schema


def create_sqlite_search(db: pw.Database) -> None:
    db.execute_sql(
        "CREATE VIRTUAL TABLE IF NOT EXISTS message_fts USING fts5(body, content='message', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
    )
    # Only text messages are indexed; "" (deleted, no text) holds no words. The 'delete' command of an
    # external-content table must be given exactly the values that were indexed.
    db.execute_sql(
        "CREATE TRIGGER IF NOT EXISTS message_fts_insert AFTER INSERT ON message "
        "WHEN new.kind = 'text' AND new.body != '' BEGIN "
        "INSERT INTO message_fts(rowid, body) VALUES (new.id, new.body); END"
    )
    db.execute_sql(
        "CREATE TRIGGER IF NOT EXISTS message_fts_delete AFTER DELETE ON message "
        "WHEN old.kind = 'text' AND old.body != '' BEGIN "
        "INSERT INTO message_fts(message_fts, rowid, body) VALUES ('delete', old.id, old.body); END"
    )
    db.execute_sql(
        "CREATE TRIGGER IF NOT EXISTS message_fts_update AFTER UPDATE OF body ON message "
        "WHEN old.kind = 'text' AND old.body != new.body BEGIN "
        "INSERT INTO message_fts(message_fts, rowid, body) SELECT 'delete', old.id, old.body WHERE old.body != ''; "
        "INSERT INTO message_fts(rowid, body) SELECT new.id, new.body WHERE new.body != ''; END"
    )
    # Backfill what is already stored (idempotent: 'delete-all' empties the index, never the messages).
    db.execute_sql("INSERT INTO message_fts(message_fts) VALUES ('delete-all')")
    db.execute_sql(
        "INSERT INTO message_fts(rowid, body) SELECT id, body FROM message WHERE kind = 'text' AND body != ''"
    )


# -- queries -------------------------------------------------------------
def search_messages(user_id: int, query: SearchQuery, conversation_id: int | None, limit: int,
                    before: int | None) -> tuple[list[dict[str, Any]], int | None]:
    """Matches among text messages of the user's conversations, newest first; (results, next)."""
    if conversation_id is not None:
        require_member(conversation_id, user_id)
    db = Message._meta.database
    engine = db.obj if isinstance(db, pw.DatabaseProxy) else db
    p = db.param
    filters, params = [], []
    if conversation_id is not None:
        filters.append(f"m.conversation_id = {p}")
        params.append(conversation_id)
    if before is not None:
        filters.append(f"m.id < {p}")
        params.append(before)
    extra = "".join(f" AND {f}" for f in filters)
    if isinstance(engine, pw.PostgresqlDatabase):
        sql = (
            f"SELECT m.id FROM message m "
            f"JOIN membership ms ON ms.conversation_id = m.conversation_id AND ms.user_id = {p} "
            f"WHERE to_tsvector('{CONFIG}', m.body) @@ websearch_to_tsquery('{CONFIG}', {p}) "
            f"AND m.kind = 'text' AND m.deleted IS NOT TRUE{extra} ORDER BY m.id DESC LIMIT {p}"
        )
        rows = db.execute_sql(sql, (user_id, query.websearch, *params, limit + 1)).fetchall()
    else:
        sql = (
            "SELECT m.id FROM message_fts JOIN message m ON m.id = message_fts.rowid "
            f"JOIN membership ms ON ms.conversation_id = m.conversation_id AND ms.user_id = {p} "
            f"WHERE message_fts MATCH {p} AND m.kind = 'text' AND m.deleted IS NOT 1{extra} "
            f"ORDER BY m.id DESC LIMIT {p}"
        )
        rows = db.execute_sql(sql, (user_id, query.fts5, *params, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return [], None
    from aurora.storage.messages import records_of  # messages imports conversations, which this needs

    found = (
        Message.select(Message, User.username)
        .join(User, on=(Message.sender == User.id))
        .where(Message.id.in_([r[0] for r in rows]))
        .objects()
    )
    by_id = {record["id"]: record for record in records_of(list(found))}
    results = [
        {"message": for_viewer(by_id[message_id], user_id), "conversation_id": by_id[message_id]["conversation_id"],
         "highlight": highlight(by_id[message_id]["body"] or "", query.words)}
        for (message_id,) in rows if message_id in by_id
    ]
    return results, (rows[-1][0] if more else None)


def fold(word: str) -> str:
    """A word as the engines compare it: case-folded, accents removed."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def highlight(body: str, words: frozenset[str]) -> str:
    """An excerpt of body around the first match, HTML-escaped, matched words in <mark>...</mark>."""
    matches = [m for m in _WORD.finditer(body) if fold(m.group()) in words]
    start = 0
    if len(body) > HIGHLIGHT_CHARS and matches:
        start = max(0, matches[0].start() - HIGHLIGHT_CHARS // 4)
    end = min(len(body), start + HIGHLIGHT_CHARS)
    out, at = [], start
    for m in matches:
        if m.start() < start or m.end() > end:
            continue
        out.append(html.escape(body[at:m.start()], quote=False))
        out.append("<mark>" + html.escape(m.group(), quote=False) + "</mark>")
        at = m.end()
    out.append(html.escape(body[at:end], quote=False))
    return ("…" if start > 0 else "") + "".join(out) + ("…" if end < len(body) else "")
