"""VAPID (RFC 8292) keys: parsing, generating, the public key browsers subscribe with, and the
signed Authorization header, cached per push service so a burst does not sign once per push.

A key is written as the URL-safe base64 of the raw 32-byte P-256 private value (the form
`web-push generate-vapid-keys` and py-vapid print) or of its DER encoding. Several keys may be
configured: the first is the one new subscriptions are made with, and each subscription is
signed with the key it was made with, for as long as that key is listed (key rotation).
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid

# A token is valid for 12 hours (RFC 8292 allows at most 24); it is reused for 1 hour.
TOKEN_LIFETIME_S = 12 * 3600
TOKEN_REUSE_S = 3600


class VapidKeyError(ValueError):
    """A configured VAPID key cannot be read."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_private_key(text: str) -> Vapid:
    try:
        vapid = Vapid.from_string(text.strip())
    except Exception as exc:  # py-vapid raises whatever the decoder raised
        raise VapidKeyError(f"not a URL-safe base64 P-256 private key (raw or DER): {exc.__class__.__name__}") from None
    if not isinstance(vapid.private_key, ec.EllipticCurvePrivateKey) or \
            not isinstance(vapid.private_key.curve, ec.SECP256R1):
        raise VapidKeyError("not a P-256 (prime256v1) key")
    return vapid


def check_subject(subject: str) -> None:
    """The contact push services see: a mailto: address or an https:// URL (py-vapid's own check)."""
    try:
        Vapid.from_string(generate_private_key()).sign({"aud": "https://push.example", "sub": subject})
    except Exception:
        raise VapidKeyError("must be a mailto: address or an https:// URL (RFC 8292)") from None


def generate_private_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def public_key_of(vapid: Vapid) -> str:
    """The uncompressed public point, URL-safe base64: the applicationServerKey browsers need."""
    raw = vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(raw)


@dataclass
class _Token:
    header: str
    reuse_until: float


class VapidKeys:
    """The configured keys by public key; signs Authorization headers (thread-safe)."""

    def __init__(self, private_keys: tuple[str, ...], subject: str) -> None:
        if not private_keys:
            raise VapidKeyError("no VAPID key configured")
        self._subject = subject
        self._by_public: dict[str, Vapid] = {}
        for text in private_keys:
            vapid = parse_private_key(text)
            self._by_public.setdefault(public_key_of(vapid), vapid)
        self.current = public_key_of(parse_private_key(private_keys[0]))
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._lock = threading.Lock()

    def knows(self, public_key: str) -> bool:
        return public_key in self._by_public

    def authorization(self, public_key: str, audience: str) -> str:
        """`vapid t=<JWT>,k=<public key>` for a push service origin, signed with that key."""
        now = time.time()
        with self._lock:
            token = self._tokens.get((public_key, audience))
            if token is not None and token.reuse_until > now:
                return token.header
        vapid = self._by_public[public_key]
        claims = {"aud": audience, "exp": int(now) + TOKEN_LIFETIME_S, "sub": self._subject}
        header = vapid.sign(claims)["Authorization"]
        with self._lock:
            self._tokens[(public_key, audience)] = _Token(header, now + TOKEN_REUSE_S)
        return header
