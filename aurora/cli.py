"""Command line: serve (default), create-user, token."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import socket
import sys
from typing import Any

import peewee
from aiohttp import web

from aurora.errors import AuroraError
from aurora.gc_tuning import apply_thresholds, freeze_startup_objects, parse_thresholds
from aurora.settings import Settings, SettingsError, load_settings

log = logging.getLogger("aurora")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Aurora real-time messaging server (Socket.IO on aiohttp).",
        epilog="Settings: config/defaults.toml < --config file < AURORA_* / DATABASE_URL / PORT < flags.",
    )
    parser.add_argument("--host", help="interface to listen on (default 0.0.0.0)")
    # Validated by load_settings like every other value: a bad port is one line naming `port`.
    parser.add_argument("--port", help="TCP port (default 3001; PORT is honoured)")
    parser.add_argument("--database-url", dest="database_url",
                        help="sqlite:///data/aurora.db or postgresql://user:pass@host:5432/name")
    parser.add_argument("--config", help="a TOML settings file layered over config/defaults.toml")
    parser.add_argument("--workers", type=int, default=1,
                        help="run N processes on ports PORT..PORT+N-1 (needs redis_url and PostgreSQL)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the server (the default)")
    create = commands.add_parser("create-user", help="create an account (password from a prompt)")
    create.add_argument("username")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.add_argument("--admin", action="store_true", help="give the account the admin role")
    admin = commands.add_parser("admin", help="grant or revoke the admin role")
    admin.add_argument("action", choices=["grant", "revoke"])
    admin.add_argument("username")
    trace = commands.add_parser("trace", help="why did each member (not) get a message? (asks the running server)")
    trace.add_argument("conversation_id", type=int)
    trace.add_argument("seq", type=int)
    trace.add_argument("--url", help="the server (default http://127.0.0.1:PORT)")
    trace.add_argument("--as", dest="as_user", help="the admin to ask as (default: the first admin)")
    trace.add_argument("--json", action="store_true", help="print the whole trace as JSON")
    doctor = commands.add_parser("doctor", help="check a running server (and the proxy in front of it)")
    doctor.add_argument("--url", help="the server or its proxy (default http://127.0.0.1:PORT)")
    doctor.add_argument("--origin", help="the front end's origin, to check CORS (e.g. https://chat.example.com)")
    token = commands.add_parser("token", help="print a token for an existing user")
    token.add_argument("username")
    return parser


def configure_logging(level: str, log_format: str = "text") -> None:
    from aurora.log_context import configure_logging as configure

    configure(level, log_format)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise AuroraError("invalid", "the passwords do not match")
    return first


def _with_storage(settings: Settings, action: Any) -> Any:
    import socketio

    from aurora.application import build_aurora
    from aurora.storage.migrations import migrate

    aurora = build_aurora(settings, socketio.AsyncServer(async_mode="aiohttp"))
    try:
        migrate(aurora.storage)
        return action(aurora)
    finally:
        aurora.storage.close()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(
            args.config, overrides={"host": args.host, "port": args.port, "database_url": args.database_url}
        )
    except SettingsError as exc:
        print(f"aurora: invalid setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "create-user":
            password = _read_password(args.password_stdin)
            user = _with_storage(settings, lambda a: a.accounts.create_user_sync(args.username, password))
            if args.admin:
                _with_storage(settings, lambda a: a.moderation.set_admin_sync(args.username, True))
            print(f"created {'admin' if args.admin else 'user'} {user['username']} (id {user['id']})")
            return 0
        if args.command == "admin":
            granted = args.action == "grant"
            user = _with_storage(settings, lambda a: a.moderation.set_admin_sync(args.username, granted))
            print(f"{user['username']} is {'now' if granted else 'no longer'} an admin")
            return 0
        if args.command == "doctor":
            from aurora.ops_cli import doctor
            from aurora.ops_cli.trace import default_url

            code, report = doctor.run(args.url or default_url(settings.port), args.origin, settings)
            print(report)
            return code
        if args.command == "trace":
            from aurora.ops_cli import trace as trace_cli

            token = _with_storage(settings, lambda a: a.accounts.admin_token_sync(args.as_user))
            print(trace_cli.run(args.url or trace_cli.default_url(settings.port), token, args.conversation_id,
                                args.seq, args.json))
            return 0
        if args.command == "token":
            print(_with_storage(settings, lambda a: a.accounts.token_for_sync(args.username)))
            return 0
    except AuroraError as exc:
        if exc.code == "unavailable" and exc.__cause__ is not None:
            return _database_unreachable(exc.__cause__)
        print(f"aurora: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except peewee.OperationalError as exc:
        return _database_unreachable(exc)
    if args.workers != 1:
        if args.workers < 1:
            print("aurora: invalid setting: workers: must be at least 1", file=sys.stderr)
            return 2
        if not settings.redis_url:
            print("aurora: invalid setting: workers: more than one process needs redis_url (and PostgreSQL)",
                  file=sys.stderr)
            return 2
        from aurora.supervisor import supervise

        config = args.config or os.environ.get("AURORA_CONFIG")
        return supervise(settings, args.workers, config)
    try:
        return serve(settings)
    except peewee.OperationalError as exc:  # raised by the start-up migration
        return _database_unreachable(exc)
    except AuroraError as exc:  # the start-up migration met an outage (Storage names it unavailable)
        if exc.code != "unavailable":
            raise
        return _database_unreachable(exc.__cause__ or exc)


def _database_unreachable(exc: Exception) -> int:
    """One line naming the setting, like every other start-up problem (the driver's text, first line only)."""
    reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    print(f"aurora: database_url: cannot reach the database: {reason}", file=sys.stderr)
    return 1


async def freeze_after_startup(_: web.Application) -> None:
    freeze_startup_objects()


def serve(settings: Settings) -> int:
    from aurora.application import RedactingAccessLogger, create_app

    app = create_app(settings)
    shown_host = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    # Bind here and hand the socket to aiohttp: with port 0 the kernel picks a free port, and the
    # line below reports the one it got (tests and tools read it; no bind-release-rebind race).
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # The backlog holds a reconnect storm's connections until the loop accepts them: once it is full,
    # the kernel drops handshakes and each client waits out SYN retransmits (1, 3, 7, 15, 31 s), idle
    # time for the server (docs/performance.md, S6). Linux caps it at net.core.somaxconn.
    listener = socket.create_server((settings.host, settings.port), family=family, backlog=settings.listen_backlog)
    port = listener.getsockname()[1]

    async def announce(_: web.Application) -> None:
        log.info("Aurora WebSocket Server running on port %d", port)
        log.info("Socket.IO URL: http://%s:%d (namespaces /chat and /calls, path /socket.io/)",
                 shown_host, port)

    app.on_startup.append(announce)
    # After start-up (database, migrations, background tasks): what exists now lives as long as the process.
    app.on_startup.append(freeze_after_startup)
    apply_thresholds(parse_thresholds(settings.gc_thresholds))
    if settings.event_loop == "uvloop":
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            log.warning("uvloop is not installed; using the default asyncio loop")
    # aiohttp listens on the socket again with its own backlog (128 unless told): pass ours.
    web.run_app(app, sock=listener, backlog=settings.listen_backlog, access_log_class=RedactingAccessLogger,
                shutdown_timeout=10,
                print=None)
    return 0
