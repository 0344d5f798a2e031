"""Migration 4 on a database made by the version-3 schema, with data in it: rows intact, the new
fields at their defaults, edits/reactions/search working on the old messages; and migration 9's
lighter indexes, on an upgraded database and a new one."""

from __future__ import annotations

from pathlib import Path

from aurora.storage import migrations
from aurora.storage.database import Storage, open_database
from aurora.storage.models import CALL_MODELS, Conversation, Membership, SchemaVersion, User
from tests.conftest import _api_of, _running, make_settings
from tests.support.clients import DEFAULT_PASSWORD, SocketFactory, acked
from tests.support.foundation import raw_query

# The message table exactly as schema versions 1-3 made it (the other tables did not change in 4).
_V3_MESSAGE = {
    "sqlite": 'CREATE TABLE "message" ("id" INTEGER NOT NULL PRIMARY KEY, "conversation_id" INTEGER NOT NULL, '
              '"seq" INTEGER NOT NULL, "kind" VARCHAR(8) NOT NULL, "sender_id" INTEGER NOT NULL, '
              '"body" TEXT NOT NULL, "client_id" VARCHAR(64), "created_at" DATETIME NOT NULL, "extra" TEXT, '
              'FOREIGN KEY ("conversation_id") REFERENCES "conversation" ("id") ON DELETE CASCADE, '
              'FOREIGN KEY ("sender_id") REFERENCES "user" ("id"))',
    "postgresql": 'CREATE TABLE "message" ("id" SERIAL NOT NULL PRIMARY KEY, "conversation_id" INTEGER NOT NULL, '
                  '"seq" BIGINT NOT NULL, "kind" VARCHAR(8) NOT NULL, "sender_id" INTEGER NOT NULL, '
                  '"body" TEXT NOT NULL, "client_id" VARCHAR(64), "created_at" TIMESTAMP NOT NULL, "extra" TEXT, '
                  'FOREIGN KEY ("conversation_id") REFERENCES "conversation" ("id") ON DELETE CASCADE, '
                  'FOREIGN KEY ("sender_id") REFERENCES "user" ("id"))',
}
_V3_MESSAGE_INDEXES = [
    'CREATE INDEX "message_conversation_id" ON "message" ("conversation_id")',
    'CREATE INDEX "message_sender_id" ON "message" ("sender_id")',
    'CREATE UNIQUE INDEX "message_conversation_id_seq" ON "message" ("conversation_id", "seq")',
    'CREATE UNIQUE INDEX "message_conversation_id_sender_id_client_id" ON "message" '
    '("conversation_id", "sender_id", "client_id")',
]


