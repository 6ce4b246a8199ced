"""restic's reason for a failed write reaches the message verbatim (issue 13, 8).

The real-restic cases (a read-only mount, files without write permission) are in
tests/faults/test_message_faults.py; these pin the two stderr shapes restic has.
"""

from __future__ import annotations

from resticm_core.restic import ResticErrorKind, ResticResult

LOCK_LINE = "open /srv/restic/locks/3708b2726e5b-tmp-630597245: read-only file system"


def test_restic_014_the_cause_above_the_stack_trace_is_appended() -> None:
    """0.14: retry lines (kept in the head of the tail), the cause, a Go stack, a bare verdict."""
    stderr = [
        f"Save(<lock/3708b2726e>) returned error, retrying after 552.330144ms: {LOCK_LINE}",
        "... 40 lines omitted ...",
        "github.com/restic/restic/internal/backend/local.(*Local).Save",
        "\tgithub.com/restic/restic/internal/backend/local/local.go:153",
        "runtime.goexit",
        "\truntime/asm_amd64.s:1594",
        "unable to create lock in backend",
    ]
    result = ResticResult.from_exit(["backup", "--json"], "primary", 1, stderr=stderr)
    assert result.error_kind is ResticErrorKind.FAILED
    assert result.message == (
        f"restic backup failed on primary: unable to create lock in backend: {LOCK_LINE} (exit 1)"
    )


def test_a_verdict_that_names_the_cause_is_not_repeated() -> None:
    """restic >= 0.17 prints one Fatal line that carries the cause itself."""
    stderr = [f"Fatal: unable to create lock in backend: {LOCK_LINE}"]
    result = ResticResult.from_exit(["prune"], "offsite", 1, stderr=stderr)
    assert result.message == (
        f"restic prune failed on offsite: unable to create lock in backend: {LOCK_LINE} (exit 1)"
    )


def test_an_unreadable_config_file_is_permission_denied_not_a_missing_repository() -> None:
    stderr = [
        "Fatal: unable to open config file: open /srv/restic/config: permission denied",
        "Is there a repository at the following location?",
        "/srv/restic",
    ]
    result = ResticResult.from_exit(["snapshots"], "primary", 1, stderr=stderr)
    assert result.error_kind is ResticErrorKind.FAILED
    assert "permission denied" in result.message and "resticm init" not in result.message
