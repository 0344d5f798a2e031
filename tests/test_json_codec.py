"""The Socket.IO JSON codec: orjson where it can, the standard library where orjson refuses."""

from __future__ import annotations

import json
import math

from aurora.realtime import json_codec
from tests.support.clients import Api, SocketFactory


def test_round_trips_like_the_standard_library() -> None:
    value = {"a": [1, 2.5, None, True], "ü": "Ωmega \u2028", "nested": {"k": "v"}}
    assert json_codec.loads(json_codec.dumps(value)) == value == json.loads(json_codec.dumps(value))


def test_falls_back_for_what_orjson_refuses() -> None:
    huge = 2**80
    assert json_codec.loads(json_codec.dumps({"n": huge})) == {"n": huge}
    assert json_codec.loads('{"n": 100000000000000000000000}') == {"n": 10**23}
    assert math.isnan(json_codec.loads('{"x": NaN}')["x"])
    assert json_codec.loads(json_codec.dumps({1: "int key"})) == {"1": "int key"}


async def test_huge_integers_from_a_client_get_an_error_code_not_a_dropped_socket(
        api: Api, sockets: SocketFactory) -> None:
    alice = await api.register()
    sock = await sockets.connect(alice.token)
    ack = await sock.call("send_message", {"conversation_id": 2**80, "body": "hi"})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack
    assert sock.client.connected
