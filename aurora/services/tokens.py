"""Signed bearer tokens: itsdangerous, one salt for this purpose, always checked with max_age."""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from aurora.errors import AuroraError

TOKEN_SALT = "aurora.auth.token.v1"


class TokenSigner:
    """Signs (user id, token version); the first key signs, every key verifies (rotation)."""

    def __init__(self, secret_keys: tuple[str, ...], max_age_s: int) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        # itsdangerous signs with the last key of the list and verifies with all.
        self._serializer = URLSafeTimedSerializer(list(reversed(secret_keys)), salt=TOKEN_SALT)
        self._max_age_s = max_age_s

    def issue(self, user_id: int, version: int) -> str:
        return self._serializer.dumps({"uid": user_id, "v": version})

    def verify(self, token: str | None) -> tuple[int, int]:
        """(user id, version) of a valid token; AuroraError auth_* otherwise."""
        if not token:
            raise AuroraError("auth_required", "a token is required")
        try:
            payload = self._serializer.loads(token, max_age=self._max_age_s)
        except SignatureExpired:  # before BadSignature: it is a subclass
            raise AuroraError("auth_expired", "the token has expired; log in again") from None
        except BadSignature:
            raise AuroraError("auth_invalid", "the token is not valid") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("uid"), int) \
                or not isinstance(payload.get("v"), int):
            raise AuroraError("auth_invalid", "the token is not valid")
        return payload["uid"], payload["v"]
