"""Settings: layering, validation with one-line errors, production rules, secret keys and rotation."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path
from typing import Any

import pytest

from aurora.services.tokens import TokenSigner
from aurora.settings import Settings, SettingsError, load_settings
from tests.conftest import make_settings, start_server
from tests.support.clients import Api

LONG_KEY = "k" * 32


def _load(tmp_path: Path, config: str | None = None, environ: dict[str, str] | None = None,
          overrides: dict[str, Any] | None = None) -> Settings:
    """load_settings with the data directory kept inside tmp_path."""
    config_file = None
    if config is not None:
        config_file = tmp_path / "aurora.toml"
        config_file.write_text(config)
    values = {"data_dir": str(tmp_path / "data")}
    values.update(overrides or {})
    return load_settings(config_file, environ=environ or {}, overrides=values)


def test_defaults_match_the_spec(tmp_path: Path) -> None:
    s = _load(tmp_path)
    assert s.env == "development"
    assert (s.host, s.port) == ("0.0.0.0", 3001)
    assert s.database_url == "sqlite:///data/aurora.db"
    assert s.sqlite_synchronous == "FULL"
    assert s.token_max_age_s == 7 * 24 * 3600
    assert s.cors_allowed_origins == ()  # same origin only
    assert s.max_message_chars == 4000
    assert s.max_http_body_bytes == 1024 * 1024
    assert s.ring_timeout_s == 45
    assert s.redis_url == ""
    assert s.log_level == "INFO"
    # OWASP Argon2id parameters unless lowered on purpose.
    assert (s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism) == (19456, 2, 1)


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = _load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    config = 'port = 4001\nhost = "10.0.0.1"\nlog_level = "DEBUG"\nmax_message_chars = 100\n'
    environ = {"AURORA_PORT": "4002", "AURORA_HOST": "10.0.0.2", "AURORA_MAX_MESSAGE_CHARS": "200"}

    only_file = _load(tmp_path, config)
    assert (only_file.port, only_file.host, only_file.log_level, only_file.max_message_chars) == \
        (4001, "10.0.0.1", "DEBUG", 100)
    # A setting the file does not mention keeps its default.
    assert only_file.max_http_body_bytes == 1048576

    file_and_env = _load(tmp_path, config, environ)
    assert (file_and_env.port, file_and_env.host, file_and_env.log_level, file_and_env.max_message_chars) == \
        (4002, "10.0.0.2", "DEBUG", 200)

    everything = _load(tmp_path, config, environ, {"port": 4003, "host": "10.0.0.3"})
    assert (everything.port, everything.host, everything.log_level, everything.max_message_chars) == \
        (4003, "10.0.0.3", "DEBUG", 200)


def test_plain_database_url_and_port_environment_variables(tmp_path: Path) -> None:
    s = _load(tmp_path, 'port = 4001\ndatabase_url = "sqlite:///file.db"\n',
              {"PORT": "5005", "DATABASE_URL": "postgresql://u:p@db:5432/aurora"})
    assert s.port == 5005
    assert s.database_url == "postgresql://u:p@db:5432/aurora"
    # CLI flags still win over PORT / DATABASE_URL.
    flagged = _load(tmp_path, None, {"PORT": "5005", "DATABASE_URL": "postgresql://u:p@db:5432/aurora"},
                    {"port": 6006, "database_url": "sqlite:///other.db"})
    assert (flagged.port, flagged.database_url) == (6006, "sqlite:///other.db")


def test_overrides_set_to_none_do_not_mask_lower_layers(tmp_path: Path) -> None:
    # The CLI passes every flag, None when not given.
    s = _load(tmp_path, None, {"AURORA_PORT": "4444"}, {"port": None, "host": None})
    assert s.port == 4444
    assert s.host == "0.0.0.0"


def test_aurora_config_environment_variable_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "from-env.toml"
    config.write_text("port = 4321\n")
    s = load_settings(None, environ={"AURORA_CONFIG": str(config)}, overrides={"data_dir": str(tmp_path)})
    assert s.port == 4321


def test_lists_and_other_types_come_from_strings(tmp_path: Path) -> None:
    s = _load(tmp_path, None, {
        "AURORA_CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        "AURORA_SECRET_KEY": "first-key, second-key",
        "AURORA_RING_TIMEOUT_S": "12.5",
        "AURORA_TOKEN_MAX_AGE_S": "60",
        "AURORA_REDIS_URL": "redis://127.0.0.1:6379/0",
        "AURORA_DATABASE_URL": "postgresql://u@h/db",
    })
    assert s.cors_allowed_origins == ("https://a.example", "https://b.example")
    assert s.secret_keys == ("first-key", "second-key")
    assert s.ring_timeout_s == 12.5
    assert s.token_max_age_s == 60
    assert s.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({"AURORA_PORT": "abc"}, "port"),
        ({"PORT": "abc"}, "port"),
        ({"AURORA_PORT": "70000"}, "port"),
        ({"AURORA_PORT": "-1"}, "port"),
        ({"AURORA_TOKEN_MAX_AGE_S": "0"}, "token_max_age_s"),
        ({"AURORA_MAX_MESSAGE_CHARS": "lots"}, "max_message_chars"),
        ({"AURORA_MAX_HTTP_BODY_BYTES": "-5"}, "max_http_body_bytes"),
        ({"AURORA_RING_TIMEOUT_S": "soon"}, "ring_timeout_s"),
        ({"AURORA_RING_TIMEOUT_S": "0"}, "ring_timeout_s"),
        ({"AURORA_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"AURORA_ENV": "staging"}, "env"),
        ({"DATABASE_URL": "mysql://root@localhost/aurora"}, "database_url"),
        ({"AURORA_SQLITE_SYNCHRONOUS": "SOMETIMES"}, "sqlite_synchronous"),
        ({"AURORA_REDIS_URL": "http://redis"}, "redis_url"),
    ],
)
def test_a_bad_value_raises_one_line_naming_the_setting(tmp_path: Path, environ: dict[str, str],
                                                          setting: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, None, environ)
    message = str(caught.value)
    assert "\n" not in message
    assert message.split(":")[0] == setting, message


def test_bad_values_in_a_config_file_are_reported_too(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, 'port = "not a number"\n')
    assert str(caught.value).startswith("port:") and "\n" not in str(caught.value)

    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, "no_such_setting = 1\n")
    assert "no_such_setting" in str(caught.value) and "\n" not in str(caught.value)

    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, "port = = 3\n")
    assert str(caught.value).startswith("config:") and "\n" not in str(caught.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path / "missing.toml", environ={}, overrides={"data_dir": str(tmp_path)})
    assert "missing.toml" in str(caught.value)


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, None, {"AURORA_ENV": "production"})
    assert str(caught.value).startswith("secret_key:")
    # Nothing was generated behind the operator's back.
    assert not (tmp_path / "data" / "secret_key").exists()


@pytest.mark.parametrize("keys", ["k" * 31, f"{LONG_KEY},short"])
def test_production_refuses_short_secret_keys(tmp_path: Path, keys: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, None, {"AURORA_ENV": "production", "AURORA_SECRET_KEY": keys})
    assert str(caught.value).startswith("secret_key:")
    assert "32" in str(caught.value)


def test_production_refuses_wildcard_cors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, None, {"AURORA_ENV": "production", "AURORA_SECRET_KEY": LONG_KEY,
                               "AURORA_CORS_ALLOWED_ORIGINS": "https://ok.example,*"})
    assert str(caught.value).startswith("cors_allowed_origins:")


@pytest.mark.parametrize("env", ["development", "production"])
def test_the_test_clock_is_refused_outside_env_test(tmp_path: Path, env: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, None, {"AURORA_ENV": env, "AURORA_SECRET_KEY": LONG_KEY, "AURORA_TEST_CLOCK": "true"})
    assert str(caught.value).startswith("test_clock: only with env=test"), caught.value


async def test_the_test_clock_route_exists_only_with_the_setting(tmp_path: Path, sqlite_url: str) -> None:
    for on, expected in ((False, 404), (True, 200)):
        running = await start_server(make_settings(tmp_path / str(on), sqlite_url.replace(".db", f"{on}.db"),
                                                   test_clock=on))
        api = Api(running.url)
        try:
            status, body = await api.request("POST", "/api/test/clock", json={"advance_s": 1})
            assert status == expected, body
            if on:
                assert body["now"] == 1.0, body
                status, body = await api.request("POST", "/api/test/clock", json={"advance_s": -1})
                assert status == 400 and body["error"]["code"] == "invalid", body
        finally:
            await api.close()
            await running.stop()


def test_production_with_a_long_key_and_listed_origins_is_accepted(tmp_path: Path) -> None:
    from aurora.services.push.vapid import generate_private_key

    s = _load(tmp_path, None, {"AURORA_ENV": "production", "AURORA_SECRET_KEY": LONG_KEY,
                               "AURORA_CORS_ALLOWED_ORIGINS": "https://chat.example.com",
                               "AURORA_VAPID_PRIVATE_KEY": generate_private_key(),
                               "AURORA_VAPID_SUBJECT": "mailto:ops@chat.example.com"})
    assert s.is_production
    assert s.secret_keys == (LONG_KEY,)
    assert s.cors_allowed_origins == ("https://chat.example.com",)


def test_production_without_web_push_needs_no_vapid_key(tmp_path: Path) -> None:
    base = {"AURORA_ENV": "production", "AURORA_SECRET_KEY": LONG_KEY,
            "AURORA_CORS_ALLOWED_ORIGINS": "https://chat.example.com"}
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, None, base)
    assert str(caught.value).startswith("vapid_private_key:")
    s = _load(tmp_path, None, {**base, "AURORA_PUSH_ENABLED": "false"})
    assert (s.push_enabled, s.vapid_private_keys) == (False, ())
    s = _load(tmp_path, None, {"AURORA_PUSH_ENABLED": "false"})  # nor is one generated in development
    assert s.vapid_private_keys == () and not (tmp_path / "data" / "vapid_private_key").exists()


def test_the_trace_journal_can_be_switched_off_but_not_made_negative(tmp_path: Path) -> None:
    assert _load(tmp_path, None, {"AURORA_TRACE_BUFFER_ENTRIES": "0"}).trace_buffer_entries == 0
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, None, {"AURORA_TRACE_BUFFER_ENTRIES": "-1"})
    assert str(caught.value).startswith("trace_buffer_entries:")


def test_wildcard_cors_is_allowed_outside_production_when_asked_for(tmp_path: Path) -> None:
    s = _load(tmp_path, None, {"AURORA_CORS_ALLOWED_ORIGINS": "*"})
    assert s.cors_allowed_origins == ("*",)


def test_development_generates_a_key_once_and_reuses_it(tmp_path: Path) -> None:
    first = _load(tmp_path)
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.exists()
    assert len(first.secret_keys) == 1 and len(first.secret_keys[0]) >= 32
    assert key_file.read_text().strip() == first.secret_keys[0]
    # Only the owner may read it.
    assert stat.S_IMODE(key_file.stat().st_mode) & 0o077 == 0

    second = _load(tmp_path)
    assert second.secret_keys == first.secret_keys

    elsewhere = load_settings(None, environ={}, overrides={"data_dir": str(tmp_path / "other")})
    assert elsewhere.secret_keys != first.secret_keys


def test_an_explicit_key_is_used_and_nothing_is_generated(tmp_path: Path) -> None:
    s = _load(tmp_path, None, {"AURORA_SECRET_KEY": "explicit-key"})
    assert s.secret_keys == ("explicit-key",)
    assert not (tmp_path / "data" / "secret_key").exists()


def test_rotation_first_key_signs_every_key_verifies() -> None:
    old = TokenSigner(("old-key",), 3600)
    rotated = TokenSigner(("new-key", "old-key"), 3600)
    new_only = TokenSigner(("new-key",), 3600)

    old_token = old.issue(7, 3)
    assert rotated.verify(old_token) == (7, 3)

    fresh = rotated.issue(8, 1)
    assert new_only.verify(fresh) == (8, 1)  # signed with the first key
    from aurora.errors import AuroraError

    with pytest.raises(AuroraError) as caught:
        old.verify(fresh)
    assert caught.value.code == "auth_invalid"
    with pytest.raises(AuroraError) as caught:
        new_only.verify(old_token)
    assert caught.value.code == "auth_invalid"


async def test_rotation_across_a_restart_keeps_old_tokens_working(tmp_path: Path, db_url: str) -> None:
    old_key, new_key = "old-" + LONG_KEY, "new-" + LONG_KEY
    first = await start_server(make_settings(tmp_path, db_url, secret_key=old_key))
    api = Api(first.url)
    try:
        account = await api.register()
    finally:
        await api.close()
        await first.stop()

    rotated = await start_server(make_settings(tmp_path, db_url, secret_key=f"{new_key},{old_key}"))
    api = Api(rotated.url)
    try:
        status, body = await api.request("GET", "/api/me", token=account.token)
        assert status == 200, body
        assert body["user"]["id"] == account.id
        status, body = await api.request("POST", "/api/auth/login",
                                         json={"username": account.username, "password": account.password})
        assert status == 200
        new_token = body["token"]
    finally:
        await api.close()
        await rotated.stop()

    retired = await start_server(make_settings(tmp_path, db_url, secret_key=new_key))
    api = Api(retired.url)
    try:
        status, body = await api.request("GET", "/api/me", token=account.token)
        assert (status, body["error"]["code"]) == (401, "auth_invalid")
        status, body = await api.request("GET", "/api/me", token=new_token)
        assert status == 200, body
    finally:
        await api.close()
        await retired.stop()


def test_a_fractional_number_for_an_integer_setting_is_refused(tmp_path: Path) -> None:
    # Not silently truncated: 3001.5 is not a port, whether it comes from a file or the environment.
    for config, environ in (("port = 3001.5\n", {}), (None, {"AURORA_PORT": "3001.5"})):
        with pytest.raises(SettingsError) as caught:
            _load(tmp_path, config, environ)
        assert str(caught.value).startswith("port:")
    # A whole number written as a float in TOML is still a number the operator meant.
    with pytest.raises(SettingsError):
        _load(tmp_path, "max_message_chars = 4000.9\n")


def test_processes_starting_together_share_one_generated_key(tmp_path: Path) -> None:
    """Several workers (or `create-user` next to a starting server) generating the key at the same moment."""
    import threading

    workers = 12
    barrier = threading.Barrier(workers, timeout=10)
    keys: list[tuple[str, ...]] = []
    errors: list[BaseException] = []

    def load() -> None:
        barrier.wait()
        try:
            keys.append(_load(tmp_path).secret_keys)
        except BaseException as exc:  # collected and reported below
            errors.append(exc)

    for _round in range(5):
        (tmp_path / "data" / "secret_key").unlink(missing_ok=True)
        keys.clear()
        threads = [threading.Thread(target=load) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(keys) == workers
        assert len(set(keys)) == 1, set(keys)
        (key,) = keys[0]
        assert len(key) >= 32
        assert (tmp_path / "data" / "secret_key").read_text().strip() == key


def test_an_empty_key_file_is_refused_not_used(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret_key").write_text("\n")
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path)
    assert str(caught.value).startswith("secret_key:")
