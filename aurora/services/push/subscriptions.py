"""What a browser PushSubscription must look like before Aurora keeps it.

Every POST is checked whole before anything is stored: the endpoint (a URL Aurora will POST to, so
it must name an allowed push service: `push_endpoint_hosts`, https unless
`push_allow_insecure_endpoints`), `keys.p256dh` (an uncompressed P-256 point, URL-safe base64) and
`keys.auth` (16 bytes, URL-safe base64): RFC 8291 section 3.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from aurora.errors import invalid
from aurora.services.push.vapid import b64url_decode
from aurora.settings import Settings

MAX_ENDPOINT_CHARS = 1024
AUTH_SECRET_BYTES = 16
P256_POINT_BYTES = 65


@dataclass(frozen=True)
class NewSubscription:
    endpoint: str
    p256dh: str
    auth: str


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """`push.example` allows that host; `.example` allows every host under example. Empty: any."""
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower()
        if entry.startswith("."):
            if host.endswith(entry) and len(host) > len(entry):
                return True
        elif host == entry:
            return True
    return False


def check_endpoint(endpoint: Any, settings: Settings) -> str:
    if not isinstance(endpoint, str) or not endpoint:
        raise invalid("endpoint must be a non-empty string")
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise invalid(f"endpoint must be at most {MAX_ENDPOINT_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in endpoint):
        raise invalid("endpoint must not contain spaces or control characters")
    try:
        parts = urlsplit(endpoint)
        port = parts.port  # raises ValueError on a port out of range
    except ValueError:
        raise invalid("endpoint is not a valid URL") from None
    schemes = ("https", "http") if settings.push_allow_insecure_endpoints else ("https",)
    if parts.scheme not in schemes:
        raise invalid("endpoint must be an https:// URL" if len(schemes) == 1 else "endpoint must be http(s)://")
    if not parts.hostname:
        raise invalid("endpoint has no host")
    if parts.username is not None or parts.password is not None:
        raise invalid("endpoint must not carry credentials")
    if parts.fragment:
        raise invalid("endpoint must not have a #fragment")
    if not host_allowed(parts.hostname, settings.push_endpoint_hosts):
        raise invalid(f"endpoint host {parts.hostname!r} is not an allowed push service")
    del port
    return endpoint


def _decoded(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise invalid(f"{name} must be a URL-safe base64 string")
    try:
        return b64url_decode(value.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        raise invalid(f"{name} is not valid URL-safe base64") from None


def check_keys(keys: Any) -> tuple[str, str]:
    if not isinstance(keys, dict):
        raise invalid('keys must be an object {"p256dh": ..., "auth": ...}')
    point = _decoded(keys.get("p256dh"), "keys.p256dh")
    if len(point) != P256_POINT_BYTES or point[0] != 4:
        raise invalid("keys.p256dh must be an uncompressed P-256 public key (65 bytes)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise invalid("keys.p256dh is not a point on the P-256 curve") from None
    if len(_decoded(keys.get("auth"), "keys.auth")) != AUTH_SECRET_BYTES:
        raise invalid(f"keys.auth must be {AUTH_SECRET_BYTES} bytes")
    return keys["p256dh"], keys["auth"]


def parse_subscription(data: dict[str, Any], settings: Settings) -> NewSubscription:
    """A PushSubscription's JSON (`subscription.toJSON()`); expirationTime is accepted and ignored."""
    endpoint = check_endpoint(data.get("endpoint"), settings)
    p256dh, auth = check_keys(data.get("keys"))
    expiration = data.get("expirationTime")
    if expiration is not None and (isinstance(expiration, bool) or not isinstance(expiration, (int, float))):
        raise invalid("expirationTime must be a number or null")
    return NewSubscription(endpoint, p256dh, auth)
