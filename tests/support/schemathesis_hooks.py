"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.support.schemathesis_hooks) for the run against the
seeded server of tests/support/openapi.py.

Who sends each request:
- the routes that end the caller's own session or token (logout, password change, ending a session):
  a user registered for that one test case, so the admin's token survives the run;
- leaving a group: a user registered for that one test case and added to the seeded group first, so
  the success path (200) is reached as well, and the admin stays in the group;
- everything else: the admin (`create-user --admin`), so the admin routes answer for real.
Without a token (schemathesis's negative security tests) every authenticated route must answer 401.
"""

from __future__ import annotations

import os
import uuid

import requests
import schemathesis

BASE_URL = os.environ.get("AURORA_OPENAPI_URL", "")
ADMIN_TOKEN = os.environ.get("AURORA_OPENAPI_ADMIN_TOKEN", "")
GROUP_ID = os.environ.get("AURORA_OPENAPI_GROUP_ID", "")
PASSWORD = "correct horse battery"  # tests/support/clients.py DEFAULT_PASSWORD
SESSION_ENDING = ["/api/auth/logout", "/api/auth/password", "/api/sessions/{session_id}"]
LEAVE = "/api/conversations/{conversation_id}/members/me"


def _register() -> str:
    response = requests.post(f"{BASE_URL}/api/auth/register", timeout=10, json={
        "username": f"st_{uuid.uuid4().hex[:12]}", "password": PASSWORD})
    response.raise_for_status()
    return str(response.json()["token"])


def _bearer(case: schemathesis.Case, token: str) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@schemathesis.auth(refresh_interval=None).apply_to(path=SESSION_ENDING)
class FreshUser:
    """A new account (a new session) for each test case."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return _register()

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        _bearer(case, data)


@schemathesis.auth(refresh_interval=None).apply_to(path=LEAVE)
class FreshGroupMember:
    """A new account in the seeded group for each test case: leaving it is a real leave."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        token = _register()
        me = requests.get(f"{BASE_URL}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        me.raise_for_status()
        added = requests.post(f"{BASE_URL}/api/conversations/{GROUP_ID}/members", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                              json={"user_ids": [me.json()["user"]["id"]]})
        added.raise_for_status()
        return token

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        _bearer(case, data)


@schemathesis.auth()
class Admin:
    """Every other route: the seeded admin."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return ADMIN_TOKEN

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        _bearer(case, data)

