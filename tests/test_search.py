"""GET /api/search on both engines: current text only, never deleted, members only, syntax, paging."""

from __future__ import annotations

from typing import Any

from tests.support.clients import Account, Api


async def search(api: Api, account: Account, q: str, **params: Any) -> tuple[int, Any]:
    query = {"q": q, **{k: str(v) for k, v in params.items()}}
    from urllib.parse import urlencode
    return await api.request("GET", f"/api/search?{urlencode(query)}", token=account.token)


async def found(api: Api, account: Account, q: str, **params: Any) -> list[str]:
    status, body = await search(api, account, q, **params)
    assert status == 200, body
    return [r["message"]["body"] for r in body["results"]]


async def test_search_current_text_members_only(api: Api) -> None:
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    direct = (await api.conversation(alice, [bob]))["id"]
    group = (await api.conversation(alice, [bob, carol], title="team"))["id"]
    bodies = ["Le café est prêt", "the quick brown fox", "lazy dog sleeps", "quick thinking saves the day",
              "<b>html</b> & fox"]
    for body in bodies:
        status, _ = await api.send(alice, direct, body)
        assert status == 201
    status, _ = await api.send(carol, group, "group fox news")
    assert status == 201

    assert await found(api, bob, "fox") == ["group fox news", "<b>html</b> & fox", "the quick brown fox"]
    assert await found(api, bob, "cafe") == ["Le café est prêt"]  # accent-insensitive
    assert await found(api, bob, "CAFÉ") == ["Le café est prêt"]
    assert await found(api, bob, "quick fox") == ["the quick brown fox"]
    assert await found(api, bob, '"quick brown"') == ["the quick brown fox"]
    assert await found(api, bob, '"brown quick"') == []
    assert await found(api, bob, "dog or thinking") == ["quick thinking saves the day", "lazy dog sleeps"]
    assert await found(api, bob, "quick -fox") == ["quick thinking saves the day"]
    assert await found(api, bob, "fox", conversation_id=group) == ["group fox news"]
    assert await found(api, carol, "fox") == ["group fox news"]  # not a member of the direct one

    status, body = await search(api, bob, "html")
    result = body["results"][0]
    assert result["conversation_id"] == direct and result["message"]["kind"] == "text"
    assert result["highlight"] == "&lt;b&gt;<mark>html</mark>&lt;/b&gt; &amp; fox"  # escaped, then marked

    # Edited: found by the new text only. Deleted: never.
    seq = next(m["seq"] for m in (await api.request(
        "GET", f"/api/conversations/{direct}/messages", token=alice.token))[1]["messages"] if "lazy" in m["body"])
    status, _ = await api.request("PATCH", f"/api/conversations/{direct}/messages/{seq}", token=alice.token,
                                  json={"body": "energetic cat"})
    assert status == 200
    assert await found(api, bob, "lazy") == [] and await found(api, bob, "cat") == ["energetic cat"]
    status, _ = await api.request("DELETE", f"/api/conversations/{direct}/messages/{seq}", token=alice.token)
    assert status == 200
    assert await found(api, bob, "cat") == [] and await found(api, bob, "energetic") == []

    # A leaver finds nothing of the group, not even what was said while they were in it.
    status, _ = await api.request("DELETE", f"/api/conversations/{group}/members/me", token=carol.token)
    assert status == 200
    assert await found(api, carol, "fox") == []
    status, body = await search(api, carol, "fox", conversation_id=group)
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_search_pages_newest_first(api: Api) -> None:
    alice, bob = await api.register(), await api.register()
    cid = (await api.conversation(alice, [bob]))["id"]
    for i in range(5):
        await api.send(alice, cid, f"needle number {i}")
    seen: list[str] = []
    before = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2}
        if before is not None:
            params["before"] = before
        status, body = await search(api, bob, "needle", **params)
        assert status == 200
        seen += [r["message"]["body"] for r in body["results"]]
        before = body["next"]
        if before is None:
            break
    assert seen == [f"needle number {i}" for i in reversed(range(5))]


async def test_bad_queries_are_invalid(api: Api) -> None:
    alice = await api.register()
    for q in ("", "   ", "x" * 201, '"unbalanced', 'a "b', "-only", '-"only this"', "!!! ???", "or"):
        status, body = await search(api, alice, q)
        assert status == 400 and body["error"]["code"] == "invalid", (q, body)
    for params in ({"limit": 0}, {"limit": 101}, {"before": "x"}, {"conversation_id": "abc"}):
        status, body = await search(api, alice, "word", **params)
        assert status == 400, (params, body)
    status, body = await api.request("GET", "/api/search", token=alice.token)
    assert status == 400
    # Engine syntax in user text is only text: no 500 from FTS5 or tsquery operators.
    for q in ("NEAR(a b)", "a AND OR b", "col:umn", "a* ^b", "(a", "a & b | !c", "'quote'", "a\\b"):
        status, body = await search(api, alice, q)
        assert status == 200, (q, body)
