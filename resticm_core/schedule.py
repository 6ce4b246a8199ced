"""``resticm schedule``: run resticm on a timer (systemd), or print a cron line.

``install`` writes a hardened ``<name>.service`` (oneshot) and ``<name>.timer``,
then reloads systemd and enables the timer; ``show`` prints them (or a cron line
with ``--cron``); ``remove`` disables the timer and deletes both files. Every
hardening setting is explained in ``docs/scheduling.md``: the backup must still
read the whole file system, and hooks must still be able to stop services and
write dumps.

``install`` refuses what would fail every night instead of writing it: a program,
interpreter or config the unit's own sandbox hides (``PrivateTmp=`` hides ``/tmp``),
an ``OnCalendar=`` or ``RandomizedDelaySec=`` value systemd cannot parse (checked
with ``systemd-analyze`` where it is installed), and a machine with no systemd
manager running (then ``schedule show --cron`` is the way).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from .errors import ResticmError, UsageError

#: Commands a schedule can run; ``default`` is the bare ``resticm``.
SCHEDULE_COMMANDS = ("default", "backup", "full")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
#: Exists only while systemd is the running init (sd_booted(3) tests the same path).
SYSTEMD_RUNTIME_DIR = Path("/run/systemd/system")
#: Settings the generated service may carry, and the paths each hides from the run:
#: a program, interpreter or config there is not found when the timer fires.
_HIDING_SETTINGS = {
    "PrivateTmp=true": ("/tmp", "/var/tmp"),
    "ProtectHome=true": ("/home", "/root", "/run/user"),
    "ProtectHome=tmpfs": ("/home", "/root", "/run/user"),
}
_INSTALL_HINT = (
    'install resticm outside it (README "Install on a server": '
    "`sudo python3 -m venv /opt/resticm && sudo /opt/resticm/bin/pip install .`) "
    "and run that installation's `resticm schedule install`, or pass --executable PATH"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
_SIMPLE_ARG = re.compile(r"^[A-Za-z0-9_./=:+,@-]+$")
#: systemd calendar shorthands and the cron fields they mean.
_CRON_SHORTHANDS = {
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 1",
    "monthly": "0 0 1 * *",
}
_TIME_OF_DAY = re.compile(r"^(?:\*-\*-\*\s+)?(\d{1,2}):(\d{2})(?::00)?$")


@attrs.frozen(kw_only=True)
class Schedule:
    """What a scheduled run does and when."""

    #: Unit name without suffix: ``<name>.service`` and ``<name>.timer``.
    name: str = "resticm"
    #: systemd ``OnCalendar=`` expression (``daily``, ``*-*-* 02:30``...).
    on_calendar: str = "daily"
    #: Spread start times of a fleet over this window (``RandomizedDelaySec=``).
    randomized_delay: str = "30min"
    #: ``default`` (backup then forget), ``backup`` or ``full``.
    command: str = "default"
    #: Absolute config path; None lets resticm search its default locations.
    config: str | None = None
    #: A ``systemctl --user`` unit instead of a system one.
    user: bool = False
    #: How to start resticm: an executable and its first arguments.
    executable: tuple[str, ...] = ()
    #: addition (issue 18): the job of a config with ``jobs:`` this timer runs (``--job``).
    job: str | None = None
    #: addition (issue 18): ``NAME:PATH`` credentials systemd hands the run in
    #: ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``), for ``${credential:NAME}``.
    load_credentials: tuple[str, ...] = ()
    #: The same, encrypted with ``systemd-creds encrypt`` (``LoadCredentialEncrypted=``).
    load_credentials_encrypted: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise UsageError(f"schedule name {self.name!r}: use letters, digits, '-', '_', '.'")
        for spec, option in (
            *((c, "--load-credential") for c in self.load_credentials),
            *((c, "--load-credential-encrypted") for c in self.load_credentials_encrypted),
        ):
            _check_credential(spec, option)
        if self.command not in SCHEDULE_COMMANDS:
            raise UsageError(
                f"schedule command {self.command!r}: one of {', '.join(SCHEDULE_COMMANDS)}"
            )
        for value, what in (
            (self.on_calendar, "--on-calendar"),
            (self.randomized_delay, "--randomized-delay"),
        ):
            if not value.strip() or "\n" in value:
                raise UsageError(f"{what}: expected one line, got {value!r}")

    def argv(self) -> list[str]:
        """The command line the service runs."""
        argv = list(self.executable or default_executable())
        if self.config:
            argv += ["--config", self.config]
        if self.job:
            argv += ["--job", self.job]
        if self.command != "default":
            argv.append(self.command)
        return argv


_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,255}$")


def _check_credential(spec: str, option: str) -> None:
    """``NAME:PATH``, a name systemd accepts and an absolute path on one line."""
    name, sep, path = spec.partition(":")
    if not sep or not _CREDENTIAL_NAME.match(name) or name in (".", ".."):
        raise UsageError(
            f"{option} {spec!r}: expected NAME:PATH (NAME of letters, digits, '_', '-', '.')"
        )
    if not path.startswith("/") or "\n" in path or any(c.isspace() for c in path):
        raise UsageError(f"{option} {spec!r}: PATH must be an absolute path without spaces")


def default_executable() -> tuple[str, ...]:
    """``resticm`` of this installation, else this interpreter with ``-m resticm_core``."""
    beside = Path(sys.executable).parent / "resticm"
    if beside.is_file() and os.access(beside, os.X_OK):
        return (str(beside),)
    found = shutil.which("resticm")
    return (found,) if found else (sys.executable, "-m", "resticm_core")


def _exec_quote(arg: str) -> str:
    """One argument of ``ExecStart=``: systemd's quoting, with ``%`` and ``$`` escaped."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _SIMPLE_ARG.match(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def service_unit(schedule: Schedule) -> str:
    """The ``.service`` file: one oneshot run of resticm, niced and sandboxed."""
    exec_start = " ".join(_exec_quote(a) for a in schedule.argv())
    lines = [
        "# Written by `resticm schedule install`; see docs/scheduling.md for each setting.",
        "[Unit]",
        f"Description=resticm {schedule.command} backup"
        + (f" of job {schedule.job}" if schedule.job else ""),
        "Documentation=man:restic(1)",
        # Remote repositories need the network; harmless for local ones.
        "After=network-online.target",
    ]
    if not schedule.user:
        lines.append("Wants=network-online.target")  # no such target in a user manager
    lines += [
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={exec_start}",
        # 75: another run (a manual one) holds the lock; the timer is not failing.
        "SuccessExitStatus=75",
        # Low priority for CPU and disk: the machine keeps serving while it backs up.
        "Nice=10",
        "CPUSchedulingPolicy=batch",
        "IOSchedulingClass=idle",
        # On stop, resticm stops restic and still runs post_backup/on_error/finally
        # (which may restart services): give them time before SIGKILL.
        "KillMode=mixed",
        "TimeoutStopSec=10min",
    ]
    # Secrets for ${credential:NAME} (docs/scheduling.md): systemd reads them (as root,
    # before dropping privileges) into a private $CREDENTIALS_DIRECTORY of this run.
    lines += [f"LoadCredential={spec}" for spec in schedule.load_credentials]
    lines += [f"LoadCredentialEncrypted={spec}" for spec in schedule.load_credentials_encrypted]
    if not schedule.user:
        # Namespace sandboxing needs a system manager (or user namespaces); every
        # setting here keeps the whole file system readable for the backup.
        lines += [
            "PrivateTmp=true",
            "ProtectSystem=full",
            "ProtectKernelTunables=true",
            "ProtectKernelModules=true",
            "ProtectControlGroups=true",
            "RestrictRealtime=true",
            "RestrictSUIDSGID=true",
            "LockPersonality=true",
        ]
    return "\n".join(lines) + "\n"


