"""One frozen Settings object: defaults file < --config file < environment < CLI.

Every value is validated once at start; a bad value raises SettingsError with one
line naming the setting, so the process stops before serving anything.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aurora.gc_tuning import parse_thresholds

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = PROJECT_ROOT / "config" / "defaults.toml"
SECRET_KEY_FILE = "secret_key"
VAPID_KEY_FILE = "vapid_private_key"
DEVELOPMENT_VAPID_SUBJECT = "mailto:aurora@localhost"
MIN_PRODUCTION_KEY_CHARS = 32
ENVIRONMENTS = ("development", "test", "production")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message is one line naming it."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    host: str = "0.0.0.0"
    port: int = 3001
    database_url: str = "sqlite:///data/aurora.db"
    data_dir: str = "data"
    sqlite_synchronous: str = "FULL"
    secret_keys: tuple[str, ...] = ()
    token_max_age_s: int = 604800
    cors_allowed_origins: tuple[str, ...] = ()
    max_message_chars: int = 4000
    max_http_body_bytes: int = 1048576
    max_packet_bytes: int = 1048576
    log_level: str = "INFO"
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    typing_throttle_ms: int = 1000
    edit_window_s: int = 86400
    message_queue_max: int = 10000
    login_max_failures: int = 10
    login_window_s: float = 900.0
    db_threads: int = 4
    writer_lanes: int = 4
    ring_timeout_s: float = 45.0
    call_grace_s: float = 15.0
    signal_max_bytes: int = 65536
    stun_urls: tuple[str, ...] = ("stun:stun.l.google.com:19302",)  # as config/defaults.toml and README
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl_s: int = 3600
    redis_url: str = ""
    redis_prefix: str = "aurora"
    presence_dead_after_s: float = 10.0
    # Tests only (env = test): the services' timers on a ManualClock, moved through POST /api/test/clock.
    test_clock: bool = False
    websocket_compression: bool = False
    event_loop: str = "uvloop"
    listen_backlog: int = 4096  # pending connections the kernel holds (capped by net.core.somaxconn)
    gc_thresholds: str = "50000,20,100"  # aurora/gc_tuning.py; "" keeps Python's (700, 10, 10)
    # Attachments (aurora/services/files)
    max_upload_bytes: int = 26214400
    upload_quota_bytes: int = 1073741824
    max_attachments: int = 10
    attachment_url_ttl_s: int = 3600
    upload_orphan_ttl_s: int = 86400
    upload_sweep_interval_s: float = 300.0
    max_image_pixels: int = 40000000
    thumbnail_px: int = 320
    strip_image_metadata: bool = True
    file_workers: int = 2
    # Abuse limits (docs/operations.md#abuse-limits): token buckets per user, per address before login.
    rate_limits_enabled: bool = True
    rate_message_per_s: float = 5.0
    rate_message_burst: int = 50
    rate_edit_per_s: float = 2.0
    rate_edit_burst: int = 30
    rate_react_per_s: float = 5.0
    rate_react_burst: int = 50
    rate_typing_per_s: float = 3.0
    rate_typing_burst: int = 20
    rate_sync_per_s: float = 2.0
    rate_sync_burst: int = 60
    rate_conversation_per_s: float = 1.0
    rate_conversation_burst: int = 30
    rate_call_invite_per_s: float = 0.2
    rate_call_invite_burst: int = 10
    rate_call_signal_per_s: float = 50.0
    rate_call_signal_burst: int = 500
    rate_upload_per_s: float = 1.0
    rate_upload_burst: int = 20
    rate_register_per_s: float = 0.05
    rate_register_burst: int = 10
    rate_login_per_s: float = 1.0
    rate_login_burst: int = 30
    flood_disconnect_refusals: int = 200
    trusted_proxies: tuple[str, ...] = ()
    hash_threads: int = 1
    hash_queue_max: int = 32
    max_sockets_per_user: int = 10
    connect_timeout_s: float = 10.0
    max_group_members: int = 1000
    auth_check_interval_s: float = 2.0
    metrics_token: str = field(default="", repr=False)
    hsts_max_age_s: int = 31536000
    # Operations (docs/operations.md): delivery-trace journal size per process (metrics_token: above)
    trace_buffer_entries: int = 10000
    log_format: str = "text"  # text | json (aurora/log_context.py)
    # Web Push (docs/operations.md#web-push): VAPID keys (first signs new subscriptions, all sign
    # the subscriptions made with them), who to contact, which push services, what a push says.
    vapid_private_keys: tuple[str, ...] = field(default=(), repr=False)
    vapid_subject: str = ""
    push_endpoint_hosts: tuple[str, ...] = ()
    push_enabled: bool = True
    push_allow_insecure_endpoints: bool = False
    push_preview: bool = False
    push_ttl_s: int = 86400
    push_queue_max: int = 1000
    push_threads: int = 4
    push_timeout_s: float = 10.0
    push_retries: int = 3
    push_retry_base_s: float = 1.0
    push_max_subscriptions_per_user: int = 10

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# Names that are lists in Settings but comma-separated strings in files and env.
_LIST_FIELDS = {"cors_allowed_origins", "stun_urls", "turn_urls", "secret_keys", "trusted_proxies",
                "vapid_private_keys", "push_endpoint_hosts"}
# File/env key -> Settings field, where they differ.
_RENAMED = {"secret_key": "secret_keys", "vapid_private_key": "vapid_private_keys"}
_PLAIN_ENV = {"DATABASE_URL": "database_url", "PORT": "port"}


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    kind = _field_types()[name]
    try:
        if name in _LIST_FIELDS:
            if isinstance(raw, (list, tuple)):
                items = [str(x).strip() for x in raw]
            else:
                items = [x.strip() for x in str(raw).split(",")]
            return tuple(x for x in items if x)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(raw, (bool, float)):  # 3001.5 is not silently 3001
                raise ValueError
            return int(raw)
        if kind == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: expected {kind}, got {raw!r}") from None


def _layer(values: dict[str, Any], source: Mapping[str, Any], origin: str) -> None:
    names = _field_types()
    for key, raw in source.items():
        name = _RENAMED.get(key, key)
        if name not in names:
            raise SettingsError(f"{key}: unknown setting in {origin}")
        values[name] = _coerce(name, raw)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"config: file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config: {path} is not valid TOML: {exc}") from None


def _from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for env_name, name in _PLAIN_ENV.items():
        if environ.get(env_name):
            found[name] = environ[env_name]
    names = set(_field_types()) | set(_RENAMED)
    for key, value in environ.items():
        if key.startswith("AURORA_"):
            name = key[len("AURORA_"):].lower()
            if name in names:
                found[name] = value
    return found


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build and validate the Settings; raise SettingsError with one line on a bad value."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    _layer(values, _read_toml(DEFAULTS_FILE), str(DEFAULTS_FILE))
    config_file = config_file or environ.get("AURORA_CONFIG")
    if config_file:
        _layer(values, _read_toml(Path(config_file)), str(config_file))
    _layer(values, _from_environment(environ), "environment")
    _layer(values, {k: v for k, v in (overrides or {}).items() if v is not None}, "command line")
    settings = Settings(**values)
    _validate(settings)
    _validate_push(settings)
    return _with_vapid_key(_with_secret_keys(settings))


def _validate(s: Settings) -> None:
    if s.env not in ENVIRONMENTS:
        raise SettingsError(f"env: must be one of {', '.join(ENVIRONMENTS)}, got {s.env!r}")
    if not 0 <= s.port <= 65535:
        raise SettingsError(f"port: must be 0..65535, got {s.port}")
    if not s.database_url.startswith(("sqlite://", "postgres://", "postgresql://")):
        raise SettingsError(
            "database_url: must start with sqlite:// or postgresql://, "
            f"got {s.database_url.split('://')[0]!r}"
        )
    if s.is_sqlite and s.database_url.rstrip("/") in ("sqlite:", "sqlite:/"):
        raise SettingsError("database_url: sqlite URL has no path (use sqlite:///data/aurora.db)")
    if s.sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise SettingsError(f"sqlite_synchronous: must be OFF|NORMAL|FULL|EXTRA, got {s.sqlite_synchronous!r}")
    if "*" in s.cors_allowed_origins and s.is_production:
        raise SettingsError("cors_allowed_origins: '*' is refused when env=production; list the origins")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"log_level: must be DEBUG|INFO|WARNING|ERROR|CRITICAL, got {s.log_level!r}")
    positive = (
        "token_max_age_s", "max_message_chars", "max_http_body_bytes", "max_packet_bytes",
        "argon2_time_cost", "argon2_memory_kib", "argon2_parallelism", "db_threads", "writer_lanes",
        "ring_timeout_s", "signal_max_bytes", "turn_ttl_s", "presence_dead_after_s",
        "login_max_failures", "login_window_s",
        "max_upload_bytes", "max_attachments", "attachment_url_ttl_s", "upload_orphan_ttl_s",
        "upload_sweep_interval_s", "max_image_pixels", "thumbnail_px", "file_workers", "listen_backlog",
    )
    for name in positive:
        if getattr(s, name) <= 0:
            raise SettingsError(f"{name}: must be greater than 0, got {getattr(s, name)}")
    if s.message_queue_max <= 0:
        raise SettingsError(f"message_queue_max: must be greater than 0, got {s.message_queue_max}")
    for name in ("typing_throttle_ms", "call_grace_s", "edit_window_s", "upload_quota_bytes", "trace_buffer_entries"):
        if getattr(s, name) < 0:
            raise SettingsError(f"{name}: must not be negative, got {getattr(s, name)}")
    _validate_limits(s)
    if not s.redis_prefix or not s.redis_prefix.replace("-", "").replace("_", "").isalnum():
        raise SettingsError(f"redis_prefix: letters, digits, - and _ only, got {s.redis_prefix!r}")
    if s.log_format not in ("text", "json"):
        raise SettingsError(f"log_format: must be text or json, got {s.log_format!r}")
    if s.event_loop not in ("uvloop", "asyncio"):
        raise SettingsError(f"event_loop: must be uvloop or asyncio, got {s.event_loop!r}")
    try:
        parse_thresholds(s.gc_thresholds)
    except ValueError as exc:
        raise SettingsError(f"gc_thresholds: {exc}") from None
    if s.redis_url and not s.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("redis_url: must start with redis://, rediss:// or unix://")
    if s.redis_url and s.is_sqlite:
        raise SettingsError(
            "redis_url: several processes cannot share one SQLite file; use PostgreSQL with Redis"
        )
    if s.test_clock and s.env != "test":
        raise SettingsError(f"test_clock: only with env=test (it lets any client move the clock), env is {s.env!r}")
    if s.is_production:
        if not s.secret_keys:
            raise SettingsError("secret_key: AURORA_SECRET_KEY is required when env=production")
        short = [k for k in s.secret_keys if len(k) < MIN_PRODUCTION_KEY_CHARS]
        if short:
            raise SettingsError(
                f"secret_key: every key must have at least {MIN_PRODUCTION_KEY_CHARS} characters in production"
            )


def _validate_limits(s: Settings) -> None:
    for f in dataclasses.fields(s):
        if f.name.startswith("rate_") and f.name != "rate_limits_enabled" and getattr(s, f.name) < 0:
            raise SettingsError(f"{f.name}: must not be negative (0 turns that limit off), got {getattr(s, f.name)}")
    for name in ("flood_disconnect_refusals", "hash_threads", "hash_queue_max", "max_sockets_per_user",
                 "connect_timeout_s", "max_group_members", "auth_check_interval_s"):
        if getattr(s, name) <= 0:
            raise SettingsError(f"{name}: must be greater than 0, got {getattr(s, name)}")
    if s.hsts_max_age_s < 0:
        raise SettingsError(f"hsts_max_age_s: must not be negative, got {s.hsts_max_age_s}")
    from aurora.services.limits.addresses import parse_networks

    try:
        parse_networks(s.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"trusted_proxies: {exc}") from None


def _with_secret_keys(s: Settings) -> Settings:
    """In development, a missing key is generated once and kept in the data directory."""
    if s.secret_keys:
        return s
    key_file = Path(s.data_dir) / SECRET_KEY_FILE  # relative paths, like SQLite's, start at the working directory
    key = _generated_once(key_file, lambda: secrets.token_urlsafe(48), "secret_key")
    if not key:
        raise SettingsError(f"secret_key: {key_file} is empty; delete it or set AURORA_SECRET_KEY")
    return s.replace(secret_keys=(key,))


def _generated_once(key_file: Path, generate: Callable[[], str], setting: str) -> str:
    """The key kept in key_file, generated into it first if it is not there. Written whole under a
    private name, then linked into place: processes starting together agree on the key that won the
    link and never read a half-written file."""
    try:
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            private = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(generate() + "\n")
                os.link(private, key_file)
            except FileExistsError:
                pass  # another process linked first: its key is the one
            finally:
                private.unlink()
        return key_file.read_text().strip()
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot keep a generated key in {key_file}: {exc}") from None


def _validate_push(s: Settings) -> None:
    for name in ("push_queue_max", "push_threads", "push_timeout_s", "push_retry_base_s",
                 "push_max_subscriptions_per_user"):
        if getattr(s, name) <= 0:
            raise SettingsError(f"{name}: must be greater than 0, got {getattr(s, name)}")
    for name in ("push_ttl_s", "push_retries"):
        if getattr(s, name) < 0:
            raise SettingsError(f"{name}: must not be negative, got {getattr(s, name)}")
    from aurora.services.push.vapid import VapidKeyError, check_subject, parse_private_key

    if s.vapid_subject:
        try:
            check_subject(s.vapid_subject)
        except VapidKeyError as exc:
            raise SettingsError(f"vapid_subject: {exc}, got {s.vapid_subject!r}") from None

    for index, key in enumerate(s.vapid_private_keys):
        try:
            parse_private_key(key)
        except VapidKeyError as exc:
            raise SettingsError(f"vapid_private_key: key {index + 1}: {exc}") from None
    if s.is_production and s.push_enabled:
        if not s.vapid_private_keys:
            raise SettingsError("vapid_private_key: AURORA_VAPID_PRIVATE_KEY is required when env=production")
        if not s.vapid_subject:
            raise SettingsError("vapid_subject: a contact (mailto: or https://) is required when env=production")


def _with_vapid_key(s: Settings) -> Settings:
    """Outside production, a missing VAPID key is generated once into the data directory (like the
    secret key), so subscriptions survive restarts and processes sharing the directory agree."""
    if not s.push_enabled:
        return s
    subject = s.vapid_subject or DEVELOPMENT_VAPID_SUBJECT
    if s.vapid_private_keys:
        return s.replace(vapid_subject=subject)
    from aurora.services.push.vapid import generate_private_key

    key_file = Path(s.data_dir) / VAPID_KEY_FILE
    key = _generated_once(key_file, generate_private_key, "vapid_private_key")
    from aurora.services.push.vapid import VapidKeyError, parse_private_key

    try:
        parse_private_key(key)
    except VapidKeyError as exc:
        raise SettingsError(
            f"vapid_private_key: {key_file}: {exc}; delete it or set AURORA_VAPID_PRIVATE_KEY"
        ) from None
    return s.replace(vapid_private_keys=(key,), vapid_subject=subject)
