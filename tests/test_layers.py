"""The layers' arrows point one way: transport -> services -> storage (checked on the source)."""

from __future__ import annotations

import ast
from pathlib import Path

from aurora.settings import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "aurora"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _offenders(layer: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        hits = sorted(name for name in _imports(path)
                      if any(name == f or name.startswith(f + ".") for f in forbidden))
        if hits:
            bad[str(path.relative_to(PROJECT_ROOT))] = hits
    return bad


def test_services_import_neither_the_transport_nor_the_web_layer() -> None:
    assert list((PACKAGE / "services").rglob("*.py")), "no services found"
    assert _offenders("services", ("aurora.realtime", "aurora.api", "socketio", "aiohttp")) == {}


def test_storage_imports_no_layer_above_it() -> None:
    assert _offenders("storage", ("aurora.realtime", "aurora.api", "aurora.services", "socketio",
                                  "aiohttp")) == {}


def test_the_check_sees_an_import() -> None:
    """Control: the realtime layer does import the services, so the checker can find imports."""
    assert _offenders("realtime", ("aurora.services",))
