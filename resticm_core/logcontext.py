"""Which command, repository, phase and hook a log record belongs to.

The workflow sets the fields around what it runs (:func:`log_context`); the
handlers :func:`resticm_core.logs.setup_logging` installs copy them onto every
record (:class:`ContextFilter`), so a JSON log line says where it came from
without each ``log.info`` call passing it.

A :class:`contextvars.ContextVar` rather than an attribute of the run: the
records come from modules that know nothing of the run (``restic.py``,
``process.py``, plugins), and each thread (the backend chains of ``mirror.py``)
sees only the fields set in it, never another chain's repository.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

#: The fields a log record can carry, in the order JSON lines show them.
FIELDS = ("command", "repository", "phase", "hook")

_CONTEXT: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "resticm_log_context", default=None
)


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Records logged inside the block carry *fields* (``command=``, ``repository=``,
    ``phase=``, ``hook=``) on top of those set by an enclosing block."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log context fields: {', '.join(sorted(unknown))}")
    token = _CONTEXT.set({**current_context(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> Mapping[str, str]:
    """The fields set in this thread right now."""
    return _CONTEXT.get() or {}


class ContextFilter(logging.Filter):
    """Copies the current context onto each record (``record.command`` ...).

    A field the record already has (``extra={"hook": ...}``) is kept: the caller
    knows better than the context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_context()
        for name in FIELDS:
            if not getattr(record, name, None):
                setattr(record, name, context.get(name, ""))
        return True


def record_context(record: logging.LogRecord) -> dict[str, str]:
    """The non-empty context fields of *record*, in :data:`FIELDS` order."""
    found = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value:
            found[name] = str(value)
    return found
