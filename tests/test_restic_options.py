"""restic's options reach restic (issue 18): options, limits, compression, pack_size,
extra_args, checked against the restic present.

The real ``resticm`` and ``restic`` processes on local repositories; what reached
restic is read from ``-v`` (the command line resticm prints) and from the effect
(``restic ls``, the repository's size).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from resticm_core import config_from_dict
from resticm_core.errors import ConfigError
from resticm_core.restic_options import (
    CommandFlags,
    check_extra_args,
    command_args,
    parse_help,
    restic_flags,
)

from .conftest import PASSWORD, json_config, requires_restic, restic_env, restic_version, run_config

RESTIC = shutil.which("restic")


def write_config(tmp_path: Path, source: Path, **extra: Any) -> Path:
    return json_config(tmp_path, source, host="options-host", **extra)


def resticm(cfg: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_config(cfg, *args, env=env)


def command_lines(stderr: str, command: str) -> list[str]:
    """The ``$ restic ... <command> ...`` lines ``-v`` printed."""
    return [line for line in stderr.splitlines() if "restic -r " in line and f" {command} " in line]


def version_text() -> str:
    return ".".join(str(n) for n in restic_version())


# -- with restic ----------------------------------------------------------------------------------


@requires_restic
@pytest.mark.restic
def test_extra_args_reach_restic_and_leave_the_big_file_out(
    tmp_path: Path, source: Path, environ: dict[str, str], repo: Path
) -> None:
    (source / "big.bin").write_bytes(os.urandom(4096))
    cfg = write_config(
        tmp_path,
        source,
        extra_args={"backup": ["--exclude-larger-than", "1K", "--one-file-system"]},
        options={"s3.storage-class": "STANDARD_IA"},  # restic ignores other backends' options
        limit_upload=50000,
        limit_download=60000,
        pack_size=8,
    )
    done = resticm(cfg, "-v", "backup", env=environ)
    assert done.returncode == 0, done.stderr
    (line,) = command_lines(done.stderr, "backup")
    for expected in (
        "--exclude-larger-than 1K --one-file-system",
        "-o s3.storage-class=STANDARD_IA",
        "--limit-upload 50000",
        "--limit-download 60000",
        "--pack-size 8",
    ):
        assert expected in line
    # Before `--`: a flag after it would be a path.
    assert line.index("--exclude-larger-than") < line.index(" -- ")
    listed = subprocess.run(
        ["restic", "--no-lock", "ls", "latest"],
        env=restic_env(tmp_path / "cache", repo),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{source}/a.txt" in listed
    assert "big.bin" not in listed
    # The dry run shows the same command line, and runs nothing.
    dry = resticm(cfg, "-n", "backup", env=environ)
    assert dry.returncode == 0, dry.stderr
    assert "--exclude-larger-than 1K --one-file-system" in dry.stderr


@requires_restic
@pytest.mark.restic
def test_compression_reaches_restic(
    tmp_path: Path, environ: dict[str, str], template_repo: Path
) -> None:
    # Text that compresses well but does not deduplicate (no two chunks alike).
    rng = random.Random(18)
    source = tmp_path / "text"
    source.mkdir()
    (source / "words.txt").write_text(
        "".join(f"{rng.choice(['alpha', 'beta', 'gamma', 'delta'])} {rng.random()}\n"
                for _ in range(40000))
    )
    sizes = {}
    for mode in ("off", "max"):
        base = tmp_path / mode
        shutil.copytree(template_repo, base / "repo")
        cfg = write_config(base, source, compression=mode)
        done = resticm(cfg, "-v", "backup", env=environ)
        assert done.returncode == 0, done.stderr
        (line,) = command_lines(done.stderr, "backup")
        assert f"--compression {mode}" in line
        packs = (base / "repo" / "data").rglob("*")
        sizes[mode] = sum(f.stat().st_size for f in packs if f.is_file())
    raw = (source / "words.txt").stat().st_size
    assert sizes["off"] > raw  # stored as is
    assert sizes["max"] < raw / 2


@requires_restic
@pytest.mark.restic
def test_an_unknown_flag_is_exit_2_naming_it_before_any_hook_runs(
    tmp_path: Path, source: Path, environ: dict[str, str], make_script: Any
) -> None:
    marker = tmp_path / "pre_backup_ran"
    hook = make_script("pre.sh", f"touch {marker}\n")
    cfg = write_config(
        tmp_path,
        source,
        hooks={"pre_backup": [str(hook)]},
        extra_args={
            "backup": ["--exclude-caches"],
            "prune": ["--max-unused", "5%", "--bogus-flag"],
        },
    )
    expected = (
        f"extra_args.prune[2]: --bogus-flag is not a flag of restic prune {version_text()}"
    )
    validate = resticm(cfg, "config", "validate", env=environ)
    assert validate.returncode == 2
    assert expected in validate.stdout
    run = resticm(cfg, "--prune", env=environ)
    assert run.returncode == 2
    assert expected in run.stderr
    assert not marker.exists()


@requires_restic
@pytest.mark.restic
def test_flags_resticm_sets_itself_are_refused(
    tmp_path: Path, source: Path, environ: dict[str, str]
) -> None:
    cfg = write_config(
        tmp_path,
        source,
        backends={
            "m": {
                "repository": str(tmp_path / "m"),
                "password": PASSWORD,
                "extra_args": {"forget": ["--keep-last", "3"], "copy": ["--from-repo", "/x"]},
            }
        },
        extra_args={"backup": ["--json"], "check": ["--password-file", "/etc/pw"]},
    )
    done = resticm(cfg, "config", "validate", env=environ)
    assert done.returncode == 2
    for expected in (
        "extra_args.backup[0]: --json: resticm sets this itself",
        "extra_args.check[0]: --password-file: resticm sets this itself (use the 'password_file'",
        "backends.m.extra_args.forget[0]: --keep-last: resticm sets this itself "
        "(use retention.keep_last)",
        "backends.m.extra_args.copy[0]: --from-repo: resticm sets this itself",
    ):
        assert expected in done.stdout


@requires_restic
@pytest.mark.restic
def test_a_backend_s_own_options_and_extra_args_reach_its_copy(
    tmp_path: Path, source: Path, environ: dict[str, str], template_repo: Path
) -> None:
    for name in ("repo", "m"):
        shutil.copytree(template_repo, tmp_path / name)
    cfg = write_config(
        tmp_path,
        source,
        options={"s3.connections": "4", "sftp.args": "-o A=1,B=2"},
        compression="max",
        backends={
            "m": {
                "repository": str(tmp_path / "m"),
                "password": PASSWORD,
                "options": {"s3.connections": "8"},
                "compression": "off",
                "extra_args": {"copy": ["--no-cache"]},
            }
        },
        copy_to_backends=["m"],
    )
    done = resticm(cfg, "-v", "--no-forget", env=environ)
    assert done.returncode == 0, done.stderr
    (backup,) = command_lines(done.stderr, "backup")
    (copy,) = command_lines(done.stderr, "copy")
    assert "-o s3.connections=4" in backup and "--compression max" in backup
    # A comma stays inside its option (restic reads -o as CSV).
    assert """-o '"sftp.args=-o A=1,B=2"'""" in backup
    # The backend's own keys win there, options merge key by key.
    assert "-o s3.connections=8" in copy and "--compression off" in copy
    assert "sftp.args" in copy and "--no-cache" in copy
    assert "--no-cache" not in backup


@requires_restic
def test_the_flags_of_the_restic_present_are_read_from_its_help() -> None:
    assert RESTIC is not None
    flags = restic_flags("backup", binary=RESTIC)
    assert flags.version == version_text()
    assert flags.long["exclude-larger-than"] is True  # takes a value
    assert flags.long["one-file-system"] is False
    assert flags.short["x"] == "one-file-system"
    assert "compression" in flags.long  # a global flag
    # Read once per binary and version: the second call costs no process.
    assert restic_flags("backup", binary=RESTIC) == flags


# -- without restic -------------------------------------------------------------------------------

HELP = """\
Flags:
  -e, --exclude pattern                        exclude a pattern
      --exclude-caches                         excludes cache directories
  -x, --one-file-system                        exclude other file systems

