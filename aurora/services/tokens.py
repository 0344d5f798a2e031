"""Signed bearer tokens: itsdangerous, one salt for this purpose, always checked with max_age."""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from aurora.errors import AuroraError

TOKEN_SALT = "aurora.auth.token.v1"


@dataclass(frozen=True)
class Credentials:
    """What a valid token says: whose it is, its version, its device session (None for tokens
    issued before sessions existed), and when it expires (Unix time)."""
    user_id: int
    version: int
    session_id: int | None
    expires_at: float


class TokenSigner:
    """Signs (user id, token version); the first key signs, every key verifies (rotation)."""

    def __init__(self, secret_keys: tuple[str, ...], max_age_s: int) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        # itsdangerous signs with the last key of the list and verifies with all.
        self._serializer = URLSafeTimedSerializer(list(reversed(secret_keys)), salt=TOKEN_SALT)
        self._max_age_s = max_age_s

    def issue(self, user_id: int, version: int, session_id: int | None = None) -> str:
        payload: dict[str, int] = {"uid": user_id, "v": version}
        if session_id is not None:
            payload["s"] = session_id
        return self._serializer.dumps(payload)

    def verify(self, token: str | None) -> tuple[int, int]:
        """(user id, version) of a valid token; AuroraError auth_* otherwise."""
        credentials = self.credentials(token)
        return credentials.user_id, credentials.version

    def credentials(self, token: str | None) -> Credentials:
        """Everything a valid token carries; AuroraError auth_* otherwise."""
        if not token:
            raise AuroraError("auth_required", "a token is required")
        try:
            payload, signed_at = self._serializer.loads(token, max_age=self._max_age_s, return_timestamp=True)
        except SignatureExpired:  # before BadSignature: it is a subclass
            raise AuroraError("auth_expired", "the token has expired; log in again") from None
        except BadSignature:
            raise AuroraError("auth_invalid", "the token is not valid") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("uid"), int) \
                or not isinstance(payload.get("v"), int):
            raise AuroraError("auth_invalid", "the token is not valid")
        session_id = payload.get("s")
        if session_id is not None and (not isinstance(session_id, int) or isinstance(session_id, bool)):
            raise AuroraError("auth_invalid", "the token is not valid")
        # itsdangerous refuses once whole seconds since signing exceed max_age: from signed + max_age + 1 on.
        return Credentials(payload["uid"], payload["v"], session_id, signed_at.timestamp() + self._max_age_s + 1)
