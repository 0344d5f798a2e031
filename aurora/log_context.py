"""Log lines that say which request or socket event they belong to, as text or as JSON.

A context variable holds the id of what is being handled: a request id (the client's X-Request-Id when
it is a short plain token, else a fresh one, echoed in the response) or `sid:<socket id>` for a
Socket.IO event. A logging filter copies it into every record, so each line of a request or event
carries it, whichever module wrote the line; the message writer carries a sender's id over to the
broadcast it does later in its own task. `log_format = json` writes one JSON object per line.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import uuid

LOG_ID: contextvars.ContextVar[str] = contextvars.ContextVar("aurora_log_id", default="-")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(log_id)s]: %(message)s"


def new_request_id(offered: str | None) -> str:
    return offered if offered and _CLIENT_ID.fullmatch(offered) else uuid.uuid4().hex[:16]


def current_log_id() -> str:
    return LOG_ID.get()


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.log_id = LOG_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "id": getattr(record, "log_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
