"""GET /api/openapi.json covers the real app's router exactly, and says what the routes answer.

The router is the one create_app builds (every route of aurora/api/routes.py, the web app's, Socket.IO's).
A route added without a document entry fails here, and so does a document entry whose route is gone.
What the routes answer is checked by tests/test_openapi_schemathesis.py; here only what can be
checked without generating requests: auth on every authenticated operation, 429 on every limited route,
every $ref resolving, the document schemathesis accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis

from aurora.api.openapi import EXCLUDED, build_document
from aurora.errors import STATUS_BY_CODE
from aurora.services.limits import LIMIT_OF
from aurora.settings import Settings
from tests.conftest import RunningServer, make_settings
from tests.support.clients import Api

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def router_routes(settings: Settings) -> dict[tuple[str, str], Any]:
    """(METHOD, template) -> route of the app create_app builds; HEAD is the GET's (aiohttp's allow_head)."""
    from aurora.application import create_app

    app = create_app(settings)
    return {(route.method, route.resource.canonical): route for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None}


def documented(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): operation for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS}


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, f"sqlite:///{tmp_path}/aurora.db")


def test_every_route_is_documented_and_every_documented_route_exists(sqlite_settings: Settings) -> None:
    routes = router_routes(sqlite_settings)
    operations = documented(build_document())
    assert len(routes) > 40  # the real router, not an empty one
    assert set(routes) - set(operations) - set(EXCLUDED) == set(), "routes missing from the document"
    assert set(operations) - set(routes) == set(), "documented operations without a route"
    assert set(EXCLUDED) - set(routes) == set(), "exclusions that name no route"
    assert set(EXCLUDED) & set(operations) == set(), "both excluded and documented"


def test_the_check_sees_a_missing_route(sqlite_settings: Settings) -> None:
    document = build_document()
    del document["paths"]["/api/me"]
    missing = set(router_routes(sqlite_settings)) - set(documented(document)) - set(EXCLUDED)
    assert missing == {("GET", "/api/me")}


def test_limited_routes_document_429_and_authenticated_ones_401(sqlite_settings: Settings) -> None:
    operations = documented(build_document())
    for key, route in router_routes(sqlite_settings).items():
        if key in EXCLUDED:
            continue
        responses = operations[key]["responses"]
        if route.name in LIMIT_OF:
            assert "429" in responses, key
        if operations[key]["security"]:
            assert "401" in responses, key
        assert all(status.isdigit() for status in responses), (key, "no `default`: every status is listed")


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_the_document_is_valid_openapi_and_every_ref_resolves() -> None:
    document = build_document()
    schemathesis.openapi.from_dict(document).validate()
    for ref in set(_refs(document)):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert part in target, ref
            target = target[part]
    assert document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"] == \
        list(STATUS_BY_CODE)


async def test_the_server_serves_it(server: RunningServer, api: Api) -> None:
    status, body, headers = await api.request_with_headers("GET", "/api/openapi.json")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert body == build_document()


async def test_every_authenticated_operation_refuses_a_request_without_a_token(server: RunningServer,
                                                                               api: Api) -> None:
    """Documented `security` is true: each such operation, called with no token, answers 401 auth_required."""
    operations = documented(build_document())
    checked = 0
    for (method, path), operation in operations.items():
        if not operation["security"]:
            continue
        concrete = path.replace("{emoji}", "%F0%9F%91%8D")
        for name in ("conversation_id", "seq", "user_id", "session_id", "upload_id"):
            concrete = concrete.replace("{" + name + "}", "1")
        status, body = await api.request(method, concrete, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert status == 401 and body["error"]["code"] == "auth_required", (method, path, status, body)
        checked += 1
    assert checked > 35
