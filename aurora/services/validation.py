"""Small input checks shared by REST and socket handlers; each failure is an `invalid` error."""

from __future__ import annotations

from typing import Any

from aurora.errors import invalid

MAX_ID = 2**63 - 1


def storable_text(value: str, name: str) -> str:
    """value, if every database can store it: no NUL character (PostgreSQL refuses it), no unpaired
    surrogate (not encodable as UTF-8). Otherwise `invalid`, the same answer on SQLite and PostgreSQL."""
    if "\x00" in value:
        raise invalid(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{name} must be valid Unicode text (no unpaired surrogates)") from None
    return value


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only: str.isdigit() is also true of "¹" or "①", which int() refuses (a 500 once),
        # and of other scripts' digits, which no client sends as an id.
        if text.isascii() and text.isdigit() and len(text) <= 19:
            return int(text)
    return None


def id_of(value: Any, name: str) -> int:
    number = _as_int(value)
    if number is None or not 1 <= number <= MAX_ID:
        raise invalid(f"{name} must be a positive integer")
    return number


def conversation_id_of(value: Any) -> int:
    return id_of(value, "conversation_id")


def seq_of(value: Any, name: str = "seq") -> int:
    number = _as_int(value)
    if number is None or not 0 <= number <= MAX_ID:
        raise invalid(f"{name} must be a non-negative integer")
    return number


def optional_int(value: Any, name: str, *, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    if value is None or value == "":
        return None
    number = _as_int(value)
    if number is None or not minimum <= number <= maximum:
        raise invalid(f"{name} must be an integer from {minimum} to {maximum}")
    return number


def id_list(value: Any, name: str, *, max_items: int) -> list[int]:
    if not isinstance(value, list) or len(value) > max_items:
        raise invalid(f"{name} must be a list of at most {max_items} user ids")
    return list(dict.fromkeys(id_of(v, name) for v in value))


def payload_dict(data: Any, *, bare_key: str | None = None) -> dict[str, Any]:
    """A socket payload as a dict; a bare id is accepted where bare_key names its field."""
    if isinstance(data, dict):
        return data
    if bare_key is not None and _as_int(data) is not None:
        return {bare_key: data}
    raise invalid("payload must be an object")
