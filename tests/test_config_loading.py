"""Loading real config files: located messages, YAML errors, permissions, search order.

Every test writes its files in its own tmp_path (mode 600 unless permissions are
what is tested) and passes an explicit environment, so nothing depends on the
machine's /etc, $HOME or RESTIC_* variables.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resticm_core.builtins.directory import DirectoryHook
from resticm_core.builtins.python_callable import PythonHook
from resticm_core.builtins.script import ScriptHook
from resticm_core.config import Config
from resticm_core.config_file import (
    NOT_FOUND_MESSAGE,
    check_config_permissions,
    config_warnings,
    find_config_path,
    inline_secrets,
    load_config,
)
from resticm_core.converter import make_converter
from resticm_core.errors import ConfigError
from resticm_core.plugin_manager import PluginRegistry

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def registry() -> PluginRegistry:
    return PluginRegistry.default()


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    path.chmod(mode)
    return path


def load(path: Path, registry: PluginRegistry, **kwargs: Any) -> Config:
    kwargs.setdefault("environ", {})
    return load_config(path, registry=registry, **kwargs)


def problems(path: Path, registry: PluginRegistry, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, registry, **kwargs)
    return info.value.messages


def test_a_valid_file_loads(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(
        tmp_path / "config.yaml",
        """
        # comments are fine
        repository: /srv/restic
        password: hunter22
        directories:
          - /etc
        retention:
          keep_daily: 14
        hooks:
          pre_backup: /etc/resticm/hooks/pre-backup.sh
          finally: "python:mycompany.hooks:cleanup"
    """,
    )
    config = load(path, registry)
    assert config.repository == "/srv/restic"
    assert config.directories == ("/etc",)
    assert config.retention.keep_daily == 14
    assert config.retention.keep_weekly == 4  # Go defaults, key by key
    assert config.hooks.pre_backup == (ScriptHook(path="/etc/resticm/hooks/pre-backup.sh"),)
    assert config.hooks.finally_ == (PythonHook(callable="mycompany.hooks:cleanup"),)
    assert config.source_path == Path(os.path.realpath(path))


def test_source_path_is_the_real_path(tmp_path: Path, registry: PluginRegistry) -> None:
    real = write(tmp_path / "real" / "config.yaml", "repository: /r\npassword: p\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    assert load(link, registry).source_path == Path(os.path.realpath(real))


# -- located schema errors --------------------------------------------------------


def test_every_error_located_and_reported_together(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    path = write(
        tmp_path / "config.yaml",
        """
        repository: /srv/restic
        password: pw
        verify_no_locks: no
        copy_concurrency: true
        directories:
          - /etc
        hooks:
          post_bakup: /x
          pre_backup:
            - /usr/local/bin/dump
            - {kind: script, path: x.sh, timeout: soon}
          finally:
            - kind: docker-pause
        backends:
          offsite:
            password: x
    """,
    )
    assert problems(path, registry) == [
        f"{path}:3: verify_no_locks: expected true or false, got 'no'",
        f"{path}:4: copy_concurrency: expected a whole number, got true",
        f"{path}:8: hooks.post_bakup: unknown key (did you mean 'post_backup'?)",
        f"{path}:11: hooks.pre_backup[1].timeout: expected a number of seconds "
        "(or like '10m'), got 'soon'",
        f"{path}:13: hooks.finally[0].kind: unknown hook kind 'docker-pause' "
        "(installed: directory, docker-start, docker-stop, python, script, verify-files)",
        f"{path}:15: backends.offsite.repository: required key missing",
    ]


def test_missing_repository_points_at_the_top(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", "password: pw\ndirectories: [/etc]\n")
    assert problems(path, registry) == [f"{path}:1: repository: required key missing"]


def test_relative_path_is_shown_as_given(
    tmp_path: Path, registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "config.yaml", "repository: /r\npassword: p\ndry_run: true\n")
    monkeypatch.chdir(tmp_path)
    assert problems(Path("config.yaml"), registry) == ["config.yaml:3: dry_run: unknown key"]


def test_semantic_errors_are_located(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(
        tmp_path / "config.yaml",
        """
        repository: /r
        password: p
        backends:
          a: {repository: /a}
          b: {repository: /b}
        copy_to_backends:
          - a
          - offsite
        logging:
          level: loud
    """,
    )
    assert problems(path, registry) == [
        f"{path}:8: copy_to_backends[1]: unknown backend 'offsite' (defined: a, b)",
        f"{path}:10: logging.level: expected one of debug, info, warn, warning, error, got 'loud'",
    ]


def test_password_missing_and_from_environment(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", "# primary only\nrepository: /r\n")
    assert problems(path, registry) == [
        f"{path}:2: password: required: set password, password_file or password_command "
        "(or RESTIC_PASSWORD)"
    ]
    assert load(path, registry, environ={"RESTIC_PASSWORD": "x"}).password is None


def test_finally_path_in_messages(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(
        tmp_path / "config.yaml",
        """
        repository: /r
        password: p
        hooks:
          finally:
            - path: /bin/true
              args: --flag
    """,
    )
    assert problems(path, registry) == [
        f"{path}:6: hooks.finally[0].args: expected a list, got '--flag'"
    ]


def test_hook_short_forms_resolve_against_the_config_directory(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    (tmp_path / "conf" / "pre-backup.d").mkdir(parents=True)
    path = write(
        tmp_path / "conf" / "config.yaml",
        """
        repository: /r
        password: p
        hooks:
          pre_backup:
            - pre-backup.d
            - missing.sh
            - {path: pre-backup.d, continue_on_error: true}
            - {kind: python, callable: "hooks:dump"}
    """,
    )
    assert load(path, registry).hooks.pre_backup == (
        DirectoryHook(path="pre-backup.d"),
        ScriptHook(path="missing.sh"),
        DirectoryHook(path="pre-backup.d", continue_on_error=True),
        PythonHook(callable="hooks:dump"),
    )


def test_round_trip_of_a_loaded_file(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(
        tmp_path / "config.yaml",
        """
        repository: /r
        password: p
        hooks:
          pre_backup: [a.sh, {kind: directory, path: d/}]
          finally: python:m:f
          timeout: 10m
    """,
    )
    config = load(path, registry)
    conv = make_converter(registry, base_dir=tmp_path)
    # source_path is not a config key, so it does not survive the trip.
    assert conv.structure(conv.unstructure(config), Config) == attrs.evolve(
        config, source_path=None
    )


# -- YAML-level errors ------------------------------------------------------------


def test_duplicate_key_is_reported_alone(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", "repository: /a\nbogus: 1\nrepository: /b\n")
    assert problems(path, registry) == [
        f'{path}:3:1: found duplicate key "repository" with value "/b" '
        '(original value: "/a") (while constructing a mapping)'
    ]


def test_syntax_error(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\ndirectories: [/etc\n")
    assert problems(path, registry) == [
        f"{path}:3:1: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)"
    ]


TOO_DEEP = "nested more than 100 levels deep (a configuration needs about six)"


def test_absurd_nesting_is_a_located_error(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", "repository: " + "[" * 5000 + "]" * 5000 + "\n")
    # The root mapping is level 1: the 100th "[" is level 101, at column 12 + 100.
    assert problems(path, registry) == [f"{path}:1:112: {TOO_DEEP}"]


def test_absurd_nesting_through_the_cli_is_exit_2_without_ruamel_internals(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    nested = "[" * 10000 + "]" * 10000
    path = write(tmp_path / "config.yaml", f"repository: /r\npassword: pw\ndirectories: {nested}\n")
    result = subprocess.run(
        [sys.executable, "-m", "resticm_core", "-c", str(path), "config", "validate"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr == f"resticm: configuration error:\n  {path}:3:113: {TOO_DEEP}\n"


def test_absurd_block_nesting_names_its_line(tmp_path: Path, registry: PluginRegistry) -> None:
    nested = "".join(" " * i + "-\n" for i in range(300))
    path = write(tmp_path / "config.yaml", f"repository: /r\ndirectories:\n{nested}")
    assert problems(path, registry) == [f"{path}:102:100: {TOO_DEEP}"]


def test_absurd_nesting_without_ruamels_depth_limit_is_the_same_error(
    tmp_path: Path, registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ruamel.yaml < 0.19 has no max_depth: composing recurses until RecursionError."""
    from resticm_core import config_file

    unlimited = config_file._yaml

    def without_limit() -> Any:
        yaml = unlimited()
        yaml.max_depth = 0  # 0 switches the check off
        return yaml

    monkeypatch.setattr(config_file, "_yaml", without_limit)
    path = write(tmp_path / "config.yaml", "repository: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problems(path, registry) == [f"{path}:1:112: {TOO_DEEP}"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the configuration is empty; it needs at least 'repository' and a password"),
        (
            "# nothing yet\n",
            "the configuration is empty; it needs at least 'repository' and a password",
        ),
    ],
)
def test_empty_file(tmp_path: Path, registry: PluginRegistry, text: str, message: str) -> None:
    path = write(tmp_path / "config.yaml", text)
    assert problems(path, registry) == [f"{path}: {message}"]


