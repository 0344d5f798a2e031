"""One error vocabulary for REST and Socket.IO: a code, a message, an HTTP status."""

from __future__ import annotations

from typing import Any

STATUS_BY_CODE: dict[str, int] = {
    "invalid": 400,
    "auth_required": 401,
    "auth_invalid": 401,
    "auth_expired": 401,
    "invalid_credentials": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}


class AuroraError(Exception):
    """An error the client may see: a stable code and a human-readable message."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        if code not in STATUS_BY_CODE:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE[code]

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class RateLimited(AuroraError):
    """`rate_limited` with the wait in milliseconds (REST adds a Retry-After header)."""

    def __init__(self, message: str, retry_after_ms: int | None) -> None:
        super().__init__("rate_limited", message)
        self.retry_after_ms = retry_after_ms

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.retry_after_ms is not None:
            data["retry_after_ms"] = self.retry_after_ms
        return data


def invalid(message: str) -> AuroraError:
    return AuroraError("invalid", message)


def not_found(what: str = "conversation") -> AuroraError:
    return AuroraError("not_found", f"{what} not found")


INTERNAL_MESSAGE = "internal error; it has been logged"
