"""Schemathesis (pinned in requirements-dev.txt) against the real server, on SQLite and PostgreSQL.

`python app.py` on a kernel-picked port, an admin and a little of everything seeded
(tests/support/openapi.py), then `schemathesis run` on its GET /api/openapi.json with every case
authenticated by tests/support/schemathesis_hooks.py (a fresh user for the routes that end their own
session). Positive and negative data; the examples, coverage and fuzzing phases (not the stateful one:
the seeded ids already lead generated requests to real conversations, messages and files, and
sequences would double the run); deterministic generation (the same cases every run, no example
database); at most MAX_EXAMPLES cases per operation and phase; one worker. It fails on any 5xx, any
status, content type or body the document does not describe, on any error the server logs, and when
an operation never got past its refusals to a 2xx.

A last test shows the run can fail: the same server against a document that claims a field it never
sends must be reported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aurora.api.openapi import build_document
from tests.support.openapi import SeededServer, answered_2xx, run_schemathesis, schemathesis_env, seeded_server

MAX_EXAMPLES = 10
TIMEOUT_S = 150
# The fresh user of each case (schemathesis_hooks.py) has one session, whose id the generator cannot know.
NO_2XX = {"DELETE /api/sessions/{session_id}": "tests/test_sessions.py ends sessions"}
# Every check of a single request but positive_data_acceptance (it wants every schema-valid request to
# answer 2xx, but many rules are not in a schema: "not yourself", "in the future", "a member").
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance,negative_data_rejection,missing_required_header,unsupported_method,"
          "allow_header_conformance,ignored_auth")


def run_args(server: SeededServer, tmp: Path, location: str | None = None) -> list[str]:
    config = tmp / "schemathesis.toml"
    # The seeded attachment's signed URLs: only the server can sign, so they are given, not generated.
    config.write_text("".join(
        f'[[operations]]\ninclude-path = "{path}"\n'
        f'parameters = {{ "upload_id" = "{server.upload_id}", "sig" = "{sig}" }}\n\n'
        for path, sig in (("/api/files/{upload_id}", server.file_sig),
                          ("/api/files/{upload_id}/thumbnail", server.thumbnail_sig))))
    return ["--config-file", str(config), "run", location or server.url + "/api/openapi.json",
            "--url", server.url,
            "--checks", CHECKS, "--mode", "all", "--phases", "examples,coverage,fuzzing",
            "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic",
            "--workers", "1", "--request-timeout", "10",
            "--report", "junit", "--report-junit-path", str(tmp / "junit.xml")]


@pytest.mark.timeout(TIMEOUT_S + 30)  # ~20-30 s of CPU; this machine's other jobs stretch it
async def test_every_operation_conforms_to_the_document(tmp_path: Path, db_url: str) -> None:
    async with seeded_server(tmp_path, db_url) as server:
        seeded = len(server.process.log_text())
        status, output = await run_schemathesis(run_args(server, tmp_path), schemathesis_env(server),
                                                tmp_path, TIMEOUT_S)
        server_log = server.process.log_text()[seeded:]
    assert status == 0, output[-12000:]
    # Every operation was run (schemathesis leaves out the one that serves the document itself).
    documented = {f"{method.upper()} {path}" for path, methods in build_document()["paths"].items()
                  for method in methods} - {"GET /api/openapi.json"}
    tested = set(re.findall(r'<testcase name="([^"]+)"', (tmp_path / "junit.xml").read_text()))
    assert tested == documented, (sorted(documented - tested), sorted(tested - documented))
    # And the run reached the code behind the refusals: every operation answered a 2xx at least once
    # (the seed data, the document's examples), but one.
    reached = answered_2xx(server_log, list(build_document()["paths"]))
    assert documented - reached == set(NO_2XX), sorted(documented - reached)
    # Nothing the server logged as its own error while schemathesis ran (a bug answered with a
    # status the checks accept would still be logged here by the error middleware).
    errors = [line for line in server_log.splitlines() if " ERROR aurora" in line]
    assert not errors, server_log[-8000:]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_document_that_lies_fails_the_run(tmp_path: Path, db_url: str) -> None:
    """GET /api/me documented with a field the server never sends: schemathesis must say so."""
    document = build_document()
    user = document["components"]["schemas"]["User"]
    user["properties"]["favourite_colour"] = {"type": "string"}
    user["required"].append("favourite_colour")
    document["paths"] = {"/api/me": document["paths"]["/api/me"]}
    lying = tmp_path / "lying.json"
    lying.write_text(json.dumps(document))
    async with seeded_server(tmp_path, db_url) as server:
        status, output = await run_schemathesis(run_args(server, tmp_path, str(lying)), schemathesis_env(server),
                                                tmp_path, TIMEOUT_S)
    assert status != 0, output[-4000:]
    assert "favourite_colour" in output, output[-4000:]