def test_top_level_not_a_mapping(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", "- repository: /r\n")
    assert problems(path, registry) == [
        f"{path}:1: expected a mapping of keys (repository: ...), got a list"
    ]


def test_not_utf8(tmp_path: Path, registry: PluginRegistry) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"repository: /r\npassword: \xff\n")
    path.chmod(0o600)
    assert problems(path, registry) == [
        f"cannot read config {path}: not UTF-8 text (invalid start byte at byte 25)"
    ]


def test_a_directory_cannot_be_read(tmp_path: Path, registry: PluginRegistry) -> None:
    assert problems(tmp_path, registry) == [f"cannot read config {tmp_path}: Is a directory"]


@pytest.mark.skipif(IS_ROOT, reason="root reads a mode-000 file")
def test_unreadable_file(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\n", mode=0o000)
    assert problems(path, registry) == [f"cannot read config {path}: Permission denied"]


def test_explicit_path_must_exist(tmp_path: Path, registry: PluginRegistry) -> None:
    missing = tmp_path / "nope.yaml"
    assert problems(missing, registry) == [f"config file not found: {missing}"]


# -- permissions ------------------------------------------------------------------


def test_world_readable_without_secrets_is_accepted(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\npassword_file: /etc/pw\n", mode=0o644)
    assert load(path, registry).password_file == "/etc/pw"


def test_world_readable_with_inline_password_is_refused(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\npassword: hunter22\n", mode=0o644)
    messages = problems(path, registry)
    real = os.path.realpath(path)
    assert messages == [
        f"{real} is readable by group or others (mode 0644) and holds secrets inline: "
        f"password (line 2) (fix: chmod 600 {real}, or move them to password_file / "
        "password_command)"
    ]
    assert "hunter22" not in messages[0]


def test_group_writable_is_refused_even_without_secrets(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\npassword_file: /pw\n", mode=0o660)
    real = os.path.realpath(path)
    assert problems(path, registry) == [
        f"{real} is writable by group or others (mode 0660), and it names programs resticm "
        f"runs (fix: chmod 600 {real})"
    ]


def test_permission_check_can_be_skipped(tmp_path: Path, registry: PluginRegistry) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\npassword: p\n", mode=0o666)
    assert load(path, registry, check_permissions=False).password == "p"


def test_permissions_of_the_symlink_target_count(tmp_path: Path, registry: PluginRegistry) -> None:
    real = write(tmp_path / "real.yaml", "repository: /r\npassword: p\n", mode=0o646)
    link = tmp_path / "config.yaml"
    link.symlink_to(real)
    (message,) = problems(link, registry)
    assert message.startswith(f"{os.path.realpath(real)} is writable by group or others")


@pytest.mark.skipif(not IS_ROOT, reason="only root can give a file to another user")
def test_foreign_owner_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\n")
    os.chown(path, 4242, 4242)
    assert check_config_permissions(path, {}, environ={}, euid=0) == [
        f"{path} is owned by uid 4242, neither root nor the current user (fix: chown root {path})"
    ]
    # The same file is fine for the user who owns it.
    assert check_config_permissions(path, {}, environ={}, euid=4242) == []


def test_root_owned_file_is_fine_for_anyone(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "repository: /r\n")
    owner = path.stat().st_uid
    assert check_config_permissions(path, {}, environ={}, euid=owner) == []
    if owner == 0:
        assert check_config_permissions(path, {}, environ={}, euid=12345) == []


def test_inline_secrets_are_named_never_shown() -> None:
    data = {
        "password": "a",
        "aws_secret_access_key": "",
        "env": {"B2_ACCOUNT_KEY": "k", "B2_ACCOUNT_ID": "id"},
        "backends": {"off": {"password": "b", "aws_secret_access_key": "c"}, "bad": "x"},
        "notifications": {"providers": [{"type": "x", "token": "t", "options": {"api_key": "z"}}]},
        "hooks": {
            "environment": {"DB_PASSWORD": "p"},
            "pre_backup": [{"path": "x", "env": {"TOKEN": "y"}}, "plain"],
        },
    }
    assert inline_secrets(data) == [
        "password",
        "env.B2_ACCOUNT_KEY",
        "backends.off.password",
        "backends.off.aws_secret_access_key",
        "notifications.providers[0].token",
        "notifications.providers[0].options.api_key",
        "hooks.environment.DB_PASSWORD",
        "hooks.pre_backup[0].env.TOKEN",
    ]
    assert inline_secrets(["not", "a", "mapping"]) == []


# -- search order -----------------------------------------------------------------


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """A fake /etc/resticm and a fake home directory."""
    etc, home = tmp_path / "etc" / "resticm", tmp_path / "home" / "alice"
    etc.mkdir(parents=True)
    home.mkdir(parents=True)
    return etc, home


def user_config(home: Path) -> Path:
    return write(home / ".config" / "resticm" / "config.yaml", "repository: /r\n")


def test_search_non_root_prefers_home(roots: tuple[Path, Path]) -> None:
    etc, home = roots
    mine, system = user_config(home), write(etc / "config.yaml", "repository: /r\n")
    found = find_config_path(None, environ={"HOME": str(home)}, euid=1000, etc_dir=etc)
    assert found == (mine, [system])


def test_search_non_root_falls_back_to_etc(roots: tuple[Path, Path]) -> None:
    etc, home = roots
    system = write(etc / "config.yaml", "repository: /r\n")
    found = find_config_path(None, environ={"HOME": str(home)}, euid=1000, etc_dir=etc)
    assert found == (system, [])


def test_search_root_prefers_etc_then_sudo_user(roots: tuple[Path, Path]) -> None:
    etc, home = roots
    mine = user_config(home)
    homes = {"alice": home}
    env = {"HOME": "/nonexistent-root-home", "SUDO_USER": "alice"}
    assert find_config_path(None, environ=env, euid=0, etc_dir=etc, user_home=homes.get) == (
        mine,
        [],
    )
    system = write(etc / "config.yaml", "repository: /r\n")
    assert find_config_path(None, environ=env, euid=0, etc_dir=etc, user_home=homes.get) == (
        system,
        [mine],
    )


def test_search_root_ignores_its_own_home(roots: tuple[Path, Path]) -> None:
    etc, home = roots
    user_config(home)
    with pytest.raises(ConfigError) as info:
        find_config_path(None, environ={"HOME": str(home)}, euid=0, etc_dir=etc)
    assert info.value.messages == [NOT_FOUND_MESSAGE]


def test_search_context_file_wins(roots: tuple[Path, Path], tmp_path: Path) -> None:
    etc, home = roots
    user_config(home)
    chosen = write(tmp_path / "elsewhere.yaml", "repository: /r\n")
    write(
        home / ".config" / "resticm" / "context.yaml",
        f"config_file: {chosen}\nactive_backend: ''\n",
    )
    assert find_config_path(None, environ={"HOME": str(home)}, euid=1000, etc_dir=etc) == (
        chosen,
        [],
    )


@pytest.mark.parametrize(
    "context",
    [
        "config_file: /nonexistent/config.yaml\n",
        "config_file: [unclosed\n",
        "- a list\n",
        "config_file: 7\n",
        "",
    ],
)
def test_search_ignores_a_useless_context(roots: tuple[Path, Path], context: str) -> None:
    etc, home = roots
    mine = user_config(home)
    write(home / ".config" / "resticm" / "context.yaml", context)
    assert find_config_path(None, environ={"HOME": str(home)}, euid=1000, etc_dir=etc) == (
        mine,
        [],
    )


def test_search_explicit_path(roots: tuple[Path, Path], tmp_path: Path) -> None:
    etc, home = roots
    user_config(home)
    explicit = write(tmp_path / "x.yaml", "repository: /r\n")
    assert find_config_path(explicit, environ={"HOME": str(home)}, etc_dir=etc) == (explicit, [])
    with pytest.raises(ConfigError) as info:
        find_config_path(tmp_path / "missing.yaml", environ={}, etc_dir=etc)
    assert info.value.messages == [f"config file not found: {tmp_path / 'missing.yaml'}"]
    with pytest.raises(ConfigError):
        find_config_path("", environ={}, etc_dir=etc)


def test_search_finds_nothing(roots: tuple[Path, Path]) -> None:
    etc, home = roots
    with pytest.raises(ConfigError) as info:
        find_config_path(None, environ={"HOME": str(home)}, euid=1000, etc_dir=etc)
    assert info.value.messages == [
        "no configuration file found. Create one at ~/.config/resticm/config.yaml or "
        "/etc/resticm/config.yaml, or pass --config"
    ]


# -- warnings ---------------------------------------------------------------------


def test_config_warnings_name_the_hook(tmp_path: Path, registry: PluginRegistry) -> None:
    good = write(tmp_path / "good.sh", "#!/bin/sh\n", mode=0o700)
    write(tmp_path / "lazy.sh", "#!/bin/sh\n", mode=0o600)
    path = write(
        tmp_path / "config.yaml",
        f"""
        repository: /r
        password: p
        hooks:
          pre_backup: [{good}, missing.sh]
          finally: lazy.sh
    """,
    )
    warnings = config_warnings(load(path, registry))
    assert len(warnings) == 2
    assert warnings[0].startswith("hooks.pre_backup[1]: ")
    assert "missing.sh does not exist" in warnings[0]
    assert warnings[1].startswith("hooks.finally[0]: ")
    assert "not executable" in warnings[1]


def test_no_warnings_for_good_hooks(tmp_path: Path, registry: PluginRegistry) -> None:
    write(tmp_path / "hooks" / "10-dump", "#!/bin/sh\n", mode=0o700)
    write(tmp_path / "post.sh", "#!/bin/sh\n", mode=0o700)
    path = write(
        tmp_path / "config.yaml",
        """
        repository: /r
        password: p
        hooks:
          pre_backup: hooks/
          post_backup: post.sh
    """,
    )
    (tmp_path / "hooks").chmod(0o700)
    assert config_warnings(load(path, registry)) == []


# -- never a traceback ------------------------------------------------------------

_YAML_TOKENS = [
    "\n",
    "  ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "&x ",
    "*x",
    "<<: ",
    "!!int ",
    "!!bool ",
    "!!str ",
    "!!binary ",
    "? ",
    "#c",
    '"',
    "'",
    "2024-13-45",
    "1e9999",
    "no",
    "true",
    "7",
    "repository",
    "password",
    "hooks",
    "pre_backup",
    "finally",
    "timeout",
    "10m",
    "kind",
    "script",
    "path",
    "backends",
    "env",
    "retention",
    "keep_daily",
    "x",
]


# Random tokens often redefine the anchor ``&x``; ruamel warns (legal YAML, not our concern).
@pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")
def test_random_yaml_text_only_raises_config_error(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    path = tmp_path / "config.yaml"

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(text=st.lists(st.sampled_from(_YAML_TOKENS), max_size=40).map("".join))
    def check(text: str) -> None:
        path.write_text(text)
        path.chmod(0o600)
        try:
            load(path, registry)
        except ConfigError as exc:
            assert exc.messages

    check()


# -- the documentation's examples load --------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def _yaml_blocks() -> list[str]:
    text = DOCS.read_text()
    return [part.split("```", 1)[0] for part in text.split("```yaml\n")[1:]]


def test_documented_examples_load(tmp_path: Path, registry: PluginRegistry) -> None:
    blocks = _yaml_blocks()
    assert len(blocks) >= 2  # the later ones: tests/test_config_tools.py (issue 18)
    full = load(write(tmp_path / "full.yaml", blocks[0]), registry)
    assert full.copy_to_backends == ("offsite",)
    assert full.hooks.finally_[0].timeout == 600.0
    # The hook example is a ``hooks:`` section: give it a repository and a password.
    hooks = load(
        write(tmp_path / "hooks.yaml", "repository: /r\npassword_file: /pw\n" + blocks[1]),
        registry,
    )
    assert [type(h).__name__ for h in hooks.hooks.on_success] == [
        "ScriptHook",
        "DirectoryHook",
        "PythonHook",
        "ScriptHook",
        "PythonHook",
    ]


def test_password_file_and_exclude_file_are_relative_to_the_config(tmp_path: Path) -> None:
    """They sit next to the config; resticm may be started from anywhere (cron: /)."""
    from resticm_core import load_config

    path = tmp_path / "etc" / "config.yaml"
    path.parent.mkdir()
    path.write_text(
        "repository: /srv/repo\npassword_file: secret/password\nexclude_file: excludes.txt\n"
        "backends:\n  offsite:\n    repository: /srv/offsite\n    password_file: ~/offsite.pw\n"
    )
    path.chmod(0o600)
    config = load_config(path, environ={})
    assert config.password_file == str(tmp_path / "etc" / "secret" / "password")
    assert config.exclude_file == str(tmp_path / "etc" / "excludes.txt")
    assert config.backends["offsite"].password_file == str(Path.home() / "offsite.pw")


def test_a_crashing_plugin_check_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    import attrs

    from resticm_core import Hook, config_from_dict, hookimpl
    from resticm_core.config_file import config_warnings
    from resticm_core.plugin_manager import PluginRegistry

    @attrs.frozen(kw_only=True)
    class Flaky(Hook):
        kind = "flaky"  # a class variable: no annotation, so not an attrs field

        def check(self, ctx: object) -> list[str]:
            raise RuntimeError("bug in plugin")

    class Plugin:
        @hookimpl
        def resticm_hook_types(self) -> list[type[Hook]]:
            return [Flaky]

    registry = PluginRegistry.default(plugins=[Plugin()])
    config = config_from_dict({"repository": "/r", "password": "pw", "hooks": {
        "pre_backup": [{"kind": "flaky"}]}}, registry=registry)
    assert config_warnings(config) == [
        "hooks.pre_backup[0]: check() of hook kind 'flaky' crashed: RuntimeError: bug in plugin"
    ]


def test_documented_jobs_variables_and_references_load(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    """configuration.md's "Several jobs, includes and variables" examples, as written."""
    from resticm_core.config_file import load_job_set

    blocks = _yaml_blocks()
    (jobs_block,) = [b for b in blocks if "\njobs:\n  web:" in b]
    (variables_block,) = [b for b in blocks if "keep_daily: ${DAYS}" in b]
    (references_block,) = [b for b in blocks if "password: ${credential:restic}" in b]
    write(tmp_path / "common.yaml", "host: web1\n")
    jobs = load_job_set(write(tmp_path / "config.yaml", jobs_block), registry=registry, environ={})
    web, db = jobs.jobs["web"], jobs.jobs["db"]
    assert (web.host, web.schedule, db.schedule) == ("web1", "*-*-* 02:30", "hourly")
    assert (db.retention.keep_daily, db.retention.keep_weekly) == (30, 4)
    assert (web.default_tags, db.default_tags, db.exclude_patterns) == (("nightly",), ("db",), ())
    assert jobs.run_jobs == ("web", "db")
    text = "password: pw-123456\n" + variables_block
    variables = load(write(tmp_path / "vars.yaml", text), registry, environ={"DAYS": "7"})
    assert variables.retention.keep_daily == 7 and variables.repository.endswith("/web1")
    secret = write(tmp_path / "s3.secret", "the-s3-secret\n")
    write(tmp_path / "creds" / "restic", "pw-from-systemd")
    write(tmp_path / "creds" / "slack-url", "https://hooks.slack.com/services/T0/B0/XYZ")
    text = "repository: /r\n" + references_block.replace("/etc/resticm/s3.secret", str(secret))
    config = load(
        write(tmp_path / "refs.yaml", text, mode=0o644),
        registry,
        environ={"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")},
    )
    assert (config.password, config.aws_secret_access_key) == ("pw-from-systemd", "the-s3-secret")
    assert "https://hooks.slack.com/services/T0/B0/XYZ" in config.secrets()
