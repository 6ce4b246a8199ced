"""``resticm config schema``, ``config show`` and ``config init`` (issue 18)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import pytest
from ruamel.yaml import YAML

from resticm_core import Hook, hookimpl
from resticm_core.config_file import load_config
from resticm_core.config_schema import config_schema
from resticm_core.plugin_manager import PluginRegistry

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_CONFIGS = sorted(
    [*EXAMPLES.glob("*/config*.yaml"), *EXAMPLES.glob("*/config.yaml.in")]
)


def resticm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resticm_core", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    """The schema ``resticm config schema`` prints, checked as a draft 2020-12 schema."""
    done = resticm("config", "schema")
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator: jsonschema.Draft202012Validator, data: object) -> list[str]:
    return [e.message for e in validator.iter_errors(data)]


def test_there_are_example_configs() -> None:
    assert len(EXAMPLE_CONFIGS) >= 8


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_the_schema_accepts_every_example_config(
    validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    data = YAML(typ="safe").load(path.read_text())
    assert errors(validator, data) == []


BASE: dict[str, Any] = {"repository": "/srv/repo", "password_file": "/etc/resticm/pw"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**BASE, "retension": {}}, "'retension' was unexpected"),
        ({**BASE, "retention": {"keep_dialy": 7}}, "'keep_dialy' was unexpected"),
        ({**BASE, "backends": {"m": {"repository": "/m", "forgett": False}}}, "'forgett'"),
        ({**BASE, "extra_args": {"bakup": ["-x"]}}, "'bakup' was unexpected"),
        ({**BASE, "retention": {"keep_daily": "7"}}, "'7' is not of type 'integer'"),
        ({**BASE, "hooks": {"pre_backup": [{"kind": "script", "pth": "/x"}]}}, "is not valid"),
        ({**BASE, "notifications": {"providers": [{"type": "ntfy", "urll": "x"}]}}, "not valid"),
        ({"password": "x" * 12}, "'repository' is a required property"),
    ],
)
def test_the_schema_rejects_typos_and_wrong_types(
    validator: jsonschema.Draft202012Validator, data: dict[str, Any], message: str
) -> None:
    found = errors(validator, data)
    assert any(message in e for e in found), found


def test_the_schema_knows_the_go_forms_and_the_new_keys(
    validator: jsonschema.Draft202012Validator,
) -> None:
    data = {
        **BASE,
        "retention": None,  # the Go tool's empty section
        "exclude_patterns": None,
        "hooks": {"pre_backup": "/etc/resticm/pre.sh", "timeout": "10m"},
        "timeouts": {"backup": "2h", "prune": 3600},
        "options": {"s3.storage-class": "STANDARD_IA"},
        "compression": "max",
        "extra_args": {"backup": ["--exclude-caches"]},
        "backends": {
            "lock": {"repository": "s3:https://x/b", "forget": False, "check": True,
                     "retention": {"keep_last": 1}, "deep_check_interval_days": 90}
        },
    }
    assert errors(validator, data) == []



def test_the_schema_knows_jobs_includes_and_run_jobs(
    validator: jsonschema.Draft202012Validator,
) -> None:
    """A job inherits (needs no repository of its own); a typo inside a job is still one."""
    data = {
        **BASE,
        "include": ["common.yaml"],
        "run_jobs": ["web"],
        "jobs": {"web": {"directories": ["/srv/www"], "schedule": "*-*-* 02:30"}, "db": None},
    }
    assert errors(validator, data) == []
    assert errors(validator, {**BASE, "include": "common.yaml"}) == []
    typo = errors(validator, {**BASE, "jobs": {"web": {"directorys": ["/srv"]}}})
    assert any("'directorys' was unexpected" in e for e in typo), typo
    nested = errors(validator, {**BASE, "jobs": {"web": {"jobs": {}}}})
    assert any("'jobs' was unexpected" in e for e in nested), nested


def test_plugin_kinds_are_in_the_schema() -> None:
    @attrs.frozen(kw_only=True)
    class Probe(Hook):
        kind = "probe-kind"
        target: str
        attempts: int = 3

    class Plugin:
        @hookimpl
        def resticm_hook_types(self) -> list[type[Hook]]:
            return [Probe]

    schema = config_schema(PluginRegistry.default(plugins=[Plugin()]))
    probe = schema["$defs"]["hook.probe-kind"]
    assert probe["properties"]["kind"]["const"] == "probe-kind"
    assert probe["properties"]["attempts"]["default"] == 3
    assert probe["required"] == ["target"]
    validator = jsonschema.Draft202012Validator(schema)
    entry = {"kind": "probe-kind", "target": "db"}
    assert errors(validator, {**BASE, "hooks": {"on_error": [entry]}}) == []
    assert errors(validator, {**BASE, "hooks": {"on_error": [{**entry, "attempt": 1}]}})
    # The builtin notifier types and their aliases are there too.
    names = schema["$defs"]["notifier.uptime_kuma"]["properties"]["type"]["enum"]
    assert "uptime-kuma" in names


SECRETS = {
    "password": "primary-password-1234",
    "aws_secret_access_key": "aws-secret-abcdefgh",
    "token": "ntfy-token-zyxwvuts",
    "backend": "backend-password-9876",
    "url": "urlpassword55",
    "env": "b2-account-key-4321",
}


def test_config_show_prints_the_effective_config_with_every_secret_masked(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "repository": f"rest:https://user:{SECRETS['url']}@backup.example/repo",
                "password": SECRETS["password"],
                "aws_access_key_id": "AKIAEXAMPLE",
                "aws_secret_access_key": SECRETS["aws_secret_access_key"],
                "directories": ["/srv"],
                "logging": {"file": str(tmp_path / "log")},
                "notifications": {
                    "providers": [
                        {"type": "ntfy", "url": "https://ntfy.example/topic",
                         "token": SECRETS["token"]}
                    ]
                },
                "backends": {
                    "b2": {"repository": "b2:bucket:/r", "password": SECRETS["backend"],
                           "env": {"B2_ACCOUNT_KEY": SECRETS["env"]}, "forget": False}
                },
            }
        )
    )
    config.chmod(0o600)
    done = resticm("-c", str(config), "config", "show")
    assert done.returncode == 0, done.stderr
    for secret in SECRETS.values():
        assert secret not in done.stdout
    shown = YAML(typ="safe").load(done.stdout)
    assert shown["password"] == "***"
    assert shown["aws_secret_access_key"] == "***"
    assert shown["aws_access_key_id"] == "AKIAEXAMPLE"
    assert shown["repository"] == "rest:https://user:***@backup.example/repo"
    assert shown["backends"]["b2"]["password"] == "***"
    assert shown["backends"]["b2"]["env"] == {"B2_ACCOUNT_KEY": "***"}
    assert shown["notifications"]["providers"][0]["token"] == "***"
    assert shown["notifications"]["providers"][0]["type"] == "ntfy"
    # The defaults are filled in.
    assert shown["retention"]["keep_hourly"] == 24
    assert shown["backends"]["b2"]["forget"] is False
    assert shown["deep_check_interval_days"] == 30


def test_config_init_writes_a_private_starter_that_loads_and_is_never_overwritten(
    tmp_path: Path,
) -> None:
    target = tmp_path / "etc" / "config.yaml"
    done = resticm("config", "init", str(target))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    text = target.read_text()
    assert "# yaml-language-server: $schema=" in text
    config = load_config(target, environ={})
    assert config.repository == "/srv/restic-repo"
    assert config.password_file == str(tmp_path / "etc" / "password")
    assert config.retention.keep_daily == 7
    target.write_text(text + "# mine\n")
    again = resticm("config", "init", str(target))
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert target.read_text().endswith("# mine\n")
    forced = resticm("config", "init", "--force", str(target))
    assert forced.returncode == 0, forced.stderr
    assert target.read_text() == text
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_the_documented_policy_options_and_editor_examples_load_and_validate(
    tmp_path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    text = DOCS.read_text()
    blocks = [part.split("```", 1)[0] for part in text.split("```yaml\n")[1:]]
    ours = [b for b in blocks if "forget: false" in b or "extra_args:" in b or "$schema=" in b]
    assert len(ours) == 3
    for i, block in enumerate(ours):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        path.chmod(0o600)
        config = load_config(path, environ={})
        assert errors(validator, YAML(typ="safe").load(block)) == []
        if "forget: false" in block:
            assert config.backends["locked"].forget is False
            assert config.backends["usb"].retention is not None
        if "extra_args:" in block:
            assert config.repository_named("usb").compression == "auto"
            assert config.repository_named("usb").extra_args.prune == ("--max-unused", "0")
            assert config.repository_named("usb").extra_args.backup == (
                "--one-file-system", "--exclude-caches", "--exclude-larger-than", "1G"
            )
