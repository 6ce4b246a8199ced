"""restic, the engine: one runner seam, a facade the workflow calls, result parsing.

The package in layers (each module imports only those above it in this list):

- :mod:`.errors`: restic's exit codes, :class:`ResticErrorKind`, the classification
  of a failure from exit code and stderr, readable messages, :class:`ResticResult`.
- :mod:`.environment`: the child environment (inherited ``RESTIC_*`` credentials
  scrubbed, the repository's own set; secrets only through the environment, never
  argv) and the printable command line.
- :mod:`.runner`: :class:`ResticRunner`, the one seam for fakes, and
  :class:`SubprocessResticRunner`, which runs the real binary.
- :mod:`.facade`: :class:`Restic` builds the command lines (``backup --json``,
  ``forget``...), applies per-command timeouts and parses restic's JSON output.

Progress formatting for a terminal is the CLI's (:mod:`resticm_core.display`).

restic 0.14 (Debian 12) is the floor. It has no exit codes for "repository does
not exist" (10), "lock failed" (11) or "wrong password" (12), which restic 0.17
introduced; for older versions they are recognised from stderr (see :mod:`.errors`).
"""

from ..inherited_env import SCRUBBED_PREFIXES, SCRUBBED_VARIABLES, scrubbed_environment
from .environment import (
    PASSWORD_VARIABLES,
    PasswordProvider,
    child_environment,
    configured_password,
    printable_command,
)
from .errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCK_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_REPOSITORY_MISSING,
    EXIT_WRONG_PASSWORD,
    FOREIGN_LOCK_HINT,
    MISSING_BUCKET_FAILURE,
    NEVER_RETRIED_COMMANDS,
    NOT_INSTALLED_MESSAGE,
    RETRY_ANYWHERE_COMMANDS,
    SHORT_ID_LENGTH,
    BackupOutcome,
    ResticCommandError,
    ResticErrorKind,
    ResticResult,
    classify,
    readable_stderr,
    retries_missing_bucket,
    retryable_failure,
)
from .facade import (
    DEFAULT_TIMEOUTS,
    RETRY_LOCK_SINCE,
    BackupParser,
    Restic,
    StatusCallback,
    backup_args,
    check_args,
    forget_args,
)
from .runner import (
    HOUSEKEEPING_TIMEOUT,
    MAX_CAPTURE_CHARS,
    ResticRunner,
    SubprocessResticRunner,
    parse_version,
)

__all__ = [
    "DEFAULT_TIMEOUTS",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_LOCK_FAILED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_REPOSITORY_MISSING",
    "EXIT_WRONG_PASSWORD",
    "FOREIGN_LOCK_HINT",
    "HOUSEKEEPING_TIMEOUT",
    "MAX_CAPTURE_CHARS",
    "MISSING_BUCKET_FAILURE",
    "NEVER_RETRIED_COMMANDS",
    "NOT_INSTALLED_MESSAGE",
    "PASSWORD_VARIABLES",
    "RETRY_ANYWHERE_COMMANDS",
    "RETRY_LOCK_SINCE",
    "SCRUBBED_PREFIXES",
    "SCRUBBED_VARIABLES",
    "SHORT_ID_LENGTH",
    "BackupOutcome",
    "BackupParser",
    "PasswordProvider",
    "Restic",
    "ResticCommandError",
    "ResticErrorKind",
    "ResticResult",
    "ResticRunner",
    "StatusCallback",
    "SubprocessResticRunner",
    "backup_args",
    "check_args",
    "child_environment",
    "classify",
    "configured_password",
    "forget_args",
    "parse_version",
    "printable_command",
    "readable_stderr",
    "retries_missing_bucket",
    "retryable_failure",
    "scrubbed_environment",
]
