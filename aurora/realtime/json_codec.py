"""A faster JSON for Socket.IO packets: orjson to encode, the standard library to decode.

Every message crosses JSON three times on the server (the event in, the broadcast
and the ack out). The two encodings go through orjson, several times faster;
whatever it refuses (integers beyond 64 bits) falls back to `json`. Decoding stays
with `json`: orjson would turn an integer beyond 64 bits into a float, and what a
client sends (call_signal data above all) must arrive exactly as sent.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any, **_: Any) -> str:
    try:
        return orjson.dumps(obj, option=_OPTIONS).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"))


loads = json.loads
