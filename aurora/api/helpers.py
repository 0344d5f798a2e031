"""Request helpers: the Aurora context, the bearer user, the JSON body."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from aurora.context import AURORA, Aurora
from aurora.errors import AuroraError, invalid
from aurora.services.accounts import Device
from aurora.services.limits import client_address
from aurora.services.tokens import Credentials

_USER = web.RequestKey("user", dict)
_CREDENTIALS = web.RequestKey("credentials", Credentials)

def aurora(request: web.Request) -> Aurora:
    return request.app[AURORA]

def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()

def client_ip(request: web.Request) -> str:
    """The client's address: X-Forwarded-For only when the peer is one of trusted_proxies."""
    return client_address(request.remote, request.headers.get("X-Forwarded-For"), aurora(request).trusted_networks)

async def current_user(request: web.Request) -> dict[str, Any]:
    """The authenticated user (cached on the request); auth_* errors otherwise."""
    if _USER not in request:
        request[_USER], request[_CREDENTIALS] = await aurora(request).accounts.authenticate_credentials(
            bearer_token(request))
    return request[_USER]

async def current_credentials(request: web.Request) -> Credentials:
    """The bearer token's credentials (its session); auth_* errors otherwise."""
    await current_user(request)
    return request[_CREDENTIALS]

def device_of(request: web.Request) -> Device:
    return Device(address=client_ip(request), user_agent=request.headers.get("User-Agent"))

async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        raise invalid("a JSON object body is required")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise AuroraError("too_large", "request body too large") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise invalid("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid("the body must be a JSON object")
    return data
