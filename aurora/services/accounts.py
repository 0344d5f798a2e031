"""Accounts: registration, login, logout, token authentication, user look-ups."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from aurora.errors import AuroraError, invalid
from aurora.services.login_throttle import LoginThrottle
from aurora.services.tokens import TokenSigner
from aurora.services.validation import storable_text
from aurora.settings import Settings
from aurora.storage import users as user_store
from aurora.storage.database import Storage

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,32}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
MAX_DISPLAY_NAME_CHARS = 64
USER_SEARCH_LIMIT = 20
ADDRESS_FACTOR = 5  # failed logins allowed per client address: this many times the per-username limit


def _check_username(username: Any) -> str:
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise invalid("username must be 3-32 characters: letters, digits, _ . -")
    return username


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise invalid(f"password must be {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters")
    return storable_text(password, "password")


def _check_display_name(display_name: Any, fallback: str) -> str:
    if display_name is None:
        return fallback
    if not isinstance(display_name, str) or not display_name.strip() \
            or len(display_name.strip()) > MAX_DISPLAY_NAME_CHARS:
        raise invalid(f"display_name must be 1-{MAX_DISPLAY_NAME_CHARS} characters")
    return storable_text(display_name.strip(), "display_name")


class Accounts:
    def __init__(self, settings: Settings, storage: Storage, signer: TokenSigner) -> None:
        self._storage = storage
        self._signer = signer
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        # Per username, and (more loosely: many users share an office NAT) per client address.
        self._user_throttle = LoginThrottle(settings.login_max_failures, settings.login_window_s)
        self._address_throttle = LoginThrottle(settings.login_max_failures * ADDRESS_FACTOR, settings.login_window_s)
        # Hash of a random password: login of an unknown user costs as much as a wrong password.
        self._dummy_hash = self._hasher.hash("aurora-timing-equaliser")

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False
        return await asyncio.to_thread(check)

    async def register(self, username: Any, password: Any, display_name: Any = None) -> tuple[dict[str, Any], str]:
        name = _check_username(username)
        secret = _check_password(password)
        shown = _check_display_name(display_name, name)
        password_hash = await self._hash(secret)
        user = await self._storage.write(user_store.create_user, name, shown, password_hash)
        return user, self._signer.issue(user["id"], 1)

    async def login(self, username: Any, password: Any, remote: str | None = None) -> tuple[dict[str, Any], str]:
        if not isinstance(username, str) or not isinstance(password, str):
            raise invalid("username and password must be strings")
        user_key, address_key = username.lower(), remote or ""
        self._user_throttle.check(user_key)
        self._address_throttle.check(address_key)
        try:
            result = await self._check_credentials(username, password)
        except AuroraError as exc:
            if exc.code == "invalid_credentials":
                self._user_throttle.failed(user_key)
                self._address_throttle.failed(address_key)
            raise
        self._user_throttle.succeeded(user_key)
        return result

    async def _check_credentials(self, username: str, password: str) -> tuple[dict[str, Any], str]:
        wrong = AuroraError("invalid_credentials", "wrong username or password")
        if len(password) > MAX_PASSWORD_CHARS:
            raise wrong
        try:  # text no account can have (NUL, unpaired surrogates) never reaches the database or Argon2
            storable_text(username, "username")
            storable_text(password, "password")
        except AuroraError:
            raise wrong from None
        found = await self._storage.read(user_store.credentials_for, username)
        if found is None:
            await self._verify(self._dummy_hash, password)
            raise wrong
        user, password_hash, version, deactivated = found
        if not await self._verify(password_hash, password):
            raise wrong
        if deactivated:  # said only to whoever knows the password
            raise AuroraError("forbidden", "this account has been deactivated")
        return user, self._signer.issue(user["id"], version)

    async def logout(self, user_id: int) -> None:
        """Every token issued to this user so far stops working."""
        await self._storage.write(user_store.bump_token_version, user_id)

    async def authenticate(self, token: str | None) -> dict[str, Any]:
        """The user a token belongs to; auth_required / auth_invalid / auth_expired otherwise."""
        user_id, version = self._signer.verify(token)
        found = await self._storage.read(user_store.get_user_with_version, user_id)
        if found is None or found[1] != version:
            raise AuroraError("auth_invalid", "the token is no longer valid; log in again")
        return found[0]

    async def search(self, prefix: Any) -> list[dict[str, Any]]:
        if prefix is None:
            prefix = ""
        if not isinstance(prefix, str) or len(prefix) > 64:
            raise invalid("q must be a string of at most 64 characters")
        return await self._storage.read(user_store.search_users, storable_text(prefix.strip(), "q"),
                                        USER_SEARCH_LIMIT)

    # Command-line helpers (no event loop needed).
    def create_user_sync(self, username: str, password: str) -> dict[str, Any]:
        name = _check_username(username)
        secret = _check_password(password)
        return self._storage.run_sync(user_store.create_user, name, name, self._hasher.hash(secret), write=True)

    def admin_token_sync(self, username: str | None) -> str:
        """A token for the named admin, or the first admin (operator commands that ask the server)."""
        found = self._storage.run_sync(user_store.get_admin, username)
        if found is None:
            raise AuroraError("not_found", f"no admin named {username!r}" if username else
                              "no admin account; run: python app.py admin grant USERNAME")
        user, version = found
        return self._signer.issue(user["id"], version)

    def token_for_sync(self, username: str) -> str:
        found = self._storage.run_sync(user_store.get_user_by_name, username)
        if found is None:
            raise AuroraError("not_found", f"no user named {username!r}")
        user, version = found
        return self._signer.issue(user["id"], version)
