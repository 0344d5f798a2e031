"""Each Storage has its own database: two applications in one process never share one."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings, start_server
from tests.support.clients import Api
from tests.support.foundation import raw_query


async def test_two_apps_in_one_process_keep_their_own_databases(tmp_path: Path) -> None:
    first_url, second_url = f"sqlite:///{tmp_path}/first.db", f"sqlite:///{tmp_path}/second.db"
    first = await start_server(make_settings(tmp_path / "a", first_url))
    second = await start_server(make_settings(tmp_path / "b", second_url))  # started last
    first_api, second_api = Api(first.url), Api(second.url)
    try:
        on_first = await first_api.register()
        on_second = await second_api.register()
        assert raw_query(first_url, "SELECT username FROM user") == [(on_first.username,)]
        assert raw_query(second_url, "SELECT username FROM user") == [(on_second.username,)]
        # Each server answers from its own database, whichever Storage was created last.
        status, _ = await first_api.request("GET", "/api/me", token=on_first.token)
        assert status == 200
        status, body = await first_api.request("GET", f"/api/users?q={on_second.username}", token=on_first.token)
        assert status == 200 and body["users"] == [], body
    finally:
        await first_api.close()
        await second_api.close()
        await first.stop()
        await second.stop()
