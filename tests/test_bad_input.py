"""Bad input that answered 500 (or a wrong answer) before the OpenAPI work of issue 14, each found by
schemathesis against GET /api/openapi.json except the mute dates (found probing the document's edge
values). Each now gets a clear 4xx and changes nothing. Both databases."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunningServer
from tests.support.clients import Api
from tests.support.foundation import raw_query

BOUNDARY = "b0undary"


def _uploads(db_url: str) -> int:
    return raw_query(db_url, "SELECT COUNT(*) FROM upload")[0][0]


def _blobs(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.is_file() and "upload" in str(p.relative_to(data_dir))]


async def test_malformed_multipart_uploads_are_400_and_store_nothing(server: RunningServer, api: Api,
                                                                     db_url: str, tmp_path: Path) -> None:
    alice = await api.register()
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello\r\n'
    cases = {
        # No boundary parameter at all (was ValueError in aiohttp's MultipartReader: 500).
        "no boundary": ("multipart/form-data", part + f"--{BOUNDARY}--\r\n"),
        # A part header with a control character in it (was InvalidHeader: 500).
        "bad part header": (f"multipart/form-data; boundary={BOUNDARY}",
                            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="@\x01"\r\n\r\n{{}}\r\n'
                            f"--{BOUNDARY}--\r\n"),
        # The body stops before its closing delimiter.
        "no closing delimiter": (f"multipart/form-data; boundary={BOUNDARY}", part),
    }
    before = _uploads(db_url)
    for name, (content_type, body) in cases.items():
        status, answer = await api.request("POST", "/api/uploads", token=alice.token, data=body.encode(),
                                           headers={"Content-Type": content_type})
        assert status == 400, (name, status, answer)
        assert answer["error"]["code"] == "invalid", (name, answer)
    assert _uploads(db_url) == before
    # A well-formed one still goes through (the checks above are not refusing everything).
    good = part + f"--{BOUNDARY}--\r\n"
    status, answer = await api.request("POST", "/api/uploads", token=alice.token, data=good.encode(),
                                       headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert status == 201, answer
    assert _uploads(db_url) == before + 1


async def test_a_client_id_reused_for_another_request_is_409_and_changes_nothing(api: Api) -> None:
    """Before: an edit carrying the client_id of an earlier send answered 200 with that *message* as its
    `entry` and `duplicate: true`, and the edit was silently not applied."""
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    base = f"/api/conversations/{conversation['id']}/messages"
    status, sent = await api.send(alice, conversation["id"], "original", "key-1")
    assert status == 201, sent
    seq = sent["message"]["seq"]
    status, other = await api.send(alice, conversation["id"], "another", "key-2")
    assert status == 201, other

    status, answer = await api.request("PATCH", f"{base}/{seq}", token=alice.token,
                                       json={"body": "edited", "client_id": "key-1"})
    assert status == 409 and answer["error"]["code"] == "conflict", (status, answer)

    status, edit = await api.request("PATCH", f"{base}/{seq}", token=alice.token,
                                     json={"body": "edited", "client_id": "edit-1"})
    assert status == 200 and edit["duplicate"] is False, edit
    # The same edit again is a retry (the original entry); the same key on another message is not.
    status, again = await api.request("PATCH", f"{base}/{seq}", token=alice.token,
                                      json={"body": "edited", "client_id": "edit-1"})
    assert status == 200 and again["duplicate"] is True and again["entry"] == edit["entry"], again
    status, answer = await api.request("PATCH", f"{base}/{other['message']['seq']}", token=alice.token,
                                       json={"body": "edited too", "client_id": "edit-1"})
    assert status == 409 and answer["error"]["code"] == "conflict", (status, answer)
    # A send with an edit's key is refused too, and stores nothing.
    status, answer = await api.send(alice, conversation["id"], "new text", "edit-1")
    assert status == 409 and answer["error"]["code"] == "conflict", (status, answer)

    status, page = await api.request("GET", base, token=alice.token)
    assert status == 200
    assert [(m["seq"], m["body"]) for m in page["messages"]] == [(seq, "edited"),
                                                                 (other["message"]["seq"], "another")]
    status, current = await api.request("GET", f"/api/conversations/{conversation['id']}", token=alice.token)
    assert current["conversation"]["last_seq"] == edit["entry"]["seq"]  # no entry after the one edit


async def test_mute_until_the_edges_of_the_calendar(api: Api) -> None:
    """9999-12-31T23:59:59-14:00 is after the last datetime once in UTC (was OverflowError: 500)."""
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    mute = f"/api/conversations/{conversation['id']}/mute"
    status, answer = await api.request("PUT", mute, token=alice.token, json={"until": "0001-01-01T00:00:00+14:00"})
    assert status == 400 and answer["error"]["code"] == "invalid", (status, answer)
    status, state = await api.request("GET", f"/api/conversations/{conversation['id']}", token=alice.token)
    assert state["conversation"]["muted"] is False  # nothing changed
    status, answer = await api.request("PUT", mute, token=alice.token, json={"until": "9999-12-31T23:59:59-14:00"})
    assert status == 200, answer
    assert answer == {"conversation_id": conversation["id"], "muted": True, "muted_until": None}


async def test_unicode_digits_are_not_ids(api: Api) -> None:
    """"¹".isdigit() is true and int("¹") raises: ids, seqs and limits of every route answered 500."""
    alice, bob = await api.register(), await api.register()
    conversation = await api.conversation(alice, [bob])
    for method, path in (("GET", f"/api/conversations/{conversation['id']}/messages?limit=%C2%B9"),
                         ("GET", f"/api/conversations/{conversation['id']}/messages?before_seq=%E2%91%A0"),
                         ("GET", "/api/conversations/%C2%B2"),
                         ("DELETE", "/api/sessions/%C2%B9"),
                         ("GET", "/api/search?q=hello&limit=%C2%B3")):
        status, answer = await api.request(method, path, token=alice.token)
        assert status == 400 and answer["error"]["code"] == "invalid", (method, path, status, answer)
    status, sessions = await api.request("GET", "/api/sessions", token=alice.token)
    assert status == 200 and len(sessions["sessions"]) == 1  # still open
    # Other scripts' digits are not ids either ("٣" is 3 to int()), ASCII ones are.
    status, answer = await api.request("GET", "/api/conversations/%D9%A3", token=alice.token)
    assert status == 400, answer
    status, answer = await api.request("GET", f"/api/conversations/{conversation['id']}", token=alice.token)
    assert status == 200, answer


async def test_a_wrong_method_is_405_with_allow(api: Api) -> None:
    """The JSON 405 of /api lost aiohttp's Allow header (RFC 9110 requires it)."""
    alice = await api.register()
    status, answer, headers = await api.request_with_headers("PUT", "/api/me", token=alice.token)
    assert status == 405 and answer["error"]["code"] == "invalid", answer
    assert set(headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}, headers.get("Allow")


async def test_unsubscribing_an_endpoint_with_a_nul_is_400(api: Api) -> None:
    """PostgreSQL refuses NUL in a query's text: DELETE /api/push/subscriptions?endpoint=%00... was a 500
    there (a 404 on SQLite). Both now say the endpoint is not valid text."""
    alice = await api.register()
    for how in ("query", "body"):
        if how == "query":
            status, answer = await api.request("DELETE", "/api/push/subscriptions?endpoint=%00x", token=alice.token)
        else:
            status, answer = await api.request("DELETE", "/api/push/subscriptions", token=alice.token,
                                               json={"endpoint": "https://fcm.googleapis.com/\u0000"})
        assert status == 400 and answer["error"]["code"] == "invalid", (how, status, answer)
