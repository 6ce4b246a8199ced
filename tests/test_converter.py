"""The converter and ``config_from_dict``: strict types, hook entries, messages, round trip.

Every test builds its own registry and converter (no shared state); documents
are literal dicts, so messages read ``<config>: key.path: message``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from resticm_core.builtins.directory import DirectoryHook
from resticm_core.builtins.notify_ntfy import NtfyNotifier
from resticm_core.builtins.python_callable import PythonHook
from resticm_core.builtins.script import ScriptHook
from resticm_core.config import (
    Backend,
    Config,
    Logging,
    Notifications,
    PhaseHooks,
    Retention,
)
from resticm_core.config_file import config_from_dict
from resticm_core.converter import flatten_errors, make_converter, parse_duration, yaml_keys
from resticm_core.errors import ConfigError
from resticm_core.plugin_manager import PluginRegistry

MINIMAL = {"repository": "/srv/restic", "password": "pw"}


@pytest.fixture
def registry() -> PluginRegistry:
    return PluginRegistry.default()


@pytest.fixture
def conv(registry: PluginRegistry, tmp_path: Path) -> cattrs.Converter:
    return make_converter(registry, base_dir=tmp_path)


def load(data: Mapping[str, Any], registry: PluginRegistry, **kwargs: Any) -> Config:
    kwargs.setdefault("environ", {})
    return config_from_dict(data, registry=registry, **kwargs)


def problems(data: object, registry: PluginRegistry, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(data, registry, **kwargs)  # type: ignore[arg-type]
    return info.value.messages


# -- strict primitives ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("verify_no_locks", "no", "expected true or false, got 'no'"),
        ("verify_no_locks", "yes", "expected true or false, got 'yes'"),
        ("verify_no_locks", 1, "expected true or false, got 1"),
        ("copy_concurrency", True, "expected a whole number, got true"),
        ("copy_concurrency", 2.5, "expected a whole number, got 2.5"),
        ("copy_concurrency", "2", "expected a whole number, got '2'"),
        ("exclude_file", 7, 'expected a string, got 7 (quote it: "7")'),
        ("exclude_file", None, "expected a string, got null"),
        ("exclude_file", ["a"], "expected a string, got a list"),
        ("host", 3.5, 'expected a string, got 3.5 (quote it: "3.5")'),
        ("directories", "/etc", "expected a list, got '/etc'"),
        ("directories", {"a": 1}, "expected a list, got a mapping"),
        ("backends", ["a"], "expected a mapping, got a list"),
        ("retention", "daily", "expected a mapping, got 'daily'"),
    ],
)
def test_strict_types(registry: PluginRegistry, key: str, value: object, message: str) -> None:
    assert problems({**MINIMAL, key: value}, registry) == [f"<config>: {key}: {message}"]


def test_optional_string_accepts_null(registry: PluginRegistry) -> None:
    config = load({**MINIMAL, "host": None, "password_file": None}, registry)
    assert config.host is None
    assert config.password_file is None


def test_null_list_map_and_section_mean_empty_or_defaults(registry: PluginRegistry) -> None:
    # The Go tool (yaml.v3) read a key with nothing below it this way; configs
    # with every list entry commented out must keep loading.
    config = load(
        {**MINIMAL, "exclude_patterns": None, "backends": None, "retention": None}, registry
    )
    assert config.exclude_patterns == ()
    assert config.backends == {}
    assert config.retention == Retention()


def test_list_element_types_are_checked(registry: PluginRegistry) -> None:
    assert problems({**MINIMAL, "directories": ["/etc", 5]}, registry) == [
        '<config>: directories[1]: expected a string, got 5 (quote it: "5")'
    ]


def test_env_values_must_be_strings_and_secrets_are_not_echoed(registry: PluginRegistry) -> None:
    data = {
        **MINIMAL,
        "env": {"B2_ACCOUNT_KEY": 123456789, 7: "x"},
        "hooks": {"environment": {"LEVEL": 3}},
    }
    messages = problems(data, registry)
    assert messages == [
        "<config>: env.B2_ACCOUNT_KEY: expected a string, got a number (quote it)",
        '<config>: env.7: invalid key: expected a string, got 7 (quote it: "7")',
        '<config>: hooks.environment.LEVEL: expected a string, got 3 (quote it: "3")',
    ]
    assert "123456789" not in "\n".join(messages)


def test_a_numeric_password_is_not_echoed(registry: PluginRegistry) -> None:
    messages = problems({"repository": "/r", "password": 31415926}, registry)
    assert messages == ["<config>: password: expected a string, got a number (quote it)"]


# -- unknown keys -----------------------------------------------------------------


def test_unknown_key_with_hint(registry: PluginRegistry) -> None:
    assert problems({**MINIMAL, "hooks": {"post_bakup": "/x"}}, registry) == [
        "<config>: hooks.post_bakup: unknown key (did you mean 'post_backup'?)"
    ]


def test_unknown_key_without_close_match(registry: PluginRegistry) -> None:
    assert problems({**MINIMAL, "zzz": 1}, registry) == ["<config>: zzz: unknown key"]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({**MINIMAL, "source_path": "/x"}, "source_path"),
        (
            {**MINIMAL, "hooks": {"on_error": [{"callable": "m:f", "function": "m:g"}]}},
            "hooks.on_error[0].function",
        ),
    ],
)
def test_code_only_fields_are_not_config_keys(
    registry: PluginRegistry, data: dict[str, Any], path: str
) -> None:
    assert problems(data, registry) == [f"<config>: {path}: unknown key"]


def test_yaml_keys_use_yaml_names() -> None:
    assert "finally" in yaml_keys(PhaseHooks)
    assert "finally_" not in yaml_keys(PhaseHooks)
    assert "source_path" not in yaml_keys(Config)
    assert "kind" in yaml_keys(ScriptHook)


# -- hooks.finally ----------------------------------------------------------------


def test_finally_is_written_without_underscore(registry: PluginRegistry, tmp_path: Path) -> None:
    config = load({**MINIMAL, "hooks": {"finally": "/bin/true"}}, registry, base_dir=tmp_path)
    assert config.hooks.finally_ == (ScriptHook(path="/bin/true"),)


def test_finally_in_error_paths(registry: PluginRegistry) -> None:
    data = {**MINIMAL, "hooks": {"finally": [{"path": "/x", "timeout": "soon"}]}}
    assert problems(data, registry) == [
        "<config>: hooks.finally[0].timeout: expected a number of seconds (or like '10m'), "
        "got 'soon'"
    ]


def test_finally_underscore_spelling_is_unknown(registry: PluginRegistry) -> None:
    assert problems({**MINIMAL, "hooks": {"finally_": "/x"}}, registry) == [
        "<config>: hooks.finally_: unknown key (did you mean 'finally'?)"
    ]


# -- hook entries -----------------------------------------------------------------


def test_short_forms_are_inferred(registry: PluginRegistry, tmp_path: Path) -> None:
    (tmp_path / "pre.d").mkdir()
    data = {
        **MINIMAL,
        "hooks": {
            "pre_backup": [
                "/etc/resticm/hooks/missing.sh",  # a missing file is a script
                "/etc/resticm/hooks/post-backup.d/",  # trailing slash: a directory
                "pre.d",  # an existing directory beside the config
                "python:mycompany.hooks:alert",
            ]
        },
    }
    config = load(data, registry, base_dir=tmp_path)
    assert config.hooks.pre_backup == (
        ScriptHook(path="/etc/resticm/hooks/missing.sh"),
        DirectoryHook(path="/etc/resticm/hooks/post-backup.d/"),
        DirectoryHook(path="pre.d"),
        PythonHook(callable="mycompany.hooks:alert"),
    )


def test_a_single_string_is_one_entry(registry: PluginRegistry, tmp_path: Path) -> None:
    config = load({**MINIMAL, "hooks": {"on_error": "python:m:f"}}, registry, base_dir=tmp_path)
    assert config.hooks.on_error == (PythonHook(callable="m:f"),)


def test_null_phase_is_empty(registry: PluginRegistry) -> None:
    assert load({**MINIMAL, "hooks": {"pre_backup": None}}, registry).hooks.pre_backup == ()


def test_mapping_entries_with_and_without_kind(registry: PluginRegistry, tmp_path: Path) -> None:
    (tmp_path / "post.d").mkdir()
    data = {
        **MINIMAL,
        "hooks": {
            "post_backup": [
                {
                    "kind": "script",
                    "path": "/usr/local/bin/report",
                    "args": ["--ok"],
                    "timeout": 60,
                },
                {"kind": "directory", "path": "post.d", "continue_on_error": True},
                {"path": "post.d"},
                {"path": "report.sh", "env": {"A": "1"}},
                {"callable": "m:f", "isolate": True},
            ]
        },
    }
    config = load(data, registry, base_dir=tmp_path)
    assert config.hooks.post_backup == (
        ScriptHook(path="/usr/local/bin/report", args=("--ok",), timeout=60.0),
        DirectoryHook(path="post.d", continue_on_error=True),
        DirectoryHook(path="post.d"),
        ScriptHook(path="report.sh", env={"A": "1"}),
        PythonHook(callable="m:f", isolate=True),
    )


def test_unknown_hook_kind_lists_installed(registry: PluginRegistry) -> None:
    data = {**MINIMAL, "hooks": {"pre_backup": [{"kind": "docker-pause", "containers": ["db"]}]}}
    assert problems(data, registry) == [
        "<config>: hooks.pre_backup[0].kind: unknown hook kind 'docker-pause' "
        "(installed: directory, docker-start, docker-stop, python, script, verify-files)"
    ]


def test_blocked_builtin_kind_is_unknown() -> None:
    registry = PluginRegistry.default(blocked=["python"])
    assert problems({**MINIMAL, "hooks": {"on_error": "python:m:f"}}, registry) == [
        "<config>: hooks.on_error: unknown hook kind 'python' "
        "(installed: directory, docker-start, docker-stop, script, verify-files)"
    ]


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        (
            5,
            "hooks.pre_backup[0]",
            "expected a hook: a path, 'python:module:function' or a mapping, got 5",
        ),
        (
            {"timeout": 5},
            "hooks.pre_backup[0]",
            "a hook mapping needs 'kind' (installed: "
            "directory, docker-start, docker-stop, python, script, verify-files), "
            "or 'path' or 'callable'",
        ),
        (
            {"kind": 3, "path": "x"},
            "hooks.pre_backup[0].kind",
            "expected a hook kind (directory, docker-start, docker-stop, python, script, "
            "verify-files), got 3",
        ),
        ({"kind": "script"}, "hooks.pre_backup[0].path", "required key missing"),
        (
            {"kind": "script", "path": "x", "continue_on_error": True},
            "hooks.pre_backup[0].continue_on_error",
            "unknown key",
        ),
        (
            {"path": "x", "args": "--all"},
            "hooks.pre_backup[0].args",
            "expected a list, got '--all'",
        ),
        ("python:", "hooks.pre_backup[0]", "expected 'python:module:function', got 'python:'"),
        ("", "hooks.pre_backup[0]", "expected a hook path or 'python:module:function', got ''"),
    ],
)
def test_bad_hook_entries(registry: PluginRegistry, entry: object, path: str, message: str) -> None:
    data = {**MINIMAL, "hooks": {"pre_backup": [entry]}}
    assert problems(data, registry) == [f"<config>: {path}: {message}"]


# -- durations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("0.5h", 1800.0),
    ],
)
def test_durations(registry: PluginRegistry, value: object, seconds: float) -> None:
    data = {
        **MINIMAL,
        "hooks": {"timeout": value, "pre_backup": [{"path": "/x", "timeout": value}]},
    }
    config = load(data, registry)
    assert config.hooks.timeout == seconds
    assert config.hooks.pre_backup[0].timeout == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "expected a number of seconds (or like '10m'), got 'soon'"),
        ("10", "expected a number of seconds (or like '10m'), got '10'"),
        ("1d", "expected a number of seconds (or like '10m'), got '1d'"),
        (True, "expected a number of seconds (or like '10m'), got true"),
        ([10], "expected a number of seconds (or like '10m'), got a list"),
        (float("inf"), "expected a number of seconds (or like '10m'), got inf"),
        (0, "must be greater than 0, got 0"),
        (-5, "must be greater than 0, got -5"),
        ("0s", "must be greater than 0, got '0s'"),
    ],
)
def test_bad_durations(registry: PluginRegistry, value: object, message: str) -> None:
    assert problems({**MINIMAL, "hooks": {"timeout": value}}, registry) == [
        f"<config>: hooks.timeout: {message}"
    ]


def test_hook_timeout_may_be_null_but_phase_default_may_not(registry: PluginRegistry) -> None:
    config = load({**MINIMAL, "hooks": {"pre_backup": [{"path": "/x", "timeout": None}]}}, registry)
    assert config.hooks.pre_backup[0].timeout is None
    assert problems({**MINIMAL, "hooks": {"timeout": None}}, registry) == [
        "<config>: hooks.timeout: expected a number of seconds (or like '10m'), got null"
    ]


def test_parse_duration_directly() -> None:
    assert parse_duration("2h") == 7200.0


# -- semantic checks --------------------------------------------------------------


def test_password_missing_is_refused(registry: PluginRegistry) -> None:
    assert problems({"repository": "/r"}, registry) == [
        "<config>: password: required: set password, password_file or password_command "
        "(or RESTIC_PASSWORD)"
    ]


@pytest.mark.parametrize(
    "variable", ["RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND"]
)
def test_password_from_environment_is_accepted(registry: PluginRegistry, variable: str) -> None:
    config = load({"repository": "/r"}, registry, environ={variable: "x"})
    assert config.password is None


def test_empty_environment_password_does_not_count(registry: PluginRegistry) -> None:
    assert len(problems({"repository": "/r"}, registry, environ={"RESTIC_PASSWORD": ""})) == 1


def test_password_from_a_plugin_is_accepted() -> None:
    class Vault:
        @staticmethod
        def resticm_repository_password(repository: Any) -> str:
            return "from-vault"

    from resticm_core.hookspecs import hookimpl

    hookimpl(Vault.resticm_repository_password)
    registry = PluginRegistry.default(plugins=[Vault()])
    assert load({"repository": "/r"}, registry).password is None


def test_password_sources_conflict(registry: PluginRegistry) -> None:
    data = {
        "repository": "/r",
        "password": "a",
        "password_file": "/f",
        "backends": {"b2": {"repository": "b2:x", "password_file": "/f", "password_command": "c"}},
    }
    assert problems(data, registry) == [
        "<config>: password_file: conflicts with password: set only one of password, "
        "password_file, password_command",
        "<config>: backends.b2.password_command: conflicts with password_file: set only one of "
        "password, password_file, password_command",
    ]


def test_copy_to_unknown_backend(registry: PluginRegistry) -> None:
    data = {
        **MINIMAL,
        "backends": {"a": {"repository": "/a"}, "b": {"repository": "/b"}},
        "copy_to_backends": ["a", "offsite"],
    }
    assert problems(data, registry) == [
        "<config>: copy_to_backends[1]: unknown backend 'offsite' (defined: a, b)"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"repository": ""}, "repository: must not be empty"),
        ({"copy_concurrency": 0}, "copy_concurrency: must be at least 1, got 0"),
        (
            {"retention": {"keep_daily": -1}},
            "retention.keep_daily: must be 0 (off) or more, got -1",
        ),
        (
            {"logging": {"level": "verbose"}},
            "logging.level: expected one of debug, info, warn, warning, error, got 'verbose'",
        ),
        ({"backends": {"x": {"repository": " "}}}, "backends.x.repository: must not be empty"),
    ],
)
def test_semantic_checks(registry: PluginRegistry, extra: dict[str, Any], message: str) -> None:
    assert problems({**MINIMAL, **extra}, registry) == [f"<config>: {message}"]


def test_accepted_values(registry: PluginRegistry) -> None:
    config = load(
        {
            **MINIMAL,
            "logging": {"level": "WARN"},
            "deep_check_interval_days": -1,
            "retention": {"keep_daily": 0},
        },
        registry,
    )
    assert config.logging.level == "WARN"
    assert config.retention.keep_daily == 0


def test_directories_are_not_required_at_load(registry: PluginRegistry) -> None:
    assert load(MINIMAL, registry).directories == ()


def test_missing_repository(registry: PluginRegistry) -> None:
    assert problems({"password": "x"}, registry) == ["<config>: repository: required key missing"]


def test_many_errors_together_and_custom_source(registry: PluginRegistry) -> None:
    data = {
        "password": 5,
        "verify_no_locks": "no",
        "hooks": {"pre_backup": [{"kind": "nope"}], "post_bakup": "/x"},
    }
    # Without lines (a mapping), problems come in schema order: the credential keys
    # (Credentials, shared with backends) first.
    assert problems(data, registry, source="ansible") == [
        "ansible: password: expected a string, got a number (quote it)",
        "ansible: repository: required key missing",
        "ansible: hooks.pre_backup[0].kind: unknown hook kind 'nope' "
        "(installed: directory, docker-start, docker-stop, python, script, verify-files)",
        "ansible: hooks.post_bakup: unknown key (did you mean 'post_backup'?)",
        "ansible: verify_no_locks: expected true or false, got 'no'",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            None,
            "<config>: the configuration is empty; it needs at least 'repository' and a password",
        ),
        (["repository"], "<config>: expected a mapping of keys (repository: ...), got a list"),
    ],
)
def test_not_a_mapping(registry: PluginRegistry, data: object, message: str) -> None:
    assert problems(data, registry) == [message]


def test_ruamel_scalar_boolean_is_a_bool(registry: PluginRegistry) -> None:
    # An anchored ``&x true`` loads as ScalarBoolean, an int subclass.
    data = YAML().load(
        "repository: /r\npassword: p\npreflight: &off false\nverify_no_locks: *off\n"
    )
    config = load(data, registry)
    assert config.preflight is False
    assert config.verify_no_locks is False
    bad = YAML().load("repository: /r\npassword: p\ncopy_concurrency: &t true\n")
    # A ruamel document keeps its positions, so even config_from_dict locates lines.
    assert problems(bad, registry) == [
        "<config>:3: copy_concurrency: expected a whole number, got true"
    ]


# -- round trip -------------------------------------------------------------------


FULL = {
    "repository": "s3:https://s3.example.com/bucket",
    "password_command": "pass show restic",
    "aws_access_key_id": "AKIA",
    "aws_secret_access_key": "secret",
    "env": {"AWS_DEFAULT_REGION": "eu-west-1"},
    "directories": ["/etc", "/home"],
    "exclude_patterns": ["*.tmp"],
    "exclude_file": "/etc/resticm/excludes",
    "retention": {"keep_last": 3, "keep_within": "", "keep_tags": ["keep"], "group_by": "host"},
    "deep_check_interval_days": 14,
    "default_tags": ["nightly"],
    "backends": {
        "offsite": {
            "repository": "b2:bucket:/x",
            "password_file": "/etc/resticm/b2.pw",
            "env": {"B2_ACCOUNT_ID": "id"},
        },
    },
    "copy_to_backends": ["offsite"],
    "copy_concurrency": 1,
    "hooks": {
        "pre_backup": [
            "/etc/resticm/pre.sh",
            {"kind": "directory", "path": "/etc/resticm/pre.d/", "continue_on_error": True},
        ],
        "post_backup": {"path": "/usr/local/bin/report", "args": ["--ok"], "timeout": "10m"},
        "on_error": "python:mycompany.hooks:alert",
        "finally": [{"callable": "m:f", "isolate": True, "env": {"X": "1"}}],
        "environment": {"SITE": "paris"},
        "timeout": "1h",
    },
    "notifications": {
        "enabled": True,
        "notify_on_error": True,
        "providers": [
            {"type": "ntfy", "url": "https://ntfy.sh/x", "options": {"priority": "high"}}
        ],
    },
    "logging": {"file": "", "level": "debug", "console": False, "json": True},
    "verify_no_locks": True,
    "preflight": False,
    "host": "web1",
}


def test_round_trip(registry: PluginRegistry) -> None:
    config = load(FULL, registry)
    conv = make_converter(registry)
    data = conv.unstructure(config)
    assert conv.structure(data, Config) == config
    assert "finally" in data["hooks"] and "finally_" not in data["hooks"]
    assert "source_path" not in data
    assert data["hooks"]["finally"][0]["kind"] == "python"
    assert "function" not in data["hooks"]["finally"][0]
    # The unstructured form is itself a valid config document.
    assert load(data, registry) == config


def test_round_trip_of_every_model_default(conv: cattrs.Converter) -> None:
    for model in (Retention(), PhaseHooks(), Notifications(), Logging()):
        assert conv.structure(conv.unstructure(model), type(model)) == model
    for value in (Backend(repository="x"), NtfyNotifier()):
        assert conv.structure(conv.unstructure(value), type(value)) == value
    providers = Notifications(providers=(NtfyNotifier(url="https://n/x", on=("error",)),))
    assert conv.structure(conv.unstructure(providers), Notifications) == providers


def test_flatten_errors_paths(conv: cattrs.Converter) -> None:
    with pytest.raises(cattrs.BaseValidationError) as info:
        conv.structure({"repository": "/r", "hooks": {"finally": [1]}}, Config)
    paths = [path for path, _ in flatten_errors(info.value)]
    assert paths == [("hooks", "finally", 0)]


def test_converter_is_private(registry: PluginRegistry) -> None:
    make_converter(registry)
    # The global converter keeps its lenient defaults: nothing was registered on it.
    assert cattrs.structure("no", bool) is True


# -- never anything but ConfigError -----------------------------------------------


def _all_keys() -> list[str]:
    classes = (
        Config,
        Retention,
        Backend,
        PhaseHooks,
        Notifications,
        NtfyNotifier,
        Logging,
        ScriptHook,
        DirectoryHook,
        PythonHook,
    )
    return sorted({key for cls in classes for key in yaml_keys(cls)})


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["no", "yes", "10m", "python:m:f", "/", "script", "directory", "python"])
)
_keys = st.sampled_from(_all_keys()) | st.text(max_size=8)
_documents = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=6),
    max_leaves=30,
)


def test_random_documents_only_raise_config_error(registry: PluginRegistry) -> None:
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        data=st.dictionaries(_keys, _documents, max_size=8),
        base=st.fixed_dictionaries(
            {}, optional={"repository": st.just("/r"), "password": st.just("p")}
        ),
    )
    def check(data: dict[str, Any], base: dict[str, Any]) -> None:
        try:
            config = config_from_dict({**base, **data}, registry=registry, environ={})
        except ConfigError as exc:
            assert exc.messages
            assert all(m.startswith("<config>: ") for m in exc.messages)
        else:
            assert attrs.has(type(config))

    check()


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


def _replace(node: Any, path: tuple[Any, ...], value: object) -> Any:
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = _replace(node[path[0]], path[1:], value)
    return copy


def test_valid_document_with_random_values_only_raises_config_error(
    registry: PluginRegistry,
) -> None:
    # Random values deep inside a real config reach every hook of the converter.
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        changes=st.lists(
            st.tuples(st.sampled_from(_paths(FULL)), _documents), min_size=1, max_size=3
        )
    )
    def check(changes: list[tuple[tuple[Any, ...], object]]) -> None:
        document: Any = FULL
        for path, value in changes:
            try:
                document = _replace(document, path, value)
            except (IndexError, KeyError, TypeError):  # an earlier change removed the path
                continue
        try:
            config_from_dict(document, registry=registry, environ={})
        except ConfigError as exc:
            assert all(m.startswith("<config>: ") for m in exc.messages)

    check()


def test_random_top_level_values_only_raise_config_error(registry: PluginRegistry) -> None:
    @settings(max_examples=100, deadline=None)
    @given(document=_documents)
    def check(document: object) -> None:
        with contextlib.suppress(ConfigError):
            config_from_dict(document, registry=registry, environ={})  # type: ignore[arg-type]

    check()


def test_config_from_dict_base_dir_becomes_the_config_dir(
    registry: PluginRegistry, tmp_path: Path
) -> None:
    # Python hooks import from config_dir and relative script paths resolve
    # against it, so a mapping's base_dir must reach the Config.
    assert load(MINIMAL, registry, base_dir=tmp_path).config_dir == tmp_path


def test_an_empty_string_is_no_hook_as_in_the_go_tool(registry: PluginRegistry) -> None:
    # The Go tool's config.example.yaml writes ``pre_backup: ""`` for "no hook".
    phases = ("pre_backup", "post_backup", "on_success", "on_error", "finally")
    config = load({**MINIMAL, "hooks": {p: ("" if i % 2 else "  ") for i, p in enumerate(phases)}},
                  registry)
    assert all(config.hooks.for_phase(p) == () for p in phases)