def timer_unit(schedule: Schedule) -> str:
    """The ``.timer`` file: when to run, spread over a window, catching up missed runs."""
    return "\n".join(
        [
            "# Written by `resticm schedule install`; see docs/scheduling.md.",
            "[Unit]",
            f"Description=resticm {schedule.command} backup"
            + (f" of job {schedule.job}" if schedule.job else "")
            + f" ({schedule.on_calendar})",
            "",
            "[Timer]",
            f"OnCalendar={schedule.on_calendar}",
            f"RandomizedDelaySec={schedule.randomized_delay}",
            # A run missed while the machine was off happens at the next boot.
            "Persistent=true",
            f"Unit={schedule.name}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )


def cron_fields(on_calendar: str) -> str:
    """The cron time fields for the common ``OnCalendar`` forms.

    :raises UsageError: for an expression cron cannot say; pass ``--cron-schedule``.
    """
    value = on_calendar.strip()
    if value in _CRON_SHORTHANDS:
        return _CRON_SHORTHANDS[value]
    match = _TIME_OF_DAY.match(value)
    if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
        return f"{int(match.group(2))} {int(match.group(1))} * * *"
    raise UsageError(
        f"cannot turn --on-calendar {on_calendar!r} into a cron schedule; "
        "pass --cron-schedule with the five cron fields (e.g. '30 2 * * *')"
    )


def cron_line(schedule: Schedule, *, fields: str | None = None, system: bool = True) -> str:
    """A crontab line (``/etc/cron.d`` format with the user field when *system*).

    ``nice``/``ionice`` give the same priorities as the service; cron has no
    randomized delay or catch-up of missed runs (use anacron for that).
    """
    when = fields or cron_fields(schedule.on_calendar)
    if len(when.split()) != 5:
        raise UsageError(f"--cron-schedule {when!r}: expected five fields like '30 2 * * *'")
    command = " ".join(
        ["nice", "-n", "10", "ionice", "-c", "3", *(_shell_quote(a) for a in schedule.argv())]
    )
    user = " root" if system else ""
    # cron treats % as a newline: escape it.
    return f"{when}{user} {command.replace('%', chr(92) + '%')}"


def _shell_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def user_unit_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (default ``~/.config/systemd/user``)."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "systemd" / "user"


def unit_paths(schedule: Schedule, unit_dir: Path) -> tuple[Path, Path]:
    return unit_dir / f"{schedule.name}.service", unit_dir / f"{schedule.name}.timer"


def write_units(schedule: Schedule, unit_dir: Path) -> tuple[Path, Path]:
    """Write both units (0644: they hold no secret) and return their paths."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    service, timer = unit_paths(schedule, unit_dir)
    for path, text in ((service, service_unit(schedule)), (timer, timer_unit(schedule))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(path)
    return service, timer


def _hidden_prefixes(schedule: Schedule) -> dict[str, str]:
    """Each path prefix the generated service hides, with the setting that hides it."""
    settings = set(service_unit(schedule).splitlines())
    return {
        prefix: setting
        for setting, prefixes in _HIDING_SETTINGS.items()
        if setting in settings
        for prefix in prefixes
    }


def _interpreter(program: Path) -> Path | None:
    """The absolute ``#!`` interpreter of a script (a venv's ``bin/resticm``), if any."""
    try:
        with program.open("rb") as stream:
            first = stream.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return Path(words[0]) if words and words[0].startswith("/") else None


def _paths_the_run_needs(schedule: Schedule) -> list[tuple[str, Path]]:
    """(what, path) for every file the service must see: program, its target, interpreter."""
    argv = schedule.argv()
    found = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
    needed: list[tuple[str, Path]] = []
    if found:
        program = Path(found)
        needed += [("program", program), ("program", program.resolve())]
        interpreter = _interpreter(program.resolve())
        if interpreter is not None:
            needed += [("interpreter", interpreter), ("interpreter", interpreter.resolve())]
    if _runs_this_installation(schedule):
        # An editable install runs the package from its checkout, wherever that is.
        needed.append(("the resticm_core package", Path(__file__).resolve().parent))
    if schedule.config:
        needed += [("config", Path(schedule.config)), ("config", Path(schedule.config).resolve())]
    return needed


def check_visible_to_service(schedule: Schedule) -> None:
    """Refuse a program, interpreter or config the service's own sandbox would hide.

    :raises UsageError: naming the path, the setting that hides it, and the fix.
    """
    hidden = _hidden_prefixes(schedule)
    for what, path in _paths_the_run_needs(schedule):
        for prefix, setting in hidden.items():
            if path == Path(prefix) or Path(prefix) in path.parents:
                fix = (
                    "move the config (e.g. to /etc/resticm/config.yaml) and pass --config"
                    if what == "config"
                    else _INSTALL_HINT
                )
                raise UsageError(
                    f"{what} {path} is under {prefix}, which the service's {setting} hides: "
                    f"the timer would fail every run; {fix}"
                )


def _runs_this_installation(schedule: Schedule) -> bool:
    """Whether the service starts this interpreter's resticm (not one found on PATH)."""
    program = Path(schedule.argv()[0])
    here = Path(sys.executable)
    return not schedule.executable and (program == here or program.parent == here.parent)


def _checkout_note(schedule: Schedule) -> str | None:
    """A warning when the timer would run this package from a source checkout."""
    if not _runs_this_installation(schedule):
        return None
    package = Path(__file__).resolve().parent
    if not (package.parent / "pyproject.toml").is_file():
        return None
    return (
        f"warning: the timer runs resticm_core from the checkout {package.parent} "
        "(an editable install): moving or deleting that checkout stops the backups; "
        'see README "Install on a server"'
    )


def check_with_systemd_analyze(schedule: Schedule, environ: Mapping[str, str]) -> None:
    """Let systemd itself parse ``OnCalendar=`` and ``RandomizedDelaySec=`` (if installed).

    Without the check a typo is accepted, and the timer fails to load at the next
    daemon-reload: no backup, and nothing says so until someone looks.

    :raises UsageError: naming the option, the value and systemd's reason.
    """
    analyze = shutil.which("systemd-analyze", path=environ.get("PATH"))
    if analyze is None:
        return
    for verb, value, option in (
        ("calendar", schedule.on_calendar, "--on-calendar"),
        ("timespan", schedule.randomized_delay, "--randomized-delay"),
    ):
        try:
            result = subprocess.run(
                [analyze, verb, "--", value],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return  # a broken checker is no reason to refuse; systemd checks at load time
        if result.returncode != 0:
            reason = next((line for line in result.stderr.splitlines() if line.strip()), "rejected")
            raise UsageError(
                f"{option} {value!r}: not a valid systemd {verb} "
                f"(systemd-analyze {verb}: {reason}); see `man systemd.time`"
            )


class SystemctlError(ResticmError):
    """systemctl refused a command (exit 1: a step failed)."""


class NoSystemdError(UsageError):
    """No systemd manager runs here (exit 2: use ``schedule show --cron``)."""


def systemd_problem(user: bool, environ: Mapping[str, str]) -> str | None:
    """Why systemctl cannot manage units here, or None when it can."""
    if user:
        runtime = environ.get("XDG_RUNTIME_DIR")
        # The user manager's socket: systemctl --user talks to it there.
        if not runtime or not (Path(runtime) / "systemd" / "private").exists():
            return (
                "no systemd user manager reachable ($XDG_RUNTIME_DIR/systemd/private is "
                "missing: log in as the user, or `loginctl enable-linger USER`)"
            )
    elif not SYSTEMD_RUNTIME_DIR.is_dir():
        return f"no running systemd here ({SYSTEMD_RUNTIME_DIR} is missing)"
    if shutil.which("systemctl", path=environ.get("PATH")) is None:
        return "systemctl not found"
    return None


def _require_systemd(user: bool, environ: Mapping[str, str]) -> None:
    problem = systemd_problem(user, environ)
    if problem is not None:
        crontab = " --crontab" if user else ""
        raise NoSystemdError(
            f"{problem}: nothing written; use `resticm schedule show --cron{crontab}` "
            "for a cron line"
        )


def _systemctl(user: bool, environ: Mapping[str, str], *args: str) -> None:
    systemctl = shutil.which("systemctl", path=environ.get("PATH"))
    if systemctl is None:
        raise SystemctlError("systemctl not found")
    argv = [systemctl, *(["--user"] if user else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise SystemctlError(
            f"systemctl {' '.join(argv[1:])} failed: {detail[-1] if detail else 'no output'}"
        )


# -- the CLI ---------------------------------------------------------------------------------


def add_schedule_parser(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """The ``schedule`` subcommand's actions; *common* carries the global flags."""
    actions = parser.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    def timing(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--name", default="resticm", help="unit name (default: resticm)")
        sub.add_argument("--user", action="store_true", help="a systemd --user unit")
        sub.add_argument(
            "--unit-dir",
            type=Path,
            metavar="DIR",
            help="where the units go (default: /etc/systemd/system, or "
            "~/.config/systemd/user with --user); systemctl is not called",
        )

    def what(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--on-calendar",
            default=None,
            metavar="WHEN",
            help="systemd OnCalendar expression (default: the config's schedule:, else daily)",
        )
        sub.add_argument(
            "--load-credential",
            dest="load_credentials",
            action="append",
            default=[],
            metavar="NAME:PATH",
            help="LoadCredential= of the service, for ${credential:NAME} (repeatable)",
        )
        sub.add_argument(
            "--load-credential-encrypted",
            dest="load_credentials_encrypted",
            action="append",
            default=[],
            metavar="NAME:PATH",
            help="LoadCredentialEncrypted= (a systemd-creds encrypted file; repeatable)",
        )
        sub.add_argument(
            "--randomized-delay",
            default="30min",
            metavar="SPAN",
            help="spread the start over this window (default: 30min)",
        )
        sub.add_argument(
            "--command",
            dest="schedule_run",
            default="default",
            choices=SCHEDULE_COMMANDS,
            help="what the timer runs (default: the bare resticm, backup then forget)",
        )
        sub.add_argument(
            "--executable",
            metavar="PATH",
            help="the resticm program to run (default: this installation's)",
        )

    install = actions.add_parser(
        "install", parents=[common], help="write and enable a systemd service and timer"
    )
    timing(install)
    what(install)
    show = actions.add_parser(
        "show", parents=[common], help="print the units (or a cron line) without installing"
    )
    timing(show)
    what(show)
    show.add_argument("--cron", action="store_true", help="print a cron line instead")
    show.add_argument(
        "--cron-schedule",
        metavar="FIELDS",
        help="the five cron time fields, for --on-calendar values cron cannot say",
    )
    show.add_argument(
        "--crontab",
        action="store_true",
        help="with --cron: a user crontab line (no user field) instead of /etc/cron.d format",
    )
    remove = actions.add_parser(
        "remove", parents=[common], help="disable the timer and delete both units"
    )
    timing(remove)


def _schedule_from(
    args: argparse.Namespace, *, job: str | None = None, on_calendar: str | None = None
) -> Schedule:
    config = getattr(args, "config", None)
    executable = getattr(args, "executable", None)
    return Schedule(
        name=f"{args.name}-{job}" if job else args.name,
        on_calendar=getattr(args, "on_calendar", None) or on_calendar or "daily",
        randomized_delay=getattr(args, "randomized_delay", "30min"),
        command=getattr(args, "schedule_run", "default"),
        config=str(Path(config).expanduser().resolve()) if config else None,
        user=args.user,
        executable=(executable,) if executable else (),
        job=job,
        load_credentials=tuple(getattr(args, "load_credentials", ())),
        load_credentials_encrypted=tuple(getattr(args, "load_credentials_encrypted", ())),
    )


def run_schedule_command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """``resticm schedule install|show|remove``; returns the exit code.

    A config with ``jobs:`` gets one service and timer per job (issue 18), named
    ``NAME-JOB`` and running ``resticm --job JOB``, each at its job's ``schedule:``.
    """
    from .schedule_jobs import job_schedules

    schedules = job_schedules(args, environ, _schedule_from)
    if len(schedules) == 1:
        return _run_one(schedules[0], args, environ)
    codes = [_run_one(schedule, args, environ) for schedule in schedules]
    return max(codes)


def _run_one(schedule: Schedule, args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    unit_dir: Path | None = args.unit_dir
    directory = unit_dir or (user_unit_dir(environ) if schedule.user else SYSTEM_UNIT_DIR)
    action = args.schedule_command
    if action == "show":
        if args.cron:
            print(cron_line(schedule, fields=args.cron_schedule, system=not args.crontab))
            return 0
        check_with_systemd_analyze(schedule, environ)
        try:
            check_visible_to_service(schedule)
        except UsageError as exc:  # show prints what install would write, and why it refuses
            print(f"resticm: warning: install would refuse this: {exc}", file=sys.stderr)
        service, timer = unit_paths(schedule, directory)
        print(f"# {service}\n{service_unit(schedule)}\n# {timer}\n{timer_unit(schedule)}", end="")
        return 0
    if action == "install":
        if schedule.config:
            _validate_config(schedule.config, environ, schedule.job)
        check_with_systemd_analyze(schedule, environ)
        check_visible_to_service(schedule)
        if unit_dir is None:
            _require_systemd(schedule.user, environ)  # before writing anything
        note = _checkout_note(schedule)
        if note:
            print(f"resticm: {note}", file=sys.stderr)
        if args.dry_run:
            print(f"[dry-run] would write {', '.join(map(str, unit_paths(schedule, directory)))}")
            return 0
        written = write_units(schedule, directory)
        for path in written:
            print(f"wrote {path}")
        if unit_dir is None:
            _systemctl(schedule.user, environ, "daemon-reload")
            _systemctl(schedule.user, environ, "enable", "--now", f"{schedule.name}.timer")
            print(f"enabled {schedule.name}.timer ({schedule.on_calendar})")
        else:
            scope = "--user " if schedule.user else ""
            print(
                f"not enabled (--unit-dir): run `systemctl {scope}daemon-reload && "
                f"systemctl {scope}enable --now {schedule.name}.timer` where they are installed"
            )
        return 0
    return _remove(
        schedule, directory, touch_systemd=unit_dir is None, dry_run=args.dry_run, environ=environ
    )


def _remove(
    schedule: Schedule,
    directory: Path,
    *,
    touch_systemd: bool,
    dry_run: bool,
    environ: Mapping[str, str],
) -> int:
    """Delete the units even when systemctl fails: a stale unit file is worse than a
    failed disable, which ``systemctl daemon-reload`` later clears.

    Exit 1 when systemctl failed (the files are gone; its message says what is left to do).
    """
    wants = directory / "timers.target.wants" / f"{schedule.name}.timer"
    paths = [p for p in unit_paths(schedule, directory) if p.exists()]
    if wants.is_symlink():  # left by `enable` when disable could not remove it
        paths.append(wants)
    if dry_run:
        print(f"[dry-run] would remove {', '.join(map(str, paths)) or 'nothing'}")
        return 0
    if not paths:
        print(f"no {schedule.name} units in {directory}")
        return 0
    failures: list[str] = []
    manager = touch_systemd and systemd_problem(schedule.user, environ) is None
    if manager:
        try:
            _systemctl(schedule.user, environ, "disable", "--now", f"{schedule.name}.timer")
        except SystemctlError as exc:
            failures.append(str(exc))
    elif touch_systemd:
        print(f"{systemd_problem(schedule.user, environ)}: nothing to disable")
    for path in paths:
        path.unlink()
        print(f"removed {path}")
    if manager:
        try:
            _systemctl(schedule.user, environ, "daemon-reload")
        except SystemctlError as exc:
            failures.append(str(exc))
    if failures:
        scope = "--user " if schedule.user else ""
        for failure in failures:
            print(f"resticm: {failure}", file=sys.stderr)
        print(
            f"resticm: the unit files are removed; run `systemctl {scope}stop "
            f"{schedule.name}.timer; systemctl {scope}daemon-reload` once systemd answers",
            file=sys.stderr,
        )
        return 1
    return 0


def _validate_config(path: str, environ: Mapping[str, str], job: str | None = None) -> None:
    """Refuse to schedule a config that would fail every night (ConfigError: exit 2)."""
    from .config_check import check_config
    from .config_file import load_job_set
    from .errors import ConfigError

    config = load_job_set(path, environ=environ).one(job, "schedule install")
    found = check_config(config, environ=environ)
    if not found.ok:
        raise ConfigError(
            [f"{path}: {error}" for error in found.errors]
            + ["not scheduled: fix these first (resticm config validate lists them)"]
        )


__all__: Sequence[str] = (
    "NoSystemdError",
    "Schedule",
    "SystemctlError",
    "add_schedule_parser",
    "check_visible_to_service",
    "check_with_systemd_analyze",
    "cron_line",
    "run_schedule_command",
    "service_unit",
    "systemd_problem",
    "timer_unit",
    "write_units",
)
