"""Log lines that say which request or socket event they belong to, as text or as JSON.

A context variable holds the id of what is being handled: a request id (the client's X-Request-Id when
it is a short plain token, else a fresh one, echoed in the response) or `sid:<socket id>` for a
Socket.IO event. A logging filter copies it into every record, so each line of a request or event
carries it, whichever module wrote the line; the message writer carries a sender's id over to the
broadcast it does later in its own task. `log_format = json` writes one JSON object per line.

At the default level every stored message writes one INFO line, so a line's cost is paid per message:
the records leave out what neither format shows (the caller's file and line, thread and process:
the Logging HOWTO's "Optimization"), and the text timestamp formats its seconds once per second.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import time
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


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT; the date and time to the second from a cache that changes once per second
    (logging's own formatTime runs localtime and strftime for every record)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, text = self._second
        if cached != second:
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, text)  # one assignment: a concurrent format sees the old or the new pair
        return self.default_msec_format % (text, record.msecs)


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
    # Neither format shows the caller's file, line or function, the thread or the process: do not
    # look them up for each record (a walk of the stack, a getpid system call).
    logging._srcfile = None  # type: ignore[attr-defined]  # the HOWTO's documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