Global Flags:
  -o, --option key=value           set extended option
"""


def test_extra_args_values_are_skipped_and_strays_named() -> None:
    long, short = parse_help(HELP)
    assert long == {"exclude": True, "exclude-caches": False, "one-file-system": False,
                    "option": True}
    flags = CommandFlags("backup", "0.99.0", "/bin/restic", long=long, short=short)
    assert check_extra_args("backup", ["-e", "*.iso", "-x", "--exclude=a,b"], flags) == []
    assert check_extra_args("backup", ["--exclude-caches", "yes", "--exclude-cache"], flags) == [
        "[1]: 'yes' is not a flag; extra_args holds restic flags and their values",
        "[2]: --exclude-cache is not a flag of restic backup 0.99.0 (/bin/restic);"
        " did you mean --exclude-caches?",
    ]
    assert check_extra_args("backup", ["-q"], flags) == [
        "[0]: -q is not a flag of restic backup 0.99.0 (/bin/restic)"
    ]


def test_command_args_go_after_the_command_and_dumps_get_no_backup_extra_args() -> None:
    config = config_from_dict(
        {
            "repository": "/r",
            "password": PASSWORD,
            "options": {"s3.region": "eu-west-1"},
            "extra_args": {"backup": ["--exclude-caches"]},
        },
        environ={},
    )
    repo = config.primary_repository()
    assert command_args(["--no-lock", "cat", "config"], repo) == [
        "--no-lock", "cat", "-o", "s3.region=eu-west-1", "config"
    ]
    assert command_args(["backup", "--json", "--", "/srv"], repo) == [
        "backup", "-o", "s3.region=eu-west-1", "--exclude-caches", "--json", "--", "/srv"
    ]
    assert command_args(["backup", "--stdin", "--stdin-filename", "db.sql"], repo) == [
        "backup", "-o", "s3.region=eu-west-1", "--stdin", "--stdin-filename", "db.sql"
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"compression": "fast"}, "compression: expected one of auto, off, max, got 'fast'"),
        ({"limit_upload": 0}, "limit_upload: must be greater than 0, got 0"),
        ({"pack_size": "16M"}, "pack_size: expected a whole number"),
        ({"extra_args": {"bakup": ["-x"]}}, "extra_args.bakup"),
        (
            {"extra_args": {"backup": ["--password", PASSWORD]}},
            "extra_args.backup[1]: holds a secret",
        ),
        ({"backends": {"m": {"repository": "/m", "compression": "best"}}},
         "backends.m.compression: expected one of auto, off, max"),
    ],
)
def test_bad_settings_are_located_config_errors(extra: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"repository": "/r", "password": PASSWORD, **extra}, environ={})
    assert any(expected in m for m in raised.value.messages), raised.value.messages


@requires_restic
@pytest.mark.restic
def test_extra_args_reach_restic_restore(
    tmp_path: Path, source: Path, environ: dict[str, str], repo: Path
) -> None:
    cfg = write_config(tmp_path, source, extra_args={"restore": ["--exclude", "b.txt"]})
    done = resticm(cfg, "backup", env=environ)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "restored"
    restored = resticm(cfg, "-v", "restore", "--target", str(target), env=environ)
    assert restored.returncode == 0, restored.stderr
    (line,) = command_lines(restored.stderr, "restore")
    assert "restore --exclude b.txt" in line
    assert (target / str(source).lstrip("/") / "a.txt").read_text() == "alpha\n"
    assert not (target / str(source).lstrip("/") / "sub" / "b.txt").exists()
