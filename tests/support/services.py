"""Where the external services of the test machine are, and what to do when one is missing."""

from __future__ import annotations

import os

import pytest

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def services_required() -> bool:
    return os.environ.get("AURORA_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def require_or_skip(service: str, reason: str) -> None:
    """Skip with a reason; with AURORA_REQUIRE_SERVICES=1 (CI) a missing service fails the test."""
    message = f"{service} not available: {reason}"
    if services_required():
        pytest.fail(message + " (AURORA_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def postgres_admin_url() -> str:
    return os.environ.get("AURORA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def redis_test_url() -> str:
    return os.environ.get("AURORA_TEST_REDIS_URL", DEFAULT_REDIS_URL)
