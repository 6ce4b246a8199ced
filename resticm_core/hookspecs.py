"""The plugin contract: every ``resticm_*`` plugin hook, with its markers.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`,
registered through the ``resticm`` entry-point group::

    # pyproject.toml of a third-party package
    [project.entry-points.resticm]
    docker = "resticm_docker"

    # resticm_docker.py
    from resticm_core import hookimpl

    @hookimpl
    def resticm_hook_types():
        return [DockerStopHook]

Plugin hooks are called with keyword arguments; an implementation may accept
fewer arguments than the spec names, so specs can grow without breaking plugins.
Arguments are never renamed or removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .config import Config, Repository
    from .dumps import DumpSource
    from .hooks import Hook
    from .notify.api import Notifier
    from .phases import PhaseResult, RunReport, StepResult

PROJECT_NAME = "resticm"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def resticm_hook_types() -> Iterable[type[Hook]]:  # type: ignore[empty-body]
    """Return the hook executor classes this plugin provides.

    Each class subclasses :class:`resticm_core.Hook`, sets a unique ``kind``
    class variable and is a frozen attrs class whose fields are its config keys.
    Two plugins returning the same ``kind`` is an error naming both.

    :returns: an iterable of hook classes.
    """


@hookspec
def resticm_notifier_types() -> Iterable[type[Notifier]]:  # type: ignore[empty-body]
    """Return the notifier classes this plugin provides.

    Each class subclasses :class:`resticm_core.Notifier` and sets a unique ``kind``
    class variable (the provider ``type`` in ``notifications.providers``). Two
    plugins returning the same kind is an error.

    :returns: an iterable of notifier classes.
    """


@hookspec
def resticm_dump_types() -> Iterable[type[DumpSource]]:  # type: ignore[empty-body]
    """Return the database dump sources this plugin provides (``dumps:`` entries).

    Each class subclasses :class:`resticm_core.dumps.DumpSource`, sets a unique
    ``kind`` (the entry's ``type``) and is a frozen attrs class whose fields are its
    config keys. It says which command prints a dump and which reads it back;
    resticm streams the dump into ``restic backup --stdin``, judges it complete or
    not, and restores it with ``resticm dumps restore`` (docs/dumps.md).

    :returns: an iterable of dump source classes.
    """


@hookspec(firstresult=True)
def resticm_repository_password(repository: Repository) -> str | None:
    """Return the password of *repository* (from a vault, a keyring...), or None.

    Asked only when the config gives the repository no ``password``,
    ``password_file`` or ``password_command``; an inherited ``RESTIC_PASSWORD``
    is the last resort after every plugin returned None.
    Stops at first non-None result.

    :param repository: the repository (primary or backend) that needs a password.
    :returns: the password, or None to let the next plugin try.
    """


@hookspec(firstresult=True)
def resticm_secret_reference(
    scheme: str, reference: str, environ: Mapping[str, str]
) -> str | None:
    """Return the secret a ``${scheme:reference}`` in the configuration stands for, or None.

    Called while the configuration is loaded, once per reference written in it
    (``${file:/etc/resticm/s3.key}``: *scheme* ``file``, *reference*
    ``/etc/resticm/s3.key``). The value returned is put in place of the reference
    and added to what the run redacts. Raise
    :class:`~resticm_core.errors.SecretReferenceError` with a message saying what is
    wrong and how to fix it (the loader locates it: ``file:line: key: ${...}: message``).
    Stops at first non-None result.

    :param scheme: the word before the first ``:`` (``env``, ``file``, ``credential``...).
    :param reference: the rest, up to the closing ``}``.
    :param environ: the environment the configuration is loaded with.
    :returns: the secret, or None when this plugin does not handle *scheme*.
    """


@hookspec
def resticm_phase_finished(result: PhaseResult | StepResult, config: Config) -> None:
    """Observe a finished hook phase or restic step (metrics, status files).

    Called for every hook phase (:class:`PhaseResult`) and every restic step
    (:class:`StepResult`) as soon as it ends. An exception is logged with the
    plugin's name and never changes the run's outcome.

    :param result: the finished phase or step.
    :param config: the configuration of the run.
    """


@hookspec
def resticm_run_finished(report: RunReport, config: Config) -> None:
    """Observe the whole run once it ended, with its final :class:`RunReport`.

    An exception is logged with the plugin's name and never changes the outcome.

    :param report: the complete report, exit code included.
    :param config: the configuration of the run.
    """
