"""Accounts: registration, login, logout, token authentication, user look-ups."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aurora.errors import AuroraError, RateLimited, invalid
from aurora.services.batched_reads import BatchedRead
from aurora.services.limits import Limiter
from aurora.services.limits.policy import LOGIN_FAILURES_ADDRESS, LOGIN_FAILURES_USER
from aurora.services.password_hashing import PasswordHashing
from aurora.services.tokens import Credentials, TokenSigner
from aurora.services.validation import id_of, storable_text
from aurora.settings import Settings
from aurora.storage import sessions as session_store
from aurora.storage import users as user_store
from aurora.storage.database import Storage

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,32}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
MAX_DISPLAY_NAME_CHARS = 64
USER_SEARCH_LIMIT = 20


@dataclass(frozen=True)
class Device:
    """Where a login comes from, kept with its session so the user can tell their devices apart."""
    address: str = ""
    user_agent: str | None = None


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
    def __init__(self, settings: Settings, storage: Storage, signer: TokenSigner, limiter: Limiter) -> None:
        self._storage = storage
        self._signer = signer
        self._limiter = limiter
        self._auth_reads: BatchedRead[tuple[int, int | None], Any] = BatchedRead(
            storage, session_store.auth_lookups, lambda: None)
        self.hashing = PasswordHashing(settings)
        # Hash of a random password: login of an unknown user costs as much as a wrong password.
        self._dummy_hash = self.hashing.hasher.hash("aurora-timing-equaliser")

    async def _new_session(self, user: dict[str, Any], version: int, device: Device) -> str:
        session = await self._storage.write(session_store.create_session_txn, user["id"], device.user_agent,
                                            device.address)
        return self._signer.issue(user["id"], version, session["id"])

    async def register(self, username: Any, password: Any, display_name: Any = None,
                       device: Device | None = None) -> tuple[dict[str, Any], str]:
        name = _check_username(username)
        secret = _check_password(password)
        shown = _check_display_name(display_name, name)
        password_hash = await self.hashing.hash(secret)
        user = await self._storage.write(user_store.create_user, name, shown, password_hash)
        return user, await self._new_session(user, 1, device or Device())

    async def _reserve_attempt(self, username: str, address: str) -> None:
        """Spend a failed-login token for the username and the address before the password is
        checked: concurrent guesses cannot all pass a limit counted only after the slow hash."""
        await self._limiter.take(LOGIN_FAILURES_USER, username.lower())
        try:
            await self._limiter.take(LOGIN_FAILURES_ADDRESS, address)
        except RateLimited:
            await self._limiter.give_back(LOGIN_FAILURES_USER, username.lower())
            raise

    async def _settle_attempt(self, username: str, address: str, succeeded: bool) -> None:
        if succeeded:  # a right password clears the username's count and costs the address nothing
            await self._limiter.reset(LOGIN_FAILURES_USER, username.lower())
        else:  # not a wrong password (an outage, a bug): nothing to count
            await self._limiter.give_back(LOGIN_FAILURES_USER, username.lower())
        await self._limiter.give_back(LOGIN_FAILURES_ADDRESS, address)

    async def login(self, username: Any, password: Any, device: Device | None = None) -> tuple[dict[str, Any], str]:
        if not isinstance(username, str) or not isinstance(password, str):
            raise invalid("username and password must be strings")
        device = device or Device()
        await self._reserve_attempt(username, device.address)
        try:
            user, version = await self._check_credentials(username, password)
        except AuroraError as exc:
            if exc.code != "invalid_credentials":
                await self._settle_attempt(username, device.address, succeeded=False)
            raise
        except BaseException:
            await self._settle_attempt(username, device.address, succeeded=False)
            raise
        await self._settle_attempt(username, device.address, succeeded=True)
        return user, await self._new_session(user, version, device)

    async def _check_credentials(self, username: str, password: str) -> tuple[dict[str, Any], int]:
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
            await self.hashing.verify(self._dummy_hash, password)
            raise wrong
        user, password_hash, version, deactivated = found
        if not await self.hashing.verify(password_hash, password):
            raise wrong
        if deactivated:  # said only to whoever knows the password
            raise AuroraError("forbidden", "this account has been deactivated")
        return user, version

    async def logout(self, credentials: Credentials, everywhere: bool = False) -> None:
        """End the token's session; a token without one (issued before sessions existed), or
        `everywhere`, ends every token of the user issued so far."""
        if everywhere or credentials.session_id is None:
            await self._storage.write(user_store.bump_token_version, credentials.user_id)
            await self._storage.write(session_store.revoke_sessions_txn, credentials.user_id, None)
        else:
            await self._storage.write(session_store.revoke_session_txn, credentials.user_id, credentials.session_id)

    async def authenticate(self, token: str | None) -> dict[str, Any]:
        """The user a token belongs to; auth_required / auth_invalid / auth_expired otherwise."""
        return (await self.authenticate_credentials(token))[0]

    async def authenticate_credentials(self, token: str | None) -> tuple[dict[str, Any], Credentials]:
        credentials = self._signer.credentials(token)
        # Batched with concurrent look-ups (a reconnect storm): services/batched_reads.py.
        found = await self._auth_reads.get((credentials.user_id, credentials.session_id))
        if found is None or found[1] != credentials.version or not found[2]:
            raise AuroraError("auth_invalid", "the token is no longer valid; log in again")
        return dict(found[0]), credentials  # a copy: several connects of one user may share the answer

    async def sessions(self, credentials: Credentials) -> list[dict[str, Any]]:
        listed = await self._storage.read(session_store.list_sessions, credentials.user_id)
        return [{**s, "current": s["id"] == credentials.session_id} for s in listed]

    async def end_session(self, user_id: int, session_id: Any) -> int:
        """Ends one of the user's sessions; returns its id."""
        number = id_of(session_id, "session id")
        if not await self._storage.write(session_store.revoke_session_txn, user_id, number):
            raise AuroraError("not_found", "session not found")
        return number

    async def change_password(self, user: dict[str, Any], credentials: Credentials, current: Any, new: Any,
                              device: Device | None = None) -> tuple[str, int]:
        """Check the current password (throttled like a login), store the new one, end every other
        session and every older token; returns a fresh token for this session and how many ended."""
        if not isinstance(current, str):
            raise invalid("current_password must be a string")
        secret = _check_password(new)
        device = device or Device()
        await self._reserve_attempt(user["username"], device.address)
        try:
            stored = await self._storage.read(session_store.password_hash_of, user["id"])
            right = stored is not None and len(current) <= MAX_PASSWORD_CHARS \
                and await self.hashing.verify(stored, current)
        except BaseException:
            await self._settle_attempt(user["username"], device.address, succeeded=False)
            raise
        if not right:
            raise AuroraError("forbidden", "current_password is wrong")
        await self._settle_attempt(user["username"], device.address, succeeded=True)
        password_hash = await self.hashing.hash(secret)
        version = await self._storage.write(session_store.set_password_txn, user["id"], password_hash)
        ended = await self._storage.write(session_store.revoke_sessions_txn, user["id"], credentials.session_id)
        if credentials.session_id is None:  # an old token without a session: this device gets one now
            return await self._new_session(user, version, device), ended
        return self._signer.issue(user["id"], version, credentials.session_id), ended

    async def search(self, prefix: Any) -> list[dict[str, Any]]:
        if prefix is None:
            prefix = ""
        if not isinstance(prefix, str) or len(prefix) > 64:
            raise invalid("q must be a string of at most 64 characters")
        return await self._storage.read(user_store.search_users, storable_text(prefix.strip(), "q"),
                                        USER_SEARCH_LIMIT)

    def close(self) -> None:
        self.hashing.close()

    # Command-line helpers (no event loop needed).
    def create_user_sync(self, username: str, password: str) -> dict[str, Any]:
        name = _check_username(username)
        secret = _check_password(password)
        return self._storage.run_sync(user_store.create_user, name, name, self.hashing.hasher.hash(secret),
                                      write=True)

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
        session = self._storage.run_sync(session_store.create_session_txn, user["id"], "command line", None,
                                         write=True)
        return self._signer.issue(user["id"], version, session["id"])
