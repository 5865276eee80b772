"""Structured JSON logs: one object per line, with the request's context fields.

The project logs through ``get_logger``: its ``extra=`` fields travel in one namespaced
attribute of the record (``FIELDS_ATTR``), so no field name (``name``, ``created``, ``msg``…)
can collide with a ``LogRecord`` attribute and turn a log call into a 500."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from app.observability.context import current_log_fields

# Attributes every LogRecord has; anything else a third-party library passes via ``extra=``
# is emitted as a field.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}
FIELDS_ATTR = "storage_fields"


def printable_text(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(value: Any) -> Any:
    """A string with lone surrogates (a file name that is not UTF-8, as the disk gives it)
    spelled with backslash escapes: exact, and writable to any UTF-8 sink. A log line that
    cannot be encoded is lost, and a test report that carries one cannot be sent."""
    return printable_text(value) if isinstance(value, str) else value


class StructuredLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose ``extra=`` fields can be named anything, and whose messages, arguments
    and fields are always valid Unicode."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        fields = kwargs.pop("extra", None) or {}
        kwargs["extra"] = {FIELDS_ATTR: {key: printable(v) for key, v in fields.items()}}
        return msg, kwargs


class PrintableMessages(logging.Filter):
    """Formats the message once, with any argument (an exception, a path) that renders lone
    surrogates spelled printably."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg, record.args = record.getMessage(), ()
        record.msg = printable(record.msg if isinstance(record.msg, str) else str(record.msg))
        return True


_PRINTABLE_MESSAGES = PrintableMessages()


def get_logger(name: str) -> StructuredLogger:
    """The project's only way to get a logger (tests/test_logging_safety.py enforces it)."""
    logger = logging.getLogger(name)
    if _PRINTABLE_MESSAGES not in logger.filters:
        logger.addFilter(_PRINTABLE_MESSAGES)
    return StructuredLogger(logger)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: ours (namespaced) and a library's plain extras."""
    found = {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRS and key != FIELDS_ATTR and not key.startswith("_")
    }
    namespaced = getattr(record, FIELDS_ATTR, None)
    if isinstance(namespaced, Mapping):
        found.update(namespaced)
    return found


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        base = dict(entry)
        entry.update(current_log_fields())
        entry.update(record_fields(record))
        entry.update(base)  # a field named like a base key never hides the base key
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # Exceptions and third-party records may still carry lone surrogates.
        return printable_text(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        values = {**current_log_fields(), **record_fields(record)}
        fields = " ".join(f"{k}={v}" for k, v in values.items())
        base = super().format(record)
        return f"{base} {fields}" if fields else base


def configure_logging(*, level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log duplicates our request log line; its error log goes through root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = name != "uvicorn.access"
