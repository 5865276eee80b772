"""Per-request facts that every log line carries (request id, vfolder, backend, operation)."""

from __future__ import annotations

from contextvars import ContextVar

LOG_FIELDS = ("request_id", "vfolder_id", "backend", "operation")

_fields: ContextVar[dict[str, str] | None] = ContextVar("log_fields", default=None)


def bind_log_fields(**fields: object) -> None:
    """Add fields to the current request's log context (copy-on-write: tasks stay isolated)."""
    current = dict(_fields.get() or {})
    current.update({key: str(value) for key, value in fields.items() if value is not None})
    _fields.set(current)


def current_log_fields() -> dict[str, str]:
    return _fields.get() or {}


def reset_log_fields() -> None:
    _fields.set(None)
