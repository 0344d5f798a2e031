"""FastScanPacket answers data_is_binary exactly as python-socketio's Packet does, and its packets
encode byte for byte the same (aurora/realtime/packets.py)."""

from __future__ import annotations

from typing import Any

import pytest
from socketio import packet as socketio_packet

from aurora.realtime.packets import FastScanPacket, event_head


class _Text(str):
    pass


class _Counter(int):
    pass


class _List(list):  # type: ignore[type-arg]
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


MESSAGE = {"id": 1, "conversation_id": 7, "seq": 3, "kind": "text", "body": "hi", "client_id": None,
           "reactions": [{"emoji": "👍", "count": 2, "user_ids": [1, 2]}], "attachments": [],
           "reply_to": {"seq": 1, "excerpt": "x"}, "deleted": False, "edited_at": None}

CASES: list[Any] = [
    None, 0, "text", b"raw", bytearray(b"x"), [], {}, [1, "a", None], ["new_message", MESSAGE],
    ["new_message", {**MESSAGE, "blob": b"\x00\x01"}], [[[[b"deep"]]]], {"a": {"b": [1, {"c": bytearray()}]}},
    ("tuple", b"not searched"), {b"key": "keys are not searched"}, [{"ok": True, "message": MESSAGE}],
    [MESSAGE] * 50 + [b"last"],
    [True, 1.5, None, "s"], [_Text("sub"), _Counter(3)], [_List([b"in a list subclass"])],
    [_Dict(blob=b"in a dict subclass")], [_List([1]), _Dict(a=[2])],
]


@pytest.mark.parametrize("data", CASES, ids=range(len(CASES)))
def test_same_answer_as_upstream(data: Any) -> None:
    assert FastScanPacket.data_is_binary(data) == socketio_packet.Packet.data_is_binary(data)


@pytest.mark.parametrize("data", [["new_message", MESSAGE], ["x", {"blob": b"\x00"}, 3]], ids=["json", "binary"])
def test_same_encoding_as_upstream(data: Any) -> None:
    ours = FastScanPacket(socketio_packet.EVENT, data=data, namespace="/chat", id=5).encode()
    theirs = socketio_packet.Packet(socketio_packet.EVENT, data=data, namespace="/chat", id=5).encode()
    assert ours == theirs


HEADS = [
    '2/chat,12["send_message",{"conversation_id":1,"body":"hi"}]', '2["typing",{}]', '2/chat,["sync"]',
    '2/calls,7["call_signal",{"data":{"sdp":"v=0"}}]', '2/chat,0["x"]', '2/a-b,3["name_2",1]',
    # Left to the full decoder: escapes, spaces, a query, attachments, an overlong id, other packet types.
    '2/chat,1["send\\u005fmessage",{}]', '2/chat,1[ "send_message"]', '2/chat?x=1,3["send_message"]',
    '51-/chat,3["upload",{"_placeholder":true,"num":0}]', '2/chat,' + '9' * 21 + '["send_message"]',
    '3/chat,1[{"ok":true}]', '2/chat,1[7]', '2/chat,1["a"', '2', '0/chat,{"token":"t"}',
]


@pytest.mark.parametrize("encoded", HEADS, ids=range(len(HEADS)))
def test_event_head_agrees_with_the_decoder_or_stays_out(encoded: str) -> None:
    head = event_head(encoded)
    if head is None:
        return
    try:
        packet = socketio_packet.Packet(encoded_packet=encoded)
    except ValueError:  # not JSON after all: the scan read a head the decoder would refuse
        pytest.fail(f"event_head read {head} from a packet the decoder refuses")
    assert packet.packet_type == socketio_packet.EVENT
    assert head == (packet.namespace or "/", packet.id, packet.data[0])


def test_event_head_reads_the_plain_cases() -> None:
    assert event_head(HEADS[0]) == ("/chat", 12, "send_message")
    assert event_head(HEADS[1]) == ("/", None, "typing")
    assert [event_head(h) for h in HEADS[6:]] == [None] * len(HEADS[6:])
    assert event_head(b'2["typing"]') is None  # bytes are binary attachments, never an event's head
