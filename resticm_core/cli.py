"""The ``resticm`` command: a drop-in for the Go tool's CLI.

Global flags (``-c -v -n --json``) are accepted before and after the subcommand,
as the Go tool (cobra) accepts them. Exit codes (DESIGN §8): 0 ok, 1 a step
failed, 2 usage or config error, 3 finished with warnings (partial backup),
75 another run holds the lock, 128+n stopped by signal n.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from . import __version__
from .cli_types import non_negative_seconds

EXIT_HELP = """\
exit codes:
  0    success
  1    a step failed (hook, backup, forget...)
  2    usage or configuration error
  3    finished with warnings (partial backup: some files could not be read)
  75   another resticm run holds the lock of this configuration
  128+n  stopped by signal n (143 = SIGTERM, 130 = SIGINT)
"""

PHASES = ("pre_backup", "post_backup", "on_success", "on_error", "finally")


def _global_options(suppress: bool) -> _Parser:
    """The global flags; subcommands get a copy whose defaults do not override."""
    parser = _Parser(add_help=False)
    default: Callable[[Any], Any] = (lambda _v: argparse.SUPPRESS) if suppress else (lambda v: v)
    group = parser.add_argument_group("global options")
    group.add_argument(
        "-c",
        "--config",
        default=default(None),
        metavar="PATH",
        help="config file (default: search ~/.config/resticm, /etc/resticm)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="print each restic command line (secrets redacted) and debug logs",
    )
    group.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        default=default(False),
        help="run nothing: print every hook and restic command that would run",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the run report as JSON on stdout (logs stay on stderr)",
    )
    group.add_argument(
        "-j",
        "--job",
        default=default(None),
        metavar="NAME",
        help="the job of a config with jobs: (default: every job for backup and the "
        "workflow commands; `resticm jobs` lists them)",
    )
    group.add_argument(
        "--progress",
        action="store_true",
        default=default(False),
        help="show the progress line even when stdout/stderr is not a terminal "
        "(e.g. under script); it goes to stderr, never to the log",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help="no progress line, and only the verdict and the errors at the end",
    )
    group.add_argument(
        "--lock-wait",
        type=non_negative_seconds,
        default=default(0.0),
        metavar="SECONDS",
        help="wait this long for another run's lock instead of exiting 75",
    )
    return parser


def _workflow_flags(
    parser: argparse.ArgumentParser, *, default_workflow: bool, full: bool = False
) -> None:
    parser.add_argument(
        "-t",
        "--tag",
        dest="tags",
        action="append",
        default=[],
        metavar="TAG",
        help="extra tag for this backup (repeatable)",
    )
    parser.add_argument("--no-hooks", action="store_true", help="run no hook of any phase")
    parser.add_argument(
        "--notify-success",
        action="store_true",
        help="send success notifications even if notify_on_success is off",
    )
    if default_workflow:
        parser.add_argument("-p", "--prune", action="store_true", help="prune after forget")
        parser.add_argument("--check", action="store_true", help="check the repository")
        parser.add_argument(
            "--deep", action="store_true", help="check reading all data (implies --check)"
        )
        parser.add_argument(
            "--no-backup", action="store_true", help="skip the backup (and its hooks)"
        )
        parser.add_argument("--no-forget", action="store_true", help="skip forget")
        parser.add_argument("--no-prune", action="store_true", help="never prune")
        parser.add_argument("--no-check", action="store_true", help="never check")
        parser.add_argument("--no-copy", action="store_true", help="skip copies to backends")
        parser.add_argument("--copy-all", action="store_true", help="copy snapshots of all hosts")
    elif full:
        parser.add_argument("--deep", action="store_true", help="check reading all data")
        parser.add_argument(
            "--all-hosts", action="store_true", help="forget without the host filter"
        )


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with *argv*, only the parts that argv can reach are complete.

    ``resticm --version`` (argv[0]) gets the top-level parser only. The actions of
    a subcommand whose module is heavy (``schedule`` imports attrs) are added only
    when its name is in *argv*; its one-line help is listed either way.
    """
    sub_globals = _global_options(suppress=True)
    parser = _Parser(
        prog="resticm",
        description="restic backups as an explicit workflow of hooked phases. "
        "Without a command: backup, then forget (and prune/check when asked), then copy "
        "and the same maintenance on every backend of copy_to_backends.",
        parents=[_global_options(suppress=False)],
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"resticm {__version__}")
    _workflow_flags(parser, default_workflow=True)
    if argv and argv[0] in ("-V", "--version"):
        # argparse acts on argv[0] first and exits: no subcommand can be reached.
        return parser
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[sub_globals],
            epilog=EXIT_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    _workflow_flags(
        command("backup", "pre_backup, backup, post_backup, then on_success or on_error"),
        default_workflow=False,
    )
    _workflow_flags(
        command(
            "full",
            "backup, forget, prune and check on the primary, then copy, forget, prune and "
            "check on every copy backend (pre_backup failure aborts)",
        ),
        default_workflow=False,
        full=True,
    )
    from .commands import add_parsers  # repository lifecycle commands (issue 3)

    add_parsers(command)
    help_command = command("help", "show the help of resticm or of one command")
    help_command.add_argument(
        "topic", nargs="*", metavar="COMMAND", help="e.g. backup, config validate"
    )
    completion = command("completion", "print a shell completion script (bash, zsh or fish)")
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    command("version", "print resticm's and restic's versions")
    command("plugins", "list the loaded plugins and the hook kinds they provide")
    command("jobs", "list the jobs of the configuration (jobs:, conf.d)")
    config = command("config", "configuration tools")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    validate = config_commands.add_parser(
        "validate", help="load the config and report every problem", parents=[sub_globals]
    )
    validate.add_argument(
        "--from-go",
        action="store_true",
        help="a config of the Go resticm: list what the strict loader refuses and what "
        "behaves differently",
    )
    validate.add_argument(
        "--write",
        action="store_true",
        help="with --from-go: rewrite the file so it loads (keeps comments; FILE.bak kept)",
    )
    _add_config_tools(config_commands, sub_globals)  # issue 18
    hooks = command("hooks", "hook tools")
    hooks_commands = hooks.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)
    hooks_run = hooks_commands.add_parser(
        "run",
        parents=[sub_globals],
        help="run one phase's hooks alone, with the environment they get in a run",
    )
    hooks_run.add_argument("phase", choices=PHASES)
    hooks_run.add_argument(
        "--status",
        default="success",
        choices=("success", "partial", "failure", "skipped", "not_run"),
        help="BACKUP_STATUS the hooks see (default: success)",
    )
    hooks_run.add_argument("--error", default="", help="ERROR text the hooks see")
    notify = command("notify", "notification tools")
    notify_commands = notify.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    notify_test = notify_commands.add_parser(
        "test",
        parents=[sub_globals],
        help="send a test message to every provider (even with notifications disabled)",
    )
    notify_test.add_argument(
        "--provider", metavar="NAME", help="only the provider with this name or type"
    )
    dumps = command("dumps", "list database dumps, or pipe one back into its database")
    if argv is None or "dumps" in argv:
        from .dump_commands import add_dumps_parser

        add_dumps_parser(dumps, [sub_globals])
    schedule = command("schedule", "run resticm on a systemd timer (or print a cron line)")
    if argv is None or "schedule" in argv:
        from .schedule import add_schedule_parser  # lazy: imports attrs

        add_schedule_parser(schedule, sub_globals)
    return parser


