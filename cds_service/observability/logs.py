"""Structured JSON logs, one object per line, that cannot carry patient data or credentials.

Every record, from this service or a library (gunicorn, urllib3, SQLAlchemy), goes through
`JsonFormatter`, which writes time, level, logger, message and, inside a request, the request id,
the CDS service and the hook instance, plus a fixed set of `extra` fields. The privacy guard is
built into the formatter, so it holds whatever a log call passes:

- a message's %-arguments that are text are kept only when they look like code words (a
  prefetch key, a resource type, a hook name: at most three short words of letters, digits and
  ``_.-/``); anything else, such as a FHIR server's diagnostics, a note, a name or a URL with a
  query, is replaced by ``[withheld]``;
- token-looking words (JWTs, long mixed letter-and-digit strings) are withheld even then, and
  ``Bearer …`` and JWTs are scrubbed from the final message as a last line of defence;
- only the `extra` fields listed in `_FIELDS` are written, each checked for its kind; others
  are dropped;
- an exception is written as its type and the code locations of its traceback, never its
  message or local values.

So a log call must put what it wants to keep into a listed field or a code-word argument;
free text never reaches the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

WITHHELD = "[withheld]"
_MAX_MESSAGE = 400
_WORD = r"[A-Za-z0-9_.\-/]{1,40}"
_CODE_PHRASE = re.compile(rf"{_WORD}(?: {_WORD}){{0,2}}")
_HEX = "[0-9a-fA-F]"
UUID_PATTERN = re.compile(rf"{_HEX}{{8}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{12}}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*)?")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;]+")
_LONG_MIXED = re.compile(r"(?=[^ ]*\d)(?=[^ ]*[A-Za-z])[^ ]{20,}")
_PATH = re.compile(r"/[A-Za-z0-9_.\-/<>]{0,120}")
# A bound address and nothing more: scheme, host or IP, port; no path, no query.
_LISTEN_ADDRESS = re.compile(
    r"https?://(?:[A-Za-z0-9.\-]{1,64}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}"
    r"(?:,https?://(?:[A-Za-z0-9.\-]{1,64}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}){0,7}"
)


def _is_tokenish(text: str) -> bool:
    return bool(_JWT.search(text) or _LONG_MIXED.search(text))


def safe_text(value: str) -> str:
    """`value` if it is a code word or short code phrase (no token), else WITHHELD."""
    if _CODE_PHRASE.fullmatch(value) and len(value) <= 64 and not _is_tokenish(value):
        return value
    return WITHHELD


def _safe_arg(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Enum):
        value = value.value
        if isinstance(value, int | float):
            return value
    text = value if isinstance(value, str) else str(value)
    if _LISTEN_ADDRESS.fullmatch(text):
        return text  # gunicorn's "Listening at: …": an operator needs it, and it names no one
    return safe_text(text)


def _code(value: Any) -> Any:
    return _safe_arg(value) if value is not None else None


def _number(value: Any) -> Any:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _uuid(value: Any) -> Any:
    return value if isinstance(value, str) and UUID_PATTERN.fullmatch(value) else WITHHELD


def _path(value: Any) -> Any:
    ok = isinstance(value, str) and _PATH.fullmatch(value) and not _is_tokenish(value)
    return value if ok else WITHHELD


def _endpoint(value: Any) -> Any:
    return value if value == "unmatched" else _path(value)


def _codes(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_safe_arg(item) for item in value[:50]]
    return _code(value)


# The extra fields a record may carry, each with the check its value must pass.
_FIELDS: dict[str, Callable[[Any], Any]] = {
    "request_id": _uuid,
    "service": _code,
    "hook": _code,
    "hook_instance": _uuid,
    "method": _code,
    "endpoint": _endpoint,
    "path": _path,
    "status": _number,
    "latency_ms": _number,
    "orders": _number,
    "decisions": _codes,
    "modalities": _codes,
    "error": _code,
    "kind": _code,
    "prefetch_key": _code,
    "reason": _code,
    "count": _number,
}
# Filled in by the web layer for the request being served (see web.py).
_CONTEXT_FIELDS = ("request_id", "service", "hook_instance")


def _request_context() -> Mapping[str, Any]:
    from flask import g, has_request_context

    if not has_request_context():
        return {}
    return {name: g.get(f"log_{name}") for name in _CONTEXT_FIELDS}


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Records remember the request they were made in (formatting may happen later)."""
    record = _base_factory(*args, **kwargs)
    record._cds_context = _request_context()
    return record


def set_log_context(*, hook_instance: Any = None) -> None:
    """Add the hook instance of the call being served to every later log line of the request."""
    from flask import g

    if isinstance(hook_instance, str) and UUID_PATTERN.fullmatch(hook_instance):
        g.log_hook_instance = hook_instance


def _message(record: logging.LogRecord) -> str:
    template = record.msg if isinstance(record.msg, str) else safe_text(str(record.msg))
    args = record.args
    message = template
    if args:
        try:
            if isinstance(args, Mapping):
                message = template % {key: _safe_arg(value) for key, value in args.items()}
            else:
                message = template % tuple(_safe_arg(value) for value in args)
        except (TypeError, ValueError, KeyError):
            # e.g. %d given a withheld text: keep the template, which is the developer's own.
            message = template
    message = _BEARER.sub(r"\1 " + WITHHELD, message)
    message = _JWT.sub(WITHHELD, message)
    return message[:_MAX_MESSAGE]


def _exception(exc_info: Any) -> dict[str, Any]:
    exc_type, _, tb = exc_info
    frames = [
        f"{frame.filename.rsplit('site-packages/', 1)[-1]}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(tb)[-15:]
    ]
    return {"exc_type": getattr(exc_type, "__name__", "Exception"), "stack": frames}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the privacy guard described in the module docstring."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        context = getattr(record, "_cds_context", None)
        if context is None:
            context = _request_context()
        for name, value in context.items():
            if value is not None:
                entry[name] = _FIELDS[name](value)
        for name, check in _FIELDS.items():
            if name in record.__dict__:
                value = check(record.__dict__[name])
                if value is not None:
                    entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry.update(_exception(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure_logging(level: str) -> None:
    """JSON lines on stderr from the root logger at `level`; safe to call more than once."""
    if logging.getLogRecordFactory() is not _record_with_context:
        logging.setLogRecordFactory(_record_with_context)
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)


def gunicorn_logconfig(level: str = "INFO") -> dict[str, Any]:
    """A logging.config dict for gunicorn: its own messages as the same JSON lines.

    Gunicorn's access log is off (the app writes one "request served" line per request, with
    the route template instead of a URL that may carry a query); the root logger gets its
    handler from `configure_logging` when the app is built.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": level, "handlers": []},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }
