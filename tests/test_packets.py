"""FastScanPacket answers data_is_binary exactly as python-socketio's Packet does, and its packets
encode byte for byte the same (aurora/realtime/packets.py)."""

from __future__ import annotations

from typing import Any

import pytest
from socketio import packet as socketio_packet

from aurora.realtime.packets import FastScanPacket

MESSAGE = {"id": 1, "conversation_id": 7, "seq": 3, "kind": "text", "body": "hi", "client_id": None,
           "reactions": [{"emoji": "👍", "count": 2, "user_ids": [1, 2]}], "attachments": [],
           "reply_to": {"seq": 1, "excerpt": "x"}, "deleted": False, "edited_at": None}

CASES: list[Any] = [
    None, 0, "text", b"raw", bytearray(b"x"), [], {}, [1, "a", None], ["new_message", MESSAGE],
    ["new_message", {**MESSAGE, "blob": b"\x00\x01"}], [[[[b"deep"]]]], {"a": {"b": [1, {"c": bytearray()}]}},
    ("tuple", b"not searched"), {b"key": "keys are not searched"}, [{"ok": True, "message": MESSAGE}],
    [MESSAGE] * 50 + [b"last"],
]


@pytest.mark.parametrize("data", CASES, ids=range(len(CASES)))
def test_same_answer_as_upstream(data: Any) -> None:
    assert FastScanPacket.data_is_binary(data) == socketio_packet.Packet.data_is_binary(data)


@pytest.mark.parametrize("data", [["new_message", MESSAGE], ["x", {"blob": b"\x00"}, 3]], ids=["json", "binary"])
def test_same_encoding_as_upstream(data: Any) -> None:
    ours = FastScanPacket(socketio_packet.EVENT, data=data, namespace="/chat", id=5).encode()
    theirs = socketio_packet.Packet(socketio_packet.EVENT, data=data, namespace="/chat", id=5).encode()
    assert ours == theirs