def _add_config_tools(config_commands: Any, sub_globals: argparse.ArgumentParser) -> None:
    """``config schema``, ``config show``, ``config init`` (issue 18)."""
    config_commands.add_parser(
        "schema",
        parents=[sub_globals],
        help="print the JSON Schema of the config (with the installed plugins' kinds)",
    )
    config_commands.add_parser(
        "show",
        parents=[sub_globals],
        help="print the effective config (defaults filled in) as YAML, secrets masked",
    )
    init = config_commands.add_parser(
        "init", parents=[sub_globals], help="write a commented starter config (mode 0600)"
    )
    init.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="where (default: /etc/resticm/config.yaml as root, else ~/.config/resticm/)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing file")


def _cmd_config_tool(args: argparse.Namespace, registry: Any, env: dict[str, str]) -> int:
    """``config schema`` and ``config init``: they need no config."""
    if args.config_command == "schema":
        from .config_schema import schema_text

        sys.stdout.write(schema_text(registry))
        return 0
    from pathlib import Path

    from .config_init import default_path, write_starter

    path = Path(os.path.expanduser(args.path)) if args.path else default_path(env)
    if args.dry_run:
        print(f"[dry-run] would write a starter config to {path}")
        return 0
    written = write_starter(path, force=args.force)
    print(f"wrote {written} (mode 0600): edit it, then run 'resticm -c {written} config validate'")
    return 0


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run the CLI; returns the exit code (``python -m resticm_core`` exits with it)."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments in (["--version"], ["-V"]):
        # The common probe, answered as argparse's version action does (print, exit 0)
        # before any parser is built: `resticm --version` costs the interpreter only.
        print(f"resticm {__version__}")
        raise SystemExit(0)
    restic_args = None
    if "run" in arguments:  # lazy: commands imports the config models (attrs)
        from .commands import split_run_argv

        # `run ARGS...`: everything after `run` is restic's, untouched (even -c, -v, -h).
        arguments, restic_args = split_run_argv(arguments)
    parser = build_parser(arguments)
    want_json = "--json" in arguments
    try:
        args = parser.parse_args(arguments)
    except _UsageExit as exc:
        sys.stderr.write(exc.usage)
        print(exc.text, file=sys.stderr)
        if want_json:
            _print_json_error(exc.text, [])
        return 2
    if restic_args is not None:
        args.restic_args = restic_args
    from .errors import ResticmError  # lazy: keep `resticm --help` and --version fast
    from .secrets import scrub_environment

    # The process environment is resticm's own: passwords leave it now, so an
    # in-process Python hook (or anything it starts) cannot inherit them; `env`
    # keeps them for restic (an inherited RESTIC_PASSWORD is the fallback).
    env = scrub_environment() if environ is None else dict(environ)

    display = _progress_display(args)
    args.progress_display = display
    try:
        return _dispatch(args, env, scrub=environ is None)
    except ResticmError as exc:
        _print_error(exc)
        if want_json:
            located = _located(exc)
            summary = f"configuration error ({len(located)} problem(s))" if located else str(exc)
            _print_json_error(summary or type(exc).__name__, located)
        return exc.exit_code
    except KeyboardInterrupt:
        print("resticm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `resticm snapshots | head`: the reader is gone, which is not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer cut off
    finally:
        if display is not None:
            display.close()


def _progress_display(args: argparse.Namespace) -> Any:
    """The terminal's progress line, when there is a terminal to draw it on.

    Off with ``--quiet`` and ``--json``, and when stderr, where it is drawn, is
    not a terminal (cron, systemd, a pipe, a file), unless ``--progress`` forces it.
    """
    if getattr(args, "quiet", False):
        return None
    wanted = getattr(args, "progress", False) or (
        sys.stderr.isatty() and not getattr(args, "json", False)
    )
    if not wanted:
        return None
    from .progress import TerminalProgress

    return TerminalProgress(sys.stderr)


class _UsageExit(Exception):
    """argparse's usage error, raised instead of printed-and-exited, so that
    ``--json`` can add its error object (exit 2 either way)."""

    def __init__(self, usage: str, text: str) -> None:
        super().__init__(text)
        self.usage, self.text = usage, text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageExit(self.format_usage(), f"{self.prog}: error: {message}")


# ``file:line[:col]: key.path: message`` as config_file words every located problem.
_LOCATED = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+)(?::\d+)?: "
    r"(?:(?P<path>[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*): )?(?P<message>.*)$"
)


def _located(exc: Exception) -> list[dict[str, object]]:
    from .errors import ConfigError

    if not isinstance(exc, ConfigError):
        return []
    found: list[dict[str, object]] = []
    for text in exc.messages:
        match = _LOCATED.match(text)
        if match is None:
            found.append({"file": None, "line": None, "path": None, "message": text})
        else:
            found.append(
                {
                    "file": match["file"],
                    "line": int(match["line"]),
                    "path": match["path"],
                    "message": match["message"],
                }
            )
    return found


def _print_json_error(error: str, errors: list[dict[str, object]]) -> None:
    """``--json``: a failure is a JSON object on stdout too (scripts parse stdout)."""
    import json

    print(json.dumps({"ok": False, "error": error, "errors": errors}))


def _print_error(exc: Exception) -> None:
    from .errors import ConfigError

    if isinstance(exc, ConfigError):
        print("resticm: configuration error:", file=sys.stderr)
        for message in exc.messages:
            print(f"  {message}", file=sys.stderr)
    else:
        print(f"resticm: {exc}", file=sys.stderr)


def _dispatch(args: argparse.Namespace, env: dict[str, str], *, scrub: bool = False) -> int:
    """Run the command; with *scrub*, config secrets also leave ``os.environ``."""
    command = args.command or "default"
    if command == "help":
        return _cmd_help(args.topic)
    if command == "completion":
        from .completion import render

        sys.stdout.write(render(args.shell, build_parser()))
        return 0
    if command == "version":
        return _cmd_version()
    if command == "plugins":
        return _cmd_plugins(args, env)
    if command == "context":  # needs no config: it chooses one
        from .commands import cmd_context

        return cmd_context(args, env)
    if command == "schedule":
        from .schedule import run_schedule_command

        return run_schedule_command(args, env)
    from .plugin_manager import DISABLE_ENV, PluginRegistry, blocked_from_env

    registry = PluginRegistry.default(blocked=blocked_from_env(env.get(DISABLE_ENV)))
    if command == "config" and args.config_command in ("schema", "init"):
        return _cmd_config_tool(args, registry, env)
    if command == "config" and getattr(args, "from_go", False):
        return _cmd_config_from_go(args, registry, env)
    if command == "config" and getattr(args, "write", False):
        from .errors import UsageError

        raise UsageError("config validate --write needs --from-go")
    from .config_file import load_job_set
    from .jobs_cli import MULTI_JOB_COMMANDS, cmd_jobs, run_jobs

    # A file with jobs: (issue 18) is one config per job; without, one config as always.
    job_set = load_job_set(args.config, registry=registry, environ=env)
    if scrub:
        from .secrets import scrub_environment

        scrub_environment([s for c in job_set.all_configs() for s in c.secrets()])
    if command == "jobs":
        return cmd_jobs(job_set, args)
    label = f"config {args.config_command}" if command == "config" else command
    if job_set.has_jobs and args.job is None and label in MULTI_JOB_COMMANDS:
        return run_jobs(
            label,
            job_set,
            args,
            registry,
            env,
            run_one=_workflow_report,
            print_summary=lambda report: _print_summary(report, args),
        )
    config = job_set.one(args.job, label)
    # validate prints its findings itself: each once, not also as log warnings.
    _setup_logging(config, args, warn=command != "config")
    if command == "config" and args.config_command == "show":
        from .config_show import show_text

        sys.stdout.write(show_text(config))
        return 0
    if command == "config":
        return _cmd_config_validate(config, args, env)
    if command == "hooks":
        return _cmd_hooks_run(config, args, registry, env)
    if command == "notify":
        return _cmd_notify_test(config, args)
    if command == "dumps":
        from .commands import make_restic
        from .dump_commands import cmd_dumps

        restic = make_restic(config, env, registry, args.verbose)
        return cmd_dumps(config, args, restic, env)
    from .commands import COMMANDS as REPOSITORY_COMMANDS
    from .commands import dispatch

    if command in REPOSITORY_COMMANDS:
        return dispatch(command, config, args, registry, env)
    return _cmd_workflow(command, config, args, registry, env)


def _cmd_help(topic: Sequence[str]) -> int:
    """``help [COMMAND...]``: the same text as ``COMMAND --help`` (exit 0), as cobra's."""
    parser = build_parser(None)
    current = parser
    for word in topic:
        subcommands = [
            action
            for action in current._actions  # argparse lists its subparsers nowhere else
            if isinstance(action, argparse._SubParsersAction)
        ]
        child = subcommands[0].choices.get(word) if subcommands else None
        if child is None:
            known = ", ".join(sorted(subcommands[0].choices)) if subcommands else "none"
            print(
                f"resticm help: unknown command {' '.join(topic)!r} (commands: {known})",
                file=sys.stderr,
            )
            return 2
        current = child
    current.print_help()
    return 0


def _setup_logging(config: Any, args: argparse.Namespace, *, warn: bool = True) -> None:
    import logging  # lazy, as json below: `resticm --version` imports neither

    from .logs import setup_logging
    from .secrets import Redactor

    redactor = Redactor(
        config.secrets(),
        urls=[config.repository, *(b.repository for b in config.backends.values())],
    )
    display = getattr(args, "progress_display", None)
    # Through the progress display: a log line clears the progress line first.
    setup_logging(config.logging, redactor=redactor, verbose=args.verbose, stream=display)
    for warning in _config_warnings(config) if warn else ():
        logging.getLogger("resticm_core").warning("%s", warning)


def _config_warnings(config: Any) -> list[str]:
    from .config_file import config_warnings

    return config_warnings(config)


def _hook_output() -> Any:
    """Hook lines: all of them on the console, a head and a tail in the log file."""
    import logging

    from .logs import LOGGER_NAME, HookOutputLog

    return HookOutputLog(logging.getLogger(LOGGER_NAME))


def _cmd_version() -> int:
    import shutil
    import subprocess

    print(f"resticm {__version__} (resticm_core, Python {sys.version.split()[0]})")
    restic = shutil.which("restic")
    if restic:
        out = subprocess.run([restic, "version"], capture_output=True, text=True, check=False)
        print(out.stdout.strip() or "restic: version unknown")
    else:
        print("restic: not installed (install the 'restic' package)")
    return 0


def _cmd_plugins(args: argparse.Namespace, env: dict[str, str]) -> int:
    import json

    from .plugin_manager import DISABLE_ENV, PluginRegistry, blocked_from_env

    blocked = blocked_from_env(env.get(DISABLE_ENV))
    registry = PluginRegistry.default(blocked=blocked)
    infos = registry.plugins()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": i.name,
                        "module": i.module,
                        "distribution": i.distribution,
                        "version": i.version,
                        "hook_kinds": list(i.hook_kinds),
                        "notifier_kinds": list(i.notifier_kinds),
                        "dump_kinds": list(i.dump_kinds),
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
        return 0
    print(f"{'PLUGIN':<14} {'DISTRIBUTION':<22} {'VERSION':<10} KINDS")
    for info in infos:
        kinds = (
            ", ".join(
                [
                    *(f"hook:{k}" for k in info.hook_kinds),
                    *(f"notifier:{k}" for k in info.notifier_kinds),
                    *(f"dump:{k}" for k in info.dump_kinds),
                ]
            )
            or "-"
        )
        print(f"{info.name:<14} {info.distribution or '-':<22} {info.version or '-':<10} {kinds}")
    for name in blocked:
        print(f"{name:<14} (blocked by {DISABLE_ENV})")
    return 0


def _cmd_config_from_go(args: argparse.Namespace, registry: Any, env: dict[str, str]) -> int:
    """``config validate --from-go [--write]``: exit 0 when the (rewritten) file loads."""
    import json

    from .config_file import find_config_path, load_config
    from .go_migration import as_dict, migrate, report_lines, write

    path, _also = find_config_path(args.config, environ=env)
    migration = migrate(path, registry=registry, environ=env)
    wrote = None
    if args.write and not args.dry_run and migration.new_text is not None:
        wrote = write(migration)
        # The proof: the strict loader, permissions included, accepts what was written.
        if migration.loads_after_write:
            load_config(path, registry=registry, environ=env)
    if args.json:
        print(json.dumps(as_dict(migration, wrote=wrote), indent=2))
    else:
        for line in report_lines(migration, wrote=wrote):
            print(line)
    if migration.remaining:
        return 2
    return 0 if wrote is not None or not migration.fixes else 2


def _cmd_config_validate(config: Any, args: argparse.Namespace, env: dict[str, str]) -> int:
    """Exit 0 when the config loads and nothing in it fails every night, else 2."""
    import json

    from .config_check import check_config

    found = check_config(config, environ=env)
    errors, warnings = list(found.errors), list(found.warnings)
    source = str(config.source_path)
    if args.json:
        print(
            json.dumps({"ok": found.ok, "config": source, "errors": errors, "warnings": warnings})
        )
    elif found.ok:
        print(f"OK: {source}" + (f" ({len(warnings)} warning(s))" if warnings else ""))
    else:
        print(f"FAILED: {source}: {len(errors)} problem(s) that fail every run")
    if not args.json:
        for error in errors:
            print(f"  error: {error}")
        for warning in warnings:
            print(f"  warning: {warning}")
    return 0 if found.ok else 2


def _cmd_hooks_run(
    config: Any, args: argparse.Namespace, registry: Any, env: dict[str, str]
) -> int:
    import json

    from .phases import BackupStatus
    from .workflow import run_phase_hooks

    result = run_phase_hooks(
        config,
        args.phase,
        backup_status=BackupStatus(args.status),
        error=args.error,
        registry=registry,
        environ=env,
        dry_run=args.dry_run,
        output=_hook_output(),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for hook in result.hooks:
            line = f"{hook.outcome.value:<9} {hook.name} ({hook.duration:.1f}s)"
            print(line + (f": {hook.error}" if hook.error else ""))
        if not result.hooks:
            print(f"no {args.phase} hooks configured")
    return 1 if result.failed else 0


def _cmd_notify_test(config: Any, args: argparse.Namespace) -> int:
    from .notify import dispatch, probe_event
    from .secrets import Redactor

    providers = list(config.notifications.providers)
    if args.provider:
        wanted = args.provider.lower()
        providers = [
            p
            for p in providers
            if wanted in (p.describe().lower(), p.kind.lower(), *(a.lower() for a in p.aliases))
        ]
        if not providers:
            print(f"resticm: no notification provider named {args.provider!r}", file=sys.stderr)
            return 2
    if not providers:
        print("no notification providers configured (notifications.providers)")
        return 0
    event = probe_event(config)
    if args.dry_run:
        for provider in providers:
            print(f"[dry-run] would send a test message to {provider.describe()}")
        return 0
    redactor = Redactor(config.secrets())
    deliveries = dispatch(
        [event], providers, redactor=redactor, deadline=config.notifications.timeout
    )
    for delivery in deliveries:
        verdict = "ok" if delivery.ok else f"FAILED: {delivery.error}"
        print(f"{delivery.notifier:<16} {verdict}")
    return 0 if all(d.ok for d in deliveries) else 1


def _lifecycle_options(command: str, args: argparse.Namespace, env: dict[str, str]) -> Any:
    """The RunOptions of mirror sync and the maintenance commands (issue 3)."""
    from .commands import active_backend

    copy_to = [n.strip() for v in getattr(args, "copy_to", []) for n in v.split(",") if n.strip()]
    return {
        "no_copy": getattr(args, "no_copy", False),
        "copy_all": getattr(args, "copy_all", False),
        "primary_only": getattr(args, "primary_only", False),
        "auto": getattr(args, "auto", False),
        "subset": getattr(args, "subset", None),
        "copy_to": tuple(copy_to),
        # The active backend applies to backup/forget/prune/check (spec §1.5), not to
        # the default workflow, full or copy, whose source is always the primary.
        "target": (
            active_backend(env) if command in ("backup", "forget", "prune", "check") else None
        ),
    }


def _cmd_workflow(
    command: str, config: Any, args: argparse.Namespace, registry: Any, env: dict[str, str]
) -> int:
    import json

    report = _workflow_report(command, config, args, registry, env)
    if args.progress_display is not None:
        args.progress_display.close()  # the line cleared before the summary
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_summary(report, args)
    return int(report.exit_code)


def _workflow_report(
    command: str, config: Any, args: argparse.Namespace, registry: Any, env: dict[str, str]
) -> Any:
    """Run *command* on *config* as the CLI does (signals, progress); the report."""
    from .workflow import RunOptions, run

    options = RunOptions(
        command=command,
        dry_run=args.dry_run,
        no_hooks=getattr(args, "no_hooks", False),
        tags=tuple(getattr(args, "tags", ())),
        no_backup=getattr(args, "no_backup", False),
        no_forget=getattr(args, "no_forget", False),
        prune=getattr(args, "prune", False),
        no_prune=getattr(args, "no_prune", False),
        check=getattr(args, "check", False),
        deep=getattr(args, "deep", False),
        no_check=getattr(args, "no_check", False),
        all_hosts=getattr(args, "all_hosts", False),
        lock_wait=args.lock_wait,
        notify_success=getattr(args, "notify_success", False),
        **_lifecycle_options(command, args, env),
    )
    if not args.json:
        _hide_run_finished_on_console()  # the summary below says it (one summary, not two)
    report = run(
        config,
        command,
        options=options,
        registry=registry,
        environ=env,
        handle_signals=True,
        # The CLI owns its process: what a hook daemonises comes back to it.
        subreaper=True,
        verbose=args.verbose,
        progress=args.progress_display,
        output=_hook_output(),
    )
    return report


def _print_summary(report: Any, args: argparse.Namespace) -> None:
    from .report_text import summary_lines

    for line in summary_lines(report, steps=not args.quiet):
        print(line, file=sys.stderr)


def _hide_run_finished_on_console() -> None:
    import logging

    from .logs import LOGGER_NAME, hide_flagged_on_console
    from .run_state import RUN_ERROR
    from .workflow import RUN_FINISHED

    logger = logging.getLogger(LOGGER_NAME)
    hide_flagged_on_console(logger, RUN_FINISHED)
    # Every recorded error is in the summary: printed once, there.
    hide_flagged_on_console(logger, RUN_ERROR)
