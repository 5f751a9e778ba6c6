"""Logging: secrets redacted from every line, the request id on every line, text or JSON
(``CONFSVC_LOG_FORMAT``), and a database outage logged once per interval (issue 16, defects 3, 14e;
operations).

``install(settings)`` is called by ``create_app`` (filters on our loggers and uvicorn's, and on
every handler they already have); ``uvicorn_log_config(settings)`` is what ``confsvc serve`` hands
to uvicorn, so the handlers uvicorn creates carry the same filters and formatter from the start.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import re
import threading
import time
from typing import Any

#: The current request's id (set by ``middleware.RequestId``); ``-`` outside a request.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("confsvc_request_id", default="-")

#: Query parameters whose value is a secret (feed, display, agent and user tokens, and any look-alike).
SECRET_PARAMETERS = ("token", "access_token", "api_key", "apikey", "key", "secret", "password", "sig", "signature")
_QUERY_SECRET = re.compile(r"(?i)([?&;](?:" + "|".join(SECRET_PARAMETERS) + r")=)[^&\s\"';#]*")
#: Our token secrets start with ``cfs_`` (``users.security.TOKEN_PREFIX``) wherever they appear.
_TOKEN = re.compile(r"cfs_[A-Za-z0-9_\-]{8,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*")
REDACTED = "[redacted]"
LOGGERS = ("confsvc", "uvicorn", "uvicorn.error", "uvicorn.access")


def redact(text: str) -> str:
    """``text`` with query-string secrets, ``Bearer`` credentials and ``cfs_`` tokens replaced."""
    text = _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _TOKEN.sub(REDACTED, text)


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """Redacts the message and its string arguments in place (uvicorn's access formatter reads the
    arguments one by one, so they are rewritten rather than merged into the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        if isinstance(getattr(record, "color_message", None), str):  # uvicorn's coloured twin of msg
            record.color_message = redact(record.color_message)  # type: ignore[attr-defined]
        return True


class AddRequestId(logging.Filter):
    """Sets ``record.request_id`` from the current request (``-`` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


def formatter(log_format: str) -> logging.Formatter:
    """A JSON formatter (python-json-logger: one object a line, keys ``asctime``, ``levelname``,
    ``name``, ``request_id``, ``message``) for ``json``, else the text format."""
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(JSON_FIELDS)
    return logging.Formatter(TEXT_FORMAT)


def _add_filters(target: logging.Filterer) -> None:
    for cls in (AddRequestId, RedactSecrets):
        if not any(isinstance(f, cls) for f in target.filters):
            target.addFilter(cls())


def install(log_format: str = "text") -> None:
    """Idempotent: the filters on our loggers, uvicorn's and the root's handlers, and a handler
    for ``confsvc`` with the chosen format when nothing else would print its lines."""
    for name in (*LOGGERS, ""):
        logger = logging.getLogger(name)
        _add_filters(logger)
        for handler in logger.handlers:
            _add_filters(handler)
            if log_format == "json" and name != "":
                handler.setFormatter(formatter("json"))
    ours = logging.getLogger("confsvc")
    if not ours.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter(log_format))
        _add_filters(handler)
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)


def uvicorn_log_config(log_format: str = "text") -> dict[str, Any]:
    """uvicorn's default logging config with our filters on every handler, our ``confsvc`` logger
    on the same stream, and JSON formatters when ``log_format`` is ``json``."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": AddRequestId}, "redact": {"()": RedactSecrets}}
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id", "redact"]
    if log_format == "json":
        for name in config["formatters"]:
            config["formatters"][name] = {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FIELDS}
    else:
        config["formatters"]["confsvc"] = {"format": TEXT_FORMAT}
        access = config["formatters"]["access"]
        access["fmt"] = access["fmt"].replace("%(levelprefix)s ", "%(levelprefix)s [%(request_id)s] ", 1)
    config["handlers"]["confsvc"] = {"formatter": "confsvc" if log_format != "json" else "default",
                                     "class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                     "filters": ["request_id", "redact"]}
    config["loggers"]["confsvc"] = {"handlers": ["confsvc"], "level": "INFO", "propagate": False}
    return config


class Throttled:
    """Logs one line per ``interval_seconds`` for a recurring condition (a database outage), with the
    number of occurrences suppressed since; the traceback only on the first line of an episode (no
    report of the condition in the two intervals before)."""

    def __init__(self, logger: logging.Logger, interval_seconds: float = 30.0) -> None:
        self.logger, self.interval = logger, interval_seconds
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *, exc: BaseException | None = None) -> bool:
        """Logs ``message`` unless ``key`` was logged within the interval; True when it logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            suppressed = self._suppressed.pop(key, 0)
            first = last is None or now - last >= 2 * self.interval
            self._last[key] = now
        suffix = f" ({suppressed} more since the last report)" if suppressed else ""
        self.logger.error("%s%s", message, suffix, exc_info=exc if first else None)
        return True
