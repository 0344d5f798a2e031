"""Accounts over real HTTP on SQLite and PostgreSQL: register, login, logout, tokens, stored hashes."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from aurora.services.tokens import TOKEN_SALT
from tests.conftest import TEST_SECRET, RunningServer, make_settings, start_server
from tests.support.clients import Api, unique_name
from tests.support.foundation import raw_query

ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
USER_KEYS = {"id", "username", "display_name", "created_at", "last_seen_at"}
PASSWORD = "correct horse battery"


def _error(body: Any) -> str:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body
    return body["error"]["code"]


def _user_count(db_url: str) -> int:
    return raw_query(db_url, 'SELECT COUNT(*) FROM "user"')[0][0]


def _stored_user(db_url: str, username: str) -> tuple[Any, ...]:
    rows = raw_query(db_url, 'SELECT id, username, username_key, password_hash, token_version FROM "user" '
                             "WHERE username_key = ?", (username.lower(),))
    assert len(rows) == 1, rows
    return rows[0]


def _token_signed_ago(user_id: int, version: int, age_s: int, key: str = TEST_SECRET) -> str:
    """A token exactly like the server's, but signed as if `age_s` seconds ago (a fixed clock)."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age_s

    serializer = URLSafeTimedSerializer(key, salt=TOKEN_SALT, signer=PastSigner)
    return serializer.dumps({"uid": user_id, "v": version})


