"""A stand-in Web Push service on loopback that checks what a real one checks.

Each request to `/push/<device>` must carry (RFC 8030, 8291, 8292):
- `Authorization: vapid t=<JWT>, k=<public key>`: k is the applicationServerKey the device subscribed
  with, the JWT is ES256 and verifies with k, `aud` is this service's origin, `exp` lies in the future
  and at most 24 hours ahead, `sub` is a mailto: or https: contact;
- `Content-Encoding: aes128gcm` and a body of at most 4096 bytes that decrypts (http-ece) with the
  device's private key and auth secret into a JSON payload;
- a `TTL` header (a non-negative integer); `Topic` (at most 32 URL-safe base64 characters) and
  `Urgency` (very-low | low | normal | high) when present.
A request that breaks a rule is answered like a real service would (400/401/403/413/415) and recorded
in `violations`, which a test expects to stay empty. A device may be scripted to answer with given
statuses (410, 503...) and the whole service may be made slow.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

AUTH_HEADER = re.compile(r"^vapid\s+(?P<params>.+)$", re.IGNORECASE)
TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
URGENCIES = ("very-low", "low", "normal", "high")
MAX_BODY = 4096


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """A browser's push subscription: its key pair and auth secret stay here, as in a browser."""

    name: str
    endpoint: str
    vapid_key: str  # the applicationServerKey it subscribed with
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives a web app."""
        point = self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                           serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)}}


@dataclass
class Delivery:
    device: str
    payload: dict[str, Any]
    ttl: int
    topic: str | None
    urgency: str | None
    claims: dict[str, Any]


class StandInPushService:
    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.deliveries: list[Delivery] = []
        self.violations: list[str] = []
        self.attempts: Counter[str] = Counter()
        self.delay_s = 0.0
        self._scripts: dict[str, list[int]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.origin = ""

    async def start(self) -> StandInPushService:
        app = web.Application()
        app.router.add_post("/push/{device}", self._push)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def device(self, name: str, vapid_key: str) -> Device:
        device = Device(name, f"{self.origin}/push/{name}", vapid_key)
        self.devices[name] = device
        return device

    def script(self, name: str, statuses: list[int]) -> None:
        """The device's next answers, in order (after they run out: 201 Created)."""
        self._scripts[name] = list(statuses)

    def delivered_to(self, name: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.device == name]

    async def wait_for(self, count: int, name: str | None = None, timeout: float = 10.0) -> list[Delivery]:
        """At least `count` deliveries (to one device, or to any); returns them."""
        def found() -> list[Delivery]:
            return self.deliveries if name is None else self.delivered_to(name)

        async def enough() -> list[Delivery]:
            async with self._changed:
                while len(found()) < count:
                    await self._changed.wait()
                return found()
        try:
            return await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            raise AssertionError(f"{len(found())} push(es) to {name or 'any device'}, expected {count}; "
                                 f"violations: {self.violations}") from None

    # -- the checks of a real push service ---------------------------------------------------
    def _refuse(self, status: int, reason: str) -> web.Response:
        self.violations.append(reason)
        return web.Response(status=status, text=reason)

    def _verify_vapid(self, header: str, device: Device) -> dict[str, Any] | str:
        """The JWT claims, or why the header is refused."""
        match = AUTH_HEADER.match(header.strip())
        if not match:
            return "Authorization is not 'vapid t=..., k=...'"
        params = dict(part.strip().split("=", 1) for part in match["params"].split(",") if "=" in part)
        token, key = params.get("t"), params.get("k")
        if not token or not key:
            return "Authorization lacks t= or k="
        if key != device.vapid_key:
            return "k is not the applicationServerKey the subscription was made with"
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
            claims = jwt.decode(token, public, algorithms=["ES256"], audience=self.origin,
                                options={"require": ["aud", "exp", "sub"]})
        except (ValueError, jwt.PyJWTError) as exc:
            return f"VAPID JWT refused: {exc.__class__.__name__}: {exc}"
        if jwt.get_unverified_header(token).get("alg") != "ES256":
            return "VAPID JWT is not ES256"
        if claims["exp"] > time.time() + 24 * 3600:
            return "VAPID exp is more than 24 hours ahead"
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            return "VAPID sub is not a mailto: or https: contact"
        return claims

    async def _push(self, request: web.Request) -> web.Response:
        name = request.match_info["device"]
        device = self.devices.get(name)
        if device is None:
            return web.Response(status=404, text="no such subscription")
        self.attempts[name] += 1
        try:
            claims = self._verify_vapid(request.headers.get("Authorization", ""), device)
            if isinstance(claims, str):
                return self._refuse(403 if "k is not" in claims or "refused" in claims else 401, claims)
            if request.headers.get("Content-Encoding") != "aes128gcm":
                return self._refuse(415, f"Content-Encoding {request.headers.get('Content-Encoding')!r}")
            ttl = request.headers.get("TTL", "")
            if not ttl.isdigit():
                return self._refuse(400, f"TTL {ttl!r} is not a non-negative integer")
            topic, urgency = request.headers.get("Topic"), request.headers.get("Urgency")
            if topic is not None and not TOPIC.match(topic):
                return self._refuse(400, f"Topic {topic!r}")
            if urgency is not None and urgency not in URGENCIES:
                return self._refuse(400, f"Urgency {urgency!r}")
            body = await request.read()
            if len(body) > MAX_BODY:
                return self._refuse(413, f"body of {len(body)} bytes")
            try:
                plain = http_ece.decrypt(body, private_key=device.private_key, auth_secret=device.auth,
                                         version="aes128gcm")
                payload = json.loads(plain)
            except Exception as exc:
                return self._refuse(400, f"body does not decrypt to JSON: {exc.__class__.__name__}: {exc}")
            if self.delay_s:
                await asyncio.sleep(self.delay_s)  # a slow push service, not a test's evidence
            script = self._scripts.get(name)
            if script:
                status = script.pop(0)
                if status >= 300:
                    return web.Response(status=status, headers={"Retry-After": "0"} if status == 429 else None)
            self.deliveries.append(Delivery(name, payload, int(ttl), topic, urgency, claims))
            return web.Response(status=201, headers={"Location": f"{self.origin}/message/{len(self.deliveries)}"})
        finally:
            async with self._changed:
                self._changed.notify_all()