def _make_v3_database(db_url: str, tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    storage = Storage(open_database(db_url, sqlite_synchronous="NORMAL", base_dir=tmp_path), threads=1)
    dialect = "sqlite" if storage.is_sqlite else "postgresql"
    password_hash = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(DEFAULT_PASSWORD)

    def build() -> None:
        db = storage.db
        db.create_tables([User, Conversation, Membership, *CALL_MODELS, SchemaVersion])
        db.execute_sql(_V3_MESSAGE[dialect])
        for statement in _V3_MESSAGE_INDEXES:
            db.execute_sql(statement)
        for version in (1, 2, 3):
            SchemaVersion.create(version=version)
        alice, bob = (User.create(username=name, username_key=name, display_name=name.title(),
                                  password_hash=password_hash) for name in ("alice_v3", "bob_v3"))
        conversation = Conversation.create(kind="direct", direct_key=f"{alice.id}:{bob.id}", last_seq=3)
        Membership.create(user=alice, conversation=conversation, last_read_seq=2, last_delivered_seq=2)
        Membership.create(user=bob, conversation=conversation, last_read_seq=0, last_delivered_seq=0)
        p = db.param
        rows = [(1, "text", alice.id, "written before the upgrade", "old-1", None),
                (2, "text", alice.id, "café crème, version three", None, None),
                (3, "call", alice.id, "Missed audio call", "call:1",
                 '{"call": {"id": 1, "media": "audio", "end_reason": "missed", "duration_s": 0}}')]
        for seq, kind, sender, body, client_id, extra in rows:
            db.execute_sql(
                f'INSERT INTO "message" (conversation_id, seq, kind, sender_id, body, client_id, created_at, extra) '
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
                (conversation.id, seq, kind, sender, body, client_id, "2026-01-02 03:04:05.678000", extra),
            )

    try:
        storage.run_sync(build, write=True)
    finally:
        storage.close()


async def test_version_3_database_with_data_is_upgraded(tmp_path: Path, db_url: str) -> None:
    _make_v3_database(db_url, tmp_path)
    async for running in _running(make_settings(tmp_path, db_url)):
        assert [r[0] for r in raw_query(db_url, "SELECT version FROM schema_version ORDER BY version")] == \
            list(range(1, migrations.latest_version() + 1))
        if db_url.startswith("sqlite"):  # migration 10: what migration 4 indexed is under the watermark
            assert raw_query(db_url, "SELECT upto FROM message_fts_progress") == \
                raw_query(db_url, "SELECT max(id) FROM message")
        async for api in _api_of(running):
            status, login = await api.request("POST", "/api/auth/login",
                                              json={"username": "bob_v3", "password": DEFAULT_PASSWORD})
            assert status == 200, login
            bob_token = login["token"]
            status, listing = await api.request("GET", "/api/conversations", token=bob_token)
            conversation = listing["conversations"][0]
            cid = conversation["id"]
            assert conversation["unread_count"] == 3 and conversation["last_message"]["kind"] == "call"
            status, page = await api.request("GET", f"/api/conversations/{cid}/messages", token=bob_token)
            messages = page["messages"]
            assert [(m["seq"], m["kind"], m["body"]) for m in messages] == [
                (1, "text", "written before the upgrade"), (2, "text", "café crème, version three"),
                (3, "call", "Missed audio call")]
            assert messages[0]["created_at"] == "2026-01-02T03:04:05.678Z" and messages[0]["client_id"] == "old-1"
            assert messages[2]["call"] == {"id": 1, "media": "audio", "end_reason": "missed", "duration_s": 0}
            for m in messages:
                assert (m["edited_at"], m["deleted"], m["reactions"], m["reply_to"], m["state_seq"]) == \
                    (None, False, [], None, m["seq"])
            # Old messages are searchable (backfilled on SQLite, indexed on PostgreSQL), accents folded.
            status, found = await api.request("GET", "/api/search?q=creme", token=bob_token)
            assert status == 200 and [r["message"]["seq"] for r in found["results"]] == [2], found

            status, login = await api.request("POST", "/api/auth/login",
                                              json={"username": "alice_v3", "password": DEFAULT_PASSWORD})
            factory = SocketFactory(running.url)
            try:
                alice = await factory.connect(login["token"])
                # The edit window counts from created_at; an old message is past the default window.
                refusal = await alice.call("edit_message", {"conversation_id": cid, "seq": 1, "body": "new"})
                assert refusal["ok"] is False and refusal["error"]["code"] == "conflict"
                ack = await acked(alice, "react", {"conversation_id": cid, "seq": 1, "emoji": "👍"})
                assert ack["entry"]["seq"] == 4
                ack = await acked(alice, "delete_message", {"conversation_id": cid, "seq": 2})
                assert ack["entry"]["seq"] == 5 and ack["message"]["deleted"] is True
                ack = await acked(alice, "send_message",
                                  {"conversation_id": cid, "body": "after", "client_id": "old-1"})
                assert ack["duplicate"] is True and ack["message"]["seq"] == 1  # old client ids still dedupe
            finally:
                await factory.close_all()
            status, found = await api.request("GET", "/api/search?q=creme", token=bob_token)
            assert found["results"] == []
            assert _indexes(db_url) == LIGHT_INDEXES


# Migration 9: the message and conversation indexes a database ends with, fresh or upgraded.
LIGHT_INDEXES = {"conversation_direct_key", "message_conversation_id_seq",
                 "message_conversation_id_sender_id_client_id", "message_conversation_id_target_seq"}


def _indexes(db_url: str) -> set[str]:
    if db_url.startswith("sqlite"):
        rows = raw_query(db_url, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                                 "AND tbl_name IN ('message', 'conversation')")
    else:
        rows = raw_query(db_url, "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                                 "AND tablename IN ('message', 'conversation') AND indexname NOT LIKE '%%_pkey' "
                                 "AND indexname <> 'message_search'")
    return {name for (name,) in rows}


async def test_a_new_database_has_the_light_indexes_and_change_look_ups_use_the_partial_one(
        tmp_path: Path, db_url: str) -> None:
    storage = Storage(open_database(db_url, base_dir=tmp_path))
    try:
        migrations.migrate(storage)
    finally:
        storage.close()
    assert _indexes(db_url) == LIGHT_INDEXES
    query = "SELECT id FROM message WHERE conversation_id = 1 AND target_seq = 3"
    if db_url.startswith("sqlite"):
        plan = " ".join(str(row[-1]) for row in raw_query(db_url, "EXPLAIN QUERY PLAN " + query))
    else:
        # An empty table: without seqscans the planner shows which index it would take.
        plan = " ".join(row[0] for row in raw_query(db_url, "SET enable_seqscan = off; EXPLAIN " + query))
    assert "message_conversation_id_target_seq" in plan, plan