async def test_register_returns_201_with_token_and_user(api: Api, db_url: str) -> None:
    name = unique_name("Reg")
    before = dt.datetime.now(dt.UTC)
    status, body = await api.request("POST", "/api/auth/register",
                                     json={"username": name, "password": PASSWORD, "display_name": "  Reg User "})
    assert status == 201, body
    assert set(body) == {"token", "user"}
    user = body["user"]
    assert set(user) == USER_KEYS  # never the hash or the token version
    assert isinstance(user["id"], int)
    assert user["username"] == name
    assert user["display_name"] == "Reg User"
    assert user["last_seen_at"] is None
    assert ISO_MS_Z.match(user["created_at"]), user["created_at"]
    created = dt.datetime.strptime(user["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    # UTC, not local time: within a generous window around the request.
    assert before - dt.timedelta(minutes=10) <= created <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)

    status, me = await api.request("GET", "/api/me", token=body["token"])
    assert status == 200
    assert me["user"] == {**user, "online": False}


async def test_display_name_defaults_to_username(api: Api) -> None:
    name = unique_name("plain")
    status, body = await api.request("POST", "/api/auth/register", json={"username": name, "password": PASSWORD})
    assert status == 201
    assert body["user"]["display_name"] == name


@pytest.mark.parametrize("username", ["abc", "a" * 32, "A_b.c-9", "123"])
async def test_valid_usernames_are_accepted(api: Api, username: str) -> None:
    status, body = await api.request("POST", "/api/auth/register", json={"username": username, "password": PASSWORD})
    assert status == 201, body
    assert body["user"]["username"] == username


@pytest.mark.parametrize(
    "username", ["ab", "a" * 33, "has space", "bang!", "émile", "semi;colon", "", None, 12345, ["abc"], " abcd",
                 "abcd\n", "abc\x00"]
)
async def test_invalid_usernames_are_refused_and_nothing_is_stored(api: Api, db_url: str, username: Any) -> None:
    status, body = await api.request("POST", "/api/auth/register", json={"username": username, "password": PASSWORD})
    assert status == 400, body
    assert _error(body) == "invalid"
    assert _user_count(db_url) == 0


@pytest.mark.parametrize("password", ["", "1234567", None, 12345678, ["12345678"], "x" * 1025])
async def test_bad_passwords_are_refused(api: Api, db_url: str, password: Any) -> None:
    status, body = await api.request("POST", "/api/auth/register",
                                     json={"username": unique_name(), "password": password})
    assert status == 400, body
    assert _error(body) == "invalid"
    assert _user_count(db_url) == 0


async def test_eight_character_password_is_enough(api: Api) -> None:
    account = await api.register(password="12345678")
    status, _ = await api.request("POST", "/api/auth/login",
                                  json={"username": account.username, "password": "12345678"})
    assert status == 200


@pytest.mark.parametrize("display_name", ["", "   ", "x" * 65, 42])
async def test_bad_display_names_are_refused(api: Api, db_url: str, display_name: Any) -> None:
    status, body = await api.request("POST", "/api/auth/register",
                                     json={"username": unique_name(), "password": PASSWORD,
                                           "display_name": display_name})
    assert status == 400, body
    assert _error(body) == "invalid"
    assert _user_count(db_url) == 0


async def test_username_is_unique_case_insensitively(api: Api, db_url: str) -> None:
    name = unique_name("Dup")
    first = await api.register(name)
    for variant in (name, name.lower(), name.upper()):
        status, body = await api.request("POST", "/api/auth/register",
                                         json={"username": variant, "password": "another password"})
        assert status == 409, body
        assert _error(body) == "conflict"
    assert _user_count(db_url) == 1
    # The original account is untouched.
    status, _ = await api.request("POST", "/api/auth/login", json={"username": name, "password": first.password})
    assert status == 200


async def test_password_is_stored_only_as_an_argon2id_hash(api: Api, db_url: str) -> None:
    secret = "my very secret password"
    account = await api.register(password=secret)
    _, username, username_key, password_hash, token_version = _stored_user(db_url, account.username)
    assert username == account.username and username_key == account.username.lower()
    assert token_version == 1
    assert password_hash.startswith("$argon2id$")
    assert secret not in password_hash
    # The cost parameters come from the settings (config/test.toml lowers them).
    assert "m=256,t=1,p=1" in password_hash
    assert PasswordHasher().verify(password_hash, secret)
    # No other column holds the password either.
    row = raw_query(db_url, 'SELECT * FROM "user" WHERE id = ?', (account.id,))[0]
    assert not any(isinstance(v, str) and secret in v for v in row)


async def test_login_is_case_insensitive_and_returns_token_and_user(api: Api) -> None:
    account = await api.register(unique_name("MiXeD"))
    status, body = await api.request("POST", "/api/auth/login",
                                     json={"username": account.username.swapcase(), "password": account.password})
    assert status == 200, body
    assert set(body) == {"token", "user"}
    assert body["user"] == account.user
    status, me = await api.request("GET", "/api/me", token=body["token"])
    assert status == 200 and me["user"]["id"] == account.id


async def test_wrong_password_and_unknown_user_get_the_same_answer(api: Api) -> None:
    account = await api.register()
    wrong = await api.request("POST", "/api/auth/login",
                              json={"username": account.username, "password": "not the password"})
    unknown = await api.request("POST", "/api/auth/login",
                                json={"username": unique_name("ghost"), "password": "not the password"})
    assert wrong[0] == 401
    assert _error(wrong[1]) == "invalid_credentials"
    assert wrong == unknown


@pytest.mark.parametrize("body", [{}, {"username": "someone"}, {"password": PASSWORD},
                                  {"username": 5, "password": PASSWORD}, {"username": "someone", "password": None}])
async def test_login_with_missing_or_wrong_fields_is_refused(api: Api, body: dict[str, Any]) -> None:
    status, answer = await api.request("POST", "/api/auth/login", json=body)
    assert status == 400, answer
    assert _error(answer) == "invalid"


async def test_logout_ends_this_session_only(api: Api, db_url: str) -> None:
    account = await api.register()
    status, body = await api.request("POST", "/api/auth/login",
                                     json={"username": account.username, "password": account.password})
    second_token = body["token"]

    status, body = await api.request("POST", "/api/auth/logout", token=account.token)
    assert status == 200, body
    status, body = await api.request("GET", "/api/me", token=account.token)
    assert status == 401 and _error(body) == "auth_invalid"
    status, body = await api.request("GET", "/api/me", token=second_token)  # another device: still in
    assert status == 200, body
    # Logging out again with the ended session's token is refused.
    status, body = await api.request("POST", "/api/auth/logout", token=account.token)
    assert status == 401 and _error(body) == "auth_invalid"
    assert _stored_user(db_url, account.username)[4] == 1


async def test_logout_everywhere_revokes_every_earlier_token(api: Api, db_url: str) -> None:
    account = await api.register()
    status, body = await api.request("POST", "/api/auth/login",
                                     json={"username": account.username, "password": account.password})
    second_token = body["token"]
    status, body = await api.request("POST", "/api/auth/logout", token=account.token, json={"everywhere": True})
    assert status == 200, body
    for token in (account.token, second_token):
        status, body = await api.request("GET", "/api/me", token=token)
        assert status == 401 and _error(body) == "auth_invalid"
    status, body = await api.request("POST", "/api/auth/login",
                                     json={"username": account.username, "password": account.password})
    assert status == 200
    status, _ = await api.request("GET", "/api/me", token=body["token"])
    assert status == 200
    assert _stored_user(db_url, account.username)[4] == 2


async def test_logout_needs_a_token(api: Api) -> None:
    status, body = await api.request("POST", "/api/auth/logout")
    assert status == 401 and _error(body) == "auth_required"


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "Bearer"},
                                     {"Authorization": "Bearer   "}, {"Authorization": "Basic dXNlcjpwYXNz"}])
async def test_missing_token_is_auth_required(api: Api, headers: dict[str, str]) -> None:
    for path in ("/api/me", "/api/users?q=a", "/api/conversations"):
        status, body = await api.request("GET", path, headers=headers)
        assert status == 401, (path, body)
        assert _error(body) == "auth_required"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJ1aWQiOjF9.AAAA.BBBB"])
