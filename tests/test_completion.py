"""``resticm help`` and ``resticm completion``: generated from the real parser (issue 16)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resticm_core.cli import build_parser
from resticm_core.completion import describe_parser


def resticm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("topic", [["backup"], ["config", "validate"], ["schedule", "install"]])
def test_help_command_prints_the_commands_own_help(topic: list[str]) -> None:
    via_help = resticm("help", *topic)
    via_flag = resticm(*topic, "--help")
    assert via_help.returncode == 0, via_help.stderr
    assert via_help.stdout == via_flag.stdout
    assert f"usage: resticm {' '.join(topic)}" in via_help.stdout


def test_help_without_topic_and_unknown_topic() -> None:
    assert resticm("help").stdout == resticm("--help").stdout
    unknown = resticm("help", "bakup")
    assert unknown.returncode == 2
    assert "unknown command 'bakup'" in unknown.stderr and "backup" in unknown.stderr


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = resticm("completion", "bash")
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("completion") / "resticm.bash"
    path.write_text(result.stdout)
    return path


def complete(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    """What bash offers after *words* (the last one is the word being completed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in ("resticm", *words))
    program = (
        f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); "
        'COMPREPLY=(); _resticm; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True, text=True, timeout=30, cwd=cwd, check=True,
    )
    return [line for line in result.stdout.splitlines() if line]


def test_bash_completes_commands_actions_flags_and_choices(
    bash_script: Path, tmp_path: Path
) -> None:
    assert complete(bash_script, "ba") == ["backup", "backend"]
    assert complete(bash_script, "config", "") == ["validate", "schema", "show", "init"]
    assert complete(bash_script, "hooks", "run", "") == [
        "pre_backup", "post_backup", "on_success", "on_error", "finally",
    ]
    assert complete(bash_script, "-c", "cfg.yaml", "backup", "--dry") == ["--dry-run"]
    assert complete(bash_script, "check", "--sub") == ["--subset"]
    assert complete(bash_script, "completion", "") == ["bash", "zsh", "fish"]
    assert "install" in complete(bash_script, "schedule", "")
    (tmp_path / "prod.yaml").write_text("")
    assert complete(bash_script, "-c", "pro", cwd=tmp_path) == ["prod.yaml"]
    # restic's own arguments after `run` are not resticm's to complete
    assert complete(bash_script, "run", "snapshots", "") == []


def test_every_command_of_the_parser_is_completed(bash_script: Path) -> None:
    # Generated, so it cannot drift: each subcommand of each command path is offered.
    for info in describe_parser(build_parser(None)):
        if info.path[:1] == ("run",) or not info.subcommands:
            continue
        offered = complete(bash_script, *info.path, "")
        assert {name for name, _ in info.subcommands} <= set(offered), info.path


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_through_bashcompinit(tmp_path: Path) -> None:
    script = tmp_path / "_resticm"
    script.write_text(resticm("completion", "zsh").stdout)
    # zsh's completion system filters by the typed prefix itself: ask with an empty word.
    program = (
        f"autoload -U compinit && compinit -u -D; source '{script}'; "
        't() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _resticm; '
        'print -r -- "${COMPREPLY[*]}"; }; t resticm hooks run ""; t resticm config ""'
    )
    result = subprocess.run(
        ["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=30, check=True,
        cwd=tmp_path,
    )
    assert result.stdout.splitlines() == [
        "pre_backup post_backup on_success on_error finally", "validate schema show init",
    ]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes(tmp_path: Path) -> None:
    script = tmp_path / "resticm.fish"
    script.write_text(resticm("completion", "fish").stdout)
    program = (
        f"source '{script}'; complete -C 'resticm config '; complete -C 'resticm backup --dr'"
    )
    result = subprocess.run(
        ["fish", "--no-config", "-c", program], capture_output=True, text=True, timeout=30,
        check=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        "init", "schema", "show", "validate", "--dry-run",
    ]


def test_fish_script_names_every_top_level_command() -> None:
    text = resticm("completion", "fish").stdout
    for name in ("backup", "full", "snapshots", "completion", "help", "schedule"):
        assert f"-n '__fish_use_subcommand' -a '{name}'" in text
