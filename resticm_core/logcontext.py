"""Which command, repository, phase and hook a log record belongs to.

The workflow sets the fields around what it runs (:func:`log_context`); the
handlers :func:`resticm_core.logs.setup_logging` installs copy them onto every
record (:class:`ContextFilter`), so a JSON log line says where it came from
without each ``log.info`` call passing it.

A :class:`contextvars.ContextVar` rather than an attribute of the run: the
records come from modules that know nothing of the run (``restic.py``,
``process.py``, plugins), and each thread (the backend chains of ``mirror.py``)
sees only the fields set in it, never another chain's repository.

The same mechanism captures a run's own log records (:func:`capture_logs`): one
stateless handler on the ``resticm_core`` logger hands each record to the
capture of the run in whose context it was logged. Two runs in one process
(threads, two configs) therefore never see each other's records, and a run adds
no handler of its own to the shared logger, so none can be left behind.
Threads a run starts inherit its capture only when started with
``contextvars.copy_context().run`` (the backend chains, hook output readers).
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
#: The handler that receives the records of the run in this context (None: no capture).
_CAPTURE: contextvars.ContextVar[logging.Handler | None] = contextvars.ContextVar(
    "resticm_log_capture", default=None
)
#: The logger whose records (its own and its children's) a capture sees.
CAPTURED_LOGGER = "resticm_core"


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


class _CaptureDispatch(logging.Handler):
    """Hands each record to the capture of the context it was logged in, if any.

    Holds no state of its own. Installed once on :data:`CAPTURED_LOGGER`; when
    it is that logger's only destination (the application configured no
    logging), warnings still reach stderr as they would without it
    (``logging.lastResort``).
    """

    def emit(self, record: logging.LogRecord) -> None:
        target = _CAPTURE.get()
        if target is not None and record.levelno >= target.level:
            target.handle(record)
        last = logging.lastResort
        if last is not None and record.levelno >= last.level and self._alone(record):
            last.handle(record)

    def _alone(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(h is not self for h in logger.handlers):
                return False
            logger = logger.parent if logger.propagate else None
        return True


_DISPATCH = _CaptureDispatch()


@contextmanager
def capture_logs(handler: logging.Handler | None) -> Iterator[None]:
    """Records logged to ``resticm_core`` in this context go to *handler* too.

    Only this context's records: another thread's run has its own. ``None``
    captures nothing. Nests: the innermost capture wins.
    """
    if handler is None:
        yield
        return
    # addHandler does nothing when it is there already; this only puts it back
    # after something removed every handler (logging.config, a test fixture).
    logging.getLogger(CAPTURED_LOGGER).addHandler(_DISPATCH)
    token = _CAPTURE.set(handler)
    try:
        yield
    finally:
        _CAPTURE.reset(token)


def record_context(record: logging.LogRecord) -> dict[str, str]:
    """The non-empty context fields of *record*, in :data:`FIELDS` order."""
    found = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value:
            found[name] = str(value)
    return found
