"""AuroraError: the server's error codes (docs/protocol.md), plus the few the SDK itself produces."""

from __future__ import annotations

from typing import Any

# Codes that a retry with the same client_id may cure. The SDK retries these by itself.
RETRYABLE_CODES = frozenset({"internal", "unavailable", "rate_limited", "disconnected", "timeout"})
# Codes the SDK produces on its own (never sent by the server).
#   disconnected: the socket dropped before the answer came (retried after the reconnect);
#   timeout:      no answer within the request timeout (retried);
#   closed:       the client was closed before the operation finished.


class AuroraError(Exception):
    """An error with a stable `code` (`invalid`, `not_found`, `forbidden`, `conflict`, `too_large`,
    `rate_limited`, `auth_*`, `internal`, `unavailable`, ...); `retry_after_ms` is set for
    `rate_limited`; `status` is the HTTP status for REST errors."""

    def __init__(self, code: str, message: str = "", *, retry_after_ms: int | None = None,
                 status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES

    @classmethod
    def from_payload(cls, error: Any, *, status: int | None = None, retry_after_s: str | None = None) -> AuroraError:
        """From the `error` object of an ack or a REST answer: {code, message, retry_after_ms?}."""
        if not isinstance(error, dict):
            return cls("internal", f"unexpected error payload {error!r}", status=status)
        retry_after_ms = error.get("retry_after_ms")
        if retry_after_ms is None and retry_after_s is not None:
            try:
                retry_after_ms = int(float(retry_after_s) * 1000)
            except ValueError:
                retry_after_ms = None
        return cls(str(error.get("code") or "internal"), str(error.get("message") or ""),
                   retry_after_ms=int(retry_after_ms) if retry_after_ms is not None else None, status=status)

    def __repr__(self) -> str:
        return f"AuroraError({self.code!r}, {self.message!r})"