async def test_garbage_token_is_auth_invalid(api: Api, token: str) -> None:
    status, body = await api.request("GET", "/api/me", token=token)
    assert status == 401
    assert _error(body) == "auth_invalid"


async def test_token_signed_with_another_key_is_auth_invalid(api: Api) -> None:
    account = await api.register()
    forged = _token_signed_ago(account.id, 1, 0, key="some-other-secret-key-0123456789abcdef")
    status, body = await api.request("GET", "/api/me", token=forged)
    assert status == 401 and _error(body) == "auth_invalid"


async def test_token_with_a_different_salt_is_auth_invalid(api: Api) -> None:
    account = await api.register()
    other_purpose = URLSafeTimedSerializer(TEST_SECRET, salt="some.other.purpose").dumps({"uid": account.id, "v": 1})
    status, body = await api.request("GET", "/api/me", token=other_purpose)
    assert status == 401 and _error(body) == "auth_invalid"


async def test_token_for_unknown_user_or_version_is_auth_invalid(api: Api) -> None:
    account = await api.register()
    for uid, version in ((account.id + 1000, 1), (account.id, 2), (account.id, 0)):
        status, body = await api.request("GET", "/api/me", token=_token_signed_ago(uid, version, 0))
        assert status == 401, (uid, version)
        assert _error(body) == "auth_invalid"
    # The same construction with the right values is accepted, so the refusals above are meaningful.
    status, _ = await api.request("GET", "/api/me", token=_token_signed_ago(account.id, 1, 0))
    assert status == 200


async def test_token_older_than_max_age_is_auth_expired(api: Api) -> None:
    account = await api.register()
    week = 7 * 24 * 3600
    status, _ = await api.request("GET", "/api/me", token=_token_signed_ago(account.id, 1, week - 3600))
    assert status == 200
    status, body = await api.request("GET", "/api/me", token=_token_signed_ago(account.id, 1, week + 60))
    assert status == 401
    assert _error(body) == "auth_expired"


async def test_a_short_max_age_setting_expires_tokens(tmp_path: Path, db_url: str) -> None:
    running: RunningServer = await start_server(make_settings(tmp_path, db_url, token_max_age_s=60))
    client = Api(running.url)
    try:
        account = await client.register()
        status, _ = await client.request("GET", "/api/me", token=account.token)
        assert status == 200
        status, body = await client.request("GET", "/api/me", token=_token_signed_ago(account.id, 1, 120))
        assert status == 401 and _error(body) == "auth_expired"
    finally:
        await client.close()
        await running.stop()


async def test_register_and_login_refuse_non_object_json(api: Api, db_url: str) -> None:
    for path in ("/api/auth/register", "/api/auth/login"):
        for payload in ("not json", "[1, 2]", '"text"', ""):
            status, body = await api.request("POST", path, data=payload,
                                             headers={"Content-Type": "application/json"})
            assert status == 400, (path, payload, body)
            assert _error(body) == "invalid"
    assert _user_count(db_url) == 0


@pytest.mark.parametrize("bad", ["nul\x00char", "lone\ud800surrogate"])
async def test_unstorable_text_in_account_fields_is_a_clean_error(api: Api, db_url: str, bad: str) -> None:
    for payload in ({"username": unique_name(), "password": PASSWORD, "display_name": bad},
                    {"username": unique_name(), "password": "long enough " + bad}):
        status, body = await api.request("POST", "/api/auth/register", json=payload)
        assert status == 400, (payload, body)
        assert _error(body) == "invalid"
    assert _user_count(db_url) == 0
    account = await api.register()
    for payload in ({"username": account.username + bad, "password": PASSWORD},
                    {"username": account.username, "password": PASSWORD + bad}):
        status, body = await api.request("POST", "/api/auth/login", json=payload)
        assert status == 401, (payload, body)
        assert _error(body) == "invalid_credentials"


async def test_a_nul_in_the_user_search_is_a_clean_error(api: Api) -> None:
    account = await api.register()
    status, body = await api.request("GET", "/api/users?q=u%00", token=account.token)
    assert status == 400, body
    assert _error(body) == "invalid"


async def test_concurrent_registrations_of_one_name_create_one_account(api: Api, db_url: str) -> None:
    name = unique_name("Race")
    variants = [name, name.lower(), name.upper(), name, name.swapcase(), name.lower()]
    results = await asyncio.gather(*(api.request("POST", "/api/auth/register",
                                                 json={"username": v, "password": PASSWORD}) for v in variants))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (len(variants) - 1), results
    assert all(_error(body) == "conflict" for status, body in results if status == 409)
    assert _user_count(db_url) == 1
